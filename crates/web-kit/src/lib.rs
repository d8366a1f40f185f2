//! The infrastructure every service shares, so that a service's `startup.rs` reads as a list of
//! its own routes and state:
//! - the one error type and its classification of PostgreSQL and Redis failures into §4 answers
//!   (`failure`); the §4-shaped fallback answers (below);
//! - set-up: the settings groups services flatten into their own (`config`), the PostgreSQL pool and migrations (`postgres`), bounded Redis calls on one Redis or a Redis Cluster (`redis`, `cluster`), the
//!   token keys (`keys`), `serve()` with graceful shutdown (`serve`), `/healthz` and `/readyz`
//!   (`health`), the browser-origin policy of CORS and websockets (`origins`);
//! - requests: credentials and the ACR (`auth`), JSON bodies and time limits (`body`, `limits`),
//!   request logging that never records query strings, headers or bodies (`telemetry`), metrics,
//!   the route table with its OpenAPI description (`apidoc`);
//! - Redis-backed state: revoked sessions (`revocations`), rate limits (`ratelimit`), the
//!   realtime history (`history`).
//!
//! The contract's types live in `domain`; this crate only adds the glue around them.

pub mod apidoc;
pub mod auth;
pub mod body;
pub mod cluster;
pub mod config;
pub mod failure;
pub mod health;
pub mod history;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod origins;
pub mod postgres;
pub mod ratelimit;
pub mod redis;
pub mod revocations;
pub mod serve;
pub mod telemetry;

use actix_web::HttpResponse;
use domain::ErrorBody;

/// Fallback for unknown paths.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(ErrorBody::route_not_found())
}

/// Fallback for a known path with a method it does not serve.
pub async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed().json(ErrorBody::not_allowed())
}
