//! `boxes.files` and `boxes.saved_files` (issue 18): which blobs exist, in which box, who may
//! read them, and when a blob may go.
//!
//! A file row is locked (`FOR UPDATE`) before any decision to remove it, and saving a file locks
//! it too, so a file is never removed while a saved reference to it is being added, and the last
//! of two references removed at the same time still removes it.

use domain::files::SavedFile;
use domain::{BoxId, EventId, FileId, IdentityId, SavedFileId, Timestamp};

use super::{sql, Error, GenericClient};

/// Adds the row of a blob about to be written, `pending` until its event commits.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert_pending<C: GenericClient>(
    c: &C,
    id: FileId,
    box_id: BoxId,
    uploader: IdentityId,
) -> Result<(), Error> {
    sql::execute(
        c,
        "INSERT INTO boxes.files (id, box_id, uploader_id, state) VALUES ($1, $2, $3, 'pending')",
        &[id.as_uuid(), box_id.as_uuid(), uploader.as_uuid()],
    )
    .await?;
    Ok(())
}

/// Marks a pending file live with its event, size and digest; false when the row is no longer
/// pending (swept, or its box deleted meanwhile).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn mark_live<C: GenericClient>(
    c: &C,
    id: FileId,
    event: EventId,
    size: i64,
    sha256: &str,
) -> Result<bool, Error> {
    let n = sql::execute(
        c,
        "UPDATE boxes.files SET state = 'live', event_id = $2, size = $3, sha256 = $4
             WHERE id = $1 AND state = 'pending' AND box_id IS NOT NULL",
        &[id.as_uuid(), event.as_uuid(), &size, &sha256],
    )
    .await?;
    Ok(n == 1)
}

/// Removes the row of an upload that failed; true when the row is live after all (its commit
/// went through), so its blob must stay.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete_pending<C: GenericClient>(c: &C, id: FileId) -> Result<bool, Error> {
    sql::execute(c, "DELETE FROM boxes.files WHERE id = $1 AND state = 'pending'", &[id.as_uuid()]).await?;
    let live = sql::query_opt(c, "SELECT 1 FROM boxes.files WHERE id = $1 AND state = 'live'", &[id.as_uuid()]).await?;
    Ok(live.is_some())
}

/// Serialises the quota checks of one uploader until the transaction ends.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn lock_uploader<C: GenericClient>(c: &C, who: IdentityId) -> Result<(), Error> {
    sql::query_one(c, "SELECT pg_advisory_xact_lock(816018, hashtext($1::text))", &[&who.to_string()]).await?;
    Ok(())
}

/// Bytes counted against an identity's quota: the live files it uploaded that are still stored
/// (in a box, or kept by someone's saved file) plus the files it saved.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn used_by<C: GenericClient>(c: &C, who: IdentityId) -> Result<i64, Error> {
    let row = sql::query_one(
        c,
        "SELECT (COALESCE((SELECT sum(size) FROM boxes.files WHERE uploader_id = $1 AND state = 'live'), 0)
               + COALESCE((SELECT sum(f.size) FROM boxes.saved_files s JOIN boxes.files f ON f.id = s.file_id
                           WHERE s.identity_id = $1), 0))::bigint",
        &[who.as_uuid()],
    )
    .await?;
    sql::get(&row, 0)
}

/// Bytes of the live files of a box.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn used_in_box<C: GenericClient>(c: &C, box_id: BoxId) -> Result<i64, Error> {
    let row = sql::query_one(
        c,
        "SELECT COALESCE(sum(size), 0)::bigint FROM boxes.files WHERE box_id = $1 AND state = 'live'",
        &[box_id.as_uuid()],
    )
    .await?;
    sql::get(&row, 0)
}

/// A live file as a reader sees it.
#[derive(Debug, Clone)]
pub struct Readable {
    pub size: i64,
    pub sha256: String,
    /// Whether the reader is a member of its box or holds a saved file of it.
    pub allowed: bool,
}

macro_rules! readable_sql {
    () => {
        "SELECT f.size, f.sha256,
                (f.box_id IS NOT NULL AND EXISTS (SELECT 1 FROM boxes.members m
                                                  WHERE m.box_id = f.box_id AND m.identity_id = $2))
                OR EXISTS (SELECT 1 FROM boxes.saved_files s WHERE s.file_id = f.id AND s.identity_id = $2)
         FROM boxes.files f WHERE f.id = $1 AND f.state = 'live'"
    };
}

/// The live file `id` and whether `who` may read it; `None` when unknown or pending.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn readable<C: GenericClient>(
    c: &C,
    id: FileId,
    who: IdentityId,
    lock: bool,
) -> Result<Option<Readable>, Error> {
    let sql = if lock { concat!(readable_sql!(), " FOR UPDATE OF f") } else { readable_sql!() };
    let row = sql::query_opt(c, sql, &[id.as_uuid(), who.as_uuid()]).await?;
    row.map(|r| {
        Ok(Readable {
            size: sql::get(&r, 0)?,
            sha256: sql::get::<_, Option<String>>(&r, 1)?.unwrap_or_default(),
            allowed: sql::get(&r, 2)?,
        })
    })
    .transpose()
}

/// Takes the file of a deleted `msg.file` out of its box: its row goes (and its blob is
/// returned for removal after commit) unless saved files still reference it.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn release_event<C: GenericClient>(c: &C, event: EventId) -> Result<Vec<FileId>, Error> {
    let locked = sql::query(c, "SELECT id FROM boxes.files WHERE event_id = $1 FOR UPDATE", &[event.as_uuid()]).await?;
    let ids: Vec<uuid::Uuid> = locked.iter().map(|r| sql::get(r, 0)).collect::<Result<_, _>>()?;
    release(c, &ids).await
}

/// Takes every file out of a box about to be deleted, pending ones included.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn release_box<C: GenericClient>(c: &C, box_id: BoxId) -> Result<Vec<FileId>, Error> {
    let locked = sql::query(c, "SELECT id FROM boxes.files WHERE box_id = $1 FOR UPDATE", &[box_id.as_uuid()]).await?;
    let ids: Vec<uuid::Uuid> = locked.iter().map(|r| sql::get(r, 0)).collect::<Result<_, _>>()?;
    release(c, &ids).await
}

/// Files (locked by the caller) leave their box: unreferenced ones are deleted and returned.
#[tracing::instrument(level = "debug", skip_all)]
async fn release<C: GenericClient>(c: &C, ids: &[uuid::Uuid]) -> Result<Vec<FileId>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let gone = sql::query(
        c,
        "DELETE FROM boxes.files f WHERE f.id = ANY($1)
             AND NOT EXISTS (SELECT 1 FROM boxes.saved_files s WHERE s.file_id = f.id)
         RETURNING f.id",
        &[&ids],
    )
    .await?;
    sql::execute(c, "UPDATE boxes.files SET box_id = NULL WHERE id = ANY($1)", &[&ids]).await?;
    gone.iter().map(file_id).collect()
}

/// Pending rows older than `grace_secs`, deleted; their blobs are the caller's to remove.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn take_stale_pending<C: GenericClient>(c: &C, grace_secs: f64, limit: i64) -> Result<Vec<FileId>, Error> {
    let rows = sql::query(
        c,
        "DELETE FROM boxes.files WHERE id IN (
             SELECT id FROM boxes.files
             WHERE state = 'pending' AND created_at < clock_timestamp() - make_interval(secs => $1)
             ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING id",
        &[&grace_secs, &limit],
    )
    .await?;
    rows.iter().map(file_id).collect()
}

/// Which of `ids` have a row.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn known<C: GenericClient>(c: &C, ids: &[FileId]) -> Result<Vec<FileId>, Error> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|i| i.into_uuid()).collect();
    let rows = sql::query(c, "SELECT id FROM boxes.files WHERE id = ANY($1)", &[&ids]).await?;
    rows.iter().map(file_id).collect()
}

// ---- saved files ----

const SAVED_COLUMNS: &str = "id, identity_id, file_id, encrypted_metadata, key_fingerprint, created_at";

fn saved_row(r: &tokio_postgres::Row) -> Result<SavedFile, Error> {
    Ok(SavedFile {
        id: SavedFileId::from(sql::get::<_, uuid::Uuid>(r, 0)?),
        identity_id: IdentityId::from(sql::get::<_, uuid::Uuid>(r, 1)?),
        encrypted_file_id: FileId::from(sql::get::<_, uuid::Uuid>(r, 2)?),
        encrypted_metadata: sql::get(r, 3)?,
        key_fingerprint: sql::get(r, 4)?,
        created_at: Timestamp(sql::get(r, 5)?),
    })
}

/// A file id in the first column.
fn file_id(r: &tokio_postgres::Row) -> Result<FileId, Error> {
    sql::get::<_, uuid::Uuid>(r, 0).map(FileId::from)
}

/// Inserts a saved file; the caller locked the file row. `None` when the identity already
/// saved this file (`saved_files_identity_file`).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert_saved<C: GenericClient>(
    c: &C,
    who: IdentityId,
    file: FileId,
    encrypted_metadata: &str,
    key_fingerprint: &str,
) -> Result<Option<SavedFile>, Error> {
    let id = SavedFileId::new_v4();
    let row = sql::query_opt(
        c,
        &format!(
            "INSERT INTO boxes.saved_files (id, identity_id, file_id, encrypted_metadata, key_fingerprint)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT ON CONSTRAINT saved_files_identity_file DO NOTHING
             RETURNING {SAVED_COLUMNS}"
        ),
        &[id.as_uuid(), who.as_uuid(), file.as_uuid(), &encrypted_metadata, &key_fingerprint],
    )
    .await?;
    row.as_ref().map(saved_row).transpose()
}

/// An identity's saved files, newest first, at most `limit`.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn saved_by<C: GenericClient>(c: &C, who: IdentityId, limit: i64) -> Result<Vec<SavedFile>, Error> {
    let rows = sql::query(
        c,
        &format!(
            "SELECT {SAVED_COLUMNS} FROM boxes.saved_files WHERE identity_id = $1
             ORDER BY created_at DESC, id LIMIT $2"
        ),
        &[who.as_uuid(), &limit],
    )
    .await?;
    rows.iter().map(saved_row).collect()
}

/// Deletes a saved file of `who`; `None` when there is none. When it was the last reference to a
/// file that left its box, the file's row goes too and `Some(Some(id))` names its blob.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete_saved<C: GenericClient>(
    c: &C,
    who: IdentityId,
    id: SavedFileId,
) -> Result<Option<Option<FileId>>, Error> {
    let Some(row) = sql::query_opt(
        c,
        "SELECT file_id FROM boxes.saved_files WHERE id = $1 AND identity_id = $2",
        &[id.as_uuid(), who.as_uuid()],
    )
    .await?
    else {
        return Ok(None);
    };
    let file: uuid::Uuid = sql::get(&row, 0)?;
    sql::execute(c, "SELECT 1 FROM boxes.files WHERE id = $1 FOR UPDATE", &[&file]).await?;
    let n = sql::execute(
        c,
        "DELETE FROM boxes.saved_files WHERE id = $1 AND identity_id = $2",
        &[id.as_uuid(), who.as_uuid()],
    )
    .await?;
    if n == 0 {
        return Ok(None);
    }
    let gone = sql::query_opt(
        c,
        "DELETE FROM boxes.files f WHERE f.id = $1 AND f.box_id IS NULL
             AND NOT EXISTS (SELECT 1 FROM boxes.saved_files s WHERE s.file_id = f.id)
         RETURNING f.id",
        &[&file],
    )
    .await?;
    Ok(Some(gone.as_ref().map(file_id).transpose()?))
}
