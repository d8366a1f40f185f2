//! Key shares (§7.12): the server's share of a box key, stored and returned exactly as received.
//! Only members of the share's box may add or read shares. Shares are never logged.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use domain::b64::{limits, B64u};
use domain::input::query_id;
use domain::keyshare::KeyShareCreate;
use domain::{BoxId, Detail, ErrorBody, Origin};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::idempotency::{self, Claim};
use crate::rules::require_member;
use crate::state::AppState;
use crate::store::{self, GenericClient};

/// `POST /box-key-shares`: adds a share to a box the caller belongs to; existing shares stay.
/// With an `Idempotency-Key` (issue 17) the answer is stored in the insert's transaction and a
/// retry gets it back (`crate::idempotency`).
#[tracing::instrument(skip_all)]
#[utoipa::path(
    post,
    path = "/box-key-shares",
    tag = "key shares",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry answer as the first attempt did (README).")),
    request_body(content = domain::openapi::KeyShareCreateBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The key share.", body = domain::keyshare::KeyShare),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`misakey_share`, `other_share_hash`, `encrypted_invitation_key_share`, `box_id`, `Idempotency-Key`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
        (status = 409, description = "`other_share_hash` is already used.", body = domain::ErrorBody),
        (status = 422, description = "The `Idempotency-Key` was used with another request: `details.Idempotency-Key = invalid`.", body = domain::ErrorBody),
    )
)]
pub async fn create(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
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
#[utoipa::path(
    get,
    path = "/box-key-shares/{other_share_hash}",
    tag = "key shares",
    params(("other_share_hash" = String, Path, min_length = 1, max_length = 512, pattern = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$", description = "The hash of the other share.")),
    responses(
        (status = 200, description = "The key share.", body = domain::keyshare::KeyShare),
        (status = 400, description = "`details.other_share_hash` is `invalid` or `malformed`.", body = domain::ErrorBody),
        (status = 404, description = "No such share: `details.other_share_hash = not_found`.", body = domain::ErrorBody),
    )
)]
pub async fn get(caller: Caller, state: web::Data<AppState>, hash: web::Path<String>) -> ApiResult<HttpResponse> {
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
#[utoipa::path(
    get,
    path = "/box-key-shares/encrypted-invitation-key-share",
    tag = "key shares",
    params(("box_id" = uuid::Uuid, Query, description = "The box.")),
    responses(
        (status = 200, description = "The newest share's encrypted invitation key share.", body = Object),
        (status = 400, description = "`details.box_id` is `required` or `malformed`.", body = domain::ErrorBody),
        (status = 404, description = "The box has no such share: `details.encrypted_invitation_key_share = not_found`.", body = domain::ErrorBody),
    )
)]
pub async fn encrypted_invitation_key_share(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
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
