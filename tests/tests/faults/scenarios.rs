//! The scenarios. Each starts the four services on a fresh database and a fresh Redis, puts
//! load on them (paced posts, probes, open sockets), injects its fault and returns its checks and
//! figures.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::checks::{defect, read_events, Check, Expect, Observed, Window};
use crate::client::{
    self, frame, frame_header, joined, login, logout, Answer, BoxRef, Listener, Load, MemorySampler, RawWs, User,
};
use crate::infra::{Postgres, Redis, Services, BOXES, BRIDGE, REALTIME};

/// Longest answer while Redis is down: a Redis call has a bounded wait and fails fast.
pub const REDIS_BUDGET: Duration = Duration::from_secs(2);
/// Longest answer while PostgreSQL is gone or frozen: the services' request budget
/// ([`crate::infra::REQUEST_TIMEOUT_MS`], 5 s), plus 1 s for a loaded machine.
pub const PG_BUDGET: Duration = Duration::from_secs(6);
/// Longest answer from a service the fault does not touch.
pub const CALM_BUDGET: Duration = Duration::from_secs(2);
/// A request whose body stops arriving is answered or closed within this.
pub const STALL_BUDGET: Duration = Duration::from_secs(15);
/// realtime exits this soon after SIGTERM once its sockets are closed.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(2);
/// A boxes process started after a SIGKILL answers `/readyz` within this (process start,
/// migrations check, pools); the 2 s recovery is then counted from that answer.
pub const BOXES_START_BUDGET: Duration = Duration::from_secs(3);
/// Load before a fault and after it, in the bounded form: long enough to see a 2 s recovery.
const WARM: Duration = Duration::from_secs(1);
const SETTLE: Duration = Duration::from_millis(2500);

/// Bounded (the default, run by `scripts/test`) or full length (`scripts/faults --full`).
#[derive(Debug, Clone, Copy)]
pub struct Length {
    pub full: bool,
}

impl Length {
    fn pick<T>(&self, bounded: T, full: T) -> T {
        if self.full {
            full
        } else {
            bounded
        }
    }
}

/// What a scenario reports.
pub struct Outcome {
    pub checks: Vec<Check>,
    pub statuses: String,
    pub posts: (usize, usize),
    pub max_latency: Duration,
    pub recoveries: Vec<(&'static str, Option<Duration>)>,
    pub rss: Vec<(&'static str, u64)>,
    pub note: String,
}

/// The host app's users: four posters, one logged out at the start, spares to log out later.
pub const REFERENCES: &[&str] =
    &["u0", "u1", "u2", "u3", "revoked", "spare0", "spare1", "spare2", "spare3", "spare4", "spare5"];

/// The system one scenario runs against.
pub struct Sys {
    pub services: Services,
    pub redis: Redis,
    pub database_url: String,
    pub http: reqwest::Client,
    pub users: Vec<User>,
    pub boxes: Vec<(User, BoxRef)>,
    pub revoked: User,
    /// Logged in, to be logged out during the run.
    pub spare: Vec<User>,
}

/// `n`-th scenario's database on the suite's cluster.
async fn fresh_database(pg: &Postgres, name: &str) -> anyhow::Result<String> {
    let (client, conn) = tokio_postgres::connect(&pg.admin_url(), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await?;
    client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    Ok(pg.url(name))
}

impl Sys {
    pub async fn start(pg: &Postgres, scenario: &str, persistent_redis: bool, spares: usize) -> anyhow::Result<Sys> {
        let db = format!("faults_{}", scenario.replace('-', "_"));
        let database_url = fresh_database(pg, &db).await?;
        let redis = Redis::start(persistent_redis)?;
        let services = Services::start(&database_url, &redis.url()).await?;
        let http = client::http();
        let mut users = Vec::new();
        let mut boxes = Vec::new();
        for i in 0..4 {
            let u = login(&http, &format!("u{i}")).await?;
            for b in 0..2 {
                boxes.push((u.clone(), client::create_box(&http, &u, &format!("box {i}.{b}")).await?));
            }
            users.push(u);
        }
        let revoked = login(&http, "revoked").await?;
        anyhow::ensure!(joined(&http, &revoked).await == Some(200), "a fresh token is refused");
        anyhow::ensure!(logout(&http, &revoked, Duration::from_secs(5)).await == Some(204), "logout failed");
        anyhow::ensure!(refused_within(&http, &revoked, LOGOUT_BOUND).await, "a logged-out token is accepted");
        let mut spare = Vec::new();
        for i in 0..spares {
            spare.push(login(&http, &format!("spare{i}")).await?);
        }
        Ok(Sys { services, redis, database_url, http, users, boxes, revoked, spare })
    }
}

/// The load and the observers of a scenario.
pub struct Watch {
    pub load: Load,
    listeners: Vec<Listener>,
    memory: MemorySampler,
}

impl Watch {
    /// Posters on every box at `rate` each, readiness probes on the three services, the live and
    /// the revoked token on boxes and realtime, one listening socket per user.
    pub async fn start(sys: &Sys, len: Length) -> anyhow::Result<Watch> {
        let mut load = Load::default();
        let every = Duration::from_millis(100);
        load.posters(&sys.http, &sys.boxes, len.pick(15.0, 25.0), 64);
        for svc in [BOXES, REALTIME, BRIDGE] {
            load.probe(&sys.http, svc, "readyz", "/readyz", None, every);
        }
        load.probe(&sys.http, BOXES, "joined", "/boxes/joined", Some(&sys.users[0]), every);
        load.probe(&sys.http, BOXES, "revoked", "/boxes/joined", Some(&sys.revoked), every);
        load.handshake_probe("ws", &sys.users[1], Duration::from_millis(250));
        load.handshake_probe("revoked-ws", &sys.revoked, Duration::from_millis(250));
        let mut listeners = Vec::new();
        for u in &sys.users {
            listeners.push(Listener::open(u).await?);
        }
        Ok(Watch { load, listeners, memory: MemorySampler::start(sys.services.pids.clone()) })
    }

    pub async fn finish(self, sys: &Sys) -> anyhow::Result<Observed> {
        let (posts, answers) = self.load.stop().await;
        let mut sockets = Vec::new();
        for l in self.listeners {
            sockets.push(l.stop().await);
        }
        let rss = self.memory.stop().await;
        let events = read_events(&sys.database_url).await.context("reading the events")?;
        let box_ids = sys.boxes.iter().map(|(_, b)| b.id.clone()).collect();
        Ok(Observed { posts, answers, sockets, rss, events, box_ids })
    }
}

fn outcome(obs: &Observed, windows: &[Window], checks: Vec<Check>, note: String) -> Outcome {
    let created = obs.posts.iter().filter(|p| p.answer.status == Some(201)).count();
    let mut rss: Vec<(&'static str, u64)> = obs.rss.iter().map(|(k, v)| (*k, *v)).collect();
    rss.sort();
    Outcome {
        checks,
        statuses: obs.statuses(),
        posts: (created, obs.posts.len()),
        max_latency: obs.max_latency(windows),
        recoveries: obs.recoveries(windows),
        rss,
        note,
    }
}

async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Blocking process control from inside the runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Logs `user` out, retrying for up to 2 s until it answers 204, then checks its token is
/// refused by boxes: a logout right after a fault must take effect.
/// How soon a logout must take effect on every instance (README, "Revoked sessions in memory").
const LOGOUT_BOUND: Duration = Duration::from_secs(1);

/// Whether boxes refuses `user`'s token (401) within `bound`.
async fn refused_within(http: &reqwest::Client, user: &User, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if joined(http, user).await == Some(401) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(20)).await;
    }
}

async fn logout_takes_effect(sys: &Sys, load: &Load, user: &User, name: &str) -> Check {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut statuses = Vec::new();
    while Instant::now() < deadline {
        let start = Instant::now();
        let status = logout(&sys.http, user, deadline.saturating_duration_since(start)).await;
        load.record(Answer { target: BRIDGE, what: "logout", start, dur: start.elapsed(), status, cancelled: false });
        statuses.push(status);
        if status == Some(204) {
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    let refused = refused_within(&sys.http, user, LOGOUT_BOUND).await;
    let after = joined(&sys.http, user).await;
    Check::new(
        name,
        Some(defect::REDIS_WAITS),
        statuses.last() == Some(&Some(204)) && refused && after == Some(401),
        format!("logout answered {statuses:?}, then the token got {after:?}"),
    )
}

/// Redis killed with SIGKILL and restarted, `persistent` with its append-only file or empty.
pub async fn redis_restart(pg: &Postgres, len: Length, persistent: bool) -> anyhow::Result<Outcome> {
    let name = if persistent { "redis-restart-aof" } else { "redis-restart-empty" };
    let cycles = len.pick(1, 3);
    let mut sys = Sys::start(pg, name, persistent, cycles * 2).await?;
    let watch = Watch::start(&sys, len).await?;
    sleep(WARM).await;
    let mut windows = Vec::new();
    let mut checks = Vec::new();
    for c in 0..cycles {
        let start = Instant::now();
        blocking(|| sys.redis.kill());
        // A logout while Redis is down answers within the budget (it is recorded with the rest).
        sleep(len.pick(Duration::from_millis(2500), Duration::from_secs(5))).await;
        let (http, during, logs) = (sys.http.clone(), sys.spare[2 * c].clone(), watch.load.logs.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            let status = logout(&http, &during, client::CLIENT_TIMEOUT).await;
            let a = Answer { target: BRIDGE, what: "logout", start: t, dur: t.elapsed(), status, cancelled: false };
            logs.answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(a);
        });
        sleep(len.pick(Duration::from_millis(500), Duration::from_secs(5))).await;
        // Redis cannot answer before it is started; the fault lasts until it answers PING.
        let restarted = Instant::now();
        blocking(|| sys.redis.spawn())?;
        let end = Instant::now();
        windows.push(Window { start, end, redis_down: Some(restarted) });
        sleep(Duration::from_millis(300)).await;
        checks.push(
            logout_takes_effect(&sys, &watch.load, &sys.spare[2 * c + 1], "logout-after-redis-restart-takes-effect")
                .await,
        );
        sleep(len.pick(SETTLE, Duration::from_secs(5))).await;
    }
    let obs = watch.finish(&sys).await?;
    let expect = Expect {
        budgets: vec![
            (BOXES, REDIS_BUDGET, None),
            (REALTIME, REDIS_BUDGET, Some(defect::REALTIME_REDIS_WAITS)),
            (BRIDGE, REDIS_BUDGET, Some(defect::REDIS_WAITS)),
        ],
        recovers: vec![
            (BOXES, None),
            (REALTIME, Some(defect::REALTIME_REDIS_WAITS)),
            (BRIDGE, Some(defect::REDIS_WAITS)),
        ],
        reopen_defect: Some(defect::REALTIME_REDIS_WAITS),
        close_codes: vec![1011],
        dropped_ok: false,
        revoked_defect: (!persistent).then_some(defect::REVOCATION_RESEED),
        errors_defect: None,
        // An empty Redis makes every verifier answer 503 until auth-bridge has re-seeded the
        // revocations (by design; the recovery check bounds it). A persistent one must not.
        no_503_after: persistent,
    };
    checks.extend(obs.standard_checks(&windows, &expect));
    let note = format!(
        "Redis {} down {} × {cycles}",
        if persistent { "(AOF)" } else { "(no persistence)" },
        fmt_d(windows[0].end - windows[0].start)
    );
    Ok(outcome(&obs, &windows, checks, note))
}

fn fmt_d(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[derive(Clone, Copy, PartialEq)]
pub enum PgFault {
    Restart,
    Stop,
    Freeze,
}

/// PostgreSQL restarted (fast shutdown), stopped for a while, or frozen with SIGSTOP.
pub async fn postgres(pg: &mut Postgres, len: Length, fault: PgFault) -> anyhow::Result<Outcome> {
    let name = match fault {
        PgFault::Restart => "pg-restart",
        PgFault::Stop => "pg-stop",
        PgFault::Freeze => "pg-freeze",
    };
    let sys = Sys::start(pg, name, true, 0).await?;
    let watch = Watch::start(&sys, len).await?;
    sleep(WARM).await;
    let cycles = len.pick(1, 2);
    let mut windows = Vec::new();
    for _ in 0..cycles {
        let start = Instant::now();
        match fault {
            PgFault::Restart => blocking(|| {
                pg.stop();
                pg.start()
            })?,
            PgFault::Stop => {
                blocking(|| pg.stop());
                sleep(len.pick(Duration::from_secs(3), Duration::from_secs(10))).await;
                blocking(|| pg.start())?;
            }
            PgFault::Freeze => {
                blocking(|| pg.freeze());
                sleep(len.pick(Duration::from_secs(8), Duration::from_secs(15))).await;
                blocking(|| pg.thaw());
            }
        }
        windows.push(Window { start, end: Instant::now(), redis_down: None });
        sleep(len.pick(SETTLE, Duration::from_secs(5))).await;
    }
    let obs = watch.finish(&sys).await?;
    let deadline = (fault == PgFault::Freeze).then_some(defect::PG_DEADLINE);
    let expect = Expect {
        budgets: vec![(BOXES, PG_BUDGET, deadline), (BRIDGE, PG_BUDGET, deadline), (REALTIME, CALM_BUDGET, None)],
        recovers: vec![(BOXES, None), (BRIDGE, None), (REALTIME, None)],
        close_codes: vec![],
        dropped_ok: false,
        revoked_defect: None,
        errors_defect: (fault != PgFault::Freeze).then_some(defect::RESTART_ERRORS),
        no_503_after: false,
        reopen_defect: None,
    };
    let checks = obs.standard_checks(&windows, &expect);
    let note = format!(
        "PostgreSQL {} {} × {cycles}",
        name.trim_start_matches("pg-"),
        fmt_d(windows[0].end - windows[0].start)
    );
    Ok(outcome(&obs, &windows, checks, note))
}

/// boxes killed with SIGKILL and started again, over and over, under load.
pub async fn boxes_kill_loop(pg: &Postgres, len: Length) -> anyhow::Result<Outcome> {
    let mut sys = Sys::start(pg, "boxes-sigkill-loop", true, 0).await?;
    // Without kept-alive connections: one pooled towards the killed process would fail on the
    // client's side, not the server's.
    sys.http = client::http_without_pool();
    let watch = Watch::start(&sys, len).await?;
    sleep(WARM).await;
    let kills = len.pick(4, 20);
    let mut windows = Vec::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..kills {
        let start = Instant::now();
        blocking(|| sys.services.kill(BOXES));
        let ready = sys.services.spawn(BOXES).await?;
        slowest = slowest.max(ready);
        windows.push(Window { start, end: Instant::now(), redis_down: None });
        sleep(Duration::from_millis(1500)).await;
    }
    sleep(Duration::from_secs(2)).await;
    let obs = watch.finish(&sys).await?;
    let expect = Expect {
        budgets: vec![(REALTIME, CALM_BUDGET, None), (BRIDGE, CALM_BUDGET, None)],
        recovers: vec![(BOXES, None)],
        close_codes: vec![],
        dropped_ok: false,
        revoked_defect: None,
        errors_defect: None,
        no_503_after: false,
        reopen_defect: None,
    };
    let mut checks = vec![Check::new(
        "boxes-ready-within-3s-of-sigkill",
        None,
        slowest <= BOXES_START_BUDGET,
        format!("slowest start {}", fmt_d(slowest)),
    )];
    checks.extend(obs.standard_checks(&windows, &expect));
    Ok(outcome(&obs, &windows, checks, format!("{kills} SIGKILLs, slowest restart {}", fmt_d(slowest))))
}

/// realtime stopped with SIGTERM and started again, then killed with SIGKILL and started again.
pub async fn realtime_restart(pg: &Postgres, len: Length) -> anyhow::Result<Outcome> {
    let mut sys = Sys::start(pg, "realtime-restart", true, 0).await?;
    let watch = Watch::start(&sys, len).await?;
    sleep(WARM).await;
    let mut windows = Vec::new();
    let start = Instant::now();
    let exit = blocking(|| sys.services.terminate(REALTIME, Duration::from_secs(15)));
    sys.services.spawn(REALTIME).await?;
    windows.push(Window { start, end: Instant::now(), redis_down: None });
    sleep(SETTLE).await;
    let start = Instant::now();
    blocking(|| sys.services.kill(REALTIME));
    sys.services.spawn(REALTIME).await?;
    windows.push(Window { start, end: Instant::now(), redis_down: None });
    sleep(SETTLE).await;
    let first = windows[0];
    let obs = watch.finish(&sys).await?;
    let expect = Expect {
        budgets: vec![(BOXES, CALM_BUDGET, None), (BRIDGE, CALM_BUDGET, None)],
        recovers: vec![(REALTIME, None)],
        close_codes: vec![1001],
        dropped_ok: true,
        revoked_defect: None,
        errors_defect: None,
        no_503_after: false,
        reopen_defect: None,
    };
    let sigterm_ends: Vec<String> = obs
        .sockets
        .iter()
        .filter_map(|s| s.iter().find(|x| x.ended.as_ref().is_some_and(|(t, _)| *t >= first.start && *t <= first.end)))
        .map(|s| format!("{:?}", s.ended.as_ref().map(|e| &e.1)))
        .collect();
    let mut checks = vec![
        Check::new(
            "realtime-exits-within-2s-of-sigterm",
            Some(defect::REALTIME_SHUTDOWN),
            exit.is_some_and(|d| d <= SHUTDOWN_BUDGET),
            format!("exited after {}", exit.map_or("more than 15 s".to_owned(), fmt_d)),
        ),
        Check::new(
            "sigterm-closes-sockets-with-1001",
            None,
            sigterm_ends.len() == obs.sockets.len() && sigterm_ends.iter().all(|e| e.contains("1001")),
            format!("{sigterm_ends:?}"),
        ),
    ];
    checks.extend(obs.standard_checks(&windows, &expect));
    let note = format!("SIGTERM (exit {}) then SIGKILL", exit.map_or(">15 s".to_owned(), fmt_d));
    Ok(outcome(&obs, &windows, checks, note))
}

/// A socket that stops reading while its identity receives large events.
pub async fn slow_consumer(pg: &Postgres, len: Length) -> anyhow::Result<Outcome> {
    let sys = Sys::start(pg, "slow-consumer", true, 1).await?;
    let slow_user = sys.spare[0].clone();
    let slow_box = client::create_box(&sys.http, &slow_user, "slow").await?;
    let watch = Watch::start(&sys, len).await?;
    sleep(WARM).await;
    let baseline = sys.services.pid(REALTIME).map_or(0, crate::infra::rss);
    let mut slow = RawWs::open_with_recv_buffer(&slow_user, 4096).await?;
    let start = Instant::now();
    let mut flood = Load::default();
    // More than the kernel's socket buffers (a few MB) and the 64-message queue can hold.
    let n: u64 = len.pick(450, 1200);
    flood.posters(&sys.http, &[(slow_user.clone(), slow_box)], 150.0, 30_000);
    sleep(Duration::from_millis(n * 1000 / 150)).await;
    let (flood_posts, _) = flood.stop().await;
    let end = Instant::now();
    let peak = sys.services.pid(REALTIME).map_or(0, crate::infra::rss);
    let (frames, code) = slow.until_close(Duration::from_secs(10)).await?;
    sleep(SETTLE).await;
    let windows = [Window { start, end, redis_down: None }];
    let obs = watch.finish(&sys).await?;
    let expect = Expect {
        budgets: vec![(BOXES, CALM_BUDGET, None), (REALTIME, CALM_BUDGET, None), (BRIDGE, CALM_BUDGET, None)],
        recovers: vec![],
        close_codes: vec![],
        dropped_ok: false,
        revoked_defect: None,
        errors_defect: None,
        no_503_after: false,
        reopen_defect: None,
    };
    let growth = peak.saturating_sub(baseline);
    let mut checks = vec![
        Check::new(
            "slow-consumer-closed-with-1013",
            None,
            code == Some(1013),
            format!("{} large events posted, {} frames read, then close {code:?}", flood_posts.len(), frames.len()),
        ),
        Check::new(
            "slow-consumer-memory-bounded",
            None,
            growth < 64 << 20,
            format!("realtime grew {} MB", growth >> 20),
        ),
    ];
    checks.extend(obs.standard_checks(&windows, &expect));
    let note = format!("{} × 30 KB events to a socket that does not read", flood_posts.len());
    Ok(outcome(&obs, &windows, checks, note))
}

/// A frame announcing 2^40 bytes followed by a large payload; a 2 MB frame.
pub async fn oversized_frames(pg: &Postgres, len: Length) -> anyhow::Result<Outcome> {
    let sys = Sys::start(pg, "oversized-frames", true, 0).await?;
    let watch = Watch::start(&sys, len).await?;
    sleep(WARM).await;
    let pid = sys.services.pid(REALTIME).context("realtime pid")?;
    let baseline = crate::infra::rss(pid);
    let start = Instant::now();

    let total: usize = len.pick(64 << 20, 256 << 20);
    let mut huge = RawWs::open(&sys.users[0]).await?;
    let sent = huge.write_bounded(&frame_header(1, true, false, 1 << 40), total, Duration::from_secs(1)).await;
    sleep(Duration::from_millis(300)).await;
    let peak = crate::infra::rss(pid);
    let (_, huge_code) = huge.until_close(Duration::from_secs(2)).await?;
    drop(huge);

    let mut big = RawWs::open(&sys.users[1]).await?;
    let big_sent = big.write_bounded(&frame_header(1, true, false, 2 << 20), 2 << 20, Duration::from_secs(1)).await;
    let (_, big_code) = big.until_close(Duration::from_secs(5)).await?;
    drop(big);
    let end = Instant::now();
    sleep(Duration::from_secs(2)).await;

    let windows = [Window { start, end, redis_down: None }];
    let obs = watch.finish(&sys).await?;
    let expect = Expect {
        budgets: vec![(REALTIME, CALM_BUDGET, None), (BOXES, CALM_BUDGET, None)],
        recovers: vec![(REALTIME, None)],
        close_codes: vec![],
        dropped_ok: false,
        revoked_defect: None,
        errors_defect: None,
        no_503_after: false,
        reopen_defect: None,
    };
    let growth = peak.saturating_sub(baseline);
    let mut checks = vec![
        Check::new(
            "frame-announcing-2^40-bytes-closed-with-1009",
            Some(defect::FRAME_LIMIT),
            huge_code == Some(1009),
            format!("{} MB sent, then close {huge_code:?}", sent >> 20),
        ),
        Check::new(
            "frame-announcing-2^40-bytes-does-not-take-memory",
            Some(defect::FRAME_LIMIT),
            growth < 16 << 20,
            format!("realtime grew {} MB while {} MB were sent", growth >> 20, sent >> 20),
        ),
        Check::new(
            "2mb-frame-closed-with-1009",
            None,
            big_code == Some(1009),
            format!("{} KB sent, close {big_code:?}", big_sent >> 10),
        ),
    ];
    checks.extend(obs.standard_checks(&windows, &expect));
    let note = format!("{} MB under a 2^40 header, realtime +{} MB", sent >> 20, growth >> 20);
    Ok(outcome(&obs, &windows, checks, note))
}

/// An `ack` in one frame, the same `ack` split over three frames, a frame with RSV1 set.
pub async fn split_frames(pg: &Postgres, len: Length) -> anyhow::Result<Outcome> {
    let sys = Sys::start(pg, "split-frames", true, 0).await?;
    let watch = Watch::start(&sys, len).await?;
    sleep(WARM).await;
    let start = Instant::now();
    let user = &sys.users[0];
    let ack = format!(r#"{{"type":"ack","object":{{"sender_id":"{}","box_id":"{}"}}}}"#, user.id, sys.boxes[0].1.id);
    let echoed = |frames: &[client::Frame]| {
        frames.iter().any(|f| f.opcode == 1 && String::from_utf8_lossy(&f.payload).contains("\"ack\""))
    };

    let mut ws = RawWs::open(user).await?;
    ws.stream_write(&frame(1, true, false, ack.as_bytes())).await?;
    let whole = echoed(&ws.frames_for(Duration::from_secs(2)).await?);

    let (a, rest) = ack.split_at(10);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut split = frame(1, false, false, a.as_bytes());
    split.extend(frame(0, false, false, b.as_bytes()));
    split.extend(frame(0, true, false, c.as_bytes()));
    ws.stream_write(&split).await?;
    let parts = echoed(&ws.frames_for(Duration::from_secs(2)).await?);

    ws.stream_write(&frame(1, true, true, ack.as_bytes())).await?;
    let (_, rsv_code) = ws.until_close(Duration::from_secs(3)).await?;
    let end = Instant::now();
    sleep(Duration::from_secs(1)).await;

    let windows = [Window { start, end, redis_down: None }];
    let obs = watch.finish(&sys).await?;
    let expect =
        Expect { budgets: vec![(REALTIME, CALM_BUDGET, None)], recovers: vec![(REALTIME, None)], ..Expect::default() };
    let mut checks = vec![
        Check::new("ack-in-one-frame-echoed", None, whole, if whole { "echoed" } else { "not echoed" }),
        Check::new(
            "ack-in-three-continuation-frames-echoed",
            Some(defect::CONTINUATION),
            parts,
            if parts { "echoed" } else { "ignored" },
        ),
        Check::new(
            "rsv1-frame-closed-with-1002",
            Some(defect::CONTINUATION),
            rsv_code == Some(1002),
            format!("close {rsv_code:?}"),
        ),
    ];
    checks.extend(obs.standard_checks(&windows, &expect));
    Ok(outcome(&obs, &windows, checks, "ack whole, in 3 frames, with RSV1".to_owned()))
}

/// Requests whose bodies stop arriving, on boxes and on the unauthenticated `/auth/login`.
pub async fn stalled_bodies(pg: &Postgres, len: Length) -> anyhow::Result<Outcome> {
    let sys = Sys::start(pg, "stalled-bodies", true, 0).await?;
    let watch = Watch::start(&sys, len).await?;
    sleep(WARM).await;
    let start = Instant::now();
    let (n_boxes, n_login) = len.pick((48, 16), (200, 64));
    let mut stalls = Vec::new();
    let user = sys.users[0].clone();
    let box_id = sys.boxes[0].1.id.clone();
    for i in 0..n_boxes + n_login {
        let head = if i < n_boxes {
            format!(
                "POST /boxes/{box_id}/events HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
                 Content-Length: 1000\r\n\r\n{{\"type\":",
                user.bearer()
            )
        } else {
            "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"auth_code\":"
                .to_owned()
        };
        let port = if i < n_boxes { crate::infra::BOXES_PORT } else { crate::infra::BRIDGE_PORT };
        stalls.push(tokio::spawn(client::stall(port, head, STALL_BUDGET + Duration::from_secs(1))));
    }
    let mut held = Vec::new();
    for s in stalls {
        held.push(s.await.unwrap_or(None));
    }
    let end = Instant::now();
    sleep(SETTLE).await;
    let windows = [Window { start, end, redis_down: None }];
    let obs = watch.finish(&sys).await?;
    let expect = Expect {
        budgets: vec![(BOXES, CALM_BUDGET, None), (BRIDGE, CALM_BUDGET, None)],
        recovers: vec![],
        ..Expect::default()
    };
    let (boxes_held, login_held) = held.split_at(n_boxes);
    let longest = |h: &[Option<Duration>]| h.iter().map(|d| d.unwrap_or(Duration::MAX)).max().unwrap_or_default();
    let describe = |h: &[Option<Duration>]| {
        let open = h.iter().filter(|d| d.is_none()).count();
        format!("{} connections, {open} still open after {}", h.len(), fmt_d(STALL_BUDGET + Duration::from_secs(1)))
    };
    let mut checks = vec![
        Check::new(
            format!("boxes-stalled-body-ended-within-{}s", STALL_BUDGET.as_secs()),
            Some(defect::BODY_TIMEOUT),
            longest(boxes_held) <= STALL_BUDGET,
            describe(boxes_held),
        ),
        Check::new(
            format!("login-stalled-body-ended-within-{}s", STALL_BUDGET.as_secs()),
            Some(defect::BODY_TIMEOUT),
            longest(login_held) <= STALL_BUDGET,
            describe(login_held),
        ),
    ];
    checks.extend(obs.standard_checks(&windows, &expect));
    let note = format!("{n_boxes} stalled posts on boxes, {n_login} on /auth/login");
    Ok(outcome(&obs, &windows, checks, note))
}
