//! `boxes.boxes` and `boxes.members`.
//!
//! `boxes.members` is derived from the events (creation, join, leave, kick) and is always changed
//! in the transaction that inserts the event, so membership reads never need to replay the log.
//! Access rules are `store::access`'s.

use std::collections::HashMap;

use domain::boxes::{AccessMode, BoxSetting};
use domain::event::EventType;
use domain::input::Page;
use domain::{BoxId, EventId, IdentityId, Timestamp};
use tokio_postgres::Row;

use super::{sql, Error, GenericClient};

const COLUMNS: &str = box_columns!();

/// A box as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxRow {
    pub id: BoxId,
    pub creator_id: IdentityId,
    pub title: String,
    pub public_key: String,
    pub access_mode: AccessMode,
    pub created_at: Timestamp,
    pub last_event_at: Timestamp,
    pub last_visible_at: Timestamp,
}

impl BoxRow {
    pub fn is_admin(&self, who: IdentityId) -> bool {
        self.creator_id == who
    }
}

pub(super) fn box_row(row: &Row) -> Result<BoxRow, Error> {
    let mode: String = sql::get(row, "access_mode")?;
    Ok(BoxRow {
        id: BoxId::from(sql::get::<_, uuid::Uuid>(row, "id")?),
        creator_id: IdentityId::from(sql::get::<_, uuid::Uuid>(row, "creator_id")?),
        title: sql::get(row, "title")?,
        public_key: sql::get(row, "public_key")?,
        access_mode: AccessMode::parse(&mode).ok_or_else(|| Error::corrupt(format!("access mode {mode:?}")))?,
        created_at: Timestamp(sql::get(row, "created_at")?),
        last_event_at: Timestamp(sql::get(row, "last_event_at")?),
        last_visible_at: Timestamp(sql::get(row, "last_visible_at")?),
    })
}

/// Inserts a `limited` box with no events yet, and its creator as the first member.
/// The caller then inserts the `create` event, whose sequence number is 1.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert<C: GenericClient>(
    c: &C,
    id: BoxId,
    creator: IdentityId,
    title: &str,
    public_key: &str,
) -> Result<BoxRow, Error> {
    let row = sql::query_one(c,
            &format!(
                "INSERT INTO boxes.boxes (id, creator_id, title, public_key, access_mode, created_at, last_event_at, last_visible_at)
                 VALUES ($1, $2, $3, $4, 'limited', clock_timestamp(), clock_timestamp(), clock_timestamp())
                 RETURNING {COLUMNS}"
            ),
            &[id.as_uuid(), creator.as_uuid(), &title, &public_key],
        )
        .await?;
    sql::execute(
        c,
        "INSERT INTO boxes.members (box_id, identity_id, join_event_id, joined_seq) VALUES ($1, $2, NULL, 1)",
        &[id.as_uuid(), creator.as_uuid()],
    )
    .await?;
    box_row(&row)
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn get<C: GenericClient>(c: &C, id: BoxId) -> Result<Option<BoxRow>, Error> {
    let row = sql::query_opt(c, &format!("SELECT {COLUMNS} FROM boxes.boxes WHERE id = $1"), &[id.as_uuid()]).await?;
    row.as_ref().map(box_row).transpose()
}

/// Reads the box and locks its row until the transaction ends: every write to a box's events
/// and members goes through this lock, which gives the per-box total order of §13.1.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn lock<C: GenericClient>(c: &C, id: BoxId) -> Result<Option<BoxRow>, Error> {
    let row =
        sql::query_opt(c, &format!("SELECT {COLUMNS} FROM boxes.boxes WHERE id = $1 FOR UPDATE"), &[id.as_uuid()])
            .await?;
    row.as_ref().map(box_row).transpose()
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn set_access_mode<C: GenericClient>(c: &C, id: BoxId, mode: AccessMode) -> Result<(), Error> {
    sql::execute(c, "UPDATE boxes.boxes SET access_mode = $2 WHERE id = $1", &[id.as_uuid(), &mode.as_str()]).await?;
    Ok(())
}

/// Removes the box; events, members, key shares, settings and crypto actions of the box go
/// with it (foreign keys with `ON DELETE CASCADE`).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete<C: GenericClient>(c: &C, id: BoxId) -> Result<bool, Error> {
    sql::execute(c, "DELETE FROM boxes.crypto_actions WHERE box_id = $1", &[id.as_uuid()]).await?;
    Ok(sql::execute(c, "DELETE FROM boxes.boxes WHERE id = $1", &[id.as_uuid()]).await? > 0)
}

// ---- members ----

#[tracing::instrument(level = "debug", skip_all)]
pub async fn is_member<C: GenericClient>(c: &C, box_id: BoxId, who: IdentityId) -> Result<bool, Error> {
    let row = sql::query_opt(
        c,
        "SELECT 1 FROM boxes.members WHERE box_id = $1 AND identity_id = $2",
        &[box_id.as_uuid(), who.as_uuid()],
    )
    .await?;
    Ok(row.is_some())
}

/// The current members: the admin first (it joined with the `create` event), then by join order.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn member_ids<C: GenericClient>(c: &C, box_id: BoxId) -> Result<Vec<IdentityId>, Error> {
    let rows = sql::query(
        c,
        "SELECT m.identity_id FROM boxes.members m JOIN boxes.boxes b ON b.id = m.box_id
             WHERE m.box_id = $1 ORDER BY (m.identity_id = b.creator_id) DESC, m.joined_seq, m.identity_id",
        &[box_id.as_uuid()],
    )
    .await?;
    rows.iter().map(|r| sql::get::<_, uuid::Uuid>(r, "identity_id").map(IdentityId::from)).collect()
}

/// A current non-admin member and the id of its `member.join`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    pub identity_id: IdentityId,
    pub join_event_id: EventId,
}

/// `None` for the admin, who joined with the `create` event.
pub(super) fn joined(row: &Row) -> Result<Option<Joined>, Error> {
    let join: Option<uuid::Uuid> = sql::get(row, "join_event_id")?;
    let identity_id = IdentityId::from(sql::get::<_, uuid::Uuid>(row, "identity_id")?);
    Ok(join.map(|j| Joined { identity_id, join_event_id: EventId::from(j) }))
}

/// The join of `who`, if it is a member that joined (the admin has none).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn join_of<C: GenericClient>(c: &C, box_id: BoxId, who: IdentityId) -> Result<Option<Joined>, Error> {
    let row = sql::query_opt(
        c,
        "SELECT identity_id, join_event_id FROM boxes.members WHERE box_id = $1 AND identity_id = $2",
        &[box_id.as_uuid(), who.as_uuid()],
    )
    .await?;
    Ok(row.as_ref().map(joined).transpose()?.flatten())
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn add_member<C: GenericClient>(
    c: &C,
    box_id: BoxId,
    who: IdentityId,
    join_event_id: EventId,
    joined_seq: i64,
) -> Result<(), Error> {
    sql::execute(
        c,
        "INSERT INTO boxes.members (box_id, identity_id, join_event_id, joined_seq) VALUES ($1, $2, $3, $4)",
        &[box_id.as_uuid(), who.as_uuid(), join_event_id.as_uuid(), &joined_seq],
    )
    .await?;
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn remove_member<C: GenericClient>(c: &C, box_id: BoxId, who: IdentityId) -> Result<(), Error> {
    sql::execute(
        c,
        "DELETE FROM boxes.members WHERE box_id = $1 AND identity_id = $2",
        &[box_id.as_uuid(), who.as_uuid()],
    )
    .await?;
    Ok(())
}

// ---- the joined-boxes list ----

/// Boxes where `who` is a member, the one with the newest visible event first.
/// The boxes `who` is a member of, newest visible event first; with `changed_since`, only those
/// with an event of any type (invisible ones included) after that time.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn joined_by<C: GenericClient>(
    c: &C,
    who: IdentityId,
    page: Page,
    changed_since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Vec<BoxRow>, Error> {
    let rows = sql::query(c,
            "SELECT b.id, b.creator_id, b.title, b.public_key, b.access_mode, b.created_at, b.last_event_at, b.last_visible_at
             FROM boxes.members m JOIN boxes.boxes b ON b.id = m.box_id
             WHERE m.identity_id = $1 AND ($4::timestamptz IS NULL OR b.last_event_at > $4)
             ORDER BY b.last_visible_at DESC, b.id
             OFFSET $2 LIMIT $3",
            &[who.as_uuid(), &page.offset, &page.limit, &changed_since],
        )
        .await?;
    rows.iter().map(box_row).collect()
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn count_joined<C: GenericClient>(
    c: &C,
    who: IdentityId,
    changed_since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<i64, Error> {
    let row = sql::query_one(
        c,
        "SELECT count(*) AS n FROM boxes.members m JOIN boxes.boxes b ON b.id = m.box_id
         WHERE m.identity_id = $1 AND ($2::timestamptz IS NULL OR b.last_event_at > $2)",
        &[who.as_uuid(), &changed_since],
    )
    .await?;
    sql::get(&row, "n")
}

/// The settings of `who` in each of `boxes`, with the defaults where nothing is stored.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn settings_for<C: GenericClient>(
    c: &C,
    who: IdentityId,
    boxes: &[BoxId],
) -> Result<HashMap<BoxId, BoxSetting>, Error> {
    let ids: Vec<uuid::Uuid> = boxes.iter().map(|b| b.into_uuid()).collect();
    let rows = sql::query(
        c,
        "SELECT box_id, muted FROM boxes.box_settings WHERE identity_id = $1 AND box_id = ANY($2)",
        &[who.as_uuid(), &ids],
    )
    .await?;
    let stored: HashMap<BoxId, bool> = rows
        .iter()
        .map(|r| Ok((BoxId::from(sql::get::<_, uuid::Uuid>(r, "box_id")?), sql::get::<_, bool>(r, "muted")?)))
        .collect::<Result<_, Error>>()?;
    Ok(boxes
        .iter()
        .map(|b| (*b, BoxSetting { identity_id: who, box_id: *b, muted: stored.get(b).copied().unwrap_or(false) }))
        .collect())
}

/// The type strings of visible events, for SQL filters.
pub fn visible_types() -> Vec<String> {
    EventType::visible_strs().into_iter().map(str::to_owned).collect()
}
