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
//!
//! On a Redis Cluster every one of these names carries the hash tag `{auth}`
//! (`KeyScheme::Cluster`), so the markers, the set, the loaded marker and the revocation channel
//! live on one master: the `run_id` checked is that master's (a failover to a replica that may
//! lack the last writes changes it too, and triggers a reload), and one revocation's writes to
//! them are one pipeline on that node. The `session.revoked` messages go to the owners' shard
//! channels, on the masters of their slots.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::Pool;
use domain::realtime::{revocation_notice, types, user_channel, Envelope, KeyScheme, SessionRevoked};
use domain::{IdentityId, SessionId};
use web_kit::redis::Redis;

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
/// KEYS: the loading marker (`KeyScheme::revocations_loading`), which marks a reload in progress
/// in the Redis it writes to, so that a reload interrupted by a Redis restart does not set the
/// loaded marker on the new, empty Redis; and the loaded marker.
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
    redis: &Redis,
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

async fn send(redis: &Redis, access_token_ttl: i64, revoked: &[(SessionId, IdentityId)]) -> redis::RedisResult<()> {
    let ttl = marker_ttl(access_token_ttl);
    let now = unix_now();
    let keys = redis.keys();
    let entries: Vec<(SessionId, i64)> = revoked.iter().map(|(sid, _)| (*sid, now + ttl)).collect();
    let mut pipe = redis::pipe();
    mark(&mut pipe, keys, &entries, now);
    for (sid, identity) in revoked {
        let envelope = Envelope::new(types::SESSION_REVOKED, SessionRevoked { sid: *sid }).to_json();
        pipe.cmd(keys.publish()).arg(user_channel(*identity)).arg(envelope).ignore();
    }
    web_kit::redis::exec(redis, &pipe).await
}

/// What the sync loop needs.
pub struct Loader {
    pub pool: Pool,
    pub redis: Redis,
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
            web_kit::redis::query(&self.redis, redis::cmd("GET").arg(self.redis.keys().revocations_loaded())).await?;
        if loaded.as_deref() == Some(run_id.as_str()) {
            return Ok(());
        }
        self.reload(&run_id).await
    }

    async fn reload(&self, run_id: &str) -> anyhow::Result<()> {
        let token = uuid::Uuid::new_v4().to_string();
        let keys = self.redis.keys();
        let loading = keys.revocations_loading();
        let _: () =
            web_kit::redis::query(&self.redis, redis::cmd("SET").arg(loading).arg(&token).arg("EX").arg(600)).await?;
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
            mark(&mut pipe, keys, &entries, now);
            web_kit::redis::exec(&self.redis, &pipe).await?;
        }
        let mut finish = redis::cmd("EVAL");
        finish.arg(FINISH_SCRIPT).arg(2).arg(loading).arg(keys.revocations_loaded()).arg(&token).arg(run_id);
        let done: i64 = web_kit::redis::query(&self.redis, &finish).await?;
        anyhow::ensure!(done == 1, "Redis restarted during the reload");
        tracing::info!(sessions = rows.len(), "revocation markers loaded into Redis");
        Ok(())
    }
}

/// Adds to `pipe` the marker and the sorted-set entry of each `(sid, until)`, the removal of the
/// entries whose time has passed, and one notice on `auth:revocations` for them all.
fn mark(pipe: &mut redis::Pipeline, keys: KeyScheme, entries: &[(SessionId, i64)], now: i64) {
    for (sid, until) in entries {
        pipe.cmd("SET").arg(keys.revoked_sid(*sid)).arg(1).arg("EX").arg((until - now).max(1)).ignore();
        pipe.cmd("ZADD").arg(keys.revoked_sids()).arg("GT").arg(*until).arg(sid.to_string()).ignore();
    }
    pipe.cmd("ZREMRANGEBYSCORE").arg(keys.revoked_sids()).arg("-inf").arg(format!("({now}")).ignore();
    pipe.cmd(keys.publish()).arg(keys.revocations_channel()).arg(revocation_notice(entries)).ignore();
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The id of the running Redis process (on a cluster, the master of `{auth}`), which changes at
/// every restart.
async fn run_id(redis: &Redis) -> anyhow::Result<String> {
    let info: String =
        web_kit::redis::on_node_of(redis, redis.keys().revocations_loaded(), redis::cmd("INFO").arg("server")).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
        .context("INFO server has no run_id")
}
