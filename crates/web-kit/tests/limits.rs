//! The request budget over a real socket: running out of time answers 503 before a request's
//! point of no return, 504 `{"commit":"timed_out"}` after it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};
use web_kit::limits::{LimitSettings, Limits};

async fn slow(in_doubt: bool) -> HttpResponse {
    if in_doubt {
        web_kit::limits::committing(tokio::time::sleep(Duration::from_secs(30))).await;
    } else {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    HttpResponse::Ok().finish()
}

async fn deadline() -> HttpResponse {
    let at = web_kit::limits::deadline(Duration::from_millis(100)).expect("a deadline inside the middleware");
    let left = at.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    HttpResponse::Ok().body(left.as_millis().to_string())
}

fn spawn() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let limits = Limits::new(&LimitSettings { request_timeout_ms: 400, ..LimitSettings::default() });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(limits.clone())
            .wrap(from_fn(web_kit::limits::enforce))
            .route("/refused", web::post().to(|| slow(false)))
            .route("/in-doubt", web::post().to(|| slow(true)))
            .route("/deadline", web::get().to(deadline))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

#[actix_web::test]
async fn out_of_time_is_503_before_the_commit_and_504_after_it() {
    let base = spawn();
    let http = reqwest::Client::new();

    let started = Instant::now();
    let r = http.post(format!("{base}/refused")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(started.elapsed() < Duration::from_secs(5), "answered after {:?}", started.elapsed());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "service_unavailable");

    let r = http.post(format!("{base}/in-doubt")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 504);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "gateway_timeout");
    assert_eq!(body["details"]["commit"], "timed_out");
}

#[actix_web::test]
async fn the_deadline_handed_to_postgres_is_the_budget_less_the_margin() {
    let base = spawn();
    let left: u64 = reqwest::get(format!("{base}/deadline")).await.unwrap().text().await.unwrap().parse().unwrap();
    assert!((200..=300).contains(&left), "{left} ms left of a 400 ms budget less 100 ms");
}
