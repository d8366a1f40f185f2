//! Integration tests: the real service in-process on port 0, real websocket clients, the real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod delivery;
mod handshake;
mod helpers;
mod hostile;
mod lifecycle;
mod process;
mod recovery;
mod wire;
