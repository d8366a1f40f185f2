//! Identities (§8): the caller's own view, the public profile, and the caller's public keys.

use actix_web::{web, HttpRequest, HttpResponse};
use domain::identity::PublicKeysUpdate;
use domain::input::path_id;
use domain::{ErrorBody, IdentityId, Origin};

use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store;

fn unknown_identity() -> ApiError {
    ErrorBody::not_found(Origin::Path, "id").into()
}

/// `GET /identities/{id}`: the self view (§5.2).
#[tracing::instrument(skip_all, fields(identity = %id))]
pub async fn get(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let caller = auth::authenticate(&req, &state).await?;
    let id: IdentityId = path_id(&id, "id")?;
    caller.require_self(id)?;
    let client = state.db.get().await?;
    let record = store::identities::get(&client, id).await?.ok_or_else(unknown_identity)?;
    Ok(HttpResponse::Ok().json(record.self_view()))
}

/// `GET /identities/{id}/profile`: public; identifier fields only for the identity itself.
#[tracing::instrument(skip_all, fields(identity = %id))]
pub async fn profile(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let caller = auth::authenticate_optional(&req, &state).await?;
    let id: IdentityId = path_id(&id, "id")?;
    let client = state.db.get().await?;
    let record = store::identities::get(&client, id).await?.ok_or_else(unknown_identity)?;
    let is_self = caller.is_some_and(|c| c.id() == id);
    Ok(HttpResponse::Ok().json(record.profile(is_self)))
}

/// `PUT /identities/{id}/public-keys`: replaces the keys that are given (§8).
#[tracing::instrument(skip_all, fields(identity = %id))]
pub async fn public_keys(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let caller = auth::authenticate(&req, &state).await?;
    let id: IdentityId = path_id(&id, "id")?;
    let update = PublicKeysUpdate::parse(&web_kit::body::json_body(&req, payload).await?)?;
    caller.require_self(id)?;
    let client = state.db.get().await?;
    let record = store::identities::set_keys(
        &client,
        id,
        update.pubkey.as_ref().map(|k| k.as_str()),
        update.non_identified_pubkey.as_ref().map(|k| k.as_str()),
    )
    .await?
    .ok_or_else(unknown_identity)?;
    Ok(HttpResponse::Ok().json(record.self_view()))
}
