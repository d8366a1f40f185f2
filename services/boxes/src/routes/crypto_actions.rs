//! Crypto actions of the caller (§5.7, §8): list oldest first, read one, delete one once processed.
//! Another identity's action answers exactly like an unknown one.

use actix_web::{web, HttpResponse};
use domain::input::path_ids;
use domain::{CryptoActionId, ErrorBody, IdentityId, Origin};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store;

fn unknown_action() -> ApiError {
    ErrorBody::not_found(Origin::Path, "action_id").into()
}

/// `GET /identities/{id}/crypto/actions`: oldest first, capped, not paged.
#[tracing::instrument(skip_all, fields(identity = %id))]
#[utoipa::path(
    get,
    path = "/identities/{id}/crypto/actions",
    tag = "identities",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity.")),
    responses(
        (status = 200, description = "The caller's crypto actions, oldest first.", body = [domain::crypto_action::CryptoAction]),
        (status = 400, description = "A malformed id: `details.id = malformed`.", body = domain::ErrorBody),
    )
)]
pub async fn list(caller: Caller, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = caller.own_path(&id)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    let actions = store::crypto_actions::list(&client, id).await?;
    Ok(HttpResponse::Ok().json(actions))
}

fn parse_path(raw: &(String, String)) -> ApiResult<(IdentityId, CryptoActionId)> {
    Ok(path_ids(raw, ("id", "action_id"))?)
}

/// `GET /identities/{id}/crypto/actions/{action_id}`.
#[tracing::instrument(skip_all)]
#[utoipa::path(
    get,
    path = "/identities/{id}/crypto/actions/{action_id}",
    tag = "identities",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity."), ("action_id" = uuid::Uuid, Path, description = "The crypto action.")),
    responses(
        (status = 200, description = "The crypto action.", body = domain::crypto_action::CryptoAction),
        (status = 400, description = "`details` keys: `id`, `action_id`.", body = domain::ErrorBody),
        (status = 404, description = "`details.action_id = not_found`.", body = domain::ErrorBody),
    )
)]
pub async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, action_id) = parse_path(&path)?;
    caller.require_self(id)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    let action = store::crypto_actions::get(&client, id, action_id).await?.ok_or_else(unknown_action)?;
    Ok(HttpResponse::Ok().json(action))
}

/// `DELETE /identities/{id}/crypto/actions/{action_id}`: deleting again answers 404.
#[tracing::instrument(skip_all)]
#[utoipa::path(
    delete,
    path = "/identities/{id}/crypto/actions/{action_id}",
    tag = "identities",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity."), ("action_id" = uuid::Uuid, Path, description = "The crypto action.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "`details` keys: `id`, `action_id`.", body = domain::ErrorBody),
        (status = 404, description = "`details.action_id = not_found`.", body = domain::ErrorBody),
    )
)]
pub async fn delete(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, action_id) = parse_path(&path)?;
    caller.require_self(id)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    if !store::crypto_actions::delete(&client, id, action_id).await? {
        return Err(unknown_action());
    }
    Ok(HttpResponse::NoContent().finish())
}
