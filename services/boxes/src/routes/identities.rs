//! Identities (§8): the caller's own view, the public profile, the caller's public keys, and the
//! public keys of whoever has a given identifier (issue 17).

use actix_web::{web, HttpRequest, HttpResponse};
use domain::event::Restriction;
use domain::identity::PublicKeysUpdate;
use domain::input::{has_control, path_id};
use domain::{Detail, ErrorBody, IdentityId, Origin};

use crate::auth::{Caller, MaybeCaller};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store;

fn unknown_identity() -> ApiError {
    ErrorBody::not_found(Origin::Path, "id").into()
}

/// `GET /identities/{id}`: the self view (§5.2).
#[tracing::instrument(skip_all, fields(identity = %id))]
#[utoipa::path(
    get,
    path = "/identities/{id}",
    tag = "identities",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity.")),
    responses(
        (status = 200, description = "The caller's identity.", body = domain::identity::Identity),
        (status = 400, description = "A malformed id: `details.id = malformed`.", body = domain::ErrorBody),
        (status = 404, description = "`details.id = not_found`.", body = domain::ErrorBody),
    )
)]
pub async fn get(caller: Caller, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = caller.own_path(&id)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    let record = store::identities::get(&client, id).await?.ok_or_else(unknown_identity)?;
    Ok(HttpResponse::Ok().json(record.self_view()))
}

/// `GET /identities/{id}/profile`: public; identifier fields only for the identity itself.
#[tracing::instrument(skip_all, fields(identity = %id))]
#[utoipa::path(
    get,
    path = "/identities/{id}/profile",
    tag = "identities",
    params(("id" = uuid::Uuid, Path, description = "Any identity.")),
    responses(
        (status = 200, description = "The identity's profile.", body = domain::identity::Profile),
        (status = 400, description = "A malformed id: `details.id = malformed`.", body = domain::ErrorBody),
        (status = 404, description = "`details.id = not_found`.", body = domain::ErrorBody),
    )
)]
pub async fn profile(
    MaybeCaller(caller): MaybeCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id: IdentityId = path_id(&id, "id")?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    let record = store::identities::get(&client, id).await?.ok_or_else(unknown_identity)?;
    let is_self = caller.is_some_and(|c| c.id() == id);
    Ok(HttpResponse::Ok().json(record.profile(is_self)))
}

/// `PUT /identities/{id}/public-keys`: replaces the keys that are given (§8).
#[tracing::instrument(skip_all, fields(identity = %id))]
#[utoipa::path(
    put,
    path = "/identities/{id}/public-keys",
    tag = "identities",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity.")),
    request_body(content = domain::openapi::PublicKeysBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The caller's identity.", body = domain::identity::Identity),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`id`, `pubkey`, `non_identified_pubkey`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
        (status = 404, description = "`details.id = not_found`.", body = domain::ErrorBody),
    )
)]
pub async fn public_keys(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let id: IdentityId = path_id(&id, "id")?;
    let update = PublicKeysUpdate::parse(&web_kit::body::json_body(&req, payload).await?)?;
    caller.require_self(id)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
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

/// `GET /identities/pubkey?identifier_value=<email or E.164 phone>` (§8, REF; issue 17): the keys
/// to encrypt an invitation for each identity an `identifier` rule with that value lets in (its
/// `non_identified_pubkey`, failing that its `pubkey`), oldest identity first; `[]` when there
/// is none. Only verified identifiers count, as for the rules. Each call is charged against
/// `RATE_PUBKEY_LOOKUPS_PER_IDENTITY`: the answer tells whether someone with that address uses
/// the service (README, "Sharing").
#[tracing::instrument(skip_all)]
#[utoipa::path(
    get,
    path = "/identities/pubkey",
    tag = "identities",
    params(("identifier_value" = String, Query, max_length = 320, description = "An email address or an E.164 phone number.")),
    responses(
        (status = 200, description = "The public keys of the identities with that identifier, oldest first.", body = [String]),
        (status = 400, description = "`details.identifier_value` is `required`, `malformed` or `invalid`.", body = domain::ErrorBody),
        (status = 429, description = "Too many lookups from this identity.", body = domain::ErrorBody),
    )
)]
pub async fn pubkeys_by_identifier(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let query = super::boxes::query(&req)?;
    let value = match query.get("identifier_value") {
        None => Err(Detail::Required),
        Some(v) => match Restriction::identifier(v) {
            Some(Restriction::Identifier(value)) => Ok(value),
            _ => Err(if has_control(v) { Detail::Invalid } else { Detail::Malformed }),
        },
    }
    .map_err(|d| {
        ErrorBody::bad_request(Origin::Query, "identifier_value must be an email or an E.164 phone")
            .with("identifier_value", d)
    })?;
    state.charge_pubkey_lookup(caller.id()).await?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    let mut keys: Vec<String> = Vec::new();
    for record in store::identities::with_verified_identifier(&client, &value).await? {
        if let Some(key) = record.invitation_key().filter(|k| !keys.iter().any(|seen| seen == k)) {
            keys.push(key.to_owned());
        }
    }
    Ok(HttpResponse::Ok().json(keys))
}
