//! Messages (§6.3): `msg.text` and `msg.file`, and their edits and deletions.

use domain::event::EventType;
use domain::{Detail, ErrorBody, ErrorCode, EventId, IdentityId, Origin};
use serde_json::Value;

use super::{insert, not_found, require_member, Effects};
use crate::error::ApiResult;
use crate::store::boxes::BoxRow;
use crate::store::events::EventRow;
use crate::store::{self, GenericClient};

fn gone() -> ErrorBody {
    ErrorBody::new(ErrorCode::Gone, Origin::Body, "the message was deleted").with("referrer_id", Detail::Invalid)
}

/// `msg.text` and `msg.file` (also an uploaded file's message): the sender must be a member.
pub async fn message<C: GenericClient>(
    c: &C,
    bx: &BoxRow,
    me: IdentityId,
    kind: EventType,
    content: Option<&Value>,
) -> ApiResult<Effects> {
    require_member(c, bx.id, me).await?;
    let posted = insert(c, bx.id, kind, me, content, None).await?;
    Effects::announced(c, posted).await
}

/// The message `referrer_id` names, which must be in this box and not deleted yet.
async fn target<C: GenericClient>(c: &C, bx: &BoxRow, referrer_id: EventId) -> ApiResult<EventRow> {
    Ok(store::events::get_in_box(c, bx.id, referrer_id).await?.ok_or_else(|| not_found("referrer_id"))?)
}

async fn require_not_deleted<C: GenericClient>(c: &C, target: &EventRow) -> ApiResult<()> {
    if store::events::is_deleted(c, target.id).await? {
        return Err(gone().into());
    }
    Ok(())
}

/// `msg.edit`: only the author edits, and only a `msg.text`.
pub(super) async fn edit<C: GenericClient>(
    c: &C,
    bx: &BoxRow,
    me: IdentityId,
    referrer_id: EventId,
    content: Option<&Value>,
) -> ApiResult<Effects> {
    require_member(c, bx.id, me).await?;
    let target = target(c, bx, referrer_id).await?;
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
    require_not_deleted(c, &target).await?;
    let posted = insert(c, bx.id, EventType::MsgEdit, me, content, Some(target.id)).await?;
    Effects::announced(c, posted).await
}

/// `msg.delete`: by the author or the admin; the ciphertext goes, and a file's blob with it.
pub(super) async fn delete<C: GenericClient>(
    c: &C,
    bx: &BoxRow,
    me: IdentityId,
    referrer_id: EventId,
) -> ApiResult<Effects> {
    require_member(c, bx.id, me).await?;
    let target = target(c, bx, referrer_id).await?;
    if !target.kind.is_message() {
        return Err(ErrorBody::bad_request(Origin::Body, "only messages can be deleted")
            .with("referrer_id", Detail::Invalid)
            .into());
    }
    if target.sender_id != me && !bx.is_admin(me) {
        return Err(ErrorBody::box_rule("not_author").into());
    }
    require_not_deleted(c, &target).await?;
    let posted = insert(c, bx.id, EventType::MsgDelete, me, None, Some(target.id)).await?;
    store::events::wipe_message(c, target.id).await?;
    store::idempotency::wipe_message(c, target.id).await?;
    let released =
        if target.kind == EventType::MsgFile { store::files::release_event(c, target.id).await? } else { Vec::new() };
    let mut effects = Effects::announced(c, posted).await?;
    effects.released = released;
    Ok(effects)
}
