//! The two requests measured in `BENCHMARKS.md` (scenario 1, posting a message; scenario 2, a
//! page of events), each as one round trip to PostgreSQL; posts are also grouped, many to a
//! transaction (`crate::posts`).
//!
//! Everything else in `store/` sends one statement at a time and lets the caller hold the
//! transaction. These two are the most frequent requests, and there the round trips dominated:
//! here every statement of the request, the identity check of authentication included, is
//! queued on the connection at once (pipelined) and the answers are read together. Posted
//! messages, edits and deletions follow the rules of `rules::messages`, and a page is folded as
//! `load::EventContext` folds events elsewhere: a change to the rules of §6.3 for messages or to
//! folding (§6.5) must be made in both places.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::TryFutureExt;

use domain::event::{EditState, EventType};
use domain::identity::IdentityRecord;
use domain::input::Page;
use domain::{BoxId, EventId, IdentityId, Timestamp};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::boxes::{visible_types, BoxRow};
use super::error::step;
use super::events::{edit_state, event_row_as, EventRow};
use super::sql::JsonText;
use super::{boxes, identities, sql, Error, GenericClient};

/// One message event of a batch, validated: a `msg.text` or `msg.file`, or a `msg.edit` or
/// `msg.delete` of a `msg.text` (`referrer_id`).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: EventId,
    pub box_id: BoxId,
    pub sender: IdentityId,
    pub kind: EventType,
    pub content: Option<Value>,
    pub referrer_id: Option<EventId>,
}

/// What [`post_messages`] found and did for one message.
#[derive(Debug)]
pub struct PostedMessage {
    /// The sender's identity; `None` when `sub` names no identity (§3.3 step 3).
    pub sender: Option<IdentityRecord>,
    /// The box, `None` when it does not exist.
    pub bx: Option<BoxRow>,
    /// The inserted event, its content as stored; `None` when the rules of §6.3 did not let it in
    /// (see [`POST_INSERT`]).
    pub event: Option<EventRow<JsonText>>,
    /// The box's members after the batch, the admin first, each with whether it muted the box.
    pub members: Arc<[(IdentityId, bool)]>,
}

const POST_IDENTITIES: &str = concat!("SELECT ", identity_columns!(), " FROM boxes.identities WHERE id = ANY($1)");
/// The boxes' locks, taken in one order (by id) so two batches never wait for each other in a cycle.
const POST_LOCK: &str =
    concat!("SELECT ", box_columns!(), " FROM boxes.boxes WHERE id = ANY($1) ORDER BY id FOR UPDATE");
/// `events::insert` for many messages at once, each kept only if the rules of §6.3 let it in:
/// the sender is a member and, for an edit or a deletion, the referred event is a `msg.text` of
/// the box, not deleted, by the sender (or, for a deletion, the sender is the admin). The rules
/// are read after the previous statement of the transaction took the box locks, so they are
/// current. A refused edit or deletion is left for `rules::messages`, which tells why (and
/// handles the deletion of a `msg.file`, whose blob goes with it); a batch never holds two
/// changes of one message (`crate::posts`), since this statement sees the events as they were
/// before it. The messages of one box take consecutive sequence numbers in the order given, and
/// one time, which never goes backwards within the box.
const POST_INSERT: &str = concat!(
    "WITH r AS (
         SELECT r.* FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::jsonb[], $6::bool[], $7::uuid[])
             WITH ORDINALITY AS r(id, box_id, type, sender_id, content, visible, referrer_id, n)
         WHERE EXISTS (SELECT 1 FROM boxes.members m WHERE m.box_id = r.box_id AND m.identity_id = r.sender_id)
           AND (r.referrer_id IS NULL OR EXISTS (
               SELECT 1 FROM boxes.events t JOIN boxes.boxes x ON x.id = t.box_id
               WHERE t.id = r.referrer_id AND t.box_id = r.box_id AND t.type = 'msg.text'
                 AND (t.sender_id = r.sender_id OR (r.type = 'msg.delete' AND x.creator_id = r.sender_id))
                 AND NOT EXISTS (SELECT 1 FROM boxes.events d WHERE d.referrer_id = t.id AND d.type = 'msg.delete')))
     ), p AS (
         SELECT box_id, count(*) AS added, bool_or(visible) AS visible, clock_timestamp() AS now
         FROM r GROUP BY box_id
     ), b AS (
         UPDATE boxes.boxes x SET last_seq = x.last_seq + p.added,
             last_event_at = greatest(p.now, x.last_event_at),
             last_visible_at = CASE WHEN p.visible THEN greatest(p.now, x.last_event_at) ELSE x.last_visible_at END
         FROM p WHERE x.id = p.box_id
         RETURNING x.id, x.last_seq - p.added AS base, x.last_event_at AS at
     )
     INSERT INTO boxes.events (id, box_id, seq, type, sender_id, content, referrer_id, created_at)
     SELECT r.id, r.box_id, b.base + row_number() OVER (PARTITION BY r.box_id ORDER BY r.n), r.type, r.sender_id,
            r.content, r.referrer_id, b.at
     FROM r JOIN b ON b.id = r.box_id
     RETURNING ",
    event_columns!()
);
/// The messages deleted by the deletions of the batch that went in (`$1`, their ids), and those
/// messages' edits: their ciphertext goes (`events::wipe_message`). An array, so the updates find
/// their rows through an index.
macro_rules! wiped_ids {
    () => {
        "ARRAY(SELECT referrer_id FROM boxes.events WHERE id = ANY($1) AND type = 'msg.delete'
               UNION ALL
               SELECT e.id FROM boxes.events d JOIN boxes.events e ON e.referrer_id = d.referrer_id
               WHERE d.id = ANY($1) AND d.type = 'msg.delete' AND e.type = 'msg.edit')"
    };
}
const POST_WIPE: &str = concat!("UPDATE boxes.events SET content = NULL WHERE id = ANY (", wiped_ids!(), ")");
/// ... and the answers stored for their idempotency keys (`idempotency::wipe_message`).
const POST_WIPE_ANSWERS: &str =
    concat!("UPDATE boxes.idempotency_keys SET body = NULL WHERE event_id = ANY (", wiped_ids!(), ")");
const POST_DEADLINE: &str = "SELECT boxes.check_deadline($1)";
/// `boxes::member_ids` and `settings::muted_among` of every box of the batch in one statement,
/// each box's members in the order they joined (the admin is moved first from the box rows).
const POST_MEMBERS: &str = "SELECT m.box_id, m.identity_id,
            COALESCE((SELECT s.muted FROM boxes.box_settings s
                      WHERE s.box_id = m.box_id AND s.identity_id = m.identity_id), false) AS muted
     FROM boxes.members m
     WHERE m.box_id = ANY($1)
     ORDER BY m.box_id, m.joined_seq, m.identity_id";
/// Opens a post transaction. Its statements run with generic plans: planned once per connection
/// instead of for every transaction. PostgreSQL would otherwise plan them anew each time, since
/// it rates a generic plan of a statement over arrays (`unnest`, `= ANY`) above a plan for the
/// arrays given, and planning `POST_INSERT` alone cost more CPU than pgbench's whole insert
/// (`BENCHMARKS.md`, "a post planned once per connection"). Every statement above reaches its
/// rows through an index for any parameters (`tests/api/plans.rs`).
const POST_BEGIN: &str = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan";

/// The statements of a post transaction, for the test of their plans.
pub const POST_STATEMENTS: [&str; 7] =
    [POST_IDENTITIES, POST_LOCK, POST_INSERT, POST_WIPE, POST_WIPE_ANSWERS, POST_MEMBERS, POST_DEADLINE];

/// Posts message events in one transaction sent as a single pipeline: [`POST_BEGIN`], the senders'
/// identities, the boxes' locks, the inserts ([`POST_INSERT`]), for deletions the wiping of
/// the deleted messages, the members of the boxes with their muted flag, a check of `deadline`,
/// `COMMIT`. The answers are in the order of `batch`; a message whose sender is unknown, or that
/// the rules refused, is not inserted. If a statement fails, the ones after it fail too and
/// `COMMIT` rolls the transaction back.
///
/// `COMMIT` leaves with the rest, so without the check a transaction held up by PostgreSQL (a
/// freeze) past the caller's deadline would still commit once PostgreSQL resumes, after the
/// caller has given up and answered. The check fails it instead when PostgreSQL reaches it too
/// late; `on_no_return` runs when the check's answer arrives, from which point only `COMMIT`
/// remains and the outcome is settled by PostgreSQL alone.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn post_messages<C: GenericClient>(
    c: &C,
    batch: &[NewMessage],
    deadline: Option<SystemTime>,
    on_no_return: impl FnOnce(),
) -> Result<Vec<PostedMessage>, Error> {
    let (identities, lock, insert, members, check) = futures_util::try_join!(
        c.prepare_cached(POST_IDENTITIES),
        c.prepare_cached(POST_LOCK),
        c.prepare_cached(POST_INSERT),
        c.prepare_cached(POST_MEMBERS),
        c.prepare_cached(POST_DEADLINE),
    )
    .map_err(step())?;
    let deletions: Vec<uuid::Uuid> =
        batch.iter().filter(|m| m.kind == EventType::MsgDelete).map(|m| m.id.into_uuid()).collect();
    let wipes = if deletions.is_empty() {
        None
    } else {
        Some(futures_util::try_join!(c.prepare_cached(POST_WIPE), c.prepare_cached(POST_WIPE_ANSWERS)).map_err(step())?)
    };
    let mut senders: Vec<uuid::Uuid> = batch.iter().map(|m| m.sender.into_uuid()).collect();
    senders.sort_unstable();
    senders.dedup();
    let mut boxes_: Vec<uuid::Uuid> = batch.iter().map(|m| m.box_id.into_uuid()).collect();
    boxes_.sort_unstable();
    boxes_.dedup();
    let ids: Vec<uuid::Uuid> = batch.iter().map(|m| m.id.into_uuid()).collect();
    let box_ids: Vec<uuid::Uuid> = batch.iter().map(|m| m.box_id.into_uuid()).collect();
    let kinds: Vec<&str> = batch.iter().map(|m| m.kind.as_str()).collect();
    let sender_ids: Vec<uuid::Uuid> = batch.iter().map(|m| m.sender.into_uuid()).collect();
    let contents: Vec<Option<&Value>> = batch.iter().map(|m| m.content.as_ref()).collect();
    let visible: Vec<bool> = batch.iter().map(|m| m.kind.is_visible()).collect();
    let referrers: Vec<Option<uuid::Uuid>> = batch.iter().map(|m| m.referrer_id.map(EventId::into_uuid)).collect();
    let sender_params: [&(dyn ToSql + Sync); 1] = [&senders];
    let box_params: [&(dyn ToSql + Sync); 1] = [&boxes_];
    let insert_params: [&(dyn ToSql + Sync); 7] =
        [&ids, &box_ids, &kinds, &sender_ids, &contents, &visible, &referrers];
    let deletion_params: [&(dyn ToSql + Sync); 1] = [&deletions];
    // Only a batch with deletions sends the two wiping statements.
    let wiped = async {
        if let Some((wipe, wipe_answers)) = &wipes {
            futures_util::try_join!(
                c.execute(wipe, &deletion_params).map_err(step()),
                c.execute(wipe_answers, &deletion_params).map_err(step())
            )?;
        }
        Ok(())
    };
    let deadline_params: [&(dyn ToSql + Sync); 1] = [&deadline];
    let checked = async {
        let done = c.execute(&check, &deadline_params).await.map_err(step());
        if done.is_ok() {
            on_no_return();
        }
        done
    };
    // Every request is queued on the connection when the futures are first polled, in this
    // order, so the whole transaction leaves in one write even if this future is dropped.
    let answers = futures_util::try_join!(
        c.batch_execute(POST_BEGIN).map_err(step()),
        c.query(&identities, &sender_params).map_err(step()),
        c.query(&lock, &box_params).map_err(step()),
        c.query(&insert, &insert_params).map_err(step()),
        wiped,
        c.query(&members, &box_params).map_err(step()),
        checked,
        c.batch_execute("COMMIT").map_err(step()),
    );
    let (_, sender_rows, box_rows, event_rows, (), member_rows, _, _) = match answers {
        Ok(answers) => answers,
        // The join ends at the first failure and drops the statements still waiting for their
        // answers; the next transaction on this connection was seen to meet this one still open
        // (25P02). An explicit ROLLBACK, queued behind them, leaves the connection outside any
        // transaction for its next user; after a COMMIT that did arrive it is a no-op.
        Err(e) => {
            if let Err(rollback) = c.batch_execute("ROLLBACK").await {
                tracing::warn!(error = %rollback, "rolling back a failed post transaction");
            }
            return Err(e);
        }
    };

    let senders: HashMap<IdentityId, IdentityRecord> =
        sender_rows.iter().map(|r| identities::record(r).map(|i| (i.id, i))).collect::<Result<_, _>>()?;
    let boxes_: HashMap<BoxId, BoxRow> =
        box_rows.iter().map(|r| boxes::box_row(r).map(|b| (b.id, b))).collect::<Result<_, _>>()?;
    let mut events: HashMap<EventId, EventRow<JsonText>> =
        event_rows.iter().map(|r| event_row_as(r).map(|e| (e.id, e))).collect::<Result<_, _>>()?;
    let mut members: HashMap<BoxId, Vec<(IdentityId, bool)>> = HashMap::new();
    for r in &member_rows {
        let box_id = BoxId::from(sql::get::<_, uuid::Uuid>(r, 0)?);
        let member = (IdentityId::from(sql::get::<_, uuid::Uuid>(r, 1)?), sql::get::<_, bool>(r, 2)?);
        members.entry(box_id).or_default().push(member);
    }
    let members: HashMap<BoxId, Arc<[(IdentityId, bool)]>> = members
        .into_iter()
        .map(|(id, mut list)| {
            let admin = boxes_.get(&id).map(|b| b.creator_id);
            if let Some(at) = list.iter().position(|(member, _)| Some(*member) == admin) {
                list[..=at].rotate_right(1);
            }
            (id, Arc::from(list))
        })
        .collect();
    let none: Arc<[(IdentityId, bool)]> = Arc::from(Vec::new());
    Ok(batch
        .iter()
        .map(|m| PostedMessage {
            sender: senders.get(&m.sender).cloned(),
            bx: boxes_.get(&m.box_id).cloned(),
            event: events.remove(&m.id),
            members: members.get(&m.box_id).cloned().unwrap_or_else(|| none.clone()),
        })
        .collect())
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

/// The visible events of the box, newest first (for members only), each row with the latest edit
/// and the first deletion of a message (`events::latest_edits`, `events::deletions`) and the
/// sender's and deleter's identities.
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

fn folded_row(row: &Row) -> Result<FoldedRow, Error> {
    let edit = match sql::get::<_, Option<chrono::DateTime<chrono::Utc>>>(row, 9)? {
        Some(at) => Some(edit_state(sql::get(row, 8)?, at)),
        None => None,
    };
    let deletion = sql::get::<_, Option<chrono::DateTime<chrono::Utc>>>(row, 11)?
        .zip(sql::get::<_, Option<uuid::Uuid>>(row, 10)?)
        .map(|(at, by)| (Timestamp(at), IdentityId::from(by)));
    Ok(FoldedRow {
        event: event_row_as(row)?,
        edit,
        deletion,
        sender: identities::record_at(row, 12)?,
        deleter: identities::record_at(row, 19)?,
    })
}

/// `GET /boxes/{id}/events` in one round trip: whether the reader is known, the box and the
/// reader's membership, and the folded page (three statements, pipelined). With `after`, the
/// page is [`PAGE_ROWS_AFTER`]'s, oldest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn page_folded<C: GenericClient>(
    c: &C,
    box_id: BoxId,
    reader: IdentityId,
    page: Page,
    after: Option<i64>,
) -> Result<FoldedPage, Error> {
    let (known, bx, rows) = futures_util::try_join!(
        c.prepare_cached(PAGE_READER),
        c.prepare_cached(PAGE_BOX),
        c.prepare_cached(if after.is_some() { PAGE_ROWS_AFTER } else { PAGE_ROWS })
    )
    .map_err(step())?;
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
        c.query_opt(&known, &reader_params).map_err(step()),
        c.query_opt(&bx, &box_params).map_err(step()),
        c.query(&rows, &rows_params[..]).map_err(step()),
    )?;
    let bx = match bx {
        Some(r) => Some((boxes::box_row(&r)?, sql::get::<_, bool>(&r, "is_member")?)),
        None => None,
    };
    Ok(FoldedPage { reader_known: known.is_some(), bx, rows: rows.iter().map(folded_row).collect::<Result<_, _>>()? })
}
