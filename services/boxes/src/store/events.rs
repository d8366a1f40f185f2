//! `boxes.events`: the per-box ordered log.
//!
//! Every insert takes the next sequence number of the box and a time that never goes backwards
//! within the box (§13.1). Callers hold the box row lock (`store::boxes::lock`) for the whole
//! transaction; the insert statement itself also updates the box row, so it is serialised anyway.

use std::collections::HashMap;
use std::time::SystemTime;

use domain::event::{EditState, EventType};
use domain::identity::IdentityRecord;
use domain::input::Page;
use domain::{BoxId, EventId, IdentityId, Timestamp};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::boxes::{visible_types, BoxRow};
use super::sql::JsonText;
use super::{boxes, identities, sql, GenericClient};

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
fn event_row_as<'a, C: tokio_postgres::types::FromSql<'a>>(row: &'a Row) -> EventRow<C> {
    let kind: &str = row.get(3);
    EventRow {
        id: EventId::from(row.get::<_, uuid::Uuid>(0)),
        box_id: BoxId::from(row.get::<_, uuid::Uuid>(1)),
        seq: row.get(2),
        // Only the server writes this column, always from `EventType::as_str`.
        kind: EventType::parse(kind).unwrap_or(EventType::Create),
        sender_id: IdentityId::from(row.get::<_, uuid::Uuid>(4)),
        content: row.get(5),
        referrer_id: row.get::<_, Option<uuid::Uuid>>(6).map(EventId::from),
        created_at: Timestamp(row.get(7)),
    }
}

fn event_row(row: &Row) -> EventRow {
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
pub async fn insert<C: GenericClient>(c: &C, e: &NewEventRow<'_>) -> Result<EventRow, tokio_postgres::Error> {
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
    Ok(event_row(&row))
}

/// An event of this box, whatever its type.
pub async fn get_in_box<C: GenericClient>(
    c: &C,
    box_id: BoxId,
    id: EventId,
) -> Result<Option<EventRow>, tokio_postgres::Error> {
    let row = sql::query_opt(
        c,
        &format!("SELECT {COLUMNS} FROM boxes.events WHERE id = $1 AND box_id = $2"),
        &[id.as_uuid(), box_id.as_uuid()],
    )
    .await?;
    Ok(row.as_ref().map(event_row))
}

/// Whether a `msg.delete` refers to this message.
pub async fn is_deleted<C: GenericClient>(c: &C, message: EventId) -> Result<bool, tokio_postgres::Error> {
    let row = sql::query_opt(
        c,
        "SELECT 1 FROM boxes.events WHERE referrer_id = $1 AND type = 'msg.delete' LIMIT 1",
        &[message.as_uuid()],
    )
    .await?;
    Ok(row.is_some())
}

/// Wipes the ciphertext of a deleted message and of its edits (§6.5 SHOULD).
pub async fn wipe_message<C: GenericClient>(c: &C, message: EventId) -> Result<(), tokio_postgres::Error> {
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
pub async fn is_active_access<C: GenericClient>(
    c: &C,
    box_id: BoxId,
    id: EventId,
) -> Result<bool, tokio_postgres::Error> {
    let row = sql::query_opt(
        c,
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
    let rows = sql::query(
        c,
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
pub async fn list_visible<C: GenericClient>(
    c: &C,
    box_id: BoxId,
    page: Page,
) -> Result<Vec<EventRow>, tokio_postgres::Error> {
    let rows = sql::query(
        c,
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
    let row = sql::query_one(
        c,
        "SELECT count(*) AS n FROM boxes.events WHERE box_id = $1 AND type = ANY($2)",
        &[box_id.as_uuid(), &visible_types()],
    )
    .await?;
    Ok(row.get("n"))
}

/// The newest visible event of each of `boxes` (one query for the whole list).
pub async fn last_visible<C: GenericClient>(
    c: &C,
    boxes: &[BoxId],
) -> Result<HashMap<BoxId, EventRow>, tokio_postgres::Error> {
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
    Ok(rows.iter().map(event_row).map(|e| (e.box_id, e)).collect())
}

/// The latest edit of each of `messages` (one query).
pub async fn latest_edits<C: GenericClient>(
    c: &C,
    messages: &[EventId],
) -> Result<HashMap<EventId, EditState>, tokio_postgres::Error> {
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
    Ok(rows
        .iter()
        .map(|r| {
            let content: Option<Value> = r.get("content");
            let field = |k: &str| content.as_ref().and_then(|c| c.get(k)).cloned().unwrap_or(Value::Null);
            let state = EditState {
                new_encrypted: field("new_encrypted"),
                new_public_key: field("new_public_key"),
                at: Timestamp(r.get("created_at")),
            };
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
    let rows = sql::query(
        c,
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

// ---- the hot paths: one round trip each ----

/// What [`post_message`] found and did.
#[derive(Debug)]
pub struct PostedMessage {
    /// The sender's identity; `None` when `sub` names no identity (§3.3 step 3).
    pub sender: Option<IdentityRecord>,
    /// The box, `None` when it does not exist.
    pub bx: Option<BoxRow>,
    /// The inserted event, `None` when the sender is not a member (or the box does not exist).
    pub event: Option<EventRow>,
    /// The members after the insert, the admin first, each with whether it muted the box.
    pub members: Vec<(IdentityId, bool)>,
}

const POST_IDENTITY: &str = concat!("SELECT ", identity_columns!(), " FROM boxes.identities WHERE id = $1");
const POST_LOCK: &str = concat!("SELECT ", box_columns!(), " FROM boxes.boxes WHERE id = $1 FOR UPDATE");
/// [`insert`] for a sender that must be a member: the membership is read after the box lock
/// was taken (by the previous statement of the transaction), so it is current.
const POST_INSERT: &str = concat!(
    "WITH t AS (
         SELECT greatest(clock_timestamp(), last_event_at) AS at FROM boxes.boxes
         WHERE id = $2 AND EXISTS (SELECT 1 FROM boxes.members WHERE box_id = $2 AND identity_id = $4)
         FOR UPDATE
     ), b AS (
         UPDATE boxes.boxes SET last_seq = last_seq + 1, last_event_at = t.at,
             last_visible_at = CASE WHEN $6 THEN t.at ELSE last_visible_at END
         FROM t WHERE id = $2
         RETURNING last_seq, last_event_at
     )
     INSERT INTO boxes.events (id, box_id, seq, type, sender_id, content, referrer_id, created_at)
     SELECT $1, $2, b.last_seq, $3, $4, $5, NULL, b.last_event_at FROM b
     RETURNING ",
    event_columns!()
);
const POST_DEADLINE: &str = "SELECT boxes.check_deadline($1)";
/// `boxes::member_ids` and `settings::muted_among` in one statement.
const POST_MEMBERS: &str = "SELECT m.identity_id, COALESCE(s.muted, false) AS muted
     FROM boxes.members m JOIN boxes.boxes b ON b.id = m.box_id
     LEFT JOIN boxes.box_settings s ON s.box_id = m.box_id AND s.identity_id = m.identity_id
     WHERE m.box_id = $1 ORDER BY (m.identity_id = b.creator_id) DESC, m.joined_seq, m.identity_id";

/// Posts a message (`msg.text`, `msg.file`: no referrer, the sender must be a member) in one
/// transaction sent as a single pipeline: `BEGIN`, the sender's identity, the box lock, the
/// insert (only if the sender is a member once the lock is held), the members with their muted
/// flag, a check of `deadline`, `COMMIT`. When the sender is unknown or not a member nothing is
/// inserted and the commit only releases the lock. If a statement fails, the ones after it fail
/// too and `COMMIT` rolls the transaction back.
///
/// `COMMIT` leaves with the rest, so without the check a transaction held up by PostgreSQL (a
/// freeze) past the caller's deadline would still commit once PostgreSQL resumes, after the
/// caller has given up and answered. The check fails it instead when PostgreSQL reaches it too
/// late; `on_no_return` runs when the check's answer arrives, from which point only `COMMIT`
/// remains and the outcome is settled by PostgreSQL alone.
pub async fn post_message<C: GenericClient>(
    c: &C,
    box_id: BoxId,
    sender: IdentityId,
    kind: EventType,
    content: Option<&Value>,
    deadline: Option<SystemTime>,
    on_no_return: impl FnOnce(),
) -> Result<PostedMessage, tokio_postgres::Error> {
    let (identity, lock, insert, members, check) = futures_util::try_join!(
        c.prepare_cached(POST_IDENTITY),
        c.prepare_cached(POST_LOCK),
        c.prepare_cached(POST_INSERT),
        c.prepare_cached(POST_MEMBERS),
        c.prepare_cached(POST_DEADLINE),
    )?;
    let id = EventId::new_v4();
    let visible = kind.is_visible();
    let kind = kind.as_str();
    let sender_params: [&(dyn ToSql + Sync); 1] = [sender.as_uuid()];
    let box_params: [&(dyn ToSql + Sync); 1] = [box_id.as_uuid()];
    let insert_params: [&(dyn ToSql + Sync); 6] =
        [id.as_uuid(), box_id.as_uuid(), &kind, sender.as_uuid(), &content, &visible];
    let deadline_params: [&(dyn ToSql + Sync); 1] = [&deadline];
    let checked = async {
        let done = c.execute(&check, &deadline_params).await;
        if done.is_ok() {
            on_no_return();
        }
        done
    };
    // Every request is queued on the connection when the futures are first polled, in this
    // order, so the whole transaction leaves in one write even if this future is dropped.
    let (_, sender_row, box_row, event_row_, member_rows, _, _) = futures_util::try_join!(
        c.batch_execute("BEGIN"),
        c.query_opt(&identity, &sender_params),
        c.query_opt(&lock, &box_params),
        c.query_opt(&insert, &insert_params),
        c.query(&members, &box_params),
        checked,
        c.batch_execute("COMMIT"),
    )?;
    Ok(PostedMessage {
        sender: sender_row.as_ref().map(identities::record),
        bx: box_row.as_ref().map(boxes::box_row),
        event: event_row_.as_ref().map(event_row),
        members: member_rows
            .iter()
            .map(|r| (IdentityId::from(r.get::<_, uuid::Uuid>("identity_id")), r.get::<_, bool>("muted")))
            .collect(),
    })
}

/// A visible event of a page with what folding it needs (§6.5) and the identities it names.
#[derive(Debug)]
pub struct FoldedRow {
    /// The event, its content as stored: most of a page is passed through unchanged.
    pub event: EventRow<JsonText>,
    /// The latest edit of a message.
    pub edit: Option<EditState>,
    /// The first deletion of a message: when and by whom.
    pub deletion: Option<(Timestamp, IdentityId)>,
    pub sender: Option<IdentityRecord>,
    pub deleter: Option<IdentityRecord>,
}

/// What [`page_folded`] read.
#[derive(Debug)]
pub struct FoldedPage {
    /// Whether the reader names an identity (§3.3 step 3).
    pub reader_known: bool,
    /// The box, and whether the reader is a member; `None` when the box does not exist.
    pub bx: Option<(BoxRow, bool)>,
    /// The page, newest first; empty when the reader is not a member.
    pub rows: Vec<FoldedRow>,
}

const PAGE_READER: &str = "SELECT 1 FROM boxes.identities WHERE id = $1";
const PAGE_BOX: &str = concat!(
    "SELECT ",
    box_columns!(),
    ", EXISTS (SELECT 1 FROM boxes.members m WHERE m.box_id = $1 AND m.identity_id = $2) AS is_member
     FROM boxes.boxes WHERE id = $1"
);

/// The page statement: which events (`$filter`) and in which order (`$order`, by `seq`).
macro_rules! page_rows {
    ($filter:literal, $order:literal) => {
        concat!(
            "WITH e AS MATERIALIZED (
         SELECT ",
            event_columns!(),
            " FROM boxes.events
         WHERE box_id = $1 AND ",
            $filter,
            "
           AND EXISTS (SELECT 1 FROM boxes.members WHERE box_id = $1 AND identity_id = $5)
         ORDER BY seq ",
            $order,
            " OFFSET $3 LIMIT $4
     ), f AS MATERIALIZED (
         SELECT DISTINCT ON (x.referrer_id, x.type) x.referrer_id, x.type, x.content, x.sender_id, x.created_at
         FROM boxes.events x
         WHERE x.referrer_id = ANY (ARRAY(SELECT id FROM e WHERE type IN ('msg.text', 'msg.file')))
           AND x.type IN ('msg.edit', 'msg.delete')
         ORDER BY x.referrer_id, x.type, CASE WHEN x.type = 'msg.edit' THEN -x.seq ELSE x.seq END
     )
     SELECT e.id, e.box_id, e.seq, e.type, e.sender_id, e.content, e.referrer_id, e.created_at,
            ed.content, ed.created_at, dl.sender_id, dl.created_at,
            s.id, s.display_name, s.identifier_value, s.identifier_kind, s.pubkey, s.non_identified_pubkey, s.created_at,
            d.id, d.display_name, d.identifier_value, d.identifier_kind, d.pubkey, d.non_identified_pubkey, d.created_at
     FROM e
     LEFT JOIN f ed ON ed.referrer_id = e.id AND ed.type = 'msg.edit'
     LEFT JOIN f dl ON dl.referrer_id = e.id AND dl.type = 'msg.delete'
     LEFT JOIN boxes.identities s ON s.id = e.sender_id
     LEFT JOIN boxes.identities d ON d.id = dl.sender_id
     ORDER BY e.seq ",
            $order
        )
    };
}

/// [`list_visible`] (for members only), each row with the latest edit and the first deletion of
/// a message ([`latest_edits`], [`deletions`]) and the sender's and deleter's identities.
///
/// The edits and deletions of the page's messages are read by one index scan over all of them
/// (`referrer_id = ANY`), not by a probe per row and per kind: the probes, each with its own
/// sort, cost more than the rest of the statement.
const PAGE_ROWS: &str = page_rows!("type = ANY($2)", "DESC");

/// The cursor form (`?after=$6`), oldest first: the visible events after the cursor, folded, and
/// the edits and deletions after it of messages at or before it, as the modifier events, so a
/// client holding everything up to the cursor ends up with the box as a fresh page shows it.
/// Grants (`access.*`) stay out, as in every listing.
const PAGE_ROWS_AFTER: &str = page_rows!(
    "seq > $6 AND (type = ANY($2) OR (type IN ('msg.edit', 'msg.delete')
           AND (SELECT r.seq FROM boxes.events r WHERE r.id = boxes.events.referrer_id) <= $6))",
    "ASC"
);

fn folded_row(row: &Row) -> FoldedRow {
    let edit = row.get::<_, Option<chrono::DateTime<chrono::Utc>>>(9).map(|at| {
        let content: Option<Value> = row.get(8);
        let field = |k: &str| content.as_ref().and_then(|c| c.get(k)).cloned().unwrap_or(Value::Null);
        EditState { new_encrypted: field("new_encrypted"), new_public_key: field("new_public_key"), at: Timestamp(at) }
    });
    let deletion = row
        .get::<_, Option<chrono::DateTime<chrono::Utc>>>(11)
        .zip(row.get::<_, Option<uuid::Uuid>>(10))
        .map(|(at, by)| (Timestamp(at), IdentityId::from(by)));
    FoldedRow {
        event: event_row_as(row),
        edit,
        deletion,
        sender: identities::record_at(row, 12),
        deleter: identities::record_at(row, 19),
    }
}

/// `GET /boxes/{id}/events` in one round trip: whether the reader is known, the box and the
/// reader's membership, and the folded page (three statements, pipelined). With `after`, the
/// page is [`PAGE_ROWS_AFTER`]'s, oldest first.
pub async fn page_folded<C: GenericClient>(
    c: &C,
    box_id: BoxId,
    reader: IdentityId,
    page: Page,
    after: Option<i64>,
) -> Result<FoldedPage, tokio_postgres::Error> {
    let (known, bx, rows) = futures_util::try_join!(
        c.prepare_cached(PAGE_READER),
        c.prepare_cached(PAGE_BOX),
        c.prepare_cached(if after.is_some() { PAGE_ROWS_AFTER } else { PAGE_ROWS })
    )?;
    let types = visible_types();
    let reader_params: [&(dyn ToSql + Sync); 1] = [reader.as_uuid()];
    let box_params: [&(dyn ToSql + Sync); 2] = [box_id.as_uuid(), reader.as_uuid()];
    let cursor = after.unwrap_or(0);
    let mut rows_params: Vec<&(dyn ToSql + Sync)> =
        vec![box_id.as_uuid(), &types, &page.offset, &page.limit, reader.as_uuid()];
    if after.is_some() {
        rows_params.push(&cursor);
    }
    let (known, bx, rows) = futures_util::try_join!(
        c.query_opt(&known, &reader_params),
        c.query_opt(&bx, &box_params),
        c.query(&rows, &rows_params[..]),
    )?;
    Ok(FoldedPage {
        reader_known: known.is_some(),
        bx: bx.as_ref().map(|r| (boxes::box_row(r), r.get::<_, bool>("is_member"))),
        rows: rows.iter().map(folded_row).collect(),
    })
}
