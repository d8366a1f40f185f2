//! SQL of the `auth` schema (§13.3), as small functions over a client or a transaction.
//!
//! Only hashes of refresh and CSRF tokens are stored. Timestamps come from the database clock.
//! Statements are prepared once per pooled connection (`prepare_cached`), so each runs in one
//! round trip.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use domain::{IdentityId, SessionId};
use serde_json::Value;
use tokio_postgres::Error;

refinery::embed_migrations!("migrations");

/// Links a hostapp user to an identity, creating the link (with `new_id`) on first login and
/// refreshing the user-data snapshot on every login. Returns the linked identity.
#[tracing::instrument(skip(c, user_data))]
pub async fn upsert_hostapp_user(
    c: &impl GenericClient,
    client_id: &str,
    reference: &str,
    new_id: IdentityId,
    user_data: &Value,
) -> Result<IdentityId, Error> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO auth.hostapp_users (client_id, reference, identity_id, user_data)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (client_id, reference)
             DO UPDATE SET user_data = EXCLUDED.user_data, last_login_at = now()
             RETURNING identity_id",
        )
        .await?;
    let row = c.query_one(&stmt, &[&client_id, &reference, new_id.as_uuid(), user_data]).await?;
    Ok(IdentityId::from(row.get::<_, uuid::Uuid>(0)))
}

/// When the user consented, if ever.
#[tracing::instrument(skip(c))]
pub async fn consented_at(
    c: &impl GenericClient,
    client_id: &str,
    app_id: &str,
    reference: &str,
) -> Result<Option<DateTime<Utc>>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT consented_at FROM auth.consents WHERE client_id = $1 AND app_id = $2 AND user_reference = $3",
        )
        .await?;
    let row = c.query_opt(&stmt, &[&client_id, &app_id, &reference]).await?;
    Ok(row.map(|r| r.get(0)))
}

/// A session about to be opened, and the consent it implies.
pub struct NewSession<'a> {
    pub sid: SessionId,
    pub identity_id: IdentityId,
    pub client_id: &'a str,
    pub app_id: &'a str,
    pub user_reference: &'a str,
    pub refresh_hash: &'a str,
    pub csrf_hash: &'a str,
    pub refresh_ttl_secs: i64,
    /// Absolute lifetime of the session; no refresh extends it.
    pub max_age_secs: i64,
}

/// Records the consent (`consented_at` keeps the first login, `last_login_at` moves) and opens
/// the session, in one statement: both happen or neither does, in one round trip.
#[tracing::instrument(skip_all, fields(sid = %s.sid, identity_id = %s.identity_id))]
pub async fn record_consent_and_open_session(c: &impl GenericClient, s: &NewSession<'_>) -> Result<(), Error> {
    let stmt = c
        .prepare_cached(
            "WITH consent AS (
                 INSERT INTO auth.consents (client_id, app_id, user_reference) VALUES ($3, $4, $8)
                 ON CONFLICT (client_id, app_id, user_reference) DO UPDATE SET last_login_at = now()
             )
             INSERT INTO auth.sessions
                 (sid, identity_id, client_id, app_id, refresh_hash, csrf_hash, expires_at, max_expires_at)
             VALUES ($1, $2, $3, $4, $5, $6,
                     now() + make_interval(secs => least($7::float8, $9::float8)), now() + make_interval(secs => $9::float8))",
        )
        .await?;
    c.execute(
        &stmt,
        &[
            s.sid.as_uuid(),
            s.identity_id.as_uuid(),
            &s.client_id,
            &s.app_id,
            &s.refresh_hash,
            &s.csrf_hash,
            &(s.refresh_ttl_secs as f64),
            &s.user_reference,
            &(s.max_age_secs as f64),
        ],
    )
    .await?;
    Ok(())
}

/// A session found by its refresh token.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub sid: SessionId,
    pub identity_id: IdentityId,
    pub client_id: String,
    pub csrf_hash: String,
    pub usable: bool,
}

/// Finds and locks the session a refresh token belongs to. `usable` is false when the token has
/// expired or the session was revoked.
#[tracing::instrument(skip_all)]
pub async fn session_for_refresh(c: &impl GenericClient, refresh_hash: &str) -> Result<Option<SessionRow>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT sid, identity_id, client_id, csrf_hash, (revoked_at IS NULL AND expires_at > now())
             FROM auth.sessions WHERE refresh_hash = $1 FOR UPDATE",
        )
        .await?;
    let row = c.query_opt(&stmt, &[&refresh_hash]).await?;
    Ok(row.map(|r| SessionRow {
        sid: SessionId::from(r.get::<_, uuid::Uuid>(0)),
        identity_id: IdentityId::from(r.get::<_, uuid::Uuid>(1)),
        client_id: r.get(2),
        csrf_hash: r.get(3),
        usable: r.get(4),
    }))
}

/// Replaces the refresh token of a session; the old one stops working at once and is kept as
/// retired, so a later use of it is recognised as a reuse. The new expiry never passes the
/// session's absolute limit.
#[tracing::instrument(skip(c, new_hash))]
pub async fn rotate_refresh(
    c: &impl GenericClient,
    sid: SessionId,
    new_hash: &str,
    ttl_secs: i64,
) -> Result<(), Error> {
    let stmt = c
        .prepare_cached(
            "WITH old AS (SELECT refresh_hash FROM auth.sessions WHERE sid = $1),
                  retired AS (INSERT INTO auth.retired_refresh_tokens (refresh_hash, sid)
                              SELECT refresh_hash, $1 FROM old ON CONFLICT DO NOTHING)
             UPDATE auth.sessions
             SET refresh_hash = $2, expires_at = least(now() + make_interval(secs => $3), max_expires_at)
             WHERE sid = $1",
        )
        .await?;
    c.execute(&stmt, &[sid.as_uuid(), &new_hash, &(ttl_secs as f64)]).await?;
    Ok(())
}

/// The session a rotated (retired) refresh token belonged to, with its identity.
#[tracing::instrument(skip_all)]
pub async fn session_of_retired_refresh(
    c: &impl GenericClient,
    refresh_hash: &str,
) -> Result<Option<(SessionId, IdentityId)>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT s.sid, s.identity_id FROM auth.retired_refresh_tokens r JOIN auth.sessions s USING (sid)
             WHERE r.refresh_hash = $1",
        )
        .await?;
    let row = c.query_opt(&stmt, &[&refresh_hash]).await?;
    Ok(row.map(|r| (SessionId::from(r.get::<_, uuid::Uuid>(0)), IdentityId::from(r.get::<_, uuid::Uuid>(1)))))
}

/// Marks a session revoked; true when this call revoked it.
#[tracing::instrument(skip(c))]
pub async fn revoke_session(c: &impl GenericClient, sid: SessionId) -> Result<bool, Error> {
    let stmt =
        c.prepare_cached("UPDATE auth.sessions SET revoked_at = now() WHERE sid = $1 AND revoked_at IS NULL").await?;
    let n = c.execute(&stmt, &[sid.as_uuid()]).await?;
    Ok(n == 1)
}

/// Revokes every live session of a hostapp's user; the sessions this call revoked, with their
/// identity.
#[tracing::instrument(skip(c))]
pub async fn revoke_user_sessions(
    c: &impl GenericClient,
    client_id: &str,
    reference: &str,
) -> Result<Vec<(SessionId, IdentityId)>, Error> {
    let stmt = c
        .prepare_cached(
            "UPDATE auth.sessions s SET revoked_at = now()
             FROM auth.hostapp_users u
             WHERE u.client_id = $1 AND u.reference = $2
               AND s.identity_id = u.identity_id AND s.client_id = $1
               AND s.revoked_at IS NULL AND s.expires_at > now()
             RETURNING s.sid, s.identity_id",
        )
        .await?;
    let rows = c.query(&stmt, &[&client_id, &reference]).await?;
    Ok(rows
        .iter()
        .map(|r| (SessionId::from(r.get::<_, uuid::Uuid>(0)), IdentityId::from(r.get::<_, uuid::Uuid>(1))))
        .collect())
}

/// Sessions revoked in the last `window_secs` seconds, with the seconds left of that window.
#[tracing::instrument(skip(c))]
pub async fn revoked_within(c: &impl GenericClient, window_secs: i64) -> Result<Vec<(SessionId, i64)>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT sid, ceil(extract(epoch FROM revoked_at + make_interval(secs => $1) - now()))::bigint
             FROM auth.sessions WHERE revoked_at > now() - make_interval(secs => $1)",
        )
        .await?;
    let rows = c.query(&stmt, &[&(window_secs as f64)]).await?;
    Ok(rows.iter().map(|r| (SessionId::from(r.get::<_, uuid::Uuid>(0)), r.get(1))).collect())
}
