//! Nothing secret reaches auth-bridge's logs. The services log from their worker threads, so the
//! capturing subscriber is global: these tests share it in a binary of their own, apart from the
//! `api` tests, and each looks only for the secrets it put in play.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use test_support::logs::Capture;

#[path = "../api/helpers.rs"]
mod helpers;
mod hostapp_path;
mod platform_path;

/// Every log line of the binary, from the first call on: the capture, installed as the global
/// subscriber (trace level, JSON) at the first call.
pub fn capture() -> Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            let subscriber = web_kit::telemetry::subscriber("trace", "json", capture.clone());
            tracing::subscriber::set_global_default(subscriber).unwrap();
            capture
        })
        .clone()
}
