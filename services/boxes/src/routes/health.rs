//! `/readyz` (§13.3): PostgreSQL and Redis answer, each within a second, and the revoked sessions
//! are loaded (token checks are answered). `/healthz` is `web_kit::health`'s.

use actix_web::{web, HttpResponse};

use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "PostgreSQL and Redis answer, and the revoked sessions are loaded.", body = Object),
        (status = 503, description = "PostgreSQL, Redis or the revoked sessions are not available.", body = domain::ErrorBody),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    use web_kit::health::{postgres_ready, readiness, redis_ready};
    let (postgres, redis) = tokio::join!(postgres_ready(&state.db), redis_ready(&state.redis));
    let revocations = state.revocations.is_ready();
    readiness(&[("postgres", postgres), ("redis", redis), ("revocations", revocations)], Default::default())
}
