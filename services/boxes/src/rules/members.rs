//! Joining and leaving a box (§6.3 `member.join`, `member.leave`).

use domain::event::{access_add_content, EventType, Restriction};
use domain::{ErrorBody, IdentityId, Origin};

use super::{insert, require_member, Effects};
use crate::error::ApiResult;
use crate::store::boxes::BoxRow;
use crate::store::{self, GenericClient};

/// `member.join`: not a member yet, and the box lets the caller in (§6.1 "can join"). A joiner
/// without an `identity_id` rule gets one, so it stays legitimate when the rule that let it in
/// goes.
pub(super) async fn join<C: GenericClient>(c: &C, bx: &BoxRow, me: IdentityId) -> ApiResult<Effects> {
    if store::boxes::is_member(c, bx.id, me).await? {
        return Err(ErrorBody::conflict(Origin::Body, "type", "already a member").into());
    }
    if !store::access::can_join(c, bx, me).await? {
        return Err(ErrorBody::box_rule("no_access").into());
    }
    let has_rule = store::access::has_identity_rule(c, bx.id, me).await?;
    let join = insert(c, bx.id, EventType::MemberJoin, me, None, None).await?;
    store::boxes::add_member(c, bx.id, me, join.id, join.seq).await?;
    if !has_rule {
        let rule = access_add_content(&Restriction::IdentityId(me), false);
        insert(c, bx.id, EventType::AccessAdd, me, Some(&rule), None).await?;
    }
    Effects::announced(c, join).await
}

/// `member.leave`: a member other than the admin; refers to its join.
pub(super) async fn leave<C: GenericClient>(c: &C, bx: &BoxRow, me: IdentityId) -> ApiResult<Effects> {
    require_member(c, bx.id, me).await?;
    if bx.is_admin(me) {
        return Err(ErrorBody::box_rule("admin_cannot_leave").into());
    }
    let join = store::boxes::join_of(c, bx.id, me).await?.map(|j| j.join_event_id);
    let leave = insert(c, bx.id, EventType::MemberLeave, me, None, join).await?;
    store::boxes::remove_member(c, bx.id, me).await?;
    let mut effects = Effects::announced(c, leave).await?;
    effects.then.departed(me);
    Ok(effects)
}
