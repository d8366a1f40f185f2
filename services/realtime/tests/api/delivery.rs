//! §9.3 and §9.5: verbatim fan-out to every socket of an identity and only to it, the client
//! `ack`, and several processes each serving their own sockets.

use std::sync::Arc;
use std::time::Duration;

use domain::{BoxId, IdentityId};
use serde_json::{json, Value};
use test_support::TestKeys;

use crate::helpers::*;

#[tokio::test]
async fn a_publish_reaches_every_socket_of_the_identity_verbatim_and_no_other() {
    let app = spawn_app().await;
    let alice_phone = app.session();
    let alice_laptop = app.keys.session(alice_phone.identity);
    let bob = app.session();
    let mut a1 = app.open(&alice_phone).await;
    let mut a2 = app.open(&alice_laptop).await;
    let mut b = app.open(&bob).await;

    // Odd spacing and key order: the text must arrive exactly as published.
    let payload = r#"{ "object" : {"z":1,"a":[1, 2],"box_id":"x"},"type":"event.new" }"#;
    publish(alice_phone.identity, payload).await;
    assert_eq!(next_text(&mut a1, WAIT).await.as_deref(), Some(payload));
    assert_eq!(next_text(&mut a2, WAIT).await.as_deref(), Some(payload));
    expect_silence(&mut b, Duration::from_millis(300)).await;

    let for_bob = r#"{"type":"box.settings","object":{"muted":true}}"#;
    publish(bob.identity, for_bob).await;
    assert_eq!(next_text(&mut b, WAIT).await.as_deref(), Some(for_bob));
    expect_silence(&mut a1, Duration::from_millis(300)).await;
    assert_eq!(app.handle.hub().stats().sockets, 3);
}

#[tokio::test]
async fn ack_resets_the_counter_and_is_echoed_to_every_socket() {
    let app = spawn_app().await;
    let s1 = app.session();
    let s2 = app.keys.session(s1.identity);
    let mut ws1 = app.open(&s1).await;
    let mut ws2 = app.open(&s2).await;
    let box_id = BoxId::new_v4();
    let key = format!("box_events_count:{}:{box_id}", s1.identity);
    let mut conn = test_support::redis_conn().await;
    let _: () = redis::cmd("SET").arg(&key).arg(5).arg("EX").arg(60).query_async(&mut conn).await.unwrap();

    let ack = json!({"type": "ack", "object": {"sender_id": s1.identity, "box_id": box_id}});
    send_text(&mut ws1, &ack.to_string()).await;
    for ws in [&mut ws1, &mut ws2] {
        let mut echo: Value = serde_json::from_str(&next_text(ws, WAIT).await.expect("ack echo")).unwrap();
        // The echo is recorded in the identity's history like any envelope.
        let position = echo.as_object_mut().unwrap().remove("position").expect("position");
        assert!(domain::realtime::Position::parse(position.as_str().unwrap()).is_some());
        assert_eq!(echo, ack);
    }
    let exists: bool = redis::cmd("EXISTS").arg(&key).query_async(&mut conn).await.unwrap();
    assert!(!exists, "counter key deleted");
}

#[tokio::test]
async fn an_ack_for_another_identity_or_garbage_is_ignored() {
    let app = spawn_app().await;
    let s = app.session();
    let mut ws = app.open(&s).await;
    let other = IdentityId::new_v4();
    let box_id = BoxId::new_v4();
    let key = format!("box_events_count:{other}:{box_id}");
    let mut conn = test_support::redis_conn().await;
    let _: () = redis::cmd("SET").arg(&key).arg(3).arg("EX").arg(60).query_async(&mut conn).await.unwrap();
    let mut watcher = test_support::Subscriber::new(&[format!("user_{other}:ws")]).await.unwrap();

    send_text(&mut ws, &json!({"type": "ack", "object": {"sender_id": other, "box_id": box_id}}).to_string()).await;
    send_text(&mut ws, "not json").await;
    send_text(&mut ws, r#"{"type":"msg.text","object":{}}"#).await;
    expect_silence(&mut ws, Duration::from_millis(500)).await;
    assert!(watcher.next(Duration::from_millis(200)).await.is_none());
    let count: i64 = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
    assert_eq!(count, 3);

    // The socket is still usable afterwards.
    publish(s.identity, r#"{"type":"ack","object":{}}"#).await;
    assert!(next_text(&mut ws, WAIT).await.is_some());
}

#[tokio::test]
async fn two_processes_each_deliver_to_their_own_sockets() {
    let keys = Arc::new(TestKeys::generate());
    let one = spawn_app_with(Arc::clone(&keys), |_| {}).await;
    let two = spawn_app_with(Arc::clone(&keys), |_| {}).await;
    let s1 = one.session();
    let s2 = keys.session(s1.identity);
    let mut on_one = one.open(&s1).await;
    let mut on_two = two.open(&s2).await;

    let payload = r#"{"type":"box.delete","object":{"id":"b"}}"#;
    publish(s1.identity, payload).await;
    assert_eq!(next_text(&mut on_one, WAIT).await.as_deref(), Some(payload));
    assert_eq!(next_text(&mut on_two, WAIT).await.as_deref(), Some(payload));
    expect_silence(&mut on_one, Duration::from_millis(200)).await;
    assert_eq!(one.handle.hub().stats().sockets, 1);
    assert_eq!(two.handle.hub().stats().sockets, 1);
}

#[tokio::test]
async fn the_last_socket_leaving_unsubscribes_the_identity() {
    let app = spawn_app().await;
    let s = app.session();
    let ws = app.open(&s).await;
    let channel = format!("user_{}:ws", s.identity);
    let conn = test_support::redis_conn().await;
    let subscribers = |conn: redis::aio::MultiplexedConnection| {
        let channel = channel.clone();
        async move {
            let mut conn = conn;
            let counts: Vec<(String, i64)> =
                redis::cmd("PUBSUB").arg("NUMSUB").arg(&channel).query_async(&mut conn).await.unwrap();
            counts[0].1
        }
    };
    assert_eq!(subscribers(conn.clone()).await, 1);
    drop(ws);
    let mut gone = false;
    for _ in 0..100 {
        if subscribers(conn.clone()).await == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "channel still subscribed after the last socket left");
    assert!(eventually(WAIT, || app.handle.hub().stats().sockets == 0).await);
}
