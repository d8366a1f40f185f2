//! Liveness and readiness (§13.3).

use actix_web::{web, HttpResponse};
use domain::ErrorBody;
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
    if db && redis_ok {
        return HttpResponse::Ok().json(json!({"status": "ok", "postgres": true, "redis": true}));
    }
    let down: Vec<&str> =
        [("postgres", db), ("redis", redis_ok)].iter().filter(|(_, ok)| !ok).map(|(n, _)| *n).collect();
    HttpResponse::ServiceUnavailable()
        .json(ErrorBody::unavailable(format!("not ready: {} unreachable", down.join(" and "))))
}
