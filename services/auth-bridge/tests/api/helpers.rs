//! Test harness: auth-bridge in-process on port 0 against a fresh database, the real Redis, the
//! real reference hostapp (also in-process), `wiremock` servers that play the boxes internal API
//! and mock hostapps, and a raw HTTP server for a hostapp that misbehaves below HTTP (a body
//! without a length, a dropped connection).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_bridge::config::{RateSettings, Settings};
use auth_bridge::startup::Application;
use clap::Parser;
use serde_json::{json, Value};
use test_support::TestKeys;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{any, path};
use wiremock::{Mock, ResponseTemplate};

pub const INTERNAL_TOKEN: &str = "internal-test-token-0123456789abcdef";
pub const APP_ID: &str = "boxes-miniapp";
pub const OTHER_SECRET: &str = "other-secret";
/// The Connect secret of [`APP_ID`], given to every test app through the environment.
pub const CONNECT_SECRET: &str = "connect-secret-of-boxes-miniapp";

/// One request a mock server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

type Responder = dyn Fn(&Recorded) -> Vec<u8> + Send + Sync;

impl From<&wiremock::Request> for Recorded {
    fn from(r: &wiremock::Request) -> Self {
        let headers = r.headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned())).collect();
        Recorded { method: r.method.to_string(), path: r.url.path().to_owned(), headers, body: r.body.clone() }
    }
}

/// Every request `server` received, in order.
pub async fn recorded(server: &wiremock::MockServer) -> Vec<Recorded> {
    server.received_requests().await.unwrap_or_default().iter().map(Recorded::from).collect()
}

/// A 200 answer with `body` as JSON.
pub fn json_answer(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// A mock hostapp: `/token` answers `token`, any other path (`/user`) answers `user`.
pub async fn mock_hostapp(token: ResponseTemplate, user: ResponseTemplate) -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    Mock::given(path("/token")).respond_with(token).with_priority(1).mount(&server).await;
    Mock::given(any()).respond_with(user).mount(&server).await;
    server
}

/// A raw HTTP/1.1 server: records every request and writes whatever bytes the responder returns,
/// then closes the connection.
#[derive(Clone)]
pub struct RawServer {
    pub base: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl RawServer {
    pub async fn start(respond: impl Fn(&Recorded) -> Vec<u8> + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let recorded = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { break };
                let respond = respond.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut socket).await else { return };
                    recorded.lock().unwrap().push(req.clone());
                    let out = respond(&req);
                    let _ = socket.write_all(&out).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        RawServer { base, requests }
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

pub async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Recorded { method, path, headers, body })
}

/// A complete HTTP response with a `Content-Length`.
pub fn http_response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A complete raw 200 answer with `body` as JSON.
pub fn json_response(body: &Value) -> Vec<u8> {
    http_response(200, "application/json", body.to_string().as_bytes())
}

/// A port nothing listens on.
pub async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// How the boxes internal API behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Internal {
    Ok,
    Fail500,
    Unreachable,
}

pub struct Options {
    pub internal: Internal,
    /// Extra `[[hostapp]]` entries appended to the registry.
    pub extra_hostapps: String,
    /// `timeout_ms` of the `ref-hostapp` entry.
    pub ref_timeout_ms: u64,
    /// How long the reference hostapp's `fail-timeout` waits.
    pub ref_delay_ms: u64,
    pub ref_user_data_method: &'static str,
    pub cookie_secure: bool,
    pub allowed_origins: Vec<String>,
    /// Another Redis than the shared one.
    pub redis_url: Option<String>,
    pub session_max_age: i64,
    /// Rate limits; `TRUSTED_PROXY_HOPS` is 1 so that each app's client has an address of its
    /// own ([`TestApp::address`]) in the shared Redis.
    pub rates: RateSettings,
    /// `verifies_identifiers` of the `ref-hostapp` entry.
    pub ref_verifies_identifiers: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            internal: Internal::Ok,
            extra_hostapps: String::new(),
            ref_timeout_ms: 5000,
            ref_delay_ms: 30_000,
            ref_user_data_method: "GET",
            cookie_secure: true,
            allowed_origins: vec!["https://host.example".to_owned()],
            redis_url: None,
            session_max_age: 2_592_000,
            rates: RateSettings { trusted_proxy_hops: 1, ..RateSettings::default() },
            ref_verifies_identifiers: false,
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub db_url: String,
    pub keys: TestKeys,
    /// boxes' internal API.
    pub internal: wiremock::MockServer,
    pub ref_base: String,
    pub settings: Settings,
    /// The client address this app's `http` client presents in `X-Forwarded-For`.
    pub address: String,
    registry_file: std::path::PathBuf,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        std::fs::remove_file(&self.registry_file).ok();
    }
}

/// The reference host app's own defaults, on port 0.
pub fn reference_settings() -> reference_hostapp::config::Settings {
    reference_hostapp::config::Settings::try_parse_from(["reference-hostapp", "--bind-addr=127.0.0.1:0"]).unwrap()
}

/// A hostapp registry entry in TOML.
pub fn hostapp_entry(
    client_id: &str,
    secret: &str,
    token_url: &str,
    user_url: &str,
    method: &str,
    timeout_ms: u64,
) -> String {
    format!(
        r#"
[[hostapp]]
client_id = "{client_id}"
hostapp_client_id = "{client_id}"
hostapp_secret_key = "{secret}"
token_prefix = "Token"
get_access_token_url = "{token_url}"
get_user_data_url = "{user_url}"
user_data_method = "{method}"
allowed_app_ids = ["{APP_ID}"]
timeout_ms = {timeout_ms}
"#
    )
}

/// A hostapp played by a mock server at `base`: `/token` and `/user`.
pub fn mock_entry(client_id: &str, base: &str) -> String {
    hostapp_entry(client_id, "mock-secret", &format!("{base}/token"), &format!("{base}/user"), "GET", 2000)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(o: Options) -> TestApp {
    spawn_app_with_limits(o, Default::default()).await
}

pub async fn spawn_app_with_limits(o: Options, limits: web_kit::limits::LimitSettings) -> TestApp {
    let mut ref_settings = reference_settings();
    ref_settings.timeout_delay_ms = o.ref_delay_ms;
    let reference = reference_hostapp::startup::Application::build(ref_settings).await.unwrap();
    let ref_base = format!("http://127.0.0.1:{}", reference.port());
    tokio::spawn(reference.run_until_stopped());

    let internal = wiremock::MockServer::start().await;
    let answer = match o.internal {
        Internal::Ok | Internal::Unreachable => ResponseTemplate::new(204),
        Internal::Fail500 => ResponseTemplate::new(500).set_body_string("boom"),
    };
    Mock::given(any()).respond_with(answer).mount(&internal).await;
    let internal_url = match o.internal {
        Internal::Unreachable => format!("http://127.0.0.1:{}", closed_port().await),
        _ => internal.uri(),
    };

    let mut registry = hostapp_entry(
        "ref-hostapp",
        "ref-secret",
        &format!("{ref_base}/hostapp/get-access-token"),
        &format!("{ref_base}/hostapp/get-user-data"),
        o.ref_user_data_method,
        o.ref_timeout_ms,
    );
    if o.ref_verifies_identifiers {
        registry.push_str("verifies_identifiers = true\n");
    }
    // Registered here with a secret the reference hostapp does not know: its calls get HTTP 401.
    registry.push_str(&hostapp_entry(
        "other-hostapp",
        OTHER_SECRET,
        &format!("{ref_base}/hostapp/get-access-token"),
        &format!("{ref_base}/hostapp/get-user-data"),
        "GET",
        2000,
    ));
    registry.push_str(&o.extra_hostapps);
    let registry_file = std::env::temp_dir().join(format!("hostapps-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&registry_file, registry).unwrap();

    // The same value in every test, so tests running in parallel cannot disagree.
    std::env::set_var(auth_bridge::registry::connect_secret_env_var(APP_ID), CONNECT_SECRET);
    let keys = TestKeys::generate();
    let db_url = test_support::fresh_database().await.unwrap();
    let redis_url = o.redis_url.clone().unwrap_or_else(test_support::redis_url);
    let mut settings = Settings::try_parse_from([
        "auth-bridge",
        "--bind-addr=127.0.0.1:0",
        &format!("--database-url={db_url}"),
        &format!("--redis-url={redis_url}"),
        &format!("--jwt-private-key-file={}", keys.private_file.path().display()),
        &format!("--jwt-public-key-file={}", keys.public_file.path().display()),
        &format!("--jwt-issuer={}", test_support::ISSUER),
        &format!("--session-max-age={}", o.session_max_age),
        &format!("--internal-api-token={INTERNAL_TOKEN}"),
        &format!("--boxes-internal-url={internal_url}"),
        &format!("--allowed-origins={}", o.allowed_origins.join(",")),
        &format!("--cookie-secure={}", o.cookie_secure),
        &format!("--hostapps-config={}", registry_file.display()),
    ])
    .unwrap();
    settings.limits = limits;
    settings.rates = o.rates.clone();
    let app = Application::build(settings.clone()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let address = random_address();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("X-Forwarded-For", address.parse().unwrap());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap();
    TestApp { base, http, db_url, keys, internal, ref_base, settings, address, registry_file }
}

/// An IPv4 address in 10.0.0.0/8 nobody else is likely to use at the same time.
pub fn random_address() -> String {
    let b = uuid::Uuid::new_v4().into_bytes();
    format!("10.{}.{}.{}", b[0], b[1], b[2])
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// auth-bridge's API through the typed client, presenting this app's client address.
    pub fn bridge(&self) -> boxes_client::Bridge {
        boxes_client::Bridge::new(self.http.clone(), &self.base)
    }

    /// A one-time auth code from the reference hostapp.
    pub async fn code_for(&self, reference: &str) -> String {
        let res = self
            .http
            .post(format!("{}/_test/auth-codes", self.ref_base))
            .json(&json!({"reference": reference}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["auth_code"].as_str().unwrap().to_owned()
    }

    pub async fn login_as(&self, client_id: &str, auth_code: &str) -> reqwest::Response {
        self.http
            .post(self.url("/auth/login"))
            .json(&json!({"auth_code": auth_code, "app_id": APP_ID, "client_id": client_id}))
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, auth_code: &str) -> reqwest::Response {
        self.login_as("ref-hostapp", auth_code).await
    }

    /// Logs `reference` in with a fresh one-time code and returns the 200 body.
    pub async fn login_ok(&self, reference: &str) -> Value {
        let code = self.code_for(reference).await;
        let res = self.login(&code).await;
        assert_eq!(res.status(), 200, "login of {reference}");
        res.json().await.unwrap()
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }

    pub async fn session_count(&self) -> i64 {
        self.db().await.query_one("SELECT count(*) FROM auth.sessions", &[]).await.unwrap().get(0)
    }

    /// The identity upserts the internal API received.
    pub async fn upserts(&self) -> Vec<Recorded> {
        recorded(&self.internal).await.into_iter().filter(|r| r.method == "PUT").collect()
    }
}

/// Error body checks: status, code, and the given details.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str, details: &[(&str, &str)]) -> Value {
    assert_eq!(res.status().as_u16(), status, "status");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(body["desc"].is_string() && body["origin"].is_string(), "{body}");
    for (k, v) in details {
        assert_eq!(body["details"][k], *v, "details.{k} in {body}");
    }
    body
}

/// Asserts a refusal of a typed call: its status, §4 code and the given details; the body.
#[track_caller]
pub fn assert_refused<T>(
    res: boxes_client::Result<T>,
    status: u16,
    code: domain::ErrorCode,
    details: &[(&str, &str)],
) -> domain::ErrorBody {
    let Err(err) = res else { panic!("expected a {status} refusal") };
    assert_eq!((err.status(), err.body().map(|b| b.code)), (Some(status), Some(code)), "{err}");
    let body = err.body().cloned().unwrap_or_else(|| panic!("no §4 body: {err}"));
    for (k, v) in details {
        assert_eq!(body.details.get(*k).map(String::as_str), Some(*v), "details.{k} in {body:?}");
    }
    body
}

/// `Set-Cookie` headers by cookie name.
pub fn set_cookies(res: &reqwest::Response) -> Vec<(String, String)> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_once('=').map(|(name, _)| (name.to_owned(), v.to_owned())))
        .collect()
}

pub fn cookie<'a>(cookies: &'a [(String, String)], name: &str) -> &'a str {
    cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {name} cookie"))
}

/// The value of a cookie in a `Set-Cookie` line.
pub fn cookie_value(line: &str) -> &str {
    line.split(';').next().and_then(|kv| kv.split_once('=')).map(|(_, v)| v).unwrap_or("")
}

pub const WAIT: Duration = Duration::from_secs(3);

/// The server-side credentials of a registered host app (`token_prefix = "Token"`).
pub fn host_app(client_id: &str, secret: &str) -> boxes_client::HostApp {
    boxes_client::HostApp::new(client_id, "Token", secret)
}
