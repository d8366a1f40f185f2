//! Stored notifications of the caller (issue 17, beside §6.4): the list, the unread count, and
//! the acknowledgement. Only the identity itself may read or acknowledge them (§3.5).

use actix_web::{web, HttpRequest, HttpResponse};
use domain::input::path_id;
use domain::notification::{Acknowledgement, LIST_DEFAULT, LIST_MAX};
use domain::{ErrorBody, IdentityId, Origin};

use super::boxes::{page, total_count};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::store;

/// `GET /identities/{id}/notifications`: newest first, paged with `offset`/`limit`.
#[tracing::instrument(skip_all, fields(identity = %id))]
#[utoipa::path(
    get,
    path = "/identities/{id}/notifications",
    tag = "notifications",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity."), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)."), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20, at most 100).")),
    responses(
        (status = 200, description = "The caller's notifications, newest first.", body = [domain::notification::ListedNotification]),
        (status = 400, description = "`details` keys: `id`, `offset`, `limit`, `query`.", body = domain::ErrorBody),
    )
)]
pub async fn list(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id: IdentityId = path_id(&id, "id")?;
    let page = page(&req, LIST_DEFAULT, LIST_MAX)?;
    caller.require_self(id)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    let items = store::notifications::list(&client, id, state.notifications, page).await?;
    Ok(HttpResponse::Ok().json(items))
}

/// `HEAD /identities/{id}/notifications`: 204 with `X-Total-Count` = the unacknowledged ones.
#[tracing::instrument(skip_all, fields(identity = %id))]
#[utoipa::path(
    head,
    path = "/identities/{id}/notifications",
    tag = "notifications",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity.")),
    responses(
        (status = 204, description = "The count, in `X-Total-Count`.", headers(("X-Total-Count" = i64, description = "How many there are."))),
        (status = 400, description = "A malformed id: `details.id = malformed`.", body = domain::ErrorBody),
    )
)]
pub async fn count(caller: Caller, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = caller.own_path(&id)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    Ok(total_count(store::notifications::count_unread(&client, id, state.notifications).await?))
}

/// `PUT /identities/{id}/notifications/acknowledgement` `{"until_id"}`: that notification and
/// every older one are acknowledged. 204; an `until_id` that is not one of the caller's kept
/// notifications is 404 `{"until_id": "not_found"}`.
#[tracing::instrument(skip_all, fields(identity = %id))]
#[utoipa::path(
    put,
    path = "/identities/{id}/notifications/acknowledgement",
    tag = "notifications",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity.")),
    request_body(content = domain::openapi::NotificationAckBody, content_type = "application/json"),
    responses(
        (status = 204, description = "That notification and the older ones are acknowledged."),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`id`, `until_id`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
        (status = 404, description = "`details.until_id = not_found`.", body = domain::ErrorBody),
    )
)]
pub async fn acknowledge(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let body = web_kit::body::json_body(&req, payload).await?;
    let id: IdentityId = path_id(&id, "id")?;
    let ack = Acknowledgement::parse(&body)?;
    caller.require_self(id)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    if !store::notifications::acknowledge(&client, id, ack.until_id, state.notifications).await? {
        return Err(ErrorBody::not_found(Origin::Body, "until_id").into());
    }
    Ok(HttpResponse::NoContent().finish())
}
