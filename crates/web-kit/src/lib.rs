//! HTTP plumbing shared by the services: the route table that registers each route with its
//! OpenAPI description and serves `/openapi.json` and `/docs/` (`apidoc`), reading JSON bodies (§2.1, §2.4), request time limits,
//! request logging that never records query strings, headers or bodies (§1.4, §13.3), the
//! browser-origin policy of CORS and websockets (§2.1), the §4-shaped fallback answers, log setup,
//! bounded Redis calls, the in-memory set of revoked sessions fed from Redis, rate limits kept in Redis, and which PostgreSQL and Redis failures are unavailability (503). The
//! contract's types live in `domain`; this crate only adds the actix glue around them.

pub mod apidoc;
pub mod body;
pub mod failure;
pub mod history;
pub mod limits;
pub mod metrics;
pub mod origins;
pub mod ratelimit;
pub mod redis;
pub mod revocations;
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
