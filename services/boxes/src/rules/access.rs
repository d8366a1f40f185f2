//! Changing a box's access rules (§6.3 `access.add` / `access.rm`, issue 17 batches): the checks
//! and effects of each change, and the kicks that follow, inside the transaction holding the box
//! lock. A single event and a batch use the same steps; a batch applies every change first and
//! then kicks once, from the rules as the whole batch leaves them, so replacing a rule never
//! removes a member that the new rule still lets in. `auto_invite` invites the target of an
//! `identity_id` rule, or the identities with the verified identifier of an `identifier` rule.

use domain::b64::B64;
use domain::crypto_action::CryptoActionType;
use domain::event::{auto_invited, EventType, NewEvent, Restriction};
use domain::identity::IdentityRecord;
use domain::notification::NewNotification;
use domain::{Detail, ErrorBody, EventId, IdentityId, Origin};
use serde_json::json;

use super::{insert, not_found, Consequences, Effects};
use crate::error::{ApiError, ApiResult};
use crate::store::boxes::BoxRow;
use crate::store::crypto_actions::NewCryptoAction;
use crate::store::events::EventRow;
use crate::store::{self, GenericClient};

/// What a set of access changes did, for the answer and for what is sent after commit.
#[derive(Debug, Default)]
pub struct Applied {
    /// The `access.add` / `access.rm` events, in the order of the changes.
    pub changes: Vec<EventRow>,
    /// The `member.kick` events of the members no rule lets in any more.
    pub kicks: Vec<EventRow>,
    /// `box.auto_invite` to the invited, `member.kick` to the kicked, `box.access_lost` to
    /// invited identities that had not joined and can no longer join.
    pub notifications: Vec<(IdentityId, NewNotification)>,
}

/// `access.add` or `access.rm` posted alone (`POST /boxes/{id}/events`): the change, then the
/// kicks it causes. The change itself is answered, not announced; the kicks are.
pub(super) async fn change<C: GenericClient>(
    c: &C,
    bx: &BoxRow,
    me: IdentityId,
    change: &NewEvent,
) -> ApiResult<Effects> {
    let mut applied = Applied::default();
    change_rule(c, bx, me, change, &mut applied).await?;
    kick_illegitimate(c, bx, me, &mut applied).await?;
    let posted =
        applied.changes.into_iter().next().ok_or_else(|| anyhow::anyhow!("an access change without its event"))?;
    let mut then = Consequences::load(c, bx.id, applied.notifications).await?;
    for kick in applied.kicks {
        then.kicked(kick);
    }
    Ok(Effects { posted, then, released: Vec::new() })
}

/// Every change in order, then the kicks, once (`POST /boxes/{id}/batch-events`). A change that
/// fails fails the whole batch: its error names the change (`events.<i>.<field>`) and the caller
/// drops the transaction, so nothing of the batch is kept.
pub async fn apply_batch<C: GenericClient>(
    c: &C,
    bx: &BoxRow,
    me: IdentityId,
    changes: &[NewEvent],
) -> ApiResult<Applied> {
    let mut applied = Applied::default();
    for (i, change) in changes.iter().enumerate() {
        change_rule(c, bx, me, change, &mut applied).await.map_err(|e| in_batch(e, i))?;
    }
    kick_illegitimate(c, bx, me, &mut applied).await?;
    Ok(applied)
}

/// Field details of a change's error, moved under `events.<i>.`; box rules (`reason`) stay.
fn in_batch(e: ApiError, i: usize) -> ApiError {
    match e {
        ApiError::Client(mut body) => {
            body.details = std::mem::take(&mut body.details)
                .into_iter()
                .map(|(k, v)| if k == "reason" { (k, v) } else { (format!("events.{i}.{k}"), v) })
                .collect();
            ApiError::Client(body)
        }
        other => other,
    }
}

/// The checks and effects of one `access.add` or `access.rm`, without the kicks.
async fn change_rule<C: GenericClient>(
    c: &C,
    bx: &BoxRow,
    me: IdentityId,
    change: &NewEvent,
    applied: &mut Applied,
) -> ApiResult<()> {
    if !bx.is_admin(me) {
        return Err(ErrorBody::box_rule("not_admin").into());
    }
    let content = change.stored_content();
    let event = match change {
        NewEvent::AccessAdd { restriction, auto_invite } => {
            let record = match restriction {
                Restriction::IdentityId(target) => {
                    Some(store::identities::get(c, *target).await?.ok_or_else(|| not_found("content.value"))?)
                }
                Restriction::Identifier(_) | Restriction::EmailDomain(_) => None,
            };
            if store::access::has_rule(c, bx.id, restriction).await? {
                return Err(
                    ErrorBody::conflict(Origin::Body, "content.value", "an identical access rule exists").into()
                );
            }
            let invitations = match (restriction, auto_invite, record) {
                (_, None, _) => Vec::new(),
                (Restriction::IdentityId(_), Some(entries), Some(record)) => {
                    if record.invitation_key().is_none() {
                        return Err(
                            ErrorBody::conflict(Origin::Body, "content.value", "the target has no public key").into()
                        );
                    }
                    invitees(std::slice::from_ref(&record), entries)?
                }
                (Restriction::Identifier(value), Some(entries), _) => {
                    invitees(&store::identities::with_verified_identifier(c, value).await?, entries)?
                }
                // domain refuses auto_invite on other rules.
                _ => Vec::new(),
            };
            let event = insert(c, bx.id, EventType::AccessAdd, me, content.as_ref(), None).await?;
            for (target, key, ciphertext) in invitations {
                let action = store::crypto_actions::insert(
                    c,
                    &NewCryptoAction {
                        identity_id: target,
                        kind: CryptoActionType::Invitation,
                        box_id: bx.id,
                        sender_id: me,
                        encryption_public_key: key,
                        encrypted: ciphertext.as_str(),
                    },
                )
                .await?;
                applied.notifications.push((target, NewNotification::auto_invite(bx.id, &bx.title, action.id)));
            }
            event
        }
        NewEvent::AccessRm { referrer_id } => {
            if !store::events::is_active_access(c, bx.id, *referrer_id).await? {
                return Err(not_found("referrer_id").into());
            }
            insert(c, bx.id, EventType::AccessRm, me, None, Some(*referrer_id)).await?
        }
        _ => {
            return Err(ErrorBody::bad_request(Origin::Body, "not an access change")
                .with("type", Detail::Invalid)
                .into())
        }
    };
    applied.changes.push(event);
    Ok(())
}

/// Who each `extra` entry invites: every key must be one of the keys of `candidates` (the
/// rule's target, or the identities with its verified identifier), at most one entry per
/// identity; otherwise 400 `{"extra": "invalid"}`.
fn invitees<'a>(
    candidates: &[IdentityRecord],
    entries: &'a [(String, B64)],
) -> ApiResult<Vec<(IdentityId, &'a str, &'a B64)>> {
    let invalid = || -> ApiError {
        ErrorBody::bad_request(Origin::Body, "extra must be keyed by the public keys of the rule's identities")
            .with("extra", Detail::Invalid)
            .into()
    };
    let mut out: Vec<(IdentityId, &str, &B64)> = Vec::new();
    for (key, ciphertext) in entries {
        let target = candidates.iter().find(|r| r.has_key(key)).ok_or_else(invalid)?;
        if out.iter().any(|(id, _, _)| *id == target.id) {
            return Err(invalid());
        }
        out.push((target.id, key, ciphertext));
    }
    Ok(out)
}

/// Every non-admin member that no active rule lets in any more gets a `member.kick` (sender =
/// the kicked identity, `referrer_id` = its join, content `{kicker_id}`) and leaves the members.
async fn kick_illegitimate<C: GenericClient>(
    c: &C,
    bx: &BoxRow,
    me: IdentityId,
    applied: &mut Applied,
) -> ApiResult<()> {
    if !applied.changes.iter().any(|e| e.kind == EventType::AccessRm) {
        return Ok(());
    }
    let kicker = json!({"kicker_id": me});
    for j in store::access::illegitimate_members(c, bx.id).await? {
        let kick = insert(c, bx.id, EventType::MemberKick, j.identity_id, Some(&kicker), Some(j.join_event_id)).await?;
        store::boxes::remove_member(c, bx.id, j.identity_id).await?;
        applied.notifications.push((j.identity_id, NewNotification::kicked(bx.id, &bx.title)));
        applied.kicks.push(kick);
    }
    // An invited identity that had not joined and can no longer join hears of it; a member
    // that lost its access was kicked above instead.
    let removed: Vec<EventId> = applied.changes.iter().filter_map(|e| e.referrer_id).collect();
    let mut told: Vec<IdentityId> = Vec::new();
    for referrer_id in removed {
        let rule = store::events::get_in_box(c, bx.id, referrer_id).await?;
        let Some(invited) = rule.as_ref().and_then(|r| r.content.as_ref()).and_then(auto_invited) else { continue };
        if told.contains(&invited)
            || applied.kicks.iter().any(|k| k.sender_id == invited)
            || store::boxes::is_member(c, bx.id, invited).await?
            || store::access::can_join(c, bx, invited).await?
        {
            continue;
        }
        told.push(invited);
        applied.notifications.push((invited, NewNotification::access_lost(bx.id, &bx.title)));
    }
    Ok(())
}
