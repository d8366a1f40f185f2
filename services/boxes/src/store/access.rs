//! Access rules (§6.1): the `access.add` events no `access.rm` refers to, as the view
//! `boxes.active_access_rules` (migration V7) defines them. Rules are read from the events
//! themselves, inside the transaction that holds the box lock, so "can join" and "legitimate
//! member" always see the rules as that transaction leaves them.

use domain::boxes::AccessMode;
use domain::event::Restriction;
use domain::{BoxId, IdentityId};

use super::boxes::{joined, BoxRow, Joined};
use super::{sql, Error, GenericClient};

/// An active access rule of the box matches identity `$2`: an `identity_id` rule naming it, an
/// `identifier` rule equal to its identifier (emails are compared lower-cased), or an
/// `email_domain` rule equal to the domain of its email identifier (lower-cased); the last two
/// only when its host app verified that identifier.
macro_rules! matching_rule {
    ($box_id:literal, $who:literal) => {
        concat!(
            "SELECT 1 FROM boxes.active_access_rules a
             WHERE a.box_id = ",
            $box_id,
            " AND ((a.content->>'restriction_type' = 'identity_id' AND a.content->>'value' = ",
            $who,
            "::uuid::text)
                 OR (a.content->>'restriction_type' = 'identifier' AND a.content->>'value' =
                       (SELECT lower(i.identifier_value) FROM boxes.identities i
                        WHERE i.id = ",
            $who,
            "::uuid AND i.identifier_value <> '' AND i.identifier_verified))
                 OR (a.content->>'restriction_type' = 'email_domain' AND a.content->>'value' =
                       (SELECT lower(substring(i.identifier_value from '@([^@]+)$')) FROM boxes.identities i
                        WHERE i.id = ",
            $who,
            "::uuid AND i.identifier_kind = 'email' AND i.identifier_verified)))"
        )
    };
}

/// Non-admin members that no active rule matches any more (§6.1 "legitimate").
#[tracing::instrument(level = "debug", skip_all)]
pub async fn illegitimate_members<C: GenericClient>(c: &C, box_id: BoxId) -> Result<Vec<Joined>, Error> {
    let rows = sql::query(
        c,
        concat!(
            "SELECT m.identity_id, m.join_event_id FROM boxes.members m JOIN boxes.boxes b ON b.id = m.box_id
             WHERE m.box_id = $1 AND m.identity_id <> b.creator_id
               AND NOT EXISTS (",
            matching_rule!("m.box_id", "m.identity_id"),
            ")
             ORDER BY m.joined_seq"
        ),
        &[box_id.as_uuid()],
    )
    .await?;
    rows.iter().map(joined).filter_map(Result::transpose).collect()
}

/// Whether an active rule with this exact restriction exists.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn has_rule<C: GenericClient>(c: &C, box_id: BoxId, restriction: &Restriction) -> Result<bool, Error> {
    let row = sql::query_opt(
        c,
        "SELECT 1 FROM boxes.active_access_rules a
             WHERE a.box_id = $1 AND a.content->>'restriction_type' = $2 AND a.content->>'value' = $3
             LIMIT 1",
        &[box_id.as_uuid(), &restriction.restriction_type(), &restriction.value()],
    )
    .await?;
    Ok(row.is_some())
}

/// Whether an active `identity_id` rule names `who`.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn has_identity_rule<C: GenericClient>(c: &C, box_id: BoxId, who: IdentityId) -> Result<bool, Error> {
    has_rule(c, box_id, &Restriction::IdentityId(who)).await
}

/// Whether an active rule of either kind matches `who`.
#[tracing::instrument(level = "debug", skip_all)]
async fn has_matching_rule<C: GenericClient>(c: &C, box_id: BoxId, who: IdentityId) -> Result<bool, Error> {
    let row =
        sql::query_opt(c, concat!(matching_rule!("$1", "$2"), " LIMIT 1"), &[box_id.as_uuid(), who.as_uuid()]).await?;
    Ok(row.is_some())
}

/// "Can join" of §6.1: the box is public, or an active rule matches the caller.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn can_join<C: GenericClient>(c: &C, b: &BoxRow, who: IdentityId) -> Result<bool, Error> {
    if b.access_mode == AccessMode::Public {
        return Ok(true);
    }
    has_matching_rule(c, b.id, who).await
}

/// Identities an active `identity_id` rule with `auto_invite` invited that are not members.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn pending_invitees<C: GenericClient>(c: &C, box_id: BoxId) -> Result<Vec<IdentityId>, Error> {
    let rows = sql::query(
        c,
        "SELECT DISTINCT a.content->>'value' AS invited FROM boxes.active_access_rules a
         WHERE a.box_id = $1
           AND a.content->>'restriction_type' = 'identity_id' AND a.content->'auto_invite' = 'true'::jsonb
           AND NOT EXISTS (SELECT 1 FROM boxes.members m
                           WHERE m.box_id = a.box_id AND m.identity_id::text = a.content->>'value')",
        &[box_id.as_uuid()],
    )
    .await?;
    rows.iter()
        .map(|r| {
            let value: String = sql::get(r, "invited")?;
            IdentityId::parse(&value).map_err(|_| Error::corrupt(format!("identity_id rule value {value:?}")))
        })
        .collect()
}
