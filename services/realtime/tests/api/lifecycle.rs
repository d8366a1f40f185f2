//! §9.2: how sockets end. Revocation and expiry (4001), slow consumers (1013), oversized frames
//! (1009), idle sockets, lost Redis subscriptions (1011) and graceful shutdown (1001).

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::IdentityId;
use futures_util::StreamExt;
use serde_json::json;
use test_support::{TestKeys, TokenOptions};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

#[tokio::test]
async fn session_revoked_closes_that_session_with_4001_and_is_not_forwarded() {
    let app = spawn_app().await;
    let revoked = app.session();
    let kept = app.keys.session(revoked.identity);
    let mut ws_revoked = app.open(&revoked).await;
    let mut ws_revoked_2 = app
        .open(
            &app.keys
                .session_with(revoked.identity, TokenOptions { sid: Some(revoked.sid), ..TokenOptions::default() }),
        )
        .await;
    let mut ws_kept = app.open(&kept).await;

    publish(revoked.identity, &json!({"type": "session.revoked", "object": {"sid": revoked.sid}}).to_string()).await;
    assert_eq!(expect_close(&mut ws_revoked, WAIT).await, (4001, 0));
    assert_eq!(expect_close(&mut ws_revoked_2, WAIT).await, (4001, 0));
    expect_silence(&mut ws_kept, Duration::from_millis(300)).await;

    let payload = r#"{"type":"event.new","object":{}}"#;
    publish(revoked.identity, payload).await;
    assert_eq!(next_text(&mut ws_kept, WAIT).await.as_deref(), Some(payload));
}

#[tokio::test]
async fn the_socket_closes_with_4001_when_the_token_expires() {
    let app = spawn_app().await;
    let s = app.keys.session_with(IdentityId::new_v4(), TokenOptions { ttl_secs: 3, ..TokenOptions::default() });
    let opened = Instant::now();
    let mut ws = app.open(&s).await;
    let (code, _) = expect_close(&mut ws, Duration::from_secs(8)).await;
    assert_eq!(code, 4001);
    let lived = opened.elapsed();
    assert!(lived >= Duration::from_millis(1500) && lived < Duration::from_secs(5), "closed after {lived:?}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_1013_and_others_keep_receiving() {
    let app = spawn_app().await;
    let stalled = app.session();
    let reader = app.keys.session(stalled.identity);
    let mut ws_stalled = app.open(&stalled).await;
    let mut ws_reader = app.open(&reader).await;

    // 300 messages of 60 KB: far more than the kernel buffers, actix's buffer and the queue of 64.
    const COUNT: usize = 300;
    let filler = "x".repeat(60_000);
    let publisher = tokio::spawn(async move {
        let mut conn = test_support::redis_conn().await;
        for i in 0..COUNT {
            let payload = format!(r#"{{"type":"event.new","object":{{"n":{i},"pad":"{filler}"}}}}"#);
            let _: i64 = redis::cmd("PUBLISH")
                .arg(format!("user_{}:ws", stalled.identity))
                .arg(payload)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    });
    let started = Instant::now();
    for i in 0..COUNT {
        let text =
            next_text(&mut ws_reader, Duration::from_secs(10)).await.unwrap_or_else(|| panic!("reader stopped at {i}"));
        assert!(text.starts_with(&format!(r#"{{"type":"event.new","object":{{"n":{i},"#)));
    }
    publisher.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));

    // The stalled client finally reads: what was already on the wire, then the close frame.
    let (code, delivered) = expect_close(&mut ws_stalled, Duration::from_secs(20)).await;
    assert_eq!(code, 1013);
    assert!(delivered < COUNT, "the stalled socket got {delivered} of {COUNT}");
    assert_eq!(app.handle.hub().stats().sockets, 1);
}

#[tokio::test]
async fn an_oversized_client_frame_closes_with_1009() {
    let app = spawn_app().await;
    let s = app.session();
    let mut ws = app.open(&s).await;
    send_text(&mut ws, &"y".repeat(8 * 1024 + 1)).await;
    assert_eq!(expect_close(&mut ws, WAIT).await.0, 1009);

    // At the limit is fine.
    let mut ws = app.open(&s).await;
    send_text(&mut ws, &"y".repeat(8 * 1024)).await;
    expect_silence(&mut ws, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn pings_keep_a_reading_client_and_silence_closes_an_idle_one() {
    let keys = Arc::new(TestKeys::generate());
    let app = spawn_app_with(keys, |s| {
        s.ping_interval_ms = 200;
        s.idle_timeout_ms = 1_000;
    })
    .await;
    let s = app.session();
    let mut reading = app.open(&s).await;
    // A raw socket that reads nothing and writes nothing: a websocket client library would
    // answer the queued pings as soon as it reads, and fail writing them once the server,
    // after its close frame and grace period, has closed the connection.
    let (mut idle, idle_read) =
        raw_handshake_at(app.port, &handshake_request_at(app.port, &app.keys.session(s.identity))).await;

    // The reading client answers pings (tungstenite does it while reading) and stays open.
    let until = Instant::now() + Duration::from_millis(2_500);
    let mut pings = 0;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, reading.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Close(frame)))) => panic!("reading client closed: {frame:?}"),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => break,
        }
    }
    assert!(pings >= 5, "only {pings} pings");

    // The idle client read nothing, so it never answered a ping: closed after the idle timeout.
    assert_eq!(raw_close_code(&mut idle, idle_read, WAIT).await, Some(1001));
}

#[tokio::test]
async fn a_lost_subscription_closes_sockets_with_1011_and_the_subscriber_reconnects() {
    let app = spawn_app().await;
    let s = app.session();
    let mut ws = app.open(&s).await;
    let addr = app.handle.hub().subscriber_addr().expect("subscriber address");

    // Kill only this process's subscriber connection, server side.
    let mut conn = test_support::redis_conn().await;
    let killed: i64 =
        redis::cmd("CLIENT").arg("KILL").arg("ADDR").arg(addr.to_string()).query_async(&mut conn).await.unwrap();
    assert_eq!(killed, 1);
    assert_eq!(expect_close(&mut ws, WAIT).await.0, 1011);

    assert!(
        eventually(WAIT, || app.handle.hub().is_connected() && app.handle.hub().subscriber_addr() != Some(addr)).await,
        "subscriber did not reconnect"
    );
    let mut again = app.open(&app.keys.session(s.identity)).await;
    let payload = r#"{"type":"event.new","object":{"after":"reconnect"}}"#;
    publish(s.identity, payload).await;
    assert_eq!(next_text(&mut again, WAIT).await.as_deref(), Some(payload));
}

#[tokio::test]
async fn sockets_opened_while_redis_is_away_get_ready_after_the_reconnect() {
    let app = spawn_app().await;
    let s = app.session();
    let _first = app.open(&s).await;
    let addr = app.handle.hub().subscriber_addr().expect("subscriber address");
    let mut conn = test_support::redis_conn().await;
    let _: i64 =
        redis::cmd("CLIENT").arg("KILL").arg("ADDR").arg(addr.to_string()).query_async(&mut conn).await.unwrap();
    // Whenever this one lands, before or after the reconnect, it must end up subscribed.
    let mut ws = app.open(&app.keys.session(s.identity)).await;
    let payload = r#"{"type":"ack","object":{}}"#;
    publish(s.identity, payload).await;
    assert_eq!(next_text(&mut ws, WAIT).await.as_deref(), Some(payload));
}

#[tokio::test]
async fn graceful_shutdown_sends_close_frames() {
    let app = spawn_app().await;
    let s = app.session();
    let mut ws = app.open(&s).await;
    app.handle.stop();
    assert_eq!(expect_close(&mut ws, WAIT).await.0, 1001);
}

#[tokio::test]
async fn a_logout_between_the_handshake_and_the_subscription_still_closes_the_socket_with_4001() {
    let proxy = RedisProxy::start().await;
    let keys = Arc::new(TestKeys::generate());
    let url = proxy.url.clone();
    let app = spawn_app_with(keys, |s| s.redis.url = url.into()).await;
    let s = app.session();
    assert!(eventually(WAIT, || app.handle.hub().subscriber_addr().is_some()).await, "subscriber not connected");
    // The subscriber's SUBSCRIBE for this identity will not reach Redis until released.
    proxy.hold(app.handle.hub().subscriber_addr().unwrap());

    let url = format!("{}?access_token={}", app.ws_url(s.identity), s.token);
    let (mut ws, response) = tokio_tungstenite::connect_async(url).await.expect("handshake");
    assert_eq!(response.status().as_u16(), 101);
    // Logout, as auth-bridge does it: the marker, then `session.revoked`, which nobody hears yet.
    let mut conn = test_support::redis_conn().await;
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(domain::realtime::revoked_sid_key(s.sid))
        .arg(1)
        .arg("EX")
        .arg(60)
        .ignore()
        .cmd("PUBLISH")
        .arg(format!("user_{}:ws", s.identity))
        .arg(json!({"type": "session.revoked", "object": {"sid": s.sid}}).to_string())
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.release();
    // Once subscribed, the socket reads the marker again instead of sending `ready`.
    assert_eq!(expect_close(&mut ws, WAIT).await, (4001, 0));
}

#[tokio::test]
async fn sockets_are_capped_per_identity_with_429() {
    let app = spawn_app().await;
    let s = app.session();
    let mut open = Vec::new();
    for _ in 0..16 {
        open.push(app.open(&app.keys.session(s.identity)).await);
    }
    let (status, body) =
        refused(app.upgrade_request(&app.ws_url(s.identity)).header("Authorization", s.bearer()).send().await.unwrap())
            .await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], "too_many_requests");
    assert_eq!(body["details"], json!({}));
    // Other identities are not affected, and a socket that closes frees its place.
    let _other = app.open(&app.session()).await;
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    assert!(eventually(WAIT, || app.handle.hub().stats().sockets == 16).await);
    let _again = app.open(&s).await;
}

#[tokio::test]
async fn sockets_are_capped_per_process_with_429() {
    let keys = Arc::new(TestKeys::generate());
    let app = spawn_app_with(keys, |s| s.max_sockets = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(app.open(&app.session()).await);
    }
    let s = app.session();
    let (status, body) =
        refused(app.upgrade_request(&app.ws_url(s.identity)).header("Authorization", s.bearer()).send().await.unwrap())
            .await;
    assert_eq!((status, body["code"].as_str()), (429, Some("too_many_requests")));
    assert_eq!(body["desc"], "too many sockets open");
    drop(open.pop());
    assert!(eventually(WAIT, || app.handle.hub().stats().sockets == 2).await);
    let _now = app.open(&s).await;
}
