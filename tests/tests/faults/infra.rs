//! The servers the suite owns: a PostgreSQL cluster initialised into a temporary directory, a
//! redis-server, and the four service binaries, all on fixed private ports so that a restarted
//! process keeps its address. Everything is stopped when dropped, also after a failed check.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use e2e::Service;
use test_support::TestKeys;

/// The suite's ports, away from the machine's shared PostgreSQL (5432) and Redis (6379) and from
/// the services' defaults.
pub const PG_PORT: u16 = 18432;
pub const REDIS_PORT: u16 = 18379;
pub const BOXES_PORT: u16 = 18081;
pub const REALTIME_PORT: u16 = 18082;
pub const BRIDGE_PORT: u16 = 18083;
pub const HOSTAPP_PORT: u16 = 18090;
/// boxes' internal listener (`PUT /internal/identities/{id}`), which only auth-bridge calls.
pub const BOXES_INTERNAL_PORT: u16 = 18091;
/// The request budget of boxes and auth-bridge in the suite (their default is 6 s).
pub const REQUEST_TIMEOUT_MS: &str = "5000";

/// Sends `signal` (a name such as `KILL`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).stderr(Stdio::null()).status();
}

/// Resident memory of a process in bytes, 0 when it is gone.
pub fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .map_or(0, |kb: u64| kb * 1024)
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect()
}

fn wait_exit(child: &mut Child, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn temp_dir(kind: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("faults-{kind}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// PostgreSQL refuses to run as root: when we are root, its processes run as the `postgres` user.
fn postgres_user() -> Option<(u32, u32)> {
    let euid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
    if euid != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"postgres")).then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    })
}

fn pg_bin_dir() -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL server binaries not found under /usr/lib/postgresql")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|p| p.to_string_lossy().split('/').nth(4).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0));
    dirs.pop().context("no initdb under /usr/lib/postgresql/*/bin")
}

/// A PostgreSQL cluster of our own.
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    user: Option<(u32, u32)>,
    child: Option<Child>,
    frozen: bool,
}

impl Postgres {
    pub fn init() -> anyhow::Result<Postgres> {
        let bin = pg_bin_dir()?;
        let dir = temp_dir("pg")?;
        let user = postgres_user();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.args(["-D"]).arg(dir.join("data")).args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        let out = as_user(&mut initdb, user).stdin(Stdio::null()).output().context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut pg = Postgres { bin, dir, user, child: None, frozen: false };
        pg.start()?;
        Ok(pg)
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{PG_PORT}/postgres")
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{PG_PORT}/{db}")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the postmaster and waits until it accepts connections.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("postgres.log"))?;
        if let Some((uid, gid)) = self.user {
            std::os::unix::fs::chown(self.dir.join("postgres.log"), Some(uid), Some(gid))?;
        }
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D").arg(self.dir.join("data")).args(["-p", &PG_PORT.to_string(), "-k"]).arg(&self.dir).args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ]);
        let child = as_user(&mut cmd, self.user).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &PG_PORT.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    bail!("postgres exited with {status}: {}", self.log_tail());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("postgres did not start: {}", self.log_tail())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
        log.lines().rev().take(10).collect::<Vec<_>>().join("\n")
    }

    /// Fast shutdown (SIGINT): open sessions are terminated with 57P01.
    pub fn stop(&mut self) {
        self.thaw();
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "INT");
            if !wait_exit(&mut c, Duration::from_secs(20)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Stops the postmaster and every backend with SIGSTOP: connections stay open, nothing answers.
    pub fn freeze(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, "STOP");
            for c in children(pid) {
                signal(c, "STOP");
            }
            self.frozen = true;
        }
    }

    pub fn thaw(&mut self) {
        if !self.frozen {
            return;
        }
        if let Some(pid) = self.pid() {
            for c in children(pid) {
                signal(c, "CONT");
            }
            signal(pid, "CONT");
        }
        self.frozen = false;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn as_user(cmd: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// A redis-server of our own, with or without append-only persistence.
pub struct Redis {
    dir: PathBuf,
    pub persistent: bool,
    child: Option<Child>,
}

impl Redis {
    pub fn start(persistent: bool) -> anyhow::Result<Redis> {
        let mut r = Redis { dir: temp_dir("redis")?, persistent, child: None };
        r.spawn()?;
        Ok(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{REDIS_PORT}")
    }

    /// Starts redis-server (again, on the same directory) and waits for PONG.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("redis.log"))?;
        let child = Command::new("redis-server")
            .args(["--port", &REDIS_PORT.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", if self.persistent { "yes" } else { "no" }])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting redis-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("redis-server did not answer PING on port {REDIS_PORT}")
    }

    pub fn ping(&self) -> bool {
        Command::new("redis-cli")
            .args(["-p", &REDIS_PORT.to_string(), "ping"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
    }

    /// SIGKILL: no shutdown save, connections reset.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The pids of the running services, read by the memory sampler while scenarios restart them.
pub type Pids = Arc<Mutex<HashMap<&'static str, u32>>>;

pub const BOXES: &str = "boxes";
pub const REALTIME: &str = "realtime";
pub const BRIDGE: &str = "auth-bridge";
pub const HOSTAPP: &str = "reference-hostapp";

/// The four services of one scenario, on a fresh database.
pub struct Services {
    envs: HashMap<&'static str, HashMap<String, String>>,
    running: HashMap<&'static str, Service>,
    pub pids: Pids,
    _files: [e2e::TempFile; 2],
    _keys: TestKeys,
}

pub fn port_of(name: &str) -> u16 {
    match name {
        BOXES => BOXES_PORT,
        REALTIME => REALTIME_PORT,
        BRIDGE => BRIDGE_PORT,
        _ => HOSTAPP_PORT,
    }
}

fn ready_path(name: &str) -> &'static str {
    if name == HOSTAPP {
        "/healthz"
    } else {
        "/readyz"
    }
}

pub fn url_of(name: &str) -> String {
    format!("http://127.0.0.1:{}", port_of(name))
}

impl Services {
    pub async fn start(database_url: &str, redis_url: &str) -> anyhow::Result<Services> {
        let keys = TestKeys::generate();
        let private = keys.private_file.path().display().to_string();
        let public = keys.public_file.path().display().to_string();
        let internal = format!("internal-{}", uuid::Uuid::new_v4().simple());
        let registry = e2e::temp_file(&format!(
            r#"[[hostapp]]
client_id = "ref-hostapp"
hostapp_client_id = "ref-hostapp"
hostapp_secret_key = "ref-secret"
token_prefix = "Token"
get_access_token_url = "{h}/hostapp/get-access-token"
get_user_data_url = "{h}/hostapp/get-user-data"
user_data_method = "GET"
allowed_app_ids = ["boxes-miniapp"]
timeout_ms = 5000
"#,
            h = url_of(HOSTAPP)
        ));
        let users: Vec<serde_json::Value> = crate::scenarios::REFERENCES
            .iter()
            .map(|r| serde_json::json!({"reference": r, "email": format!("{r}@faults.example"), "first_name": r}))
            .collect();
        let users = e2e::temp_file(&serde_json::Value::Array(users).to_string());
        let users_path = users.path().display().to_string();
        let env = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>()
        };
        let mut envs = HashMap::new();
        envs.insert(
            HOSTAPP,
            env(&[
                ("REF_CLIENT_ID", "ref-hostapp"),
                ("REF_SECRET", "ref-secret"),
                ("REF_APP_IDS", "boxes-miniapp"),
                ("REF_STATIC_CODES", "true"),
                ("REF_USERS_FILE", &users_path),
            ]),
        );
        envs.insert(
            BOXES,
            env(&[
                ("DATABASE_URL", database_url),
                ("REDIS_URL", redis_url),
                ("JWT_PUBLIC_KEY_FILE", &public),
                ("INTERNAL_API_TOKEN", &internal),
                ("INTERNAL_BIND_ADDR", &format!("127.0.0.1:{BOXES_INTERNAL_PORT}")),
                ("REQUEST_TIMEOUT_MS", REQUEST_TIMEOUT_MS),
            ]),
        );
        envs.insert(REALTIME, env(&[("REDIS_URL", redis_url), ("JWT_PUBLIC_KEY_FILE", &public)]));
        envs.insert(
            BRIDGE,
            env(&[
                ("DATABASE_URL", database_url),
                ("REDIS_URL", redis_url),
                ("JWT_PRIVATE_KEY_FILE", &private),
                ("JWT_PUBLIC_KEY_FILE", &public),
                ("INTERNAL_API_TOKEN", &internal),
                ("BOXES_INTERNAL_URL", &format!("http://127.0.0.1:{BOXES_INTERNAL_PORT}")),
                ("HOSTAPPS_CONFIG", &registry.path().display().to_string()),
                ("COOKIE_SECURE", "false"),
                ("REQUEST_TIMEOUT_MS", REQUEST_TIMEOUT_MS),
            ]),
        );
        let mut s =
            Services { envs, running: HashMap::new(), pids: Pids::default(), _files: [registry, users], _keys: keys };
        // Started together, then waited for: each migrates or connects on its own.
        let mut started = Vec::new();
        for name in [HOSTAPP, BOXES, REALTIME, BRIDGE] {
            started.push((name, Service::start_on(name, &s.envs[name], port_of(name))?));
        }
        for (name, mut svc) in started {
            svc.wait_ready(ready_path(name)).await?;
            s.pids.lock().map_err(|_| anyhow::anyhow!("pids lock"))?.insert(name, svc.pid());
            s.running.insert(name, svc);
        }
        Ok(s)
    }

    /// Starts `name` on its port and waits until it is ready; returns how long that took.
    pub async fn spawn(&mut self, name: &'static str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut svc = Service::start_on(name, &self.envs[name], port_of(name))?;
        svc.wait_ready(ready_path(name)).await?;
        self.pids.lock().map_err(|_| anyhow::anyhow!("pids lock"))?.insert(name, svc.pid());
        self.running.insert(name, svc);
        Ok(started.elapsed())
    }

    /// SIGKILL, waiting until the process is gone.
    pub fn kill(&mut self, name: &'static str) {
        if let Some(svc) = self.running.remove(name) {
            drop(svc);
        }
    }

    /// SIGTERM; the time the process took to exit, `None` if it had not after `wait` (it is then killed).
    pub fn terminate(&mut self, name: &'static str, wait: Duration) -> Option<Duration> {
        let mut svc = self.running.remove(name)?;
        let started = Instant::now();
        svc.terminate(wait).then(|| started.elapsed())
    }

    pub fn pid(&self, name: &str) -> Option<u32> {
        self.running.get(name).map(Service::pid)
    }
}

/// Whether something already listens on one of the suite's ports.
pub fn busy_ports() -> Vec<u16> {
    [PG_PORT, REDIS_PORT, BOXES_PORT, REALTIME_PORT, BRIDGE_PORT, HOSTAPP_PORT]
        .into_iter()
        .filter(|p| {
            std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], *p).into(), Duration::from_millis(200)).is_ok()
        })
        .collect()
}
