//! Boxes (§7.2–§7.6): creation, the joined list, one box, its public view, deletion.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_error, box_key, db, new_key_share, spawn_app, Auth, TestApp, User};

pub const KEY: &str = "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw";

pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub fn box_id(b: &Value) -> String {
    b["id"].as_str().unwrap().to_owned()
}

/// Asserts an IdentityView of `user`, transparent or not.
pub fn assert_view(v: &Value, user: &User, transparent: bool) {
    assert_eq!(keys(v), set(&["id", "display_name", "avatar_url", "identifier_value", "identifier_kind"]), "{v}");
    assert_eq!(v["id"], user.id.to_string());
    assert_eq!(v["display_name"], user.name);
    assert_eq!(v["avatar_url"], Value::Null);
    if transparent {
        assert_eq!(v["identifier_value"], format!("{}@example.com", user.name.to_lowercase()));
        assert_eq!(v["identifier_kind"], "email");
    } else {
        assert_eq!(v["identifier_value"], "");
        assert_eq!(v["identifier_kind"], "");
    }
}

pub fn assert_event_shape(e: &Value) {
    assert_eq!(
        keys(e),
        set(&["id", "type", "box_id", "seq", "server_event_created_at", "sender", "content", "referrer_id"]),
        "{e}"
    );
    assert!(e["seq"].as_i64().is_some_and(|s| s >= 1), "a positive per-box seq: {e}");
    let at = e["server_event_created_at"].as_str().unwrap();
    assert!(at.ends_with('Z') && at.len() == 27, "microsecond RFC 3339: {at}");
}

pub async fn delete_box(app: &TestApp, user: &User, box_id: &str, confirmation: &str) -> reqwest::Response {
    app.send(user, Method::DELETE, &format!("/boxes/{box_id}"), Some(json!({"user_confirmation": confirmation}))).await
}

pub async fn get_json(app: &TestApp, user: &User, path: &str) -> Value {
    let res = app.get(user, path).await;
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

pub async fn total_count(app: &TestApp, user: &User, path: &str) -> i64 {
    let res = app.send(user, Method::HEAD, path, None).await;
    assert_eq!(res.status(), 204, "HEAD {path}");
    res.headers()["x-total-count"].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn create_answers_201_with_the_full_box() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let body = json!({"title": "Project X", "public_key": KEY, "key_share": new_key_share()});
    let res = app.post(&alice, "/boxes", body).await;
    assert_eq!(res.status(), 201);
    let b: Value = res.json().await.unwrap();
    assert_eq!(
        keys(&b),
        set(&[
            "id",
            "server_created_at",
            "public_key",
            "title",
            "access_mode",
            "creator",
            "events_count",
            "settings",
            "last_event"
        ])
    );
    let id = box_id(&b);
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    assert_eq!(id, id.to_lowercase());
    assert_eq!(b["public_key"], KEY);
    assert_eq!(b["title"], "Project X");
    assert_eq!(b["access_mode"], "limited");
    assert_view(&b["creator"], &alice, true);
    assert_eq!(b["events_count"], 0);
    assert_eq!(b["settings"], json!({"identity_id": alice.id.to_string(), "box_id": id, "muted": false}));
    let e = &b["last_event"];
    assert_event_shape(e);
    assert_eq!(e["type"], "create");
    assert_eq!(e["box_id"], id);
    assert_eq!(e["referrer_id"], Value::Null);
    assert_eq!(e["content"], json!({"public_key": KEY, "title": "Project X"}));
    assert_view(&e["sender"], &alice, false);

    let again = get_json(&app, &alice, &format!("/boxes/{id}")).await;
    assert_eq!(again, b);
}

#[tokio::test]
async fn create_without_key_share_and_with_a_cookie_session() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let res = app
        .send_as(&alice, Method::POST, "/boxes", Some(json!({"title": "t", "public_key": KEY})), Auth::CookieNoCsrf)
        .await;
    assert_error(res, 403, "X-CSRF-Token", "required").await;
    let res =
        app.send_as(&alice, Method::POST, "/boxes", Some(json!({"title": "t", "public_key": KEY})), Auth::Cookie).await;
    assert_eq!(res.status(), 201);
    let res = app.client.post(app.url("/boxes")).json(&json!({"title": "t", "public_key": KEY})).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn create_validates_the_body() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let cases = [
        (json!({"title": "x".repeat(51), "public_key": KEY}), "title", "invalid"),
        (json!({"title": "", "public_key": KEY}), "title", "invalid"),
        (json!({"public_key": KEY}), "title", "required"),
        (
            json!({"title": "t", "public_key": "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw=="}),
            "public_key",
            "malformed",
        ),
        (json!({"title": "t", "public_key": "SXva+kvh/uhc"}), "public_key", "malformed"),
        (json!({"title": "t"}), "public_key", "required"),
        (
            json!({"title": "t", "public_key": KEY, "key_share": {"misakey_share": "abcd"}}),
            "key_share.other_share_hash",
            "required",
        ),
        (
            json!({"title": "t", "public_key": KEY, "key_share": {"misakey_share": "abcd", "other_share_hash": "Nz4nJMj5DOd4UGXXOlH8Ww==", "encrypted_invitation_key_share": "abcd"}}),
            "key_share.other_share_hash",
            "malformed",
        ),
        (json!([1, 2]), "body", "malformed"),
    ];
    for (body, key, value) in cases {
        let res = app.post(&alice, "/boxes", body.clone()).await;
        assert_error(res, 400, key, value).await;
    }
    let title = "é".repeat(50);
    let res = app.post(&alice, "/boxes", json!({"title": title, "public_key": KEY})).await;
    assert_eq!(res.status(), 201, "50 scalar values are fine");
    let res = app.request(&alice, Method::POST, "/boxes", Auth::Bearer).body("{}").send().await.unwrap();
    assert_error(res, 400, "Content-Type", "invalid").await;
    let big = json!({"title": "t", "public_key": "a".repeat(70 * 1024)});
    let res = app.post(&alice, "/boxes", big).await;
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn reusing_a_share_hash_conflicts_and_creates_nothing() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let ks = new_key_share();
    let res = app.post(&alice, "/boxes", json!({"title": "a", "public_key": KEY, "key_share": ks})).await;
    assert_eq!(res.status(), 201);
    let res = app.post(&alice, "/boxes", json!({"title": "b", "public_key": KEY, "key_share": ks})).await;
    assert_error(res, 409, "key_share.other_share_hash", "conflict").await;
    assert_eq!(app.api(&alice).joined_count().await.unwrap(), 1);
}

#[tokio::test]
async fn get_box_rules() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let b = app.create_box(&alice, "Box").await;
    let id = box_id(&b);

    assert_error(app.get(&bob, &format!("/boxes/{id}")).await, 403, "reason", "no_access").await;
    let unknown = uuid::Uuid::new_v4();
    assert_error(app.get(&bob, &format!("/boxes/{unknown}")).await, 403, "reason", "no_access").await;
    assert_error(app.get(&bob, "/boxes/not-a-uuid").await, 400, "id", "malformed").await;

    let res = app
        .post_event(
            &alice,
            &id,
            json!({"type":"access.add","content":{"restriction_type":"identity_id","value": bob.id.to_string()}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_error(app.get(&bob, &format!("/boxes/{id}")).await, 403, "reason", "not_member").await;
    let res = app.post_event(&bob, &id, json!({"type":"member.join"})).await;
    assert_eq!(res.status(), 201);
    let seen = get_json(&app, &bob, &format!("/boxes/{id}")).await;
    assert_view(&seen["creator"], &alice, false);
    assert_eq!(seen["last_event"]["type"], "member.join");
    assert_eq!(seen["settings"]["identity_id"], bob.id.to_string());

    // A public box can be joined by anyone, so outsiders are "not_member".
    let res = app.post_event(&alice, &id, json!({"type":"state.access_mode","content":{"value":"public"}})).await;
    assert_eq!(res.status(), 201);
    assert_error(app.get(&carol, &format!("/boxes/{id}")).await, 403, "reason", "not_member").await;
    let seen = get_json(&app, &alice, &format!("/boxes/{id}")).await;
    assert_eq!(seen["access_mode"], "public");
}

#[tokio::test]
async fn joined_lists_boxes_by_latest_visible_event_with_paging() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let b1 = box_id(&app.create_box(&alice, "one").await);
    let b2 = box_id(&app.create_box(&alice, "two").await);
    let b3 = box_id(&app.create_box(&bob, "three").await);
    app.add_member(&bob, &alice, &b3).await;
    let _ = app.create_box(&bob, "bob only").await;

    let list = get_json(&app, &alice, "/boxes/joined").await;
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![b3.as_str(), b2.as_str(), b1.as_str()]);
    assert_view(&list[0]["creator"], &bob, false);
    assert_view(&list[1]["creator"], &alice, true);

    // A new message moves the box up; an access rule (not visible) does not.
    app.say(&alice, &b1, "UrxdLg-Z5cyeRMz8_zk2aK").await;
    let res = app
        .post_event(
            &alice,
            &b2,
            json!({"type":"access.add","content":{"restriction_type":"identity_id","value": bob.id.to_string()}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let list = get_json(&app, &alice, "/boxes/joined").await;
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![b1.as_str(), b3.as_str(), b2.as_str()]);
    assert_eq!(list[0]["last_event"]["type"], "msg.text");

    let page = get_json(&app, &alice, "/boxes/joined?offset=1&limit=1").await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["id"], b3);
    assert_eq!(app.api(&alice).joined_count().await.unwrap(), 3);
    assert_eq!(app.api(&bob).joined_count().await.unwrap(), 2);
    for q in ["limit=0", "limit=51", "limit=x", "offset=-1"] {
        let res = app.get(&alice, &format!("/boxes/joined?{q}")).await;
        let key = q.split('=').next().unwrap();
        let body = assert_error(res, 400, key, "invalid").await;
        assert_eq!(body["origin"], "query");
    }
    let list = get_json(&app, &alice, "/boxes/joined?limit=50").await;
    assert_eq!(list.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn joined_defaults_to_ten() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    for i in 0..11 {
        let res = app.post(&alice, "/boxes", json!({"title": format!("b{i}"), "public_key": KEY})).await;
        assert_eq!(res.status(), 201);
    }
    let list = get_json(&app, &alice, "/boxes/joined").await;
    assert_eq!(list.as_array().unwrap().len(), 10);
    assert_eq!(list[0]["title"], "b10");
    assert_eq!(app.api(&alice).joined_count().await.unwrap(), 11);
}

#[tokio::test]
async fn public_view_needs_the_share_hash() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let ks = new_key_share();
    let hash = ks["other_share_hash"].as_str().unwrap().to_owned();
    let res = app.post(&alice, "/boxes", json!({"title": "Public", "public_key": box_key("p"), "key_share": ks})).await;
    let id = box_id(&res.json::<Value>().await.unwrap());
    let other = app.create_box(&alice, "Other").await;

    let res = app.client.get(app.url(&format!("/boxes/{id}/public?other_share_hash={hash}"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(keys(&body), set(&["title", "creator"]));
    assert_eq!(body["title"], "Public");
    assert_view(&body["creator"], &alice, false);

    let get = |q: String| app.client.get(app.url(&q)).send();
    assert_error(get(format!("/boxes/{id}/public")).await.unwrap(), 400, "other_share_hash", "required").await;
    assert_error(
        get(format!("/boxes/{id}/public?other_share_hash={hash}%3D%3D")).await.unwrap(),
        400,
        "other_share_hash",
        "malformed",
    )
    .await;
    assert_error(
        get(format!("/boxes/{id}/public?other_share_hash=abcdabcd")).await.unwrap(),
        404,
        "other_share_hash",
        "not_found",
    )
    .await;
    let other_id = box_id(&other);
    assert_error(
        get(format!("/boxes/{other_id}/public?other_share_hash={hash}")).await.unwrap(),
        403,
        "other_share_hash",
        "invalid",
    )
    .await;
    assert_error(get(format!("/boxes/nope/public?other_share_hash={hash}")).await.unwrap(), 400, "id", "malformed")
        .await;
}

#[tokio::test]
async fn delete_needs_confirmation_and_the_admin() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &bob, &id).await;

    assert_error(delete_box(&app, &alice, &id, "yes").await, 400, "user_confirmation", "invalid").await;
    let res = app.send(&alice, Method::DELETE, &format!("/boxes/{id}"), Some(json!({}))).await;
    assert_error(res, 400, "user_confirmation", "required").await;
    assert_error(delete_box(&app, &bob, &id, "delete").await, 403, "reason", "not_admin").await;
    let unknown = uuid::Uuid::new_v4();
    assert_error(delete_box(&app, &alice, &unknown.to_string(), "delete").await, 403, "reason", "not_admin").await;
    assert_error(delete_box(&app, &alice, "123", "delete").await, 400, "id", "malformed").await;
    let res = app
        .send_as(
            &alice,
            Method::DELETE,
            &format!("/boxes/{id}"),
            Some(json!({"user_confirmation": "delete"})),
            Auth::CookieNoCsrf,
        )
        .await;
    assert_error(res, 403, "X-CSRF-Token", "required").await;

    let res = delete_box(&app, &alice, &id, "supprimer").await;
    assert_eq!(res.status(), 204);
    assert!(res.bytes().await.unwrap().is_empty());
    assert_error(app.get(&alice, &format!("/boxes/{id}")).await, 403, "reason", "no_access").await;
    assert_eq!(app.api(&bob).joined_count().await.unwrap(), 0);
    assert_error(delete_box(&app, &alice, &id, "delete").await, 403, "reason", "not_admin").await;
}

#[tokio::test]
async fn delete_removes_every_row_of_the_box() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    let keep = box_id(&app.create_box(&alice, "Keep").await);
    app.add_member(&alice, &bob, &id).await;
    app.say(&bob, &id, "abcd").await;
    let res = app
        .post_event(
            &alice,
            &id,
            json!({"type":"state.key_share","extra":{"misakey_share":"abcd","other_share_hash": crate::helpers::test_key("rot"),"encrypted_invitation_key_share":"abcd"}}),
        )
        .await;
    assert_eq!(res.status(), 201, "state.key_share leaves a crypto action for bob");
    let c = db(&app).await;
    c.execute(
        "INSERT INTO boxes.box_settings (identity_id, box_id, muted) VALUES ($1, $2, true)",
        &[bob.id.as_uuid(), &uuid::Uuid::parse_str(&id).unwrap()],
    )
    .await
    .unwrap();

    assert_eq!(delete_box(&app, &alice, &id, "delete").await.status(), 204);
    let uid = uuid::Uuid::parse_str(&id).unwrap();
    for table in ["boxes", "events", "members", "key_shares", "crypto_actions", "box_settings"] {
        let column = if table == "boxes" { "id" } else { "box_id" };
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM boxes.{table} WHERE {column} = $1"), &[&uid])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table}");
    }
    let kept = get_json(&app, &alice, &format!("/boxes/{keep}")).await;
    assert_eq!(kept["title"], "Keep");
}

#[tokio::test]
async fn joined_with_changed_since_lists_only_the_boxes_with_an_event_after_it() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let b1 = box_id(&app.create_box(&alice, "one").await);
    let b2 = box_id(&app.create_box(&alice, "two").await);
    let last = app.create_box(&alice, "three").await;
    let b3 = box_id(&last);
    let point = last["last_event"]["server_event_created_at"].as_str().unwrap().to_owned();
    let since = |p: &str| format!("/boxes/joined?changed_since={p}");
    assert_eq!(get_json(&app, &alice, &since(&point)).await, json!([]));
    assert_eq!(total_count(&app, &alice, &since(&point)).await, 0);

    // A message (visible) and an access rule (invisible) both count as a change.
    app.say(&alice, &b1, "UrxdLg-Z5cyeRMz8_zk2aK").await;
    let rule = json!({"type":"access.add","content":{"restriction_type":"identity_id","value": bob.id.to_string()}});
    assert_eq!(app.post_event(&alice, &b2, rule).await.status(), 201);
    let list = get_json(&app, &alice, &since(&point)).await;
    let mut ids: Vec<&str> = list.as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut expected = vec![b1.as_str(), b2.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(!ids.contains(&b3.as_str()));
    assert_eq!(total_count(&app, &alice, &since(&point)).await, 2);
    assert_eq!(get_json(&app, &alice, &since("2000-01-01T00:00:00Z")).await.as_array().unwrap().len(), 3);
    assert_eq!(get_json(&app, &alice, &since("2000-01-01T00:00:00%2B02:00")).await.as_array().unwrap().len(), 3);

    for bad in ["yesterday", "2024-13-01T00:00:00Z", "", "1700000000"] {
        let body = assert_error(app.get(&alice, &since(bad)).await, 400, "changed_since", "malformed").await;
        assert_eq!(body["origin"], "query");
    }
}
