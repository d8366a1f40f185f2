//! `boxes.notifications`: stored notifications of one identity (issue 17; see
//! `domain::notification`). They are written in the transaction of the change that causes them;
//! rows older than the retention are never read, and each write deletes up to 100 of them.

use domain::input::Page;
use domain::notification::{ListedNotification, NewNotification, Notification, NotificationType};
use domain::{IdentityId, NotificationId, Timestamp};
use tokio_postgres::Row;

use super::{sql, Error, GenericClient};

const COLUMNS: &str = "id, type, details, created_at, acknowledged_at";

/// How long a notification is kept, in seconds (`NOTIFICATIONS_RETENTION_SECS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub i64);

/// Rows deleted at most by one write, so a backlog of expired rows costs each write little.
const PURGE_BATCH: i64 = 100;

fn notification(row: &Row) -> Result<Notification, Error> {
    let kind: String = sql::get(row, "type")?;
    Ok(Notification {
        id: NotificationId::from(sql::get::<_, uuid::Uuid>(row, "id")?),
        kind: NotificationType::parse(&kind).ok_or_else(|| Error::corrupt(format!("notification type {kind:?}")))?,
        details: sql::get(row, "details")?,
        created_at: Timestamp(sql::get(row, "created_at")?),
    })
}

fn listed(row: &Row) -> Result<ListedNotification, Error> {
    let acknowledged_at: Option<chrono::DateTime<chrono::Utc>> = sql::get(row, "acknowledged_at")?;
    Ok(ListedNotification { notification: notification(row)?, acknowledged: acknowledged_at.is_some() })
}

/// Stores each notification for its identity, then deletes up to [`PURGE_BATCH`] expired rows of
/// anyone. Runs in the caller's transaction; returns what to publish after commit.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert_all<C: GenericClient>(
    c: &C,
    retention: Retention,
    items: &[(IdentityId, NewNotification)],
) -> Result<Vec<(IdentityId, Notification)>, Error> {
    let mut stored = Vec::with_capacity(items.len());
    for (to, new) in items {
        let row = sql::query_one(
            c,
            &format!(
                "INSERT INTO boxes.notifications (id, identity_id, type, details) VALUES ($1, $2, $3, $4)
                 RETURNING {COLUMNS}"
            ),
            &[NotificationId::new_v4().as_uuid(), to.as_uuid(), &new.kind.as_str(), &new.details],
        )
        .await?;
        stored.push((*to, notification(&row)?));
    }
    if !stored.is_empty() {
        sql::execute(
            c,
            "DELETE FROM boxes.notifications WHERE ctid = ANY (ARRAY(
                 SELECT ctid FROM boxes.notifications
                 WHERE created_at < now() - make_interval(secs => $1::bigint) LIMIT $2 FOR UPDATE SKIP LOCKED))",
            &[&retention.0, &PURGE_BATCH],
        )
        .await?;
    }
    Ok(stored)
}

/// The identity's notifications within the retention, newest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list<C: GenericClient>(
    c: &C,
    identity: IdentityId,
    retention: Retention,
    page: Page,
) -> Result<Vec<ListedNotification>, Error> {
    let rows = sql::query(
        c,
        &format!(
            "SELECT {COLUMNS} FROM boxes.notifications
             WHERE identity_id = $1 AND created_at >= now() - make_interval(secs => $2::bigint)
             ORDER BY seq DESC OFFSET $3 LIMIT $4"
        ),
        &[identity.as_uuid(), &retention.0, &page.offset, &page.limit],
    )
    .await?;
    rows.iter().map(listed).collect()
}

/// How many of the identity's notifications within the retention are not acknowledged.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn count_unread<C: GenericClient>(c: &C, identity: IdentityId, retention: Retention) -> Result<i64, Error> {
    let row = sql::query_one(
        c,
        "SELECT count(*) AS n FROM boxes.notifications
         WHERE identity_id = $1 AND acknowledged_at IS NULL
           AND created_at >= now() - make_interval(secs => $2::bigint)",
        &[identity.as_uuid(), &retention.0],
    )
    .await?;
    sql::get(&row, "n")
}

/// Acknowledges `until` and every older notification of the identity. `false` when `until` is
/// not one of its notifications within the retention. Acknowledging again changes nothing.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn acknowledge<C: GenericClient>(
    c: &C,
    identity: IdentityId,
    until: NotificationId,
    retention: Retention,
) -> Result<bool, Error> {
    let Some(row) = sql::query_opt(
        c,
        "SELECT seq FROM boxes.notifications
         WHERE id = $1 AND identity_id = $2 AND created_at >= now() - make_interval(secs => $3::bigint)",
        &[until.as_uuid(), identity.as_uuid(), &retention.0],
    )
    .await?
    else {
        return Ok(false);
    };
    let seq: i64 = sql::get(&row, "seq")?;
    sql::execute(
        c,
        "UPDATE boxes.notifications SET acknowledged_at = clock_timestamp()
         WHERE identity_id = $1 AND seq <= $2 AND acknowledged_at IS NULL",
        &[identity.as_uuid(), &seq],
    )
    .await?;
    Ok(true)
}
