//! What reaches Redis for each row of §6.4: `event.new` per recipient, unread counters,
//! `notification` and `box.delete`. Subscriptions are confirmed before acting.

use std::time::Duration;

use boxes_client::body::NewEvent;
use domain::realtime::{counter_key, user_channel};
use redis::AsyncCommands;
use serde_json::{json, Value};
use test_support::Subscriber;

use crate::boxes::{assert_view, box_id, delete_box, get_json, keys, set};
use crate::helpers::{bid, db, spawn_app, test_key, TestApp, User};

const QUIET: Duration = Duration::from_millis(600);

async fn subscribe(users: &[&User]) -> Subscriber {
    let channels: Vec<String> = users.iter().map(|u| user_channel(u.id)).collect();
    Subscriber::new(&channels).await.unwrap()
}

/// Every envelope published so far, per recipient.
struct Inbox(Vec<(String, Value)>);

impl Inbox {
    async fn collect(sub: &mut Subscriber) -> Inbox {
        Inbox(sub.drain(QUIET).await)
    }

    fn of(&self, user: &User) -> Vec<Value> {
        let channel = user_channel(user.id);
        self.0.iter().filter(|(c, _)| *c == channel).map(|(_, v)| v.clone()).collect()
    }

    /// The only envelope `user` got.
    fn one(&self, user: &User) -> Value {
        let got = self.of(user);
        assert_eq!(got.len(), 1, "{} got {got:?}", user.name);
        got[0].clone()
    }
}

async fn counter(user: &User, box_id: &str) -> i64 {
    let mut conn = test_support::redis_conn().await;
    let key = counter_key(user.id, box_id.parse().unwrap());
    let v: Option<i64> = conn.get(key).await.unwrap();
    v.unwrap_or(0)
}

async fn counters(users: &[&User], box_id: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for u in users {
        out.push(counter(u, box_id).await);
    }
    out
}

async fn mute(app: &TestApp, user: &User, box_id: &str) {
    db(app)
        .await
        .execute(
            "INSERT INTO boxes.box_settings (identity_id, box_id, muted) VALUES ($1, $2, true)",
            &[user.id.as_uuid(), &uuid::Uuid::parse_str(box_id).unwrap()],
        )
        .await
        .unwrap();
}

fn assert_event_new(envelope: &Value, kind: &str, box_id: &str) -> Value {
    assert_eq!(keys(envelope), set(&["type", "object"]));
    assert_eq!(envelope["type"], "event.new", "{envelope}");
    assert_eq!(envelope["object"]["type"], kind, "{envelope}");
    assert_eq!(envelope["object"]["box_id"], box_id);
    envelope["object"].clone()
}

fn assert_notification(envelope: &Value, kind: &str) -> Value {
    assert_eq!(envelope["type"], "notification", "{envelope}");
    let n = &envelope["object"];
    assert_eq!(keys(n), set(&["id", "type", "details", "created_at"]));
    assert!(uuid::Uuid::parse_str(n["id"].as_str().unwrap()).is_ok());
    assert!(n["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(n["type"], kind);
    n["details"].clone()
}

#[tokio::test]
async fn creation_is_announced_to_the_creator_only() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let mut sub = subscribe(&[&alice, &bob]).await;
    let b = app.create_box(&alice, "Box").await;
    let id = box_id(&b);
    let inbox = Inbox::collect(&mut sub).await;
    let e = assert_event_new(&inbox.one(&alice), "create", &id);
    assert_eq!(e["id"], b["last_event"]["id"]);
    assert_view(&e["sender"], &alice, true);
    assert!(inbox.of(&bob).is_empty());
    assert_eq!(counter(&alice, &id).await, 0);
}

#[tokio::test]
async fn messages_reach_members_and_count_for_unmuted_others() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let dave = app.user("Dave").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &bob, &id).await;
    app.add_member(&alice, &carol, &id).await;
    mute(&app, &carol, &id).await;
    let before = counters(&[&alice, &bob, &carol], &id).await;

    let mut sub = subscribe(&[&alice, &bob, &carol, &dave]).await;
    let msg = app.say(&bob, &id, "aGVsbG8").await;
    let inbox = Inbox::collect(&mut sub).await;
    let to_alice = assert_event_new(&inbox.one(&alice), "msg.text", &id);
    assert_view(&to_alice["sender"], &bob, true);
    assert_eq!(to_alice["id"], msg["id"]);
    assert_eq!(
        to_alice["content"],
        json!({"encrypted":"aGVsbG8","public_key": crate::boxes::KEY,"last_edited_at": null})
    );
    for u in [&bob, &carol] {
        let e = assert_event_new(&inbox.one(u), "msg.text", &id);
        assert_view(&e["sender"], &bob, false);
        assert_eq!(e, msg, "the sender's copy equals the response");
    }
    assert!(inbox.of(&dave).is_empty(), "outsiders get nothing");
    let after = counters(&[&alice, &bob, &carol], &id).await;
    assert_eq!(after, vec![before[0] + 1, before[1], before[2]], "members - sender - muted");
    assert_eq!(get_json(&app, &alice, &format!("/boxes/{id}")).await["events_count"], after[0]);
    let joined = get_json(&app, &alice, "/boxes/joined").await;
    assert_eq!(joined[0]["events_count"], after[0]);

    // Edits and deletions are announced with the modifier event, and count for nobody.
    let mut sub = subscribe(&[&alice, &bob, &carol, &dave]).await;
    let res = app
        .post_event(&bob, &id, json!({"type":"msg.edit","referrer_id": msg["id"],"content":{"new_encrypted":"ZWRpdA","new_public_key":"a2V5"}}))
        .await;
    assert_eq!(res.status(), 201);
    let res = app.post_event(&alice, &id, json!({"type":"msg.delete","referrer_id": msg["id"]})).await;
    assert_eq!(res.status(), 201);
    let inbox = Inbox::collect(&mut sub).await;
    for u in [&alice, &bob, &carol] {
        let got = inbox.of(u);
        assert_eq!(got.len(), 2, "{}: {got:?}", u.name);
        let edit = assert_event_new(&got[0], "msg.edit", &id);
        assert_eq!(edit["content"], json!({"new_encrypted":"ZWRpdA","new_public_key":"a2V5"}));
        assert_eq!(edit["referrer_id"], msg["id"]);
        let del = assert_event_new(&got[1], "msg.delete", &id);
        assert_eq!(del["referrer_id"], msg["id"]);
        assert_eq!(del["content"], Value::Null);
    }
    assert!(inbox.of(&dave).is_empty());
    assert_eq!(counters(&[&alice, &bob, &carol], &id).await, after);
}

#[tokio::test]
async fn join_leave_and_access_mode() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &bob, &id).await;
    let res = app
        .post_event(
            &alice,
            &id,
            json!({"type":"access.add","content":{"restriction_type":"identity_id","value": carol.id.to_string()}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let base = counters(&[&alice, &bob, &carol], &id).await;

    let mut sub = subscribe(&[&alice, &bob, &carol]).await;
    app.api(&carol).post_event(bid(&id), &NewEvent::MemberJoin).await.unwrap();
    let inbox = Inbox::collect(&mut sub).await;
    for u in [&alice, &bob, &carol] {
        let e = assert_event_new(&inbox.one(u), "member.join", &id);
        assert_view(&e["sender"], &carol, u.id == alice.id);
    }
    let after_join = counters(&[&alice, &bob, &carol], &id).await;
    assert_eq!(after_join, vec![base[0] + 1, base[1] + 1, base[2]], "members - joiner");

    mute(&app, &bob, &id).await;
    let mut sub = subscribe(&[&alice, &bob, &carol]).await;
    app.api(&carol).post_event(bid(&id), &NewEvent::MemberLeave).await.unwrap();
    let inbox = Inbox::collect(&mut sub).await;
    for u in [&alice, &bob, &carol] {
        assert_event_new(&inbox.one(u), "member.leave", &id);
    }
    let after_leave = counters(&[&alice, &bob, &carol], &id).await;
    assert_eq!(after_leave, vec![after_join[0] + 1, after_join[1], after_join[2]], "remaining members - muted");

    let mut sub = subscribe(&[&alice, &bob, &carol]).await;
    let res = app.post_event(&alice, &id, json!({"type":"state.access_mode","content":{"value":"public"}})).await;
    assert_eq!(res.status(), 201);
    let inbox = Inbox::collect(&mut sub).await;
    assert_event_new(&inbox.one(&alice), "state.access_mode", &id);
    assert_event_new(&inbox.one(&bob), "state.access_mode", &id);
    assert!(inbox.of(&carol).is_empty(), "carol left");
    assert_eq!(counters(&[&alice, &bob, &carol], &id).await, after_leave, "sender is alice, bob is muted");
}

#[tokio::test]
async fn access_rules_are_not_announced_but_invitations_are_notified() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let id = box_id(&app.create_box(&alice, "Invites").await);
    app.add_member(&alice, &bob, &id).await;

    let mut sub = subscribe(&[&alice, &bob, &carol]).await;
    let res = app
        .post_event(
            &alice,
            &id,
            json!({"type":"access.add","content":{"restriction_type":"identity_id","value": carol.id.to_string(),"auto_invite": true},"extra":{carol.key.clone(): "aW52aXRl"}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let inbox = Inbox::collect(&mut sub).await;
    assert!(inbox.of(&alice).is_empty());
    assert!(inbox.of(&bob).is_empty());
    let details = assert_notification(&inbox.one(&carol), "box.auto_invite");
    let actions = app.api(&carol).crypto_actions(carol.id).await.unwrap();
    assert_eq!(details, json!({"box_id": id, "box_title": "Invites", "cryptoaction_id": actions[0].id}));
}

#[tokio::test]
async fn kicks_are_announced_to_the_remaining_members_and_the_kicked() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let dave = app.user("Dave").await;
    let id = box_id(&app.create_box(&alice, "Kicks").await);
    app.add_member(&alice, &bob, &id).await;
    app.add_member(&alice, &carol, &id).await;
    let bob_rule = app.rule_for(&alice, &id, &bob.id.to_string()).await;
    let base = counters(&[&alice, &bob, &carol], &id).await;

    let mut sub = subscribe(&[&alice, &bob, &carol, &dave]).await;
    let res = app.post_event(&alice, &id, json!({"type":"access.rm","referrer_id": bob_rule["id"]})).await;
    assert_eq!(res.status(), 201);
    let inbox = Inbox::collect(&mut sub).await;
    let to_alice = assert_event_new(&inbox.one(&alice), "member.kick", &id);
    assert_view(&to_alice["sender"], &bob, true);
    assert_view(&to_alice["content"]["kicker"], &alice, true);
    let to_carol = assert_event_new(&inbox.one(&carol), "member.kick", &id);
    assert_view(&to_carol["content"]["kicker"], &alice, false);
    let to_bob = inbox.of(&bob);
    assert_eq!(to_bob.len(), 2, "{to_bob:?}");
    let kick = assert_event_new(&to_bob[0], "member.kick", &id);
    assert_eq!(kick["id"], to_alice["id"]);
    let details = assert_notification(&to_bob[1], "member.kick");
    assert_eq!(details, json!({"box_id": id, "box_title": "Kicks"}));
    assert!(inbox.of(&dave).is_empty());
    assert_eq!(
        counters(&[&alice, &bob, &carol], &id).await,
        vec![base[0] + 1, 0, base[2] + 1],
        "remaining - kicked; the kicked member's counter is gone"
    );
}

#[tokio::test]
async fn key_share_rotation_is_announced_without_counting() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &bob, &id).await;
    let base = counters(&[&alice, &bob], &id).await;
    let mut sub = subscribe(&[&alice, &bob]).await;
    let body = json!({"type":"state.key_share","extra":{"misakey_share":"abcd","other_share_hash": test_key("k2"),"encrypted_invitation_key_share":"abcd"}});
    assert_eq!(app.post_event(&alice, &id, body).await.status(), 201);
    let inbox = Inbox::collect(&mut sub).await;
    assert_event_new(&inbox.one(&alice), "state.key_share", &id);
    assert_event_new(&inbox.one(&bob), "state.key_share", &id);
    assert_eq!(counters(&[&alice, &bob], &id).await, base);
}

#[tokio::test]
async fn deletion_notifies_members_and_clears_counters() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let b = app.create_box(&alice, "Box").await;
    let id = box_id(&b);
    app.add_member(&alice, &bob, &id).await;
    app.say(&alice, &id, "aGk").await;
    assert!(counter(&bob, &id).await > 0);

    let mut sub = subscribe(&[&alice, &bob, &carol]).await;
    assert_eq!(delete_box(&app, &alice, &id, "delete").await.status(), 204);
    let inbox = Inbox::collect(&mut sub).await;
    let expected = json!({"type": "box.delete", "object": {"id": id, "sender_id": alice.id.to_string(), "public_key": b["public_key"]}});
    assert_eq!(inbox.one(&alice), expected);
    let to_bob = inbox.of(&bob);
    assert_eq!(to_bob.len(), 2, "{to_bob:?}");
    assert_eq!(to_bob[0], expected);
    let details = assert_notification(&to_bob[1], "box.delete");
    assert_eq!(details, json!({"box_id": id, "box_title": "Box"}));
    assert!(inbox.of(&carol).is_empty());
    assert_eq!(counters(&[&alice, &bob], &id).await, vec![0, 0]);
    let mut conn = test_support::redis_conn().await;
    let exists: bool = conn.exists(counter_key(bob.id, id.parse().unwrap())).await.unwrap();
    assert!(!exists, "the counter key is deleted");
}

#[tokio::test]
async fn contact_announces_the_box_and_invites_the_contact() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let mut sub = subscribe(&[&alice, &bob, &carol]).await;
    let body = json!({
        "contacted_identity_id": bob.id.to_string(),
        "box": {"title": "Alice - Bob", "public_key": "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw"},
        "key_share": {"misakey_share": "lBHT1vfwFAIBig5Nj+sD+w==", "other_share_hash": test_key("contact"),
                      "encrypted_invitation_key_share": "cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ="},
        "extra": {bob.key.clone(): "aW52aXRhdGlvbg=="}
    });
    let res = app.post(&alice, &format!("/box-users/{}/contact", alice.id), body).await;
    assert_eq!(res.status(), 201);
    let b: Value = res.json().await.unwrap();
    let id = box_id(&b);
    let inbox = Inbox::collect(&mut sub).await;
    let create = assert_event_new(&inbox.one(&alice), "create", &id);
    assert_eq!(create["id"], b["last_event"]["id"]);
    let details = assert_notification(&inbox.one(&bob), "box.auto_invite");
    let actions = app.api(&bob).crypto_actions(bob.id).await.unwrap();
    assert_eq!(details, json!({"box_id": id, "box_title": "Alice - Bob", "cryptoaction_id": actions[0].id}));
    assert!(inbox.of(&carol).is_empty());
}

#[tokio::test]
async fn leaving_or_being_kicked_clears_the_unread_counter() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &bob, &id).await;
    app.add_member(&alice, &carol, &id).await;
    app.say(&alice, &id, "b25l").await;
    app.say(&alice, &id, "dHdv").await;
    assert_eq!(counters(&[&bob, &carol], &id).await, vec![3, 2], "carol's join counted for bob");

    let res = app.post_event(&bob, &id, json!({"type":"member.leave"})).await;
    assert_eq!(res.status(), 201);
    assert_eq!(counter(&bob, &id).await, 0, "the leaver's counter is gone");
    assert_eq!(counter(&carol, &id).await, 3, "the leave counts for the others");
    // Rejoining starts from zero, not from what was unread before leaving.
    let res = app.post_event(&bob, &id, json!({"type":"member.join"})).await;
    assert_eq!(res.status(), 201);
    assert_eq!(get_json(&app, &bob, &format!("/boxes/{id}")).await["events_count"], 0);

    let carol_rule = app.rule_for(&alice, &id, &carol.id.to_string()).await;
    let res = app.post_event(&alice, &id, json!({"type":"access.rm","referrer_id": carol_rule["id"]})).await;
    assert_eq!(res.status(), 201);
    assert_eq!(counter(&carol, &id).await, 0, "the kicked member's counter is gone");
    assert_eq!(counter(&bob, &id).await, 1, "the kick counts for the remaining members");
}

#[tokio::test]
async fn every_envelope_is_recorded_in_the_recipients_history_with_the_position_it_was_published_with() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &bob, &id).await;
    let mut sub = subscribe(&[&bob]).await;
    app.say(&alice, &id, "aGVsbG8").await;
    let (_, traced) = sub.next(Duration::from_secs(5)).await.expect("published");
    let (published, trace) = domain::realtime::split_trace(&traced);
    assert!(trace.is_some(), "published with the request's trace: {traced}");
    let position = domain::realtime::position_of(&published).expect("published with a position").to_string();

    let mut conn = test_support::redis_conn().await;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(domain::realtime::history_key(bob.id))
        .arg(&position)
        .arg(&position)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "the published envelope is in bob's history");
    let recorded = entries[0].1.iter().find(|(k, _)| k == "e").map(|(_, v)| v.clone()).unwrap();
    assert_eq!(domain::realtime::with_position(&recorded, &position), published);
    let ttl: i64 = redis::cmd("PTTL").arg(domain::realtime::history_key(bob.id)).query_async(&mut conn).await.unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "the history expires: {ttl}");
}
