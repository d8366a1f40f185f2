//! Key shares (§7.12).

use boxes_client::body::{KeyShare, KeyShareCreate, NewBox, NewEvent};
use domain::ErrorCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, assert_refused, bid, db, new_share, seed_box, spawn_app, test_key, Auth};

fn share_body(box_id: &str, hash: &str) -> Value {
    json!({"misakey_share": "lBHT1vfwFAIBig5Nj+sD+w==", "other_share_hash": hash,
           "encrypted_invitation_key_share": "cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ=", "box_id": box_id})
}

/// [`share_body`] for the typed client.
fn share(box_id: &str, hash: &str) -> KeyShareCreate {
    let share = KeyShare {
        misakey_share: "lBHT1vfwFAIBig5Nj+sD+w==".into(),
        other_share_hash: hash.into(),
        encrypted_invitation_key_share: Some("cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ=".into()),
    };
    KeyShareCreate { share, box_id: bid(box_id) }
}

/// [`share`] with its own encrypted invitation share.
fn share_with_invitation(box_id: &str, hash: &str, invitation: &str) -> KeyShareCreate {
    let mut s = share(box_id, hash);
    s.share.encrypted_invitation_key_share = Some(invitation.into());
    s
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

    let created = app.api(&bob).create_key_share(&share(&box_id, &hash)).await.unwrap();
    assert_eq!(
        created,
        domain::keyshare::KeyShare {
            misakey_share: "lBHT1vfwFAIBig5Nj+sD+w==".into(),
            other_share_hash: hash.clone(),
            encrypted_invitation_key_share: Some("cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ=".into()),
            box_id: bid(&box_id),
        }
    );

    for reader in [&alice, &bob] {
        assert_eq!(app.api(reader).key_share(&hash).await.unwrap(), created);
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
    app.api(&alice).key_share(&hash).await.unwrap();
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
    let eves = app.api(&eve);

    let body = assert_refused(eves.create_key_share(&share(&box_id, &hash)).await, 403, "reason", "not_member");
    assert_eq!(body.code, ErrorCode::Forbidden);
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_refused(eves.create_key_share(&share(&unknown, &hash)).await, 403, "reason", "not_member");

    app.api(&alice).create_key_share(&share(&box_id, &hash)).await.unwrap();
    assert_refused(eves.key_share(&hash).await, 403, "reason", "not_member");
    assert_refused(eves.encrypted_invitation_key_share(bid(&box_id)).await, 403, "reason", "not_member");
    assert_refused(eves.encrypted_invitation_key_share(bid(&unknown)).await, 403, "reason", "not_member");
}

#[tokio::test]
async fn duplicate_hash_conflicts() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let box_a = seed_box(&app, &alice, &[]).await;
    let box_b = seed_box(&app, &alice, &[]).await;
    let hash = fresh_hash();
    let alices = app.api(&alice);
    alices.create_key_share(&share(&box_a, &hash)).await.unwrap();
    let res = alices.create_key_share(&share(&box_a, &hash)).await;
    let body = assert_refused(res, 409, "other_share_hash", "conflict");
    assert_eq!(body.code, ErrorCode::Conflict);
    assert_refused(alices.create_key_share(&share(&box_b, &hash)).await, 409, "other_share_hash", "conflict");
    assert_eq!(alices.key_share(&hash).await.unwrap().box_id, bid(&box_a));
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
    let alices = app.api(&alice);
    let body = assert_refused(alices.key_share(&fresh_hash()).await, 404, "other_share_hash", "not_found");
    assert_eq!(body.code, ErrorCode::NotFound);
    for bad in ["abc%2Bdef", "abc%3D%3D", "abcde"] {
        let res = app.get(&alice, &format!("/box-key-shares/{bad}")).await;
        let body = assert_error(res, 400, "other_share_hash", "malformed").await;
        assert_eq!(body["origin"], "path", "{bad}");
    }
    // `-` and `_` are b64u characters: such hashes are found.
    let box_id = seed_box(&app, &alice, &[]).await;
    let hash = "ab-_cd-_efGH";
    alices.create_key_share(&share(&box_id, hash)).await.unwrap();
    alices.key_share(hash).await.unwrap();
}

#[tokio::test]
async fn encrypted_invitation_key_share_is_the_newest_as_a_bare_string() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let box_id = seed_box(&app, &alice, &[&bob]).await;
    let path = format!("/box-key-shares/encrypted-invitation-key-share?box_id={box_id}");

    let err = app.api(&bob).encrypted_invitation_key_share(bid(&box_id)).await.unwrap_err();
    assert_eq!((err.status(), err.body().map(|b| b.code)), (Some(404), Some(ErrorCode::NotFound)), "{err}");

    let alices = app.api(&alice);
    alices.create_key_share(&share_with_invitation(&box_id, &fresh_hash(), "Zmlyc3Q=")).await.unwrap();
    alices.create_key_share(&share_with_invitation(&box_id, &fresh_hash(), "c2Vjb25k")).await.unwrap();

    // The exact bytes: a bare JSON string.
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
    let (alices, bobs) = (app.api(&alice), app.api(&bob));
    let first = new_share();
    let new = NewBox { key_share: Some(first.clone()), ..NewBox::new("Project", &test_key("box")) };
    let box_id = alices.create_box(&new).await.unwrap().id.to_string();
    let hash = first.other_share_hash.clone();

    let read = alices.key_share(&hash).await.unwrap();
    assert_eq!(read.misakey_share, first.misakey_share);
    assert_eq!(read.encrypted_invitation_key_share, first.encrypted_invitation_key_share);
    assert_eq!(read.box_id, bid(&box_id));
    assert_refused(bobs.key_share(&hash).await, 403, "reason", "not_member");

    app.add_member(&alice, &bob, &box_id).await;
    bobs.key_share(&hash).await.unwrap();
    bobs.create_key_share(&share_with_invitation(&box_id, &fresh_hash(), "bmV3ZXI")).await.unwrap();
    assert_eq!(bobs.encrypted_invitation_key_share(bid(&box_id)).await.unwrap(), "bmV3ZXI");
    // The hash used at box creation is taken for good.
    assert_refused(bobs.create_key_share(&share(&box_id, &hash)).await, 409, "other_share_hash", "conflict");

    bobs.post_event(bid(&box_id), &NewEvent::MemberLeave).await.unwrap();
    assert_refused(bobs.key_share(&hash).await, 403, "reason", "not_member");
    assert_refused(bobs.create_key_share(&share(&box_id, &fresh_hash())).await, 403, "reason", "not_member");
}
