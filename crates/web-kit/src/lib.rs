//! HTTP plumbing shared by the services: reading JSON bodies (§2.1, §2.4), request time limits,
//! request logging that never records query strings, headers or bodies (§1.4, §13.3), CORS
//! (§2.1), the §4-shaped fallback answers, log setup, bounded Redis calls, and which PostgreSQL
//! and Redis failures are unavailability (503). The contract's types live in `domain`; this crate only adds
//! the actix glue around them.

pub mod body;
pub mod failure;
pub mod limits;
pub mod redis;
pub mod telemetry;

use actix_cors::Cors;
use actix_web::http::{header, Method};
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

/// CORS for `origins` (`*` allows any), with credentials; `X-Total-Count` is exposed. Requests
/// from other origins are served without CORS headers, so the browser withholds the answer.
pub fn cors(origins: &[String]) -> Cors {
    let any = origins.iter().any(|o| o == "*");
    let allowed = origins.to_vec();
    Cors::default()
        .allowed_origin_fn(move |origin, _| any || origin.to_str().is_ok_and(|o| allowed.iter().any(|a| a == o)))
        .allowed_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allowed_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::HeaderName::from_static("x-csrf-token")])
        .expose_headers([header::HeaderName::from_static("x-total-count")])
        .supports_credentials()
        .block_on_origin_mismatch(false)
        .max_age(600)
}
