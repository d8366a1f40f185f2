//! `boxes.events`: the per-box ordered log.
//!
//! Every insert takes the next sequence number of the box and a time that never goes backwards
//! within the box (§13.1). Callers hold the box row lock (`store::boxes::lock`) for the whole
//! transaction; the insert statement itself also updates the box row, so it is serialised anyway.

use std::collections::HashMap;

use domain::event::{EditState, EventType};
use domain::{BoxId, EventId, IdentityId, Timestamp};
use serde_json::Value;
use tokio_postgres::Row;

use super::boxes::visible_types;
use super::sql::JsonText;
use super::{sql, Error, GenericClient};

const COLUMNS: &str = event_columns!();

/// An event as stored; `C` is how its content was read (parsed, or as [`JsonText`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow<C = Value> {
    pub id: EventId,
    pub box_id: BoxId,
    pub seq: i64,
    pub kind: EventType,
    pub sender_id: IdentityId,
    pub content: Option<C>,
    pub referrer_id: Option<EventId>,
    pub created_at: Timestamp,
}

impl EventRow<JsonText> {
    /// The same row with its content parsed.
    pub fn parsed(&self) -> EventRow {
        EventRow {
            id: self.id,
            box_id: self.box_id,
            seq: self.seq,
            kind: self.kind,
            sender_id: self.sender_id,
            content: self.content.as_ref().and_then(|t| serde_json::from_str(&t.0).ok()),
            referrer_id: self.referrer_id,
            created_at: self.created_at,
        }
    }
}

/// Reads the columns of [`event_columns!`], in that order, from the start of `row`.
pub(super) fn event_row_as<'a, C: tokio_postgres::types::FromSql<'a>>(row: &'a Row) -> Result<EventRow<C>, Error> {
    let kind: &str = sql::get(row, 3)?;
    Ok(EventRow {
        id: EventId::from(sql::get::<_, uuid::Uuid>(row, 0)?),
        box_id: BoxId::from(sql::get::<_, uuid::Uuid>(row, 1)?),
        seq: sql::get(row, 2)?,
        kind: EventType::parse(kind).ok_or_else(|| Error::corrupt(format!("event type {kind:?}")))?,
        sender_id: IdentityId::from(sql::get::<_, uuid::Uuid>(row, 4)?),
        content: sql::get(row, 5)?,
        referrer_id: sql::get::<_, Option<uuid::Uuid>>(row, 6)?.map(EventId::from),
        created_at: Timestamp(sql::get(row, 7)?),
    })
}

pub(super) fn event_row(row: &Row) -> Result<EventRow, Error> {
    event_row_as(row)
}

/// What to insert; the id, sequence number and time are the server's.
#[derive(Debug, Clone)]
pub struct NewEventRow<'a> {
    pub box_id: BoxId,
    pub kind: EventType,
    pub sender_id: IdentityId,
    pub content: Option<&'a Value>,
    pub referrer_id: Option<EventId>,
}

/// Inserts an event with `seq = last_seq + 1` and `created_at = greatest(clock_timestamp(),
/// last_event_at)`, and moves the box's `last_event_at` (and `last_visible_at` for visible types).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert<C: GenericClient>(c: &C, e: &NewEventRow<'_>) -> Result<EventRow, Error> {
    let id = EventId::new_v4();
    let visible = e.kind.is_visible();
    let row = sql::query_one(
        c,
        &format!(
            "WITH t AS (
                     SELECT greatest(clock_timestamp(), last_event_at) AS at FROM boxes.boxes WHERE id = $2 FOR UPDATE
                 ), b AS (
                     UPDATE boxes.boxes SET last_seq = last_seq + 1, last_event_at = t.at,
                         last_visible_at = CASE WHEN $7 THEN t.at ELSE last_visible_at END
                     FROM t WHERE id = $2
                     RETURNING last_seq, last_event_at
                 )
                 INSERT INTO boxes.events (id, box_id, seq, type, sender_id, content, referrer_id, created_at)
                 SELECT $1, $2, b.last_seq, $3, $4, $5, $6, b.last_event_at FROM b
                 RETURNING {COLUMNS}"
        ),
        &[
            id.as_uuid(),
            e.box_id.as_uuid(),
            &e.kind.as_str(),
            e.sender_id.as_uuid(),
            &e.content,
            &e.referrer_id.map(EventId::into_uuid),
            &visible,
        ],
    )
    .await?;
    event_row(&row)
}

/// An event of this box, whatever its type.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn get_in_box<C: GenericClient>(c: &C, box_id: BoxId, id: EventId) -> Result<Option<EventRow>, Error> {
    let row = sql::query_opt(
        c,
        &format!("SELECT {COLUMNS} FROM boxes.events WHERE id = $1 AND box_id = $2"),
        &[id.as_uuid(), box_id.as_uuid()],
    )
    .await?;
    row.as_ref().map(event_row).transpose()
}

/// Whether a `msg.delete` refers to this message.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn is_deleted<C: GenericClient>(c: &C, message: EventId) -> Result<bool, Error> {
    let row = sql::query_opt(
        c,
        "SELECT 1 FROM boxes.events WHERE referrer_id = $1 AND type = 'msg.delete' LIMIT 1",
        &[message.as_uuid()],
    )
    .await?;
    Ok(row.is_some())
}

/// Wipes the ciphertext of a deleted message and of its edits (§6.5 SHOULD).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn wipe_message<C: GenericClient>(c: &C, message: EventId) -> Result<(), Error> {
    sql::execute(
        c,
        "UPDATE boxes.events SET content = NULL
         WHERE id = $1 OR (referrer_id = $1 AND type = 'msg.edit')",
        &[message.as_uuid()],
    )
    .await?;
    Ok(())
}

/// Whether `id` is an `access.add` of this box that no `access.rm` refers to.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn is_active_access<C: GenericClient>(c: &C, box_id: BoxId, id: EventId) -> Result<bool, Error> {
    let row = sql::query_opt(
        c,
        "SELECT 1 FROM boxes.active_access_rules WHERE id = $1 AND box_id = $2",
        &[id.as_uuid(), box_id.as_uuid()],
    )
    .await?;
    Ok(row.is_some())
}

/// The active access rules of the box, oldest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn active_accesses<C: GenericClient>(c: &C, box_id: BoxId) -> Result<Vec<EventRow>, Error> {
    let rows = sql::query(
        c,
        &format!("SELECT {COLUMNS} FROM boxes.active_access_rules WHERE box_id = $1 ORDER BY seq"),
        &[box_id.as_uuid()],
    )
    .await?;
    rows.iter().map(event_row).collect()
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn count_visible<C: GenericClient>(c: &C, box_id: BoxId) -> Result<i64, Error> {
    let row = sql::query_one(
        c,
        "SELECT count(*) AS n FROM boxes.events WHERE box_id = $1 AND type = ANY($2)",
        &[box_id.as_uuid(), &visible_types()],
    )
    .await?;
    sql::get(&row, "n")
}

/// The newest visible event of each of `boxes` (one query for the whole list).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn last_visible<C: GenericClient>(c: &C, boxes: &[BoxId]) -> Result<HashMap<BoxId, EventRow>, Error> {
    let ids: Vec<uuid::Uuid> = boxes.iter().map(|b| b.into_uuid()).collect();
    let rows = sql::query(
        c,
        &format!(
            "SELECT DISTINCT ON (box_id) {COLUMNS} FROM boxes.events
                 WHERE box_id = ANY($1) AND type = ANY($2)
                 ORDER BY box_id, seq DESC"
        ),
        &[&ids, &visible_types()],
    )
    .await?;
    rows.iter().map(|r| event_row(r).map(|e| (e.box_id, e))).collect()
}

/// The latest edit of each of `messages` (one query).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn latest_edits<C: GenericClient>(c: &C, messages: &[EventId]) -> Result<HashMap<EventId, EditState>, Error> {
    if messages.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<uuid::Uuid> = messages.iter().map(|m| m.into_uuid()).collect();
    let rows = sql::query(
        c,
        "SELECT DISTINCT ON (referrer_id) referrer_id, content, created_at FROM boxes.events
             WHERE referrer_id = ANY($1) AND type = 'msg.edit'
             ORDER BY referrer_id, seq DESC",
        &[&ids],
    )
    .await?;
    rows.iter()
        .map(|r| {
            let state = edit_state(sql::get(r, "content")?, sql::get(r, "created_at")?);
            Ok((EventId::from(sql::get::<_, uuid::Uuid>(r, "referrer_id")?), state))
        })
        .collect()
}

/// A `msg.edit`'s content as folding needs it; `new_public_key` is optional.
pub(super) fn edit_state(content: Option<Value>, at: chrono::DateTime<chrono::Utc>) -> EditState {
    let field = |k: &str| content.as_ref().and_then(|c| c.get(k)).cloned().unwrap_or(Value::Null);
    EditState { new_encrypted: field("new_encrypted"), new_public_key: field("new_public_key"), at: Timestamp(at) }
}

/// The deletion (time and deleter) of each of `messages` that was deleted (one query).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn deletions<C: GenericClient>(
    c: &C,
    messages: &[EventId],
) -> Result<HashMap<EventId, (Timestamp, IdentityId)>, Error> {
    if messages.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<uuid::Uuid> = messages.iter().map(|m| m.into_uuid()).collect();
    let rows = sql::query(
        c,
        "SELECT DISTINCT ON (referrer_id) referrer_id, sender_id, created_at FROM boxes.events
             WHERE referrer_id = ANY($1) AND type = 'msg.delete'
             ORDER BY referrer_id, seq",
        &[&ids],
    )
    .await?;
    rows.iter()
        .map(|r| {
            let at = Timestamp(sql::get(r, "created_at")?);
            let by = IdentityId::from(sql::get::<_, uuid::Uuid>(r, "sender_id")?);
            Ok((EventId::from(sql::get::<_, uuid::Uuid>(r, "referrer_id")?), (at, by)))
        })
        .collect()
}
