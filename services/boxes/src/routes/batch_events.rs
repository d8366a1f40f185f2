//! `POST /boxes/{id}/batch-events` (issue 17; REF `batch-events`, §6.2 said LATER): several
//! access changes (`access.add`, `access.rm`) by the admin, all or nothing, in one transaction.
//! The kicks are decided once, from the rules the whole batch leaves (`crate::rules::access`), so
//! replacing a rule never kicks a member in between. The answer is the created events: the
//! changes in the order sent, then the kicks.

use actix_web::{web, HttpRequest, HttpResponse};
use domain::event::{AccessBatch, EventType, NewEvent};
use domain::input::path_id;
use domain::BoxId;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::idempotency::{self, Claim};
use crate::load::EventContext;
use crate::notify::Outbox;
use crate::rules::{self, access, Consequences};
use crate::state::AppState;
use crate::store;

#[utoipa::path(
    post,
    path = "/boxes/{id}/batch-events",
    tag = "events",
    params(("id" = uuid::Uuid, Path, description = "The box."), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry answer as the first attempt did (README).")),
    request_body(content = domain::openapi::AccessBatchBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The events created.", body = Object),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`id`, `batch_type`, `events`, `events.<i>`, `events.<i>.<field>`, `Idempotency-Key`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
        (status = 404, description = "A referred event does not exist: `details.events.<i>.referrer_id = not_found`.", body = domain::ErrorBody),
        (status = 429, description = "Too many invitations from this identity.", body = domain::ErrorBody),
        (status = 422, description = "The `Idempotency-Key` was used with another request: `details.Idempotency-Key = invalid`.", body = domain::ErrorBody),
    )
)]
pub async fn post(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let body = web_kit::body::json_body(&req, payload).await?;
    let box_id: BoxId = path_id(&path, "id")?;
    let batch = AccessBatch::parse(&body)?;
    let claim = Claim::from_request(&req, &body)?;
    let me = caller.id();
    for _ in batch.changes.iter().filter(|c| matches!(c, NewEvent::AccessAdd { auto_invite: Some(_), .. })) {
        state.charge_invitation(me).await?;
    }

    let mut client = web_kit::metrics::pool_get(&state.db).await?;
    let tx = client.transaction().await?;
    if let Some(claim) = &claim {
        if let Some(done) = idempotency::begin(&tx, me, claim).await? {
            return Ok(idempotency::replay(done.status, done.body.unwrap_or_default()));
        }
    }
    let Some(bx) = store::boxes::lock(&tx, box_id).await? else {
        return Err(rules::not_member().into());
    };
    let applied = access::apply_batch(&tx, &bx, me, &batch.changes).await?;
    let mut then = Consequences::load(&tx, box_id, applied.notifications).await?;
    then.store(&tx, state.notifications).await?;
    let rows: Vec<_> = applied.changes.into_iter().chain(applied.kicks.iter().cloned()).collect();
    for kick in applied.kicks {
        then.kicked(kick);
    }
    let ctx = EventContext::load(&tx, &rows, false).await?;
    let answer: Vec<_> = rows.iter().map(|e| ctx.render(e, true)).collect();
    if let Some(claim) = &claim {
        idempotency::finish(&tx, me, claim, 201, &answer, Some(box_id), None).await?;
    }
    web_kit::limits::committing(tx.commit()).await?;
    let kicked = rows.iter().filter(|e| e.kind == EventType::MemberKick).count();
    tracing::info!(box_id = %box_id, changes = batch.changes.len(), kicked, "access changes applied");

    let mut outbox = Outbox::new();
    then.fill(&mut outbox, &ctx, &bx);
    outbox.send(&state.redis, state.history).await;
    Ok(HttpResponse::Created().json(answer))
}
