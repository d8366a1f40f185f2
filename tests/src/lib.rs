//! Running the system the way a deployment does: each service is its own process, started from
//! its binary with settings in the environment, on free ports, against the local PostgreSQL and
//! Redis. Binaries come from `E2E_BIN_DIR` (`scripts/test` points it at the release build) or
//! else from this workspace's `target/debug`, which `cargo test --workspace` has just built.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod system;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the service binaries are.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("E2E_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
    target.join("debug")
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(path.exists(), "{} is missing: build the workspace first (cargo build --bins)", path.display());
    path
}

/// A free TCP port on loopback (racy by nature, fine for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A running service process, killed when dropped. Its output goes to a log file kept for asserts.
pub struct Service {
    pub name: String,
    pub port: u16,
    child: Child,
    pub log: PathBuf,
}

impl Service {
    pub fn start(name: &str, env: &HashMap<String, String>) -> anyhow::Result<Service> {
        Service::start_on(name, env, free_port())
    }

    /// Starts the service on a given port (a restarted service keeps its address).
    pub fn start_on(name: &str, env: &HashMap<String, String>, port: u16) -> anyhow::Result<Service> {
        let log = std::env::temp_dir().join(format!("e2e-{name}-{}.log", uuid::Uuid::new_v4().simple()));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(bin(name))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(env)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Service { name: name.to_owned(), port, child, log })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until `path` answers 2xx.
    pub async fn wait_ready(&mut self, path: &str) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("{} exited with {status}: {}", self.name, self.log_text());
            }
            if let Ok(res) = client.get(format!("{}{path}", self.url())).send().await {
                if res.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("{} not ready: {}", self.name, self.log_text())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to exit; `true` if it exited by itself in time.
    pub fn terminate(&mut self, wait: Duration) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use tempfile::NamedTempFile as TempFile;

/// Writes `text` to a temporary file that lives as long as the returned handle.
pub fn temp_file(text: &str) -> TempFile {
    let mut f = tempfile::Builder::new().prefix("e2e-").tempfile().expect("temp file");
    f.write_all(text.as_bytes()).expect("write temp file");
    f
}
