//! Key shares (§7.12).

use serde_json::{json, Value};

use crate::helpers::{assert_error, db, new_key_share, seed_box, spawn_app, test_key, Auth};

fn share_body(box_id: &str, hash: &str) -> Value {
    json!({"misakey_share": "lBHT1vfwFAIBig5Nj+sD+w==", "other_share_hash": hash,
           "encrypted_invitation_key_share": "cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ=", "box_id": box_id})
}

fn fresh_hash() -> String {
    test_key(&uuid::Uuid::new_v4().to_string())
}

#[tokio::test]
async fn members_add_and_read_shares_exactly_as_sent() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let box_id = seed_box(&app, &alice, &[&bob]).await;
    let hash = fresh_hash();

    let res = app.post(&bob, "/box-key-shares", share_body(&box_id, &hash)).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(
        created,
        json!({"misakey_share": "lBHT1vfwFAIBig5Nj+sD+w==", "other_share_hash": hash,
               "encrypted_invitation_key_share": "cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ=", "box_id": box_id})
    );

    for reader in [&alice, &bob] {
        let res = app.get(reader, &format!("/box-key-shares/{hash}")).await;
        assert_eq!(res.status(), 200);
        let read: Value = res.json().await.unwrap();
        assert_eq!(read, created);
    }

    // `share` is an alias of `misakey_share`; without the invitation share the field reads null.
    let hash2 = fresh_hash();
    let res = app
        .send_as(
            &alice,
            reqwest::Method::POST,
            "/box-key-shares",
            Some(json!({"share": "c2hhcmU", "other_share_hash": hash2, "box_id": box_id})),
            Auth::Cookie,
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["misakey_share"], "c2hhcmU");
    assert_eq!(created["encrypted_invitation_key_share"], Value::Null);

    // Existing shares are kept.
    let res = app.get(&alice, &format!("/box-key-shares/{hash}")).await;
    assert_eq!(res.status(), 200);
    let stored = db(&app).await.query_one("SELECT count(*) FROM boxes.key_shares", &[]).await.unwrap();
    assert_eq!(stored.get::<_, i64>(0), 2);
}

#[tokio::test]
async fn only_members_touch_shares() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let eve = app.user("Eve").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    let hash = fresh_hash();

    let res = app.post(&eve, "/box-key-shares", share_body(&box_id, &hash)).await;
    let body = assert_error(res, 403, "reason", "not_member").await;
    assert_eq!(body["code"], "forbidden");
    let res = app.post(&eve, "/box-key-shares", share_body(&uuid::Uuid::new_v4().to_string(), &hash)).await;
    assert_error(res, 403, "reason", "not_member").await;

    let res = app.post(&alice, "/box-key-shares", share_body(&box_id, &hash)).await;
    assert_eq!(res.status(), 201);
    let res = app.get(&eve, &format!("/box-key-shares/{hash}")).await;
    assert_error(res, 403, "reason", "not_member").await;
    let res = app.get(&eve, &format!("/box-key-shares/encrypted-invitation-key-share?box_id={box_id}")).await;
    assert_error(res, 403, "reason", "not_member").await;
    let res =
        app.get(&eve, &format!("/box-key-shares/encrypted-invitation-key-share?box_id={}", uuid::Uuid::new_v4())).await;
    assert_error(res, 403, "reason", "not_member").await;
}

#[tokio::test]
async fn duplicate_hash_conflicts() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let box_a = seed_box(&app, &alice, &[]).await;
    let box_b = seed_box(&app, &alice, &[]).await;
    let hash = fresh_hash();
    let res = app.post(&alice, "/box-key-shares", share_body(&box_a, &hash)).await;
    assert_eq!(res.status(), 201);
    let res = app.post(&alice, "/box-key-shares", share_body(&box_a, &hash)).await;
    let body = assert_error(res, 409, "other_share_hash", "conflict").await;
    assert_eq!(body["code"], "conflict");
    let res = app.post(&alice, "/box-key-shares", share_body(&box_b, &hash)).await;
    assert_error(res, 409, "other_share_hash", "conflict").await;
    let read: Value = app.get(&alice, &format!("/box-key-shares/{hash}")).await.json().await.unwrap();
    assert_eq!(read["box_id"], box_a);
}

#[tokio::test]
async fn share_validation() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let box_id = seed_box(&app, &alice, &[]).await;

    let res = app.post(&alice, "/box-key-shares", json!({})).await;
    let body = assert_error(res, 400, "misakey_share", "required").await;
    assert_eq!(body["details"]["other_share_hash"], "required");
    assert_eq!(body["details"]["box_id"], "required");
    assert_eq!(body["origin"], "body");
    let mut b = share_body(&box_id, "Nz4nJMj5DOd4UGXXOlH8Ww==");
    let res = app.post(&alice, "/box-key-shares", b.clone()).await;
    assert_error(res, 400, "other_share_hash", "malformed").await;
    b["other_share_hash"] = json!(fresh_hash());
    b["misakey_share"] = json!("not base64!");
    let res = app.post(&alice, "/box-key-shares", b.clone()).await;
    assert_error(res, 400, "misakey_share", "malformed").await;
    b["misakey_share"] = json!("a".repeat(1025));
    let res = app.post(&alice, "/box-key-shares", b.clone()).await;
    assert_error(res, 400, "misakey_share", "invalid").await;
    b["misakey_share"] = json!("aaaa");
    b["encrypted_invitation_key_share"] = json!("a".repeat(4097));
    let res = app.post(&alice, "/box-key-shares", b.clone()).await;
    assert_error(res, 400, "encrypted_invitation_key_share", "invalid").await;
    b["encrypted_invitation_key_share"] = json!("aaaa");
    b["box_id"] = json!("nope");
    let res = app.post(&alice, "/box-key-shares", b.clone()).await;
    assert_error(res, 400, "box_id", "malformed").await;
    b["other_share_hash"] = json!("a".repeat(513));
    b["box_id"] = json!(box_id);
    let res = app.post(&alice, "/box-key-shares", b).await;
    assert_error(res, 400, "other_share_hash", "invalid").await;
}

#[tokio::test]
async fn reading_by_hash() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let res = app.get(&alice, &format!("/box-key-shares/{}", fresh_hash())).await;
    let body = assert_error(res, 404, "other_share_hash", "not_found").await;
    assert_eq!(body["code"], "not_found");
    for bad in ["abc%2Bdef", "abc%3D%3D", "abcde"] {
        let res = app.get(&alice, &format!("/box-key-shares/{bad}")).await;
        let body = assert_error(res, 400, "other_share_hash", "malformed").await;
        assert_eq!(body["origin"], "path", "{bad}");
    }
    // `-` and `_` are b64u characters: such hashes are found.
    let box_id = seed_box(&app, &alice, &[]).await;
    let hash = "ab-_cd-_efGH";
    let res = app.post(&alice, "/box-key-shares", share_body(&box_id, hash)).await;
    assert_eq!(res.status(), 201);
    let res = app.get(&alice, &format!("/box-key-shares/{hash}")).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn encrypted_invitation_key_share_is_the_newest_as_a_bare_string() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let box_id = seed_box(&app, &alice, &[&bob]).await;
    let path = format!("/box-key-shares/encrypted-invitation-key-share?box_id={box_id}");

    let res = app.get(&bob, &path).await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "not_found");

    let mut first = share_body(&box_id, &fresh_hash());
    first["encrypted_invitation_key_share"] = json!("Zmlyc3Q=");
    assert_eq!(app.post(&alice, "/box-key-shares", first).await.status(), 201);
    let mut second = share_body(&box_id, &fresh_hash());
    second["encrypted_invitation_key_share"] = json!("c2Vjb25k");
    assert_eq!(app.post(&alice, "/box-key-shares", second).await.status(), 201);

    let res = app.get(&bob, &path).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "\"c2Vjb25k\"");

    let res = app.get(&bob, "/box-key-shares/encrypted-invitation-key-share").await;
    let body = assert_error(res, 400, "box_id", "required").await;
    assert_eq!(body["origin"], "query");
    let res = app.get(&bob, "/box-key-shares/encrypted-invitation-key-share?box_id=xyz").await;
    assert_error(res, 400, "box_id", "malformed").await;
}

#[tokio::test]
async fn shares_of_an_api_created_box_follow_membership() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let share = new_key_share();
    let res = app
        .post(&alice, "/boxes", json!({"title": "Project", "public_key": test_key("box"), "key_share": share}))
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let box_id = created["id"].as_str().unwrap().to_owned();
    let hash = share["other_share_hash"].as_str().unwrap().to_owned();

    let read: Value = app.get(&alice, &format!("/box-key-shares/{hash}")).await.json().await.unwrap();
    assert_eq!(read["misakey_share"], share["misakey_share"]);
    assert_eq!(read["encrypted_invitation_key_share"], share["encrypted_invitation_key_share"]);
    assert_eq!(read["box_id"], box_id);
    let res = app.get(&bob, &format!("/box-key-shares/{hash}")).await;
    assert_error(res, 403, "reason", "not_member").await;

    app.add_member(&alice, &bob, &box_id).await;
    let res = app.get(&bob, &format!("/box-key-shares/{hash}")).await;
    assert_eq!(res.status(), 200);
    let newer = fresh_hash();
    let mut body = share_body(&box_id, &newer);
    body["encrypted_invitation_key_share"] = json!("bmV3ZXI");
    assert_eq!(app.post(&bob, "/box-key-shares", body).await.status(), 201);
    let res = app.get(&bob, &format!("/box-key-shares/encrypted-invitation-key-share?box_id={box_id}")).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!("bmV3ZXI"));
    // The hash used at box creation is taken for good.
    let res = app.post(&bob, "/box-key-shares", share_body(&box_id, &hash)).await;
    assert_error(res, 409, "other_share_hash", "conflict").await;

    let res = app.post_event(&bob, &box_id, json!({"type": "member.leave"})).await;
    assert_eq!(res.status(), 201);
    let res = app.get(&bob, &format!("/box-key-shares/{hash}")).await;
    assert_error(res, 403, "reason", "not_member").await;
    let res = app.post(&bob, "/box-key-shares", share_body(&box_id, &fresh_hash())).await;
    assert_error(res, 403, "reason", "not_member").await;
}
