//! SQL, as small functions taking a client or a transaction (`GenericClient`).
//! Callers own transactions; nothing here commits.

pub mod boxes;
pub mod crypto_actions;
pub mod events;
pub mod identities;
pub mod keyshares;
pub mod membership;
pub mod settings;

pub use deadpool_postgres::GenericClient;
