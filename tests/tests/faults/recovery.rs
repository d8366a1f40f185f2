//! realtime restarted in the middle of a stream of messages (README "Recovery on reconnect"):
//! one poster sends a numbered stream into a box with four members while realtime is killed
//! (SIGKILL) and later stopped (SIGTERM) and started again. Two sockets per member keep their last
//! history position and reconnect with `?since=` it; each must end with every message of the
//! stream exactly once and in the order it was posted, every reconnection answered
//! `recovered:true`. The clients do not filter duplicates: what they count is what realtime sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::checks::{read_events, Check, Observed, Window, RECOVERY};
use crate::client::{Answer, BoxRef, MemorySampler, Post, Stopper, User, WsEnd};
use crate::infra::{url_of, BOXES, REALTIME, REALTIME_PORT};
use crate::scenarios::{Length, Outcome, Sys};

/// Sockets per member: several clients of one identity share its history.
const SOCKETS_PER_USER: usize = 2;
/// Reconnection delay of the clients after a socket ends or a connection is refused.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// Posts per second at most: the stream outlasts both restarts without hogging the machine.
const POST_RATE: f64 = 250.0;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One connection of a recovering client.
#[derive(Debug, Clone)]
struct Session {
    /// The `since` it asked for (none on the first connection).
    since: Option<String>,
    /// When `ready` came and its `recovered`.
    ready: Option<(Instant, Option<bool>)>,
    ended: Option<WsEnd>,
    /// How many of `received` came before `ready`: the replay of what was missed.
    replayed: usize,
    /// `content.encrypted` of each `event.new` received, in arrival order (replay included).
    received: Vec<String>,
}

/// A socket kept open for a user, reconnecting from its last history position.
struct RecoveringClient {
    sessions: Arc<Mutex<Vec<Session>>>,
    stopper: Stopper,
}

async fn connect(user: &User, since: Option<&str>) -> anyhow::Result<crate::client::Ws> {
    let query = since.map(|s| format!("?since={s}")).unwrap_or_default();
    let mut req = format!("ws://127.0.0.1:{REALTIME_PORT}/box-users/{}/ws{query}", user.id).into_client_request()?;
    req.headers_mut().insert("Authorization", user.bearer().parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(ws)
}

impl RecoveringClient {
    fn open(user: &User) -> RecoveringClient {
        let sessions: Arc<Mutex<Vec<Session>>> = Arc::default();
        let mut stopper = Stopper::new();
        let (s, mut stop, user) = (sessions.clone(), stopper.stop(), user.clone());
        stopper.spawn(async move {
            let mut position: Option<String> = None;
            while !stop.is_set() {
                let opened =
                    stop.unless(tokio::time::timeout(Duration::from_secs(5), connect(&user, position.as_deref())));
                let Some(Ok(Ok(mut ws))) = opened.await else {
                    stop.unless(tokio::time::sleep(RECONNECT_DELAY)).await;
                    continue;
                };
                lock(&s).push(Session {
                    since: position.clone(),
                    ready: None,
                    ended: None,
                    replayed: 0,
                    received: Vec::new(),
                });
                let end = loop {
                    let Some(msg) = stop.unless(ws.next()).await else { return };
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(frame))) => {
                            break WsEnd::Close(frame.map_or(1005, |f| u16::from(f.code)))
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(_)) | None => break WsEnd::Dropped,
                    };
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let mut all = lock(&s);
                    let Some(session) = all.last_mut() else { continue };
                    if v["type"] == "ready" {
                        if let Some(p) = v["object"]["position"].as_str() {
                            position = Some(p.to_owned());
                        }
                        session.ready = Some((Instant::now(), v["object"]["recovered"].as_bool()));
                        session.replayed = session.received.len();
                        continue;
                    }
                    if let Some(p) = v["position"].as_str() {
                        position = Some(p.to_owned());
                    }
                    if v["type"] == "event.new" {
                        if let Some(payload) = v["object"]["content"]["encrypted"].as_str() {
                            session.received.push(payload.to_owned());
                        }
                    }
                };
                if let Some(last) = lock(&s).last_mut() {
                    last.ended = Some(end);
                }
                stop.unless(tokio::time::sleep(RECONNECT_DELAY)).await;
            }
        });
        RecoveringClient { sessions, stopper }
    }

    fn received(&self) -> usize {
        lock(&self.sessions).iter().map(|s| s.received.len()).sum()
    }

    async fn stop(mut self) -> Vec<Session> {
        self.stopper.finish().await;
        let s = lock(&self.sessions).clone();
        s
    }
}

/// u0's first box, made public and joined by the three other users.
async fn shared_box(sys: &Sys) -> anyhow::Result<(User, BoxRef)> {
    let (owner, bx) = sys.boxes.first().cloned().context("no box")?;
    let url = format!("{}/boxes/{}/events", url_of(BOXES), bx.id);
    let public = json!({"type": "state.access_mode", "content": {"value": "public"}});
    let mut steps = vec![(&owner, public)];
    steps.extend(sys.users.iter().filter(|u| u.id != owner.id).map(|u| (u, json!({"type": "member.join"}))));
    for (user, body) in steps {
        let res = sys.http.post(&url).header("Authorization", user.bearer()).json(&body).send().await?;
        if res.status() != 201 {
            bail!("{body}: {} {}", res.status(), res.text().await.unwrap_or_default());
        }
    }
    Ok((owner, bx))
}

/// Posts `total` messages one after the other (at most [`POST_RATE`] a second); `sent` counts
/// the answers so far.
async fn post_stream(
    http: reqwest::Client,
    owner: User,
    bx: BoxRef,
    tag: String,
    total: u64,
    sent: Arc<Mutex<u64>>,
) -> Vec<Post> {
    let url = format!("{}/boxes/{}/events", url_of(BOXES), bx.id);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / POST_RATE));
    let mut posts = Vec::new();
    for n in 1..=total {
        tick.tick().await;
        let payload = format!("{tag}n{n:05}");
        let start = Instant::now();
        let body = json!({"type": "msg.text", "content": {"encrypted": payload, "public_key": bx.key}});
        let res = http.post(&url).header("Authorization", owner.bearer()).json(&body).send().await;
        let (status, event_id) = match res {
            Ok(r) => {
                let status = r.status().as_u16();
                let body: Option<Value> = r.json().await.ok();
                (Some(status), body.and_then(|b| b["id"].as_str().map(str::to_owned)))
            }
            Err(_) => (None, None),
        };
        let answer = Answer { target: BOXES, what: "post", start, dur: start.elapsed(), status, cancelled: false };
        posts.push(Post { box_idx: 0, n, payload, answer, event_id: event_id.filter(|_| status == Some(201)) });
        *lock(&sent) += 1;
    }
    posts
}

async fn wait_until(deadline: Instant, mut cond: impl FnMut() -> bool) {
    while !cond() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What one client got, against the stream as posted: `None` when it is exactly that.
fn stream_mismatch(sessions: &[Session], tag: &str, expected: &[String]) -> Option<String> {
    let got: Vec<&String> = sessions.iter().flat_map(|s| &s.received).filter(|p| p.starts_with(tag)).collect();
    if got.len() == expected.len() && got.iter().zip(expected).all(|(g, e)| *g == e) {
        return None;
    }
    let distinct: std::collections::HashSet<&String> = got.iter().copied().collect();
    let missing = expected.iter().filter(|e| !distinct.contains(e)).count();
    let first_diff = got.iter().zip(expected).position(|(g, e)| *g != e);
    Some(format!(
        "{} received, {} distinct, {missing} missing, first difference at {first_diff:?}",
        got.len(),
        distinct.len()
    ))
}

/// The scenario: the stream, realtime SIGKILLed about a third of the way and SIGTERMed about two
/// thirds of the way (more restarts at full length), the clients' streams compared with it.
pub async fn realtime_recovery(pg: &crate::infra::Postgres, len: Length) -> anyhow::Result<Outcome> {
    let mut sys = Sys::start(pg, "realtime-recovery", true, 0).await?;
    let (owner, bx) = shared_box(&sys).await?;
    let total: u64 = if len.full { 4000 } else { 1000 };
    let restarts: u64 = if len.full { 6 } else { 2 };
    let memory = MemorySampler::start(sys.services.pids.clone());
    let mut clients = Vec::new();
    for u in &sys.users {
        for _ in 0..SOCKETS_PER_USER {
            clients.push(RecoveringClient::open(u));
        }
    }
    let connected = |clients: &[RecoveringClient]| {
        clients.iter().all(|c| lock(&c.sessions).last().is_some_and(|s| s.ready.is_some() && s.ended.is_none()))
    };
    wait_until(Instant::now() + Duration::from_secs(10), || connected(&clients)).await;
    anyhow::ensure!(connected(&clients), "the clients' sockets did not open");

    let tag = format!("r{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let sent = Arc::new(Mutex::new(0u64));
    let poster = tokio::spawn(post_stream(sys.http.clone(), owner, bx, tag.clone(), total, sent.clone()));
    let mut windows = Vec::new();
    let mut kinds = Vec::new();
    for r in 1..=restarts {
        let at = total * r / (restarts + 1);
        wait_until(Instant::now() + Duration::from_secs(60), || *lock(&sent) >= at).await;
        let start = Instant::now();
        if r % 2 == 1 {
            tokio::task::block_in_place(|| sys.services.kill(REALTIME));
            kinds.push("SIGKILL");
        } else {
            tokio::task::block_in_place(|| sys.services.terminate(REALTIME, Duration::from_secs(15)));
            kinds.push("SIGTERM");
        }
        sys.services.spawn(REALTIME).await?;
        windows.push(Window { start, end: Instant::now(), redis_down: None });
    }
    let posts = poster.await.context("the poster")?;
    let expected: Vec<String> =
        posts.iter().filter(|p| p.answer.status == Some(201)).map(|p| p.payload.clone()).collect();
    wait_until(Instant::now() + Duration::from_secs(10), || {
        clients.iter().all(|c| {
            lock(&c.sessions).iter().flat_map(|s| &s.received).filter(|p| p.starts_with(&tag)).count() >= expected.len()
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received: usize = clients.iter().map(RecoveringClient::received).sum();
    let mut all = Vec::new();
    for c in clients {
        all.push(c.stop().await);
    }
    let mut rss: Vec<(&'static str, u64)> = memory.stop().await.into_iter().collect();
    rss.sort();

    let box_ids = sys.boxes.iter().map(|(_, b)| b.id.clone()).collect();
    let events = read_events(&sys.database_url).await.context("reading the events")?;
    let obs = Observed { posts, answers: Vec::new(), sockets: Vec::new(), rss: Default::default(), events, box_ids };
    let mut checks = vec![Check::new(
        "stream-accepted",
        None,
        expected.len() as u64 == total,
        format!("{} of {total} posts answered 201 ({})", expected.len(), obs.statuses()),
    )];
    checks.extend(obs.database_checks());

    let mismatches: Vec<String> = all
        .iter()
        .enumerate()
        .filter_map(|(i, s)| stream_mismatch(s, &tag, &expected).map(|m| format!("client {i}: {m}")))
        .collect();
    checks.push(Check::new(
        "each-client-gets-the-stream-once-in-order",
        None,
        mismatches.is_empty(),
        if mismatches.is_empty() {
            format!("{} clients × {} messages", all.len(), expected.len())
        } else {
            format!("{mismatches:?}")
        },
    ));

    let reconnections: Vec<&Session> = all.iter().flat_map(|s| s.iter().skip(1)).collect();
    let unrecovered: Vec<String> = reconnections
        .iter()
        .filter(|s| s.since.is_none() || s.ready.is_some_and(|(_, r)| r != Some(true)))
        .map(|s| format!("since {:?}: {:?}", s.since, s.ready.map(|(_, r)| r)))
        .collect();
    let too_few = all.iter().filter(|s| (s.len() as u64) < restarts + 1).count();
    let replayed: usize = reconnections.iter().map(|s| s.replayed).sum();
    checks.push(Check::new(
        "reconnections-with-since-recovered",
        None,
        unrecovered.is_empty() && too_few == 0 && replayed > 0,
        format!(
            "{} reconnections, {} not recovered {unrecovered:?}, {replayed} messages replayed; {too_few} clients reconnected fewer than {restarts} times",
            reconnections.len(),
            unrecovered.len()
        ),
    ));

    let bad_ends: Vec<String> = all
        .iter()
        .flatten()
        .filter_map(|s| s.ended.clone())
        .filter(|e| !matches!(e, WsEnd::Close(1001 | 1013) | WsEnd::Dropped))
        .map(|e| format!("{e:?}"))
        .collect();
    checks.push(Check::new(
        "sockets-close-with-documented-codes",
        None,
        bad_ends.is_empty(),
        if bad_ends.is_empty() { "1001, 1013 or dropped".to_owned() } else { format!("unexpected ends {bad_ends:?}") },
    ));

    // Each client is back (ready after the restart) within 2 s of realtime answering again.
    let mut worst = Duration::ZERO;
    let mut late = 0;
    for w in &windows {
        for sessions in &all {
            match sessions.iter().filter_map(|s| s.ready.map(|r| r.0)).find(|t| *t >= w.start) {
                Some(t) => worst = worst.max(t.saturating_duration_since(w.end)),
                None => late += 1,
            }
        }
    }
    checks.push(Check::new(
        "clients-reopen-within-2s",
        None,
        late == 0 && worst <= RECOVERY,
        format!("slowest back {} ms after realtime, {late} never", worst.as_millis()),
    ));

    let max_latency = obs
        .posts
        .iter()
        .filter(|p| windows.iter().any(|w| p.answer.start >= w.start && p.answer.start <= w.end))
        .map(|p| p.answer.dur)
        .max()
        .unwrap_or_default();
    Ok(Outcome {
        checks,
        statuses: obs.statuses(),
        posts: (expected.len(), obs.posts.len()),
        max_latency,
        recoveries: vec![(REALTIME, (late == 0).then_some(worst))],
        rss,
        note: format!(
            "{} during a stream of {total} to {} sockets ({received} received, {replayed} of them replayed)",
            kinds.join(", "),
            all.len()
        ),
    })
}
