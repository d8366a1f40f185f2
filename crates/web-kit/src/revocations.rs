//! The revoked sessions (§3.3 step 2), kept in memory by every process that checks tokens, so a
//! token check makes no Redis round trip.
//!
//! auth-bridge writes each revocation to Redis in one round trip: the marker
//! `auth:revoked_sid:{sid}`, an entry of the sorted set `auth:revoked_sids` and a notice on the
//! channel `auth:revocations` (see `domain::realtime::REVOCATIONS_CHANNEL`). [`start`] spawns the
//! task that feeds a [`Revocations`] set: it subscribes to that channel and, once the
//! subscription is confirmed, reads the sorted set in full; subscribing first means nothing
//! published in between is missed. It does so again after every resubscription.
//!
//! The set fails closed: before the first full load has finished, while the subscription is down
//! or not answering, and while Redis lacks `auth:revocations_loaded` (restarted empty, auth-bridge
//! has not loaded the revocations again yet), every check answers [`Status::Unavailable`] (503).
//! The subscription is checked with a PING every [`HEALTH_INTERVAL`]; a lost or silent connection
//! is replaced, with a backoff growing to [`RECONNECT_MAX`], and the set loaded again. Entries are
//! never forgotten on a reconnection; each is dropped once its `until` has passed, when no token
//! of its session can be accepted anyway.
//!
//! On a Redis Cluster the names carry the hash tag `{auth}` (`KeyScheme::Cluster`): the set, the
//! loaded marker and the shard channel `{auth}:revocations` live on one master, which the task
//! finds with `CLUSTER SLOTS`. It subscribes there with `SSUBSCRIBE`, on a RESP3 connection that
//! also reads the set and carries the PINGs, so the health of that one connection is the health of
//! everything the set depends on. A moved slot (an `sunsubscribe` from the node, a `MOVED` answer)
//! counts as a lost subscription: the task asks for the slots again, resubscribes and reloads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use anyhow::Context;
use domain::realtime::{parse_revocation_notice, KeyScheme};
use domain::SessionId;
use futures_util::StreamExt;
use redis::PushKind;
use tokio::sync::watch;

use crate::redis::{Target, CALL_TIMEOUT, CONNECT_TIMEOUT};

/// How often the subscription is checked with a PING.
pub const HEALTH_INTERVAL: Duration = Duration::from_millis(250);
/// How long a PING may take before the subscription is taken for lost.
const PING_TIMEOUT: Duration = Duration::from_millis(750);
/// First delay before a reconnection; it doubles up to [`RECONNECT_MAX`].
const RECONNECT_MIN: Duration = Duration::from_millis(20);
/// Longest delay between two connection attempts. Short: every token check answers 503 until the
/// subscription is back, and an attempt on a Redis that is down is one refused connection.
pub const RECONNECT_MAX: Duration = Duration::from_millis(50);
/// Delay between two looks for `auth:revocations_loaded` while it is absent.
const LOADED_RETRY: Duration = Duration::from_millis(25);
/// Entries read per `ZSCAN` call of a full load.
const SCAN_COUNT: usize = 1000;
/// Sessions kept at most. Beyond, the set cannot be trusted to hold every revocation and fails
/// closed until expired entries make room.
const CAPACITY: usize = 1_000_000;

/// The answer of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Live,
    Revoked,
    /// The set may be missing revocations (not loaded, subscription down): fail closed.
    Unavailable,
}

/// Revoked sessions with the Unix time (seconds) until which each must be refused.
#[derive(Debug)]
pub struct Revocations {
    ready: AtomicBool,
    revoked: RwLock<HashMap<SessionId, i64>>,
    /// Follows `ready`, for [`Revocations::wait_ready`].
    readiness: watch::Sender<bool>,
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations { ready: AtomicBool::new(false), revoked: RwLock::default(), readiness: watch::Sender::new(false) }
    }
}

impl Revocations {
    /// §3.3 step 2 for `sid`, without I/O.
    pub fn check(&self, sid: SessionId) -> Status {
        self.check_at(sid, unix_now())
    }

    fn check_at(&self, sid: SessionId, now: i64) -> Status {
        if !self.ready.load(Ordering::Acquire) {
            return Status::Unavailable;
        }
        match self.read().get(&sid) {
            Some(until) if *until >= now => Status::Revoked,
            _ => Status::Live,
        }
    }

    /// Whether checks are answered (readiness).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Waits, at most `limit`, until checks are answered, so a process that has just started does
    /// not answer 503 to its first requests when Redis is there.
    pub async fn wait_ready(&self, limit: Duration) {
        let mut rx = self.readiness.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|ready| *ready)).await;
    }

    /// Records that `sid` must be refused until `until`; false when the set is full.
    fn insert(&self, sid: SessionId, until: i64, now: i64) -> bool {
        if until < now {
            return true;
        }
        let mut revoked = self.write();
        if revoked.len() >= CAPACITY && !revoked.contains_key(&sid) {
            revoked.retain(|_, u| *u >= now);
            if revoked.len() >= CAPACITY {
                return false;
            }
        }
        let entry = revoked.entry(sid).or_insert(until);
        *entry = (*entry).max(until);
        true
    }

    /// Drops the entries whose time has passed.
    fn prune(&self, now: i64) {
        let stale = self.read().values().any(|u| *u < now);
        if stale {
            self.write().retain(|_, u| *u >= now);
        }
    }

    fn len(&self) -> usize {
        self.read().len()
    }

    fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
        self.readiness.send_replace(ready);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<SessionId, i64>> {
        // A panic while holding the lock leaves a map that is still consistent: keep using it.
        self.revoked.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<SessionId, i64>> {
        self.revoked.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Creates the set and spawns the task that feeds it; the task ends once the set is dropped.
pub fn start(target: Target) -> Arc<Revocations> {
    let set = Arc::new(Revocations::default());
    tokio::spawn(feed(Arc::downgrade(&set), target));
    set
}

async fn feed(set: Weak<Revocations>, target: Target) {
    let mut backoff = RECONNECT_MIN;
    let mut failing = false;
    while set.strong_count() > 0 {
        let mut subscribed = false;
        let outcome = match &target {
            Target::Single(client) => serve(&set, client, &mut subscribed).await,
            Target::Cluster(seeds) => serve_cluster(&set, seeds, &mut subscribed).await,
        };
        let Some(strong) = set.upgrade() else { return };
        strong.set_ready(false);
        drop(strong);
        if subscribed {
            backoff = RECONNECT_MIN;
        }
        match outcome {
            Err(e) if !failing || subscribed => {
                failing = true;
                tracing::warn!(error = format!("{e:#}"), "revocation subscription lost; token checks answer 503");
            }
            _ => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}

/// Serves one subscription until it fails or the set is dropped (`Ok`).
async fn serve(set: &Weak<Revocations>, client: &redis::Client, subscribed: &mut bool) -> anyhow::Result<()> {
    let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
        .await
        .context("connecting to Redis timed out")?
        .context("connecting to Redis")?;
    let (mut sink, mut stream) = pubsub.split();
    tokio::time::timeout(CALL_TIMEOUT, sink.subscribe(KeyScheme::Single.revocations_channel()))
        .await
        .context("SUBSCRIBE timed out")?
        .context("SUBSCRIBE")?;
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .context("connecting to Redis timed out")?
        .context("connecting to Redis")?;
    *subscribed = true;
    let mut loaded = false;
    let mut next_load = tokio::time::Instant::now();
    let mut health = tokio::time::interval(HEALTH_INTERVAL);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => {
                let msg = msg.context("the subscription was closed")?;
                let Some(set) = set.upgrade() else { return Ok(()) };
                on_notice(&set, msg.get_payload_bytes())?;
            }
            _ = health.tick() => {
                tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>())
                    .await
                    .context("PING on the subscription timed out")?
                    .context("PING on the subscription")?;
                let Some(set) = set.upgrade() else { return Ok(()) };
                set.prune(unix_now());
            }
            _ = tokio::time::sleep_until(next_load), if !loaded => {
                let Some(set) = set.upgrade() else { return Ok(()) };
                loaded = load_once(&mut conn, &set, KeyScheme::Single).await?;
                if !loaded {
                    next_load = tokio::time::Instant::now() + LOADED_RETRY;
                }
            }
        }
    }
}

/// [`serve`] on a Redis Cluster: one RESP3 connection to the master of `{auth}`, subscribed to the
/// shard channel, reading the set and answering the PINGs.
async fn serve_cluster(
    set: &Weak<Revocations>,
    seeds: &[redis::ConnectionInfo],
    subscribed: &mut bool,
) -> anyhow::Result<()> {
    let keys = KeyScheme::Cluster;
    let channel = keys.revocations_channel();
    let topology = crate::cluster::Topology::fetch(seeds, &[]).await?;
    let node = topology.master_of(crate::cluster::slot(channel.as_bytes())).context("no master serves {auth}")?;
    let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel();
    let mut conn = crate::cluster::push_connection(node, 0, tx).await?;
    let _: () =
        bounded(redis::cmd(keys.subscribe()).arg(channel).query_async(&mut conn)).await.context("SSUBSCRIBE")?;
    *subscribed = true;
    let mut loaded = false;
    let mut next_load = tokio::time::Instant::now();
    let mut health = tokio::time::interval(HEALTH_INTERVAL);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            push = pushes.recv() => {
                let (_, push) = push.context("the subscription was closed")?;
                match push.kind {
                    PushKind::SMessage => {
                        let Some(set) = set.upgrade() else { return Ok(()) };
                        if let Some(redis::Value::BulkString(payload)) = push.data.get(1) {
                            on_notice(&set, payload)?;
                        }
                    }
                    PushKind::Disconnection => anyhow::bail!("the connection to {} was lost", crate::cluster::node_name(node)),
                    PushKind::SUnsubscribe => anyhow::bail!("{channel} moved to another node"),
                    _ => {}
                }
            }
            _ = health.tick() => {
                tokio::time::timeout(PING_TIMEOUT, redis::cmd("PING").query_async::<redis::Value>(&mut conn))
                    .await
                    .context("PING on the subscription timed out")?
                    .context("PING on the subscription")?;
                let Some(set) = set.upgrade() else { return Ok(()) };
                set.prune(unix_now());
            }
            _ = tokio::time::sleep_until(next_load), if !loaded => {
                let Some(set) = set.upgrade() else { return Ok(()) };
                loaded = load_once(&mut conn, &set, keys).await?;
                if !loaded {
                    next_load = tokio::time::Instant::now() + LOADED_RETRY;
                }
            }
        }
    }
}

/// Adds the sessions of a notice on the revocation channel.
fn on_notice(set: &Revocations, payload: &[u8]) -> anyhow::Result<()> {
    let now = unix_now();
    for (sid, until) in parse_revocation_notice(&String::from_utf8_lossy(payload)) {
        anyhow::ensure!(set.insert(sid, until, now), "the revocation set is full");
    }
    Ok(())
}

/// Reads every entry of `auth:revoked_sids` into the set; false (nothing read) while Redis lacks
/// `auth:revocations_loaded`.
/// [`load`], and the set marked ready once it is complete.
async fn load_once(
    conn: &mut redis::aio::MultiplexedConnection,
    set: &Revocations,
    keys: KeyScheme,
) -> anyhow::Result<bool> {
    let loaded = load(conn, set, keys).await?;
    if loaded {
        set.set_ready(true);
        tracing::info!(sessions = set.len(), "revoked sessions loaded; token checks answered");
    }
    Ok(loaded)
}

async fn load(
    conn: &mut redis::aio::MultiplexedConnection,
    set: &Revocations,
    keys: KeyScheme,
) -> anyhow::Result<bool> {
    let loaded: Option<String> = bounded(redis::cmd("GET").arg(keys.revocations_loaded()).query_async(conn)).await?;
    if loaded.is_none() {
        return Ok(false);
    }
    let mut cursor: u64 = 0;
    loop {
        let (next, entries): (u64, Vec<(String, f64)>) = bounded(
            redis::cmd("ZSCAN").arg(keys.revoked_sids()).arg(cursor).arg("COUNT").arg(SCAN_COUNT).query_async(conn),
        )
        .await?;
        let now = unix_now();
        for (sid, until) in entries {
            let Ok(sid) = SessionId::parse(&sid) else { continue };
            // Scores are whole seconds; the conversion saturates.
            anyhow::ensure!(set.insert(sid, until as i64, now), "the revocation set is full");
        }
        if next == 0 {
            return Ok(true);
        }
        cursor = next;
    }
}

async fn bounded<T>(call: impl std::future::Future<Output = redis::RedisResult<T>>) -> anyhow::Result<T> {
    Ok(tokio::time::timeout(CALL_TIMEOUT, call).await.context("Redis did not answer in time")??)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Revocations {
        let set = Revocations::default();
        set.set_ready(true);
        set
    }

    #[test]
    fn nothing_is_answered_before_the_set_is_loaded() {
        let set = Revocations::default();
        let sid = SessionId::new_v4();
        assert_eq!(set.check_at(sid, 100), Status::Unavailable);
        assert!(set.insert(sid, 200, 100));
        assert_eq!(set.check_at(sid, 100), Status::Unavailable);
        set.set_ready(true);
        assert_eq!(set.check_at(sid, 100), Status::Revoked);
        set.set_ready(false);
        assert_eq!(set.check_at(SessionId::new_v4(), 100), Status::Unavailable);
    }

    #[test]
    fn an_entry_holds_until_its_time_then_is_dropped() {
        let set = ready();
        let (sid, other) = (SessionId::new_v4(), SessionId::new_v4());
        assert!(set.insert(sid, 200, 100));
        assert_eq!(set.check_at(sid, 200), Status::Revoked);
        assert_eq!(set.check_at(other, 150), Status::Live);
        assert_eq!(set.check_at(sid, 201), Status::Live);
        set.prune(150);
        assert_eq!(set.len(), 1);
        set.prune(201);
        assert_eq!(set.len(), 0);
    }

    #[test]
    fn the_later_time_wins_and_past_entries_are_not_kept() {
        let set = ready();
        let sid = SessionId::new_v4();
        assert!(set.insert(sid, 300, 100));
        assert!(set.insert(sid, 200, 100));
        assert_eq!(set.check_at(sid, 250), Status::Revoked);
        assert!(set.insert(SessionId::new_v4(), 50, 100));
        assert_eq!(set.len(), 1);
    }

    #[tokio::test]
    async fn wait_ready_returns_at_the_limit_or_once_ready() {
        let set = Revocations::default();
        let started = std::time::Instant::now();
        set.wait_ready(Duration::from_millis(50)).await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        set.set_ready(true);
        let started = std::time::Instant::now();
        set.wait_ready(Duration::from_secs(5)).await;
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
