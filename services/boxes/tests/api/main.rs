//! Integration tests of the boxes service: the real app on port 0, a fresh PostgreSQL database per
//! test and the real Redis. One binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod auth;
mod batch_events;
mod boxes;
mod contact;
mod corrupt_rows;
mod events;
mod files;
mod group_commit;
mod hardening;
mod health;
mod hostile;
mod idempotency;
mod identities;
mod keyshares;
mod members;
mod notifications;
mod notifications_stored;
mod outages;
mod plans;
mod ratelimits;
mod revocations;
mod settings;
mod sharing;
