//! Prometheus metrics (README "Metrics and OpenTelemetry"): one registry per process, every family
//! defined once here, served in the text format by [`serve`] at `/metrics`.
//!
//! The hot paths stay cheap: counters and histograms are atomics; the per-route handles of the
//! HTTP families are resolved once per worker thread and kept in a thread-local map, so a request
//! takes no lock; gauges that mirror state (pool, sockets) are read when a scrape asks for them.
//! `METRICS=false` ([`set_enabled`]) turns recording off; `/metrics` then shows the families with
//! nothing moving.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether recording is on (`METRICS`, default on).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns recording on or off for the process.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Bounds of the latency histograms of calls to PostgreSQL's pool and Redis, in seconds: these
/// take tens of microseconds when all is well and at most a second (the call limit) otherwise.
const FAST_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Label value of requests no route matched: the raw path is never a label.
pub const UNMATCHED: &str = "unmatched";

/// Every family of every service. A service's `/metrics` shows the families it records.
pub struct Families {
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub db_pool_size: IntGauge,
    pub db_pool_available: IntGauge,
    pub db_pool_waiting: IntGauge,
    pub db_pool_wait: Histogram,
    pub redis_call: Histogram,
    pub redis_errors: IntCounter,
    pub ratelimit_refusals: IntCounterVec,
    pub realtime_open_sockets: IntGauge,
    pub realtime_connected_identities: IntGauge,
    pub realtime_deliveries: IntCounter,
    pub realtime_socket_closes: IntCounterVec,
    pub realtime_recoveries: IntCounterVec,
    pub auth_logins: IntCounterVec,
    pub post_batch_size: Histogram,
}

/// The names of every family, as `/metrics` shows them (the dashboard's queries are checked
/// against this list).
pub const FAMILY_NAMES: &[&str] = &[
    "http_requests_total",
    "http_request_duration_seconds",
    "db_pool_size",
    "db_pool_available",
    "db_pool_waiting",
    "db_pool_wait_seconds",
    "redis_call_duration_seconds",
    "redis_errors_total",
    "ratelimit_refusals_total",
    "realtime_open_sockets",
    "realtime_connected_identities",
    "realtime_deliveries_total",
    "realtime_socket_closes_total",
    "realtime_recoveries_total",
    "auth_logins_total",
    "post_batch_size",
];

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"))
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable!("metric {name}: {e}"))
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"))
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"))
}

/// The families, created at first use; the names and labels are constants, so creation cannot fail.
pub static FAMILIES: LazyLock<Families> = LazyLock::new(|| Families {
    http_requests: counter_vec(
        "http_requests_total",
        "HTTP requests answered, by service, route pattern, method and status.",
        &["service", "route", "method", "status"],
    ),
    http_duration: HistogramVec::new(
        HistogramOpts::new("http_request_duration_seconds", "Time to answer an HTTP request, by route pattern."),
        &["service", "route", "method"],
    )
    .unwrap_or_else(|e| unreachable!("metric http_request_duration_seconds: {e}")),
    db_pool_size: gauge("db_pool_size", "PostgreSQL connections the pool holds."),
    db_pool_available: gauge("db_pool_available", "PostgreSQL connections idle in the pool."),
    db_pool_waiting: gauge("db_pool_waiting", "Requests waiting for a PostgreSQL connection."),
    db_pool_wait: histogram("db_pool_wait_seconds", "Time to get a PostgreSQL connection from the pool.", FAST_BUCKETS),
    redis_call: histogram("redis_call_duration_seconds", "Round trip of one bounded Redis call.", FAST_BUCKETS),
    redis_errors: counter("redis_errors_total", "Bounded Redis calls that failed or timed out."),
    ratelimit_refusals: counter_vec("ratelimit_refusals_total", "Requests refused by a rate limit.", &["limit"]),
    realtime_open_sockets: gauge("realtime_open_sockets", "Websockets open on this process."),
    realtime_connected_identities: gauge("realtime_connected_identities", "Identities with a websocket open here."),
    realtime_deliveries: counter("realtime_deliveries_total", "Messages queued to a websocket."),
    realtime_socket_closes: counter_vec("realtime_socket_closes_total", "Websockets closed, by reason.", &["reason"]),
    realtime_recoveries: counter_vec(
        "realtime_recoveries_total",
        "Reconnections with ?since=, by outcome: hit (history replayed) or miss (recovered:false).",
        &["outcome"],
    ),
    auth_logins: counter_vec("auth_logins_total", "Logins, by flow and outcome.", &["flow", "outcome"]),
    post_batch_size: histogram(
        "post_batch_size",
        "Messages committed together in one post transaction (boxes' group commit).",
        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1000.0],
    ),
});

/// Which families a process records, besides the HTTP, Redis and rate-limit ones every service has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Db,
    Realtime,
    Auth,
    Posts,
}

type Refresh = Box<dyn Fn() + Send + Sync>;

struct Process {
    registry: Registry,
    registered: Mutex<Vec<Group>>,
    /// Run before each scrape: they copy state (pool status, socket counts) into gauges.
    refresh: Mutex<Vec<Refresh>>,
}

static PROCESS: LazyLock<Process> = LazyLock::new(|| {
    let registry = Registry::new();
    let f = &*FAMILIES;
    register(
        &registry,
        [
            Box::new(f.http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(f.http_duration.clone()),
            Box::new(f.redis_call.clone()),
            Box::new(f.redis_errors.clone()),
            Box::new(f.ratelimit_refusals.clone()),
        ],
    );
    Process { registry, registered: Mutex::new(Vec::new()), refresh: Mutex::new(Vec::new()) }
});

fn register<const N: usize>(registry: &Registry, collectors: [Box<dyn prometheus::core::Collector>; N]) {
    for c in collectors {
        // Only a second registration of the same family fails, and that one is already there.
        let _ = registry.register(c);
    }
}

/// Adds a group's families to this process's `/metrics` (once, however often it is called).
pub fn record(group: Group) {
    let process = &*PROCESS;
    let mut registered = process.registered.lock().unwrap_or_else(|p| p.into_inner());
    if registered.contains(&group) {
        return;
    }
    registered.push(group);
    let f = &*FAMILIES;
    match group {
        Group::Db => register(
            &process.registry,
            [
                Box::new(f.db_pool_size.clone()) as Box<dyn prometheus::core::Collector>,
                Box::new(f.db_pool_available.clone()),
                Box::new(f.db_pool_waiting.clone()),
                Box::new(f.db_pool_wait.clone()),
            ],
        ),
        Group::Realtime => register(
            &process.registry,
            [
                Box::new(f.realtime_open_sockets.clone()) as Box<dyn prometheus::core::Collector>,
                Box::new(f.realtime_connected_identities.clone()),
                Box::new(f.realtime_deliveries.clone()),
                Box::new(f.realtime_socket_closes.clone()),
                Box::new(f.realtime_recoveries.clone()),
            ],
        ),
        Group::Auth => register(&process.registry, [Box::new(f.auth_logins.clone())]),
        Group::Posts => register(&process.registry, [Box::new(f.post_batch_size.clone())]),
    }
}

/// Runs `f` before each scrape, to set gauges from state kept elsewhere.
pub fn on_scrape(f: impl Fn() + Send + Sync + 'static) {
    PROCESS.refresh.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(f));
}

/// The Prometheus text of every family this process records.
pub fn render() -> String {
    let process = &*PROCESS;
    for refresh in process.refresh.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        refresh();
    }
    let mut out = Vec::new();
    // Encoding into a Vec fails only on families without metrics, which `gather` leaves out.
    let _ = TextEncoder::new().encode(&process.registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// `GET /metrics`.
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().content_type(prometheus::TEXT_FORMAT).body(render())
}

/// Reports a PostgreSQL pool's size, idle and waiting counts at each scrape.
pub fn watch_pool(pool: deadpool_postgres::Pool) {
    record(Group::Db);
    on_scrape(move || {
        let status = pool.status();
        let f = &*FAMILIES;
        f.db_pool_size.set(i64::try_from(status.size).unwrap_or(i64::MAX));
        f.db_pool_available.set(i64::try_from(status.available).unwrap_or(i64::MAX));
        f.db_pool_waiting.set(i64::try_from(status.waiting).unwrap_or(i64::MAX));
    });
}

/// A connection from `pool`, the wait recorded in `db_pool_wait_seconds`.
pub async fn pool_get(
    pool: &deadpool_postgres::Pool,
) -> Result<deadpool_postgres::Object, deadpool_postgres::PoolError> {
    if !enabled() {
        return pool.get().await;
    }
    let started = Instant::now();
    let got = pool.get().await;
    FAMILIES.db_pool_wait.observe(started.elapsed().as_secs_f64());
    got
}

/// One bounded Redis call's duration and, if it failed, the error.
pub fn redis_call(started: Instant, failed: bool) {
    let f = &*FAMILIES;
    f.redis_call.observe(started.elapsed().as_secs_f64());
    if failed {
        f.redis_errors.inc();
    }
}

/// A request refused by the rate limit named `limit`.
pub fn ratelimit_refused(limit: &'static str) {
    if enabled() {
        FAMILIES.ratelimit_refusals.with_label_values(&[limit]).inc();
    }
}

/// A login of `flow` ended with `outcome`.
pub fn login(flow: &'static str, outcome: &'static str) {
    if enabled() {
        FAMILIES.auth_logins.with_label_values(&[flow, outcome]).inc();
    }
}

/// The handles one (route, method, status) records into.
struct RouteHandles {
    requests: IntCounter,
    duration: Histogram,
}

#[derive(Hash, PartialEq, Eq)]
struct RouteKey {
    service: &'static str,
    route: String,
    method: Method,
    status: u16,
}

thread_local! {
    /// Per worker thread, so looking a handle up takes no lock. Bounded: routes are the app's
    /// patterns, methods the standard ones (others count as `OTHER`), statuses 100 to 999.
    static HANDLES: RefCell<HashMap<RouteKey, RouteHandles>> = RefCell::new(HashMap::new());
}

fn method_label(method: &Method) -> Method {
    match *method {
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::HEAD | Method::OPTIONS => {
            method.clone()
        }
        _ => Method::from_bytes(b"OTHER").unwrap_or(Method::GET),
    }
}

fn observe(service: &'static str, route: Option<String>, method: &Method, status: u16, seconds: f64) {
    let key = RouteKey {
        service,
        route: route.unwrap_or_else(|| UNMATCHED.to_owned()),
        method: method_label(method),
        status,
    };
    HANDLES.with(|cell| {
        let mut handles = cell.borrow_mut();
        let h = handles.entry(key).or_insert_with_key(|k| {
            let f = &*FAMILIES;
            let status = k.status.to_string();
            RouteHandles {
                requests: f.http_requests.with_label_values(&[k.service, &k.route, k.method.as_str(), &status]),
                duration: f.http_duration.with_label_values(&[k.service, &k.route, k.method.as_str()]),
            }
        });
        h.requests.inc();
        h.duration.observe(seconds);
    });
}

/// Middleware, wrapped as `from_fn(|req, next| metrics::track("boxes", req, next))`: counts each
/// answer and its time by the route pattern that matched, never the raw path.
pub async fn track(
    service: &'static str,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !enabled() {
        return next.call(req).await;
    }
    let started = Instant::now();
    let method = req.method().clone();
    let res = next.call(req).await;
    let seconds = started.elapsed().as_secs_f64();
    match &res {
        Ok(res) => observe(service, res.request().match_pattern(), &method, res.status().as_u16(), seconds),
        Err(e) => observe(service, None, &method, e.as_response_error().status_code().as_u16(), seconds),
    }
    res
}

/// Metrics settings of the services without an internal listener.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsSettings {
    /// Record Prometheus metrics; `false` turns recording off.
    #[arg(long, env = "METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,

    /// Address and port of a listener serving only `GET /metrics`; none when unset (the
    /// default), so nothing is exposed unless asked for. Keep it reachable from the scraper only.
    #[arg(long, env = "METRICS_BIND_ADDR")]
    pub metrics_bind_addr: Option<String>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings { metrics: true, metrics_bind_addr: None }
    }
}

/// The `/metrics` listener started by [`MetricsSettings::start`].
pub struct Listener {
    port: u16,
    handle: actix_web::dev::ServerHandle,
}

impl Listener {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops serving.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

impl MetricsSettings {
    /// Applies `METRICS` and, with `METRICS_BIND_ADDR`, starts the listener (on the current
    /// runtime): one worker, `/metrics` only.
    pub fn start(&self) -> anyhow::Result<Option<Listener>> {
        use anyhow::Context;
        set_enabled(self.metrics);
        let Some(addr) = self.metrics_bind_addr.as_deref().filter(|a| !a.is_empty()) else { return Ok(None) };
        let listener =
            std::net::TcpListener::bind(addr).with_context(|| format!("binding METRICS_BIND_ADDR {addr}"))?;
        let port = listener.local_addr()?.port();
        let server = actix_web::HttpServer::new(|| {
            actix_web::App::new()
                .route("/metrics", actix_web::web::get().to(serve))
                .default_service(actix_web::web::to(crate::not_found))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        tracing::info!(port, "metrics listening");
        Ok(Some(Listener { port, handle }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_named_and_renders() {
        record(Group::Db);
        record(Group::Realtime);
        record(Group::Auth);
        record(Group::Posts);
        FAMILIES.post_batch_size.observe(3.0);
        FAMILIES.redis_errors.inc();
        FAMILIES.realtime_deliveries.inc();
        observe("test", Some("/boxes/{id}".into()), &Method::GET, 200, 0.01);
        let brew = Method::from_bytes(b"BREW").unwrap_or(Method::CONNECT);
        observe("test", None, &brew, 404, 0.01);
        ratelimit_refused("test_limit");
        login("test", "success");
        FAMILIES.realtime_socket_closes.with_label_values(&["idle"]).inc();
        FAMILIES.realtime_recoveries.with_label_values(&["hit"]).inc();
        let text = render();
        for name in FAMILY_NAMES {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing:\n{text}");
        }
        assert!(text
            .contains("http_requests_total{method=\"GET\",route=\"/boxes/{id}\",service=\"test\",status=\"200\"} 1"));
        assert!(text.contains("route=\"unmatched\",service=\"test\",status=\"404\""));
        assert!(text.contains("method=\"OTHER\""));
    }

    /// What recording one request costs, without the noise of a whole service: the route pattern
    /// actix builds, the handle lookup and the two updates (`cargo test --release -p web-kit
    /// --lib recording_cost -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn recording_cost() {
        let n = 1_000_000u32;
        let started = Instant::now();
        for _ in 0..n {
            let route = std::hint::black_box("/boxes/{id}/events").to_owned();
            observe("bench", Some(route), &Method::POST, 201, 0.001);
        }
        let per_request = started.elapsed() / n;
        let started = Instant::now();
        for _ in 0..n {
            redis_call(Instant::now(), false);
        }
        let per_redis_call = started.elapsed() / n;
        println!("per request: {per_request:?}; per Redis call: {per_redis_call:?}");
    }
}
