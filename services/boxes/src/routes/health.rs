//! Liveness and readiness (§13.3).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

const DB_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when PostgreSQL answers a query and Redis a PING, each within a second.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db_check = async {
        let client = state.db.get().await.ok()?;
        client.simple_query("SELECT 1").await.ok()
    };
    let db = tokio::time::timeout(DB_CHECK_TIMEOUT, db_check).await.ok().flatten().is_some();
    let redis_ok = web_kit::redis::query::<String>(&state.redis, &redis::cmd("PING")).await.is_ok();
    let body = json!({"status": if db && redis_ok { "ok" } else { "unavailable" }, "postgres": db, "redis": redis_ok});
    if db && redis_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
