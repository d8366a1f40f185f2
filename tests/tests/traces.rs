//! Request ids and traces across the separately started binaries: every answer of boxes, realtime
//! and auth-bridge carries `X-Request-Id` (a well-formed one from the caller is kept, any other
//! replaced); a login's request id and trace reach boxes' log lines for the internal call; a
//! post's trace reaches realtime's log line for its delivery, and the socket never sees it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use boxes_client::body::NewBox;
use boxes_client::Login;
use e2e::system::{login_body, Options, System};
use e2e::Service;
use futures_util::StreamExt;
use reqwest::header::COOKIE;
use reqwest::Method;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const PUBLIC_KEY: &str = "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw";

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn start_system() -> System {
    start_system_with(&[]).await
}

/// The system, with `extra` in the environment of every service.
async fn start_system_with(extra: &[(&str, &str)]) -> System {
    System::start_with(Options {
        everywhere: extra,
        boxes: &[("RUST_LOG", "info,boxes=debug")],
        realtime: &[("RUST_LOG", "info,realtime=debug")],
        ..Options::default()
    })
    .await
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
    let res = sys
        .bridge_api(&http)
        .request(Method::POST, "/auth/login")
        .header("X-Request-Id", &login_id)
        .header("traceparent", traceparent(&login_trace))
        .json(&login_body("code-alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(request_id_of(&res), login_id);
    let login = Login::read(res).await.unwrap();
    let (alice, cookies) = (login.identity(), login.auth());

    let bridge_lines = wait_for_line(&sys.bridge, "request_id", &login_id, "request done").await;
    assert!(bridge_lines.len() >= 2, "auth-bridge logged the login under its request id: {bridge_lines:?}");
    assert!(bridge_lines.iter().all(|l| has(l, "trace_id", &login_trace)), "{bridge_lines:?}");
    let boxes_lines = wait_for_line(&sys.boxes, "request_id", &login_id, "request done").await;
    assert!(!boxes_lines.is_empty(), "boxes logged the internal call under the login's request id");
    for line in &boxes_lines {
        assert!(has(line, "trace_id", &login_trace), "{line}");
        let path = line["spans"][0]["path"].as_str().unwrap_or_default();
        assert_eq!(path, format!("/internal/identities/{alice}"), "{line}");
    }
    assert!(boxes_lines.iter().any(|l| l["fields"]["message"] == "request done" && l["fields"]["status"] == 204));

    // A post: boxes publishes with the post's trace, realtime logs the delivery in it, and the
    // socket gets the envelope without it.
    let mut req = format!("ws://127.0.0.1:{}/box-users/{alice}/ws", sys.realtime.port).into_client_request().unwrap();
    req.headers_mut().insert(COOKIE, login.cookie_header().parse().unwrap());
    req.headers_mut().insert("x-request-id", "r-ws-101".parse().unwrap());
    let (mut ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(res.status(), 101);
    assert_eq!(res.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("r-ws-101"));
    next_text(&mut ws).await;

    let post_trace = new_trace_id();
    let res = sys
        .boxes_api(&http)
        .as_user(cookies)
        .request(Method::POST, "/boxes")
        .header("traceparent", traceparent(&post_trace))
        .json(&NewBox::new("Traced", PUBLIC_KEY))
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

/// A stand-in OTLP collector on a real socket: answers every HTTP request 200 and keeps the
/// bodies posted to `/v1/traces`.
async fn start_collector() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = bodies.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // Headers, then a Content-Length body; keep-alive connections loop.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 8192];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 8192];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if head.starts_with("post /v1/traces ") {
                        kept.lock().unwrap().push(buf[head_end..head_end + len].to_vec());
                    }
                    buf.drain(..head_end + len);
                    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if conn.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, bodies)
}

/// One exported span: its service, name, trace id, span id and parent span id (hex).
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_id: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes every body the collector got as an OTLP `ExportTraceServiceRequest`.
fn exported(bodies: &std::sync::Mutex<Vec<Vec<u8>>>) -> Vec<Exported> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;
    let mut spans = Vec::new();
    for body in bodies.lock().unwrap().iter() {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("an OTLP protobuf body");
        for rs in request.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(Exported {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_id: hex(&span.parent_span_id),
                });
            }
        }
    }
    spans
}

/// Waits up to 10 s for `check` to hold on the exported spans.
async fn wait_for_spans(bodies: &std::sync::Mutex<Vec<Vec<u8>>>, check: impl Fn(&[Exported]) -> bool) -> Vec<Exported> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let spans = exported(bodies);
        if check(&spans) || tokio::time::Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn spans_are_exported_over_otlp_as_one_trace() {
    let (collector, bodies) = start_collector().await;
    let sys =
        start_system_with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &collector), ("OTEL_BSP_SCHEDULE_DELAY", "100")]).await;
    let http = reqwest::Client::new();

    // A login under the caller's trace: auth-bridge's request span is the caller's child, its
    // call to boxes' internal API a child of that, and boxes' request span a child of the call.
    let login_trace = new_trace_id();
    let caller = traceparent(&login_trace);
    let res = sys
        .bridge_api(&http)
        .request(Method::POST, "/auth/login")
        .header("traceparent", &caller)
        .json(&login_body("code-alice"))
        .send()
        .await
        .unwrap();
    let login = Login::read(res).await.unwrap();
    let alice = login.identity();

    let in_trace = |spans: &[Exported], trace: &str, service: &str, name: &str| -> Option<Exported> {
        spans.iter().find(|s| s.trace_id == trace && s.service == service && s.name == name).cloned()
    };
    let spans = wait_for_spans(&bodies, |s| in_trace(s, &login_trace, "boxes", "request").is_some()).await;
    let bridge = in_trace(&spans, &login_trace, "auth-bridge", "request").unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(bridge.parent_id, &caller[36..52], "the caller's span is the parent");
    let call =
        in_trace(&spans, &login_trace, "auth-bridge", "boxes internal call").unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(call.parent_id, bridge.span_id);
    let boxes = in_trace(&spans, &login_trace, "boxes", "request").unwrap();
    assert_eq!(boxes.parent_id, call.span_id, "boxes serves the call in the same trace");

    // A post and its delivery: boxes' request, its publish, realtime's delivery.
    let mut req = format!("ws://127.0.0.1:{}/box-users/{alice}/ws", sys.realtime.port).into_client_request().unwrap();
    req.headers_mut().insert(COOKIE, login.cookie_header().parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    next_text(&mut ws).await;
    let post_trace = new_trace_id();
    let res = sys
        .boxes_api(&http)
        .as_user(login.auth())
        .request(Method::POST, "/boxes")
        .header("traceparent", traceparent(&post_trace))
        .json(&NewBox::new("Exported", PUBLIC_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    next_text(&mut ws).await;
    let spans = wait_for_spans(&bodies, |s| in_trace(s, &post_trace, "realtime", "deliver").is_some()).await;
    let post = in_trace(&spans, &post_trace, "boxes", "request").unwrap_or_else(|| panic!("{spans:#?}"));
    let publish = in_trace(&spans, &post_trace, "boxes", "publish").unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(publish.parent_id, post.span_id);
    let deliver = in_trace(&spans, &post_trace, "realtime", "deliver").unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(deliver.parent_id, publish.span_id, "the delivery is the publish's child");

    // The request span's ids are the ones the logs carry.
    let logged = log_lines(&sys.boxes, "trace_id", &post_trace);
    assert!(logged.iter().any(|l| has(l, "span_id", &post.span_id)), "{logged:?}");
}
