//! `GET /.well-known/jwks.json`: the public key that verifies access tokens (§3.1).

use actix_web::{web, HttpResponse};

use crate::startup::AppState;

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(serde_json::json!({"keys": [state.jwk]}))
}
