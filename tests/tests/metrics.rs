//! Prometheus metrics across the separately started binaries: `/metrics` of boxes (internal
//! listener), realtime and auth-bridge (`METRICS_BIND_ADDR`) is scraped before and after a story
//! (logins that succeed, fail and are rate limited, sockets that open, receive, recover, close for
//! several reasons, posts, and a Redis that goes away), every answer parses as the Prometheus text
//! format, and each family moves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use e2e::{temp_file, Service};
use futures_util::{SinkExt, StreamExt};
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{json, Value};
use test_support::TestKeys;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A Redis of this test's own, so stopping it disturbs no other test.
struct OwnRedis {
    child: Child,
    url: String,
}

impl OwnRedis {
    async fn start() -> OwnRedis {
        let port = e2e::free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        // Owned at once, so a failed start still stops it (Drop).
        let redis = OwnRedis { child, url: format!("redis://127.0.0.1:{port}") };
        let client = redis::Client::open(redis.url.as_str()).unwrap();
        for _ in 0..100 {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING").query_async::<String>(&mut c).await.is_ok() {
                    return redis;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start");
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

struct System {
    redis: OwnRedis,
    _hostapp: Service,
    boxes: Service,
    realtime: Service,
    bridge: Service,
    /// `/metrics` of boxes, realtime and auth-bridge.
    boxes_metrics: String,
    realtime_metrics: String,
    bridge_metrics: String,
    _files: Vec<e2e::tempfile_lite::TempFile>,
    _keys: TestKeys,
}

async fn start_system() -> System {
    let redis = OwnRedis::start().await;
    test_support::mark_revocations_loaded(&redis.url).await;
    let database_url = test_support::fresh_database().await.unwrap();
    let keys = TestKeys::generate();
    let private = keys.private_file.path().display().to_string();
    let public = keys.public_file.path().display().to_string();
    let internal = format!("internal-{}", uuid::Uuid::new_v4().simple());
    let env =
        |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>();

    let mut hostapp = Service::start(
        "reference-hostapp",
        &env(&[
            ("REF_CLIENT_ID", "ref-hostapp"),
            ("REF_SECRET", "ref-secret"),
            ("REF_APP_IDS", "boxes-miniapp"),
            ("REF_STATIC_CODES", "true"),
        ]),
    )
    .unwrap();
    hostapp.wait_ready("/healthz").await.unwrap();
    let internal_addr = format!("127.0.0.1:{}", e2e::free_port());
    let mut boxes = Service::start(
        "boxes",
        &env(&[
            ("DATABASE_URL", &database_url),
            ("REDIS_URL", &redis.url),
            ("JWT_PUBLIC_KEY_FILE", &public),
            ("INTERNAL_API_TOKEN", &internal),
            ("INTERNAL_BIND_ADDR", &internal_addr),
        ]),
    )
    .unwrap();
    let mut realtime = Service::start(
        "realtime",
        &env(&[("REDIS_URL", &redis.url), ("JWT_PUBLIC_KEY_FILE", &public), ("METRICS_BIND_ADDR", "127.0.0.1:0")]),
    )
    .unwrap();
    let registry = temp_file(&format!(
        r#"[[hostapp]]
client_id = "ref-hostapp"
hostapp_client_id = "ref-hostapp"
hostapp_secret_key = "ref-secret"
token_prefix = "Token"
get_access_token_url = "{h}/hostapp/get-access-token"
get_user_data_url = "{h}/hostapp/get-user-data"
user_data_method = "GET"
allowed_app_ids = ["boxes-miniapp"]
timeout_ms = 5000
"#,
        h = hostapp.url()
    ));
    boxes.wait_ready("/readyz").await.unwrap();
    realtime.wait_ready("/readyz").await.unwrap();
    let mut bridge = Service::start(
        "auth-bridge",
        &env(&[
            ("DATABASE_URL", &database_url),
            ("REDIS_URL", &redis.url),
            ("JWT_PRIVATE_KEY_FILE", &private),
            ("JWT_PUBLIC_KEY_FILE", &public),
            ("INTERNAL_API_TOKEN", &internal),
            ("BOXES_INTERNAL_URL", &format!("http://{internal_addr}")),
            ("HOSTAPPS_CONFIG", &registry.path.display().to_string()),
            ("COOKIE_SECURE", "false"),
            ("RATE_LOGIN_PER_ADDRESS", "4/600"),
            ("METRICS_BIND_ADDR", "127.0.0.1:0"),
        ]),
    )
    .unwrap();
    bridge.wait_ready("/readyz").await.unwrap();
    let (realtime_metrics, bridge_metrics) = (metrics_url(&realtime), metrics_url(&bridge));
    System {
        redis,
        _hostapp: hostapp,
        boxes,
        realtime,
        bridge,
        boxes_metrics: format!("http://{internal_addr}/metrics"),
        realtime_metrics,
        bridge_metrics,
        _files: vec![registry],
        _keys: keys,
    }
}

/// The `/metrics` URL of a service started with `METRICS_BIND_ADDR=127.0.0.1:0`, from the port
/// its `metrics listening` log line gives.
fn metrics_url(service: &Service) -> String {
    let port = service
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "metrics listening")
        .and_then(|l| l["fields"]["port"].as_u64())
        .unwrap_or_else(|| panic!("{} logged no metrics port", service.name));
    format!("http://127.0.0.1:{port}/metrics")
}

/// One sample: the family's sample name, its labels, its value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text exposition format strictly: `# HELP` and `# TYPE` lines, then
/// samples `name{label="value",...} value`, each sample after its family's `# TYPE`.
fn parse(text: &str) -> Vec<Sample> {
    let sample = regex::Regex::new(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$").unwrap();
    let label = regex::Regex::new(r#"^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)"#).unwrap();
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("bad TYPE line {line}"));
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            typed.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let caps = sample.captures(line).unwrap_or_else(|| panic!("not a sample line: {line}"));
        let name = caps[1].to_owned();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.get(*f).is_some_and(|k| k == "histogram")))
            .unwrap_or(&name);
        assert!(typed.contains_key(family), "sample before its # TYPE: {line}");
        let mut labels = HashMap::new();
        let mut rest = caps.get(2).map_or("", |m| m.as_str());
        while !rest.is_empty() {
            let l = label.captures(rest).unwrap_or_else(|| panic!("bad labels in {line}"));
            labels.insert(l[1].to_owned(), l[2].to_owned());
            rest = &rest[l[0].len()..];
        }
        let value: f64 = match &caps[3] {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        samples.push(Sample { name, labels, value });
    }
    samples
}

async fn scrape(url: &str) -> Vec<Sample> {
    let res = reqwest::get(url).await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    let kind = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{url}: {kind}");
    parse(&res.text().await.unwrap())
}

/// The sum of the samples named `name` whose labels include `with`.
fn total(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && with.iter().all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v)))
        .map(|s| s.value)
        .sum()
}

fn has(samples: &[Sample], name: &str) -> bool {
    samples.iter().any(|s| s.name == name)
}

/// Fails unless the total of `name` with `with` grew from `before` to `after`.
#[track_caller]
fn moved(service: &str, before: &[Sample], after: &[Sample], name: &str, with: &[(&str, &str)]) {
    let (b, a) = (total(before, name, with), total(after, name, with));
    assert!(a > b, "{service}: {name}{with:?} did not move ({b} -> {a})");
}

async fn login(sys: &System, http: &reqwest::Client, code: &str) -> reqwest::Response {
    http.post(format!("{}/auth/login", sys.bridge.url()))
        .json(&json!({"auth_code": code, "app_id": "boxes-miniapp", "client_id": "ref-hostapp"}))
        .send()
        .await
        .unwrap()
}

/// The session cookies, the CSRF token and the identity of a successful login.
async fn session(res: reqwest::Response) -> (String, String, String) {
    assert_eq!(res.status(), 200);
    let cookies: Vec<String> = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .filter(|c| c.starts_with("accesstoken=") || c.starts_with("tokentype="))
        .collect();
    let body: Value = res.json().await.unwrap();
    (
        cookies.join("; "),
        body["csrf_token"].as_str().unwrap().to_owned(),
        body["identity_id"].as_str().unwrap().to_owned(),
    )
}

async fn socket(sys: &System, identity: &str, cookies: &str, since: Option<&str>) -> (Ws, Value) {
    let query = since.map(|s| format!("?since={s}")).unwrap_or_default();
    let mut req =
        format!("ws://127.0.0.1:{}/box-users/{identity}/ws{query}", sys.realtime.port).into_client_request().unwrap();
    req.headers_mut().insert(COOKIE, cookies.parse().unwrap());
    let (mut ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(res.status(), 101);
    let ready = next_of(&mut ws, "ready").await;
    (ws, ready["object"].clone())
}

/// The next envelope of `kind`; fails after 5 s.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.unwrap_or_else(|_| panic!("no {kind} within 5 s")) {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == kind {
                    return v;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("socket ended while waiting for {kind}: {other:?}"),
        }
    }
}

/// The code of the close frame the server sends next; fails after 5 s.
async fn close_code(ws: &mut Ws) -> u16 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.expect("a close frame within 5 s") {
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Waits until `check` holds for a scrape of `url` (closes are counted once the socket task ends).
async fn eventually(url: &str, check: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let samples = scrape(url).await;
        if check(&samples) || tokio::time::Instant::now() > deadline {
            return samples;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_family_moves_as_the_story_runs() {
    let mut sys = start_system().await;
    let http = reqwest::Client::new();
    let (boxes0, realtime0, bridge0) =
        (scrape(&sys.boxes_metrics).await, scrape(&sys.realtime_metrics).await, scrape(&sys.bridge_metrics).await);

    // Logins: two succeed, one is refused by the host app, then the per-address limit (4 per
    // 10 min) refuses.
    let (alice_cookies, alice_csrf, alice) = session(login(&sys, &http, "code-alice").await).await;
    let (bob_cookies, _, bob) = session(login(&sys, &http, "code-bob").await).await;
    assert_eq!(login(&sys, &http, "no-such-code").await.status(), 401);
    let mut refused = false;
    for _ in 0..5 {
        if login(&sys, &http, "no-such-code").await.status() == 429 {
            refused = true;
            break;
        }
    }
    assert!(refused, "the login limit refused");

    // Sockets open; a post is delivered.
    let (mut alice_ws, ready) = socket(&sys, &alice, &alice_cookies, None).await;
    let first_position = ready["position"].as_str().unwrap().to_owned();
    let (mut bob_ws, _) = socket(&sys, &bob, &bob_cookies, None).await;
    let open = scrape(&sys.realtime_metrics).await;
    assert!(total(&open, "realtime_open_sockets", &[]) >= 2.0, "{open:?}");
    assert!(total(&open, "realtime_connected_identities", &[]) >= 2.0);
    assert_eq!(total(&realtime0, "realtime_open_sockets", &[]), 0.0);

    let res = http
        .post(format!("{}/boxes", sys.boxes.url()))
        .header(COOKIE, &alice_cookies)
        .header("X-CSRF-Token", &alice_csrf)
        .json(&json!({"title": "Measured", "public_key": "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    next_of(&mut alice_ws, "event.new").await;

    // alice closes, reconnects from her first position (a hit: the post is replayed), then from a
    // position of no history of hers (a miss), then sends a frame over the size limit.
    alice_ws.close(None).await.unwrap();
    let (mut again, ready) = socket(&sys, &alice, &alice_cookies, Some(&first_position)).await;
    assert_eq!(ready["recovered"], true, "{ready}");
    again.close(None).await.unwrap();
    let (mut lost, ready) = socket(&sys, &alice, &alice_cookies, Some("1-0")).await;
    assert_eq!(ready["recovered"], false, "{ready}");
    lost.send(Message::Text("x".repeat(16 * 1024).into())).await.unwrap();
    assert_eq!(close_code(&mut lost).await, 1009);

    // Redis goes away: boxes' next post meets a failed Redis call, bob's socket closes with 1011.
    sys.redis.stop();
    let res = http
        .post(format!("{}/boxes", sys.boxes.url()))
        .header(COOKIE, &alice_cookies)
        .header("X-CSRF-Token", &alice_csrf)
        .json(&json!({"title": "Unheard", "public_key": "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw"}))
        .send()
        .await
        .unwrap();
    // Refused (503) or stored with its publish lost, as the Redis loss is seen first.
    assert!([201, 503].contains(&res.status().as_u16()), "{}", res.status());
    assert_eq!(close_code(&mut bob_ws).await, 1011);
    // Readiness pings Redis through the bounded call helper.
    for service in [&sys.boxes, &sys.bridge] {
        let res = http.get(format!("{}/readyz", service.url())).send().await.unwrap();
        assert_eq!(res.status(), 503, "{} is not ready without Redis", service.name);
    }
    http.get(format!("{}/healthz", sys.realtime.url())).send().await.unwrap();

    let boxes1 = scrape(&sys.boxes_metrics).await;
    let realtime1 = eventually(&sys.realtime_metrics, |s| {
        total(s, "realtime_socket_closes_total", &[("reason", "subscription_lost")]) > 0.0
            && total(s, "realtime_socket_closes_total", &[("reason", "too_big")]) > 0.0
    })
    .await;
    let bridge1 = scrape(&sys.bridge_metrics).await;

    // boxes: requests by route pattern (never the raw path), the pool, Redis.
    let post = [("service", "boxes"), ("route", "/boxes"), ("method", "POST"), ("status", "201")];
    moved("boxes", &boxes0, &boxes1, "http_requests_total", &post);
    moved("boxes", &boxes0, &boxes1, "http_request_duration_seconds_count", &post[..3]);
    let internal = [("service", "boxes-internal"), ("route", "/internal/identities/{id}")];
    moved("boxes", &boxes0, &boxes1, "http_requests_total", &internal);
    assert!(!boxes1.iter().any(|s| s.labels.get("route").is_some_and(|r| r.contains(&alice))), "raw path as a label");
    moved("boxes", &boxes0, &boxes1, "db_pool_wait_seconds_count", &[]);
    assert!(total(&boxes1, "db_pool_size", &[]) >= 1.0);
    assert!(has(&boxes1, "db_pool_available") && has(&boxes1, "db_pool_waiting"));
    moved("boxes", &boxes0, &boxes1, "redis_call_duration_seconds_count", &[]);
    moved("boxes", &boxes0, &boxes1, "redis_errors_total", &[]);

    // realtime: sockets (above), deliveries, closes by reason, recoveries.
    moved("realtime", &realtime0, &realtime1, "realtime_deliveries_total", &[]);
    for reason in ["client_closed", "too_big", "subscription_lost"] {
        moved("realtime", &realtime0, &realtime1, "realtime_socket_closes_total", &[("reason", reason)]);
    }
    for outcome in ["hit", "miss"] {
        moved("realtime", &realtime0, &realtime1, "realtime_recoveries_total", &[("outcome", outcome)]);
    }
    moved("realtime", &realtime0, &realtime1, "http_requests_total", &[("service", "realtime"), ("route", "/healthz")]);
    moved("realtime", &realtime0, &realtime1, "redis_call_duration_seconds_count", &[]);
    assert_eq!(total(&realtime1, "realtime_open_sockets", &[]), 0.0);

    // auth-bridge: logins by outcome, the refusal, requests, pool and Redis.
    for outcome in ["success", "invalid_auth_code", "rate_limited"] {
        moved("auth-bridge", &bridge0, &bridge1, "auth_logins_total", &[("flow", "login"), ("outcome", outcome)]);
    }
    moved("auth-bridge", &bridge0, &bridge1, "ratelimit_refusals_total", &[("limit", "login_per_address")]);
    let login = [("service", "auth-bridge"), ("route", "/auth/login"), ("method", "POST")];
    moved("auth-bridge", &bridge0, &bridge1, "http_requests_total", &[login.as_slice(), &[("status", "429")]].concat());
    moved("auth-bridge", &bridge0, &bridge1, "http_request_duration_seconds_count", &login);
    moved("auth-bridge", &bridge0, &bridge1, "db_pool_wait_seconds_count", &[]);
    moved("auth-bridge", &bridge0, &bridge1, "redis_call_duration_seconds_count", &[]);
    moved("auth-bridge", &bridge0, &bridge1, "redis_errors_total", &[]);

    // Nothing else is served on the metrics listeners.
    let res = http.get(sys.realtime_metrics.replace("/metrics", "/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let _ = (&sys.realtime, &sys.bridge);
}

#[tokio::test]
async fn metrics_false_records_nothing() {
    let redis = test_support::redis_url();
    test_support::mark_revocations_loaded(&redis).await;
    let keys = TestKeys::generate();
    let public = keys.public_file.path().display().to_string();
    let env: HashMap<String, String> = [
        ("REDIS_URL", redis.as_str()),
        ("JWT_PUBLIC_KEY_FILE", &public),
        ("METRICS_BIND_ADDR", "127.0.0.1:0"),
        ("METRICS", "false"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut realtime = Service::start("realtime", &env).unwrap();
    realtime.wait_ready("/readyz").await.unwrap();
    for _ in 0..3 {
        reqwest::get(format!("{}/healthz", realtime.url())).await.unwrap();
    }
    let samples = scrape(&metrics_url(&realtime)).await;
    assert_eq!(total(&samples, "http_requests_total", &[]), 0.0, "{samples:?}");
    assert!(has(&samples, "realtime_deliveries_total"), "the families are still shown");
}
