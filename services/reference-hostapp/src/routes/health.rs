//! Liveness and readiness: the reference hostapp has no dependencies, so both are the same.

use actix_web::HttpResponse;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}
