//! Reading JSON request bodies after authentication, so the order of checks of §3.7 holds:
//! Content-Type (400), size (413), then JSON syntax (400 `{"body": "malformed"}`).

use actix_web::{web, HttpRequest};
use domain::ErrorBody;
use futures_util::StreamExt;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// The body limit of §2.4.
pub const MAX_BODY: usize = 64 * 1024;

pub async fn read_json(req: &HttpRequest, mut payload: web::Payload) -> ApiResult<Value> {
    let is_json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ErrorBody::bad_content_type().into());
    }
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::Client(ErrorBody::malformed_body()))?;
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(ErrorBody::too_large().into());
        }
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes).map_err(|_| ErrorBody::malformed_body().into())
}
