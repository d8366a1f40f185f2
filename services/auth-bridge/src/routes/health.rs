//! `/healthz` (the process is up) and `/readyz` (PostgreSQL and Redis answer).

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::startup::AppState;
use crate::store;

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
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "PostgreSQL, Redis and boxes answer.", body = Object),
        (status = 503, description = "A dependency is not available.", body = domain::ErrorBody),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // Any failure here means "not ready" (503), whatever it would be on another route: a missing
    // database, for one, is a fault of the deployment, not of a request.
    let db = async {
        let client =
            web_kit::metrics::pool_get(&state.pool).await.map_err(|e| anyhow::anyhow!("PostgreSQL pool: {e}"))?;
        store::ping(&client).await.map_err(|e| anyhow::anyhow!("PostgreSQL: {e}"))
    };
    tokio::time::timeout(DB_CHECK_TIMEOUT, db)
        .await
        .map_err(|_| anyhow::anyhow!("PostgreSQL did not answer in time"))
        .and_then(|r| r)
        .map_err(ApiError::unavailable)?;
    web_kit::redis::query::<String>(&state.redis, &redis::cmd("PING"))
        .await
        .map_err(|e| ApiError::unavailable(anyhow::anyhow!("Redis: {e}")))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ok"})))
}
