//! Websocket scenarios against realtime: idle sockets (3), fan-out (4) and the connect storm (5).
//!
//! Client sockets are bound to rotating loopback source addresses (127.0.0.2, 127.0.0.3, …) before
//! they connect, so tens of thousands of sockets and a storm of short-lived ones never exhaust the
//! ephemeral ports of one address pair.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use boxes_client::body::NewEvent;
use futures_util::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::common::{self, rate, CpuWindow, Latency, Proc, Row, User};
use crate::Common;

pub type Ws = WebSocketStream<TcpStream>;

/// The `k`-th client source address: 127.0.0.2 … 127.0.0.254, then 127.0.1.2 …
pub fn source_addr(k: usize) -> Ipv4Addr {
    let k = k % (253 * 200);
    Ipv4Addr::new(127, 0, (k / 253) as u8, (2 + k % 253) as u8)
}

/// Where realtime listens, from its URL (`http://127.0.0.1:port`).
pub fn realtime_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let hostport = url.split("://").nth(1).unwrap_or(url).trim_end_matches('/');
    hostport.parse().with_context(|| format!("realtime URL must be http://<ip>:<port>, got {url}"))
}

/// Opens `GET /box-users/{id}/ws` from `src` with a bearer token and waits for `ready`.
pub async fn connect(server: SocketAddr, src: Ipv4Addr, user: &User) -> anyhow::Result<Ws> {
    let sock = TcpSocket::new_v4().context("socket")?;
    sock.bind(SocketAddr::new(IpAddr::V4(src), 0)).with_context(|| format!("binding to {src}"))?;
    let stream = sock.connect(server).await.context("connecting to realtime")?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    let mut req = format!("ws://{server}/box-users/{}/ws", user.id).into_client_request().context("request")?;
    req.headers_mut().insert("Authorization", user.bearer.parse().context("header value")?);
    let (mut ws, res) = tokio_tungstenite::client_async(req, stream).await.context("websocket handshake")?;
    if res.status() != 101 {
        bail!("handshake answered {}", res.status());
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Err(_) => bail!("no ready within 30 s"),
            Ok(None) => bail!("socket closed before ready"),
            Ok(Some(Err(e))) => bail!("socket error before ready: {e}"),
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"ready\"") => return Ok(ws),
            Ok(Some(Ok(Message::Close(c)))) => bail!("closed before ready: {c:?}"),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Users that exist only in their tokens: realtime checks the signature, not the identity.
fn token_users(c: &Common, n: usize) -> anyhow::Result<Vec<User>> {
    let minter = c.minter()?;
    (0..n)
        .map(|_| {
            let id = domain::IdentityId::new_v4();
            Ok(User { id, bearer: format!("Bearer {}", minter.token(id)?) })
        })
        .collect()
}

/// Keeps a socket read (so pings are answered) until it closes.
fn drain(ws: Ws) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ws = ws;
        while let Some(Ok(_)) = ws.next().await {}
    })
}

/// Sockets one worker process opens in the idle scenario: its own open-file limit is the
/// machine's hard limit too.
const SOCKETS_PER_WORKER: usize = 8_000;

/// Scenario 3, parent side: starts worker processes that open the sockets, and reads realtime's
/// resident memory before and after.
pub async fn idle(c: &Common, wanted: usize) -> anyhow::Result<()> {
    let rt = Proc(c.realtime_pid.context("--realtime-pid is required")?);
    let limit = rt.max_open_files()?;
    let used = rt.open_files()?;
    let possible = limit.saturating_sub(used + 64);
    let n = wanted.min(possible);
    let mut notes = Vec::new();
    if n < wanted {
        notes.push(format!(
            "capped at {n} sockets: realtime may open {limit} files (hard limit of this machine), {used} already open"
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rt.rss()?;
    let exe = std::env::current_exe().context("own executable")?;
    let started = Instant::now();
    let mut children = Vec::new();
    let mut offset = 0usize;
    while offset < n {
        let k = SOCKETS_PER_WORKER.min(n - offset);
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(c.to_args())
            .args(["idle-worker", "--sockets", &k.to_string(), "--source-offset", &(offset / 1000).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        children.push(cmd.spawn().context("starting an idle worker")?);
        offset += k;
    }
    let mut opened = 0usize;
    for child in &mut children {
        let stdout = child.stdout.take().context("worker stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(300), lines.next_line())
            .await
            .context("an idle worker did not report within 300 s")??
            .context("an idle worker exited early")?;
        let count: usize =
            line.strip_prefix("connected ").and_then(|v| v.trim().parse().ok()).context("worker report")?;
        opened += count;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    // Let allocations settle (buffers of the handshake freed, first pings not yet due).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rt.rss()?;
    let fds = rt.open_files()?;
    for child in &mut children {
        if let Some(mut stdin) = child.stdin.take() {
            stdin.shutdown().await.ok();
        }
    }
    for child in &mut children {
        tokio::time::timeout(Duration::from_secs(30), child.wait()).await.ok();
    }
    let per_socket = after.saturating_sub(before) as f64 / opened.max(1) as f64;
    notes.push(format!(
        "RSS {:.1} MiB → {:.1} MiB with {opened} sockets ({fds} fds open); connected in {connect_secs:.1} s",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    ));
    Row {
        scenario: format!("3. Idle websockets, {opened} on one realtime process"),
        figure: format!("{:.2} KiB/socket", per_socket / 1024.0),
        latency: None,
        baseline: None,
        ratio: None,
        target: "< 10 KiB/socket".into(),
        met: Some(per_socket < 10.0 * 1024.0 && opened > 0),
        notes: notes.join("; "),
    }
    .emit(c.out.as_deref())
}

/// Scenario 3, worker side: opens `n` sockets, says `connected <n>`, holds them until stdin closes.
pub async fn idle_worker(c: &Common, n: usize, source_offset: usize) -> anyhow::Result<()> {
    let server = realtime_addr(&c.realtime_url)?;
    let users = token_users(c, n)?;
    let sockets: Vec<Ws> = futures_util::stream::iter(users.iter().enumerate())
        .map(|(i, u)| connect(server, source_addr(source_offset + i / 1000), u))
        .buffer_unordered(128)
        .try_collect()
        .await?;
    let count = sockets.len();
    let handles: Vec<_> = sockets.into_iter().map(drain).collect();
    let mut out = tokio::io::stdout();
    out.write_all(format!("connected {count}\n").as_bytes()).await?;
    out.flush().await?;
    let mut sink = Vec::new();
    tokio::io::stdin().read_to_end(&mut sink).await.ok();
    for h in handles {
        h.abort();
    }
    Ok(())
}

/// Scenario 5: `clients` loops of connect → `ready` → close, for the duration; realtime's CPU time
/// over the same window gives the rate per core.
pub async fn storm(c: &Common, clients: usize) -> anyhow::Result<()> {
    let rt = Proc(c.realtime_pid.context("--realtime-pid is required")?);
    let server = realtime_addr(&c.realtime_url)?;
    let users = Arc::new(token_users(c, 2_000)?);
    let next = Arc::new(AtomicU64::new(0));
    let warmup = c.warmup();
    let duration = c.duration();
    let cpu = Arc::new(Mutex::new(None::<CpuWindow>));
    let cpu_start = {
        let cpu = cpu.clone();
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            if let Ok(mut slot) = cpu.lock() {
                *slot = CpuWindow::start(&[rt]).ok();
            }
        })
    };
    let r = common::closed_loop(clients, warmup, duration, move |_, _| {
        let users = users.clone();
        let next = next.clone();
        async move {
            let k = next.fetch_add(1, Ordering::Relaxed) as usize;
            let user = &users[k % users.len()];
            let mut ws = connect(server, source_addr(k % 2_000), user).await?;
            ws.close(None).await.ok();
            Ok(())
        }
    })
    .await?;
    cpu_start.await.ok();
    let window = cpu.lock().ok().and_then(|mut s| s.take()).context("CPU window")?;
    let (used, wall) = window.stop()?;
    let cpu_secs = used.first().copied().unwrap_or(0.0);
    let per_core = if cpu_secs > 0.0 { r.ok as f64 / cpu_secs } else { 0.0 };
    let mut notes = vec![format!(
        "{} upgrades/s wall with realtime at {:.0}% of one core; {clients} concurrent clients",
        rate(r.rate()),
        100.0 * cpu_secs / wall.max(0.001)
    )];
    if r.errors > 0 {
        notes.push(r.error_note());
    }
    Row {
        scenario: "5. Connect storm (authenticated upgrades until ready)".into(),
        figure: format!("{} upgrades/s per core", rate(per_core)),
        latency: Some(Latency::of(&r.histogram)),
        baseline: None,
        ratio: None,
        target: "≥ 2,000/s per core".into(),
        met: Some(per_core >= 2_000.0 && r.errors == 0),
        notes: notes.join("; "),
    }
    .emit(c.out.as_deref())
}

/// Measured phases of the fan-out: 4a, 4b on one realtime process, 4b on two.
const PHASES: usize = 3;
/// The phase of warm-up posts, which arrivals ignore.
const WARM_UP: usize = 9;

/// What the fan-out readers share: one histogram and one counter per phase.
struct Arrivals {
    epoch: Instant,
    histograms: [Mutex<Histogram<u64>>; PHASES],
    counts: [AtomicU64; PHASES],
}

impl Arrivals {
    fn now_nanos(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Reads `<phase><20 digits of send time>` at the start of the message's ciphertext.
    fn on_text(&self, text: &str) {
        let Some(rest) = common::event_ciphertext(text) else { return };
        let (Some(phase), Some(sent)) =
            (rest.get(..1).and_then(|p| p.parse::<usize>().ok()), rest.get(1..21).and_then(|d| d.parse::<u64>().ok()))
        else {
            return;
        };
        if phase >= PHASES {
            return;
        }
        let latency = Duration::from_nanos(self.now_nanos().saturating_sub(sent));
        if let Ok(mut h) = self.histograms[phase].lock() {
            common::record(&mut h, latency);
        }
        self.counts[phase].fetch_add(1, Ordering::Relaxed);
    }

    /// The ciphertext of a message sent now in `phase` (64 b64u characters).
    fn ciphertext(&self, phase: usize) -> String {
        format!("{phase}{:020}_{}", self.now_nanos(), common::b64u_filler(42))
    }
}

/// Reads every socket, feeding `arrivals`, until it closes or the task is aborted.
fn readers(sockets: Vec<Ws>, arrivals: &Arc<Arrivals>) -> Vec<tokio::task::JoinHandle<()>> {
    sockets
        .into_iter()
        .map(|ws| {
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let mut ws = ws;
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        arrivals.on_text(t.as_str());
                    }
                }
            })
        })
        .collect()
}

/// What a saturation run measured.
struct Saturation {
    delivered: u64,
    wall: f64,
    /// CPU seconds of each process watched, in the order given.
    cpu: Vec<f64>,
    posts: common::LoopResult,
    latency: Latency,
}

impl Saturation {
    fn wall_rate(&self) -> f64 {
        self.delivered as f64 / self.wall.max(0.001)
    }

    fn per_core(&self) -> f64 {
        let cpu: f64 = self.cpu.iter().sum();
        if cpu > 0.0 {
            self.delivered as f64 / cpu
        } else {
            0.0
        }
    }

    /// Each process's share of one core, e.g. `48%` or `30% + 29%`.
    fn shares(&self) -> String {
        let shares: Vec<String> =
            self.cpu.iter().map(|c| format!("{:.0}%", 100.0 * c / self.wall.max(0.001))).collect();
        shares.join(" + ")
    }
}

/// `posters` clients post closed loop in `phase`; the deliveries that arrive during the measured
/// window, and the CPU time `procs` use over it.
async fn saturate<P, Fut>(
    c: &Common,
    posters: usize,
    phase: usize,
    procs: &[Proc],
    arrivals: &Arc<Arrivals>,
    post: P,
) -> anyhow::Result<Saturation>
where
    P: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let warmup = c.warmup();
    let before = Arc::new(Mutex::new(None::<(CpuWindow, u64)>));
    let mark = {
        let (before, arrivals, procs) = (before.clone(), arrivals.clone(), procs.to_vec());
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            if let (Ok(mut slot), Ok(w)) = (before.lock(), CpuWindow::start(&procs)) {
                *slot = Some((w, arrivals.counts[phase].load(Ordering::Relaxed)));
            }
        })
    };
    let posts = common::closed_loop(posters, warmup, c.duration(), move |client, i| {
        let f = post(phase, (client as u64) * 1_000_003 + i * 7_919);
        async move { f.await.map(|_| ()) }
    })
    .await?;
    mark.await.ok();
    let (window, count0) = before.lock().ok().and_then(|mut s| s.take()).context("CPU window")?;
    let count1 = arrivals.counts[phase].load(Ordering::Relaxed);
    let (cpu, wall) = window.stop()?;
    let latency = arrivals.histograms[phase].lock().map(|h| Latency::of(&h)).unwrap_or_default();
    Ok(Saturation { delivered: count1.saturating_sub(count0), wall, cpu, posts, latency })
}

/// One box of the fan-out population: its id and its members (the admin first).
struct FanBox {
    id: domain::BoxId,
    members: Vec<usize>,
}

/// Scenario 4: `n_users` connected users in boxes of 2 to 100 members. Phase 0 posts at a fixed
/// rate of `target_rate` deliveries per second and measures POST-to-socket latency; phase 1 posts
/// closed-loop with `posters` clients to find the saturation rate, per CPU-second of realtime.
pub async fn fanout(
    c: &Common,
    n_users: usize,
    target_rate: f64,
    posters: usize,
    baseline_publish: Option<f64>,
) -> anyhow::Result<()> {
    let rt = Proc(c.realtime_pid.context("--realtime-pid is required")?);
    let server = realtime_addr(&c.realtime_url)?;
    let http = common::http_client(256)?;
    let minter = c.minter()?;
    let t = Instant::now();
    let users = common::create_users(&http, &c.boxes_internal_url, &c.internal_token, &minter, n_users, 64).await?;
    eprintln!("fan-out: {n_users} identities in {:.1} s", t.elapsed().as_secs_f64());

    // Boxes of 2..=100 members, every user in exactly one box.
    let mut rng = StdRng::seed_from_u64(42);
    let mut sizes = Vec::new();
    let mut left = n_users;
    while left > 0 {
        let s: usize = rng.gen_range(2..=100usize).min(left);
        if s < 2 {
            if let Some(last) = sizes.last_mut() {
                *last += s;
            }
            break;
        }
        sizes.push(s);
        left -= s;
    }
    let mut boxes = Vec::new();
    let mut next_user = 0;
    for (i, s) in sizes.iter().enumerate() {
        let members: Vec<usize> = (next_user..next_user + s).collect();
        next_user += s;
        boxes.push((i, members));
    }
    let t = Instant::now();
    let boxes: Vec<FanBox> = futures_util::stream::iter(boxes)
        .map(|(i, members)| {
            let (http, users, url) = (&http, &users, &c.boxes_url);
            async move {
                let admin = &users[members[0]];
                let id = common::create_box(http, url, admin, &format!("Fan-out {i}")).await?;
                for m in &members[1..] {
                    common::add_member(http, url, id, admin, &users[*m]).await?;
                }
                anyhow::Ok(FanBox { id, members })
            }
        })
        .buffer_unordered(64)
        .try_collect()
        .await?;
    let memberships: usize = boxes.iter().map(|b| b.members.len()).sum();
    let mean_size = memberships as f64 / boxes.len().max(1) as f64;
    eprintln!(
        "fan-out: {} boxes, {memberships} memberships (mean {mean_size:.1}) in {:.1} s",
        boxes.len(),
        t.elapsed().as_secs_f64()
    );
    common::settle(c.database_url.as_deref()).await?;

    let arrivals = Arc::new(Arrivals {
        epoch: Instant::now(),
        histograms: [
            Mutex::new(common::histogram()?),
            Mutex::new(common::histogram()?),
            Mutex::new(common::histogram()?),
        ],
        counts: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
    });
    let t = Instant::now();
    let sockets: Vec<Ws> = futures_util::stream::iter(users.iter().enumerate())
        .map(|(i, u)| connect(server, source_addr(i / 1000), u))
        .buffer_unordered(128)
        .try_collect()
        .await?;
    eprintln!("fan-out: {} sockets ready in {:.1} s", sockets.len(), t.elapsed().as_secs_f64());
    let mut readers = readers(sockets, &arrivals);

    let users = Arc::new(users);
    let boxes = Arc::new(boxes);
    let post = {
        let http = http.clone();
        let users = users.clone();
        let boxes = boxes.clone();
        let arrivals = arrivals.clone();
        let url = c.boxes_url.clone();
        move |phase: usize, pick: u64| {
            let (http, users, boxes, arrivals, url) =
                (http.clone(), users.clone(), boxes.clone(), arrivals.clone(), url.clone());
            async move {
                let b = &boxes[(pick as usize) % boxes.len()];
                let sender = &users[b.members[(pick as usize / boxes.len()) % b.members.len()]];
                let body = NewEvent::text(&arrivals.ciphertext(phase), common::PUBLIC_KEY);
                let posted = common::api(&http, &url, sender).post_event(b.id, &body).await;
                posted.map(|_| b.members.len() as u64).context("POST events")
            }
        }
    };

    // Phase 0: open loop at the target delivery rate. The warm-up posts (which arrivals ignore)
    // run at the same rate first, while the freshly spawned readers get their first poll.
    let posts_per_sec = target_rate / mean_size;
    let interval = Duration::from_secs_f64(1.0 / posts_per_sec);
    let duration = c.duration();
    let warmup = c.warmup();
    let expected = Arc::new(AtomicU64::new(0));
    let post_errors = Arc::new(AtomicU64::new(0));
    let post_latency = Arc::new(Mutex::new(common::histogram()?));
    let start = tokio::time::Instant::now();
    let measured_from = start + warmup;
    let mut sent = 0u64;
    let mut k = 0u64;
    let mut inflight = Vec::new();
    let mut rng = StdRng::seed_from_u64(7);
    let mut hooked = false;
    while start.elapsed() < warmup + duration {
        let at = start + interval.mul_f64(k as f64);
        tokio::time::sleep_until(at).await;
        k += 1;
        let measured = at >= measured_from;
        if measured && !hooked {
            common::measure_hook(&["start"]).await?;
            hooked = true;
        }
        let fut = post(if measured { 0 } else { WARM_UP }, rng.gen());
        if !measured {
            inflight.push(tokio::spawn(async move {
                let _ = fut.await;
            }));
            continue;
        }
        sent += 1;
        let (expected, post_errors, post_latency) = (expected.clone(), post_errors.clone(), post_latency.clone());
        inflight.push(tokio::spawn(async move {
            let t0 = Instant::now();
            match fut.await {
                Ok(n) => {
                    if let Ok(mut h) = post_latency.lock() {
                        common::record(&mut h, t0.elapsed());
                    }
                    expected.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    if post_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("fan-out: POST failed: {e:#}");
                    }
                }
            }
        }));
    }
    for f in inflight {
        f.await.ok();
    }
    let sent_for = start.elapsed().saturating_sub(warmup).as_secs_f64();
    let want = expected.load(Ordering::Relaxed);
    let wait_until = Instant::now() + Duration::from_secs(5);
    while arrivals.counts[0].load(Ordering::Relaxed) < want && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = arrivals.counts[0].load(Ordering::Relaxed);
    common::measure_hook(&["stop", &got.to_string(), "deliveries"]).await?;
    let latency = arrivals.histograms[0].lock().map(|h| Latency::of(&h)).unwrap_or_default();
    let achieved = got as f64 / sent_for;
    let errors0 = post_errors.load(Ordering::Relaxed);
    let answered = post_latency.lock().map(|h| Latency::of(&h)).unwrap_or_default();
    let mut notes = vec![format!(
        "{n_users} users, {} boxes (mean {mean_size:.1} members), {sent} posts in {sent_for:.1} s after {:.0} s of warm-up, {got}/{want} deliveries arrived; \
         POST answered in p50 {:.2} / p99 {:.2} / max {:.2} ms",
        boxes.len(),
        warmup.as_secs_f64(),
        answered.p50_ms,
        answered.p99_ms,
        answered.max_ms
    )];
    if errors0 > 0 {
        notes.push(format!("{errors0} POSTs failed"));
    }
    let lost = want.saturating_sub(got);
    Row {
        scenario: format!("4a. Fan-out latency, POST → every member's socket, at {} deliveries/s", rate(target_rate)),
        figure: format!("{} deliveries/s", rate(achieved)),
        latency: Some(latency),
        baseline: None,
        ratio: None,
        target: "p99 < 20 ms at 5,000 deliveries/s".into(),
        met: Some(latency.p99_ms < 20.0 && lost == 0 && errors0 == 0 && achieved >= 0.95 * target_rate),
        notes: notes.join("; "),
    }
    .emit(c.out.as_deref())?;

    // Phase 1: closed loop, as fast as boxes accepts posts.
    let one = saturate(c, posters, 1, &[rt], &arrivals, post.clone()).await?;
    let ratio = baseline_publish.filter(|b| *b > 0.0).map(|b| one.per_core() / b);
    let mut notes = vec![format!(
        "{} deliveries/s wall ({} posts/s from {posters} clients), realtime at {} of one core",
        rate(one.wall_rate()),
        rate(one.posts.rate()),
        one.shares()
    )];
    if one.posts.errors > 0 {
        notes.push(one.posts.error_note());
    }
    Row {
        scenario: "4b. Fan-out saturation (deliveries per CPU-second of realtime)".into(),
        figure: format!("{} deliveries/s per core", rate(one.per_core())),
        latency: Some(one.latency),
        baseline: baseline_publish.map(|b| format!("redis-benchmark PUBLISH {}/s", rate(b))),
        ratio,
        target: "≥ 25,000/s per core".into(),
        met: Some(one.per_core() >= 25_000.0 && one.posts.errors == 0),
        notes: notes.join("; "),
    }
    .emit(c.out.as_deref())?;

    // Phase 2: the same load with the sockets spread over two realtime processes.
    if let (Some(url2), Some(pid2)) = (&c.realtime2_url, c.realtime2_pid) {
        let (rt2, server2) = (Proc(pid2), realtime_addr(url2)?);
        for r in readers.drain(..) {
            r.abort();
        }
        let t = Instant::now();
        // Fresh source addresses: the closed sockets' ports may still be in TIME_WAIT.
        let sockets: Vec<Ws> = futures_util::stream::iter(users.iter().enumerate())
            .map(|(i, u)| connect(if i % 2 == 0 { server } else { server2 }, source_addr(100 + i / 1000), u))
            .buffer_unordered(128)
            .try_collect()
            .await?;
        eprintln!(
            "fan-out: {} sockets over two realtime processes in {:.1} s",
            sockets.len(),
            t.elapsed().as_secs_f64()
        );
        readers = self::readers(sockets, &arrivals);
        let two = saturate(c, posters, 2, &[rt, rt2], &arrivals, post).await?;
        let cpus = format!("{} and {}", rt.cpus()?, rt2.cpus()?);
        let mut notes = vec![format!(
            "{} deliveries/s per CPU-second of both realtime processes, against {} with one: {:.2}×; \
             {} posts/s from {posters} clients; realtime processes at {} of one core, allowed CPUs {cpus}",
            rate(two.per_core()),
            rate(one.per_core()),
            two.per_core() / one.per_core().max(0.001),
            rate(two.posts.rate()),
            two.shares()
        )];
        if two.posts.errors > 0 {
            notes.push(two.posts.error_note());
        }
        Row {
            scenario: "4b. Fan-out saturation, sockets over two realtime processes".into(),
            figure: format!("{} deliveries/s wall", rate(two.wall_rate())),
            latency: Some(two.latency),
            baseline: Some(format!("one process {} deliveries/s wall", rate(one.wall_rate()))),
            ratio: Some(two.wall_rate() / one.wall_rate().max(0.001)),
            target: "(scaling, two/one)".into(),
            met: None,
            notes: notes.join("; "),
        }
        .emit(c.out.as_deref())?;
    }
    for r in readers {
        r.abort();
    }
    Ok(())
}
