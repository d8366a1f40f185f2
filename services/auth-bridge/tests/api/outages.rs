//! Redis going away and coming back empty, on a redis-server of the test's own: every Redis call
//! answers within its bound, requests are not held by the reconnection, and the revocation
//! markers are loaded again from PostgreSQL.

use std::time::{Duration, Instant};

use crate::helpers::*;
use domain::auth::Verifier;
use domain::realtime::{revoked_sid_key, REVOCATIONS_LOADED_KEY};
use serde_json::Value;
use test_support::PrivateRedis;

const REDIS_PORT: u16 = 17011;

async fn timed(req: reqwest::RequestBuilder) -> (u16, Duration) {
    let started = Instant::now();
    let res = req.timeout(Duration::from_secs(30)).send().await.unwrap();
    (res.status().as_u16(), started.elapsed())
}

async fn get(redis: &PrivateRedis, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query_async(&mut redis.conn().await).await.unwrap()
}

/// Polls until `key` is set in `redis`; how long that took.
async fn wait_for_key(redis: &PrivateRedis, key: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    while get(redis, key).await.is_none() {
        assert!(started.elapsed() < limit, "{key} not set within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

fn logout(app: &TestApp, login: &Value) -> reqwest::RequestBuilder {
    app.http
        .post(app.url("/auth/logout"))
        .header("Authorization", format!("Bearer {}", login["access_token"].as_str().unwrap()))
}

fn sid_of(app: &TestApp, login: &Value) -> domain::SessionId {
    let verifier = Verifier::from_public_pems(&[app.keys.public_pem.as_str()], test_support::ISSUER).unwrap();
    verifier.verify(login["access_token"].as_str().unwrap()).unwrap().sid
}

#[tokio::test]
async fn a_redis_restart_neither_holds_requests_nor_revives_sessions() {
    let mut redis = PrivateRedis::start(REDIS_PORT).await;
    let app = spawn_app_with(Options { redis_url: Some(redis.url()), ..Options::default() }).await;
    // auth-bridge marks the (empty) Redis as loaded by itself.
    wait_for_key(&redis, REVOCATIONS_LOADED_KEY, Duration::from_secs(3)).await;
    let early = app.login_ok("alice").await;
    let during = app.login_ok("bob").await;
    let after = app.login_ok("carol").await;
    assert_eq!(logout(&app, &early).send().await.unwrap().status(), 204);
    assert!(get(&redis, &revoked_sid_key(sid_of(&app, &early))).await.is_some());

    redis.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let (status, took) = timed(app.http.get(app.url("/readyz"))).await;
        assert_eq!(status, 503, "readyz while Redis is down");
        assert!(took < Duration::from_millis(1500), "readyz took {took:?}");
    }
    // Revoked in PostgreSQL, but the marker cannot be written: 503, quickly.
    let (status, took) = timed(logout(&app, &during)).await;
    assert_eq!(status, 503, "logout while Redis is down");
    assert!(took < Duration::from_millis(1500), "logout took {took:?}");

    redis.restart().await;
    let restarted = Instant::now();
    loop {
        let (status, took) = timed(app.http.get(app.url("/readyz"))).await;
        assert!(took < Duration::from_millis(1500), "readyz took {took:?} after the restart");
        if status == 200 {
            break;
        }
        assert!(restarted.elapsed() < Duration::from_secs(2), "not ready 2 s after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, took) = timed(logout(&app, &after)).await;
    assert_eq!(status, 204, "logout after the restart");
    assert!(took < Duration::from_millis(1500), "logout took {took:?}");
    assert!(get(&redis, &revoked_sid_key(sid_of(&app, &after))).await.is_some(), "the logout took effect");

    // The restarted Redis was empty: the markers of the sessions revoked before (one announced,
    // one whose announcement failed) come back from PostgreSQL, and the loaded flag with them.
    let took = wait_for_key(&redis, REVOCATIONS_LOADED_KEY, Duration::from_secs(2)).await;
    eprintln!("loaded flag back {took:?} after readiness");
    assert!(get(&redis, &revoked_sid_key(sid_of(&app, &early))).await.is_some(), "marker of the early logout");
    assert!(get(&redis, &revoked_sid_key(sid_of(&app, &during))).await.is_some(), "marker of the failed logout");
    let ttl: i64 = redis::cmd("TTL")
        .arg(revoked_sid_key(sid_of(&app, &early)))
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert!(ttl > 3000 && ttl <= 3660, "a reloaded marker lives as long as the session's tokens: {ttl}");
    // And so do their entries in the set verifiers load.
    for login in [&early, &during, &after] {
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(domain::realtime::REVOKED_SIDS_KEY)
            .arg(sid_of(&app, login).to_string())
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();
        assert!(score.is_some(), "entry in auth:revoked_sids");
    }
}

#[tokio::test]
async fn a_stalled_login_body_is_408_and_the_connection_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limits = web_kit::limits::LimitSettings { body_read_timeout_ms: 800, ..Default::default() };
    let app = spawn_app_with_limits(Options::default(), limits).await;
    let port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"auth_code\":")
        .await
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&out);
    assert!(read.is_ok(), "connection still open: {answer}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""body":"timed_out""#), "{answer}");
    assert!(took < Duration::from_secs(3), "answered and closed after {took:?}");
}

#[tokio::test]
async fn a_statement_timeout_is_503_not_500() {
    // The request budget is far above the 5 s statement timeout: only the latter can answer.
    let limits = web_kit::limits::LimitSettings { request_timeout_ms: 60_000, ..Default::default() };
    let app = spawn_app_with_limits(Options::default(), limits).await;
    let login = app.login_ok("alice").await;
    let (holder, conn) = tokio_postgres::connect(&app.db_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    holder.batch_execute("BEGIN; LOCK TABLE auth.sessions IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let refresh =
        app.http.post(app.url("/auth/refresh")).json(&serde_json::json!({"refresh_token": login["refresh_token"]}));
    let (status, took) = timed(refresh).await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(status, 503, "a refresh held past the statement timeout");
    assert!(took < Duration::from_secs(8), "answered after {took:?}");
}
