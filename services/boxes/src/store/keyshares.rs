//! `boxes.key_shares`: the server's share of each box key, found by the hash of the other share.

use domain::keyshare::{KeyShare, NewKeyShare};
use domain::{BoxId, IdentityId};
use tokio_postgres::Row;

use super::{sql, Error, GenericClient};
use crate::error::is_unique_violation;

/// The primary key; a duplicate `other_share_hash` violates it.
pub const HASH_CONSTRAINT: &str = "key_shares_pkey";

fn share(row: &Row) -> Result<KeyShare, Error> {
    Ok(KeyShare {
        misakey_share: sql::get(row, "misakey_share")?,
        other_share_hash: sql::get(row, "other_share_hash")?,
        encrypted_invitation_key_share: sql::get(row, "encrypted_invitation_key_share")?,
        box_id: BoxId::from(sql::get::<_, uuid::Uuid>(row, "box_id")?),
    })
}

/// `Ok(None)` when the hash is already used. Inside a transaction, a conflict aborts it, so
/// callers that must go on use a savepoint or check first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert<C: GenericClient>(
    c: &C,
    box_id: BoxId,
    creator: IdentityId,
    s: &NewKeyShare,
) -> Result<Option<KeyShare>, Error> {
    let eiks = s.encrypted_invitation_key_share.as_ref().map(|e| e.as_str());
    let res = sql::query_one(c,
            "INSERT INTO boxes.key_shares (other_share_hash, box_id, misakey_share, encrypted_invitation_key_share, creator_id)
             VALUES ($1, $2, $3, $4, $5)
             RETURNING other_share_hash, box_id, misakey_share, encrypted_invitation_key_share",
            &[&s.other_share_hash.as_str(), box_id.as_uuid(), &s.misakey_share.as_str(), &eiks, creator.as_uuid()],
        )
        .await;
    match res {
        Ok(row) => share(&row).map(Some),
        Err(e) if e.postgres().is_some_and(|pg| is_unique_violation(pg, HASH_CONSTRAINT)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn hash_exists<C: GenericClient>(c: &C, hash: &str) -> Result<bool, Error> {
    Ok(sql::query_opt(c, "SELECT 1 FROM boxes.key_shares WHERE other_share_hash = $1", &[&hash]).await?.is_some())
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn get<C: GenericClient>(c: &C, hash: &str) -> Result<Option<KeyShare>, Error> {
    let row = sql::query_opt(
        c,
        "SELECT other_share_hash, box_id, misakey_share, encrypted_invitation_key_share
             FROM boxes.key_shares WHERE other_share_hash = $1",
        &[&hash],
    )
    .await?;
    row.as_ref().map(share).transpose()
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn newest_for_box<C: GenericClient>(c: &C, box_id: BoxId) -> Result<Option<KeyShare>, Error> {
    let row = sql::query_opt(
        c,
        "SELECT other_share_hash, box_id, misakey_share, encrypted_invitation_key_share
             FROM boxes.key_shares WHERE box_id = $1 ORDER BY created_at DESC LIMIT 1",
        &[box_id.as_uuid()],
    )
    .await?;
    row.as_ref().map(share).transpose()
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete_for_box<C: GenericClient>(c: &C, box_id: BoxId) -> Result<u64, Error> {
    sql::execute(c, "DELETE FROM boxes.key_shares WHERE box_id = $1", &[box_id.as_uuid()]).await
}
