//! Box events (§6, §7.7, §7.8): posting one event with the rules of §6.3 (`crate::rules`), and
//! listing the visible events, folded (§6.5).
//!
//! Posting runs in one transaction that starts by locking the box row, so membership checks, the
//! sequence number and every derived row (members, auto access rules, key shares, crypto actions,
//! kicks) are consistent. Realtime messages and counters (§6.4) are sent after commit.

use actix_web::{web, HttpRequest, HttpResponse};
use domain::event::{EventType, NewEvent};
use domain::input::{path_id, Page};
use domain::{BoxId, Detail, ErrorBody, IdentityId, Origin};
use serde_json::Value;

use super::boxes::{page, total_count};
use crate::auth::{self, Caller, Pending};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{self, Claim};
use crate::load::{self, EventContext};
use crate::notify::Outbox;
use crate::posts::{Posted, Refused};
use crate::rules;
use crate::state::AppState;
use crate::store::boxes::BoxRow;
use crate::store::events::EventRow;
use crate::store::idempotency::Stored;
use crate::store::pipelined::NewMessage;
use crate::store::{self, GenericClient};

/// Default and maximum page size of `GET /boxes/{id}/events` (§2.5).
const EVENTS_DEFAULT: i64 = 50;
const EVENTS_MAX: i64 = 200;

/// `POST /boxes/{id}/events` (§7.7).
///
/// Messages (`msg.text`, `msg.file`), by far the most frequent, take a shorter path with the
/// same outcome: they are committed in groups ([`crate::posts`]), each group one pipelined
/// transaction with the identity check of authentication, the box locks, the membership checks,
/// the inserts and the member lists ([`store::pipelined::post_messages`]). Every other type goes
/// through [`rules::apply`].
#[utoipa::path(
    post,
    path = "/boxes/{id}/events",
    tag = "events",
    params(("id" = uuid::Uuid, Path, description = "The box."), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry answer as the first attempt did (README).")),
    request_body(content = domain::openapi::NewEventBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The event.", body = Object),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`id`, `type`, `content`, `content.<field>`, `referrer_id`, `extra`, `extra.<field>`, `Idempotency-Key`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
        (status = 404, description = "`referrer_id` (or an identity of the change) does not exist: `details.<field> = not_found`.", body = domain::ErrorBody),
        (status = 409, description = "Already a member (`details.type = conflict`), or `extra.other_share_hash` is already used.", body = domain::ErrorBody),
        (status = 410, description = "The referred message was deleted: `details.referrer_id = invalid`.", body = domain::ErrorBody),
        (status = 429, description = "Too many invitations from this identity (README, \"Rate limits\").", body = domain::ErrorBody),
        (status = 422, description = "The `Idempotency-Key` was used with another request: `details.Idempotency-Key = invalid`.", body = domain::ErrorBody),
    )
)]
pub async fn post(
    pending: Pending,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    pending.revocation(&state)?;
    let me = pending.id();
    // Steps 2 to 4 of §3.7 need no database; their failures wait for the identity check (step 1).
    let parsed = match pending.precheck(&req) {
        Ok(()) => parse_post(&req, payload, &path).await,
        Err(e) => Err(e),
    };
    let parsed = parsed.and_then(|(box_id, new, body)| Ok((box_id, new, Claim::from_request(&req, &body)?)));
    let (box_id, new, claim) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            pending.finish(&req, auth::known_identity(&state, me).await?)?;
            return Err(e);
        }
    };
    // A message event with an idempotency key takes the general path, which can store its answer.
    let caller = match grouped_message(box_id, me, &new) {
        Some(message) if claim.is_none() => match post_grouped(&req, &state, pending, message).await? {
            Ok(response) => return Ok(response),
            // An edit or a deletion the group did not let in runs alone, by the caller already known.
            Err(caller) => caller,
        },
        _ => pending.finish(&req, auth::known_identity(&state, me).await?)?,
    };
    let me = caller.id();
    if matches!(new, NewEvent::AccessAdd { auto_invite: Some(_), .. }) {
        state.charge_invitation(me).await?;
    }

    let mut client = web_kit::metrics::pool_get(&state.db).await?;
    let tx = client.transaction().await?;
    if let Some(claim) = &claim {
        if let Some(done) = idempotency::begin(&tx, me, claim).await? {
            return replay_event(&tx, me, done).await;
        }
    }
    let Some(bx) = store::boxes::lock(&tx, box_id).await? else {
        let reason = if new.kind() == EventType::MemberJoin { "no_access" } else { "not_member" };
        return Err(ErrorBody::box_rule(reason).into());
    };
    let mut effects = rules::apply(&tx, &bx, me, &new).await?;
    effects.then.store(&tx, state.notifications).await?;
    let rows: Vec<EventRow> = std::iter::once(effects.posted.clone()).chain(effects.then.events().cloned()).collect();
    // With a key the answer is built and stored before the commit, in the same transaction.
    let loaded = match &claim {
        Some(claim) => {
            let ctx = EventContext::load(&tx, &rows, false).await?;
            let answer = ctx.render(&effects.posted, bx.is_admin(me));
            idempotency::finish(&tx, me, claim, 201, &answer, Some(box_id), Some(effects.posted.id)).await?;
            Some(ctx)
        }
        None => None,
    };
    web_kit::limits::committing(tx.commit()).await?;
    tracing::debug!(box_id = %box_id, event_id = %effects.posted.id, kind = new.kind().as_str(), "event posted");

    let mut outbox = Outbox::new();
    let ctx = match loaded {
        Some(ctx) => ctx,
        None => EventContext::load(&client, &rows, false).await?,
    };
    effects.then.fill(&mut outbox, &ctx, &bx);
    let response = ctx.render(&effects.posted, bx.is_admin(me));
    outbox.send(&state.redis, state.history).await;
    state.files.blobs.delete_all(&effects.released).await;
    Ok(HttpResponse::Created().json(response))
}

/// After the commit of [`rules::message`] for an uploaded file: `event.new` and counters; returns the event as
/// answered to its sender.
pub(super) async fn announce_message<C: GenericClient>(
    state: &AppState,
    c: &C,
    bx: &BoxRow,
    me: IdentityId,
    effects: rules::Effects,
) -> ApiResult<domain::event::Event> {
    let rows = vec![effects.posted.clone()];
    let ctx = EventContext::load(c, &rows, false).await?;
    let mut outbox = Outbox::new();
    effects.then.fill(&mut outbox, &ctx, bx);
    let response = ctx.render(&effects.posted, bx.is_admin(me));
    outbox.send(&state.redis, state.history).await;
    Ok(response)
}

/// Step 4 of §3.7 for a posted event: the body, the path, the event.
async fn parse_post(req: &HttpRequest, payload: web::Payload, path: &str) -> ApiResult<(BoxId, NewEvent, Value)> {
    let body = web_kit::body::json_body(req, payload).await?;
    let box_id: BoxId = path_id(path, "id")?;
    let new = NewEvent::parse(&body)?;
    Ok((box_id, new, body))
}

/// The stored answer of an event post sent again with its key. An answer whose message was
/// deleted since lost its ciphertext: the event is rendered as it is now instead.
async fn replay_event<C: GenericClient>(c: &C, me: IdentityId, done: Stored) -> ApiResult<HttpResponse> {
    if let Some(body) = done.body {
        return Ok(idempotency::replay(done.status, body));
    }
    let (Some(box_id), Some(event_id)) = (done.box_id, done.event_id) else {
        return Err(anyhow::anyhow!("a wiped idempotent answer without its event").into());
    };
    let bx = store::boxes::get(c, box_id).await?;
    let row = store::events::get_in_box(c, box_id, event_id).await?;
    let (Some(bx), Some(row)) = (bx, row) else {
        return Err(anyhow::anyhow!("the event of an idempotent answer is gone").into());
    };
    let event = load::events_for(c, &[row], bx.is_admin(me)).await?.pop();
    let body = serde_json::to_string(&event).map_err(anyhow::Error::from)?;
    Ok(idempotency::replay(done.status, body))
}

/// How long before the request's own deadline PostgreSQL must have reached the end of a post's
/// transaction: room for the answer to travel back and for clock differences between hosts.
const COMMIT_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);

/// The message events committed in groups (`crate::posts`): messages, and their edits and
/// deletions.
fn grouped_message(box_id: BoxId, me: IdentityId, new: &NewEvent) -> Option<NewMessage> {
    let referrer_id = match new {
        NewEvent::MsgText { .. } | NewEvent::MsgFile { .. } => None,
        NewEvent::MsgEdit { referrer_id, .. } | NewEvent::MsgDelete { referrer_id } => Some(*referrer_id),
        _ => return None,
    };
    Some(NewMessage {
        id: domain::EventId::new_v4(),
        box_id,
        sender: me,
        kind: new.kind(),
        content: new.stored_content(),
        referrer_id,
    })
}

/// A message event committed with whatever others are being posted (`crate::posts`), which also
/// sends the effects of §6.4 after the commit. A message needs its sender to be a member (an
/// unknown box is `not_member` too); an edit or a deletion the group did not let in is handed
/// back, with the authenticated caller, to be run alone by [`rules::apply`].
async fn post_grouped(
    req: &HttpRequest,
    state: &AppState,
    pending: Pending,
    message: NewMessage,
) -> ApiResult<Result<HttpResponse, Caller>> {
    let me = pending.id();
    let (box_id, kind) = (message.box_id, message.kind);
    let outcome = state.posts.post(message, web_kit::limits::deadline(COMMIT_MARGIN)).await?;
    let caller = pending.finish(req, !matches!(outcome, Err(Refused::UnknownSender)))?;
    let Posted { sender, bx, event } = match outcome {
        Ok(posted) => posted,
        Err(Refused::Alone) => return Ok(Err(caller)),
        Err(Refused::UnknownSender | Refused::NotMember) => return Err(rules::not_member().into()),
    };
    // Debug level, as the publish's line: at info the two lines cost a post about a fifth of its
    // instructions (BENCHMARKS.md, "Cheaper posts"); the request's own line stays.
    tracing::debug!(box_id = %box_id, event_id = %event.id, kind = kind.as_str(), "event posted");
    let response = EventContext::of_identities([sender]).render_stored(&event, bx.is_admin(me));
    Ok(Ok(HttpResponse::Created().json(response)))
}

/// `GET /boxes/{id}/events` (§7.8): visible events, newest first, folded; with `?after=<seq>`
/// (issue 17) what changed after that event, oldest first.
///
/// The revocation check (Redis) and one pipelined round trip to PostgreSQL
/// ([`store::pipelined::page_folded`]: identity, box and membership, the folded page) run
/// concurrently; their answers are then taken in the order of §3.7.
#[utoipa::path(
    get,
    path = "/boxes/{id}/events",
    tag = "events",
    params(("id" = uuid::Uuid, Path, description = "The box."), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)."), ("limit" = Option<i64>, Query, minimum = 1, maximum = 50, description = "Page size (default 10, at most 50)."), ("after" = Option<i64>, Query, minimum = 0, description = "Only the events after this sequence number, oldest first.")),
    responses(
        (status = 200, description = "The visible events, newest first (oldest first with `after`).", body = [domain::event::Event]),
        (status = 400, description = "`details` keys: `id`, `offset`, `limit`, `after`, `query`.", body = domain::ErrorBody),
    )
)]
pub async fn list(
    pending: Pending,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let me = pending.id();
    let parsed = match pending.precheck(&req) {
        Ok(()) => parse_list(&req, &path),
        Err(e) => Err(e),
    };
    let (box_id, page, after) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            pending.revocation(&state)?;
            pending.finish(&req, auth::known_identity(&state, me).await?)?;
            return Err(e);
        }
    };
    let read = async {
        let client = web_kit::metrics::pool_get(&state.db).await?;
        let read = store::pipelined::page_folded(&client, box_id, me, page, after).await?;
        Ok::<_, ApiError>((client, read))
    };
    pending.revocation(&state)?;
    let (client, read) = read.await?;
    pending.finish(&req, read.reader_known)?;
    let bx = match read.bx {
        Some((bx, true)) => bx,
        _ => return Err(rules::not_member().into()),
    };
    let events = load::folded_page_for(&client, read.rows, bx.is_admin(me)).await?;
    Ok(HttpResponse::Ok().json(events))
}

/// Step 4 of §3.7 for a listing: the path, then the page and the cursor (`after`, a `seq`).
fn parse_list(req: &HttpRequest, path: &str) -> ApiResult<(BoxId, Page, Option<i64>)> {
    let box_id: BoxId = path_id(path, "id")?;
    let page = page(req, EVENTS_DEFAULT, EVENTS_MAX)?;
    let after = match super::boxes::query(req)?.get("after") {
        None => None,
        Some(raw) => {
            Some(raw.parse::<i64>().ok().filter(|n| *n >= 0 && raw.bytes().all(|b| b.is_ascii_digit())).ok_or_else(
                || ErrorBody::bad_request(Origin::Query, "invalid cursor").with("after", Detail::Invalid),
            )?)
        }
    };
    Ok((box_id, page, after))
}

/// `HEAD /boxes/{id}/events` (§7.8).
#[utoipa::path(
    head,
    path = "/boxes/{id}/events",
    tag = "events",
    params(("id" = uuid::Uuid, Path, description = "The box.")),
    responses(
        (status = 204, description = "The count, in `X-Total-Count`.", headers(("X-Total-Count" = i64, description = "How many there are."))),
        (status = 400, description = "A malformed id: `details.id = malformed`.", body = domain::ErrorBody),
    )
)]
pub async fn count(caller: Caller, state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let box_id: BoxId = path_id(&path, "id")?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    rules::require_member(&client, box_id, caller.id()).await?;
    Ok(total_count(store::events::count_visible(&client, box_id).await?))
}
