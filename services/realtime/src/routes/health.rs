//! `GET /readyz` (§13.3): Redis answers, the revoked sessions are loaded and the subscriber is
//! connected. `/healthz` is `web_kit::health`'s.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::startup::AppState;

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Redis answers, the revoked sessions are loaded and the subscriber is connected.", body = Object),
        (status = 503, description = "Not ready.", body = domain::ErrorBody),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let redis = match state.store.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "not ready: redis unreachable");
            false
        }
    };
    let stats = state.hub.stats();
    let checks = [("redis", redis), ("revocations", state.revocations.is_ready()), ("subscriber", stats.connected)];
    let extra = json!({"sockets": stats.sockets, "identities": stats.identities});
    web_kit::health::readiness(&checks, extra.as_object().cloned().unwrap_or_default())
}
