//! `boxes.events`: the per-box ordered log.
//!
//! Every insert takes the next sequence number of the box and a time that never goes backwards
//! within the box (§13.1). Callers hold the box row lock (`store::boxes::lock`) for the whole
//! transaction; the insert statement itself also updates the box row, so it is serialised anyway.

use std::collections::HashMap;

use domain::event::{EditState, EventType};
use domain::input::Page;
use domain::{BoxId, EventId, IdentityId, Timestamp};
use serde_json::Value;
use tokio_postgres::Row;

use super::boxes::visible_types;
use super::GenericClient;

const COLUMNS: &str = "id, box_id, seq, type, sender_id, content, referrer_id, created_at";

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: EventId,
    pub box_id: BoxId,
    pub seq: i64,
    pub kind: EventType,
    pub sender_id: IdentityId,
    pub content: Option<Value>,
    pub referrer_id: Option<EventId>,
    pub created_at: Timestamp,
}

fn event_row(row: &Row) -> EventRow {
    let kind: String = row.get("type");
    EventRow {
        id: EventId::from(row.get::<_, uuid::Uuid>("id")),
        box_id: BoxId::from(row.get::<_, uuid::Uuid>("box_id")),
        seq: row.get("seq"),
        // Only the server writes this column, always from `EventType::as_str`.
        kind: EventType::parse(&kind).unwrap_or(EventType::Create),
        sender_id: IdentityId::from(row.get::<_, uuid::Uuid>("sender_id")),
        content: row.get("content"),
        referrer_id: row.get::<_, Option<uuid::Uuid>>("referrer_id").map(EventId::from),
        created_at: Timestamp(row.get("created_at")),
    }
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
pub async fn insert<C: GenericClient>(c: &C, e: &NewEventRow<'_>) -> Result<EventRow, tokio_postgres::Error> {
    let id = EventId::new_v4();
    let visible = e.kind.is_visible();
    let row = c
        .query_one(
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
    Ok(event_row(&row))
}

/// An event of this box, whatever its type.
pub async fn get_in_box<C: GenericClient>(c: &C, box_id: BoxId, id: EventId) -> Result<Option<EventRow>, tokio_postgres::Error> {
    let row = c
        .query_opt(&format!("SELECT {COLUMNS} FROM boxes.events WHERE id = $1 AND box_id = $2"), &[id.as_uuid(), box_id.as_uuid()])
        .await?;
    Ok(row.as_ref().map(event_row))
}

/// Whether a `msg.delete` refers to this message.
pub async fn is_deleted<C: GenericClient>(c: &C, message: EventId) -> Result<bool, tokio_postgres::Error> {
    let row = c
        .query_opt("SELECT 1 FROM boxes.events WHERE referrer_id = $1 AND type = 'msg.delete' LIMIT 1", &[message.as_uuid()])
        .await?;
    Ok(row.is_some())
}

/// Wipes the ciphertext of a deleted message and of its edits (§6.5 SHOULD).
pub async fn wipe_message<C: GenericClient>(c: &C, message: EventId) -> Result<(), tokio_postgres::Error> {
    c.execute(
        "UPDATE boxes.events SET content = NULL
         WHERE id = $1 OR (referrer_id = $1 AND type = 'msg.edit')",
        &[message.as_uuid()],
    )
    .await?;
    Ok(())
}

/// Whether `id` is an `access.add` of this box that no `access.rm` refers to.
pub async fn is_active_access<C: GenericClient>(c: &C, box_id: BoxId, id: EventId) -> Result<bool, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "SELECT 1 FROM boxes.events a
             WHERE a.id = $1 AND a.box_id = $2 AND a.type = 'access.add'
               AND NOT EXISTS (SELECT 1 FROM boxes.events r
                               WHERE r.box_id = a.box_id AND r.type = 'access.rm' AND r.referrer_id = a.id)",
            &[id.as_uuid(), box_id.as_uuid()],
        )
        .await?;
    Ok(row.is_some())
}

/// The active access rules of the box, oldest first.
pub async fn active_accesses<C: GenericClient>(c: &C, box_id: BoxId) -> Result<Vec<EventRow>, tokio_postgres::Error> {
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM boxes.events a
                 WHERE a.box_id = $1 AND a.type = 'access.add'
                   AND NOT EXISTS (SELECT 1 FROM boxes.events r
                                   WHERE r.box_id = a.box_id AND r.type = 'access.rm' AND r.referrer_id = a.id)
                 ORDER BY a.seq"
            ),
            &[box_id.as_uuid()],
        )
        .await?;
    Ok(rows.iter().map(event_row).collect())
}

/// Visible events of the box, newest first.
pub async fn list_visible<C: GenericClient>(c: &C, box_id: BoxId, page: Page) -> Result<Vec<EventRow>, tokio_postgres::Error> {
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM boxes.events WHERE box_id = $1 AND type = ANY($2)
                 ORDER BY seq DESC OFFSET $3 LIMIT $4"
            ),
            &[box_id.as_uuid(), &visible_types(), &page.offset, &page.limit],
        )
        .await?;
    Ok(rows.iter().map(event_row).collect())
}

pub async fn count_visible<C: GenericClient>(c: &C, box_id: BoxId) -> Result<i64, tokio_postgres::Error> {
    let row = c
        .query_one("SELECT count(*) AS n FROM boxes.events WHERE box_id = $1 AND type = ANY($2)", &[box_id.as_uuid(), &visible_types()])
        .await?;
    Ok(row.get("n"))
}

/// The newest visible event of each of `boxes` (one query for the whole list).
pub async fn last_visible<C: GenericClient>(c: &C, boxes: &[BoxId]) -> Result<HashMap<BoxId, EventRow>, tokio_postgres::Error> {
    let ids: Vec<uuid::Uuid> = boxes.iter().map(|b| b.into_uuid()).collect();
    let rows = c
        .query(
            &format!(
                "SELECT DISTINCT ON (box_id) {COLUMNS} FROM boxes.events
                 WHERE box_id = ANY($1) AND type = ANY($2)
                 ORDER BY box_id, seq DESC"
            ),
            &[&ids, &visible_types()],
        )
        .await?;
    Ok(rows.iter().map(event_row).map(|e| (e.box_id, e)).collect())
}

/// The latest edit of each of `messages` (one query).
pub async fn latest_edits<C: GenericClient>(c: &C, messages: &[EventId]) -> Result<HashMap<EventId, EditState>, tokio_postgres::Error> {
    if messages.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<uuid::Uuid> = messages.iter().map(|m| m.into_uuid()).collect();
    let rows = c
        .query(
            "SELECT DISTINCT ON (referrer_id) referrer_id, content, created_at FROM boxes.events
             WHERE referrer_id = ANY($1) AND type = 'msg.edit'
             ORDER BY referrer_id, seq DESC",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let content: Option<Value> = r.get("content");
            let field = |k: &str| content.as_ref().and_then(|c| c.get(k)).cloned().unwrap_or(Value::Null);
            let state =
                EditState { new_encrypted: field("new_encrypted"), new_public_key: field("new_public_key"), at: Timestamp(r.get("created_at")) };
            (EventId::from(r.get::<_, uuid::Uuid>("referrer_id")), state)
        })
        .collect())
}

/// The deletion (time and deleter) of each of `messages` that was deleted (one query).
pub async fn deletions<C: GenericClient>(
    c: &C,
    messages: &[EventId],
) -> Result<HashMap<EventId, (Timestamp, IdentityId)>, tokio_postgres::Error> {
    if messages.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<uuid::Uuid> = messages.iter().map(|m| m.into_uuid()).collect();
    let rows = c
        .query(
            "SELECT DISTINCT ON (referrer_id) referrer_id, sender_id, created_at FROM boxes.events
             WHERE referrer_id = ANY($1) AND type = 'msg.delete'
             ORDER BY referrer_id, seq",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                EventId::from(r.get::<_, uuid::Uuid>("referrer_id")),
                (Timestamp(r.get("created_at")), IdentityId::from(r.get::<_, uuid::Uuid>("sender_id"))),
            )
        })
        .collect())
}
