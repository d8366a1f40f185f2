//! SQL, as small functions taking a client or a transaction (`GenericClient`).
//! Callers own transactions; nothing here commits. Every function answers [`Error`], which
//! names the failed step; each is instrumented at debug level, so the requests measured in
//! `BENCHMARKS.md` pay nothing for the spans unless debug logs are asked for.

/// Column lists shared by several statements, as macros so statements can be built with `concat!`.
macro_rules! box_columns {
    () => {
        "id, creator_id, title, public_key, access_mode, created_at, last_event_at, last_visible_at"
    };
}
macro_rules! event_columns {
    () => {
        "id, box_id, seq, type, sender_id, content, referrer_id, created_at"
    };
}
macro_rules! identity_columns {
    () => {
        "id, display_name, identifier_value, identifier_kind, pubkey, non_identified_pubkey, created_at"
    };
}

pub mod access;
pub mod boxes;
pub mod crypto_actions;
mod error;
pub mod events;
pub mod files;
pub mod idempotency;
pub mod identities;
pub mod keyshares;
pub mod notifications;
pub mod pipelined;
pub mod settings;
pub mod sql;

pub use deadpool_postgres::GenericClient;
pub use error::Error;
