//! Redis calls with a bounded wait. Every call made for a request goes through [`query`]: it
//! answers within [`CALL_TIMEOUT`] whatever Redis does (down, restarting, frozen), and a command
//! that found its connection closed by the server (a Redis restart) is sent once more on a fresh
//! connection instead of failing the request.
//!
//! The `ConnectionManager` reconnects in the background after a connection is lost. It is built
//! without connection retries: its back-off (a first delay of one to two seconds, growing to a
//! minute) would hold every request that waits for the reconnection. With none, a reconnection
//! is one attempt bounded by [`CONNECT_TIMEOUT`], and the next call after a failed one starts
//! another.

use std::time::Duration;

use domain::realtime::{revoked_sid_key, REVOCATIONS_LOADED_KEY};
use domain::SessionId;
use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisError, RedisResult};

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

/// Opens a managed connection; fails (within about a second) when Redis cannot be reached.
pub async fn connect(url: &str) -> RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    bounded(2 * CONNECT_TIMEOUT, ConnectionManager::new_with_config(client, manager_config())).await
}

/// A command or a pipeline.
pub trait Query: Sync {
    fn run<'a, T: FromRedisValue + Send + 'a>(
        &'a self,
        conn: &'a mut ConnectionManager,
    ) -> BoxFuture<'a, RedisResult<T>>;
}

impl Query for redis::Cmd {
    fn run<'a, T: FromRedisValue + Send + 'a>(
        &'a self,
        conn: &'a mut ConnectionManager,
    ) -> BoxFuture<'a, RedisResult<T>> {
        Box::pin(self.query_async(conn))
    }
}

impl Query for redis::Pipeline {
    fn run<'a, T: FromRedisValue + Send + 'a>(
        &'a self,
        conn: &'a mut ConnectionManager,
    ) -> BoxFuture<'a, RedisResult<T>> {
        Box::pin(self.query_async(conn))
    }
}

impl Query for redis::ScriptInvocation<'_> {
    /// `EVALSHA`, loading the script first when this Redis does not know it yet.
    fn run<'a, T: FromRedisValue + Send + 'a>(
        &'a self,
        conn: &'a mut ConnectionManager,
    ) -> BoxFuture<'a, RedisResult<T>> {
        Box::pin(self.invoke_async(conn))
    }
}

/// Runs `q` within [`CALL_TIMEOUT`], sending it a second time when the first attempt found the
/// connection closed before anything reached the server.
pub async fn query<T: FromRedisValue + Send>(conn: &ConnectionManager, q: &impl Query) -> RedisResult<T> {
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

/// Reads a session's revocation marker and the loaded flag in one round trip.
pub async fn revocation(conn: &ConnectionManager, sid: SessionId) -> RedisResult<Revocation> {
    let mut cmd = redis::cmd("MGET");
    cmd.arg(revoked_sid_key(sid)).arg(REVOCATIONS_LOADED_KEY);
    let (revoked, loaded): (Option<String>, Option<String>) = query(conn, &cmd).await?;
    Ok(match (revoked, loaded) {
        (Some(_), _) => Revocation::Revoked,
        (None, None) => Revocation::Unknown,
        (None, Some(_)) => Revocation::Live,
    })
}
