//! `/healthz` (the process is up) and `/readyz` (PostgreSQL and Redis answer).

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::startup::AppState;
use crate::store;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    store::ping(&client).await?;
    let mut redis = state.redis.clone();
    redis::cmd("PING").query_async::<String>(&mut redis).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ok"})))
}
