//! Nothing secret reaches auth-bridge's logs. The services log from their worker threads, so the
//! capturing subscriber is global: these tests share it in a binary of their own, apart from the
//! `api` tests, and each looks only for the secrets it put in play.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use test_support::logs::Capture;

#[path = "../api/helpers.rs"]
mod helpers;
mod hostapp_path;
mod platform_path;

/// Every log line of the binary, from the first call on (trace level, JSON).
pub fn capture() -> Capture {
    Capture::global(|capture| web_kit::telemetry::subscriber("trace", "json", capture))
}
