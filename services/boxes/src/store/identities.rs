//! `boxes.identities`: the public part of each identity.

use domain::identity::{IdentityRecord, IdentityUpsert};
use domain::{IdentityId, Timestamp};
use tokio_postgres::Row;

use super::{sql, Error, GenericClient};

const COLUMNS: &str = identity_columns!();

/// The identity in the columns `start..start + 7` (in the order of [`COLUMNS`]), `None` when its
/// id is NULL (an outer join that found nothing).
pub(super) fn record_at(row: &Row, start: usize) -> Result<Option<IdentityRecord>, Error> {
    let Some(id) = sql::get::<_, Option<uuid::Uuid>>(row, start)? else {
        return Ok(None);
    };
    Ok(Some(IdentityRecord {
        id: IdentityId::from(id),
        display_name: sql::get(row, start + 1)?,
        identifier_value: sql::get(row, start + 2)?,
        identifier_kind: sql::get(row, start + 3)?,
        pubkey: sql::get(row, start + 4)?,
        non_identified_pubkey: sql::get(row, start + 5)?,
        created_at: Timestamp(sql::get(row, start + 6)?),
    }))
}

/// The identity in the columns of [`COLUMNS`].
pub(super) fn record(row: &Row) -> Result<IdentityRecord, Error> {
    record_at(row, 0)?.ok_or_else(|| Error::corrupt("an identity without its id"))
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn exists<C: GenericClient>(c: &C, id: IdentityId) -> Result<bool, Error> {
    let row = sql::query_opt(c, "SELECT 1 FROM boxes.identities WHERE id = $1", &[id.as_uuid()]).await?;
    Ok(row.is_some())
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn get<C: GenericClient>(c: &C, id: IdentityId) -> Result<Option<IdentityRecord>, Error> {
    let row =
        sql::query_opt(c, &format!("SELECT {COLUMNS} FROM boxes.identities WHERE id = $1"), &[id.as_uuid()]).await?;
    row.as_ref().map(record).transpose()
}

/// The identities among `ids` that exist, in no particular order.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn get_many<C: GenericClient>(c: &C, ids: &[IdentityId]) -> Result<Vec<IdentityRecord>, Error> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|i| i.into_uuid()).collect();
    let rows = sql::query(c, &format!("SELECT {COLUMNS} FROM boxes.identities WHERE id = ANY($1)"), &[&ids]).await?;
    rows.iter().map(record).collect()
}

/// Creates the identity or updates its name and identifier (with whether it is verified); keys
/// and `created_at` stay (§12).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn upsert<C: GenericClient>(c: &C, id: IdentityId, u: &IdentityUpsert) -> Result<(), Error> {
    sql::execute(
        c,
        "INSERT INTO boxes.identities (id, display_name, identifier_value, identifier_kind, identifier_verified)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET display_name = EXCLUDED.display_name,
             identifier_value = EXCLUDED.identifier_value, identifier_kind = EXCLUDED.identifier_kind,
             identifier_verified = EXCLUDED.identifier_verified",
        &[
            id.as_uuid(),
            &u.display_name.as_str(),
            &u.identifier_value,
            &u.identifier_kind.as_str(),
            &u.identifier_verified,
        ],
    )
    .await?;
    Ok(())
}

/// Replaces the keys that are given; absent keys stay as they are (§8).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn set_keys<C: GenericClient>(
    c: &C,
    id: IdentityId,
    pubkey: Option<&str>,
    non_identified_pubkey: Option<&str>,
) -> Result<Option<IdentityRecord>, Error> {
    let row = sql::query_opt(
        c,
        &format!(
            "UPDATE boxes.identities SET pubkey = COALESCE($2, pubkey),
                     non_identified_pubkey = COALESCE($3, non_identified_pubkey)
                 WHERE id = $1 RETURNING {COLUMNS}"
        ),
        &[id.as_uuid(), &pubkey, &non_identified_pubkey],
    )
    .await?;
    row.as_ref().map(record).transpose()
}

/// The identities whose identifier is `value` (an email lower-cased, or an E.164 phone) and was
/// verified by their host app, oldest first: those an `identifier` rule lets in.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn with_verified_identifier<C: GenericClient>(c: &C, value: &str) -> Result<Vec<IdentityRecord>, Error> {
    let rows = sql::query(
        c,
        &format!(
            "SELECT {COLUMNS} FROM boxes.identities
             WHERE lower(identifier_value) = $1 AND identifier_value <> '' AND identifier_verified
             ORDER BY created_at, id"
        ),
        &[&value],
    )
    .await?;
    rows.iter().map(record).collect()
}
