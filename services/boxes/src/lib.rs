//! The boxes service: encrypted boxes, their ordered events, key shares, identities and crypto
//! actions (`SPEC.md` §5–§8, §12).
//!
//! A request goes through `routes/` (parse, authorise, do, answer), which uses `auth` for the
//! token checks of §3, `rules` for the event rules of §6.3, `web_kit::body` to read JSON, and
//! `store/` for SQL. Every multi-row effect runs in one PostgreSQL transaction; `notify`
//! publishes realtime envelopes to Redis only after commit. Messages are committed in groups
//! (`posts`).
//! The server stores ciphertext exactly as received and never logs it.

pub mod auth;
pub mod blobs;
pub mod config;
pub mod error;
pub mod idempotency;
pub mod load;
pub mod notify;
pub mod posts;
pub mod routes;
pub mod rules;
pub mod startup;
pub mod state;
pub mod store;
pub mod sweeper;
