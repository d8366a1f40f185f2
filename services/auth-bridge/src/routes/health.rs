//! `/healthz` (the process is up) and `/readyz` (PostgreSQL and Redis answer).

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::startup::AppState;
use crate::store;

const DB_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let db = async {
        let client = state.pool.get().await?;
        store::ping(&client).await.map_err(ApiError::from)
    };
    tokio::time::timeout(DB_CHECK_TIMEOUT, db)
        .await
        .map_err(|_| ApiError::unavailable(anyhow::anyhow!("PostgreSQL did not answer in time")))??;
    web_kit::redis::query::<String>(&state.redis, &redis::cmd("PING")).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ok"})))
}
