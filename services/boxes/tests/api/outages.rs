//! Dependencies that fail or stall, and clients that stall: every answer comes within its bound.
//! Redis runs as a private redis-server; PostgreSQL is made to stall with a lock held by the test.

use std::time::{Duration, Instant};

use domain::realtime::REVOCATIONS_LOADED_KEY;
use secrecy::SecretString;
use serde_json::Value;
use test_support::PrivateRedis;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{spawn_app_with, TestApp, User};

async fn timed_get(app: &TestApp, user: &User, path: &str) -> (u16, Duration) {
    // A new client each time: a new connection, so requests spread over the workers.
    let client = reqwest::Client::new();
    let started = Instant::now();
    let res = client
        .get(app.url(path))
        .header("Authorization", user.session.bearer())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), started.elapsed())
}

async fn set(redis: &PrivateRedis, key: &str, value: &str) {
    let _: () = redis::cmd("SET").arg(key).arg(value).query_async(&mut redis.conn().await).await.unwrap();
}

#[tokio::test]
async fn a_redis_restart_answers_quickly_and_keeps_revoked_sessions_out() {
    let mut redis = PrivateRedis::start(17021).await;
    let url = redis.url();
    let app = spawn_app_with(|s| {
        s.redis.url = SecretString::from(url);
        s.server.workers = 2;
    })
    .await;
    let alice = app.user("Alice").await;
    let revoked = app.user("Rev").await;
    test_support::revoke(&mut redis.conn().await, revoked.session.sid).await;
    assert_eq!(timed_get(&app, &alice, "/boxes/joined").await.0, 200);
    assert_eq!(timed_get(&app, &revoked, "/boxes/joined").await.0, 401);

    redis.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for path in ["/boxes/joined", "/readyz"] {
        let (status, took) = timed_get(&app, &alice, path).await;
        assert_eq!(status, 503, "{path} while Redis is down");
        assert!(took < Duration::from_millis(1500), "{path} took {took:?}");
    }

    // Back empty: without the loaded flag no token can be told revoked or not, so every token,
    // the revoked one included, is 503 (never 200).
    redis.restart().await;
    for user in [&alice, &revoked, &alice, &revoked] {
        let (status, took) = timed_get(&app, user, "/boxes/joined").await;
        assert_eq!(status, 503, "{} before the markers are loaded", user.name);
        assert!(took < Duration::from_millis(1500), "took {took:?}");
    }

    // Once the revocations are back (auth-bridge's reload, played here) and loaded by the
    // instance, answers are right.
    test_support::announce_revocation(&mut redis.conn().await, revoked.session.sid).await;
    set(&redis, REVOCATIONS_LOADED_KEY, "test").await;
    let started = Instant::now();
    while timed_get(&app, &alice, "/readyz").await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(2), "not ready 2 s after the restart");
    }
    assert_eq!(timed_get(&app, &revoked, "/boxes/joined").await.0, 401);

    // A restart with no request in between: once the revocations are loaded again, each
    // worker's first Redis call finds its connection closed by the server ("broken pipe") and
    // is sent again, not answered 503.
    redis.kill();
    redis.restart().await;
    set(&redis, REVOCATIONS_LOADED_KEY, "test").await;
    // The instance resubscribes and reloads by itself (no request needed) well within this.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..8 {
        let (status, took) = timed_get(&app, &alice, "/boxes/joined").await;
        assert_eq!(status, 200, "request {i} after a restart");
        assert!(took < Duration::from_millis(1500), "took {took:?}");
    }
}

/// Holds an ACCESS EXCLUSIVE lock on `boxes.identities` in an open transaction, so every
/// authenticated request's identity lookup waits.
async fn lock_identities(app: &TestApp) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute("BEGIN; LOCK TABLE boxes.identities IN ACCESS EXCLUSIVE MODE").await.unwrap();
    client
}

async fn assert_unavailable(app: &TestApp, user: &User, within: Duration) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let res = client.get(app.url("/boxes/joined")).header("Authorization", user.session.bearer()).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "service_unavailable", "{body}");
    assert!(took < within, "answered after {took:?}");
}

#[tokio::test]
async fn a_statement_timeout_is_503_not_500() {
    let app = spawn_app_with(|s| s.db_statement_timeout_ms = 1000).await;
    let alice = app.user("Alice").await;
    let lock = lock_identities(&app).await;
    assert_unavailable(&app, &alice, Duration::from_secs(3)).await;
    drop(lock);
    assert_eq!(timed_get(&app, &alice, "/boxes/joined").await.0, 200);
}

#[tokio::test]
async fn a_database_that_does_not_answer_is_503_within_the_request_budget() {
    // The statement timeout is far above the budget: only the client-side deadline can answer.
    let app = spawn_app_with(|s| {
        s.db_statement_timeout_ms = 60_000;
        s.limits.request_timeout_ms = 1000;
    })
    .await;
    let alice = app.user("Alice").await;
    let lock = lock_identities(&app).await;
    assert_unavailable(&app, &alice, Duration::from_millis(2500)).await;
    drop(lock);
    assert_eq!(timed_get(&app, &alice, "/boxes/joined").await.0, 200);
}

#[tokio::test]
async fn a_post_answered_503_is_never_stored_even_when_postgres_resumes_later() {
    let app = spawn_app_with(|s| {
        s.db_statement_timeout_ms = 60_000;
        s.limits.request_timeout_ms = 1000;
    })
    .await;
    let alice = app.user("Alice").await;
    let bx = app.create_box(&alice, "Held").await;
    let box_id = bx["id"].as_str().unwrap().to_owned();
    // The box row locked by another transaction: the post's pipeline (COMMIT included) is sent
    // and waits at the box lock past the request's deadline.
    let (holder, conn) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    holder.batch_execute(&format!("BEGIN; SELECT 1 FROM boxes.boxes WHERE id = '{box_id}' FOR UPDATE")).await.unwrap();

    let started = Instant::now();
    let res = app
        .post_event(
            &alice,
            &box_id,
            serde_json::json!({"type": "msg.text", "content": {"encrypted": "bGF0ZQ", "public_key": "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw"}}),
        )
        .await;
    assert_eq!(res.status(), 503, "answered {:?} after {:?}", res.status(), started.elapsed());
    assert!(started.elapsed() < Duration::from_millis(2500), "answered after {:?}", started.elapsed());

    // The lock is released: the held transaction goes on, reaches its deadline check too late
    // and is rolled back instead of committing behind the 503.
    holder.batch_execute("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let check = crate::helpers::db(&app).await;
    let stored: i64 = check
        .query_one("SELECT count(*) FROM boxes.events WHERE box_id = $1::text::uuid AND type = 'msg.text'", &[&box_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "the post answered 503 was stored");
    // And the box takes posts again.
    app.say(&alice, &box_id, "b250aW1l").await;
}

/// Sends a POST head announcing a 100-byte body and only 10 bytes of it.
async fn stalled_post(port: u16, path: &str, auth: Option<&str>) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"title\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// Reads until the server closes the connection; what it sent and when it closed.
pub async fn read_to_close(s: &mut tokio::net::TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "connection still open after {limit:?}: {}", String::from_utf8_lossy(&out));
    (String::from_utf8_lossy(&out).into_owned(), started.elapsed())
}

#[tokio::test]
async fn a_stalled_body_is_408_and_the_connection_closed() {
    let app = spawn_app_with(|s| {
        s.limits.body_read_timeout_ms = 800;
        s.limits.body_reads_max = 1;
    })
    .await;
    let alice = app.user("Alice").await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let mut first = stalled_post(port, "/boxes", Some(&alice.session.bearer())).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // One body at a time: a second stalled sender is refused at once.
    let mut second = stalled_post(port, "/boxes", Some(&alice.session.bearer())).await;
    let (answer, took) = read_to_close_or_answer(&mut second).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(took < Duration::from_millis(500), "{took:?}");

    let (answer, took) = read_to_close(&mut first, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""body":"timed_out""#) && answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert!(took < Duration::from_millis(1500), "answered and closed after {took:?}");
}

/// The first answer on a connection (the server may keep it open).
async fn read_to_close_or_answer(s: &mut tokio::net::TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("an answer").unwrap();
    (String::from_utf8_lossy(&buf[..n]).into_owned(), started.elapsed())
}
