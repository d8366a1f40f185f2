//! `boxes.crypto_actions`: ciphertext addressed to one identity.

use domain::crypto_action::{CryptoAction, CryptoActionType, LIST_CAP};
use domain::{BoxId, CryptoActionId, IdentityId, Timestamp};
use tokio_postgres::Row;

use super::{sql, Error, GenericClient};

const COLUMNS: &str = "id, type, box_id, encryption_public_key, encrypted, created_at";

fn action(row: &Row) -> Result<CryptoAction, Error> {
    let kind: String = sql::get(row, "type")?;
    Ok(CryptoAction {
        id: CryptoActionId::from(sql::get::<_, uuid::Uuid>(row, "id")?),
        kind: CryptoActionType::parse(&kind).ok_or_else(|| Error::corrupt(format!("crypto action type {kind:?}")))?,
        box_id: sql::get::<_, Option<uuid::Uuid>>(row, "box_id")?.map(BoxId::from),
        encryption_public_key: sql::get(row, "encryption_public_key")?,
        encrypted: sql::get(row, "encrypted")?,
        created_at: Timestamp(sql::get(row, "created_at")?),
    })
}

pub struct NewCryptoAction<'a> {
    pub identity_id: IdentityId,
    pub kind: CryptoActionType,
    pub box_id: BoxId,
    pub sender_id: IdentityId,
    pub encryption_public_key: &'a str,
    pub encrypted: &'a str,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert<C: GenericClient>(c: &C, a: &NewCryptoAction<'_>) -> Result<CryptoAction, Error> {
    let row = sql::query_one(c,
            &format!(
                "INSERT INTO boxes.crypto_actions (id, identity_id, type, box_id, sender_id, encryption_public_key, encrypted)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
            ),
            &[
                CryptoActionId::new_v4().as_uuid(),
                a.identity_id.as_uuid(),
                &a.kind.as_str(),
                a.box_id.as_uuid(),
                a.sender_id.as_uuid(),
                &a.encryption_public_key,
                &a.encrypted,
            ],
        )
        .await?;
    action(&row)
}

/// Oldest first, at most [`LIST_CAP`].
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list<C: GenericClient>(c: &C, identity: IdentityId) -> Result<Vec<CryptoAction>, Error> {
    let rows = sql::query(
        c,
        &format!("SELECT {COLUMNS} FROM boxes.crypto_actions WHERE identity_id = $1 ORDER BY created_at, id LIMIT $2"),
        &[identity.as_uuid(), &LIST_CAP],
    )
    .await?;
    rows.iter().map(action).collect()
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn get<C: GenericClient>(
    c: &C,
    identity: IdentityId,
    id: CryptoActionId,
) -> Result<Option<CryptoAction>, Error> {
    let row = sql::query_opt(
        c,
        &format!("SELECT {COLUMNS} FROM boxes.crypto_actions WHERE id = $1 AND identity_id = $2"),
        &[id.as_uuid(), identity.as_uuid()],
    )
    .await?;
    row.as_ref().map(action).transpose()
}

/// `true` when an action of this identity was deleted.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete<C: GenericClient>(c: &C, identity: IdentityId, id: CryptoActionId) -> Result<bool, Error> {
    let n = sql::execute(
        c,
        "DELETE FROM boxes.crypto_actions WHERE id = $1 AND identity_id = $2",
        &[id.as_uuid(), identity.as_uuid()],
    )
    .await?;
    Ok(n > 0)
}
