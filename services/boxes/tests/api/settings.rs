//! Box settings (§7.13) and the REST ack of unread counters (§7.10).

use std::time::Duration;

use domain::realtime::{counter_key, user_channel};
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::{json, Value};
use test_support::Subscriber;

use boxes_client::body::Settings;

use crate::helpers::{assert_error, assert_refused, bid, seed_box, spawn_app, Auth};

const WAIT: Duration = Duration::from_secs(2);
const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn settings_default_then_stored_and_announced() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let box_id = seed_box(&app, &alice, &[&bob]).await;
    let path = format!("/box-users/{}/boxes/{box_id}/settings", bob.id);

    let res = app.get(&bob, &path).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"identity_id": bob.id.to_string(), "box_id": box_id, "muted": false}));

    let mut sub = Subscriber::new(&[user_channel(bob.id), user_channel(alice.id)]).await.unwrap();
    let (bid, bobs) = (bid(&box_id), app.api(&bob));
    app.api_with_cookies(&bob).set_box_settings(bob.id, bid, &Settings { muted: true }).await.unwrap();
    let (channel, msg) = sub.next_json(WAIT).await.expect("box.settings published");
    assert_eq!(channel, user_channel(bob.id));
    assert_eq!(
        msg,
        json!({"type": "box.settings", "object": {"identity_id": bob.id.to_string(), "box_id": box_id, "muted": true}})
    );
    assert!(sub.drain(QUIET).await.is_empty(), "only the caller is told");

    assert!(bobs.box_settings(bob.id, bid).await.unwrap().muted);
    // Settings are per identity.
    assert!(!app.api(&alice).box_settings(alice.id, bid).await.unwrap().muted);

    // Idempotent, and back again.
    bobs.set_box_settings(bob.id, bid, &Settings { muted: true }).await.unwrap();
    bobs.set_box_settings(bob.id, bid, &Settings { muted: false }).await.unwrap();
    assert!(!bobs.box_settings(bob.id, bid).await.unwrap().muted);
}

#[tokio::test]
async fn settings_need_self_and_membership() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let eve = app.user("Eve").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    let alices = format!("/box-users/{}/boxes/{box_id}/settings", alice.id);
    let eves = format!("/box-users/{}/boxes/{box_id}/settings", eve.id);

    let res = app.get(&eve, &alices).await;
    let body = assert_error(res, 403, "id", "forbidden").await;
    assert_eq!(body["origin"], "path");
    let (bid, eves_api, muted) = (bid(&box_id), app.api(&eve), Settings { muted: true });
    assert_refused(eves_api.set_box_settings(alice.id, bid, &muted).await, 403, "id", "forbidden");

    let mut sub = Subscriber::new(&[user_channel(eve.id)]).await.unwrap();
    let res = app.get(&eve, &eves).await;
    assert_error(res, 403, "reason", "not_member").await;
    assert_refused(eves_api.set_box_settings(eve.id, bid, &muted).await, 403, "reason", "not_member");
    let unknown = format!("/box-users/{}/boxes/{}/settings", eve.id, uuid::Uuid::new_v4());
    let res = app.get(&eve, &unknown).await;
    assert_error(res, 403, "reason", "not_member").await;
    assert!(sub.drain(QUIET).await.is_empty(), "nothing published on refusal");
}

#[tokio::test]
async fn settings_validation_comes_before_path_identity() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let eve = app.user("Eve").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    let alices = format!("/box-users/{}/boxes/{box_id}/settings", alice.id);

    for body in [json!({}), json!({"muted": null}), json!({"muted": "yes"})] {
        let res = app.send(&alice, Method::PUT, &alices, Some(body.clone())).await;
        let err = assert_error(
            res,
            400,
            "muted",
            if body.get("muted").is_some_and(Value::is_string) { "invalid" } else { "required" },
        )
        .await;
        assert_eq!(err["origin"], "body");
    }
    // Invalid body and another identity: the 400 wins.
    let res = app.send(&eve, Method::PUT, &alices, Some(json!({}))).await;
    assert_error(res, 400, "muted", "required").await;
    let res = app.get(&alice, &format!("/box-users/{}/boxes/nope/settings", alice.id)).await;
    assert_error(res, 400, "bid", "malformed").await;
    let res = app.get(&eve, &format!("/box-users/{}/boxes/nope/settings", alice.id)).await;
    assert_error(res, 400, "bid", "malformed").await;
    let res = app.get(&alice, &format!("/box-users/nope/boxes/{box_id}/settings")).await;
    assert_error(res, 400, "id", "malformed").await;
}

#[tokio::test]
async fn ack_resets_the_counter_and_tells_the_caller() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let box_id = seed_box(&app, &alice, &[&bob]).await;
    let bid = domain::BoxId::parse(&box_id).unwrap();
    let mut redis = test_support::redis_conn().await;
    let _: () = redis.set(counter_key(bob.id, bid), 5).await.unwrap();
    let _: () = redis.set(counter_key(alice.id, bid), 3).await.unwrap();

    let mut sub = Subscriber::new(&[user_channel(bob.id), user_channel(alice.id)]).await.unwrap();
    app.api_with_cookies(&bob).ack(bid, bob.id).await.unwrap();
    let (channel, msg) = sub.next_json(WAIT).await.expect("ack published");
    assert_eq!(channel, user_channel(bob.id));
    assert_eq!(msg, json!({"type": "ack", "object": {"sender_id": bob.id.to_string(), "box_id": box_id}}));
    assert!(sub.drain(QUIET).await.is_empty());

    let bobs: Option<i64> = redis.get(counter_key(bob.id, bid)).await.unwrap();
    assert_eq!(bobs, None, "counter reset");
    let alices: Option<i64> = redis.get(counter_key(alice.id, bid)).await.unwrap();
    assert_eq!(alices, Some(3), "other counters untouched");

    // Idempotent; membership is not checked, so any box id is accepted.
    app.api(&bob).ack(bid, bob.id).await.unwrap();
    let other = format!("/boxes/{}/new-events-count/ack", uuid::Uuid::new_v4());
    let res =
        app.send(&bob, Method::PUT, &other, Some(json!({"identity_id": bob.id.to_string().to_uppercase()}))).await;
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn ack_is_for_the_caller_only() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let box_id = seed_box(&app, &alice, &[&bob]).await;
    let bid = domain::BoxId::parse(&box_id).unwrap();
    let mut redis = test_support::redis_conn().await;
    let _: () = redis.set(counter_key(alice.id, bid), 3).await.unwrap();
    let path = format!("/boxes/{box_id}/new-events-count/ack");

    let mut sub = Subscriber::new(&[user_channel(bob.id), user_channel(alice.id)]).await.unwrap();
    let body = assert_refused(app.api(&bob).ack(bid, alice.id).await, 403, "identity_id", "forbidden");
    assert_eq!(body.code, domain::ErrorCode::Forbidden);
    assert!(sub.drain(QUIET).await.is_empty());
    let alices: Option<i64> = redis.get(counter_key(alice.id, bid)).await.unwrap();
    assert_eq!(alices, Some(3));

    let res = app.send(&bob, Method::PUT, &path, Some(json!({}))).await;
    assert_error(res, 400, "identity_id", "required").await;
    let res = app.send(&bob, Method::PUT, &path, Some(json!({"identity_id": "x"}))).await;
    assert_error(res, 400, "identity_id", "malformed").await;
    let res = app
        .send(&bob, Method::PUT, "/boxes/nope/new-events-count/ack", Some(json!({"identity_id": bob.id.to_string()})))
        .await;
    let body = assert_error(res, 400, "id", "malformed").await;
    assert_eq!(body["origin"], "path");
    let res = app
        .send_as(&bob, Method::PUT, &path, Some(json!({"identity_id": bob.id.to_string()})), Auth::CookieNoCsrf)
        .await;
    assert_error(res, 403, "X-CSRF-Token", "required").await;
}

#[tokio::test]
async fn muting_stops_the_unread_counter_and_ack_clears_it() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let created = app.create_box(&alice, "Project").await;
    let box_id = created["id"].as_str().unwrap().to_owned();
    app.add_member(&alice, &bob, &box_id).await;
    let bobs_settings = format!("/box-users/{}/boxes/{box_id}/settings", bob.id);
    let count = |v: &Value| v["events_count"].as_i64().unwrap();

    let res = app.send(&bob, Method::PUT, &bobs_settings, Some(json!({"muted": true}))).await;
    assert_eq!(res.status(), 204);
    app.say(&alice, &box_id, "bXV0ZWQ").await;
    let seen: Value = app.get(&bob, &format!("/boxes/{box_id}")).await.json().await.unwrap();
    assert_eq!(count(&seen), 0, "muted: no unread count");
    assert_eq!(seen["settings"], json!({"identity_id": bob.id.to_string(), "box_id": box_id, "muted": true}));

    let res = app.send(&bob, Method::PUT, &bobs_settings, Some(json!({"muted": false}))).await;
    assert_eq!(res.status(), 204);
    app.say(&alice, &box_id, "bG91ZA").await;
    app.say(&alice, &box_id, "bG91ZDI").await;
    let seen: Value = app.get(&bob, &format!("/boxes/{box_id}")).await.json().await.unwrap();
    assert_eq!(count(&seen), 2);
    assert_eq!(seen["settings"]["muted"], false);

    let res = app
        .send(
            &bob,
            Method::PUT,
            &format!("/boxes/{box_id}/new-events-count/ack"),
            Some(json!({"identity_id": bob.id.to_string()})),
        )
        .await;
    assert_eq!(res.status(), 204);
    let seen: Value = app.get(&bob, &format!("/boxes/{box_id}")).await.json().await.unwrap();
    assert_eq!(count(&seen), 0);
}
