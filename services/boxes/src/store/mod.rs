//! SQL, as small functions taking a client or a transaction (`GenericClient`).
//! Callers own transactions; nothing here commits.

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
pub mod events;
pub mod files;
pub mod idempotency;
pub mod identities;
pub mod keyshares;
pub mod membership;
pub mod notifications;
pub mod settings;
pub mod sql;

pub use deadpool_postgres::GenericClient;
