//! Unread counters (§7.10): the REST ack resets the caller's counter of a box.

use actix_web::{web, HttpRequest, HttpResponse};
use domain::boxes::parse_ack;
use domain::input::path_id;
use domain::realtime::{types, Ack, Envelope};
use domain::{BoxId, Detail, ErrorBody, Origin};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::notify::Outbox;
use crate::state::AppState;

/// `PUT /boxes/{id}/new-events-count/ack`, body `{"identity_id"}` naming the caller. Membership is
/// not checked and the call is idempotent.
#[tracing::instrument(skip_all, fields(box_id = %id))]
#[utoipa::path(
    put,
    path = "/boxes/{id}/new-events-count/ack",
    tag = "boxes",
    params(("id" = uuid::Uuid, Path, description = "The box.")),
    request_body(content = domain::openapi::AckBody, content_type = "application/json"),
    responses(
        (status = 204, description = "The unread count is reset."),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`id`, `identity_id`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
    )
)]
pub async fn ack(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let box_id: BoxId = path_id(&id, "id")?;
    let identity = parse_ack(&web_kit::body::json_body(&req, payload).await?)?;
    if identity != caller.id() {
        return Err(ErrorBody::forbidden(Origin::Body, "identity_id must be the caller")
            .with("identity_id", Detail::Forbidden)
            .into());
    }
    let mut outbox = Outbox::new();
    outbox.reset(identity, box_id);
    outbox.publish(identity, &Envelope::new(types::ACK, Ack { sender_id: identity, box_id }));
    outbox.send(&state.redis, state.history).await;
    Ok(HttpResponse::NoContent().finish())
}
