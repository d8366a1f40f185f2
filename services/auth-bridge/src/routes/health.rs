//! `/readyz` (§13.3): PostgreSQL and Redis answer, each within a second. `/healthz` is
//! `web_kit::health`'s.

use actix_web::{web, HttpResponse};

use crate::startup::AppState;

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
    use web_kit::health::{postgres_ready, readiness, redis_ready};
    let (postgres, redis) = tokio::join!(postgres_ready(&state.pool), redis_ready(&state.redis));
    readiness(&[("postgres", postgres), ("redis", redis)], Default::default())
}
