//! The event rules of §6.3, one function per event type, and their effects (§6.4). Every rule
//! runs inside the caller's transaction, after it locked the box row (`store::boxes::lock`), so
//! membership, access rules and the sequence number are read and written consistently; what a
//! rule decides to announce is sent by the handler after commit ([`Effects`]).
//!
//! Membership is checked with [`require_member`] everywhere, events or not.

pub mod access;
mod effects;
mod members;
mod messages;
mod state;

use domain::event::{EventType, NewEvent};
use domain::{BoxId, ErrorBody, EventId, IdentityId, Origin};
use serde_json::Value;

pub use effects::{Consequences, Effects};
pub use messages::message;

use crate::error::ApiResult;
use crate::store::boxes::BoxRow;
use crate::store::events::{EventRow, NewEventRow};
use crate::store::{self, GenericClient};

/// The rules of §6.3 for one posted event.
pub async fn apply<C: GenericClient>(c: &C, bx: &BoxRow, me: IdentityId, new: &NewEvent) -> ApiResult<Effects> {
    let content = new.stored_content();
    match new {
        NewEvent::MsgText { .. } | NewEvent::MsgFile { .. } => {
            messages::message(c, bx, me, new.kind(), content.as_ref()).await
        }
        NewEvent::MsgEdit { referrer_id, .. } => messages::edit(c, bx, me, *referrer_id, content.as_ref()).await,
        NewEvent::MsgDelete { referrer_id } => messages::delete(c, bx, me, *referrer_id).await,
        NewEvent::MemberJoin => members::join(c, bx, me).await,
        NewEvent::MemberLeave => members::leave(c, bx, me).await,
        NewEvent::StateAccessMode { value } => state::access_mode(c, bx, me, *value, content.as_ref()).await,
        NewEvent::StateKeyShare { share } => state::key_share(c, bx, me, share).await,
        NewEvent::AccessAdd { .. } | NewEvent::AccessRm { .. } => access::change(c, bx, me, new).await,
    }
}

/// The answer to a caller that is not a member of the box, or names a box that does not exist.
pub fn not_member() -> ErrorBody {
    ErrorBody::box_rule("not_member")
}

/// The caller must be a member of the box; an unknown box answers the same (§14 item 6).
pub async fn require_member<C: GenericClient>(c: &C, box_id: BoxId, who: IdentityId) -> ApiResult<()> {
    if store::boxes::is_member(c, box_id, who).await? {
        Ok(())
    } else {
        Err(not_member().into())
    }
}

/// The box, for a member of it, with [`require_member`]'s answer otherwise.
pub async fn member_box<C: GenericClient>(c: &C, box_id: BoxId, who: IdentityId) -> ApiResult<BoxRow> {
    require_member(c, box_id, who).await?;
    Ok(store::boxes::get(c, box_id).await?.ok_or_else(not_member)?)
}

/// The caller must be the box's admin (its creator).
fn require_admin(bx: &BoxRow, who: IdentityId) -> ApiResult<()> {
    if bx.is_admin(who) {
        Ok(())
    } else {
        Err(ErrorBody::box_rule("not_admin").into())
    }
}

/// 409 for a key share whose `other_share_hash` is taken (§13.2).
pub fn hash_conflict(field: &str) -> ErrorBody {
    ErrorBody::conflict(Origin::Body, field, "other_share_hash is already used")
}

fn not_found(field: &str) -> ErrorBody {
    ErrorBody::not_found(Origin::Body, field)
}

async fn insert<C: GenericClient>(
    c: &C,
    box_id: BoxId,
    kind: EventType,
    sender: IdentityId,
    content: Option<&Value>,
    referrer_id: Option<EventId>,
) -> ApiResult<EventRow> {
    Ok(store::events::insert(c, &NewEventRow { box_id, kind, sender_id: sender, content, referrer_id }).await?)
}
