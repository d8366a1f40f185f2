//! Reading request bodies (§2.1, §2.4): JSON content type, a 64 KiB cap enforced while reading,
//! and malformed JSON answered as 400 `{"body": "malformed"}`.

use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{web, HttpRequest};
use domain::ErrorBody;
use futures_util::StreamExt;
use serde_json::Value;

use crate::error::ApiError;

/// Largest request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Reads the raw body, refusing more than [`BODY_LIMIT`] bytes without buffering them.
pub async fn read_capped(req: &HttpRequest, mut payload: web::Payload) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(ErrorBody::too_large().into());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ErrorBody::malformed_body())?;
        if body.len() + chunk.len() > BODY_LIMIT {
            return Err(ErrorBody::too_large().into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// `Content-Type: application/json`, parameters such as `charset` allowed.
pub fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// A required JSON body.
pub async fn json_body(req: &HttpRequest, payload: web::Payload) -> Result<Value, ApiError> {
    if !is_json(req) {
        return Err(ErrorBody::bad_content_type().into());
    }
    let bytes = read_capped(req, payload).await?;
    Ok(serde_json::from_slice(&bytes).map_err(|_| ErrorBody::malformed_body())?)
}

/// An optional JSON body: `None` when the request has no body at all.
pub async fn optional_json_body(req: &HttpRequest, payload: web::Payload) -> Result<Option<Value>, ApiError> {
    let bytes = read_capped(req, payload).await?;
    if bytes.is_empty() {
        return Ok(None);
    }
    if !is_json(req) {
        return Err(ErrorBody::bad_content_type().into());
    }
    Ok(Some(serde_json::from_slice(&bytes).map_err(|_| ErrorBody::malformed_body())?))
}
