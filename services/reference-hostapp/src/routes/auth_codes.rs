//! `POST /_test/auth-codes`: mints a one-time auth code for a fixture user (tests and demos).

use actix_web::{web, HttpRequest, HttpResponse};
use domain::error::{Detail, ErrorBody, Origin};
use domain::input::{Obj, Report};
use serde_json::Value;

use crate::error::ApiError;
use crate::startup::AppState;

pub const BODY_LIMIT: usize = 64 * 1024;

/// `{reference}` → 200 `{"auth_code"}`; an unknown reference is 404.
#[tracing::instrument(skip_all)]
pub async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !is_json(&req) {
        return Err(ErrorBody::bad_content_type().into());
    }
    if body.len() > BODY_LIMIT {
        return Err(ErrorBody::too_large().into());
    }
    let value: Value = serde_json::from_slice(&body).map_err(|_| ErrorBody::malformed_body())?;
    let o = Obj::body(&value)?;
    let mut r = Report::new();
    let reference = o.str("reference", true, &mut r);
    if reference.is_some_and(str::is_empty) {
        r.fail("reference", Detail::Invalid);
    }
    let reference = r.finish(reference)?;
    if state.users.get(reference).is_none() {
        return Err(ErrorBody::not_found(Origin::Body, "reference").into());
    }
    let code = state.grants.issue_code(reference);
    tracing::info!(reference, code_len = code.len(), "auth code issued");
    Ok(HttpResponse::Ok().json(serde_json::json!({"auth_code": code})))
}

/// `Content-Type: application/json`, parameters allowed.
pub fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}
