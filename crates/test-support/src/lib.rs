//! Helpers shared by the integration tests of every service: a fresh PostgreSQL database per test,
//! Ed25519 session keys, minted tokens, Redis subscribers and captured log lines. Tests talk to the real PostgreSQL and
//! Redis named by `TEST_DATABASE_URL` / `REDIS_URL` (defaults: the local servers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use domain::auth::{sha256_b64u, SessionClaims, Signer};
use domain::{IdentityId, SessionId};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use futures_util::StreamExt;

pub mod hostile;
pub mod logs;

pub const ISSUER: &str = "auth-bridge";

/// The server PostgreSQL tests create their databases on.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Creates an empty database named by a uuid and returns its URL.
pub async fn fresh_database() -> anyhow::Result<String> {
    let admin = admin_database_url();
    let (client, conn) =
        tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.context("connecting to PostgreSQL")?;
    tokio::spawn(conn);
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.context("creating the test database")?;
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin);
    Ok(format!("{base}/{name}"))
}

/// An Ed25519 key pair, also written to files for services that read `JWT_*_KEY_FILE`.
pub struct TestKeys {
    pub private_pem: String,
    pub public_pem: String,
    pub private_file: tempfile::NamedTempFile,
    pub public_file: tempfile::NamedTempFile,
}

impl TestKeys {
    pub fn generate() -> Self {
        let sk = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let private_pem = sk.to_pkcs8_pem(LineEnding::LF).expect("encode private key").to_string();
        let public_pem = sk.verifying_key().to_public_key_pem(LineEnding::LF).expect("encode public key");
        let mut private_file = tempfile::NamedTempFile::new().expect("temp file");
        private_file.write_all(private_pem.as_bytes()).expect("write key");
        let mut public_file = tempfile::NamedTempFile::new().expect("temp file");
        public_file.write_all(public_pem.as_bytes()).expect("write key");
        TestKeys { private_pem, public_pem, private_file, public_file }
    }

    pub fn signer(&self) -> Signer {
        Signer::new(&self.private_pem, &self.public_pem, ISSUER).expect("signer")
    }

    /// A valid session token for `sub` with ACR 2 and a fresh session.
    pub fn session(&self, sub: IdentityId) -> Session {
        self.session_with(sub, TokenOptions::default())
    }

    pub fn session_with(&self, sub: IdentityId, o: TokenOptions) -> Session {
        let csrf = format!("csrf-{}", uuid::Uuid::new_v4().simple());
        let sid = o.sid.unwrap_or_else(SessionId::new_v4);
        let (token, _) = self
            .signer()
            .sign(SessionClaims {
                sub,
                sid,
                acr: &o.acr,
                csrf_hash: &sha256_b64u(&csrf),
                client_id: "ref-hostapp",
                ttl_secs: o.ttl_secs,
            })
            .expect("sign");
        Session { identity: sub, sid, token, csrf }
    }
}

#[derive(Debug, Clone)]
pub struct TokenOptions {
    pub acr: String,
    pub ttl_secs: i64,
    pub sid: Option<SessionId>,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions { acr: "2".into(), ttl_secs: 3600, sid: None }
    }
}

/// A minted session: the access token and the CSRF token it is bound to.
#[derive(Debug, Clone)]
pub struct Session {
    pub identity: IdentityId,
    pub sid: SessionId,
    pub token: String,
    pub csrf: String,
}

impl Session {
    /// `Cookie` header value for cookie authentication.
    pub fn cookie(&self) -> String {
        format!("accesstoken={}; tokentype=bearer", self.token)
    }

    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

/// A Redis subscriber that collects the payloads published on some channels.
pub struct Subscriber {
    rx: tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
}

impl Subscriber {
    /// Returns once the subscription is confirmed, so nothing published afterwards is missed.
    pub async fn new(channels: &[String]) -> anyhow::Result<Self> {
        let client = redis::Client::open(redis_url())?;
        let mut pubsub = client.get_async_pubsub().await?;
        for c in channels {
            pubsub.subscribe(c).await?;
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while let Some(msg) = stream.next().await {
                let payload: String = msg.get_payload().unwrap_or_default();
                if tx.send((msg.get_channel_name().to_owned(), payload)).is_err() {
                    break;
                }
            }
        });
        Ok(Subscriber { rx })
    }

    /// The next `(channel, payload)`, or `None` after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<(String, String)> {
        tokio::time::timeout(wait, self.rx.recv()).await.ok().flatten()
    }

    /// The next payload parsed as JSON. The history position a recorded publish carries
    /// (`position`, see `web_kit::history`) is removed once checked well-formed, and so is the
    /// publisher's trace (`trace`, which realtime takes out too), so tests compare envelopes as
    /// §9.4 shapes them; [`Subscriber::next`] keeps both.
    pub async fn next_json(&mut self, wait: Duration) -> Option<(String, serde_json::Value)> {
        let (c, p) = self.next(wait).await?;
        let (text, _) = domain::realtime::split_trace(&p);
        let mut v = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        if let Some(position) = v.as_object_mut().and_then(|o| o.remove("position")) {
            let well_formed = position.as_str().and_then(domain::realtime::Position::parse).is_some();
            assert!(well_formed, "malformed history position in {p}");
        }
        Some((c, v))
    }

    /// Everything that arrives until `quiet` passes without a message.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<(String, serde_json::Value)> {
        let mut out = Vec::new();
        while let Some(m) = self.next_json(quiet).await {
            out.push(m);
        }
        out
    }
}

/// Sets the flag auth-bridge sets once the revocation markers are in Redis, for tests that run
/// boxes or realtime without auth-bridge: without it every token check answers 503.
pub async fn mark_revocations_loaded(redis_url: &str) {
    let client = redis::Client::open(redis_url).expect("redis url");
    // A test of a Redis that is down has nothing to mark.
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else { return };
    let _: () = redis::cmd("SET")
        .arg(domain::realtime::REVOCATIONS_LOADED_KEY)
        .arg("tests")
        .query_async(&mut conn)
        .await
        .expect("set the loaded flag");
}

/// [`announce_revocation`], then a moment for the services to hear the notice.
pub async fn revoke(conn: &mut redis::aio::MultiplexedConnection, sid: domain::SessionId) {
    announce_revocation(conn, sid).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Revokes `sid` for ten minutes the way auth-bridge does: the marker, the sorted-set entry and
/// the notice on `auth:revocations`, in one round trip.
pub async fn announce_revocation(conn: &mut redis::aio::MultiplexedConnection, sid: domain::SessionId) {
    use domain::realtime::{revocation_notice, revoked_sid_key, REVOCATIONS_CHANNEL, REVOKED_SIDS_KEY};
    let until = unix_now() + 600;
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(revoked_sid_key(sid))
        .arg(1)
        .arg("EX")
        .arg(600)
        .ignore()
        .cmd("ZADD")
        .arg(REVOKED_SIDS_KEY)
        .arg(until)
        .arg(sid.to_string())
        .ignore()
        .cmd("PUBLISH")
        .arg(REVOCATIONS_CHANNEL)
        .arg(revocation_notice(&[(sid, until)]))
        .ignore()
        .query_async(conn)
        .await
        .expect("revoke a session");
}

/// A Redis connection for direct reads and writes in tests.
pub async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection")
}

/// A redis-server of a test's own on `port` (never the shared one), without persistence, so a
/// restart comes back empty. Killed when dropped.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
    dir: std::path::PathBuf,
}

impl PrivateRedis {
    pub async fn start(port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("test-redis-{port}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut redis = PrivateRedis { port, child: None, dir };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again (empty) and waits until it answers PING.
    pub async fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).expect("redis url");
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private redis-server on {} did not start", self.port);
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url()).expect("redis url").get_multiplexed_async_connection().await.expect("redis")
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A Redis Cluster of a test's own: three masters started by `scripts/redis-cluster` on free
/// private ports (never the shared Redis), in a directory of their own. Stopped when dropped.
pub struct PrivateCluster {
    /// The masters' ports, in the order `redis-cli --cluster create` gave them their slots.
    pub ports: [u16; 3],
    dir: std::path::PathBuf,
}

impl PrivateCluster {
    pub fn start() -> Self {
        // Tests start clusters concurrently: two may pick ports in one range before either binds
        // them. The script then finds the other test's cluster running (or its ports taken), so
        // a cluster counts as this test's only when its own directory holds the masters' pid
        // files; otherwise other ports are tried.
        for _ in 0..10 {
            let base = free_cluster_base();
            let dir = std::env::temp_dir().join(format!("test-redis-cluster-{base}-{}", uuid::Uuid::new_v4().simple()));
            let cluster = PrivateCluster { ports: [base, base + 1, base + 2], dir };
            let out = cluster.script("start").output().expect("run scripts/redis-cluster");
            let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            let own = cluster.ports.iter().all(|p| cluster.dir.join(format!("{p}.pid")).exists());
            if out.status.success() && own {
                return cluster;
            }
            assert!(
                said.contains("already running") || said.contains("already serves"),
                "scripts/redis-cluster failed: {said}"
            );
        }
        panic!("no free ports for a Redis Cluster of this test's own");
    }

    fn script(&self, action: &str) -> std::process::Command {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/redis-cluster");
        let mut cmd = std::process::Command::new(script);
        cmd.arg(action).env("REDIS_CLUSTER_PORT", self.ports[0].to_string()).env("REDIS_CLUSTER_DIR", &self.dir);
        cmd
    }

    /// `REDIS_CLUSTER_NODES`: every master as a seed.
    pub fn nodes(&self) -> String {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    /// A plain connection to one node.
    pub async fn node(&self, port: u16) -> redis::aio::MultiplexedConnection {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis node")
    }

    /// The port of the master serving `key` (a key or a shard channel), from the cluster itself.
    pub async fn port_of(&self, key: &str) -> u16 {
        let mut conn = self.node(self.ports[0]).await;
        let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query_async(&mut conn).await.expect("KEYSLOT");
        let ranges: Vec<(i64, i64, (String, u16))> = {
            let rows: Vec<redis::Value> =
                redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut conn).await.expect("CLUSTER SLOTS");
            rows.into_iter()
                .map(|row| {
                    let row: Vec<redis::Value> = redis::from_owned_redis_value(row).expect("row");
                    let node: Vec<redis::Value> = redis::from_redis_value(&row[2]).expect("node");
                    let first = redis::from_redis_value(&row[0]).expect("first");
                    let last = redis::from_redis_value(&row[1]).expect("last");
                    let host = redis::from_redis_value(&node[0]).expect("host");
                    let port = redis::from_redis_value(&node[1]).expect("port");
                    (first, last, (host, port))
                })
                .collect()
        };
        ranges
            .into_iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .expect("a master serves the slot")
            .2
             .1
    }

    /// SIGKILLs the master on `port`, as a crash; its slots stay unserved until [`Self::revive`].
    pub fn kill(&self, port: u16) {
        let pid = std::fs::read_to_string(self.dir.join(format!("{port}.pid"))).expect("pid file");
        let status = std::process::Command::new("kill").arg("-9").arg(pid.trim()).status().expect("kill");
        assert!(status.success());
    }

    /// Starts the master on `port` again, empty, with its cluster configuration: it takes its
    /// slots back. Waits until the whole cluster serves every slot again.
    pub async fn revive(&self, port: u16) {
        let status = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--daemonize", "yes"])
            .args(["--cluster-enabled", "yes", "--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--pidfile")
            .arg(self.dir.join(format!("{port}.pid")))
            .arg("--logfile")
            .arg(self.dir.join(format!("{port}.log")))
            .status()
            .expect("start redis-server");
        assert!(status.success());
        for _ in 0..200 {
            if self.serves_every_slot().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the cluster did not come back");
    }

    async fn serves_every_slot(&self) -> bool {
        for port in self.ports {
            let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else { return false };
            let Ok(mut conn) = client.get_multiplexed_async_connection().await else { return false };
            let Ok(info) = redis::cmd("CLUSTER").arg("INFO").query_async::<String>(&mut conn).await else {
                return false;
            };
            if !info.contains("cluster_state:ok") {
                return false;
            }
        }
        true
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.script("stop").output();
    }
}

/// A first port such that it, the two after it and their cluster bus ports (+10000) are free.
fn free_cluster_base() -> u16 {
    use rand::Rng;
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    for _ in 0..200 {
        let base = rand::thread_rng().gen_range(21_000u16..24_990);
        if (base..base + 3).all(|p| free(p) && free(p + 10_000)) {
            return base;
        }
    }
    panic!("no free ports for a Redis Cluster");
}
