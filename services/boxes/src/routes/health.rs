//! Liveness and readiness (§13.3).

use actix_web::{web, HttpResponse};
use domain::ErrorBody;
use serde_json::json;

use crate::state::AppState;

const DB_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

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

/// Ready when PostgreSQL answers a query and Redis a PING, each within a second, and the revoked
/// sessions are loaded (token checks are answered).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "PostgreSQL and Redis answer.", body = Object),
        (status = 503, description = "PostgreSQL or Redis is not available.", body = domain::ErrorBody),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db_check = async {
        let client = web_kit::metrics::pool_get(&state.db).await.ok()?;
        client.simple_query("SELECT 1").await.ok()
    };
    let db = tokio::time::timeout(DB_CHECK_TIMEOUT, db_check).await.ok().flatten().is_some();
    let redis_ok = web_kit::redis::query::<String>(&state.redis, &redis::cmd("PING")).await.is_ok();
    let revocations = state.revocations.is_ready();
    if db && redis_ok && revocations {
        return HttpResponse::Ok().json(json!({"status": "ok", "postgres": true, "redis": true}));
    }
    let down: Vec<&str> = [("postgres", db), ("redis", redis_ok), ("revoked sessions", revocations)]
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| *n)
        .collect();
    HttpResponse::ServiceUnavailable()
        .json(ErrorBody::unavailable(format!("not ready: {} not available", down.join(" and "))))
}
