//! Per-identity box settings (§7.13): read with defaults, upsert, and tell the caller's sockets.

use actix_web::{web, HttpRequest, HttpResponse};
use domain::boxes::{parse_settings, BoxSetting};
use domain::input::path_ids;
use domain::realtime::{types, Envelope};
use domain::{BoxId, IdentityId};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::notify::Outbox;
use crate::rules::require_member;
use crate::state::AppState;
use crate::store::{self};

fn parse_path(raw: &(String, String)) -> ApiResult<(IdentityId, BoxId)> {
    Ok(path_ids(raw, ("id", "bid"))?)
}

/// `GET /box-users/{id}/boxes/{bid}/settings`: the stored settings, or the defaults.
#[tracing::instrument(skip_all)]
#[utoipa::path(
    get,
    path = "/box-users/{id}/boxes/{bid}/settings",
    tag = "boxes",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity."), ("bid" = uuid::Uuid, Path, description = "The box.")),
    responses(
        (status = 200, description = "The caller's settings of the box.", body = domain::boxes::BoxSetting),
        (status = 400, description = "`details` keys: `id`, `bid`.", body = domain::ErrorBody),
    )
)]
pub async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, box_id) = parse_path(&path)?;
    caller.require_self(id)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    require_member(&client, box_id, id).await?;
    let setting = store::settings::get(&client, id, box_id).await?;
    Ok(HttpResponse::Ok().json(setting))
}

/// `PUT /box-users/{id}/boxes/{bid}/settings`, body `{"muted": bool}`.
#[tracing::instrument(skip_all)]
#[utoipa::path(
    put,
    path = "/box-users/{id}/boxes/{bid}/settings",
    tag = "boxes",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity."), ("bid" = uuid::Uuid, Path, description = "The box.")),
    request_body(content = domain::openapi::SettingsBody, content_type = "application/json"),
    responses(
        (status = 204, description = "Saved."),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`id`, `bid`, `muted`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
    )
)]
pub async fn put(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let (id, box_id) = parse_path(&path)?;
    let muted = parse_settings(&web_kit::body::json_body(&req, payload).await?)?;
    caller.require_self(id)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    require_member(&client, box_id, id).await?;
    store::settings::upsert(&client, id, box_id, muted).await?;
    let mut outbox = Outbox::new();
    outbox.publish(id, &Envelope::new(types::BOX_SETTINGS, BoxSetting { identity_id: id, box_id, muted }));
    outbox.send(&state.redis, state.history).await;
    Ok(HttpResponse::NoContent().finish())
}
