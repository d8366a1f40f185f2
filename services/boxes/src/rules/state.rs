//! Box state changed by the admin (§6.3 `state.access_mode`, `state.key_share`).

use domain::boxes::AccessMode;
use domain::crypto_action::CryptoActionType;
use domain::event::EventType;
use domain::keyshare::NewKeyShare;
use domain::IdentityId;
use serde_json::Value;

use super::{hash_conflict, insert, require_admin, Effects};
use crate::error::ApiResult;
use crate::store::boxes::BoxRow;
use crate::store::crypto_actions::NewCryptoAction;
use crate::store::{self, GenericClient};

/// `state.access_mode`: the box becomes `public` or `limited`.
pub(super) async fn access_mode<C: GenericClient>(
    c: &C,
    bx: &BoxRow,
    me: IdentityId,
    value: AccessMode,
    content: Option<&Value>,
) -> ApiResult<Effects> {
    require_admin(bx, me)?;
    let posted = insert(c, bx.id, EventType::StateAccessMode, me, content, None).await?;
    store::boxes::set_access_mode(c, bx.id, value).await?;
    Effects::announced(c, posted).await
}

/// `state.key_share`: replace the box's key shares and hand the new invitation share to every
/// other member as a `set_box_key_share` crypto action.
pub(super) async fn key_share<C: GenericClient>(
    c: &C,
    bx: &BoxRow,
    me: IdentityId,
    share: &NewKeyShare,
) -> ApiResult<Effects> {
    require_admin(bx, me)?;
    if store::keyshares::hash_exists(c, share.other_share_hash.as_str()).await? {
        return Err(hash_conflict("extra.other_share_hash").into());
    }
    store::keyshares::delete_for_box(c, bx.id).await?;
    if store::keyshares::insert(c, bx.id, me, share).await?.is_none() {
        return Err(hash_conflict("extra.other_share_hash").into());
    }
    let posted = insert(c, bx.id, EventType::StateKeyShare, me, None, None).await?;
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
    Effects::announced(c, posted).await
}
