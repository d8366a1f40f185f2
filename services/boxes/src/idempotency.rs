//! `Idempotency-Key` on `POST /boxes`, `POST /boxes/{id}/events`, `POST /boxes/{id}/batch-events`,
//! `POST /box-users/{id}/contact` and `POST /box-key-shares` (issue 17). The answer of a
//! successful write sent with a key is stored in the write's own transaction
//! (`store::idempotency`), so a crash can never keep an answer without its effect nor an effect
//! without its answer. Within 24 hours, the same identity sending the same key again:
//!
//! - with the same request (method, path and JSON body, compared by SHA-256 of its canonical
//!   form), gets the stored status and body, with `Idempotent-Replayed: true`, and nothing is done;
//! - with another request, gets 422 `unprocessable_entity` `{"Idempotency-Key": "invalid"}`;
//! - while the first request is still running (its transaction holds the key's advisory lock),
//!   gets 409 `conflict` `{"Idempotency-Key": "conflict"}` at once and may retry later.
//!
//! Refusals (4xx) are not stored: the failed write changed nothing, so a retry runs again.

use actix_web::{HttpRequest, HttpResponse};
use domain::{BoxId, Detail, ErrorBody, EventId, IdentityId, Origin};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::ApiResult;
use crate::store::idempotency::{self as stored, Stored};
use crate::store::GenericClient;

pub const HEADER: &str = "Idempotency-Key";

/// Longest key accepted.
const MAX_KEY: usize = 255;

/// A write sent with a key: the key and the fingerprint of the request.
#[derive(Debug, Clone)]
pub struct Claim {
    pub key: String,
    pub hash: Vec<u8>,
}

impl Claim {
    /// `None` without the header. A key is 1 to 255 visible ASCII characters; anything else
    /// (several headers included) is 400 `{"Idempotency-Key": "invalid"}`, origin `headers`.
    pub fn from_request(req: &HttpRequest, body: &serde_json::Value) -> ApiResult<Option<Claim>> {
        let mut values = req.headers().get_all(HEADER);
        let Some(value) = values.next() else { return Ok(None) };
        let key = value
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY && k.bytes().all(|b| b.is_ascii_graphic()))
            .filter(|_| values.next().is_none())
            .ok_or_else(|| {
                ErrorBody::bad_request(Origin::Headers, "invalid idempotency key").with(HEADER, Detail::Invalid)
            })?;
        // serde_json's maps are sorted, so the text is canonical whatever the key order sent.
        let mut h = Sha256::new();
        h.update(req.method().as_str());
        h.update(b" ");
        h.update(req.path().to_ascii_lowercase());
        h.update(b"\n");
        h.update(body.to_string());
        Ok(Some(Claim { key: key.to_owned(), hash: h.finalize().to_vec() }))
    }
}

/// Inside the write's transaction, before its effect: the stored answer to replay, if any.
/// 409 while another request with the key runs, 422 when the key was used for another request.
pub async fn begin<C: GenericClient>(c: &C, me: IdentityId, claim: &Claim) -> ApiResult<Option<Stored>> {
    if !stored::try_lock(c, me, &claim.key).await? {
        return Err(
            ErrorBody::conflict(Origin::Headers, HEADER, "a request with this idempotency key is running").into()
        );
    }
    match stored::get(c, me, &claim.key).await? {
        Some(s) if s.request_hash != claim.hash => {
            Err(ErrorBody::unprocessable(Origin::Headers, HEADER, "this idempotency key was used for another request")
                .into())
        }
        found => Ok(found),
    }
}

/// Inside the write's transaction, after its effect: remembers the answer. `box_id` ties an
/// answer that may hold ciphertext to its box, whose deletion then drops it.
pub async fn finish<C: GenericClient>(
    c: &C,
    me: IdentityId,
    claim: &Claim,
    status: u16,
    body: &impl Serialize,
    box_id: Option<BoxId>,
    event_id: Option<EventId>,
) -> ApiResult<()> {
    let body = serde_json::to_string(body).map_err(anyhow::Error::from)?;
    let answer = Stored { request_hash: claim.hash.clone(), status, body: Some(body), box_id, event_id };
    stored::put(c, me, &claim.key, &answer).await?;
    Ok(())
}

/// A stored answer as sent the first time.
pub fn replay(status: u16, body: String) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(status)
        .insert_header(("Idempotent-Replayed", "true"))
        .content_type("application/json")
        .body(body)
}
