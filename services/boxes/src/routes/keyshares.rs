//! Key shares (§7.12): the server's share of a box key, stored and returned exactly as received.
//! Only members of the share's box may add or read shares. Shares are never logged.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use domain::b64::{limits, B64u};
use domain::input::query_id;
use domain::keyshare::KeyShareCreate;
use domain::{BoxId, Detail, ErrorBody, IdentityId, Origin};

use crate::auth;
use crate::error::ApiResult;
use crate::idempotency::{self, Claim};
use crate::state::AppState;
use crate::store::{self, GenericClient};

const NOT_MEMBER: &str = "not_member";

async fn require_member<C: GenericClient>(c: &C, box_id: BoxId, who: IdentityId) -> ApiResult<()> {
    if store::membership::is_member(c, box_id, who).await? {
        Ok(())
    } else {
        Err(ErrorBody::box_rule(NOT_MEMBER).into())
    }
}

/// `POST /box-key-shares`: adds a share to a box the caller belongs to; existing shares stay.
/// With an `Idempotency-Key` (issue 17) the answer is stored in the insert's transaction and a
/// retry gets it back (`crate::idempotency`).
#[tracing::instrument(skip_all)]
pub async fn create(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> ApiResult<HttpResponse> {
    let caller = auth::authenticate(&req, &state).await?;
    let body = web_kit::body::json_body(&req, payload).await?;
    let input = KeyShareCreate::parse(&body)?;
    let claim = Claim::from_request(&req, &body)?;
    let me = caller.id();
    let mut client = web_kit::metrics::pool_get(&state.db).await?;
    let tx = client.transaction().await?;
    if let Some(claim) = &claim {
        if let Some(done) = idempotency::begin(&tx, me, claim).await? {
            return Ok(idempotency::replay(done.status, done.body.unwrap_or_default()));
        }
    }
    require_member(&tx, input.box_id, me).await?;
    let share = store::keyshares::insert(&tx, input.box_id, me, &input.share)
        .await?
        .ok_or_else(|| ErrorBody::conflict(Origin::Body, "other_share_hash", "other_share_hash is already used"))?;
    if let Some(claim) = &claim {
        idempotency::finish(&tx, me, claim, 201, &share, Some(share.box_id), None).await?;
    }
    web_kit::limits::committing(tx.commit()).await?;
    tracing::info!(box_id = %share.box_id, "key share added");
    Ok(HttpResponse::Created().json(share))
}

/// `GET /box-key-shares/{other_share_hash}`.
#[tracing::instrument(skip_all)]
pub async fn get(req: HttpRequest, state: web::Data<AppState>, hash: web::Path<String>) -> ApiResult<HttpResponse> {
    let caller = auth::authenticate(&req, &state).await?;
    let hash = B64u::parse(&hash, limits::OTHER_SHARE_HASH).map_err(|d| {
        ErrorBody::bad_request(Origin::Path, "other_share_hash must be unpadded url-safe base64")
            .with("other_share_hash", d)
    })?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    let share = store::keyshares::get(&client, hash.as_str())
        .await?
        .ok_or_else(|| ErrorBody::not_found(Origin::Path, "other_share_hash"))?;
    require_member(&client, share.box_id, caller.id()).await?;
    Ok(HttpResponse::Ok().json(share))
}

/// `GET /box-key-shares/encrypted-invitation-key-share?box_id=`: the newest share's encrypted
/// invitation share, as a bare JSON string.
#[tracing::instrument(skip_all)]
pub async fn encrypted_invitation_key_share(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let caller = auth::authenticate(&req, &state).await?;
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string()).map_err(|_| {
        ErrorBody::bad_request(Origin::Query, "malformed query string").with("box_id", Detail::Malformed)
    })?;
    let box_id: BoxId = query_id(query.get("box_id").map(String::as_str), "box_id")?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    require_member(&client, box_id, caller.id()).await?;
    let eiks = store::keyshares::newest_for_box(&client, box_id)
        .await?
        .and_then(|s| s.encrypted_invitation_key_share)
        .ok_or_else(|| {
            ErrorBody::new(
                domain::ErrorCode::NotFound,
                Origin::NotDefined,
                "the box has no encrypted invitation key share",
            )
            .with("encrypted_invitation_key_share", Detail::NotFound)
        })?;
    Ok(HttpResponse::Ok().json(eiks))
}
