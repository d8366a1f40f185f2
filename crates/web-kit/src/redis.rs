//! Redis calls with a bounded wait. Every call made for a request goes through [`query`] (or
//! [`exec`] for a pipeline of writes): it answers within [`CALL_TIMEOUT`] whatever Redis does
//! (down, restarting, frozen), and a command that found its connection closed by the server (a
//! Redis restart) is sent once more on a fresh connection instead of failing the request.
//!
//! Redis is either one server (`REDIS_URL`) or a Redis Cluster (`REDIS_CLUSTER_NODES`), behind
//! the one handle [`Redis`]. On a cluster each command goes to the node of its key's slot, and the
//! names of the shared keys follow [`KeyScheme::Cluster`] so that the keys one command or script
//! touches share a slot; a pipeline whose commands span slots is split by [`exec`].
//!
//! The `ConnectionManager` reconnects in the background after a connection is lost. It is built
//! without connection retries: its back-off (a first delay of one to two seconds, growing to a
//! minute) would hold every request that waits for the reconnection. With none, a reconnection
//! is one attempt bounded by [`CONNECT_TIMEOUT`], and the next call after a failed one starts
//! another. The cluster connection reconnects to a node it lost, and follows `MOVED` and `ASK`
//! redirections, by itself.

use std::collections::HashMap;
use std::time::Duration;

pub use domain::realtime::KeyScheme;
use domain::SessionId;
use futures_util::future::BoxFuture;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, ConnectionInfo, FromRedisValue, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// The longest a request waits for one Redis call, retry included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// One connection attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(800);

/// The manager's settings: bounded connects and responses, no back-off between attempts.
pub fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(CALL_TIMEOUT)
        .set_number_of_retries(0)
        .set_max_delay(100)
}

/// Where Redis is.
#[derive(Debug, Clone)]
pub enum Target {
    /// One server.
    Single(redis::Client),
    /// The seed nodes of a Redis Cluster; the others are found from them.
    Cluster(Vec<ConnectionInfo>),
}

impl Target {
    /// The cluster of `nodes` when there are any, else the server at `url`.
    pub fn new(url: &str, nodes: &[&str]) -> RedisResult<Target> {
        if nodes.is_empty() {
            return Ok(Target::Single(redis::Client::open(url)?));
        }
        let nodes: RedisResult<Vec<ConnectionInfo>> =
            nodes.iter().map(|n| redis::IntoConnectionInfo::into_connection_info(n.trim())).collect();
        Ok(Target::Cluster(nodes?))
    }

    pub fn keys(&self) -> KeyScheme {
        match self {
            Target::Single(_) => KeyScheme::Single,
            Target::Cluster(_) => KeyScheme::Cluster,
        }
    }
}

/// A Redis connection: multiplexed, cheap to clone, reconnecting by itself.
#[derive(Clone)]
pub enum Redis {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Redis {
    /// How the shared keys are named on this Redis.
    pub fn keys(&self) -> KeyScheme {
        match self {
            Redis::Single(_) => KeyScheme::Single,
            Redis::Cluster(_) => KeyScheme::Cluster,
        }
    }
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Redis::Single(c) => c.req_packed_command(cmd),
            Redis::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Redis::Single(c) => c.req_packed_commands(cmd, offset, count),
            Redis::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Redis::Single(c) => c.get_db(),
            Redis::Cluster(c) => c.get_db(),
        }
    }
}

/// Opens a connection; fails (within about two seconds) when Redis cannot be reached.
pub async fn connect(target: &Target) -> RedisResult<Redis> {
    match target {
        Target::Single(client) => {
            let conn = ConnectionManager::new_with_config(client.clone(), manager_config());
            Ok(Redis::Single(bounded(2 * CONNECT_TIMEOUT, conn).await?))
        }
        Target::Cluster(nodes) => {
            let client = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(CALL_TIMEOUT)
                // A redirection or a lost node is retried quickly; the call stays bounded by
                // `CALL_TIMEOUT` all the same.
                .retries(3)
                .min_retry_wait(10)
                .max_retry_wait(100)
                .build()?;
            Ok(Redis::Cluster(bounded(2 * CONNECT_TIMEOUT, client.get_async_connection()).await?))
        }
    }
}

/// A command or a pipeline.
pub trait Query: Sync {
    fn run<'a, T: FromRedisValue + Send + 'a>(&'a self, conn: &'a mut Redis) -> BoxFuture<'a, RedisResult<T>>;
}

impl Query for redis::Cmd {
    fn run<'a, T: FromRedisValue + Send + 'a>(&'a self, conn: &'a mut Redis) -> BoxFuture<'a, RedisResult<T>> {
        Box::pin(self.query_async(conn))
    }
}

impl Query for redis::Pipeline {
    /// On a cluster every command of the pipeline must be of one slot; [`exec`] splits the others.
    fn run<'a, T: FromRedisValue + Send + 'a>(&'a self, conn: &'a mut Redis) -> BoxFuture<'a, RedisResult<T>> {
        Box::pin(self.query_async(conn))
    }
}

impl Query for redis::ScriptInvocation<'_> {
    /// `EVALSHA`, loading the script first when this Redis does not know it yet.
    fn run<'a, T: FromRedisValue + Send + 'a>(&'a self, conn: &'a mut Redis) -> BoxFuture<'a, RedisResult<T>> {
        Box::pin(self.invoke_async(conn))
    }
}

/// Runs a pipeline whose replies are not needed. On a single Redis it is [`query`]. On a cluster
/// its commands are grouped by the slot of their key, in their order, and the groups run at
/// once, each a pipeline on its node: one round trip's time, and no `CROSSSLOT` error for the
/// writes of one request to keys of several identities. As on a single Redis (no `MULTI`), a
/// failure may leave some commands applied.
pub async fn exec(conn: &Redis, pipe: &Pipeline) -> RedisResult<()> {
    let Redis::Cluster(_) = conn else { return query(conn, pipe).await };
    let groups = by_slot(pipe);
    if groups.len() <= 1 {
        return query(conn, pipe).await;
    }
    let calls = groups.iter().map(|group| query::<()>(conn, group));
    futures_util::future::try_join_all(calls).await.map(|_| ())
}

/// The commands of `pipe` in one pipeline per slot (commands without a key join the first one),
/// each ignoring its replies.
fn by_slot(pipe: &Pipeline) -> Vec<Pipeline> {
    let mut groups: Vec<Pipeline> = Vec::new();
    let mut index: HashMap<u16, usize> = HashMap::new();
    let mut keyless = Vec::new();
    for cmd in pipe.cmd_iter() {
        let Some(key) = first_key(cmd) else {
            keyless.push(cmd.clone());
            continue;
        };
        let at = *index.entry(crate::cluster::slot(&key)).or_insert_with(|| {
            groups.push(Pipeline::new());
            groups.len() - 1
        });
        groups[at].add_command(cmd.clone()).ignore();
    }
    if groups.is_empty() {
        groups.push(Pipeline::new());
    }
    for cmd in keyless {
        groups[0].add_command(cmd).ignore();
    }
    groups
}

/// The key a command is routed by: its first argument, or a script's first key. Enough for the
/// single-key commands, publishes and scripts the services pipeline.
fn first_key(cmd: &Cmd) -> Option<Vec<u8>> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|a| match a {
            redis::Arg::Simple(bytes) => Some(bytes),
            redis::Arg::Cursor => None,
        })
        .collect();
    let name = args.first()?.to_ascii_uppercase();
    match name.as_slice() {
        b"PING" | b"INFO" | b"TIME" => None,
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            let count: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            (count > 0).then(|| args.get(3).map(|k| k.to_vec())).flatten()
        }
        _ => args.get(1).map(|k| k.to_vec()),
    }
}

/// Runs `cmd` on the master of `key`'s slot (the server itself on a single Redis): for what
/// describes a node, such as `INFO`, which a cluster connection would otherwise ask every node.
pub async fn on_node_of<T: FromRedisValue + Send>(conn: &Redis, key: &str, cmd: &Cmd) -> RedisResult<T> {
    let Redis::Cluster(cluster) = conn else { return query(conn, cmd).await };
    let mut cluster = cluster.clone();
    let route = Route::new(crate::cluster::slot(key.as_bytes()), SlotAddr::Master);
    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
    let value = bounded(CALL_TIMEOUT, cluster.route_command(cmd, routing)).await?;
    T::from_redis_value(&value)
}

/// Runs `q` within [`CALL_TIMEOUT`], sending it a second time when the first attempt found the
/// connection closed before anything reached the server.
pub async fn query<T: FromRedisValue + Send>(conn: &Redis, q: &impl Query) -> RedisResult<T> {
    let mut conn = conn.clone();
    let started = crate::metrics::enabled().then(std::time::Instant::now);
    let result = bounded(CALL_TIMEOUT, async {
        match q.run(&mut conn).await {
            Err(e) if never_sent(&e) => q.run(&mut conn).await,
            other => other,
        }
    })
    .await;
    if let Some(started) = started {
        crate::metrics::redis_call(started, result.is_err());
    }
    result
}

/// Errors after which the command cannot have been executed: the connection's driver had
/// stopped because Redis closed the connection ("broken pipe"), or the reconnection the call
/// waited for was refused. The manager has then started a new connection, which a second attempt
/// waits for. A reset or an end of stream in the middle of a call is not retried: the command may
/// have run. (`RedisError` exposes the I/O kind only through its message.)
fn never_sent(e: &RedisError) -> bool {
    e.is_connection_refusal()
        || (e.is_connection_dropped() && e.to_string().to_ascii_lowercase().contains("broken pipe"))
}

async fn bounded<T>(limit: Duration, call: impl std::future::Future<Output = RedisResult<T>>) -> RedisResult<T> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| Err(timed_out()))
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "Redis did not answer in time"))
}

/// What Redis says about a session (§3.3 step 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Live,
    Revoked,
    /// Redis has lost its revocation markers and auth-bridge has not loaded them again yet: the
    /// session may be revoked, so the check fails closed (503).
    Unknown,
}

/// Reads a session's revocation marker and the loaded flag in one round trip (one slot on a
/// cluster).
pub async fn revocation(conn: &Redis, sid: SessionId) -> RedisResult<Revocation> {
    let keys = conn.keys();
    let mut cmd = redis::cmd("MGET");
    cmd.arg(keys.revoked_sid(sid)).arg(keys.revocations_loaded());
    let (revoked, loaded): (Option<String>, Option<String>) = query(conn, &cmd).await?;
    Ok(match (revoked, loaded) {
        (Some(_), _) => Revocation::Revoked,
        (None, None) => Revocation::Unknown,
        (None, Some(_)) => Revocation::Live,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_grouped_by_the_slot_of_their_key() {
        assert_eq!(first_key(redis::cmd("INCR").arg("a")).as_deref(), Some(b"a".as_slice()));
        assert_eq!(
            first_key(redis::cmd("EVAL").arg("return 1").arg(1).arg("k").arg("x")).as_deref(),
            Some(b"k".as_slice())
        );
        assert_eq!(first_key(redis::cmd("EVAL").arg("return 1").arg(0).arg("x")), None);
        assert_eq!(first_key(&redis::cmd("PING")), None);

        let mut pipe = redis::pipe();
        pipe.incr("{u1}:a", 1).incr("{u2}:a", 1).cmd("PING").incr("{u1}:b", 1).cmd("SPUBLISH").arg("u2").arg("m");
        let groups = by_slot(&pipe);
        let names = |p: &Pipeline| p.cmd_iter().filter_map(first_key).collect::<Vec<_>>();
        assert_eq!(groups.len(), 2);
        assert_eq!(names(&groups[0]), vec![b"{u1}:a".to_vec(), b"{u1}:b".to_vec()]);
        assert_eq!(names(&groups[1]), vec![b"{u2}:a".to_vec(), b"u2".to_vec()]);
        assert_eq!(groups[0].len(), 3, "the keyless PING joins the first group");
    }
}
