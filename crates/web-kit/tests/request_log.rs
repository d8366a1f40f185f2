//! The request log over a real socket, through `serve()`'s middleware stack: one span and one
//! "request done" line per request with its ids, method, path and status; never the query string
//! nor a header's value; `X-Request-Id` on every answer, an inner middleware's error included; the
//! request's trace context reachable from the handler.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{web, App, HttpResponse};
use serde_json::Value;
use test_support::logs::Capture;
use web_kit::limits::{LimitSettings, Limits};
use web_kit::serve::{serve, Serve};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn capture() -> Capture {
    Capture::global(|capture| web_kit::telemetry::subscriber("info", "json", capture))
}

/// The request id and trace id the handler sees as its current context.
async fn context() -> HttpResponse {
    let ctx = web_kit::telemetry::current().expect("a context while the request is served");
    tracing::info!("handler ran");
    HttpResponse::Ok().json(serde_json::json!({"request_id": ctx.request_id, "trace_id": ctx.trace_id}))
}

fn spawn() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let limits = Limits::new(&LimitSettings { request_timeout_ms: 200, ..LimitSettings::default() });
    let options = Serve { limits: Some(limits), workers: 1, ..Serve::default() };
    let server = serve(listener, options, || {
        App::new().route("/boxes/{id}/context", web::get().to(context)).route(
            "/slow",
            web::get().to(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                HttpResponse::Ok().finish()
            }),
        )
    })
    .unwrap();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

/// The lines logged in the request `request_id`, whose span comes first in each line's `spans`.
fn lines_with(capture: &Capture, request_id: &str) -> Vec<Value> {
    capture.json_lines().into_iter().filter(|l| l["spans"][0]["request_id"] == request_id).collect()
}

#[actix_web::test]
async fn requests_are_logged_with_their_ids_and_never_their_query_or_headers() {
    let capture = capture();
    let base = spawn();
    let http = reqwest::Client::new();
    let secret = format!("secret-{}", uuid::Uuid::new_v4().simple());
    let header_secret = format!("header-{}", uuid::Uuid::new_v4().simple());

    let res = http
        .get(format!("{base}/boxes/b1/context?access_token={secret}&since=1-0"))
        .header("X-Request-Id", "req-logged")
        .header("traceparent", TRACEPARENT)
        .bearer_auth(&header_secret)
        .header("Cookie", format!("accesstoken={header_secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-request-id"], "req-logged");
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["request_id"], "req-logged");
    assert_eq!(seen["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");

    let lines = lines_with(&capture, "req-logged");
    let done = lines.iter().find(|l| l["fields"]["message"] == "request done").expect("a request done line");
    assert_eq!(done["fields"]["status"], 200);
    assert!(done["fields"]["elapsed_us"].is_u64(), "{done}");
    assert!(done.get("span").is_none(), "the request's span is logged once, in `spans`: {done}");
    let span = &done["spans"][0];
    assert_eq!((span["name"].as_str(), span["method"].as_str()), (Some("request"), Some("GET")));
    assert_eq!(span["path"], "/boxes/b1/context");
    assert_eq!(span["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span["parent_id"], "00f067aa0ba902b7");
    assert!(lines.iter().any(|l| l["fields"]["message"] == "handler ran"), "the handler logs inside the span");

    // An error of an inner middleware (the request budget's 503) carries a request id of the
    // server's making, and is logged under it.
    let res = http.get(format!("{base}/slow?access_token={secret}")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let made = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    let lines = lines_with(&capture, &made);
    let done = lines.iter().find(|l| l["fields"]["message"] == "request done").expect("a request done line");
    assert_eq!(done["fields"]["status"], 503);
    assert!(done["fields"]["elapsed_us"].as_u64() >= Some(200_000), "{done}");

    let text = capture.text();
    assert!(!text.contains(&secret), "a query string reached the log");
    assert!(!text.contains(&header_secret), "a header reached the log");
    assert!(!text.contains("since=1-0") && !text.contains("access_token"));
}
