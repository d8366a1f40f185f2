//! What every scenario shares: latency histograms, closed-loop drivers, readings of a service
//! process (CPU time, resident memory, open files), session tokens minted with the development
//! key, identities, boxes and members created through the typed client, and the result row each
//! scenario prints.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use boxes_client::body::NewBox;
use boxes_client::{Auth, Boxes, Internal};
use domain::auth::{sha256_b64u, SessionClaims, Signer};
use domain::identity::{DisplayName, IdentifierKind, IdentityUpsert};
use domain::{BoxId, IdentityId, SessionId};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies in microseconds, from 1 µs to 10 minutes, three significant digits.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).context("creating a latency histogram")
}

/// Records one latency, saturating at the histogram's upper bound.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_micros().clamp(1, 600_000_000) as u64);
}

/// p50, p99 and max of a histogram of microseconds, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            max_ms: h.max() as f64 / 1000.0,
        }
    }
}

/// One line of the results table; `scripts/bench` collects them (JSON lines) and `loadgen report`
/// prints them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Row {
    /// Scenario and variant, e.g. `1. POST events, 32 clients`.
    pub scenario: String,
    /// The headline figure and its unit, e.g. `4120 req/s`.
    pub figure: String,
    pub latency: Option<Latency>,
    /// The baseline's figure as printed, e.g. `pgbench 6100 tps`.
    pub baseline: Option<String>,
    pub ratio: Option<f64>,
    pub target: String,
    /// `None` when the scenario has no target or could not be measured.
    pub met: Option<bool>,
    /// Anything the reader needs to interpret the figure (errors, caps, CPU use).
    pub notes: String,
}

impl Row {
    /// Prints the row as a JSON line on stdout and appends it to `out` when given.
    pub fn emit(&self, out: Option<&Path>) -> anyhow::Result<()> {
        let line = serde_json::to_string(self).context("serialising a result row")?;
        println!("{line}");
        if let Some(path) = out {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            writeln!(f, "{line}").context("writing a result row")?;
        }
        Ok(())
    }
}

/// Formats a rate with a sensible number of digits.
pub fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Readings of one service process from `/proc`.
#[derive(Debug, Clone, Copy)]
pub struct Proc(pub u32);

impl Proc {
    /// CPU time used by every thread of the process so far (`/proc/<pid>/task/*/schedstat`).
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        let dir = format!("/proc/{}/task", self.0);
        let mut total: u64 = 0;
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
            let Ok(entry) = entry else { continue };
            // A thread may exit between listing and reading: skip it.
            let Ok(s) = std::fs::read_to_string(entry.path().join("schedstat")) else { continue };
            total += s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
        Ok(Duration::from_nanos(total))
    }

    /// Resident memory (`VmRSS`) in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.0);
        let s = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let kb = s
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .context("no VmRSS line")?;
        Ok(kb * 1024)
    }

    /// The CPUs the process may run on (`Cpus_allowed_list`, e.g. `0` or `0-1`).
    pub fn cpus(&self) -> anyhow::Result<String> {
        let path = format!("/proc/{}/status", self.0);
        let s = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        s.lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|v| v.trim().to_owned())
            .context("no Cpus_allowed_list line")
    }

    /// Open file descriptors.
    pub fn open_files(&self) -> anyhow::Result<usize> {
        let dir = format!("/proc/{}/fd", self.0);
        Ok(std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))?.count())
    }

    /// The soft limit on open files.
    pub fn max_open_files(&self) -> anyhow::Result<usize> {
        let path = format!("/proc/{}/limits", self.0);
        let s = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        s.lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok())
            .context("no `Max open files` line")
    }
}

/// The PostgreSQL server, by its postmaster's pid: its CPU time is the postmaster's, that of the
/// children it has reaped (backends of closed connections), and that of its live children.
#[derive(Debug, Clone, Copy)]
pub struct PgCluster(pub u32);

/// Clock ticks per second of the times in `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const USER_HZ: u64 = 100;

impl PgCluster {
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        let own = stat_ticks(self.0, 4).with_context(|| format!("reading the PostgreSQL process {}", self.0))?;
        let path = format!("/proc/{0}/task/{0}/children", self.0);
        let children = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        // A backend may exit between listing and reading; its time then moves to the postmaster's
        // reaped-children fields, read above or at the next reading.
        let live: u64 =
            children.split_whitespace().filter_map(|c| c.parse().ok()).filter_map(|c| stat_ticks(c, 2).ok()).sum();
        Ok(Duration::from_millis((own + live) * 1000 / USER_HZ))
    }
}

/// The whole machine, from `/proc/stat`: what every process and the kernel used, so that a
/// figure's cost can be set against all the machine has.
pub struct Machine;

impl Machine {
    /// Busy time summed over the cores since boot: user, nice, system, irq and softirq (idle,
    /// iowait and the time the hypervisor took, steal, are left out).
    pub fn busy() -> anyhow::Result<Duration> {
        let stat = Self::stat()?;
        let line = stat.lines().next().filter(|l| l.starts_with("cpu ")).context("malformed /proc/stat")?;
        let ticks: Vec<u64> = line.split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0)).collect();
        let busy: u64 = [0, 1, 2, 5, 6].iter().filter_map(|i| ticks.get(*i)).sum();
        Ok(Duration::from_millis(busy * 1000 / USER_HZ))
    }

    /// The cores `/proc/stat` counts (all of the machine's, whatever this process is pinned to).
    pub fn cores() -> anyhow::Result<usize> {
        let stat = Self::stat()?;
        Ok(stat.lines().filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit)).count())
    }

    fn stat() -> anyhow::Result<String> {
        std::fs::read_to_string("/proc/stat").context("reading /proc/stat")
    }
}

/// The PostgreSQL backends serving one database, by pid: their CPU time is the server's work for
/// that database, without that of other databases on a shared server (nor the background writer's
/// and WAL writer's, which every database shares). Backends opened after [`PgBackends::of`] are not
/// counted; boxes keeps its pooled connections open.
pub struct PgBackends(pub Vec<u32>);

impl PgBackends {
    pub async fn of(database_url: &str) -> anyhow::Result<Self> {
        let (client, conn) =
            tokio_postgres::connect(database_url, tokio_postgres::NoTls).await.context("connecting to PostgreSQL")?;
        tokio::spawn(conn);
        let rows = client
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .context("listing the database's backends")?;
        Ok(PgBackends(rows.iter().filter_map(|r| r.get::<_, Option<i32>>(0)).map(|p| p as u32).collect()))
    }

    /// CPU time of the backends still running; one that has exited counts for nothing.
    pub fn cpu(&self) -> Duration {
        let ticks: u64 = self.0.iter().filter_map(|p| stat_ticks(*p, 2).ok()).sum();
        Duration::from_millis(ticks * 1000 / USER_HZ)
    }
}

/// The sum of the first `n` of utime, stime, cutime, cstime in `/proc/<pid>/stat`.
fn stat_ticks(pid: u32, n: usize) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it start with the state (field 3).
    let rest = s.rsplit_once(") ").map(|(_, r)| r).context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (11..11 + n).map(|i| fields.get(i).and_then(|v| v.parse::<u64>().ok()).context("malformed stat")).sum()
}

/// CPU time of several processes over a window.
pub struct CpuWindow {
    procs: Vec<Proc>,
    start: Vec<Duration>,
    wall: Instant,
}

impl CpuWindow {
    pub fn start(procs: &[Proc]) -> anyhow::Result<Self> {
        let start = procs.iter().map(Proc::cpu).collect::<anyhow::Result<Vec<_>>>()?;
        Ok(CpuWindow { procs: procs.to_vec(), start, wall: Instant::now() })
    }

    /// CPU seconds used by each process since `start`, and the wall time.
    pub fn stop(&self) -> anyhow::Result<(Vec<f64>, f64)> {
        let mut used = Vec::new();
        for (p, s) in self.procs.iter().zip(&self.start) {
            used.push(p.cpu()?.saturating_sub(*s).as_secs_f64());
        }
        Ok((used, self.wall.elapsed().as_secs_f64()))
    }
}

/// Mints session tokens the way auth-bridge does, with the development private key.
pub struct Minter {
    signer: Signer,
}

impl Minter {
    pub fn from_files(private: &Path, public: &Path) -> anyhow::Result<Self> {
        let private_pem = std::fs::read_to_string(private).with_context(|| format!("reading {}", private.display()))?;
        let public_pem = std::fs::read_to_string(public).with_context(|| format!("reading {}", public.display()))?;
        let signer = Signer::new(&private_pem, &public_pem, "auth-bridge").context("loading the signing key")?;
        Ok(Minter { signer })
    }

    /// An access token for `sub` (ACR 2, four hours), bound to a random CSRF token nobody needs:
    /// the load generator authenticates with `Authorization: Bearer`.
    pub fn token(&self, sub: IdentityId) -> anyhow::Result<String> {
        let csrf = uuid::Uuid::new_v4().simple().to_string();
        let (jwt, _) = self
            .signer
            .sign(SessionClaims {
                sub,
                sid: SessionId::new_v4(),
                acr: "2",
                csrf_hash: &sha256_b64u(&csrf),
                client_id: "ref-hostapp",
                ttl_secs: 4 * 3600,
            })
            .context("signing a token")?;
        Ok(jwt)
    }
}

/// A benchmark user: an identity known to boxes and its bearer token.
#[derive(Debug, Clone)]
pub struct User {
    pub id: IdentityId,
    pub bearer: String,
}

/// The HTTP client every scenario uses: keep-alive pool, no proxy, generous timeouts.
pub fn http_client(pool: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(pool)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")
}

/// boxes' public API as `user`.
pub fn api(http: &reqwest::Client, boxes_url: &str, user: &User) -> Boxes {
    Boxes::new(http.clone(), boxes_url).as_user(Auth::Bearer(user.bearer.clone()))
}

/// Creates `n` identities through `PUT /internal/identities/{id}` and mints their tokens.
pub async fn create_users(
    http: &reqwest::Client,
    boxes_internal_url: &str,
    internal_token: &str,
    minter: &Minter,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<User>> {
    use futures_util::{StreamExt, TryStreamExt};
    let internal = Internal::new(http.clone(), boxes_internal_url, internal_token);
    let mut users = Vec::with_capacity(n);
    for _ in 0..n {
        let id = IdentityId::new_v4();
        users.push(User { id, bearer: format!("Bearer {}", minter.token(id)?) });
    }
    futures_util::stream::iter(users.iter().enumerate())
        .map(|(i, u)| {
            let internal = &internal;
            async move {
                let identity = IdentityUpsert {
                    display_name: DisplayName::parse(&format!("Bench user {i}"))
                        .map_err(|d| anyhow::anyhow!("display name: {}", d.as_str()))?,
                    identifier_value: format!("bench{i}@example.com"),
                    identifier_kind: IdentifierKind::Email,
                    identifier_verified: false,
                };
                internal.upsert_identity(u.id, &identity).await.context("PUT /internal/identities")
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(users)
}

/// A b64u string of `len` characters (a stand-in for ciphertext; only its shape is checked).
pub fn b64u_filler(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len).map(|i| ALPHABET[(i * 7 + 3) % ALPHABET.len()] as char).collect()
}

/// A 32-byte public key in b64u, as a client would send.
pub const PUBLIC_KEY: &str = "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw";

/// Creates a box owned by `admin` and returns its id.
pub async fn create_box(http: &reqwest::Client, boxes_url: &str, admin: &User, title: &str) -> anyhow::Result<BoxId> {
    let bx = api(http, boxes_url, admin).create_box(&NewBox::new(title, PUBLIC_KEY)).await.context("POST /boxes")?;
    Ok(bx.id)
}

/// Makes `member` a member of the box: `access.add` by the admin, then `member.join` (§6.3).
pub async fn add_member(
    http: &reqwest::Client,
    boxes_url: &str,
    box_id: BoxId,
    admin: &User,
    member: &User,
) -> anyhow::Result<()> {
    let member_auth = Auth::Bearer(member.bearer.clone());
    api(http, boxes_url, admin).add_member(box_id, member.id, member_auth).await.context("adding a member")?;
    Ok(())
}

/// What a closed-loop run measured.
pub struct LoopResult {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub histogram: Histogram<u64>,
    pub elapsed: f64,
}

impl LoopResult {
    pub fn rate(&self) -> f64 {
        if self.elapsed > 0.0 {
            self.ok as f64 / self.elapsed
        } else {
            0.0
        }
    }

    pub fn error_note(&self) -> String {
        match (&self.first_error, self.errors) {
            (_, 0) => String::new(),
            (Some(e), n) => format!("{n} errors (first: {e})"),
            (None, n) => format!("{n} errors"),
        }
    }
}

/// Runs `clients` loops of `op` for `warmup` (not recorded) then `duration`, each loop waiting for
/// its answer before the next request: the classic closed-loop benchmark. The measured window
/// starts once the warm-up's requests have all been answered and the measure hook has run.
pub async fn closed_loop<F, Fut>(
    clients: usize,
    warmup: Duration,
    duration: Duration,
    op: F,
) -> anyhow::Result<LoopResult>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let mut next = vec![0u64; clients];
    if !warmup.is_zero() {
        run_loops(clients, warmup, &op, &mut next).await?;
    }
    measure_hook(&["start"]).await?;
    let result = run_loops(clients, duration, &op, &mut next).await?;
    measure_hook(&["stop", &(result.ok + result.errors).to_string(), "requests"]).await?;
    Ok(result)
}

/// One phase of [`closed_loop`]: `clients` loops for `duration`; `next` holds each loop's next
/// request number, carried from the warm-up into the measured phase.
async fn run_loops<F, Fut>(
    clients: usize,
    duration: Duration,
    op: &Arc<F>,
    next: &mut [u64],
) -> anyhow::Result<LoopResult>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::new();
    for (c, first) in next.iter().copied().enumerate().take(clients) {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = histogram()?;
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            let mut i = first;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let r = op(c, i).await;
                i += 1;
                match r {
                    Ok(()) => {
                        ok += 1;
                        record(&mut h, t0.elapsed());
                    }
                    Err(e) => {
                        errors += 1;
                        if first_error.is_none() {
                            first_error = Some(format!("{e:#}"));
                        }
                    }
                }
            }
            anyhow::Ok((h, ok, errors, first_error, i))
        }));
    }
    let mut result = LoopResult { ok: 0, errors: 0, first_error: None, histogram: histogram()?, elapsed: 0.0 };
    for (t, slot) in tasks.into_iter().zip(next.iter_mut()) {
        let (h, ok, errors, first_error, i) = t.await.context("a client task panicked")??;
        result.histogram.add(&h).context("merging histograms")?;
        result.ok += ok;
        result.errors += errors;
        if result.first_error.is_none() {
            result.first_error = first_error;
        }
        *slot = i;
    }
    // Requests started before `end` may finish after it: the window includes that overrun.
    result.elapsed = start.elapsed().as_secs_f64();
    Ok(result)
}

/// Runs `$BENCH_MEASURE_HOOK <args>` when that is set, and waits for it: `scripts/bench
/// --callgrind` counts a service's instructions from `start` to `stop <count> <unit>`, so that
/// the count covers exactly the measured window. Without the variable, nothing happens.
pub async fn measure_hook(args: &[&str]) -> anyhow::Result<()> {
    let Some(hook) = std::env::var_os("BENCH_MEASURE_HOOK") else { return Ok(()) };
    let status = tokio::process::Command::new(&hook)
        .args(args)
        .status()
        .await
        .with_context(|| format!("running the measure hook {}", hook.to_string_lossy()))?;
    anyhow::ensure!(status.success(), "the measure hook {} {args:?} failed: {status}", hook.to_string_lossy());
    Ok(())
}

/// `VACUUM ANALYZE` and `CHECKPOINT`, as `settle` in `scripts/bench` does before each scenario:
/// for scenarios whose own setup writes many rows, so that the autovacuum and the checkpoint the
/// setup calls for do not run during the measurement. Nothing happens without a database URL.
pub async fn settle(database_url: Option<&str>) -> anyhow::Result<()> {
    let Some(db) = database_url else { return Ok(()) };
    let (client, conn) =
        tokio_postgres::connect(db, tokio_postgres::NoTls).await.context("connecting to PostgreSQL")?;
    tokio::spawn(conn);
    // Two calls: several statements in one would run as one transaction, which VACUUM refuses.
    client.batch_execute("VACUUM ANALYZE").await.context("VACUUM ANALYZE")?;
    client.batch_execute("CHECKPOINT").await.context("CHECKPOINT")?;
    Ok(())
}

/// The ciphertext of an `event.new` envelope's message, from where it starts to the end of the
/// text (the load generator's messages carry what it measures at their start); `None` for any
/// other frame. A plain search, not a JSON parse: the frames are read at tens of thousands a
/// second.
pub fn event_ciphertext(text: &str) -> Option<&str> {
    const KEY: &str = "\"encrypted\":";
    if !text.contains("\"event.new\"") {
        return None;
    }
    // The content is passed through as PostgreSQL wrote it, with a space after the colon.
    let value = &text[text.find(KEY)? + KEY.len()..];
    value.trim_start().strip_prefix('"')
}

#[cfg(test)]
mod tests {
    use super::event_ciphertext;

    #[test]
    fn the_ciphertext_is_found_with_or_without_a_space_after_the_colon() {
        let stored = r#"{"type":"event.new","object":{"content":{"encrypted": "AAA.rest", "public_key": "k"}}}"#;
        let compact = r#"{"type":"event.new","object":{"content":{"encrypted":"AAA.rest","public_key":"k"}}}"#;
        assert!(event_ciphertext(stored).is_some_and(|c| c.starts_with("AAA.rest\"")));
        assert!(event_ciphertext(compact).is_some_and(|c| c.starts_with("AAA.rest\"")));
        assert_eq!(event_ciphertext(r#"{"type":"ack","object":{}}"#), None);
    }
}
