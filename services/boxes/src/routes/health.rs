//! Liveness and readiness (§13.3).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when PostgreSQL answers a query and Redis a PING.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = match state.db.get().await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    let mut redis = state.redis.clone();
    let redis_ok = redis::cmd("PING").query_async::<String>(&mut redis).await.is_ok();
    let body = json!({"status": if db && redis_ok { "ok" } else { "unavailable" }, "postgres": db, "redis": redis_ok});
    if db && redis_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
