//! Request ids and traces across the separately started binaries: every answer of boxes, realtime
//! and auth-bridge carries `X-Request-Id` (a well-formed one from the caller is kept, any other
//! replaced); a login's request id and trace reach boxes' log lines for the internal call; a
//! post's trace reaches realtime's log line for its delivery, and the socket never sees it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use e2e::{temp_file, Service};
use futures_util::StreamExt;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{json, Value};
use test_support::TestKeys;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct System {
    _hostapp: Service,
    boxes: Service,
    realtime: Service,
    bridge: Service,
    _files: Vec<e2e::tempfile_lite::TempFile>,
    _keys: TestKeys,
}

async fn start_system() -> System {
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
    let redis = test_support::redis_url();
    let internal_addr = format!("127.0.0.1:{}", e2e::free_port());
    let mut boxes = Service::start(
        "boxes",
        &env(&[
            ("DATABASE_URL", &database_url),
            ("REDIS_URL", &redis),
            ("JWT_PUBLIC_KEY_FILE", &public),
            ("INTERNAL_API_TOKEN", &internal),
            ("INTERNAL_BIND_ADDR", &internal_addr),
        ]),
    )
    .unwrap();
    let mut realtime = Service::start(
        "realtime",
        &env(&[("REDIS_URL", &redis), ("JWT_PUBLIC_KEY_FILE", &public), ("RUST_LOG", "info,realtime=debug")]),
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
            ("REDIS_URL", &redis),
            ("JWT_PRIVATE_KEY_FILE", &private),
            ("JWT_PUBLIC_KEY_FILE", &public),
            ("INTERNAL_API_TOKEN", &internal),
            ("BOXES_INTERNAL_URL", &format!("http://{internal_addr}")),
            ("HOSTAPPS_CONFIG", &registry.path.display().to_string()),
            ("COOKIE_SECURE", "false"),
        ]),
    )
    .unwrap();
    bridge.wait_ready("/readyz").await.unwrap();
    System { _hostapp: hostapp, boxes, realtime, bridge, _files: vec![registry], _keys: keys }
}

fn new_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{}-01", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

fn request_id_of(res: &reqwest::Response) -> String {
    let value = res.headers().get("x-request-id").unwrap_or_else(|| panic!("no X-Request-Id: {res:?}"));
    value.to_str().unwrap().to_owned()
}

/// Whether `v`, or anything inside it (a log line's span list), has `key` set to `value`.
fn has(v: &Value, key: &str, value: &str) -> bool {
    match v {
        Value::Object(o) => o.get(key).is_some_and(|x| x == value) || o.values().any(|x| has(x, key, value)),
        Value::Array(a) => a.iter().any(|x| has(x, key, value)),
        _ => false,
    }
}

/// The JSON log lines of `service` with `key` = `value`.
fn log_lines(service: &Service, key: &str, value: &str) -> Vec<Value> {
    service
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| has(v, key, value))
        .collect()
}

/// [`log_lines`], waiting up to 5 s for at least one whose text contains `message`.
async fn wait_for_line(service: &Service, key: &str, value: &str, message: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let lines = log_lines(service, key, value);
        if lines.iter().any(|l| l.to_string().contains(message)) || tokio::time::Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn request_ids_and_traces_cross_the_services() {
    let sys = start_system().await;
    let http = reqwest::Client::new();

    // Every service answers successes and errors with X-Request-Id; a valid one is echoed, an
    // invalid one replaced.
    for service in [&sys.boxes, &sys.realtime, &sys.bridge] {
        for (path, status) in [("/healthz", 200), ("/no-such-path", 404)] {
            let res = http.get(format!("{}{path}", service.url())).send().await.unwrap();
            assert_eq!(res.status(), status, "{} {path}", service.name);
            let made = request_id_of(&res);
            assert!(uuid::Uuid::parse_str(&made).is_ok(), "{} made {made}", service.name);

            let mine = format!("req-{}", uuid::Uuid::new_v4().simple());
            let res = http.get(format!("{}{path}", service.url())).header("X-Request-Id", &mine).send().await.unwrap();
            assert_eq!((res.status().as_u16(), request_id_of(&res)), (status, mine.clone()), "{}", service.name);

            for bad in ["has spaces", "semi;colon", &"x".repeat(129)] {
                let res =
                    http.get(format!("{}{path}", service.url())).header("X-Request-Id", bad).send().await.unwrap();
                let replaced = request_id_of(&res);
                assert!(replaced != bad && uuid::Uuid::parse_str(&replaced).is_ok(), "{}: {replaced}", service.name);
            }
        }
    }
    // Refusals of a method and of a body on auth-bridge and boxes, and realtime's refused
    // websocket handshake, which never passes through the app.
    let res = http.delete(format!("{}/auth/login", sys.bridge.url())).header("X-Request-Id", "r-405").send().await;
    assert_eq!(request_id_of(&res.unwrap()), "r-405");
    let res = http.post(format!("{}/boxes", sys.boxes.url())).header("X-Request-Id", "r-401").send().await.unwrap();
    assert_eq!((res.status().as_u16(), request_id_of(&res)), (401, "r-401".to_owned()));
    let ws = format!("{}/box-users/{}/ws", sys.realtime.url(), uuid::Uuid::new_v4());
    let res = http
        .get(&ws)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("X-Request-Id", "r-ws-401")
        .send()
        .await
        .unwrap();
    assert_eq!((res.status().as_u16(), request_id_of(&res)), (401, "r-ws-401".to_owned()));

    // A login: auth-bridge's lines and boxes' lines for the internal call share the request id
    // and the trace id the caller sent.
    let login_id = format!("login-{}", uuid::Uuid::new_v4().simple());
    let login_trace = new_trace_id();
    let res = http
        .post(format!("{}/auth/login", sys.bridge.url()))
        .header("X-Request-Id", &login_id)
        .header("traceparent", traceparent(&login_trace))
        .json(&json!({"auth_code": "code-alice", "app_id": "boxes-miniapp", "client_id": "ref-hostapp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(request_id_of(&res), login_id);
    let cookies: Vec<String> = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .filter(|c| c.starts_with("accesstoken=") || c.starts_with("tokentype="))
        .collect();
    let login: Value = res.json().await.unwrap();
    let alice = login["identity_id"].as_str().unwrap().to_owned();
    let (cookies, csrf) = (cookies.join("; "), login["csrf_token"].as_str().unwrap().to_owned());

    let bridge_lines = wait_for_line(&sys.bridge, "request_id", &login_id, "request done").await;
    assert!(bridge_lines.len() >= 2, "auth-bridge logged the login under its request id: {bridge_lines:?}");
    assert!(bridge_lines.iter().all(|l| has(l, "trace_id", &login_trace)), "{bridge_lines:?}");
    let boxes_lines = wait_for_line(&sys.boxes, "request_id", &login_id, "request done").await;
    assert!(!boxes_lines.is_empty(), "boxes logged the internal call under the login's request id");
    for line in &boxes_lines {
        assert!(has(line, "trace_id", &login_trace), "{line}");
        let path = line["span"]["path"].as_str().unwrap_or_default();
        assert_eq!(path, format!("/internal/identities/{alice}"), "{line}");
    }
    assert!(boxes_lines.iter().any(|l| l["fields"]["message"] == "request done" && l["fields"]["status"] == 204));

    // A post: boxes publishes with the post's trace, realtime logs the delivery in it, and the
    // socket gets the envelope without it.
    let mut req = format!("ws://127.0.0.1:{}/box-users/{alice}/ws", sys.realtime.port).into_client_request().unwrap();
    req.headers_mut().insert(COOKIE, cookies.parse().unwrap());
    req.headers_mut().insert("x-request-id", "r-ws-101".parse().unwrap());
    let (mut ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(res.status(), 101);
    assert_eq!(res.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("r-ws-101"));
    next_text(&mut ws).await;

    let post_trace = new_trace_id();
    let res = http
        .post(format!("{}/boxes", sys.boxes.url()))
        .header(COOKIE, &cookies)
        .header("X-CSRF-Token", &csrf)
        .header("traceparent", traceparent(&post_trace))
        .json(&json!({"title": "Traced", "public_key": "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let delivered = next_text(&mut ws).await;
    let envelope: Value = serde_json::from_str(&delivered).unwrap();
    assert_eq!(envelope["type"], "event.new");
    let keys: Vec<&String> = envelope.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "type, object and position only: {delivered}");
    assert!(!delivered.contains(&post_trace), "the socket never sees the trace");

    let published = wait_for_line(&sys.boxes, "trace_id", &post_trace, "realtime published").await;
    assert!(published.iter().any(|l| l.to_string().contains("realtime published")), "{published:?}");
    let deliveries = wait_for_line(&sys.realtime, "trace_id", &post_trace, "delivered").await;
    assert!(deliveries.iter().any(|l| l["fields"]["message"] == "delivered"), "{}", sys.realtime.log_text());
}

/// The next text frame; fails after 5 s.
async fn next_text(ws: &mut Ws) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.expect("a frame within 5 s") {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    }
}
