//! The clients the suite drives: logged-in users, paced posters, probes, listening websockets,
//! raw websocket frames and a memory sampler. Every request's start, duration and answer is kept
//! so that the checks can be run on the timeline afterwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::infra::{url_of, Pids, BOXES, BRIDGE, REALTIME, REALTIME_PORT};

/// No request of the suite waits longer than this: a slower answer is a failure anyway.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(CLIENT_TIMEOUT).build().unwrap_or_default()
}

/// A client that opens a new connection for every request.
pub fn http_without_pool() -> reqwest::Client {
    reqwest::Client::builder().timeout(CLIENT_TIMEOUT).pool_max_idle_per_host(0).build().unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A logged-in user, holding its bearer token.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub token: String,
}

impl User {
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

pub async fn login(http: &reqwest::Client, reference: &str) -> anyhow::Result<User> {
    let bridge = boxes_client::Bridge::new(http.clone(), &url_of(BRIDGE));
    let login = bridge.login(&e2e::system::login_body(&format!("code-{reference}"))).await?;
    Ok(User { id: login.identity().to_string(), token: login.tokens.access_token })
}

/// `POST /auth/logout`; its status, `None` when it did not answer.
pub async fn logout(http: &reqwest::Client, user: &User, wait: Duration) -> Option<u16> {
    let req = http.post(format!("{}/auth/logout", url_of(BRIDGE))).header("Authorization", user.bearer());
    match tokio::time::timeout(wait, req.send()).await {
        Ok(Ok(res)) => Some(res.status().as_u16()),
        _ => None,
    }
}

/// `GET /boxes/joined` with the user's token; its status, `None` without an answer.
pub async fn joined(http: &reqwest::Client, user: &User) -> Option<u16> {
    let res = http.get(format!("{}/boxes/joined", url_of(BOXES))).header("Authorization", user.bearer()).send().await;
    res.ok().map(|r| r.status().as_u16())
}

#[derive(Clone, Debug)]
pub struct BoxRef {
    pub id: String,
    pub key: String,
}

pub async fn create_box(http: &reqwest::Client, user: &User, title: &str) -> anyhow::Result<BoxRef> {
    use base64::Engine;
    let raw: Vec<u8> = [uuid::Uuid::new_v4().into_bytes(), uuid::Uuid::new_v4().into_bytes()].concat();
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let api = boxes_client::Boxes::new(http.clone(), &url_of(BOXES)).as_user(boxes_client::Auth::bearer(&user.token));
    let bx = api.create_box(&boxes_client::body::NewBox::new(title, &key)).await.context("creating a box")?;
    Ok(BoxRef { id: bx.id.to_string(), key })
}

/// One answer (or its absence) to one request.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The service asked.
    pub target: &'static str,
    /// What was asked, for reports (`post`, `readyz`, `revoked`, …).
    pub what: &'static str,
    pub start: Instant,
    pub dur: Duration,
    /// `None`: no answer (connection refused or reset, or the client's timeout).
    pub status: Option<u16>,
    /// Abandoned when the load stopped, before any answer came.
    pub cancelled: bool,
}

impl Answer {
    pub fn end(&self) -> Instant {
        self.start + self.dur
    }
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s) || s == 101)
    }
}

/// A post of a `msg.text` with a unique ciphertext, and what came of it.
#[derive(Clone, Debug)]
pub struct Post {
    pub box_idx: usize,
    /// The post's number within its box: each box's poster sends one after the other.
    pub n: u64,
    pub payload: String,
    pub answer: Answer,
    pub event_id: Option<String>,
}

#[derive(Default)]
pub struct Logs {
    pub posts: Mutex<Vec<Post>>,
    pub answers: Mutex<Vec<Answer>>,
}

/// Set once when a scenario stops its load; requests in flight are abandoned then (and
/// recorded without an answer), so that a hung service does not hold the suite.
#[derive(Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// `fut`, or `None` as soon as the stop is set.
    pub async fn unless<F: std::future::Future>(&mut self, fut: F) -> Option<F::Output> {
        if self.is_set() {
            return None;
        }
        tokio::select! {
            r = fut => Some(r),
            _ = self.0.wait_for(|v| *v) => None,
        }
    }
}

/// A stop switch and the tasks it stops.
pub struct Stopper {
    tx: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Stopper {
    pub fn new() -> Stopper {
        Stopper { tx: tokio::sync::watch::channel(false).0, tasks: Vec::new() }
    }

    pub fn stop(&self) -> Stop {
        Stop(self.tx.subscribe())
    }

    pub fn spawn(&mut self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(f));
    }

    pub async fn finish(&mut self) {
        let _ = self.tx.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

/// Background load: posters and probes, until stopped.
pub struct Load {
    stopper: Stopper,
    pub logs: Arc<Logs>,
}

impl Default for Load {
    fn default() -> Self {
        Load { stopper: Stopper::new(), logs: Arc::default() }
    }
}

impl Load {
    /// One poster per box, each at most `rate` posts per second, one at a time.
    pub fn posters(&mut self, http: &reqwest::Client, boxes: &[(User, BoxRef)], rate: f64, payload_len: usize) {
        for (idx, (user, bx)) in boxes.iter().cloned().enumerate() {
            let (http, mut stop, logs) = (http.clone(), self.stopper.stop(), self.logs.clone());
            let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
            self.stopper.spawn(async move {
                let url = format!("{}/boxes/{}/events", url_of(BOXES), bx.id);
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n = 0u64;
                while stop.unless(tick.tick()).await.is_some() {
                    n += 1;
                    let mut payload = format!("{tag}b{idx}n{n}x");
                    while payload.len() < payload_len {
                        payload.push('A');
                    }
                    let start = Instant::now();
                    let req = http
                        .post(&url)
                        .header("Authorization", user.bearer())
                        .json(&json!({"type": "msg.text", "content": {"encrypted": payload, "public_key": bx.key}}));
                    let res = stop
                        .unless(async {
                            let r = req.send().await.ok()?;
                            let status = r.status().as_u16();
                            let body: Option<Value> = r.json().await.ok();
                            Some((status, body.and_then(|b| b["id"].as_str().map(str::to_owned))))
                        })
                        .await;
                    let cancelled = res.is_none();
                    let (status, event_id) = res.flatten().map_or((None, None), |(s, id)| (Some(s), id));
                    let answer = Answer { target: BOXES, what: "post", start, dur: start.elapsed(), status, cancelled };
                    let event_id = if status == Some(201) { event_id } else { None };
                    lock(&logs.posts).push(Post { box_idx: idx, n, payload, answer, event_id });
                }
            });
        }
    }

    /// A GET of `path` on `target` every `every`, with a token when given.
    pub fn probe(
        &mut self,
        http: &reqwest::Client,
        target: &'static str,
        what: &'static str,
        path: &str,
        token: Option<&User>,
        every: Duration,
    ) {
        let (http, mut stop, logs) = (http.clone(), self.stopper.stop(), self.logs.clone());
        let url = format!("{}{path}", url_of(target));
        let auth = token.map(User::bearer);
        self.stopper.spawn(async move {
            while !stop.is_set() {
                let start = Instant::now();
                let mut req = http.get(&url);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                let res = stop.unless(req.send()).await;
                let cancelled = res.is_none();
                let status = res.and_then(Result::ok).map(|r| r.status().as_u16());
                lock(&logs.answers).push(Answer { target, what, start, dur: start.elapsed(), status, cancelled });
                stop.unless(tokio::time::sleep(every)).await;
            }
        });
    }

    /// Websocket handshakes with `user`'s token every `every`; each is recorded as an answer
    /// (101 when the socket opened).
    pub fn handshake_probe(&mut self, what: &'static str, user: &User, every: Duration) {
        let (mut stop, logs, user) = (self.stopper.stop(), self.logs.clone(), user.clone());
        self.stopper.spawn(async move {
            while !stop.is_set() {
                let start = Instant::now();
                let res = stop.unless(tokio::time::timeout(CLIENT_TIMEOUT, open_socket(&user))).await;
                let cancelled = res.is_none();
                let status = match res {
                    Some(Ok(Ok(_))) => Some(101),
                    Some(Ok(Err(HandshakeError::Status(s)))) => Some(s),
                    _ => None,
                };
                let answer = Answer { target: REALTIME, what, start, dur: start.elapsed(), status, cancelled };
                lock(&logs.answers).push(answer);
                stop.unless(tokio::time::sleep(every)).await;
            }
        });
    }

    /// Records an answer obtained outside the background tasks.
    pub fn record(&self, answer: Answer) {
        lock(&self.logs.answers).push(answer);
    }

    pub async fn stop(mut self) -> (Vec<Post>, Vec<Answer>) {
        self.stopper.finish().await;
        let posts = std::mem::take(&mut *lock(&self.logs.posts));
        let answers = std::mem::take(&mut *lock(&self.logs.answers));
        (posts, answers)
    }
}

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

#[derive(Debug)]
pub enum HandshakeError {
    Status(u16),
    Other,
}

/// Opens `/box-users/{id}/ws` and waits for `ready`.
pub async fn open_socket(user: &User) -> Result<Ws, HandshakeError> {
    let other = |_: &dyn std::fmt::Display| HandshakeError::Other;
    let mut req = format!("ws://127.0.0.1:{REALTIME_PORT}/box-users/{}/ws", user.id)
        .into_client_request()
        .map_err(|e| other(&e))?;
    req.headers_mut().insert("Authorization", user.bearer().parse().map_err(|e| other(&e))?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.map_err(|e| match e {
        tokio_tungstenite::tungstenite::Error::Http(res) => HandshakeError::Status(res.status().as_u16()),
        e => other(&e),
    })?;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"ready\"") => return Ok(ws),
            Ok(Some(Ok(_))) => {}
            _ => return Err(HandshakeError::Other),
        }
    }
}

/// How a socket ended.
#[derive(Clone, Debug, PartialEq)]
pub enum WsEnd {
    Close(u16),
    /// The connection ended without a close frame.
    Dropped,
}

/// One connection of a listening socket.
#[derive(Clone, Debug)]
pub struct WsSession {
    pub ready: Instant,
    pub ended: Option<(Instant, WsEnd)>,
    /// `content.encrypted` of each `event.new` received, with the time it arrived.
    pub received: Vec<(Instant, String)>,
}

/// A socket kept open for a user: when it ends it is reopened every 100 ms, as a client would.
pub struct Listener {
    pub sessions: Arc<Mutex<Vec<WsSession>>>,
    stopper: Stopper,
}

impl Listener {
    pub async fn open(user: &User) -> anyhow::Result<Listener> {
        let first = open_socket(user).await.map_err(|e| anyhow::anyhow!("opening a socket: {e:?}"))?;
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let mut stopper = Stopper::new();
        let (s, mut stop, user) = (sessions.clone(), stopper.stop(), user.clone());
        stopper.spawn(async move {
            let mut ws = Some(first);
            while !stop.is_set() {
                let Some(mut socket) = ws.take() else {
                    stop.unless(tokio::time::sleep(Duration::from_millis(100))).await;
                    let opened = stop.unless(tokio::time::timeout(CLIENT_TIMEOUT, open_socket(&user))).await;
                    ws = opened.and_then(Result::ok).and_then(Result::ok);
                    continue;
                };
                lock(&s).push(WsSession { ready: Instant::now(), ended: None, received: Vec::new() });
                let end = loop {
                    let Some(msg) = stop.unless(socket.next()).await else { return };
                    match msg {
                        Some(Ok(Message::Text(t))) => {
                            let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                            if v["type"] == "event.new" {
                                if let Some(p) = v["object"]["content"]["encrypted"].as_str() {
                                    if let Some(last) = lock(&s).last_mut() {
                                        last.received.push((Instant::now(), p.to_owned()));
                                    }
                                }
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            break WsEnd::Close(frame.map_or(1005, |f| u16::from(f.code)))
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break WsEnd::Dropped,
                    }
                };
                if let Some(last) = lock(&s).last_mut() {
                    last.ended = Some((Instant::now(), end));
                }
            }
        });
        Ok(Listener { sessions, stopper })
    }

    pub async fn stop(mut self) -> Vec<WsSession> {
        self.stopper.finish().await;
        let s = lock(&self.sessions).clone();
        s
    }
}

/// Resident memory of the services, sampled every 100 ms: the highest reading of each.
pub struct MemorySampler {
    pub max: Arc<Mutex<HashMap<&'static str, u64>>>,
    stopper: Stopper,
}

impl MemorySampler {
    pub fn start(pids: Pids) -> MemorySampler {
        let max: Arc<Mutex<HashMap<&'static str, u64>>> = Arc::default();
        let mut stopper = Stopper::new();
        let (m, mut stop) = (max.clone(), stopper.stop());
        stopper.spawn(async move {
            while !stop.is_set() {
                let now: Vec<(&'static str, u32)> = lock(&pids).iter().map(|(k, v)| (*k, *v)).collect();
                for (name, pid) in now {
                    let r = crate::infra::rss(pid);
                    let mut m = lock(&m);
                    let e = m.entry(name).or_insert(0);
                    *e = (*e).max(r);
                }
                stop.unless(tokio::time::sleep(Duration::from_millis(100))).await;
            }
        });
        MemorySampler { max, stopper }
    }

    pub async fn stop(mut self) -> HashMap<&'static str, u64> {
        self.stopper.finish().await;
        let m = lock(&self.max).clone();
        m
    }
}

/// A websocket opened by hand, for frames no library would send.
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// A server frame: opcode, FIN, payload.
#[derive(Debug, Clone)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// The header of a masked client frame. The mask key is zero, so the payload goes as is.
pub fn frame_header(opcode: u8, fin: bool, rsv1: bool, len: u64) -> Vec<u8> {
    let mut h = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len <= u64::from(u16::MAX) {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

pub fn frame(opcode: u8, fin: bool, rsv1: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = frame_header(opcode, fin, rsv1, payload.len() as u64);
    f.extend_from_slice(payload);
    f
}

impl RawWs {
    /// Handshakes by hand and reads up to the `ready` frame.
    pub async fn open(user: &User) -> anyhow::Result<RawWs> {
        let stream = TcpStream::connect(("127.0.0.1", REALTIME_PORT)).await?;
        RawWs::handshake(stream, user).await
    }

    /// The same over a connection whose receive buffer is `bytes` small, for a client that reads slowly.
    pub async fn open_with_recv_buffer(user: &User, bytes: u32) -> anyhow::Result<RawWs> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(bytes)?;
        let stream = socket.connect(([127, 0, 0, 1], REALTIME_PORT).into()).await?;
        RawWs::handshake(stream, user).await
    }

    async fn handshake(mut stream: TcpStream, user: &User) -> anyhow::Result<RawWs> {
        let req = format!(
            "GET /box-users/{}/ws HTTP/1.1\r\nHost: 127.0.0.1:{REALTIME_PORT}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: {}\r\n\r\n",
            user.id,
            user.bearer()
        );
        stream.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let head_end = loop {
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await??;
            if n == 0 {
                bail!("connection closed during the handshake");
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        if !buf.starts_with(b"HTTP/1.1 101") {
            bail!("handshake refused: {}", String::from_utf8_lossy(&buf[..head_end]));
        }
        buf.drain(..head_end);
        let mut ws = RawWs { stream, buf };
        let ready = ws.next_frame(Duration::from_secs(5)).await?.context("no ready frame")?;
        if !String::from_utf8_lossy(&ready.payload).contains("ready") {
            bail!("first frame is not ready");
        }
        Ok(ws)
    }

    /// The next server frame within `wait`; `None` when the connection closed or nothing came.
    pub async fn next_frame(&mut self, wait: Duration) -> anyhow::Result<Option<Frame>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Ok(Some(frame));
            }
            let mut chunk = [0u8; 65536];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Err(_) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub async fn stream_write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        tokio::time::timeout(Duration::from_secs(5), self.stream.write_all(bytes)).await??;
        Ok(())
    }

    /// Writes `header`, then up to `total` payload bytes in 1 MiB pieces, stopping when the
    /// server stops taking them (a piece waits longer than `stuck`, or the connection fails).
    /// Returns the payload bytes written.
    pub async fn write_bounded(&mut self, header: &[u8], total: usize, stuck: Duration) -> usize {
        if self.stream_write(header).await.is_err() {
            return 0;
        }
        let piece = vec![b' '; 1 << 20];
        let mut sent = 0;
        while sent < total {
            let n = piece.len().min(total - sent);
            match tokio::time::timeout(stuck, self.stream.write_all(&piece[..n])).await {
                Ok(Ok(())) => sent += n,
                _ => break,
            }
        }
        sent
    }

    /// Every frame that arrives within `wait`.
    pub async fn frames_for(&mut self, wait: Duration) -> anyhow::Result<Vec<Frame>> {
        let deadline = Instant::now() + wait;
        let mut frames = Vec::new();
        while let Some(f) = self.next_frame(deadline.saturating_duration_since(Instant::now())).await? {
            frames.push(f);
        }
        Ok(frames)
    }

    /// Frames until a close frame (returned), the end of the connection or `wait`.
    pub async fn until_close(&mut self, wait: Duration) -> anyhow::Result<(Vec<Frame>, Option<u16>)> {
        let deadline = Instant::now() + wait;
        let mut frames = Vec::new();
        while let Some(f) = self.next_frame(deadline.saturating_duration_since(Instant::now())).await? {
            if let Some(code) = f.close_code() {
                return Ok((frames, Some(code)));
            }
            frames.push(f);
        }
        Ok((frames, None))
    }
}

/// Sends `head` (a request whose body is announced but not sent) and waits: how long the server
/// took to answer or close the connection, `None` if it still held it after `wait`.
pub async fn stall(port: u16, head: String, wait: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream.write_all(head.as_bytes()).await.ok()?;
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Ok(_) => Some(start.elapsed()),
        Err(_) => None,
    }
}

fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let (len, mut at) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().ok()?), 10),
        126 | 127 => return None,
        n => (u64::from(n), 2),
    };
    if buf[1] & 0x80 != 0 {
        at += 4;
    }
    let end = at + usize::try_from(len).ok()?;
    if buf.len() < end {
        return None;
    }
    Some((Frame { opcode, payload: buf[at..end].to_vec() }, end))
}
