//! Prometheus metrics across the separately started binaries: `/metrics` of boxes (internal
//! listener), realtime and auth-bridge (`METRICS_BIND_ADDR`) is scraped before and after a story
//! (logins that succeed, fail and are rate limited, sockets that open, receive, recover, close for
//! several reasons, posts, and a Redis that goes away), every answer parses as the Prometheus text
//! format, and each family moves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use boxes_client::body::NewBox;
use boxes_client::{health, Login, Socket};
use domain::realtime::types;
use e2e::system::{login_body, Options, System};
use e2e::Service;
use serde_json::Value;
use test_support::TestKeys;

/// How long a socket waits for what it expects.
const WAIT: Duration = Duration::from_secs(5);
const PUBLIC_KEY: &str = "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw";

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

struct Measured {
    redis: OwnRedis,
    sys: System,
    /// `/metrics` of boxes, realtime and auth-bridge.
    boxes_metrics: String,
    realtime_metrics: String,
    bridge_metrics: String,
}

async fn start_system() -> Measured {
    let redis = OwnRedis::start().await;
    test_support::mark_revocations_loaded(&redis.url).await;
    let metrics = ("METRICS_BIND_ADDR", "127.0.0.1:0");
    let sys = System::start_with(Options {
        redis_url: Some(&redis.url),
        realtime: &[metrics],
        bridge: &[("RATE_LOGIN_PER_ADDRESS", "4/600"), metrics],
        ..Options::default()
    })
    .await;
    let (realtime_metrics, bridge_metrics) = (metrics_url(&sys.realtime), metrics_url(&sys.bridge));
    Measured { boxes_metrics: format!("{}/metrics", sys.boxes_internal), realtime_metrics, bridge_metrics, redis, sys }
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

/// The status of a login with `code` (200 when it succeeds).
async fn login_status(sys: &System, http: &reqwest::Client, code: &str) -> u16 {
    match sys.bridge_api(http).login(&login_body(code)).await {
        Ok(_) => 200,
        Err(e) => e.status().unwrap_or_else(|| panic!("{e}")),
    }
}

async fn socket(sys: &System, user: &Login, since: Option<&str>) -> Socket {
    Socket::connect(&sys.realtime.url(), user.identity(), &user.auth(), since).await.unwrap()
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
    let mut m = start_system().await;
    let sys = &m.sys;
    let http = reqwest::Client::new();
    let (boxes0, realtime0, bridge0) =
        (scrape(&m.boxes_metrics).await, scrape(&m.realtime_metrics).await, scrape(&m.bridge_metrics).await);

    // Logins: two succeed, one is refused by the host app, then the per-address limit (4 per
    // 10 min) refuses.
    let alice = sys.login(&http, "alice").await;
    let bob = sys.login(&http, "bob").await;
    assert_eq!(login_status(sys, &http, "no-such-code").await, 401);
    let mut refused = false;
    for _ in 0..5 {
        if login_status(sys, &http, "no-such-code").await == 429 {
            refused = true;
            break;
        }
    }
    assert!(refused, "the login limit refused");

    // Sockets open; a post is delivered.
    let mut alice_ws = socket(sys, &alice, None).await;
    let first_position = alice_ws.ready.position.to_string();
    let mut bob_ws = socket(sys, &bob, None).await;
    let open = scrape(&m.realtime_metrics).await;
    assert!(total(&open, "realtime_open_sockets", &[]) >= 2.0, "{open:?}");
    assert!(total(&open, "realtime_connected_identities", &[]) >= 2.0);
    assert_eq!(total(&realtime0, "realtime_open_sockets", &[]), 0.0);

    let as_alice = sys.boxes_api(&http).as_user(alice.auth());
    as_alice.create_box(&NewBox::new("Measured", PUBLIC_KEY)).await.unwrap();
    alice_ws.next_of(types::EVENT_NEW).await.unwrap();

    // alice closes, reconnects from her first position (a hit: the post is replayed), then from a
    // position of no history of hers (a miss), then sends a frame over the size limit.
    alice_ws.close().await.unwrap();
    let mut again = socket(sys, &alice, Some(&first_position)).await;
    assert_eq!(again.ready.recovered, Some(true), "{:?}", again.ready);
    again.close().await.unwrap();
    let mut lost = socket(sys, &alice, Some("1-0")).await;
    assert_eq!(lost.ready.recovered, Some(false), "{:?}", lost.ready);
    lost.send_text("x".repeat(16 * 1024)).await.unwrap();
    assert_eq!(lost.close_code(WAIT).await.unwrap(), 1009);

    // Redis goes away: boxes' next post meets a failed Redis call, bob's socket closes with 1011.
    m.redis.stop();
    let sys = &m.sys;
    let status = match as_alice.create_box(&NewBox::new("Unheard", PUBLIC_KEY)).await {
        Ok(_) => 201,
        Err(e) => e.status().unwrap_or_else(|| panic!("{e}")),
    };
    // Refused (503) or stored with its publish lost, as the Redis loss is seen first.
    assert!([201, 503].contains(&status), "{status}");
    assert_eq!(bob_ws.close_code(WAIT).await.unwrap(), 1011);
    // Readiness pings Redis through the bounded call helper.
    for service in [&sys.boxes, &sys.bridge] {
        let res = health::readyz(&http, &service.url()).await;
        assert_eq!(res.unwrap_err().status(), Some(503), "{} is not ready without Redis", service.name);
    }
    health::healthz(&http, &sys.realtime.url()).await.unwrap();

    let boxes1 = scrape(&m.boxes_metrics).await;
    let realtime1 = eventually(&m.realtime_metrics, |s| {
        total(s, "realtime_socket_closes_total", &[("reason", "subscription_lost")]) > 0.0
            && total(s, "realtime_socket_closes_total", &[("reason", "too_big")]) > 0.0
    })
    .await;
    let bridge1 = scrape(&m.bridge_metrics).await;

    // boxes: requests by route pattern (never the raw path), the pool, Redis.
    let post = [("service", "boxes"), ("route", "/boxes"), ("method", "POST"), ("status", "201")];
    moved("boxes", &boxes0, &boxes1, "http_requests_total", &post);
    moved("boxes", &boxes0, &boxes1, "http_request_duration_seconds_count", &post[..3]);
    let internal = [("service", "boxes-internal"), ("route", "/internal/identities/{id}")];
    moved("boxes", &boxes0, &boxes1, "http_requests_total", &internal);
    assert!(
        !boxes1.iter().any(|s| s.labels.get("route").is_some_and(|r| r.contains(&alice.identity().to_string()))),
        "raw path as a label"
    );
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
    let res = http.get(m.realtime_metrics.replace("/metrics", "/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 404);
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
    let http = reqwest::Client::new();
    for _ in 0..3 {
        health::healthz(&http, &realtime.url()).await.unwrap();
    }
    let samples = scrape(&metrics_url(&realtime)).await;
    assert_eq!(total(&samples, "http_requests_total", &[]), 0.0, "{samples:?}");
    assert!(has(&samples, "realtime_deliveries_total"), "the families are still shown");
}
