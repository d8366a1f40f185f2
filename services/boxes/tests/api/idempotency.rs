//! `Idempotency-Key` (issue 17): the same key and request within a day give the first answer
//! without doing anything again, concurrently or in sequence; a key reused with another request is
//! 422; a key whose first request still runs is 409. Keys belong to one identity.

use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::boxes::box_id;
use crate::contact::{seed_body, seed_contact};
use crate::helpers::{assert_error, box_key, db, new_key_share, spawn_app, Auth, TestApp, User};

const HEADER: &str = "Idempotency-Key";

async fn post_keyed(app: &TestApp, user: &User, path: &str, body: &Value, key: &str) -> Response {
    app.request(user, Method::POST, path, Auth::Bearer).header(HEADER, key).json(body).send().await.unwrap()
}

/// Status, whether it was replayed, body.
async fn answer(res: Response) -> (u16, bool, Value) {
    let status = res.status().as_u16();
    let replayed = res.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    (status, replayed, res.json().await.unwrap())
}

/// Eight tries of one keyed request at once: every 201 is the same answer, the others are 409
/// on the key (never the write's own conflict). Returns the answer.
async fn concurrently(app: &TestApp, user: &User, path: &str, body: &Value, key: &str) -> Value {
    let tries = (0..8).map(|_| post_keyed(app, user, path, body, key));
    let answers: Vec<(u16, bool, Value)> =
        futures_util::future::join_all(futures_util::future::join_all(tries).await.into_iter().map(answer)).await;
    let created: Vec<&Value> = answers.iter().filter(|a| a.0 == 201).map(|a| &a.2).collect();
    assert!(!created.is_empty(), "{answers:?}");
    assert!(created.iter().all(|b| *b == created[0]), "every 201 is the same answer: {answers:?}");
    for (status, _, body) in answers.iter().filter(|a| a.0 != 201) {
        assert_eq!(*status, 409, "{body}");
        assert_eq!(body["code"], "conflict");
        assert_eq!(body["details"], json!({HEADER: "conflict"}));
    }
    created[0].clone()
}

fn text(ciphertext: &str) -> Value {
    json!({"type":"msg.text","content":{"encrypted": ciphertext, "public_key": "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw"}})
}

async fn count(app: &TestApp, sql: &str, id: uuid::Uuid) -> i64 {
    db(app).await.query_one(sql, &[&id]).await.unwrap().get(0)
}

async fn messages_in(app: &TestApp, box_id: &str) -> i64 {
    let id = uuid::Uuid::parse_str(box_id).unwrap();
    count(app, "SELECT count(*) FROM boxes.events WHERE box_id = $1 AND type = 'msg.text'", id).await
}

#[tokio::test]
async fn a_message_retried_in_sequence_is_posted_once_and_answered_the_same() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &bob, &id).await;
    let path = format!("/boxes/{id}/events");
    let body = text("aGVsbG8");
    let unread = || async {
        let key = domain::realtime::counter_key(alice.id, id.parse().unwrap());
        let n: Option<i64> = redis::AsyncCommands::get(&mut test_support::redis_conn().await, key).await.unwrap();
        n.unwrap_or(0)
    };
    let before = unread().await;

    let (status, replayed, first) = answer(post_keyed(&app, &bob, &path, &body, "k-1").await).await;
    assert_eq!((status, replayed), (201, false));
    crate::boxes::assert_event_shape(&first);
    // The same JSON with another key order and spacing is the same request.
    let reordered = r#"{ "content": {"public_key":"SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw", "encrypted":"aGVsbG8"}, "type":"msg.text" }"#;
    for _ in 0..2 {
        let res = app
            .request(&bob, Method::POST, &path, Auth::Bearer)
            .header(HEADER, "k-1")
            .header("Content-Type", "application/json")
            .body(reordered)
            .send()
            .await
            .unwrap();
        assert_eq!(answer(res).await, (201, true, first.clone()));
    }
    assert_eq!(messages_in(&app, &id).await, 1);
    assert_eq!(unread().await, before + 1, "the unread counter moved once");

    // Another key is another message; the same key is another identity's own.
    assert_eq!(answer(post_keyed(&app, &bob, &path, &body, "k-2").await).await.0, 201);
    let (status, replayed, alices) = answer(post_keyed(&app, &alice, &path, &body, "k-1").await).await;
    assert_eq!((status, replayed), (201, false));
    assert_ne!(alices["id"], first["id"]);
    assert_eq!(messages_in(&app, &id).await, 3);
    // Without a key nothing is deduplicated (the fast path).
    app.say(&bob, &id, "aGVsbG8").await;
    app.say(&bob, &id, "aGVsbG8").await;
    assert_eq!(messages_in(&app, &id).await, 5);
}

#[tokio::test]
async fn a_message_retried_concurrently_is_posted_once() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    let path = format!("/boxes/{id}/events");
    let body = text("Y29uY3VycmVudA");
    let created = concurrently(&app, &alice, &path, &body, "same").await;
    assert_eq!(messages_in(&app, &id).await, 1);
    // Once the first has finished, a retry gets its answer.
    assert_eq!(answer(post_keyed(&app, &alice, &path, &body, "same").await).await, (201, true, created.clone()));

    // A first request still running holds the key's lock (held here by hand): 409 at once.
    let c = db(&app).await;
    let lock = "SELECT pg_advisory_lock(hashtextextended('idempotency:' || $1::uuid::text || ':' || $2, 0))";
    c.execute(lock, &[alice.id.as_uuid(), &"running"]).await.unwrap();
    let started = std::time::Instant::now();
    assert_error(post_keyed(&app, &alice, &path, &body, "running").await, 409, HEADER, "conflict").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "the retry does not wait");
    let unlock = "SELECT pg_advisory_unlock(hashtextextended('idempotency:' || $1::uuid::text || ':' || $2, 0))";
    c.execute(unlock, &[alice.id.as_uuid(), &"running"]).await.unwrap();
    assert_eq!(post_keyed(&app, &alice, &path, &body, "running").await.status(), 201);
    assert_eq!(messages_in(&app, &id).await, 2);
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_422() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    let path = format!("/boxes/{id}/events");
    assert_eq!(post_keyed(&app, &alice, &path, &text("b25l"), "k").await.status(), 201);
    let changed = assert_error(post_keyed(&app, &alice, &path, &text("dHdv"), "k").await, 422, HEADER, "invalid").await;
    assert_eq!((changed["code"].as_str(), changed["origin"].as_str()), (Some("unprocessable_entity"), Some("headers")));
    let box_body = json!({"title": "T", "public_key": box_key("T"), "key_share": null});
    assert_error(post_keyed(&app, &alice, "/boxes", &box_body, "k").await, 422, HEADER, "invalid").await;
    assert_eq!(messages_in(&app, &id).await, 1);

    for bad in ["", "with space", &"x".repeat(256), "caf\u{e9}"] {
        let res =
            app.request(&alice, Method::POST, &path, Auth::Bearer).header(HEADER, bad).json(&text("Yg")).send().await;
        // reqwest refuses some header values itself; those never reach the server.
        if let Ok(res) = res {
            let body = assert_error(res, 400, HEADER, "invalid").await;
            assert_eq!(body["origin"], "headers");
        }
    }
    assert_eq!(messages_in(&app, &id).await, 1);
}

#[tokio::test]
async fn a_refused_write_is_not_remembered() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    let path = format!("/boxes/{id}/events");
    assert_error(post_keyed(&app, &bob, &path, &text("aGk"), "k").await, 403, "reason", "not_member").await;
    app.add_member(&alice, &bob, &id).await;
    let (status, replayed, _) = answer(post_keyed(&app, &bob, &path, &text("aGk"), "k").await).await;
    assert_eq!((status, replayed), (201, false), "the refusal changed nothing, so the retry runs");
}

#[tokio::test]
async fn box_creation_and_contact_are_done_once_per_key() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let body = json!({"title": "Once", "public_key": box_key("Once"), "key_share": new_key_share()});
    let tries = (0..4).map(|_| post_keyed(&app, &alice, "/boxes", &body, "create-1"));
    let mut answers: Vec<(u16, bool, Value)> =
        futures_util::future::join_all(futures_util::future::join_all(tries).await.into_iter().map(answer)).await;
    answers.push(answer(post_keyed(&app, &alice, "/boxes", &body, "create-1").await).await);
    let created: Vec<&Value> = answers.iter().filter(|a| a.0 == 201).map(|a| &a.2).collect();
    assert!(answers.iter().all(|a| a.0 == 201 || a.0 == 409), "{answers:?}");
    assert!(created.len() >= 2 && created.iter().all(|b| *b == created[0]), "{answers:?}");
    let boxes = count(&app, "SELECT count(*) FROM boxes.boxes WHERE creator_id = $1", *alice.id.as_uuid()).await;
    assert_eq!(boxes, 1);

    let bob = seed_contact(&app, "Bob").await;
    let contact_path = format!("/box-users/{}/contact", alice.id);
    let first = answer(post_keyed(&app, &alice, &contact_path, &seed_body(&bob), "contact-1").await).await;
    assert_eq!((first.0, first.1), (201, false));
    let again = answer(post_keyed(&app, &alice, &contact_path, &seed_body(&bob), "contact-1").await).await;
    assert_eq!(again, (201, true, first.2.clone()));
    let actions =
        count(&app, "SELECT count(*) FROM boxes.crypto_actions WHERE identity_id = $1", *bob.id.as_uuid()).await;
    assert_eq!(actions, 1, "one invitation");
    let boxes = count(&app, "SELECT count(*) FROM boxes.boxes WHERE creator_id = $1", *alice.id.as_uuid()).await;
    assert_eq!(boxes, 2);
}

#[tokio::test]
async fn a_deleted_message_is_not_kept_in_its_stored_answer() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    let path = format!("/boxes/{id}/events");
    let (_, _, msg) = answer(post_keyed(&app, &alice, &path, &text("c2VjcmV0"), "k").await).await;
    let edit = json!({"type":"msg.edit","referrer_id": msg["id"],"content":{"new_encrypted":"ZWRpdA","new_public_key":"bmV3S2V5"}});
    assert_eq!(post_keyed(&app, &alice, &path, &edit, "k-edit").await.status(), 201);
    assert_eq!(app.post_event(&alice, &id, json!({"type":"msg.delete","referrer_id": msg["id"]})).await.status(), 201);

    let c = db(&app).await;
    let rows =
        c.query("SELECT body FROM boxes.idempotency_keys WHERE identity_id = $1", &[alice.id.as_uuid()]).await.unwrap();
    for r in &rows {
        let body: Option<String> = r.get(0);
        assert!(!body.unwrap_or_default().contains("c2VjcmV0"), "ciphertext kept");
    }
    let (status, replayed, again) = answer(post_keyed(&app, &alice, &path, &text("c2VjcmV0"), "k").await).await;
    assert_eq!((status, replayed), (201, true));
    assert_eq!(again["id"], msg["id"]);
    assert!(again["content"]["deleted"].is_object(), "rendered as it is now: {again}");
    assert_eq!(messages_in(&app, &id).await, 1);

    // Deleting the box drops the answers of its events.
    let res = crate::boxes::delete_box(&app, &alice, &id, "supprimer").await;
    assert!(res.status().is_success(), "{}", res.status());
    let left: i64 =
        c.query_one("SELECT count(*) FROM boxes.idempotency_keys WHERE box_id IS NOT NULL", &[]).await.unwrap().get(0);
    assert_eq!(left, 0);
}

fn share_body(box_id: &str) -> Value {
    let mut share = new_key_share();
    share["box_id"] = json!(box_id);
    share
}

async fn shares_of(app: &TestApp, box_id: &str) -> i64 {
    let id = uuid::Uuid::parse_str(box_id).unwrap();
    count(app, "SELECT count(*) FROM boxes.key_shares WHERE box_id = $1", id).await
}

#[tokio::test]
async fn a_key_share_retried_in_sequence_is_added_once_and_answered_the_same() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &bob, &id).await;
    let body = share_body(&id);

    let (status, replayed, first) = answer(post_keyed(&app, &bob, "/box-key-shares", &body, "share-1").await).await;
    assert_eq!((status, replayed), (201, false));
    assert_eq!(first["other_share_hash"], body["other_share_hash"]);
    for _ in 0..2 {
        let again = answer(post_keyed(&app, &bob, "/box-key-shares", &body, "share-1").await).await;
        assert_eq!(again, (201, true, first.clone()));
    }
    assert_eq!(shares_of(&app, &id).await, 2, "the box's first share and bob's, once");
    // Without the key the same share is a duplicate hash, as before.
    assert_error(app.post(&bob, "/box-key-shares", body.clone()).await, 409, "other_share_hash", "conflict").await;
    // The key is bob's own: alice's use of it is another request of hers.
    let alices = answer(post_keyed(&app, &alice, "/box-key-shares", &share_body(&id), "share-1").await).await;
    assert_eq!((alices.0, alices.1), (201, false));
    assert_eq!(shares_of(&app, &id).await, 3);
}

#[tokio::test]
async fn a_key_share_retried_concurrently_is_added_once() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    let body = share_body(&id);
    let created = concurrently(&app, &alice, "/box-key-shares", &body, "same-share").await;
    assert_eq!(shares_of(&app, &id).await, 2);
    let again = answer(post_keyed(&app, &alice, "/box-key-shares", &body, "same-share").await).await;
    assert_eq!(again, (201, true, created));
}

#[tokio::test]
async fn a_key_share_key_reused_for_another_share_is_422() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    assert_eq!(post_keyed(&app, &alice, "/box-key-shares", &share_body(&id), "k").await.status(), 201);
    let other = share_body(&id);
    let res = post_keyed(&app, &alice, "/box-key-shares", &other, "k").await;
    let body = assert_error(res, 422, HEADER, "invalid").await;
    assert_eq!(body["origin"], "headers");
    assert_eq!(shares_of(&app, &id).await, 2);
    // A refusal is not remembered: bob, not a member, is refused, then let in, then succeeds.
    let bobs = share_body(&id);
    assert_error(post_keyed(&app, &bob, "/box-key-shares", &bobs, "b").await, 403, "reason", "not_member").await;
    app.add_member(&alice, &bob, &id).await;
    assert_eq!(answer(post_keyed(&app, &bob, "/box-key-shares", &bobs, "b").await).await.0, 201);
    // Deleting the box drops the stored answers of its shares with it.
    let res = crate::boxes::delete_box(&app, &alice, &id, "supprimer").await;
    assert!(res.status().is_success(), "{}", res.status());
    let left =
        count(&app, "SELECT count(*) FROM boxes.idempotency_keys WHERE identity_id = $1", *alice.id.as_uuid()).await;
    assert_eq!(left, 0);
}
