//! Revocation markers in Redis, kept in step with PostgreSQL (the source of truth).
//!
//! A logout writes `revoked_at` in PostgreSQL, then, in one Redis round trip ([`announce`]): the
//! marker `auth:revoked_sid:{sid}`, the session's entry in the sorted set `auth:revoked_sids`, a
//! notice on `auth:revocations` (which every boxes and realtime process keeps in memory, see
//! `web_kit::revocations`) and `session.revoked` on the owner's channel. Redis may lose markers: it
//! restarts empty, or restarts from an append-only file missing its last second of writes, or an
//! announcement fails while it is out of reach. So auth-bridge keeps the marker
//! `auth:revocations_loaded` (see `domain::realtime::REVOCATIONS_LOADED_KEY`), whose value is the
//! `run_id` of the Redis process it was written to. Every [`SYNC_INTERVAL`] it checks that
//! marker; when it is absent or names another Redis process, it writes again the marker and the
//! sorted-set entry of every session revoked recently enough that one of its access tokens can
//! still be valid, publishes them on `auth:revocations` (a verifier that loaded the set from a
//! Redis restarted with some writes missing learns them so), then sets the marker. While the
//! marker is absent, boxes and realtime answer 503 to every token (fail closed). Announcements
//! that failed are retried by the same loop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::Pool;
use domain::realtime::{
    revocation_notice, revoked_sid_key, types, user_channel, Envelope, SessionRevoked, REVOCATIONS_CHANNEL,
    REVOCATIONS_LOADED_KEY, REVOKED_SIDS_KEY,
};
use domain::{IdentityId, SessionId};
use redis::aio::ConnectionManager;

use crate::store;

/// How often the loaded marker is checked.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(250);
/// Bound on the PostgreSQL read of a reload.
const DB_TIMEOUT: Duration = Duration::from_secs(5);
/// Markers written per Redis round trip during a reload.
const CHUNK: usize = 500;
/// Failed announcements kept for a retry; beyond, the oldest are dropped (their markers still
/// come back with the next reload, only their `session.revoked` message is lost).
const PENDING_MAX: usize = 10_000;
/// Marks a reload in progress in the Redis it writes to, so that a reload interrupted by a Redis
/// restart does not set the loaded marker on the new, empty Redis.
const LOADING_KEY: &str = "auth:revocations_loading";
const FINISH_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     redis.call('SET', KEYS[2], ARGV[2]) redis.call('DEL', KEYS[1]) return 1 else return 0 end";

/// How long a marker is kept: as long as an access token of the session can live, plus a minute.
pub fn marker_ttl(access_token_ttl: i64) -> i64 {
    access_token_ttl.max(0) + 60
}

/// Announcements that could not be sent yet.
#[derive(Debug, Default)]
pub struct Pending(Mutex<Vec<(SessionId, IdentityId)>>);

impl Pending {
    fn push(&self, revoked: &[(SessionId, IdentityId)]) {
        let mut pending = self.lock();
        pending.extend_from_slice(revoked);
        let excess = pending.len().saturating_sub(PENDING_MAX);
        pending.drain(..excess);
    }

    fn take(&self) -> Vec<(SessionId, IdentityId)> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(SessionId, IdentityId)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Announces sessions revoked in PostgreSQL, in one Redis round trip: the marker, the sorted-set
/// entry and the notice on `auth:revocations` that verifiers keep in memory, and
/// `session.revoked` on the owner's channel, which makes realtime close the session's sockets.
/// When Redis fails, the announcement is kept for the sync loop to send, and the error returned.
pub async fn announce(
    redis: &ConnectionManager,
    pending: &Pending,
    access_token_ttl: i64,
    revoked: &[(SessionId, IdentityId)],
) -> redis::RedisResult<()> {
    if revoked.is_empty() {
        return Ok(());
    }
    let result = send(redis, access_token_ttl, revoked).await;
    if result.is_err() {
        pending.push(revoked);
    }
    result
}

async fn send(
    redis: &ConnectionManager,
    access_token_ttl: i64,
    revoked: &[(SessionId, IdentityId)],
) -> redis::RedisResult<()> {
    let ttl = marker_ttl(access_token_ttl);
    let now = unix_now();
    let entries: Vec<(SessionId, i64)> = revoked.iter().map(|(sid, _)| (*sid, now + ttl)).collect();
    let mut pipe = redis::pipe();
    mark(&mut pipe, &entries, now);
    for (sid, identity) in revoked {
        let envelope = Envelope::new(types::SESSION_REVOKED, SessionRevoked { sid: *sid }).to_json();
        pipe.cmd("PUBLISH").arg(user_channel(*identity)).arg(envelope).ignore();
    }
    web_kit::redis::query(redis, &pipe).await
}

/// What the sync loop needs.
pub struct Loader {
    pub pool: Pool,
    pub redis: ConnectionManager,
    pub pending: Arc<Pending>,
    pub access_token_ttl: i64,
}

impl Loader {
    /// Runs for the life of the process.
    pub async fn run(self) {
        let mut failing = false;
        loop {
            match self.once().await {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = format!("{e:#}"), "revocation markers not in step with PostgreSQL yet");
                }
                Err(_) => {}
            }
            tokio::time::sleep(SYNC_INTERVAL).await;
        }
    }

    /// One check: failed announcements first, then the loaded marker, reloading when needed.
    pub async fn once(&self) -> anyhow::Result<()> {
        let pending = self.pending.take();
        if !pending.is_empty() {
            if let Err(e) = send(&self.redis, self.access_token_ttl, &pending).await {
                self.pending.push(&pending);
                return Err(e).context("sending revocations");
            }
        }
        let run_id = run_id(&self.redis).await?;
        let loaded: Option<String> =
            web_kit::redis::query(&self.redis, redis::cmd("GET").arg(REVOCATIONS_LOADED_KEY)).await?;
        if loaded.as_deref() == Some(run_id.as_str()) {
            return Ok(());
        }
        self.reload(&run_id).await
    }

    async fn reload(&self, run_id: &str) -> anyhow::Result<()> {
        let token = uuid::Uuid::new_v4().to_string();
        let _: () =
            web_kit::redis::query(&self.redis, redis::cmd("SET").arg(LOADING_KEY).arg(&token).arg("EX").arg(600))
                .await?;
        let window = marker_ttl(self.access_token_ttl);
        let rows = tokio::time::timeout(DB_TIMEOUT, async {
            let client = web_kit::metrics::pool_get(&self.pool).await?;
            anyhow::Ok(store::revoked_within(&client, window).await?)
        })
        .await
        .context("reading revoked sessions timed out")??;
        for chunk in rows.chunks(CHUNK) {
            let now = unix_now();
            let entries: Vec<(SessionId, i64)> = chunk.iter().map(|(sid, left)| (*sid, now + (*left).max(1))).collect();
            let mut pipe = redis::pipe();
            mark(&mut pipe, &entries, now);
            let _: () = web_kit::redis::query(&self.redis, &pipe).await?;
        }
        let mut finish = redis::cmd("EVAL");
        finish.arg(FINISH_SCRIPT).arg(2).arg(LOADING_KEY).arg(REVOCATIONS_LOADED_KEY).arg(&token).arg(run_id);
        let done: i64 = web_kit::redis::query(&self.redis, &finish).await?;
        anyhow::ensure!(done == 1, "Redis restarted during the reload");
        tracing::info!(sessions = rows.len(), "revocation markers loaded into Redis");
        Ok(())
    }
}

/// Adds to `pipe` the marker and the sorted-set entry of each `(sid, until)`, the removal of the
/// entries whose time has passed, and one notice on `auth:revocations` for them all.
fn mark(pipe: &mut redis::Pipeline, entries: &[(SessionId, i64)], now: i64) {
    for (sid, until) in entries {
        pipe.cmd("SET").arg(revoked_sid_key(*sid)).arg(1).arg("EX").arg((until - now).max(1)).ignore();
        pipe.cmd("ZADD").arg(REVOKED_SIDS_KEY).arg("GT").arg(*until).arg(sid.to_string()).ignore();
    }
    pipe.cmd("ZREMRANGEBYSCORE").arg(REVOKED_SIDS_KEY).arg("-inf").arg(format!("({now}")).ignore();
    pipe.cmd("PUBLISH").arg(REVOCATIONS_CHANNEL).arg(revocation_notice(entries)).ignore();
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The id of the running Redis process, which changes at every restart.
async fn run_id(redis: &ConnectionManager) -> anyhow::Result<String> {
    let info: String = web_kit::redis::query(redis, redis::cmd("INFO").arg("server")).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
        .context("INFO server has no run_id")
}
