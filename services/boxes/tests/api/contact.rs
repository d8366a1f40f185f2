//! `POST /box-users/{id}/contact` (§7.11), with the seed's example body.

use boxes_client::body::NewEvent;
use domain::crypto_action::CryptoActionType;
use reqwest::Method;
use serde_json::{json, Value};

use crate::boxes::{assert_event_shape, assert_view, box_id, get_json, keys, set};
use crate::helpers::{assert_error, bid, db, new_key_share, spawn_app, test_key, Auth, TestApp, User};

const SEED_KEY: &str = "FYofPprIPU6qaHDtCNCETYtmmQQqdKvtJqYBF2pPXzc";

/// The seed's body, with real ids and a real ciphertext in place of the placeholders.
pub(crate) fn seed_body(contacted: &User) -> Value {
    json!({
        "contacted_identity_id": contacted.id.to_string(),
        "box": {"title": "User1 - User2", "public_key": "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw"},
        "key_share": {"misakey_share": "lBHT1vfwFAIBig5Nj+sD+w==", "other_share_hash": "Nz4nJMj5DOd4UGXXOlH8Ww",
                      "encrypted_invitation_key_share": "cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ="},
        "extra": {SEED_KEY: "ZW5jcnlwdGVkIGNyeXB0byBhY3Rpb24="}
    })
}

/// An identity whose `non_identified_pubkey` is the seed's key.
pub(crate) async fn seed_contact(app: &TestApp, name: &str) -> User {
    let user = app.user_with(name, false).await;
    let res = app
        .send(
            &user,
            Method::PUT,
            &format!("/identities/{}/public-keys", user.id),
            Some(json!({"non_identified_pubkey": SEED_KEY})),
        )
        .await;
    assert_eq!(res.status(), 200);
    User { key: SEED_KEY.to_owned(), ..user }
}

async fn contact(app: &TestApp, caller: &User, body: Value) -> reqwest::Response {
    app.send_as(caller, Method::POST, &format!("/box-users/{}/contact", caller.id), Some(body), Auth::Cookie).await
}

#[tokio::test]
async fn the_seed_body_creates_a_limited_box_and_invites_the_contact() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = seed_contact(&app, "Bob").await;

    let res = contact(&app, &alice, seed_body(&bob)).await;
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
    assert_eq!(b["title"], "User1 - User2");
    assert_eq!(b["public_key"], "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw");
    assert_eq!(b["access_mode"], "limited");
    assert_view(&b["creator"], &alice, true);
    assert_eq!(b["events_count"], 0);
    assert_eq!(b["settings"], json!({"identity_id": alice.id.to_string(), "box_id": id, "muted": false}));
    assert_event_shape(&b["last_event"]);
    assert_eq!(b["last_event"]["type"], "create");
    assert_eq!(
        b["last_event"]["content"],
        json!({"public_key": "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw", "title": "User1 - User2"})
    );

    // An identity_id access rule for the contacted identity.
    let accesses = get_json(&app, &alice, &format!("/boxes/{id}/accesses")).await;
    let accesses = accesses.as_array().unwrap();
    assert_eq!(accesses.len(), 1);
    assert_eq!(accesses[0]["content"]["restriction_type"], "identity_id");
    assert_eq!(accesses[0]["content"]["value"], bob.id.to_string());
    assert_view(&accesses[0]["sender"], &alice, true);

    // The key share is stored exactly as received.
    let share = app.api(&alice).key_share("Nz4nJMj5DOd4UGXXOlH8Ww").await.unwrap();
    assert_eq!(share.misakey_share, "lBHT1vfwFAIBig5Nj+sD+w==");
    assert_eq!(share.encrypted_invitation_key_share.as_deref(), Some("cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ="));
    assert_eq!(share.box_id, bid(&id));

    // An invitation crypto action for the contacted identity.
    let actions = app.api(&bob).crypto_actions(bob.id).await.unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].kind, CryptoActionType::Invitation);
    assert_eq!(actions[0].box_id, Some(bid(&id)));
    assert_eq!(actions[0].encryption_public_key, SEED_KEY);
    assert_eq!(actions[0].encrypted, "ZW5jcnlwdGVkIGNyeXB0byBhY3Rpb24=");

    // Bob is not a member until he joins; then the box is his too.
    assert_error(app.get(&bob, &format!("/boxes/{id}")).await, 403, "reason", "not_member").await;
    app.api(&bob).post_event(bid(&id), &NewEvent::MemberJoin).await.unwrap();
    let seen = get_json(&app, &bob, &format!("/boxes/{id}")).await;
    assert_view(&seen["creator"], &alice, false);
    let joined = get_json(&app, &bob, "/boxes/joined").await;
    assert_eq!(joined[0]["id"], id);
    let accesses = get_json(&app, &alice, &format!("/boxes/{id}/accesses")).await;
    assert_eq!(accesses.as_array().unwrap().len(), 1, "the join reuses the contact rule");

    // Someone else cannot join the contact box.
    let carol = app.user("Carol").await;
    assert_error(app.post_event(&carol, &id, json!({"type":"member.join"})).await, 403, "reason", "no_access").await;
}

#[tokio::test]
async fn contact_checks_auth_csrf_and_path_identity() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = seed_contact(&app, "Bob").await;
    let path = format!("/box-users/{}/contact", alice.id);

    let res = app.client.post(app.url(&path)).json(&seed_body(&bob)).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app.send_as(&alice, Method::POST, &path, Some(seed_body(&bob)), Auth::CookieNoCsrf).await;
    assert_error(res, 403, "X-CSRF-Token", "required").await;
    let res = app
        .client
        .post(app.url(&path))
        .header("Cookie", format!("accesstoken={}", alice.session.token))
        .json(&seed_body(&bob))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "tokentype", "required").await;
    let res = app
        .send_as(&alice, Method::POST, &format!("/box-users/{}/contact", bob.id), Some(seed_body(&bob)), Auth::Cookie)
        .await;
    assert_error(res, 403, "id", "forbidden").await;
    let res = app.send_as(&alice, Method::POST, "/box-users/nope/contact", Some(seed_body(&bob)), Auth::Cookie).await;
    assert_error(res, 400, "id", "malformed").await;
    // Bearer sessions do not need the CSRF header.
    let res = app.send_as(&alice, Method::POST, &path, Some(seed_body(&bob)), Auth::Bearer).await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn contact_validation_and_conflicts() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = seed_contact(&app, "Bob").await;
    let keyless = app.user_with("Keyless", false).await;

    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = seed_body(&bob);
        f(&mut v);
        v
    };
    let cases: Vec<(Value, &str, &str, u16)> = vec![
        (with(&|v| v["box"]["title"] = json!("x".repeat(51))), "box.title", "invalid", 400),
        (
            with(&|v| v["box"]["public_key"] = json!("SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw==")),
            "box.public_key",
            "malformed",
            400,
        ),
        (
            with(&|v| v["key_share"]["other_share_hash"] = json!("Nz4nJMj5DOd4UGXXOlH8Ww==")),
            "key_share.other_share_hash",
            "malformed",
            400,
        ),
        (
            with(&|v| v["key_share"]["other_share_hash"] = json!("Nz4n+Mj5DOd4UGXXOlH8Ww")),
            "key_share.other_share_hash",
            "malformed",
            400,
        ),
        (
            with(&|v| v["key_share"]["misakey_share"] = json!("not base64!")),
            "key_share.misakey_share",
            "malformed",
            400,
        ),
        (
            with(&|v| v["key_share"]["encrypted_invitation_key_share"] = Value::Null),
            "key_share.encrypted_invitation_key_share",
            "required",
            400,
        ),
        (with(&|v| v["contacted_identity_id"] = json!("nope")), "contacted_identity_id", "malformed", 400),
        (with(&|v| v["contacted_identity_id"] = json!(alice.id.to_string())), "contacted_identity_id", "invalid", 400),
        (with(&|v| v["extra"] = json!({SEED_KEY: "abcd", "other": "abcd"})), "extra", "invalid", 400),
        (with(&|v| v["extra"] = json!({"c29tZW9uZSBlbHNl": "abcd"})), "extra", "invalid", 400),
        (with(&|v| v["extra"] = Value::Null), "extra", "required", 400),
        (with(&|v| v["invitation_data"] = json!({SEED_KEY: "abcd"})), "extra", "invalid", 400),
        (
            with(&|v| v["contacted_identity_id"] = json!(uuid::Uuid::new_v4().to_string())),
            "contacted_identity_id",
            "not_found",
            404,
        ),
        (
            with(&|v| v["contacted_identity_id"] = json!(keyless.id.to_string())),
            "contacted_identity_id",
            "conflict",
            409,
        ),
    ];
    for (body, key, value, status) in cases {
        let res = contact(&app, &alice, body.clone()).await;
        assert_error(res, status, key, value).await;
    }
    assert_eq!(get_json(&app, &alice, "/boxes/joined").await, json!([]), "nothing was created");

    // The alias works; the hash is then used, so a retry conflicts.
    let aliased = with(&|v| {
        let extra = v["extra"].take();
        v["invitation_data"] = extra;
    });
    assert_eq!(contact(&app, &alice, aliased).await.status(), 201);
    let res = contact(&app, &alice, seed_body(&bob)).await;
    assert_error(res, 409, "key_share.other_share_hash", "conflict").await;
    let c = db(&app).await;
    let n: i64 = c.query_one("SELECT count(*) FROM boxes.boxes", &[]).await.unwrap().get(0);
    assert_eq!(n, 1, "the conflicting contact left no box behind");
    let n: i64 = c.query_one("SELECT count(*) FROM boxes.crypto_actions", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);

    // A contact with a different share creates a second box.
    let mut other = seed_body(&bob);
    other["key_share"] = new_key_share();
    other["key_share"]["other_share_hash"] = json!(test_key("second"));
    assert_eq!(contact(&app, &alice, other).await.status(), 201);
}
