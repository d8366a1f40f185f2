//! Reference hostapp (`SPEC.md` §11), for development and tests only.
//!
//! It plays the backend of a Boxo hostapp so that auth-bridge can run its login flow end to end:
//! the two Boxo Connect endpoints (`get-access-token`, `get-user-data`), a helper that mints
//! one-time auth codes, static codes and fault-injection codes that exercise every row of the
//! bridge's failure table (§10.4). Everything lives in memory; nothing is persistent.

pub mod config;
pub mod error;
pub mod routes;
pub mod startup;
pub mod store;
pub mod users;
