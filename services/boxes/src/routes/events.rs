//! Box events (§6, §7.7, §7.8): posting one event with the rules of §6.3, and listing the
//! visible events, folded (§6.5).
//!
//! Posting runs in one transaction that starts by locking the box row, so membership checks, the
//! sequence number and every derived row (members, auto access rules, key shares, crypto actions,
//! kicks) are consistent. Realtime messages and counters (§6.4) are sent after commit.

use actix_web::{web, HttpRequest, HttpResponse};
use domain::crypto_action::CryptoActionType;
use domain::event::{access_add_content, EventType, NewEvent, Restriction};
use domain::input::{path_id, Page};
use domain::keyshare::NewKeyShare;
use domain::notification::{NewNotification, Notification};
use domain::{BoxId, Detail, ErrorBody, ErrorCode, EventId, IdentityId, Origin};
use serde_json::Value;

use super::boxes::{hash_conflict, page, total_count};
use crate::access;
use crate::auth::{self, authenticate};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{self, Claim};
use crate::notify::Outbox;
use crate::state::AppState;
use crate::store::boxes::BoxRow;
use crate::store::crypto_actions::NewCryptoAction;
use crate::store::events::{EventRow, NewEventRow};
use crate::store::idempotency::Stored;
use crate::store::{self, GenericClient};
use crate::views::{self, EventContext};

/// Default and maximum page size of `GET /boxes/{id}/events` (§2.5).
const EVENTS_DEFAULT: i64 = 50;
const EVENTS_MAX: i64 = 200;

/// Types whose `event.new` raises the unread counter of the other members (§6.4).
fn counts(kind: EventType) -> bool {
    matches!(
        kind,
        EventType::MsgText
            | EventType::MsgFile
            | EventType::MemberJoin
            | EventType::MemberLeave
            | EventType::MemberKick
            | EventType::StateAccessMode
    )
}

/// An event inserted by a request, with who must hear about it after commit.
struct Announced {
    event: EventRow,
    /// `event.new` recipients; counters go to those of them that are members, minus the sender.
    recipients: Vec<IdentityId>,
}

/// Everything the transaction decided; sent once it has committed.
pub(super) struct Effects {
    /// The event the client posted, returned in the response.
    posted: EventRow,
    then: Consequences,
    /// Blobs of encrypted files whose rows the transaction deleted, removed after commit.
    released: Vec<domain::FileId>,
}

impl Effects {
    pub(super) fn posted(&self) -> &EventRow {
        &self.posted
    }
}

/// What a committed write announces (§6.4), besides its answer.
pub(super) struct Consequences {
    announced: Vec<Announced>,
    /// Members after the whole transaction, and which of them muted the box.
    members: Vec<IdentityId>,
    muted: Vec<IdentityId>,
    /// Stored in the transaction ([`Consequences::store`]), published after commit.
    notifications: Vec<(IdentityId, NewNotification)>,
    stored: Vec<(IdentityId, Notification)>,
    /// Identities that stopped being members (leave, kick): their unread counters go.
    departed: Vec<IdentityId>,
}

impl Consequences {
    /// Reads the members and their mutes as the transaction leaves them.
    pub(super) async fn load<C: GenericClient>(
        c: &C,
        box_id: BoxId,
        notifications: Vec<(IdentityId, NewNotification)>,
    ) -> ApiResult<Self> {
        let members = store::boxes::member_ids(c, box_id).await?;
        let muted = store::settings::muted_among(c, box_id, &members).await?;
        Ok(Consequences {
            announced: Vec::new(),
            members,
            muted,
            notifications,
            stored: Vec::new(),
            departed: Vec::new(),
        })
    }

    /// A `member.kick`: announced to the remaining members and the kicked identity, whose
    /// unread counter goes.
    pub(super) fn kicked(&mut self, kick: EventRow) {
        let mut recipients = self.members.clone();
        recipients.push(kick.sender_id);
        self.departed.push(kick.sender_id);
        self.announced.push(Announced { event: kick, recipients });
    }

    /// Stores the notifications, in the transaction of the change that causes them.
    pub(super) async fn store<C: GenericClient>(
        &mut self,
        c: &C,
        retention: store::notifications::Retention,
    ) -> ApiResult<()> {
        self.stored = store::notifications::insert_all(c, retention, &self.notifications).await?;
        Ok(())
    }

    /// The announced events, to load their context with.
    pub(super) fn events(&self) -> impl Iterator<Item = &EventRow> {
        self.announced.iter().map(|a| &a.event)
    }

    /// `event.new` to each announced event's recipients, unread counters, notifications, and
    /// the counters of departed members reset.
    pub(super) fn fill(&self, outbox: &mut Outbox, ctx: &EventContext, bx: &BoxRow) {
        for a in &self.announced {
            views::announce(outbox, ctx, &a.event, bx.creator_id, &a.recipients);
            if counts(a.event.kind) {
                for m in self.members.iter().filter(|m| **m != a.event.sender_id && !self.muted.contains(m)) {
                    outbox.increment(*m, bx.id);
                }
            }
        }
        outbox.notify(&self.stored);
        for who in &self.departed {
            outbox.reset(*who, bx.id);
        }
    }
}

fn not_found(field: &str) -> ErrorBody {
    ErrorBody::not_found(Origin::Body, field)
}

fn gone() -> ErrorBody {
    ErrorBody::new(ErrorCode::Gone, Origin::Body, "the message was deleted").with("referrer_id", Detail::Invalid)
}

async fn insert<C: GenericClient>(
    c: &C,
    box_id: BoxId,
    kind: EventType,
    sender: IdentityId,
    content: Option<&serde_json::Value>,
    referrer_id: Option<EventId>,
) -> ApiResult<EventRow> {
    Ok(store::events::insert(c, &NewEventRow { box_id, kind, sender_id: sender, content, referrer_id }).await?)
}

/// `POST /boxes/{id}/events` (§7.7).
///
/// Messages (`msg.text`, `msg.file`), by far the most frequent, take a shorter path with the
/// same outcome: the identity check of authentication, the box lock, the membership check, the
/// insert and the member list travel to PostgreSQL as one pipelined transaction
/// ([`store::events::post_message`]). Every other type goes through [`apply`].
pub async fn post(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let pending = auth::verify(&req, &state)?;
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
    // A message with an idempotency key takes the general path, which can store its answer.
    if claim.is_none() && matches!(new, NewEvent::MsgText { .. } | NewEvent::MsgFile { .. }) {
        return post_message(&req, &state, pending, box_id, &new).await;
    }
    let caller = pending.finish(&req, auth::known_identity(&state, me).await?)?;
    let me = caller.id();
    if matches!(new, NewEvent::AccessAdd { auto_invite: Some(_), .. }) {
        state.charge_invitation(me).await?;
    }

    let mut client = state.db.get().await?;
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
    let mut effects = apply(&tx, &bx, me, &new).await?;
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
    tracing::info!(box_id = %box_id, event_id = %effects.posted.id, kind = new.kind().as_str(), "event posted");

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

/// A message inserted by another route (an uploaded file's `msg.file`), inside its transaction
/// holding the box lock: the rules and effects of a message posted to `POST /boxes/{id}/events`.
pub(super) async fn apply_message<C: GenericClient>(
    c: &C,
    bx: &BoxRow,
    me: IdentityId,
    kind: EventType,
    content: &Value,
) -> ApiResult<Effects> {
    if !store::boxes::is_member(c, bx.id, me).await? {
        return Err(ErrorBody::box_rule("not_member").into());
    }
    let posted = insert(c, bx.id, kind, me, Some(content), None).await?;
    let mut then = Consequences::load(c, bx.id, Vec::new()).await?;
    let mut recipients = then.members.clone();
    recipients.push(me);
    then.announced.push(Announced { event: posted.clone(), recipients });
    Ok(Effects { posted, then, released: Vec::new() })
}

/// After the commit of [`apply_message`]: `event.new` and counters; returns the event as
/// answered to its sender.
pub(super) async fn announce_message<C: GenericClient>(
    state: &AppState,
    c: &C,
    bx: &BoxRow,
    me: IdentityId,
    effects: Effects,
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
    let event = views::events_for(c, &[row], bx.is_admin(me)).await?.pop();
    let body = serde_json::to_string(&event).map_err(anyhow::Error::from)?;
    Ok(idempotency::replay(done.status, body))
}

/// How long before the request's own deadline PostgreSQL must have reached the end of a post's
/// transaction: room for the answer to travel back and for clock differences between hosts.
const COMMIT_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);

/// A `msg.text` or `msg.file` (§6.3: the sender must be a member; an unknown box is
/// `not_member` too), with the effects of §6.4: `event.new` to the members and the sender, unread
/// counters +1 for the members other than the sender that did not mute the box.
async fn post_message(
    req: &HttpRequest,
    state: &AppState,
    pending: auth::Pending,
    box_id: BoxId,
    new: &NewEvent,
) -> ApiResult<HttpResponse> {
    let me = pending.id();
    let content = new.stored_content();
    let client = state.db.get().await?;
    let deadline = web_kit::limits::deadline(COMMIT_MARGIN);
    let posted = store::events::post_message(
        &client,
        box_id,
        me,
        new.kind(),
        content.as_ref(),
        deadline,
        web_kit::limits::in_doubt,
    )
    .await?;
    drop(client);
    pending.finish(req, posted.sender.is_some())?;
    let (Some(bx), Some(event), Some(sender)) = (posted.bx, posted.event, posted.sender) else {
        return Err(ErrorBody::box_rule("not_member").into());
    };
    tracing::info!(box_id = %box_id, event_id = %event.id, kind = new.kind().as_str(), "event posted");

    let ctx = EventContext::of_identities([sender]);
    let mut outbox = Outbox::new();
    let mut recipients: Vec<IdentityId> = posted.members.iter().map(|(m, _)| *m).collect();
    recipients.push(me);
    views::announce(&mut outbox, &ctx, &event, bx.creator_id, &recipients);
    for (m, _) in posted.members.iter().filter(|(m, muted)| *m != me && !muted) {
        outbox.increment(*m, box_id);
    }
    let response = ctx.render(&event, bx.is_admin(me));
    outbox.send(&state.redis, state.history).await;
    Ok(HttpResponse::Created().json(response))
}

/// The rules of §6.3 for one posted event, inside the transaction holding the box lock.
async fn apply<C: GenericClient>(c: &C, bx: &BoxRow, me: IdentityId, new: &NewEvent) -> ApiResult<Effects> {
    let box_id = bx.id;
    let is_member = store::boxes::is_member(c, box_id, me).await?;
    let is_admin = bx.is_admin(me);
    let require_member = || if is_member { Ok(()) } else { Err(ErrorBody::box_rule("not_member")) };
    let require_admin = || if is_admin { Ok(()) } else { Err(ErrorBody::box_rule("not_admin")) };
    let content = new.stored_content();
    let mut announced_to_members = true;
    let mut extra_recipients: Vec<IdentityId> = Vec::new();
    let mut notifications = Vec::new();
    let mut kicks: Vec<EventRow> = Vec::new();
    let mut released = Vec::new();

    let posted = match new {
        NewEvent::MsgText { .. } | NewEvent::MsgFile { .. } => {
            require_member()?;
            insert(c, box_id, new.kind(), me, content.as_ref(), None).await?
        }
        NewEvent::MsgEdit { referrer_id, .. } => {
            require_member()?;
            let target =
                store::events::get_in_box(c, box_id, *referrer_id).await?.ok_or_else(|| not_found("referrer_id"))?;
            match target.kind {
                EventType::MsgText => {}
                EventType::MsgFile => return Err(ErrorBody::box_rule("not_editable").into()),
                _ => {
                    return Err(ErrorBody::bad_request(Origin::Body, "only msg.text can be edited")
                        .with("referrer_id", Detail::Invalid)
                        .into())
                }
            }
            if target.sender_id != me {
                return Err(ErrorBody::box_rule("not_author").into());
            }
            if store::events::is_deleted(c, target.id).await? {
                return Err(gone().into());
            }
            insert(c, box_id, EventType::MsgEdit, me, content.as_ref(), Some(target.id)).await?
        }
        NewEvent::MsgDelete { referrer_id } => {
            require_member()?;
            let target =
                store::events::get_in_box(c, box_id, *referrer_id).await?.ok_or_else(|| not_found("referrer_id"))?;
            if !target.kind.is_message() {
                return Err(ErrorBody::bad_request(Origin::Body, "only messages can be deleted")
                    .with("referrer_id", Detail::Invalid)
                    .into());
            }
            if target.sender_id != me && !is_admin {
                return Err(ErrorBody::box_rule("not_author").into());
            }
            if store::events::is_deleted(c, target.id).await? {
                return Err(gone().into());
            }
            let event = insert(c, box_id, EventType::MsgDelete, me, None, Some(target.id)).await?;
            store::events::wipe_message(c, target.id).await?;
            store::idempotency::wipe_message(c, target.id).await?;
            if target.kind == EventType::MsgFile {
                released = store::files::release_event(c, target.id).await?;
            }
            event
        }
        NewEvent::MemberJoin => {
            if is_member {
                return Err(ErrorBody::conflict(Origin::Body, "type", "already a member").into());
            }
            if !store::access::can_join(c, bx, me).await? {
                return Err(ErrorBody::box_rule("no_access").into());
            }
            let has_rule = store::access::has_identity_rule(c, box_id, me).await?;
            let join = insert(c, box_id, EventType::MemberJoin, me, None, None).await?;
            store::boxes::add_member(c, box_id, me, join.id, join.seq).await?;
            if !has_rule {
                let rule = access_add_content(&Restriction::IdentityId(me), false);
                insert(c, box_id, EventType::AccessAdd, me, Some(&rule), None).await?;
            }
            join
        }
        NewEvent::MemberLeave => {
            require_member()?;
            if is_admin {
                return Err(ErrorBody::box_rule("admin_cannot_leave").into());
            }
            let join = store::boxes::join_of(c, box_id, me).await?.map(|j| j.join_event_id);
            let leave = insert(c, box_id, EventType::MemberLeave, me, None, join).await?;
            store::boxes::remove_member(c, box_id, me).await?;
            extra_recipients.push(me);
            leave
        }
        NewEvent::StateAccessMode { value } => {
            require_admin()?;
            let event = insert(c, box_id, EventType::StateAccessMode, me, content.as_ref(), None).await?;
            store::boxes::set_access_mode(c, box_id, *value).await?;
            event
        }
        NewEvent::StateKeyShare { share } => {
            require_admin()?;
            rotate_key_share(c, bx, me, share).await?
        }
        NewEvent::AccessAdd { .. } | NewEvent::AccessRm { .. } => {
            announced_to_members = false;
            let applied = access::apply_one(c, bx, me, new).await?;
            notifications = applied.notifications;
            kicks = applied.kicks;
            applied.changes.into_iter().next().ok_or_else(|| anyhow::anyhow!("an access change without its event"))?
        }
    };

    let mut then = Consequences::load(c, box_id, notifications).await?;
    if announced_to_members {
        let mut recipients = then.members.clone();
        recipients.push(me);
        recipients.extend(extra_recipients);
        then.announced.push(Announced { event: posted.clone(), recipients });
    }
    if posted.kind == EventType::MemberLeave {
        then.departed.push(me);
    }
    for kick in kicks {
        then.kicked(kick);
    }
    Ok(Effects { posted, then, released })
}

/// `state.key_share`: replace the box's key shares and hand the new invitation share to every
/// other member as a `set_box_key_share` crypto action, all in the caller's transaction.
async fn rotate_key_share<C: GenericClient>(
    c: &C,
    bx: &BoxRow,
    me: IdentityId,
    share: &NewKeyShare,
) -> ApiResult<EventRow> {
    if store::keyshares::hash_exists(c, share.other_share_hash.as_str()).await? {
        return Err(hash_conflict("extra.other_share_hash").into());
    }
    store::keyshares::delete_for_box(c, bx.id).await?;
    if store::keyshares::insert(c, bx.id, me, share).await?.is_none() {
        return Err(hash_conflict("extra.other_share_hash").into());
    }
    let event = insert(c, bx.id, EventType::StateKeyShare, me, None, None).await?;
    let encrypted = share.encrypted_invitation_key_share.as_ref().map(|e| e.as_str()).unwrap_or_default();
    for member in store::boxes::member_ids(c, bx.id).await?.into_iter().filter(|m| *m != me) {
        store::crypto_actions::insert(
            c,
            &NewCryptoAction {
                identity_id: member,
                kind: CryptoActionType::SetBoxKeyShare,
                box_id: bx.id,
                sender_id: me,
                encryption_public_key: &bx.public_key,
                encrypted,
            },
        )
        .await?;
    }
    Ok(event)
}

/// Member check shared by the reads: an unknown box is `not_member` too (§7.8).
async fn member_box<C: GenericClient>(c: &C, box_id: BoxId, me: IdentityId) -> ApiResult<BoxRow> {
    match store::boxes::get(c, box_id).await? {
        Some(b) if store::boxes::is_member(c, box_id, me).await? => Ok(b),
        _ => Err(ErrorBody::box_rule("not_member").into()),
    }
}

/// `GET /boxes/{id}/events` (§7.8): visible events, newest first, folded; with `?after=<seq>`
/// (issue 17) what changed after that event, oldest first.
///
/// The revocation check (Redis) and one pipelined round trip to PostgreSQL
/// ([`store::events::page_folded`]: identity, box and membership, the folded page) run
/// concurrently; their answers are then taken in the order of §3.7.
pub async fn list(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let pending = auth::verify(&req, &state)?;
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
        let client = state.db.get().await?;
        let read = store::events::page_folded(&client, box_id, me, page, after).await?;
        Ok::<_, ApiError>((client, read))
    };
    pending.revocation(&state)?;
    let (client, read) = read.await?;
    pending.finish(&req, read.reader_known)?;
    let bx = match read.bx {
        Some((bx, true)) => bx,
        _ => return Err(ErrorBody::box_rule("not_member").into()),
    };
    let events = views::folded_page_for(&client, read.rows, bx.is_admin(me)).await?;
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
pub async fn count(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let caller = authenticate(&req, &state).await?;
    let box_id: BoxId = path_id(&path, "id")?;
    let client = state.db.get().await?;
    member_box(&client, box_id, caller.id()).await?;
    Ok(total_count(store::events::count_visible(&client, box_id).await?))
}
