//! Scenarios 1 and 2: posting messages (`POST /boxes/{id}/events`) and reading a page of events
//! (`GET /boxes/{id}/events?limit=50`), each closed-loop at a given number of clients. The
//! baseline of scenario 1 (pgbench) is run by `scripts/bench` and passed in; the baseline of
//! scenario 2 is the service's own statements for a page (`boxes::store::pipelined::page_folded`)
//! through bare PostgreSQL connections, run here, with the plain list query alone as a note.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use boxes_client::body::NewEvent;

use crate::common::{self, closed_loop, rate, CpuWindow, Latency, Row, User};
use crate::Common;

/// Characters of ciphertext in each message: 1 KiB.
pub const CIPHERTEXT_LEN: usize = 1024;

pub fn msg_text() -> NewEvent {
    NewEvent::text(&common::b64u_filler(CIPHERTEXT_LEN), common::PUBLIC_KEY)
}

/// Scenario 1 at one concurrency: each client owns a box and posts 1 KiB messages into it.
pub async fn post(c: &Common, clients: usize, baseline_tps: Option<f64>, least_tps: Option<f64>) -> anyhow::Result<()> {
    let http = common::http_client(clients)?;
    let minter = c.minter()?;
    let users = common::create_users(&http, &c.boxes_internal_url, &c.internal_token, &minter, clients, 16).await?;
    let mut boxes = Vec::new();
    for u in &users {
        boxes.push(common::create_box(&http, &c.boxes_url, u, "Bench post").await?);
    }
    let owners: Vec<(domain::BoxId, domain::IdentityId)> = boxes.iter().zip(&users).map(|(b, u)| (*b, u.id)).collect();
    let work = Arc::new((users, boxes, msg_text(), http, c.boxes_url.clone()));
    let cpu = c.boxes_cpu()?;
    let rest = rest_of_the_stack(c)?;
    let batches_before = post_batches(c).await;
    let pg_start = pg_window(c);
    let machine_start = after_warmup(c, common::Machine::busy);
    let r = closed_loop(clients, c.warmup(), c.duration(), move |client, _| {
        let work = work.clone();
        async move {
            let (users, boxes, body, http, url) = &*work;
            let res = http
                .post(format!("{url}/boxes/{}/events", boxes[client]))
                .header("Authorization", &users[client].bearer)
                .json(body)
                .send()
                .await
                .context("POST events")?;
            read_expecting(res, 201).await
        }
    })
    .await?;
    let batches = match (batches_before, post_batches(c).await) {
        (Some((sum0, n0)), Some((sum1, n1))) if n1 > n0 => format!(
            "{:.1} messages per transaction on average ({} transactions over warm-up and window)",
            (sum1 - sum0) / (n1 - n0),
            n1 - n0
        ),
        _ => String::new(),
    };
    let pg_cpu = pg_per(pg_start, r.ok, "post").await?;
    let machine = machine_per(machine_start, &r, (clients > 1).then_some(baseline_tps).flatten()).await?;
    let latency = Latency::of(&r.histogram);
    let ratio = baseline_tps.filter(|b| *b > 0.0).map(|b| r.rate() / b);
    let boxes_cpu = format!("{}{}{pg_cpu}", cpu_note(cpu)?, rest_note(rest)?);
    let alone = post_transaction_alone(c, owners, baseline_tps).await?;
    let floor = if clients == 1 { http_round_trip(c, baseline_tps, least_tps).await? } else { String::new() };
    let (target, met) = if clients >= 32 {
        ("≥ 1.0× baseline, p99 ≤ 5 ms", ratio.map(|x| x >= 1.0 && latency.p99_ms <= 5.0))
    } else {
        ("≥ 0.7× baseline", ratio.map(|x| x >= 0.7))
    };
    Row {
        scenario: format!("1. POST events (msg.text, 1 KiB), {clients} client{}", if clients == 1 { "" } else { "s" }),
        figure: format!("{} events/s", rate(r.rate())),
        latency: Some(latency),
        baseline: baseline_tps.map(|b| format!("pgbench insert {} tps", rate(b))),
        ratio,
        target: target.into(),
        met: if r.errors > 0 { Some(false) } else { met },
        notes: [boxes_cpu, machine, batches, alone, floor, r.error_note()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    }
    .emit(c.out.as_deref())
}

/// Reads the whole answer (so the connection is kept) and fails unless its status is `expected`.
async fn read_expecting(res: reqwest::Response, expected: u16) -> anyhow::Result<()> {
    let status = res.status();
    res.bytes().await.context("reading the answer")?;
    if status != expected {
        bail!("answered {status}");
    }
    Ok(())
}

/// A CPU reading taken at the end of the warm-up, where the measured window starts.
type Reading = tokio::task::JoinHandle<anyhow::Result<Duration>>;

fn after_warmup(c: &Common, read: impl FnOnce() -> anyhow::Result<Duration> + Send + 'static) -> Reading {
    let warmup = c.warmup();
    tokio::spawn(async move {
        tokio::time::sleep(warmup).await;
        read()
    })
}

/// PostgreSQL's CPU time from the end of the warm-up: the cluster's pid and the reading then.
type PgWindow = Option<(u32, Reading)>;

fn pg_window(c: &Common) -> PgWindow {
    c.pg_pid.map(|pid| (pid, after_warmup(c, move || common::PgCluster(pid).cpu())))
}

/// ", PostgreSQL CPU N µs per <unit>" over the window, for `done` units; empty without a pid.
async fn pg_per(window: PgWindow, done: u64, unit: &str) -> anyhow::Result<String> {
    match window {
        Some((pid, start)) if done > 0 => {
            let used = common::PgCluster(pid).cpu()?.saturating_sub(start.await.context("CPU reading")??);
            Ok(format!(", PostgreSQL CPU {:.0} µs per {unit}", used.as_secs_f64() * 1e6 / done as f64))
        }
        _ => Ok(String::new()),
    }
}

/// How busy the machine was over the window and what a post cost it in all (boxes, PostgreSQL,
/// Redis, the load generator, the kernel); with `bound_against` (pgbench's rate), also the bound
/// that cost sets: the posts per second the machine's cores could carry if every one of them
/// were busy. One client cannot keep the cores busy, so its row has no bound.
async fn machine_per(start: Reading, r: &common::LoopResult, bound_against: Option<f64>) -> anyhow::Result<String> {
    let used = common::Machine::busy()?.saturating_sub(start.await.context("CPU reading")??).as_secs_f64();
    let cores = common::Machine::cores()?;
    if r.ok == 0 || r.elapsed <= 0.0 || cores == 0 {
        return Ok(String::new());
    }
    let per_post = used / r.ok as f64;
    let most = cores as f64 / per_post;
    let bound = bound_against
        .filter(|b| *b > 0.0)
        .map(|b| format!(": with every core busy, at most {} posts/s, {:.2}× pgbench", rate(most), most / b))
        .unwrap_or_default();
    Ok(format!(
        "the machine's {cores} cores {:.0}% busy, {:.0} µs of CPU per post in all (every process and the kernel){bound}",
        100.0 * used / (r.elapsed * cores as f64),
        per_post * 1e6,
    ))
}

/// The sum and count of boxes' `post_batch_size` histogram (group commit), from its `/metrics`;
/// `None` when they cannot be read (metrics off).
async fn post_batches(c: &Common) -> Option<(f64, f64)> {
    let text = reqwest::get(format!("{}/metrics", c.boxes_internal_url)).await.ok()?.text().await.ok()?;
    let value = |name: &str| text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok()));
    Some((value("post_batch_size_sum ")?, value("post_batch_size_count ")?))
}

/// The transaction boxes runs for a message posted alone (`store::pipelined::post_messages` with a
/// batch of one: the sender, the box lock, the insert, the members, the deadline check,
/// pipelined), from bare PostgreSQL connections, one per client and box: one transaction per
/// post, as a note next to boxes' figure, which groups concurrent posts into shared transactions.
async fn post_transaction_alone(
    c: &Common,
    owners: Vec<(domain::BoxId, domain::IdentityId)>,
    baseline_tps: Option<f64>,
) -> anyhow::Result<String> {
    let clients = owners.len();
    let conns = bare_connections(c, clients).await?;
    let content = serde_json::to_value(msg_text()).context("a message")?.get("content").cloned();
    let work = Arc::new((conns, owners, content));
    let pg_start = pg_window(c);
    let r = closed_loop(clients, c.warmup(), c.duration(), move |client, _| {
        let work = work.clone();
        async move {
            let (conns, owners, content) = &*work;
            let (box_id, sender) = owners[client];
            let message = boxes::store::pipelined::NewMessage {
                id: domain::EventId::new_v4(),
                box_id,
                sender,
                kind: domain::event::EventType::MsgText,
                content: content.clone(),
                referrer_id: None,
            };
            let deadline = Some(std::time::SystemTime::now() + std::time::Duration::from_secs(5));
            let posted = boxes::store::pipelined::post_messages(&conns[client], &[message], deadline, || {})
                .await
                .context("post transaction")?;
            let Some(posted) = posted.first() else { bail!("no answer") };
            if posted.event.is_none() {
                bail!("nothing inserted");
            }
            Ok(())
        }
    })
    .await?;
    let pg_cpu = pg_per(pg_start, r.ok, "transaction").await?;
    let l = Latency::of(&r.histogram);
    let of_baseline = baseline_tps.filter(|b| *b > 0.0).map(|b| format!(", {:.2}× pgbench", r.rate() / b));
    Ok(format!(
        "boxes' post transaction alone, bare PostgreSQL: {} tx/s (p99 {:.2} ms){}{}{}",
        rate(r.rate()),
        l.p99_ms,
        of_baseline.unwrap_or_default(),
        pg_cpu,
        r.error_note()
    ))
}

/// The HTTP round trip alone at one client: `GET /healthz` on boxes, which reads nothing, through
/// the same kind of client. A post is this round trip plus at least one transaction, so even if
/// its transaction cost no more than pgbench's insert, one client could post at no more than
/// `1 / (1/healthz + 1/pgbench)`: that bound, as a fraction of pgbench, is printed with it, and
/// the same bound with `least_tps` behind it: pgbench's rate for the least transaction a post
/// needs (`scripts/bench`: one statement taking the box's row lock and next sequence number,
/// checking the membership and inserting the event).
async fn http_round_trip(c: &Common, baseline_tps: Option<f64>, least_tps: Option<f64>) -> anyhow::Result<String> {
    let http = common::http_client(1)?;
    let url = format!("{}/healthz", c.boxes_url);
    let r = closed_loop(1, c.warmup(), c.duration(), move |_, _| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let res = http.get(&url).send().await.context("GET /healthz")?;
            read_expecting(res, 200).await
        }
    })
    .await?;
    let l = Latency::of(&r.histogram);
    let behind = |tps: f64| 1.0 / (1.0 / r.rate() + 1.0 / tps);
    let bound = baseline_tps.filter(|b| *b > 0.0 && r.rate() > 0.0).map(|b| {
        let least = least_tps.filter(|t| *t > 0.0).map(|t| {
            format!(
                "; the least transaction a post needs {} tx/s ({:.2}× pgbench), so at most {:.2}× pgbench with it behind",
                rate(t),
                t / b,
                behind(t) / b
            )
        });
        format!("; with pgbench's insert behind it, at most {:.2}× pgbench{}", behind(b) / b, least.unwrap_or_default())
    });
    Ok(format!(
        "the HTTP round trip alone (GET /healthz, 1 client): {} req/s (p50 {:.3} ms){}{}",
        rate(r.rate()),
        l.p50_ms,
        bound.unwrap_or_default(),
        r.error_note()
    ))
}

/// `n` bare PostgreSQL connections, one per client, for running boxes' store functions without
/// boxes (they take a deadpool client, for its statement cache).
async fn bare_connections(c: &Common, n: usize) -> anyhow::Result<Vec<deadpool_postgres::Object>> {
    let db = c.database_url.as_deref().context("--database-url is required for the bare baselines")?;
    let pool = deadpool_postgres::Pool::builder(deadpool_postgres::Manager::new(
        db.parse().context("--database-url")?,
        tokio_postgres::NoTls,
    ))
    .max_size(n)
    .runtime(deadpool_postgres::Runtime::Tokio1)
    .build()
    .context("PostgreSQL pool")?;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(pool.get().await.context("connecting to PostgreSQL")?);
    }
    Ok(conns)
}

/// Scenario 2: one box holding 200 messages; `clients` members read its newest 50 events, through
/// boxes and then through bare PostgreSQL connections running boxes' statements for that page.
pub async fn list(c: &Common, clients: usize) -> anyhow::Result<()> {
    let http = common::http_client(clients)?;
    let minter = c.minter()?;
    let users = common::create_users(&http, &c.boxes_internal_url, &c.internal_token, &minter, 1, 1).await?;
    let owner = users.first().context("no user")?.clone();
    let box_id = common::create_box(&http, &c.boxes_url, &owner, "Bench list").await?;
    let as_owner = common::api(&http, &c.boxes_url, &owner);
    let body = msg_text();
    for _ in 0..200 {
        as_owner.post_event(box_id, &body).await.context("POST events")?;
    }
    let url = format!("{}/boxes/{box_id}/events?limit=50", c.boxes_url);
    let n = as_owner.events(box_id, "?limit=50").await.context("first page")?.len();
    if n != 50 {
        bail!("GET events returned {n} events, expected 50");
    }

    let reader = owner.id;
    let work: Arc<(reqwest::Client, String, User)> = Arc::new((http, url, owner));
    let cpu = c.boxes_cpu()?;
    let api = closed_loop(clients, c.warmup(), c.duration(), move |_, _| {
        let work = work.clone();
        async move {
            let (http, url, owner) = &*work;
            let res = http.get(url).header("Authorization", &owner.bearer).send().await.context("GET events")?;
            read_expecting(res, 200).await
        }
    })
    .await?;
    let boxes_cpu = cpu_note(cpu)?;

    let db = c.database_url.as_deref().context("--database-url is required for the list baseline")?;
    let box_uuid = box_id.into_uuid();

    // The baseline: the statements boxes sends for this page (`store::pipelined::page_folded`: the
    // reader, the box with the membership, the folded page with the identities, pipelined), from
    // one PostgreSQL connection per client, the rows decoded as boxes decodes them.
    let conns = Arc::new(bare_connections(c, clients).await?);
    let page = domain::input::Page { offset: 0, limit: 50 };
    let bare = closed_loop(clients, c.warmup(), c.duration(), move |client, _| {
        let conns = conns.clone();
        async move {
            let pg = &conns[client];
            let p = boxes::store::pipelined::page_folded(pg, box_uuid.into(), reader, page, None)
                .await
                .context("page statements")?;
            if !p.reader_known || p.rows.len() != 50 {
                bail!("{} rows", p.rows.len());
            }
            Ok(())
        }
    })
    .await?;

    // For reference: the plain list query alone (no folding, no identities, no membership).
    let plain = plain_list(db, clients, c, box_uuid).await?;

    let ratio = if bare.rate() > 0.0 { Some(api.rate() / bare.rate()) } else { None };
    let bl = Latency::of(&bare.histogram);
    Row {
        scenario: format!("2. GET events?limit=50, {clients} client{}", if clients == 1 { "" } else { "s" }),
        figure: format!("{} req/s", rate(api.rate())),
        latency: Some(Latency::of(&api.histogram)),
        baseline: Some(format!("boxes' statements {} q/s (p99 {:.2} ms)", rate(bare.rate()), bl.p99_ms)),
        ratio,
        target: "≥ 0.6× baseline".into(),
        met: if api.errors > 0 || bare.errors > 0 { Some(false) } else { ratio.map(|x| x >= 0.6) },
        notes: [boxes_cpu, plain, api.error_note(), bare.error_note()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    }
    .emit(c.out.as_deref())
}

/// The plain list query of the box (visible events, newest first, nothing folded) through bare
/// tokio-postgres clients, as a note.
async fn plain_list(db: &str, clients: usize, c: &Common, box_uuid: uuid::Uuid) -> anyhow::Result<String> {
    let mut conns = Vec::new();
    for _ in 0..clients {
        let (client, conn) =
            tokio_postgres::connect(db, tokio_postgres::NoTls).await.context("connecting to PostgreSQL")?;
        tokio::spawn(conn);
        let stmt = client
            .prepare(
                "SELECT id, box_id, seq, type, sender_id, content, referrer_id, created_at FROM boxes.events
                 WHERE box_id = $1 AND type = ANY($2) ORDER BY seq DESC OFFSET $3 LIMIT $4",
            )
            .await
            .context("preparing the list query")?;
        conns.push((client, stmt));
    }
    let visible: Vec<String> = domain::event::EventType::visible_strs().into_iter().map(str::to_owned).collect();
    let conns = Arc::new((conns, visible));
    let r = closed_loop(clients, c.warmup(), c.duration(), move |client, _| {
        let conns = conns.clone();
        async move {
            let (conns, visible) = &*conns;
            let (pg, stmt) = &conns[client];
            let rows = pg.query(stmt, &[&box_uuid, visible, &0i64, &50i64]).await.context("list query")?;
            for r in &rows {
                let _: Option<serde_json::Value> = r.get(5);
            }
            if rows.len() != 50 {
                bail!("{} rows", rows.len());
            }
            Ok(())
        }
    })
    .await?;
    let l = Latency::of(&r.histogram);
    Ok(format!("the plain list query alone: {} q/s (p99 {:.2} ms){}", rate(r.rate()), l.p99_ms, r.error_note()))
}

/// `boxes at N% of one core` over the window, when boxes' pid is known.
/// The load generator itself and Redis: with boxes and PostgreSQL, what shares the machine's
/// cores during scenario 1 (pgbench's baseline has only PostgreSQL and pgbench's own client).
fn rest_of_the_stack(c: &Common) -> anyhow::Result<CpuWindow> {
    let procs: Vec<common::Proc> = std::iter::once(std::process::id()).chain(c.redis_pid).map(common::Proc).collect();
    CpuWindow::start(&procs)
}

fn rest_note(window: CpuWindow) -> anyhow::Result<String> {
    let (used, wall) = window.stop()?;
    let share = |i: usize| used.get(i).map(|u| 100.0 * u / wall.max(0.001));
    Ok(match (share(0), share(1)) {
        (Some(me), Some(redis)) => format!(", the load generator at {me:.0}%, Redis at {redis:.0}%"),
        (Some(me), None) => format!(", the load generator at {me:.0}%"),
        _ => String::new(),
    })
}

fn cpu_note(window: Option<CpuWindow>) -> anyhow::Result<String> {
    let Some(w) = window else { return Ok(String::new()) };
    let (used, wall) = w.stop()?;
    Ok(format!("boxes at {:.0}% of one core", 100.0 * used.first().copied().unwrap_or(0.0) / wall.max(0.001)))
}

/// Reads pgbench's per-transaction logs (`--log --log-prefix`) and prints p50/p99/max.
pub fn pgbench_latency(prefix: &str) -> anyhow::Result<Latency> {
    let path = std::path::Path::new(prefix);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let stem = path.file_name().and_then(|s| s.to_str()).context("log prefix")?;
    let mut h = common::histogram()?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(&format!("{stem}.")) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())?;
        // client_id transaction_no time_us script_no time_epoch time_us_fraction
        for line in text.lines() {
            if let Some(us) = line.split_whitespace().nth(2).and_then(|v| v.parse::<u64>().ok()) {
                common::record(&mut h, Duration::from_micros(us));
            }
        }
    }
    if h.is_empty() {
        bail!("no pgbench log lines under {prefix}.*");
    }
    Ok(Latency::of(&h))
}
