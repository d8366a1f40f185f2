//! `GET /.well-known/jwks.json`: the public keys that verify access tokens (§3.1), the signing
//! one first, then those kept during a rotation.

use actix_web::{web, HttpResponse};

use crate::startup::AppState;

#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "sessions",
    responses(
        (status = 200, description = "The public keys that verify access tokens.", body = Object),
    )
)]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(serde_json::json!({"keys": state.jwks}))
}
