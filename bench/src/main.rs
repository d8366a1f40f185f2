//! `loadgen`: the load generator of `scripts/bench`.
//!
//! Each subcommand runs one scenario against services that are already running (the script
//! starts them, pinned to their own core) and prints one JSON result row per figure, appending it
//! to `--out`; `loadgen report` turns those rows into the results table. The scenarios talk to the
//! services the way clients do: HTTP with bearer tokens, websockets waiting for `ready`. Tokens are
//! minted with the development private key, and identities created through boxes' internal API,
//! so only scenario 6 goes through auth-bridge.

mod common;
mod events;
mod files;
mod login;
mod mixed;
mod report;
mod ws;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Load generator and results table of the benchmark suite (scripts/bench)")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// Where the services are and how long each measurement lasts.
#[derive(Debug, Clone, Args)]
pub struct Common {
    #[arg(long, env = "BENCH_BOXES_URL", default_value = "http://127.0.0.1:8081")]
    pub boxes_url: String,
    /// boxes' internal listener (`INTERNAL_BIND_ADDR`), to create identities.
    #[arg(long, env = "BENCH_BOXES_INTERNAL_URL", default_value = "http://127.0.0.1:9081")]
    pub boxes_internal_url: String,
    #[arg(long, env = "BENCH_REALTIME_URL", default_value = "http://127.0.0.1:8082")]
    pub realtime_url: String,
    /// A second realtime process, for scenario 4b's scaling from one process to two.
    #[arg(long, env = "BENCH_REALTIME2_URL")]
    pub realtime2_url: Option<String>,
    #[arg(long, env = "BENCH_BRIDGE_URL", default_value = "http://127.0.0.1:8083")]
    pub bridge_url: String,
    /// Ed25519 private key (PKCS#8 PEM) the services trust, to mint session tokens.
    #[arg(long, env = "JWT_PRIVATE_KEY_FILE", default_value = ".stack/jwt-private.pem")]
    pub private_key: PathBuf,
    /// The matching public key (SPKI PEM), for the key id.
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE", default_value = ".stack/jwt-public.pem")]
    pub public_key: PathBuf,
    /// boxes' `INTERNAL_API_TOKEN`, to create identities.
    #[arg(long, env = "INTERNAL_API_TOKEN", default_value = "", hide_env_values = true)]
    pub internal_token: String,
    /// The database boxes uses (scenario 2's baseline reads it directly).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    #[arg(long, env = "BENCH_BOXES_PID")]
    pub boxes_pid: Option<u32>,
    #[arg(long, env = "BENCH_REALTIME_PID")]
    pub realtime_pid: Option<u32>,
    #[arg(long, env = "BENCH_REALTIME2_PID")]
    pub realtime2_pid: Option<u32>,
    #[arg(long, env = "BENCH_BRIDGE_PID")]
    pub bridge_pid: Option<u32>,
    #[arg(long, env = "BENCH_HOSTAPP_PID")]
    pub hostapp_pid: Option<u32>,
    /// The PostgreSQL postmaster, to read the server's CPU time.
    #[arg(long, env = "BENCH_PG_PID")]
    pub pg_pid: Option<u32>,
    /// The Redis server, to read its CPU time and resident memory.
    #[arg(long, env = "BENCH_REDIS_PID")]
    pub redis_pid: Option<u32>,
    /// Measured seconds of each run.
    #[arg(long, env = "BENCH_DURATION", default_value_t = 15.0)]
    pub duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, env = "BENCH_WARMUP", default_value_t = 2.0)]
    pub warmup: f64,
    /// JSON-lines file the result rows are appended to.
    #[arg(long, env = "BENCH_OUT")]
    pub out: Option<PathBuf>,
}

impl Common {
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration.max(0.1))
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup.max(0.0))
    }

    pub fn minter(&self) -> anyhow::Result<common::Minter> {
        common::Minter::from_files(&self.private_key, &self.public_key)
    }

    /// Starts measuring boxes' CPU time, when its pid is known.
    pub fn boxes_cpu(&self) -> anyhow::Result<Option<common::CpuWindow>> {
        self.boxes_pid.map(|p| common::CpuWindow::start(&[common::Proc(p)])).transpose()
    }

    /// The same settings as arguments, for worker processes.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            format!("--boxes-url={}", self.boxes_url),
            format!("--boxes-internal-url={}", self.boxes_internal_url),
            format!("--realtime-url={}", self.realtime_url),
            format!("--bridge-url={}", self.bridge_url),
            format!("--private-key={}", self.private_key.display()),
            format!("--public-key={}", self.public_key.display()),
            format!("--duration={}", self.duration),
            format!("--warmup={}", self.warmup),
        ];
        if let Some(p) = self.realtime_pid {
            a.push(format!("--realtime-pid={p}"));
        }
        a
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scenario 1: POST /boxes/{id}/events with 1 KiB msg.text, closed loop.
    PostEvents {
        #[arg(long, default_value_t = 1)]
        clients: usize,
        /// pgbench's rate for the same concurrency (transactions per second).
        #[arg(long)]
        baseline_tps: Option<f64>,
        /// pgbench's rate for the least transaction a post needs, at one client.
        #[arg(long)]
        least_tps: Option<f64>,
    },
    /// Scenario 2: GET /boxes/{id}/events?limit=50, and the same query through tokio-postgres.
    ListEvents {
        #[arg(long, default_value_t = 32)]
        clients: usize,
    },
    /// Scenario 3: idle authenticated websockets; resident memory of realtime per socket.
    Idle {
        #[arg(long, default_value_t = 20_000)]
        sockets: usize,
    },
    /// A worker process of scenario 3 (started by `idle`).
    #[command(hide = true)]
    IdleWorker {
        #[arg(long)]
        sockets: usize,
        #[arg(long, default_value_t = 0)]
        source_offset: usize,
    },
    /// Scenario 4: fan-out latency at a fixed delivery rate, then the saturation rate.
    Fanout {
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        /// Deliveries per second of the latency phase.
        #[arg(long, default_value_t = 5_000.0)]
        rate: f64,
        /// Concurrent posting clients of the saturation phase.
        #[arg(long, default_value_t = 64)]
        posters: usize,
        /// redis-benchmark's PUBLISH rate on this machine.
        #[arg(long)]
        baseline_publish: Option<f64>,
    },
    /// Scenario 5: websocket connect storm.
    Storm {
        #[arg(long, default_value_t = 64)]
        clients: usize,
    },
    /// Scenario 6: logins through auth-bridge.
    Login {
        #[arg(long, default_value_t = 32)]
        clients: usize,
    },
    /// Scenario 7: upload and download of an encrypted file, against `dd` on the same disk.
    Files {
        /// A directory on the disk of boxes' `FILES_DIR`, for `dd`'s file.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 64)]
        size_mib: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Scenario 8: a mixed load at a human rate (sockets, posts, pages, acks), its population
    /// grown step by step until a p99 reaches 50 ms or a delivery is missed.
    Mixed {
        /// Users of the first step.
        #[arg(long, default_value_t = 250)]
        start: usize,
        /// Each step's population over the previous one's (rounded up to hundreds).
        #[arg(long, default_value_t = 1.5)]
        growth: f64,
        /// Users of the largest step (also capped by the open-file limits).
        #[arg(long, default_value_t = 18_000)]
        max: usize,
        /// Seconds after which no further step starts.
        #[arg(long, default_value_t = 600.0)]
        budget: f64,
        /// Posts a step's measured window holds at least: small populations are measured for
        /// longer than `--duration`, up to `--max-window` seconds.
        #[arg(long, default_value_t = 300)]
        min_posts: usize,
        #[arg(long, default_value_t = 60.0)]
        max_window: f64,
        /// Mean seconds between two posts of one user.
        #[arg(long, default_value_t = 60.0)]
        post_every: f64,
        /// Mean seconds between two page reads of one user.
        #[arg(long, default_value_t = 30.0)]
        read_every: f64,
        /// Mean seconds between two acks of one user.
        #[arg(long, default_value_t = 30.0)]
        ack_every: f64,
    },
    /// A sender of scenario 7's loopback reference (started by `files`): connects to `addr` and
    /// sends the file with `sendfile`.
    #[command(hide = true)]
    SendFile {
        #[arg(long)]
        path: PathBuf,
        #[arg(long)]
        addr: std::net::SocketAddr,
    },
    /// p50/p99/max (ms) of pgbench's per-transaction logs, as JSON.
    PgbenchLatency {
        /// The `--log-prefix` given to pgbench.
        #[arg(long)]
        prefix: String,
    },
    /// Adds the latency of a pgbench run to a baseline row (used by scripts/bench).
    BaselineRow {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        figure: String,
        #[arg(long)]
        pgbench_prefix: Option<String>,
        #[arg(long, default_value = "")]
        notes: String,
    },
    /// Prints the CPU time PostgreSQL has used so far, in microseconds (needs `--pg-pid`).
    PgCpu,
    /// Prints the whole machine's busy CPU time so far (every core, process and the kernel), in
    /// microseconds, and its number of cores.
    MachineCpu,
    /// Prints the results table from the JSON-lines file.
    Report {
        file: PathBuf,
        /// Markdown (for BENCHMARKS.md) instead of the terminal layout.
        #[arg(long)]
        markdown: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let c = &cli.common;
    match cli.command {
        Command::PostEvents { clients, baseline_tps, least_tps } => {
            events::post(c, clients, baseline_tps, least_tps).await
        }
        Command::ListEvents { clients } => events::list(c, clients).await,
        Command::Idle { sockets } => ws::idle(c, sockets).await,
        Command::IdleWorker { sockets, source_offset } => ws::idle_worker(c, sockets, source_offset).await,
        Command::Fanout { users, rate, posters, baseline_publish } => {
            ws::fanout(c, users, rate, posters, baseline_publish).await
        }
        Command::Storm { clients } => ws::storm(c, clients).await,
        Command::Login { clients } => login::login(c, clients).await,
        Command::Files { dir, size_mib, runs } => files::files(c, &dir, size_mib, runs).await,
        Command::Mixed { start, growth, max, budget, min_posts, max_window, post_every, read_every, ack_every } => {
            let model = mixed::Model { post_every, read_every, ack_every };
            let search = mixed::Search {
                start,
                growth: growth.max(1.01),
                max,
                budget: Duration::from_secs_f64(budget),
                min_posts,
                max_window: Duration::from_secs_f64(max_window),
            };
            mixed::mixed(c, model, search).await
        }
        Command::SendFile { path, addr } => files::send_file(&path, addr),
        Command::PgbenchLatency { prefix } => {
            println!("{}", serde_json::to_string(&events::pgbench_latency(&prefix)?)?);
            Ok(())
        }
        Command::BaselineRow { scenario, figure, pgbench_prefix, notes } => {
            let latency = pgbench_prefix.map(|p| events::pgbench_latency(&p)).transpose()?;
            common::Row { scenario, figure, latency, target: "(baseline)".into(), notes, ..Default::default() }
                .emit(c.out.as_deref())
        }
        Command::PgCpu => {
            let pid = c.pg_pid.context("--pg-pid is required")?;
            println!("{}", common::PgCluster(pid).cpu()?.as_micros());
            Ok(())
        }
        Command::MachineCpu => {
            println!("{} {}", common::Machine::busy()?.as_micros(), common::Machine::cores()?);
            Ok(())
        }
        Command::Report { file, markdown } => report::print(&file, markdown),
    }
}
