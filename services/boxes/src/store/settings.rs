//! `boxes.box_settings`: per-identity settings of a box (only `muted` in v1).

use domain::boxes::BoxSetting;
use domain::{BoxId, IdentityId};

use super::{sql, Error, GenericClient};

/// The stored settings, or the defaults.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn get<C: GenericClient>(c: &C, identity: IdentityId, box_id: BoxId) -> Result<BoxSetting, Error> {
    let row = sql::query_opt(
        c,
        "SELECT muted FROM boxes.box_settings WHERE identity_id = $1 AND box_id = $2",
        &[identity.as_uuid(), box_id.as_uuid()],
    )
    .await?;
    let muted = match row {
        Some(r) => sql::get(&r, "muted")?,
        None => false,
    };
    Ok(BoxSetting { identity_id: identity, box_id, muted })
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn upsert<C: GenericClient>(c: &C, identity: IdentityId, box_id: BoxId, muted: bool) -> Result<(), Error> {
    sql::execute(
        c,
        "INSERT INTO boxes.box_settings (identity_id, box_id, muted) VALUES ($1, $2, $3)
         ON CONFLICT (identity_id, box_id) DO UPDATE SET muted = EXCLUDED.muted",
        &[identity.as_uuid(), box_id.as_uuid(), &muted],
    )
    .await?;
    Ok(())
}

/// Which of `ids` muted the box; counters skip them (§6.4).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn muted_among<C: GenericClient>(c: &C, box_id: BoxId, ids: &[IdentityId]) -> Result<Vec<IdentityId>, Error> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|i| i.into_uuid()).collect();
    let rows = sql::query(
        c,
        "SELECT identity_id FROM boxes.box_settings WHERE box_id = $1 AND muted AND identity_id = ANY($2)",
        &[box_id.as_uuid(), &ids],
    )
    .await?;
    rows.iter().map(|r| sql::get::<_, uuid::Uuid>(r, "identity_id").map(IdentityId::from)).collect()
}
