//! Request bodies: `Content-Type: application/json` (400 `{"Content-Type":"invalid"}`), at most
//! 64 KiB enforced while reading (413, nothing beyond the cap is buffered), and JSON syntax
//! (400 `{"body":"malformed"}`). Handlers call these after authentication, so the order of checks
//! of §3.7 holds. The body must arrive within the time limit of [`crate::limits`] (408).

use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{web, HttpRequest};
use domain::ErrorBody;
use futures_util::StreamExt;
use serde_json::Value;

use crate::limits::Limits;

/// Largest request body (§2.4).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Reads the raw body, refusing more than [`BODY_LIMIT`] bytes, a body that does not arrive in
/// time (408) and, when too many bodies are being read already, any more (503).
pub async fn read_capped(req: &HttpRequest, payload: web::Payload) -> Result<web::Bytes, ErrorBody> {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(ErrorBody::too_large());
    }
    let limits = req.app_data::<Limits>().cloned().unwrap_or_default();
    let Some(_permit) = limits.body_read_permit() else {
        return Err(ErrorBody::unavailable("too many request bodies are being received"));
    };
    crate::limits::paused(async {
        tokio::time::timeout(limits.body_read_timeout, read_all(payload))
            .await
            .unwrap_or_else(|_| Err(ErrorBody::body_timeout()))
    })
    .await
}

async fn read_all(mut payload: web::Payload) -> Result<web::Bytes, ErrorBody> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ErrorBody::malformed_body())?;
        if body.len() + chunk.len() > BODY_LIMIT {
            return Err(ErrorBody::too_large());
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
pub async fn json_body(req: &HttpRequest, payload: web::Payload) -> Result<Value, ErrorBody> {
    if !is_json(req) {
        return Err(ErrorBody::bad_content_type());
    }
    let bytes = read_capped(req, payload).await?;
    serde_json::from_slice(&bytes).map_err(|_| ErrorBody::malformed_body())
}

/// An optional JSON body: `None` when the request has no body at all.
pub async fn optional_json_body(req: &HttpRequest, payload: web::Payload) -> Result<Option<Value>, ErrorBody> {
    let bytes = read_capped(req, payload).await?;
    if bytes.is_empty() {
        return Ok(None);
    }
    if !is_json(req) {
        return Err(ErrorBody::bad_content_type());
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|_| ErrorBody::malformed_body())
}
