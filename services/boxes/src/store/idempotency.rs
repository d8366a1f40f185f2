//! Answers remembered for `Idempotency-Key` (issue 17; see `crate::idempotency`). Every function
//! runs inside the transaction of the write the key protects.

use domain::{BoxId, EventId, IdentityId};

use super::{sql, Error, GenericClient};

/// How long an answer is replayed.
pub const KEPT: &str = "24 hours";

/// A remembered answer.
#[derive(Debug, Clone)]
pub struct Stored {
    pub request_hash: Vec<u8>,
    pub status: u16,
    /// `None` once the message it held was deleted.
    pub body: Option<String>,
    pub box_id: Option<BoxId>,
    pub event_id: Option<EventId>,
}

/// Takes the transaction-scoped lock of `(identity, key)`; false when another transaction holds
/// it, that is while the first request with this key is still running.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn try_lock<C: GenericClient>(c: &C, identity: IdentityId, key: &str) -> Result<bool, Error> {
    let row = sql::query_one(
        c,
        "SELECT pg_try_advisory_xact_lock(hashtextextended('idempotency:' || $1::uuid::text || ':' || $2, 0)) AS locked",
        &[identity.as_uuid(), &key],
    )
    .await?;
    sql::get(&row, "locked")
}

/// The answer remembered for `(identity, key)` within [`KEPT`].
#[tracing::instrument(level = "debug", skip_all)]
pub async fn get<C: GenericClient>(c: &C, identity: IdentityId, key: &str) -> Result<Option<Stored>, Error> {
    let row = sql::query_opt(
        c,
        &format!(
            "SELECT request_hash, status, body, box_id, event_id FROM boxes.idempotency_keys
             WHERE identity_id = $1 AND key = $2 AND created_at > now() - interval '{KEPT}'"
        ),
        &[identity.as_uuid(), &key],
    )
    .await?;
    row.map(|r| {
        let status: i16 = sql::get(&r, "status")?;
        Ok(Stored {
            request_hash: sql::get(&r, "request_hash")?,
            status: u16::try_from(status).map_err(|_| Error::corrupt(format!("stored status {status}")))?,
            body: sql::get(&r, "body")?,
            box_id: sql::get::<_, Option<uuid::Uuid>>(&r, "box_id")?.map(BoxId::from),
            event_id: sql::get::<_, Option<uuid::Uuid>>(&r, "event_id")?.map(EventId::from),
        })
    })
    .transpose()
}

/// Remembers an answer (replacing an expired one of the same key) and drops up to 100 expired
/// answers of anyone, so the table holds about a day of keys.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn put<C: GenericClient>(c: &C, identity: IdentityId, key: &str, answer: &Stored) -> Result<(), Error> {
    let status = i16::try_from(answer.status).unwrap_or(500);
    sql::execute(
        c,
        "INSERT INTO boxes.idempotency_keys (identity_id, key, request_hash, status, body, box_id, event_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (identity_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,
             status = EXCLUDED.status, body = EXCLUDED.body, box_id = EXCLUDED.box_id,
             event_id = EXCLUDED.event_id, created_at = now()",
        &[
            identity.as_uuid(),
            &key,
            &answer.request_hash,
            &status,
            &answer.body,
            &answer.box_id.map(|b| b.into_uuid()),
            &answer.event_id.map(|e| e.into_uuid()),
        ],
    )
    .await?;
    sql::execute(
        c,
        &format!(
            "DELETE FROM boxes.idempotency_keys WHERE ctid = ANY (ARRAY(
                 SELECT ctid FROM boxes.idempotency_keys
                 WHERE created_at < now() - interval '{KEPT}' LIMIT 100 FOR UPDATE SKIP LOCKED))"
        ),
        &[],
    )
    .await?;
    Ok(())
}

/// Forgets the ciphertext of the answers that returned `message` or one of its edits, when the
/// message is deleted (§6.5 wipes it from the events too). The ids go in an array, so the update
/// finds the answers through an index (`event_id = $1 OR event_id IN (...)` read the whole table).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn wipe_message<C: GenericClient>(c: &C, message: EventId) -> Result<(), Error> {
    sql::execute(
        c,
        "UPDATE boxes.idempotency_keys SET body = NULL
         WHERE event_id = ANY (ARRAY(SELECT $1::uuid
                                     UNION ALL
                                     SELECT id FROM boxes.events WHERE referrer_id = $1 AND type = 'msg.edit'))",
        &[message.as_uuid()],
    )
    .await?;
    Ok(())
}
