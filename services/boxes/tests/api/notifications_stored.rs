//! Stored notifications (issue 17): one per kind (invited by auto-invite or contact, kicked, box
//! deleted, access lost), stored for the right identities only and pushed with the stored id;
//! the listing, its paging and the unread count; acknowledgement; the caller-only rule; and the
//! retention.

use std::time::Duration;

use boxes_client::body::NewEvent;
use domain::realtime::user_channel;
use domain::NotificationId;
use reqwest::Method;
use serde_json::{json, Value};
use test_support::Subscriber;

use crate::boxes::{box_id, delete_box, get_json, keys, set};
use crate::helpers::{assert_error, assert_refused, bid, db, spawn_app, spawn_app_with, test_key, Auth, TestApp, User};

const QUIET: Duration = Duration::from_millis(600);

fn path(user: &User) -> String {
    format!("/identities/{}/notifications", user.id)
}

async fn listed(app: &TestApp, user: &User) -> Vec<Value> {
    get_json(app, user, &path(user)).await.as_array().cloned().unwrap()
}

async fn unread(app: &TestApp, user: &User) -> u64 {
    app.api(user).notifications_count(user.id).await.unwrap()
}

/// `user` acknowledges its notifications up to `until`.
async fn ack(app: &TestApp, user: &User, until: NotificationId) -> boxes_client::Result<()> {
    app.api(user).acknowledge_notifications(user.id, until).await
}

/// The id of a listed notification.
fn nid(item: &Value) -> NotificationId {
    NotificationId::parse(item["id"].as_str().unwrap()).unwrap()
}

/// `admin` gives `target` access to the box with an invitation.
async fn invite(app: &TestApp, admin: &User, target: &User, box_id: &str) {
    let res = app
        .post_event(
            admin,
            box_id,
            json!({"type":"access.add","content":{"restriction_type":"identity_id","value": target.id.to_string(),"auto_invite": true},"extra":{target.key.clone(): "aW52aXRl"}}),
        )
        .await;
    assert_eq!(res.status(), 201, "access.add with auto_invite");
}

/// The types of a listing, in order.
fn types(items: &[Value]) -> Vec<&str> {
    items.iter().map(|n| n["type"].as_str().unwrap()).collect()
}

/// The `notification` envelopes `user` got, as their objects.
fn pushed(inbox: &[(String, Value)], user: &User) -> Vec<Value> {
    let channel = user_channel(user.id);
    inbox
        .iter()
        .filter(|(c, e)| *c == channel && e["type"] == "notification")
        .map(|(_, e)| e["object"].clone())
        .collect()
}

/// The listed item is the pushed object, unacknowledged.
fn assert_listed_as_pushed(item: &Value, pushed: &Value) {
    assert_eq!(keys(item), set(&["id", "type", "details", "created_at", "acknowledged"]), "{item}");
    assert_eq!(item["acknowledged"], false);
    let mut without_ack = item.clone();
    without_ack.as_object_mut().unwrap().remove("acknowledged");
    assert_eq!(&without_ack, pushed);
}

/// What is stored for `user`, straight from the database: type and details text, newest first.
async fn stored(app: &TestApp, user: &User) -> Vec<(String, String)> {
    let rows = db(app)
        .await
        .query(
            "SELECT type, details::text AS details FROM boxes.notifications WHERE identity_id = $1 ORDER BY seq DESC",
            &[user.id.as_uuid()],
        )
        .await
        .unwrap();
    rows.iter().map(|r| (r.get("type"), r.get("details"))).collect()
}

#[tokio::test]
async fn an_auto_invite_is_stored_for_the_invited_and_pushed_with_its_id() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let carol = app.user("Carol").await;
    let id = box_id(&app.create_box(&alice, "Invites").await);
    let mut sub = Subscriber::new(&[user_channel(carol.id), user_channel(alice.id)]).await.unwrap();
    invite(&app, &alice, &carol, &id).await;
    let inbox = sub.drain(QUIET).await;

    let actions = app.api(&carol).crypto_actions(carol.id).await.unwrap();
    let items = listed(&app, &carol).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let to_carol = pushed(&inbox, &carol);
    assert_eq!(to_carol.len(), 1, "{inbox:?}");
    assert_listed_as_pushed(&items[0], &to_carol[0]);
    assert_eq!(items[0]["type"], "box.auto_invite");
    assert_eq!(items[0]["details"], json!({"box_id": id, "box_title": "Invites", "cryptoaction_id": actions[0].id}));
    assert!(items[0]["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(unread(&app, &carol).await, 1);

    assert!(pushed(&inbox, &alice).is_empty());
    assert!(listed(&app, &alice).await.is_empty(), "the inviter gets nothing");
    let rows = stored(&app, &carol).await;
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].1.contains("aW52aXRl"), "no ciphertext in the stored details: {}", rows[0].1);
}

#[tokio::test]
async fn a_contact_is_stored_for_the_contacted_identity() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let mut sub = Subscriber::new(&[user_channel(bob.id)]).await.unwrap();
    let body = json!({
        "contacted_identity_id": bob.id.to_string(),
        "box": {"title": "Alice - Bob", "public_key": "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw"},
        "key_share": {"misakey_share": "lBHT1vfwFAIBig5Nj+sD+w==", "other_share_hash": test_key("contact-stored"),
                      "encrypted_invitation_key_share": "cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ="},
        "extra": {bob.key.clone(): "aW52aXRhdGlvbg=="}
    });
    let res = app.post(&alice, &format!("/box-users/{}/contact", alice.id), body).await;
    assert_eq!(res.status(), 201);
    let id = box_id(&res.json().await.unwrap());
    let inbox = sub.drain(QUIET).await;

    let actions = app.api(&bob).crypto_actions(bob.id).await.unwrap();
    let items = listed(&app, &bob).await;
    assert_eq!(types(&items), ["box.auto_invite"]);
    assert_eq!(
        items[0]["details"],
        json!({"box_id": id, "box_title": "Alice - Bob", "cryptoaction_id": actions[0].id})
    );
    assert_listed_as_pushed(&items[0], &pushed(&inbox, &bob)[0]);
    assert!(listed(&app, &alice).await.is_empty());
    assert!(!stored(&app, &bob).await[0].1.contains("aW52aXRhdGlvbg"), "no ciphertext stored");
}

#[tokio::test]
async fn a_kick_is_stored_for_the_kicked_member_only() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let id = box_id(&app.create_box(&alice, "Kicks").await);
    // Bob joins through an invitation, so its rule is an auto-invite one.
    invite(&app, &alice, &bob, &id).await;
    app.api(&bob).post_event(bid(&id), &NewEvent::MemberJoin).await.unwrap();
    app.add_member(&alice, &carol, &id).await;
    let rule = app.rule_for(&alice, &id, &bob.id.to_string()).await;
    let mut sub = Subscriber::new(&[user_channel(bob.id)]).await.unwrap();
    let res = app.post_event(&alice, &id, json!({"type":"access.rm","referrer_id": rule["id"]})).await;
    assert_eq!(res.status(), 201);
    let inbox = sub.drain(QUIET).await;

    let items = listed(&app, &bob).await;
    assert_eq!(types(&items), ["member.kick", "box.auto_invite"], "a kick, not also access_lost");
    assert_eq!(items[0]["details"], json!({"box_id": id, "box_title": "Kicks"}));
    assert_listed_as_pushed(&items[0], &pushed(&inbox, &bob)[0]);
    assert!(listed(&app, &alice).await.is_empty());
    assert!(listed(&app, &carol).await.is_empty());
}

#[tokio::test]
async fn a_deletion_is_stored_for_the_other_members_and_the_pending_invitees() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let dave = app.user("Dave").await;
    let id = box_id(&app.create_box(&alice, "Doomed").await);
    app.add_member(&alice, &bob, &id).await;
    invite(&app, &alice, &carol, &id).await;
    // A rule without an invitation: dave was never told of the box.
    let res = app
        .post_event(
            &alice,
            &id,
            json!({"type":"access.add","content":{"restriction_type":"identity_id","value": dave.id.to_string()}}),
        )
        .await;
    assert_eq!(res.status(), 201);

    let mut sub = Subscriber::new(&[user_channel(bob.id), user_channel(carol.id)]).await.unwrap();
    assert_eq!(delete_box(&app, &alice, &id, "delete").await.status(), 204);
    let inbox = sub.drain(QUIET).await;

    let expected = json!({"box_id": id, "box_title": "Doomed"});
    let to_bob = listed(&app, &bob).await;
    assert_eq!(types(&to_bob), ["box.delete"]);
    assert_eq!(to_bob[0]["details"], expected);
    assert_listed_as_pushed(&to_bob[0], &pushed(&inbox, &bob)[0]);
    assert!(
        inbox.iter().any(|(c, e)| *c == user_channel(bob.id) && e["type"] == "box.delete"),
        "box.delete still sent"
    );
    let to_carol = listed(&app, &carol).await;
    assert_eq!(types(&to_carol), ["box.delete", "box.auto_invite"], "newest first");
    assert_eq!(to_carol[0]["details"], expected);
    assert_listed_as_pushed(&to_carol[0], &pushed(&inbox, &carol)[0]);
    assert!(listed(&app, &alice).await.is_empty(), "the deleter gets nothing");
    assert!(listed(&app, &dave).await.is_empty());
}

#[tokio::test]
async fn removing_an_invitation_before_the_join_is_access_lost() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let carol = app.user("Carol").await;
    let dave = app.user("Dave").await;
    let id = box_id(&app.create_box(&alice, "Withdrawn").await);
    invite(&app, &alice, &carol, &id).await;
    let rule = app.rule_for(&alice, &id, &carol.id.to_string()).await;
    let mut sub = Subscriber::new(&[user_channel(carol.id)]).await.unwrap();
    let res = app.post_event(&alice, &id, json!({"type":"access.rm","referrer_id": rule["id"]})).await;
    assert_eq!(res.status(), 201);
    let inbox = sub.drain(QUIET).await;

    let items = listed(&app, &carol).await;
    assert_eq!(types(&items), ["box.access_lost", "box.auto_invite"]);
    assert_eq!(items[0]["details"], json!({"box_id": id, "box_title": "Withdrawn"}));
    assert_listed_as_pushed(&items[0], &pushed(&inbox, &carol)[0]);
    let res = app.post_event(&carol, &id, json!({"type":"member.join"})).await;
    assert_error(res, 403, "reason", "no_access").await;

    // In a public box the invited identity can still join: nothing is lost.
    let open = box_id(&app.create_box(&alice, "Open").await);
    let res = app.post_event(&alice, &open, json!({"type":"state.access_mode","content":{"value":"public"}})).await;
    assert_eq!(res.status(), 201);
    invite(&app, &alice, &dave, &open).await;
    let rule = app.rule_for(&alice, &open, &dave.id.to_string()).await;
    let res = app.post_event(&alice, &open, json!({"type":"access.rm","referrer_id": rule["id"]})).await;
    assert_eq!(res.status(), 201);
    assert_eq!(types(&listed(&app, &dave).await), ["box.auto_invite"]);
}

#[tokio::test]
async fn the_listing_is_newest_first_and_paged() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    for i in 0..5 {
        let id = box_id(&app.create_box(&alice, &format!("B{i}")).await);
        invite(&app, &alice, &bob, &id).await;
    }
    let titles = |items: &[Value]| -> Vec<String> {
        items.iter().map(|n| n["details"]["box_title"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(titles(&listed(&app, &bob).await), ["B4", "B3", "B2", "B1", "B0"]);
    let page = get_json(&app, &bob, &format!("{}?offset=1&limit=2", path(&bob))).await;
    assert_eq!(titles(page.as_array().unwrap()), ["B3", "B2"]);
    let last = get_json(&app, &bob, &format!("{}?offset=4&limit=100", path(&bob))).await;
    assert_eq!(titles(last.as_array().unwrap()), ["B0"]);
    let beyond = get_json(&app, &bob, &format!("{}?offset=5", path(&bob))).await;
    assert_eq!(beyond, json!([]));

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("offset=-1", "offset"),
        ("offset=1e3", "offset"),
    ] {
        let res = app.get(&bob, &format!("{}?{query}", path(&bob))).await;
        let body = assert_error(res, 400, field, "invalid").await;
        assert_eq!(body["origin"], "query", "{query}");
    }
}

#[tokio::test]
async fn acknowledgement_lowers_the_unread_count() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    assert_eq!(unread(&app, &bob).await, 0);
    for i in 0..3 {
        let id = box_id(&app.create_box(&alice, &format!("B{i}")).await);
        invite(&app, &alice, &bob, &id).await;
    }
    assert_eq!(unread(&app, &bob).await, 3);
    let items = listed(&app, &bob).await;

    // The middle one and everything older.
    ack(&app, &bob, nid(&items[1])).await.unwrap();
    assert_eq!(unread(&app, &bob).await, 1);
    let acked: Vec<Value> = listed(&app, &bob).await.iter().map(|n| n["acknowledged"].clone()).collect();
    assert_eq!(acked, [false, true, true]);
    ack(&app, &bob, nid(&items[2])).await.expect("again, or older: no change");
    assert_eq!(unread(&app, &bob).await, 1);

    // Cookie callers need the CSRF header, as for every write.
    let url = format!("{}/acknowledgement", path(&bob));
    let body = json!({"until_id": items[0]["id"]});
    let res = app.send_as(&bob, Method::PUT, &url, Some(body), Auth::CookieNoCsrf).await;
    assert_error(res, 403, "X-CSRF-Token", "required").await;
    assert_eq!(unread(&app, &bob).await, 1);
    app.api_with_cookies(&bob).acknowledge_notifications(bob.id, nid(&items[0])).await.unwrap();
    assert_eq!(unread(&app, &bob).await, 0);
    assert!(listed(&app, &bob).await.iter().all(|n| n["acknowledged"] == true));
}

#[tokio::test]
async fn bad_acknowledgements_are_refused_with_the_error_body() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = box_id(&app.create_box(&alice, "B").await);
    invite(&app, &alice, &bob, &id).await;
    let bobs = listed(&app, &bob).await[0].clone();
    let url = format!("{}/acknowledgement", path(&bob));

    for (body, detail) in [
        (json!({}), "required"),
        (json!({"until_id": null}), "required"),
        (json!({"until_id": "not-a-uuid"}), "malformed"),
        (json!({"until_id": "\u{1}\u{7f}"}), "malformed"),
        (json!({"until_id": 12}), "malformed"),
    ] {
        let res = app.send(&bob, Method::PUT, &url, Some(body.clone())).await;
        let err = assert_error(res, 400, "until_id", detail).await;
        assert_eq!(err["origin"], "body", "{body}");
    }
    let res = app.send(&bob, Method::PUT, &url, Some(json!([bobs["id"]]))).await;
    assert_error(res, 400, "body", "malformed").await;
    let res = app.request(&bob, Method::PUT, &url, Auth::Bearer).body("{\"until_id\":").send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_refused(ack(&app, &bob, NotificationId::new_v4()).await, 404, "until_id", "not_found");

    // Someone else's notification is unknown to the caller, and stays unacknowledged.
    assert_refused(ack(&app, &alice, nid(&bobs)).await, 404, "until_id", "not_found");
    assert_eq!(unread(&app, &bob).await, 1);
}

#[tokio::test]
async fn another_identitys_notifications_are_refused() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = box_id(&app.create_box(&alice, "B").await);
    invite(&app, &alice, &bob, &id).await;
    let until = nid(&listed(&app, &bob).await[0]);

    let res = app.get(&alice, &path(&bob)).await;
    assert_error(res, 403, "id", "forbidden").await;
    let res = app.send(&alice, Method::HEAD, &path(&bob), None).await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("x-total-count").is_none());
    let res = app.api(&alice).acknowledge_notifications(bob.id, until).await;
    assert_refused(res, 403, "id", "forbidden");
    assert_eq!(unread(&app, &bob).await, 1);

    let res = app.get(&alice, "/identities/not-a-uuid/notifications").await;
    let err = assert_error(res, 400, "id", "malformed").await;
    assert_eq!(err["origin"], "path");
    let res = app.client.get(app.url(&path(&bob))).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn expired_notifications_are_not_served_and_are_deleted_by_later_writes() {
    let app = spawn_app_with(|s| s.notifications_retention_secs = 3600).await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let c = db(&app).await;
    let old = uuid::Uuid::new_v4();
    c.execute(
        "INSERT INTO boxes.notifications (id, identity_id, type, details, created_at)
         VALUES ($1, $2, 'member.kick', '{}'::jsonb, now() - interval '2 hours')",
        &[&old, bob.id.as_uuid()],
    )
    .await
    .unwrap();
    assert!(listed(&app, &bob).await.is_empty(), "older than the retention: not listed");
    assert_eq!(unread(&app, &bob).await, 0, "nor counted");
    assert_refused(ack(&app, &bob, old.into()).await, 404, "until_id", "not_found");

    let id = box_id(&app.create_box(&alice, "Fresh").await);
    invite(&app, &alice, &bob, &id).await;
    let left: i64 =
        c.query_one("SELECT count(*) FROM boxes.notifications WHERE id = $1", &[&old]).await.unwrap().get(0);
    assert_eq!(left, 0, "the write of a new notification deleted the expired one");
    assert_eq!(types(&listed(&app, &bob).await), ["box.auto_invite"]);
    assert_eq!(unread(&app, &bob).await, 1);
}
