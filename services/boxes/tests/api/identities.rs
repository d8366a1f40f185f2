//! Identities (§8), the internal upsert (§12) and crypto actions.

use reqwest::Method;
use serde_json::{json, Value};

use boxes_client::body::{KeyShare, NewEvent};
use domain::crypto_action::CryptoActionType;
use domain::{CryptoActionId, ErrorCode};

use crate::helpers::{
    assert_error, assert_refused, bid, seed_box, seed_crypto_action, spawn_app, Auth, TestApp, INTERNAL_TOKEN,
};

fn upsert_body(name: &str) -> Value {
    json!({"display_name": name, "identifier_value": "someone@example.com", "identifier_kind": "email"})
}

async fn internal_put(app: &TestApp, id: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut b = app.client.put(app.internal_url(&format!("/internal/identities/{id}"))).json(&body);
    if let Some(t) = token {
        b = b.header("X-Internal-Token", t);
    }
    b.send().await.unwrap()
}

#[tokio::test]
async fn internal_upsert_needs_the_shared_token() {
    let app = spawn_app().await;
    let id = uuid::Uuid::new_v4().to_string();
    let res = internal_put(&app, &id, None, upsert_body("Alice")).await;
    assert_error(res, 401, "X-Internal-Token", "required").await;
    let res = internal_put(&app, &id, Some("wrong-token"), upsert_body("Alice")).await;
    assert_error(res, 401, "X-Internal-Token", "invalid").await;
    let res = internal_put(&app, &id, Some(&format!("{INTERNAL_TOKEN}x")), upsert_body("Alice")).await;
    assert_eq!(res.status(), 401);
    // A session token is no substitute for the internal token.
    let user = app.user("Bob").await;
    let res = app
        .client
        .put(app.internal_url(&format!("/internal/identities/{id}")))
        .header("Authorization", user.session.bearer())
        .json(&upsert_body("Alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A bad token wins over a bad body.
    let res = internal_put(&app, "nope", Some("wrong-token"), json!({})).await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn internal_upsert_creates_then_updates_and_keeps_keys() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let before: Value = app.get(&alice, &format!("/identities/{}", alice.id)).await.json().await.unwrap();
    assert_eq!(before["display_name"], "Alice");
    assert_eq!(before["identifier_value"], "alice@example.com");
    assert_eq!(before["non_identified_pubkey"], alice.key);

    let res = internal_put(
        &app,
        &alice.id.to_string().to_uppercase(),
        Some(INTERNAL_TOKEN),
        json!({"display_name": "Alice Martin", "identifier_value": "+33612345678", "identifier_kind": "phone", "pubkey": "ignored"}),
    )
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(res.text().await.unwrap(), "");
    let after: Value = app.get(&alice, &format!("/identities/{}", alice.id)).await.json().await.unwrap();
    assert_eq!(after["display_name"], "Alice Martin");
    assert_eq!(after["identifier_value"], "+33612345678");
    assert_eq!(after["identifier_kind"], "phone");
    assert_eq!(after["non_identified_pubkey"], alice.key, "keys stay");
    assert_eq!(after["pubkey"], Value::Null);
    assert_eq!(after["created_at"], before["created_at"], "created_at stays");
}

#[tokio::test]
async fn internal_upsert_validates_path_and_body() {
    let app = spawn_app().await;
    let id = uuid::Uuid::new_v4().to_string();
    let res = internal_put(&app, "not-a-uuid", Some(INTERNAL_TOKEN), upsert_body("A")).await;
    let body = assert_error(res, 400, "id", "malformed").await;
    assert_eq!(body["origin"], "path");
    let res =
        internal_put(&app, &id, Some(INTERNAL_TOKEN), json!({"display_name": "", "identifier_kind": "fax"})).await;
    let body = assert_error(res, 400, "display_name", "invalid").await;
    assert_eq!(body["details"]["identifier_value"], "required");
    assert_eq!(body["details"]["identifier_kind"], "invalid");
    let res = internal_put(
        &app,
        &id,
        Some(INTERNAL_TOKEN),
        json!({"display_name": "x".repeat(65), "identifier_value": "a@b.c", "identifier_kind": "email"}),
    )
    .await;
    assert_error(res, 400, "display_name", "invalid").await;
    let res = app
        .client
        .put(app.internal_url(&format!("/internal/identities/{id}")))
        .header("X-Internal-Token", INTERNAL_TOKEN)
        .body(upsert_body("A").to_string())
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "Content-Type", "invalid").await;
}

#[tokio::test]
async fn get_identity_returns_the_self_view_with_every_field() {
    let app = spawn_app().await;
    let alice = app.user_with("Alice", false).await;
    let res = app.get(&alice, &format!("/identities/{}", alice.id)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "id",
        "display_name",
        "avatar_url",
        "identifier_value",
        "identifier_kind",
        "pubkey",
        "non_identified_pubkey",
        "created_at",
    ];
    expected.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, expected);
    assert_eq!(body["id"], alice.id.to_string());
    assert_eq!(body["avatar_url"], Value::Null);
    assert_eq!(body["pubkey"], Value::Null);
    assert_eq!(body["non_identified_pubkey"], Value::Null);
    assert_eq!(body["identifier_kind"], "email");
    let created = body["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 27, "{created}");

    let bob = app.user("Bob").await;
    let res = app.get(&alice, &format!("/identities/{}", bob.id)).await;
    let body = assert_error(res, 403, "id", "forbidden").await;
    assert_eq!(body["origin"], "path");
    let res = app.get(&alice, "/identities/nope").await;
    assert_error(res, 400, "id", "malformed").await;
}

#[tokio::test]
async fn profile_hides_identifiers_from_others_and_is_public() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user_with("Bob", false).await;
    let path = format!("/identities/{}/profile", alice.id);

    let anonymous: Value = {
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    };
    let mut keys: Vec<&str> = anonymous.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "avatar_url",
            "contactable",
            "display_name",
            "id",
            "identifier_kind",
            "identifier_value",
            "non_identified_pubkey"
        ]
    );
    assert_eq!(anonymous["identifier_value"], "");
    assert_eq!(anonymous["identifier_kind"], "");
    assert_eq!(anonymous["display_name"], "Alice");
    assert_eq!(anonymous["non_identified_pubkey"], alice.key);
    assert_eq!(anonymous["contactable"], true);

    let by_bob: Value = app.get(&bob, &path).await.json().await.unwrap();
    assert_eq!(by_bob, anonymous);

    let by_self: Value = app.get(&alice, &path).await.json().await.unwrap();
    assert_eq!(by_self["identifier_value"], "alice@example.com");
    assert_eq!(by_self["identifier_kind"], "email");

    let bob_profile: Value = app.get(&alice, &format!("/identities/{}/profile", bob.id)).await.json().await.unwrap();
    assert_eq!(bob_profile["contactable"], false);
    assert_eq!(bob_profile["non_identified_pubkey"], Value::Null);

    let res = app.client.get(app.url(&format!("/identities/{}/profile", uuid::Uuid::new_v4()))).send().await.unwrap();
    let body = assert_error(res, 404, "id", "not_found").await;
    assert_eq!(body["code"], "not_found");
    let res = app.client.get(app.url("/identities/xyz/profile")).send().await.unwrap();
    assert_error(res, 400, "id", "malformed").await;
}

#[tokio::test]
async fn public_keys_replace_what_is_given() {
    let app = spawn_app().await;
    let alice = app.user_with("Alice", false).await;
    let path = format!("/identities/{}/public-keys", alice.id);

    let res = app.send(&alice, Method::PUT, &path, Some(json!({"pubkey": "cHVia2V5"}))).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["pubkey"], "cHVia2V5");
    assert_eq!(body["non_identified_pubkey"], Value::Null);
    assert_eq!(body["display_name"], "Alice");

    let res = app
        .send_as(
            &alice,
            Method::PUT,
            &path,
            Some(json!({"non_identified_pubkey": "bm9uX2lk", "pubkey": null})),
            Auth::Cookie,
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["pubkey"], "cHVia2V5", "absent or null keeps the stored key");
    assert_eq!(body["non_identified_pubkey"], "bm9uX2lk");

    let stored: Value = app.get(&alice, &format!("/identities/{}", alice.id)).await.json().await.unwrap();
    assert_eq!(stored, body);

    let profile: Value = app
        .client
        .get(app.url(&format!("/identities/{}/profile", alice.id)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["contactable"], true);
}

#[tokio::test]
async fn public_keys_validation() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let path = format!("/identities/{}/public-keys", alice.id);

    let res = app.send(&alice, Method::PUT, &path, Some(json!({}))).await;
    let body = assert_error(res, 400, "non_identified_pubkey", "required").await;
    assert_eq!(body["origin"], "body");
    let res = app.send(&alice, Method::PUT, &path, Some(json!({"pubkey": null, "non_identified_pubkey": null}))).await;
    assert_error(res, 400, "non_identified_pubkey", "required").await;
    let res = app.send(&alice, Method::PUT, &path, Some(json!({"pubkey": "ab+/cd=="}))).await;
    assert_error(res, 400, "pubkey", "malformed").await;
    let res = app.send(&alice, Method::PUT, &path, Some(json!({"non_identified_pubkey": "a".repeat(4097)}))).await;
    assert_error(res, 400, "non_identified_pubkey", "invalid").await;
    let res = app.send(&alice, Method::PUT, &path, Some(json!({"pubkey": 12}))).await;
    assert_error(res, 400, "pubkey", "invalid").await;

    // Someone else's keys: 403 once the body is valid, 400 before.
    let res = app.send(&bob, Method::PUT, &path, Some(json!({"pubkey": "abcd"}))).await;
    assert_error(res, 403, "id", "forbidden").await;
    let res = app.send(&bob, Method::PUT, &path, Some(json!({"pubkey": "ab+d"}))).await;
    assert_error(res, 400, "pubkey", "malformed").await;

    let unchanged: Value = app.get(&alice, &format!("/identities/{}", alice.id)).await.json().await.unwrap();
    assert_eq!(unchanged["non_identified_pubkey"], alice.key);
    assert_eq!(unchanged["pubkey"], Value::Null);
}

#[tokio::test]
async fn crypto_actions_list_oldest_first_get_and_delete() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let box_id = seed_box(&app, &alice, &[&bob]).await;
    let first = seed_crypto_action(&app, &bob, &alice, &box_id, "invitation", "Zmlyc3Q=").await;
    let second = seed_crypto_action(&app, &bob, &alice, &box_id, "set_box_key_share", "c2Vjb25k").await;
    let alices = seed_crypto_action(&app, &alice, &bob, &box_id, "invitation", "YWxpY2U=").await;
    let base = format!("/identities/{}/crypto/actions", bob.id);

    let res = app.get(&bob, &base).await;
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], first.to_string());
    assert_eq!(list[1]["id"], second.to_string());
    let mut keys: Vec<&str> = list[0].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, vec!["box_id", "created_at", "encrypted", "encryption_public_key", "id", "type"], "no sender_id");
    assert_eq!(list[0]["type"], "invitation");
    assert_eq!(list[0]["encrypted"], "Zmlyc3Q=", "ciphertext as received");
    assert_eq!(list[0]["encryption_public_key"], bob.key);
    assert_eq!(list[0]["box_id"], box_id);
    assert_eq!(list[1]["type"], "set_box_key_share");

    let bobs = app.api(&bob);
    let one = bobs.crypto_action(bob.id, second).await.unwrap();
    assert_eq!(serde_json::to_value(one).unwrap(), list[1]);

    // Someone else's action is indistinguishable from an unknown one.
    let body = assert_refused(bobs.crypto_action(bob.id, alices).await, 404, "action_id", "not_found");
    assert_eq!(body.code, ErrorCode::NotFound);
    assert_refused(bobs.delete_crypto_action(bob.id, alices).await, 404, "action_id", "not_found");
    let unknown = CryptoActionId::new_v4();
    assert_refused(bobs.crypto_action(bob.id, unknown).await, 404, "action_id", "not_found");

    app.api_with_cookies(&bob).delete_crypto_action(bob.id, first).await.unwrap();
    assert_refused(bobs.delete_crypto_action(bob.id, first).await, 404, "action_id", "not_found");
    let list = bobs.crypto_actions(bob.id).await.unwrap();
    assert_eq!(list.iter().map(|a| a.id).collect::<Vec<_>>(), [second]);

    // Alice's action is untouched.
    app.api(&alice).crypto_action(alice.id, alices).await.unwrap();
}

#[tokio::test]
async fn crypto_actions_belong_to_the_path_identity() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    let action = seed_crypto_action(&app, &bob, &alice, &box_id, "invitation", "eA").await;
    let alices = app.api(&alice);

    assert!(alices.crypto_actions(alice.id).await.unwrap().is_empty());

    assert_refused(alices.crypto_actions(bob.id).await, 403, "id", "forbidden");
    assert_refused(alices.crypto_action(bob.id, action).await, 403, "id", "forbidden");
    assert_refused(alices.delete_crypto_action(bob.id, action).await, 403, "id", "forbidden");
    let res = app.get(&bob, &format!("/identities/{}/crypto/actions/not-a-uuid", bob.id)).await;
    let body = assert_error(res, 400, "action_id", "malformed").await;
    assert_eq!(body["origin"], "path");
    // A malformed path wins over another identity in it.
    let res = app.get(&alice, &format!("/identities/{}/crypto/actions/not-a-uuid", bob.id)).await;
    assert_error(res, 400, "action_id", "malformed").await;
    let res = app
        .send_as(
            &bob,
            Method::DELETE,
            &format!("/identities/{}/crypto/actions/{action}", bob.id),
            None,
            Auth::CookieNoCsrf,
        )
        .await;
    assert_error(res, 403, "X-CSRF-Token", "required").await;
    app.api(&bob).crypto_action(bob.id, action).await.expect("still there after the refused delete");
}

#[tokio::test]
async fn crypto_action_list_is_capped_at_500() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    let c = crate::helpers::db(&app).await;
    c.execute(
        "INSERT INTO boxes.crypto_actions (id, identity_id, type, box_id, sender_id, encryption_public_key, encrypted, created_at)
         SELECT gen_random_uuid(), $1, 'invitation', $2::text::uuid, $1, 'k', 'e' || g, now() + g * interval '1 millisecond'
         FROM generate_series(1, 505) AS g",
        &[alice.id.as_uuid(), &box_id],
    )
    .await
    .unwrap();
    let list = app.api(&alice).crypto_actions(alice.id).await.unwrap();
    assert_eq!(list.len(), 500);
    assert_eq!(list[0].encrypted, "e1");
    assert_eq!(list[499].encrypted, "e500");
}

#[tokio::test]
async fn a_new_box_key_share_reaches_other_members_as_crypto_actions() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let created = app.create_box(&alice, "Project").await;
    let box_id = created["id"].as_str().unwrap().to_owned();
    app.add_member(&alice, &bob, &box_id).await;
    let (alices, bobs) = (app.api(&alice), app.api(&bob));

    let extra = KeyShare {
        misakey_share: "bmV3".into(),
        other_share_hash: crate::helpers::test_key("rotated"),
        encrypted_invitation_key_share: Some("c2VjcmV0".into()),
    };
    alices.post_event(bid(&box_id), &NewEvent::StateKeyShare { extra }).await.unwrap();

    let list = bobs.crypto_actions(bob.id).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].kind, CryptoActionType::SetBoxKeyShare);
    assert_eq!(list[0].box_id, Some(bid(&box_id)));
    assert_eq!(list[0].encrypted, "c2VjcmV0");
    assert_eq!(list[0].encryption_public_key, created["public_key"].as_str().unwrap());
    assert!(alices.crypto_actions(alice.id).await.unwrap().is_empty(), "not for the sender");

    bobs.delete_crypto_action(bob.id, list[0].id).await.unwrap();
    assert!(bobs.crypto_actions(bob.id).await.unwrap().is_empty());
}
