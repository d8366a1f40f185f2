//! Starting the service and talking to it like a client does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::IdentityId;
use futures_util::{SinkExt, StreamExt};
use realtime::config::Settings;
use realtime::startup::{AppHandle, Application};
use serde_json::Value;
use test_support::{redis_url, Session, TestKeys};
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

    /// Opens a socket with `?access_token=` and waits for `ready`.
    pub async fn open(&self, s: &Session) -> Ws {
        let url = format!("{}?access_token={}", self.ws_url(s.identity), s.token);
        let (mut ws, response) = tokio_tungstenite::connect_async(url).await.expect("handshake");
        assert_eq!(response.status().as_u16(), 101);
        expect_ready(&mut ws, s.identity).await;
        ws
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

pub fn settings(keys: &TestKeys) -> Settings {
    Settings::with_defaults(vec![keys.public_file.path().to_path_buf()], redis_url())
}

pub async fn spawn_app() -> TestApp {
    let keys = Arc::new(TestKeys::generate());
    spawn_app_with(keys, |_| {}).await
}

pub async fn spawn_app_with(keys: Arc<TestKeys>, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        web_kit::telemetry::init("pretty");
    }
    let mut s = settings(&keys);
    tweak(&mut s);
    test_support::mark_revocations_loaded(&s.redis_url).await;
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

pub async fn expect_ready(ws: &mut Ws, identity: IdentityId) {
    let text = next_text(ws, WAIT).await.expect("ready");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v, serde_json::json!({"type": "ready", "object": {"identity_id": identity.to_string()}}));
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
