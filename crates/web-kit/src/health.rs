//! `/healthz` and `/readyz` (§13.3), answered the same way by every service: `/healthz` says the
//! process is up; `/readyz` runs the service's checks and answers 200 `{"status":"ok", ...}` or
//! 503 with the §4 body naming what is not ready.

use std::time::Duration;

use actix_web::HttpResponse;
use domain::ErrorBody;
use serde_json::{json, Map, Value};

/// The longest one readiness check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /healthz`.
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

/// The `/readyz` answer for `checks` (name, passed): 200 with `{"status":"ok"}`, each check
/// and `extra`, or 503 `service_unavailable` naming the checks that failed.
pub fn readiness(checks: &[(&str, bool)], extra: Map<String, Value>) -> HttpResponse {
    let down: Vec<&str> = checks.iter().filter(|(_, ok)| !ok).map(|(name, _)| *name).collect();
    if !down.is_empty() {
        return HttpResponse::ServiceUnavailable()
            .json(ErrorBody::unavailable(format!("not ready: {} not available", down.join(" and "))));
    }
    let mut body = Map::new();
    body.insert("status".into(), "ok".into());
    for (name, _) in checks {
        body.insert((*name).into(), true.into());
    }
    body.extend(extra);
    HttpResponse::Ok().json(Value::Object(body))
}

/// Whether PostgreSQL answers a query within [`CHECK_TIMEOUT`].
pub async fn postgres_ready(pool: &deadpool_postgres::Pool) -> bool {
    let check = async {
        let client = crate::metrics::pool_get(pool).await.ok()?;
        client.simple_query("SELECT 1").await.ok()
    };
    tokio::time::timeout(CHECK_TIMEOUT, check).await.ok().flatten().is_some()
}

/// Whether Redis answers a PING (bounded by `web_kit::redis::CALL_TIMEOUT`).
pub async fn redis_ready(conn: &crate::redis::Redis) -> bool {
    crate::redis::query::<String>(conn, &redis::cmd("PING")).await.is_ok()
}
