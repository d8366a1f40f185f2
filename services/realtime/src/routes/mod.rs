//! HTTP surface: the websocket handshake of §9.1 and the health endpoints of §13.3.

pub mod health;
pub mod ws;

use actix_web::HttpResponse;
use domain::ErrorBody;

/// 404 for unknown paths, with the §4 body.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(ErrorBody::route_not_found())
}

/// 405 for a known path and another method.
pub async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed().json(ErrorBody::not_allowed())
}
