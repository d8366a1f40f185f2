//! auth-bridge (`SPEC.md` §10): Boxo Connect-style single sign-on for the boxes miniapp.
//!
//! A hostapp user arrives with a one-time auth code. The bridge trades it with the hostapp for an
//! access token and the user data (`hostapp`), validates the data, creates or refreshes the public
//! identity through the boxes internal API (`internal`), records the consent and opens a session
//! (`store`, `session`): an EdDSA-signed access token that every other service verifies locally,
//! a rotating refresh token and a CSRF token. It also serves refresh, logout (with the Redis
//! revocation marker and the `session.revoked` message for realtime, kept in step with PostgreSQL by
//! `revocation`), the JWKS document, the Boxo
//! consent endpoint, the Boxo host web SDK's `authorize` endpoint and the Boxo platform's Connect
//! endpoint (`connect`: signed requests, encrypted user data).

pub mod config;
pub mod connect;
pub mod error;
pub mod hostapp;
pub mod internal;
pub mod login;
pub mod registry;
pub mod revocation;
pub mod routes;
pub mod session;
pub mod startup;
pub mod store;
