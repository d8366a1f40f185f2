//! `POST /boxes/{id}/batch-events` (issue 17): access changes by the admin, all or nothing, the
//! kicks decided once from the rules the whole batch leaves.

use std::time::Duration;

use domain::realtime::user_channel;
use reqwest::Method;
use serde_json::{json, Value};
use test_support::Subscriber;

use crate::boxes::box_id;
use boxes_client::body::{Access, NewEvent};
use domain::event::Event;
use domain::{ErrorCode, EventId};

use crate::helpers::{assert_error, assert_refused, bid, db, spawn_app, Auth, TestApp, User};

const QUIET: Duration = Duration::from_millis(600);

async fn batch(app: &TestApp, user: &User, box_id: &str, events: &[NewEvent]) -> boxes_client::Result<Vec<Event>> {
    app.api(user).batch_accesses(bid(box_id), events).await
}

fn rm(rule: &Value) -> NewEvent {
    NewEvent::AccessRm { referrer_id: EventId::parse(rule["id"].as_str().unwrap()).unwrap() }
}

fn add(restriction_type: &str, value: &str) -> NewEvent {
    let content = Access { restriction_type: restriction_type.into(), value: value.into(), auto_invite: None };
    NewEvent::AccessAdd { content, extra: None }
}

/// An event's type as the API spells it.
fn kinds(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| serde_json::to_value(e.kind).unwrap().as_str().unwrap().to_owned()).collect()
}

async fn subscribe(users: &[&User]) -> Subscriber {
    let channels: Vec<String> = users.iter().map(|u| user_channel(u.id)).collect();
    Subscriber::new(&channels).await.unwrap()
}

/// Events of every type in the box, and its members, as stored.
async fn stored(app: &TestApp, box_id: &str) -> (i64, i64) {
    let id = uuid::Uuid::parse_str(box_id).unwrap();
    let c = db(app).await;
    let events: i64 = c.query_one("SELECT count(*) FROM boxes.events WHERE box_id = $1", &[&id]).await.unwrap().get(0);
    let members: i64 =
        c.query_one("SELECT count(*) FROM boxes.members WHERE box_id = $1", &[&id]).await.unwrap().get(0);
    (events, members)
}

#[tokio::test]
async fn replacing_a_rule_in_one_batch_keeps_the_members_it_still_lets_in() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let dave = app.user("Dave").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &bob, &id).await;
    app.add_member(&alice, &carol, &id).await;
    let bob_rule = app.rule_for(&alice, &id, &bob.id.to_string()).await;
    let carol_rule = app.rule_for(&alice, &id, &carol.id.to_string()).await;
    let mut sub = subscribe(&[&alice, &bob, &carol, &dave]).await;

    // Bob's identity rule becomes an email rule that matches him: he stays, nobody hears a thing.
    let created = batch(&app, &alice, &id, &[rm(&bob_rule), add("identifier", "Bob@Example.com")]).await.unwrap();
    assert_eq!(kinds(&created), ["access.rm", "access.add"]);
    assert_eq!(created[0].referrer_id.map(|r| r.to_string()).as_deref(), bob_rule["id"].as_str());
    assert_eq!(created[1].content.as_ref().unwrap()["value"], "bob@example.com");
    assert_eq!(created[1].sender.identifier_value, "alice@example.com", "the admin's view is transparent");
    assert_eq!(app.get(&bob, &format!("/boxes/{id}")).await.status(), 200);
    assert!(sub.drain(QUIET).await.is_empty(), "access changes alone announce nothing");

    // Carol's rule goes for Dave's: she is kicked once, after both changes.
    let changes = [rm(&carol_rule), add("identity_id", &dave.id.to_string())];
    let created = batch(&app, &alice, &id, &changes).await.unwrap();
    assert_eq!(kinds(&created), ["access.rm", "access.add", "member.kick"]);
    assert_eq!(created[2].sender.id, carol.id);
    assert_eq!(created[2].content.as_ref().unwrap()["kicker"]["id"], alice.id.to_string());
    assert_error(app.get(&carol, &format!("/boxes/{id}")).await, 403, "reason", "no_access").await;
    let got = sub.drain(QUIET).await;
    let to = |u: &User| -> Vec<String> {
        got.iter()
            .filter(|(c, _)| *c == user_channel(u.id))
            .map(|(_, v)| format!("{} {}", v["type"].as_str().unwrap(), v["object"]["type"].as_str().unwrap()))
            .collect()
    };
    assert_eq!(to(&alice), ["event.new member.kick"]);
    assert_eq!(to(&bob), ["event.new member.kick"]);
    assert_eq!(to(&carol), ["event.new member.kick", "notification member.kick"]);
    assert!(to(&dave).is_empty());
    // Dave can join through his new rule.
    app.api(&dave).post_event(bid(&id), &NewEvent::MemberJoin).await.unwrap();
}

#[tokio::test]
async fn a_batch_with_one_bad_change_stores_and_publishes_nothing() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &bob, &id).await;
    let bob_rule = app.rule_for(&alice, &id, &bob.id.to_string()).await;
    let before = stored(&app, &id).await;
    let mut sub = subscribe(&[&alice, &bob]).await;
    let unknown = uuid::Uuid::new_v4().to_string();

    // The first change alone would kick bob; the second is refused, so neither happens.
    let res = batch(&app, &alice, &id, &[rm(&bob_rule), add("identity_id", &unknown)]).await;
    let body = assert_refused(res, 404, "events.1.content.value", "not_found");
    assert_eq!(body.code, ErrorCode::NotFound);
    let res = batch(&app, &alice, &id, &[add("identifier", "x@example.com"), rm(&json!({"id": unknown}))]).await;
    assert_refused(res, 404, "events.1.referrer_id", "not_found");
    // A rule removed twice: the second removal finds no active rule.
    let res = batch(&app, &alice, &id, &[rm(&bob_rule), rm(&bob_rule)]).await;
    assert_refused(res, 404, "events.1.referrer_id", "not_found");
    // The same rule added twice.
    let twice = add("identifier", "y@example.com");
    assert_refused(batch(&app, &alice, &id, &[twice.clone(), twice]).await, 409, "events.1.content.value", "conflict");
    // Validation reports every bad change and runs before anything else: bodies the client would
    // not send.
    let text = json!({"type": "msg.text", "content": {"encrypted": "aGk", "public_key": "aGk"}});
    let bad_type = json!({"type": "access.add", "content": {"restriction_type": "email_address", "value": "x"}});
    let events = json!([rm(&bob_rule), text, bad_type]);
    let res = app
        .post(&alice, &format!("/boxes/{id}/batch-events"), json!({"batch_type": "accesses", "events": events}))
        .await;
    let body = assert_error(res, 400, "events.1.type", "invalid").await;
    assert_eq!(body["details"]["events.2.content.restriction_type"], "not_supported");
    let bob_rm = serde_json::to_value(rm(&bob_rule)).unwrap();
    for (bad, key, detail) in [
        (json!({"batch_type": "messages", "events": [bob_rm]}), "batch_type", "invalid"),
        (json!({"batch_type": "accesses", "events": []}), "events", "invalid"),
        (json!({"batch_type": "accesses"}), "events", "required"),
        (json!({"events": [bob_rm]}), "batch_type", "required"),
        (json!({"batch_type": "accesses", "events": ["access.rm"]}), "events.0", "malformed"),
    ] {
        let res = app.post(&alice, &format!("/boxes/{id}/batch-events"), bad).await;
        assert_error(res, 400, key, detail).await;
    }

    assert_eq!(stored(&app, &id).await, before, "no event and no membership change");
    assert_eq!(app.get(&bob, &format!("/boxes/{id}")).await.status(), 200);
    assert!(sub.drain(QUIET).await.is_empty(), "nothing published");
}

#[tokio::test]
async fn only_the_admin_changes_accesses_and_a_key_replays_the_batch() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &bob, &id).await;
    let change = [add("identity_id", &carol.id.to_string())];
    assert_refused(batch(&app, &bob, &id, &change).await, 403, "reason", "not_admin");
    let nowhere = uuid::Uuid::new_v4().to_string();
    assert_refused(batch(&app, &alice, &nowhere, &change).await, 403, "reason", "not_member");
    let path = format!("/boxes/{id}/batch-events");
    let res = app.send_as(&alice, Method::POST, &path, Some(json!({})), Auth::CookieNoCsrf).await;
    assert_error(res, 403, "X-CSRF-Token", "required").await;
    let before = stored(&app, &id).await;

    let body = json!({"batch_type": "accesses", "events": change});
    let send = || {
        app.request(&alice, Method::POST, &format!("/boxes/{id}/batch-events"), Auth::Bearer)
            .header("Idempotency-Key", "batch-1")
            .json(&body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(stored(&app, &id).await.0, before.0 + 1, "one access.add");
}
