//! Who may act on a box: members (rows of `boxes.members`, the admin included) and the admin
//! (the creator). Always read from PostgreSQL, never from a cache (§13.1).

use domain::{BoxId, IdentityId};

use super::{sql, GenericClient};

/// Whether `identity` is a current member of `box_id`; `false` for an unknown box.
pub async fn is_member<C: GenericClient>(
    c: &C,
    box_id: BoxId,
    identity: IdentityId,
) -> Result<bool, tokio_postgres::Error> {
    let row = sql::query_opt(
        c,
        "SELECT 1 FROM boxes.members WHERE box_id = $1 AND identity_id = $2",
        &[box_id.as_uuid(), identity.as_uuid()],
    )
    .await?;
    Ok(row.is_some())
}

/// Whether `identity` created `box_id`; `false` for an unknown box.
pub async fn is_admin<C: GenericClient>(
    c: &C,
    box_id: BoxId,
    identity: IdentityId,
) -> Result<bool, tokio_postgres::Error> {
    let row = sql::query_opt(
        c,
        "SELECT 1 FROM boxes.boxes WHERE id = $1 AND creator_id = $2",
        &[box_id.as_uuid(), identity.as_uuid()],
    )
    .await?;
    Ok(row.is_some())
}
