//! `boxes.identities`: the public part of each identity.

use domain::identity::{IdentityRecord, IdentityUpsert};
use domain::{IdentityId, Timestamp};
use tokio_postgres::Row;

use super::{sql, GenericClient};

const COLUMNS: &str = identity_columns!();

/// The identity in the columns `start..start + 7` (in the order of [`COLUMNS`]), `None` when its
/// id is NULL (an outer join that found nothing).
pub(super) fn record_at(row: &Row, start: usize) -> Option<IdentityRecord> {
    let id: Option<uuid::Uuid> = row.get(start);
    Some(IdentityRecord {
        id: IdentityId::from(id?),
        display_name: row.get(start + 1),
        identifier_value: row.get(start + 2),
        identifier_kind: row.get(start + 3),
        pubkey: row.get(start + 4),
        non_identified_pubkey: row.get(start + 5),
        created_at: Timestamp(row.get(start + 6)),
    })
}

pub(super) fn record(row: &Row) -> IdentityRecord {
    IdentityRecord {
        id: IdentityId::from(row.get::<_, uuid::Uuid>("id")),
        display_name: row.get("display_name"),
        identifier_value: row.get("identifier_value"),
        identifier_kind: row.get("identifier_kind"),
        pubkey: row.get("pubkey"),
        non_identified_pubkey: row.get("non_identified_pubkey"),
        created_at: Timestamp(row.get("created_at")),
    }
}

pub async fn exists<C: GenericClient>(c: &C, id: IdentityId) -> Result<bool, tokio_postgres::Error> {
    let row = sql::query_opt(c, "SELECT 1 FROM boxes.identities WHERE id = $1", &[id.as_uuid()]).await?;
    Ok(row.is_some())
}

pub async fn get<C: GenericClient>(c: &C, id: IdentityId) -> Result<Option<IdentityRecord>, tokio_postgres::Error> {
    let row =
        sql::query_opt(c, &format!("SELECT {COLUMNS} FROM boxes.identities WHERE id = $1"), &[id.as_uuid()]).await?;
    Ok(row.as_ref().map(record))
}

/// The identities among `ids` that exist, in no particular order.
pub async fn get_many<C: GenericClient>(
    c: &C,
    ids: &[IdentityId],
) -> Result<Vec<IdentityRecord>, tokio_postgres::Error> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|i| i.into_uuid()).collect();
    let rows = sql::query(c, &format!("SELECT {COLUMNS} FROM boxes.identities WHERE id = ANY($1)"), &[&ids]).await?;
    Ok(rows.iter().map(record).collect())
}

/// Creates the identity or updates its name and identifier (with whether it is verified); keys
/// and `created_at` stay (§12).
pub async fn upsert<C: GenericClient>(c: &C, id: IdentityId, u: &IdentityUpsert) -> Result<(), tokio_postgres::Error> {
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
pub async fn set_keys<C: GenericClient>(
    c: &C,
    id: IdentityId,
    pubkey: Option<&str>,
    non_identified_pubkey: Option<&str>,
) -> Result<Option<IdentityRecord>, tokio_postgres::Error> {
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
    Ok(row.as_ref().map(record))
}

/// The identities whose identifier is `value` (an email lower-cased, or an E.164 phone) and was
/// verified by their host app, oldest first: those an `identifier` rule lets in.
pub async fn with_verified_identifier<C: GenericClient>(
    c: &C,
    value: &str,
) -> Result<Vec<IdentityRecord>, tokio_postgres::Error> {
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
    Ok(rows.iter().map(record).collect())
}
