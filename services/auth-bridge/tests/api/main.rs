//! auth-bridge's integration tests, one binary: the service in-process on port 0 (see
//! `helpers`), one module per area of the API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod authorize;
mod connect;
mod consent;
mod faults;
mod hardening;
mod helpers;
mod hostile;
mod login;
mod outages;
mod ratelimits;
mod sessions;
