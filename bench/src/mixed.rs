//! Scenario 8: a mixed load at a human rate. Every user holds a socket and, in an open loop
//! (Poisson arrivals), posts a message into its box, reads a page of it and acks it; messages fan out to every member's socket. The population
//! grows step by step until a step misses p99 < 50 ms for one operation or loses a delivery; the
//! last step held gives the largest population and, from the CPU time and resident memory of each
//! process, the cost per 1,000 users.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use boxes_client::body::NewEvent;
use futures_util::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{self, rate, Latency, PgBackends, PgCluster, Proc, Row, User};
use crate::ws::{self, Ws};
use crate::Common;

/// What every step must hold.
const P99_BOUND_MS: f64 = 50.0;
/// Characters of ciphertext per message: a short text message.
const MESSAGE_LEN: usize = 256;
/// Smallest and largest box.
const BOX_SIZES: std::ops::RangeInclusive<usize> = 2..=50;
/// How long deliveries may still arrive after the measured window.
const DRAIN: Duration = Duration::from_secs(5);

/// The user model: mean seconds between two operations of each kind, per user.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    pub post_every: f64,
    pub read_every: f64,
    pub ack_every: f64,
}

/// The population steps: from `start` users, `growth` times more each time (rounded up to
/// hundreds), at most `max`, no step begun after `budget`.
#[derive(Debug, Clone, Copy)]
pub struct Search {
    pub start: usize,
    pub growth: f64,
    pub max: usize,
    pub budget: Duration,
    /// Posts each step's window should hold at least, so that a p99 does not rest on a handful of
    /// requests: a small population's window is longer than the run's duration, up to
    /// `max_window`.
    pub min_posts: usize,
    pub max_window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Post,
    Read,
    Ack,
}

const OPS: [Op; 3] = [Op::Post, Op::Read, Op::Ack];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Post => "post",
            Op::Read => "page",
            Op::Ack => "ack",
        }
    }
}

/// The users and their boxes, grown from step to step.
struct Population {
    users: Vec<User>,
    /// Each user's box, by user index.
    box_of: Vec<usize>,
    boxes: Vec<(domain::BoxId, usize)>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

/// Latencies and failures of one kind of operation in one step.
struct OpStats {
    histogram: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// What the sockets saw, shared by every reader.
struct Deliveries {
    epoch: Instant,
    /// Only messages of this step count; earlier steps' stragglers are ignored.
    step: AtomicU32,
    state: Mutex<DeliveryState>,
    /// Sockets that ended (closed by the server or failed).
    ended: AtomicU64,
}

#[derive(Default)]
struct DeliveryState {
    latency: Option<Histogram<u64>>,
    /// Arrivals per measured post number.
    arrived: HashMap<u64, u32>,
}

impl Deliveries {
    fn now_nanos(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// `<step:4><measured:1><post:12><sent:20>_<filler>`: digits and `_` are b64u.
    fn ciphertext(&self, step: u32, measured: bool, post: u64) -> String {
        let sent = self.now_nanos();
        let head = format!("{step:04}{}{post:012}{sent:020}_", u8::from(measured));
        let filler = common::b64u_filler(MESSAGE_LEN.saturating_sub(head.len()));
        head + &filler
    }

    fn on_text(&self, text: &str) {
        let Some(rest) = common::event_ciphertext(text) else { return };
        let field = |from: usize, to: usize| rest.get(from..to).and_then(|d| d.parse::<u64>().ok());
        let (Some(step), Some(1), Some(post), Some(sent)) = (field(0, 4), field(4, 5), field(5, 17), field(17, 37))
        else {
            return;
        };
        if step != u64::from(self.step.load(Ordering::Relaxed)) {
            return;
        }
        let latency = Duration::from_nanos(self.now_nanos().saturating_sub(sent));
        if let Ok(mut s) = self.state.lock() {
            if let Some(h) = s.latency.as_mut() {
                common::record(h, latency);
            }
            *s.arrived.entry(post).or_default() += 1;
        }
    }
}

/// What one step measured.
struct Step {
    users: usize,
    ops: Vec<(Op, OpStats)>,
    delivery: Latency,
    expected: u64,
    arrived: u64,
    lost: u64,
    duplicated: u64,
    /// Seconds of CPU per second of wall time, per process.
    cpu: Vec<(&'static str, f64)>,
    /// Resident memory in bytes, per process.
    rss: Vec<(&'static str, u64)>,
    /// p99 of how late the generator sent operations, in ms.
    lag_p99_ms: f64,
    rates: [f64; 3],
    deliveries_per_sec: f64,
    window_secs: f64,
    ended_sockets: u64,
}

impl Step {
    fn held(&self) -> bool {
        self.ops.iter().all(|(_, s)| s.errors == 0 && Latency::of(&s.histogram).p99_ms < P99_BOUND_MS)
            && self.delivery.p99_ms < P99_BOUND_MS
            && self.lost == 0
            && self.duplicated == 0
            && self.ended_sockets == 0
    }

    /// Why the step was not held, for the summary.
    fn misses(&self) -> String {
        let mut why = Vec::new();
        for (op, s) in &self.ops {
            let p99 = Latency::of(&s.histogram).p99_ms;
            if p99 >= P99_BOUND_MS {
                why.push(format!("{} p99 {p99:.1} ms", op.name()));
            }
            if s.errors > 0 {
                why.push(format!(
                    "{} {} errors (first: {})",
                    op.name(),
                    s.errors,
                    s.first_error.as_deref().unwrap_or("")
                ));
            }
        }
        if self.delivery.p99_ms >= P99_BOUND_MS {
            why.push(format!("delivery p99 {:.1} ms", self.delivery.p99_ms));
        }
        if self.lost > 0 {
            why.push(format!("{} deliveries lost", self.lost));
        }
        if self.duplicated > 0 {
            why.push(format!("{} deliveries duplicated", self.duplicated));
        }
        if self.ended_sockets > 0 {
            why.push(format!("{} sockets ended", self.ended_sockets));
        }
        why.join(", ")
    }

    /// The worst p50, p99 and max over every operation and the deliveries.
    fn worst(&self) -> Latency {
        let all = self.ops.iter().map(|(_, s)| Latency::of(&s.histogram)).chain([self.delivery]);
        all.fold(Latency::default(), |w, l| Latency {
            p50_ms: w.p50_ms.max(l.p50_ms),
            p99_ms: w.p99_ms.max(l.p99_ms),
            max_ms: w.max_ms.max(l.max_ms),
        })
    }

    fn latencies(&self) -> String {
        let mut parts: Vec<String> = self
            .ops
            .iter()
            .map(|(op, s)| {
                let l = Latency::of(&s.histogram);
                format!("{} {:.1}/{:.1}/{:.1}", op.name(), l.p50_ms, l.p99_ms, l.max_ms)
            })
            .collect();
        let d = self.delivery;
        parts.push(format!("delivery {:.1}/{:.1}/{:.1}", d.p50_ms, d.p99_ms, d.max_ms));
        format!("p50/p99/max ms: {}", parts.join(", "))
    }

    fn costs(&self) -> String {
        let cpu: Vec<String> = self.cpu.iter().map(|(n, v)| format!("{n} {v:.3}")).collect();
        let rss: Vec<String> = self.rss.iter().map(|(n, v)| format!("{n} {:.1} MiB", *v as f64 / 1048576.0)).collect();
        format!("CPU-s/s: {}; RSS: {}", cpu.join(", "), rss.join(", "))
    }
}

/// Scenario 8.
pub async fn mixed(c: &Common, model: Model, search: Search) -> anyhow::Result<()> {
    let boxes = Proc(c.boxes_pid.context("--boxes-pid is required")?);
    let realtime = Proc(c.realtime_pid.context("--realtime-pid is required")?);
    let server = ws::realtime_addr(&c.realtime_url)?;
    // Every user holds a socket: realtime's open-file limit, and the load generator's, cap the
    // population.
    let own = Proc(std::process::id());
    let room = |p: Proc| -> anyhow::Result<usize> { Ok(p.max_open_files()?.saturating_sub(p.open_files()? + 512)) };
    let cap = room(realtime)?.min(room(own)?);
    let max = search.max.min(cap);
    let http = common::http_client(512)?;
    let minter = c.minter()?;
    let started = Instant::now();
    let rss_before = [("boxes", boxes.rss()?), ("realtime", realtime.rss()?)];
    let deliveries = Arc::new(Deliveries {
        epoch: Instant::now(),
        step: AtomicU32::new(0),
        state: Mutex::new(DeliveryState::default()),
        ended: AtomicU64::new(0),
    });
    let mut population = Population { users: Vec::new(), box_of: Vec::new(), boxes: Vec::new(), readers: Vec::new() };
    let mut rng = StdRng::seed_from_u64(8);
    let mut held: Option<Step> = None;
    let mut missed: Option<Step> = None;
    let mut n = search.start.min(max);
    let mut step_no = 0u32;
    while n > population.users.len() {
        step_no += 1;
        grow(c, &http, &minter, server, &mut population, n, &deliveries, &mut rng).await?;
        common::settle(c.database_url.as_deref()).await?;
        let step = run_step(c, &http, &population, model, search, step_no, &deliveries, boxes, realtime).await?;
        eprintln!(
            "mixed: {} users: {}; {}; {}/{} deliveries; {}",
            step.users,
            if step.held() { "held".to_owned() } else { format!("NOT held ({})", step.misses()) },
            step.latencies(),
            step.arrived,
            step.expected,
            step.costs()
        );
        step_row(&step).emit(c.out.as_deref())?;
        if !step.held() {
            missed = Some(step);
            break;
        }
        held = Some(step);
        if started.elapsed() >= search.budget || n >= max {
            break;
        }
        n = ((n as f64 * search.growth / 100.0).ceil() as usize * 100).clamp(n + 1, max);
    }
    for r in population.readers.drain(..) {
        r.abort();
    }
    summary_row(held.as_ref(), missed.as_ref(), &rss_before, model, max, search, started.elapsed())
        .emit(c.out.as_deref())
}

/// Adds users (with their tokens and identities), their boxes and their sockets until there are
/// `n`. New users fill new boxes of uniform random size.
#[allow(clippy::too_many_arguments)]
async fn grow(
    c: &Common,
    http: &reqwest::Client,
    minter: &common::Minter,
    server: std::net::SocketAddr,
    p: &mut Population,
    n: usize,
    deliveries: &Arc<Deliveries>,
    rng: &mut StdRng,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let first = p.users.len();
    let new = common::create_users(http, &c.boxes_internal_url, &c.internal_token, minter, n - first, 64).await?;
    p.users.extend(new);
    let mut groups = Vec::new();
    let mut next = first;
    while next < n {
        let mut size = rng.gen_range(BOX_SIZES).min(n - next);
        // A last box of one would have nobody to talk to: it joins the previous group.
        if n - next - size == 1 {
            size += 1;
        }
        groups.push((next..next + size).collect::<Vec<usize>>());
        next += size;
    }
    if let Some(last) = groups.last() {
        anyhow::ensure!(last.len() >= 2, "the population cannot grow by a single user");
    }
    let users = &p.users;
    let made: Vec<(domain::BoxId, Vec<usize>)> = futures_util::stream::iter(groups)
        .map(|members| async move {
            let admin = &users[members[0]];
            let id = common::create_box(http, &c.boxes_url, admin, "Mixed load").await?;
            for m in &members[1..] {
                common::add_member(http, &c.boxes_url, id, admin, &users[*m]).await?;
            }
            anyhow::Ok((id, members))
        })
        .buffer_unordered(64)
        .try_collect()
        .await?;
    p.box_of.resize(n, 0);
    for (id, members) in made {
        for m in &members {
            p.box_of[*m] = p.boxes.len();
        }
        p.boxes.push((id, members.len()));
    }
    let sockets: Vec<Ws> = futures_util::stream::iter(first..n)
        .map(|i| ws::connect(server, ws::source_addr(i / 1000), &users[i]))
        .buffer_unordered(128)
        .try_collect()
        .await?;
    for socket in sockets {
        let deliveries = deliveries.clone();
        p.readers.push(tokio::spawn(async move {
            let mut socket = socket;
            while let Some(Ok(msg)) = socket.next().await {
                if let Message::Text(t) = msg {
                    deliveries.on_text(t.as_str());
                }
            }
            deliveries.ended.fetch_add(1, Ordering::Relaxed);
        }));
    }
    eprintln!(
        "mixed: {n} users in {} boxes, {} new with their sockets in {:.1} s",
        p.boxes.len(),
        n - first,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One step: warm-up, then the measured window, then the stragglers.
#[allow(clippy::too_many_arguments)]
async fn run_step(
    c: &Common,
    http: &reqwest::Client,
    p: &Population,
    model: Model,
    search: Search,
    step_no: u32,
    deliveries: &Arc<Deliveries>,
    boxes: Proc,
    realtime: Proc,
) -> anyhow::Result<Step> {
    let n = p.users.len();
    if let Ok(mut s) = deliveries.state.lock() {
        *s = DeliveryState { latency: Some(common::histogram()?), arrived: HashMap::new() };
    }
    deliveries.step.store(step_no, Ordering::Relaxed);
    let ended_before = deliveries.ended.load(Ordering::Relaxed);
    let users = Arc::new(p.users.clone());
    let box_of = Arc::new(p.box_of.clone());
    let boxes_of = Arc::new(p.boxes.clone());
    let stats: Arc<[Mutex<OpStats>; 3]> = Arc::new([
        Mutex::new(OpStats { histogram: common::histogram()?, errors: 0, first_error: None }),
        Mutex::new(OpStats { histogram: common::histogram()?, errors: 0, first_error: None }),
        Mutex::new(OpStats { histogram: common::histogram()?, errors: 0, first_error: None }),
    ]);
    // Members expected per measured post that boxes accepted.
    let expected: Arc<Mutex<HashMap<u64, u32>>> = Arc::new(Mutex::new(HashMap::new()));
    let lag = Arc::new(Mutex::new(common::histogram()?));
    let next_post = Arc::new(AtomicU64::new(0));
    let every = [model.post_every, model.read_every, model.ack_every];
    let rates = every.map(|e| n as f64 / e.max(0.001));
    let start = tokio::time::Instant::now();
    let measured_from = start + c.warmup();
    let span = c.duration().max(Duration::from_secs_f64(search.min_posts as f64 / rates[0].max(0.001)));
    let end = measured_from + span.min(search.max_window.max(c.duration()));

    let mut drivers = Vec::new();
    for (k, op) in OPS.into_iter().enumerate() {
        let ctx = OpContext {
            http: http.clone(),
            boxes_url: c.boxes_url.clone(),
            users: users.clone(),
            box_of: box_of.clone(),
            boxes: boxes_of.clone(),
            stats: stats.clone(),
            expected: expected.clone(),
            deliveries: deliveries.clone(),
            lag: lag.clone(),
            next_post: next_post.clone(),
            step_no,
        };
        let rate = rates[k];
        let seed = u64::from(step_no) * 10 + k as u64;
        drivers.push(tokio::spawn(async move { ctx.drive(op, rate, seed, measured_from, end).await }));
    }
    // The CPU window covers the measured part of the loop.
    tokio::time::sleep_until(measured_from).await;
    common::measure_hook(&["start"]).await?;
    let mut procs = vec![("boxes", boxes), ("realtime", realtime)];
    if let Some(pid) = c.redis_pid {
        procs.push(("Redis", Proc(pid)));
    }
    procs.push(("load generator", Proc(std::process::id())));
    let window = common::CpuWindow::start(&procs.iter().map(|(_, p)| *p).collect::<Vec<_>>())?;
    let pg = c.pg_pid.map(PgCluster);
    let pg0 = pg.map(|p| p.cpu()).transpose()?;
    let backends = match c.database_url.as_deref() {
        Some(db) => Some(PgBackends::of(db).await?),
        None => None,
    };
    let backends0 = backends.as_ref().map(PgBackends::cpu);
    tokio::time::sleep_until(end).await;
    let (used, wall) = window.stop()?;
    let pg_used = match (pg, pg0) {
        (Some(p), Some(t0)) => Some(p.cpu()?.saturating_sub(t0).as_secs_f64()),
        _ => None,
    };
    let backends_used = match (&backends, backends0) {
        (Some(b), Some(t0)) => Some(b.cpu().saturating_sub(t0).as_secs_f64()),
        _ => None,
    };
    let mut rss = vec![("boxes", boxes.rss()?), ("realtime", realtime.rss()?)];
    if let Some(pid) = c.redis_pid {
        if let Ok(r) = Proc(pid).rss() {
            rss.push(("Redis", r));
        }
    }
    for d in drivers {
        d.await.context("an operation driver panicked")?;
    }
    let want: u64 = expected.lock().map(|e| e.values().map(|v| u64::from(*v)).sum()).unwrap_or(0);
    let wait_until = Instant::now() + DRAIN;
    loop {
        let got: u64 = deliveries.state.lock().map(|s| s.arrived.values().map(|v| u64::from(*v)).sum()).unwrap_or(0);
        if got >= want || Instant::now() >= wait_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut lost, mut duplicated, mut arrived) = (0u64, 0u64, 0u64);
    let delivery;
    {
        let state = deliveries.state.lock().map_err(|_| anyhow::anyhow!("deliveries poisoned"))?;
        let expected = expected.lock().map_err(|_| anyhow::anyhow!("expected poisoned"))?;
        for (post, members) in expected.iter() {
            let got = state.arrived.get(post).copied().unwrap_or(0);
            arrived += u64::from(got);
            lost += u64::from(members.saturating_sub(got));
            duplicated += u64::from(got.saturating_sub(*members));
        }
        delivery = state.latency.as_ref().map(Latency::of).unwrap_or_default();
    }
    common::measure_hook(&["stop", &arrived.to_string(), "deliveries"]).await?;
    let mut cpu: Vec<(&'static str, f64)> = procs.iter().zip(&used).map(|((name, _), s)| (*name, s / wall)).collect();
    // The server may be shared: its backends for the benchmark's database are what boxes costs
    // it; the whole server's time is given beside them.
    if let Some(s) = pg_used {
        cpu.insert(2, ("PostgreSQL server", s / wall));
    }
    if let Some(s) = backends_used {
        cpu.insert(2, ("PostgreSQL", s / wall));
    }
    let ops = Arc::try_unwrap(stats)
        .map_err(|_| anyhow::anyhow!("operation statistics still shared"))?
        .into_iter()
        .zip(OPS)
        .map(|(m, op)| m.into_inner().map(|s| (op, s)).map_err(|_| anyhow::anyhow!("statistics poisoned")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let lag_p99_ms = lag.lock().map(|h| Latency::of(&h).p99_ms).unwrap_or_default();
    Ok(Step {
        users: n,
        ops,
        delivery,
        expected: want,
        arrived,
        lost,
        duplicated,
        cpu,
        rss,
        lag_p99_ms,
        rates,
        deliveries_per_sec: arrived as f64 / wall,
        window_secs: wall,
        ended_sockets: deliveries.ended.load(Ordering::Relaxed) - ended_before,
    })
}

/// What an operation driver needs.
struct OpContext {
    http: reqwest::Client,
    boxes_url: String,
    users: Arc<Vec<User>>,
    box_of: Arc<Vec<usize>>,
    boxes: Arc<Vec<(domain::BoxId, usize)>>,
    stats: Arc<[Mutex<OpStats>; 3]>,
    expected: Arc<Mutex<HashMap<u64, u32>>>,
    deliveries: Arc<Deliveries>,
    lag: Arc<Mutex<Histogram<u64>>>,
    next_post: Arc<AtomicU64>,
    step_no: u32,
}

impl OpContext {
    /// Starts `op` for random users at Poisson arrivals of `rate` per second until `end`, each in
    /// its own task (open loop), and waits for the last answer. Operations due before
    /// `measured_from` are the warm-up: sent, not recorded. Each is timed from the moment it is
    /// sent; how late that was after it was due is recorded apart, as the generator's lag.
    async fn drive(self, op: Op, rate: f64, seed: u64, measured_from: tokio::time::Instant, end: tokio::time::Instant) {
        let this = Arc::new(self);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut tasks = JoinSet::new();
        let mut due = tokio::time::Instant::now();
        loop {
            // Exponential gaps: independent users acting at random.
            let gap = -(1.0 - rng.gen::<f64>()).ln() / rate.max(0.001);
            due += Duration::from_secs_f64(gap);
            if due >= end {
                break;
            }
            tokio::time::sleep_until(due).await;
            let measured = due >= measured_from;
            if measured {
                if let Ok(mut h) = this.lag.lock() {
                    common::record(&mut h, due.elapsed());
                }
            }
            let user = rng.gen_range(0..this.users.len());
            let this = this.clone();
            tasks.spawn(async move { this.one(op, user, measured).await });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn one(&self, op: Op, user: usize, measured: bool) {
        let sent = Instant::now();
        let u = &self.users[user];
        let (box_id, members) = self.boxes[self.box_of[user]];
        let api = common::api(&self.http, &self.boxes_url, u);
        let result = match op {
            Op::Post => {
                let post = self.next_post.fetch_add(1, Ordering::Relaxed);
                let text = self.deliveries.ciphertext(self.step_no, measured, post);
                let r = api.post_event(box_id, &NewEvent::text(&text, common::PUBLIC_KEY)).await;
                if r.is_ok() && measured {
                    if let Ok(mut e) = self.expected.lock() {
                        e.insert(post, members as u32);
                    }
                }
                r.map(|_| ()).context("POST /boxes/{id}/events")
            }
            Op::Read => api.events(box_id, "?limit=50").await.map(|_| ()).context("GET /boxes/{id}/events"),
            Op::Ack => api.ack(box_id, u.id).await.context("PUT /boxes/{id}/new-events-count/ack"),
        };
        if !measured {
            return;
        }
        let k = OPS.iter().position(|o| *o == op).unwrap_or(0);
        if let Ok(mut s) = self.stats[k].lock() {
            match result {
                Ok(()) => common::record(&mut s.histogram, sent.elapsed()),
                Err(e) => {
                    s.errors += 1;
                    if s.first_error.is_none() {
                        s.first_error = Some(format!("{e:#}"));
                    }
                }
            }
        }
    }
}

fn model_note(model: Model) -> String {
    format!(
        "each user: a post every {:.0} s, a page read every {:.0} s, an ack every {:.0} s (Poisson), one socket, one box of {}-{} members",
        model.post_every,
        model.read_every,
        model.ack_every,
        BOX_SIZES.start(),
        BOX_SIZES.end()
    )
}

fn step_row(step: &Step) -> Row {
    let [posts, reads, acks] = step.rates;
    let mut notes = vec![
        format!(
            "{:.0} s measured: {} posts/s, {} pages/s, {} acks/s, {} deliveries/s; {}/{} deliveries arrived",
            step.window_secs,
            rate(posts),
            rate(reads),
            rate(acks),
            rate(step.deliveries_per_sec),
            step.arrived,
            step.expected
        ),
        step.latencies(),
        step.costs(),
        format!("the generator sent operations late by p99 {:.2} ms (not in the latencies)", step.lag_p99_ms),
    ];
    if !step.held() {
        notes.push(format!("missed: {}", step.misses()));
    }
    Row {
        scenario: format!("8. Mixed load, {} users", step.users),
        figure: format!("{} requests/s", rate(posts + reads + acks)),
        latency: Some(step.worst()),
        baseline: None,
        ratio: None,
        target: format!("p99 < {P99_BOUND_MS:.0} ms for every operation, no lost delivery"),
        met: Some(step.held()),
        notes: notes.join("; "),
    }
}

fn summary_row(
    held: Option<&Step>,
    missed: Option<&Step>,
    rss_before: &[(&'static str, u64)],
    model: Model,
    max: usize,
    search: Search,
    took: Duration,
) -> Row {
    let mut notes = vec![model_note(model)];
    match missed {
        Some(m) => notes.push(format!("{} users not held ({})", m.users, m.misses())),
        None => notes.push(format!(
            "no step missed: the search stopped at {} users (largest step {max}, asked {}; {:.0} s of {:.0} s budget)",
            held.map_or(0, |h| h.users),
            search.max,
            took.as_secs_f64(),
            search.budget.as_secs_f64()
        )),
    }
    let figure = match held {
        Some(h) => {
            let per = h.users as f64 / 1000.0;
            let cpu: Vec<String> = h.cpu.iter().map(|(n, v)| format!("{n} {:.3}", v / per)).collect();
            // The system's own processes: those measured (Redis only when its pid is known).
            let system: Vec<_> =
                h.cpu.iter().filter(|(n, _)| !matches!(*n, "load generator" | "PostgreSQL server")).collect();
            let total: f64 = system.iter().map(|(_, v)| v).sum::<f64>() / per;
            let names: Vec<&str> = system.iter().map(|(n, _)| *n).collect();
            notes.push(format!(
                "per 1,000 users, CPU-s/s: {} ({} together {total:.3})",
                cpu.join(", "),
                names.join(", ")
            ));
            let rss: Vec<String> = h
                .rss
                .iter()
                .map(|(n, v)| {
                    let growth = rss_before
                        .iter()
                        .find(|(b, _)| b == n)
                        .map(|(_, b)| {
                            let growth = (*v as f64 - *b as f64) / 1048576.0;
                            format!(
                                " ({growth:+.1} MiB since the scenario began, {:+.2} MiB per 1,000 users)",
                                growth / per
                            )
                        })
                        .unwrap_or_default();
                    format!("{n} {:.1} MiB{growth}", *v as f64 / 1048576.0)
                })
                .collect();
            notes.push(format!("resident memory at {} users: {}", h.users, rss.join("; ")));
            format!("{} users", h.users)
        }
        None => "none held".into(),
    };
    Row {
        scenario: "8. Mixed load: largest population held".into(),
        figure,
        latency: held.map(Step::worst),
        baseline: None,
        ratio: None,
        target: format!("(largest N with p99 < {P99_BOUND_MS:.0} ms, no lost delivery)"),
        met: None,
        notes: notes.join("; "),
    }
}
