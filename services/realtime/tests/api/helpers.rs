//! Starting the service and talking to it like a client does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use domain::IdentityId;
use futures_util::{SinkExt, StreamExt};
use realtime::config::Settings;
use realtime::startup::{AppHandle, Application};
use serde_json::Value;
use test_support::{redis_url, Session, TestKeys};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestApp {
    pub port: u16,
    pub handle: AppHandle,
    pub keys: Arc<TestKeys>,
}

impl TestApp {
    pub fn ws_url(&self, id: impl std::fmt::Display) -> String {
        format!("ws://127.0.0.1:{}/box-users/{id}/ws", self.port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn session(&self) -> Session {
        self.keys.session(IdentityId::new_v4())
    }

    /// Opens a socket with `?access_token=` through the typed client, checks its `ready`, and
    /// hands back the stream (the tests read frames as text).
    pub async fn open(&self, s: &Session) -> Ws {
        let socket = self.socket(s, None).await;
        assert_eq!((socket.ready.identity_id, socket.ready.recovered), (s.identity, None), "{:?}", socket.ready);
        socket.into_inner()
    }

    /// A socket with `?access_token=` (and `?since=`) through the typed client, past its `ready`.
    pub async fn socket(&self, s: &Session, since: Option<&str>) -> boxes_client::Socket {
        let base = self.http_url("");
        let socket = boxes_client::Socket::connect_with_query_token(&base, s.identity, &s.token, since);
        socket.await.expect("handshake and ready")
    }

    /// A GET carrying the websocket upgrade headers, answered as plain HTTP when refused.
    pub fn upgrade_request(&self, url: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .get(url.replace("ws://", "http://"))
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    }
}

/// The service's own defaults, on port 0 with two workers, trusting `keys`.
pub fn settings(keys: &TestKeys) -> Settings {
    Settings::try_parse_from([
        "realtime",
        "--bind-addr=127.0.0.1:0",
        &format!("--redis-url={}", redis_url()),
        &format!("--jwt-public-key-file={}", keys.public_file.path().display()),
        "--workers=2",
    ])
    .unwrap()
}

pub async fn spawn_app() -> TestApp {
    let keys = Arc::new(TestKeys::generate());
    spawn_app_with(keys, |_| {}).await
}

pub async fn spawn_app_with(keys: Arc<TestKeys>, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        web_kit::telemetry::init("realtime", "pretty");
    }
    let mut s = settings(&keys);
    tweak(&mut s);
    test_support::mark_revocations_loaded(secrecy::ExposeSecret::expose_secret(&s.redis.url)).await;
    let app = Application::build(s).await.expect("build");
    let port = app.port();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp { port, handle, keys }
}

/// A refusal's status and its §4 JSON body.
pub async fn refused(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(content_type.starts_with("application/json"), "content type {content_type}");
    (status, response.json().await.unwrap())
}

/// Reads `ready` (without `since`) and returns the history position it carries.
pub async fn expect_ready(ws: &mut Ws, identity: IdentityId) -> String {
    let v = ready_object(ws, identity).await;
    assert_eq!(v["recovered"], Value::Null, "{v}");
    v["position"].as_str().unwrap().to_owned()
}

/// Reads `ready` and returns its object, checked but for `recovered`.
pub async fn ready_object(ws: &mut Ws, identity: IdentityId) -> Value {
    let text = next_text(ws, WAIT).await.expect("ready");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "ready", "{v}");
    let object = v["object"].clone();
    assert_eq!(object.as_object().map(|o| o.len()), Some(3), "{v}");
    assert_eq!(object["identity_id"], identity.to_string());
    assert!(domain::realtime::Position::parse(object["position"].as_str().unwrap()).is_some(), "{v}");
    object
}

/// Publishes as boxes does: into the identity's history and to its channel. Returns the position.
pub async fn publish_recorded(identity: IdentityId, payload: &str, limits: web_kit::history::HistoryLimits) -> String {
    let mut conn = test_support::redis_conn().await;
    web_kit::history::publish_cmd(web_kit::redis::KeyScheme::Single, identity, payload, limits)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// `payload` as delivered with its history position.
pub fn positioned(payload: &str, position: &str) -> String {
    domain::realtime::with_position(payload, position)
}

/// The next text frame, skipping pings and pongs; `None` on timeout, close or error.
pub async fn next_text(ws: &mut Ws, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_) | Message::Frame(_)) => continue,
            Ok(Message::Close(_)) | Err(_) => return None,
        }
    }
}

/// Reads until the close frame and returns its code and the number of texts read before it.
pub async fn expect_close(ws: &mut Ws, wait: Duration) -> (u16, usize) {
    let deadline = Instant::now() + wait;
    let mut texts = 0;
    loop {
        let left = deadline.checked_duration_since(Instant::now()).expect("no close frame in time");
        match tokio::time::timeout(left, ws.next()).await.expect("no close frame in time") {
            Some(Ok(Message::Close(Some(frame)))) => return (u16::from(frame.code), texts),
            Some(Ok(Message::Close(None))) => return (1005, texts),
            Some(Ok(Message::Text(_))) => texts += 1,
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("socket error before the close frame: {e}"),
            None => panic!("socket ended without a close frame"),
        }
    }
}

/// Asserts nothing but control frames arrives for `wait`.
pub async fn expect_silence(ws: &mut Ws, wait: Duration) {
    if let Some(text) = next_text(ws, wait).await {
        panic!("unexpected message: {text}");
    }
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.expect("send");
}

pub async fn publish(identity: IdentityId, payload: &str) {
    let mut conn = test_support::redis_conn().await;
    let _: i64 =
        redis::cmd("PUBLISH").arg(format!("user_{identity}:ws")).arg(payload).query_async(&mut conn).await.unwrap();
}

/// Handshake through tungstenite with extra headers; the HTTP status of the answer.
pub async fn handshake_status(url: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("handshake failed without an HTTP answer: {e}"),
    }
}

/// Waits until `cond` holds, polling.
pub async fn eventually(wait: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// A masked client frame: `first` is the first header byte (FIN, RSV1-3, opcode), the length
/// field is whatever `payload` needs.
pub fn raw_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![first];
    frame.extend(length_field(payload.len() as u64));
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// The second header byte (MASK set) and extended length of a client frame of `len` bytes.
pub fn length_field(len: u64) -> Vec<u8> {
    match len {
        n @ 0..=125 => vec![0x80 | n as u8],
        n @ 126..=0xffff => [&[0x80 | 126][..], &(n as u16).to_be_bytes()].concat(),
        n => [&[0x80 | 127][..], &n.to_be_bytes()].concat(),
    }
}

pub fn handshake_request_at(port: u16, s: &Session) -> Vec<u8> {
    format!(
        "GET /box-users/{}/ws?access_token={} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        s.identity, s.token
    )
    .into_bytes()
}

/// Sends `first` (the handshake request, possibly followed by frames), reads the response head
/// and asserts the 101. Returns the stream and whatever was read past the head.
pub async fn raw_handshake_at(port: u16, first: &[u8]) -> (TcpStream, Vec<u8>) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(first).await.unwrap();
    let mut read = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "connection closed during the handshake");
        read.extend_from_slice(&chunk[..n]);
        if let Some(i) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&read[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
    (tcp, read.split_off(head_end))
}

/// Reads server frames (unmasked) from `reader`, `read` being what was already read, until the
/// close frame; its code (1005 without one), or `None` if the stream ends or `wait` passes first.
pub async fn raw_close_code(reader: &mut (impl AsyncRead + Unpin), mut read: Vec<u8>, wait: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Whole frames at the front of `read`.
        while read.len() >= 2 {
            let (opcode, short) = (read[0] & 0x0f, usize::from(read[1] & 0x7f));
            let (start, len) = match short {
                126 if read.len() >= 4 => (4, usize::from(u16::from_be_bytes([read[2], read[3]]))),
                127 if read.len() >= 10 => (10, u64::from_be_bytes(read[2..10].try_into().unwrap()) as usize),
                126 | 127 => break,
                n => (2, n),
            };
            if read.len() < start + len {
                break;
            }
            if opcode == 0x8 {
                let payload = &read[start..start + len];
                return Some(if len >= 2 { u16::from_be_bytes([payload[0], payload[1]]) } else { 1005 });
            }
            read.drain(..start + len);
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => read.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// A TCP proxy in front of the test Redis that can hold back what one client (known by its
/// address) sends, while every other connection flows: a way to delay one Redis command of the
/// service, such as the subscriber's `SUBSCRIBE`, without touching the shared Redis.
pub struct RedisProxy {
    pub url: String,
    held: Arc<std::sync::Mutex<Option<std::net::SocketAddr>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl RedisProxy {
    pub async fn start() -> Self {
        let info = redis::Client::open(redis_url()).unwrap().get_connection_info().clone();
        let redis::ConnectionAddr::Tcp(host, port) = info.addr else { panic!("the test Redis is not on TCP") };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}/{}", listener.local_addr().unwrap(), info.redis.db);
        let held = Arc::new(std::sync::Mutex::new(None));
        let held_by_conns = Arc::clone(&held);
        let accept = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, peer)) = listener.accept().await {
                let Ok(server) = TcpStream::connect((host.as_str(), port)).await else { continue };
                let held = Arc::clone(&held_by_conns);
                conns.spawn(async move {
                    let (mut client_rx, mut client_tx) = client.into_split();
                    let (mut server_rx, mut server_tx) = server.into_split();
                    let upstream = async {
                        let mut chunk = vec![0u8; 16 * 1024];
                        loop {
                            let n = match client_rx.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            while *held.lock().unwrap() == Some(peer) {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            if server_tx.write_all(&chunk[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        _ = upstream => {}
                        _ = tokio::io::copy(&mut server_rx, &mut client_tx) => {}
                    }
                });
            }
        });
        RedisProxy { url, held, accept }
    }

    /// Holds back what `peer` sends from now on, until [`RedisProxy::release`].
    pub fn hold(&self, peer: std::net::SocketAddr) {
        *self.held.lock().unwrap() = Some(peer);
    }

    pub fn release(&self) {
        *self.held.lock().unwrap() = None;
    }
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// An envelope as JSON without the history position realtime adds to what it records.
pub fn without_position(text: &str) -> Value {
    let mut v: Value = serde_json::from_str(text).unwrap();
    if let Some(o) = v.as_object_mut() {
        o.remove("position");
    }
    v
}
