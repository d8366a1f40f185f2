//! `GET /healthz` (the process is up) and `GET /readyz` (Redis answers, the revoked sessions are
//! loaded and the subscriber is connected).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::startup::AppState;

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses(
        (status = 200, description = "The process is up.", body = Object),
    )
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Redis answers, the revoked sessions are loaded and the subscriber is connected.", body = Object),
        (status = 503, description = "Not ready.", body = domain::ErrorBody),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = format!("{e:#}"), "not ready: redis unreachable");
        return Err(ApiError::unavailable("redis is unreachable"));
    }
    if !state.revocations.is_ready() {
        return Err(ApiError::unavailable("the revoked sessions are not loaded from Redis"));
    }
    let stats = state.hub.stats();
    if !stats.connected {
        return Err(ApiError::unavailable("redis subscriber is not connected"));
    }
    Ok(HttpResponse::Ok().json(json!({"status": "ok", "sockets": stats.sockets, "identities": stats.identities})))
}
