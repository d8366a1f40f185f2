//! Posting and listing events (§6, §7.7, §7.8).

use reqwest::Method;
use serde_json::{json, Value};

use crate::boxes::{assert_event_shape, assert_view, box_id, get_json, keys, set, KEY};
use crate::helpers::{assert_error, bid, db, spawn_app, test_key, Auth, TestApp, User};

fn text(ciphertext: &str) -> Value {
    json!({"type":"msg.text","content":{"encrypted": ciphertext, "public_key": KEY}})
}

fn edit(referrer: &Value, ciphertext: &str) -> Value {
    json!({"type":"msg.edit","referrer_id": referrer["id"],"content":{"new_encrypted": ciphertext,"new_public_key": "bmV3S2V5"}})
}

fn delete(referrer: &Value) -> Value {
    json!({"type":"msg.delete","referrer_id": referrer["id"]})
}

fn access_add(user: &User) -> Value {
    json!({"type":"access.add","content":{"restriction_type":"identity_id","value": user.id.to_string()}})
}

pub async fn events(app: &TestApp, user: &User, box_id: &str) -> Vec<Value> {
    get_json(app, user, &format!("/boxes/{box_id}/events")).await.as_array().unwrap().clone()
}

async fn created(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

/// A box of `alice` with `bob` as a member.
async fn two_member_box(app: &TestApp, alice: &User, bob: &User) -> String {
    let id = box_id(&app.create_box(alice, "Box").await);
    app.add_member(alice, bob, &id).await;
    id
}

#[tokio::test]
async fn a_text_message_comes_back_as_an_event() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = two_member_box(&app, &alice, &bob).await;

    let e = created(app.post_event(&bob, &id, json!({"type":"msg.text","content":{"encrypted":"UrxdLg-Z5cyeRMz8_zk2aK","public_key":KEY,"last_edited_at":"x","deleted":true}})).await).await;
    assert_event_shape(&e);
    assert_eq!(e["type"], "msg.text");
    assert_eq!(e["box_id"], id);
    assert_eq!(e["referrer_id"], Value::Null);
    assert_eq!(e["content"], json!({"encrypted":"UrxdLg-Z5cyeRMz8_zk2aK","public_key":KEY,"last_edited_at":null}));
    assert_view(&e["sender"], &bob, false);

    // The admin sees the same event with transparent views.
    let list = events(&app, &alice, &id).await;
    assert_eq!(list[0]["id"], e["id"]);
    assert_view(&list[0]["sender"], &bob, true);
    assert_eq!(list[0]["content"], e["content"]);

    let file = created(app.post_event(&alice, &id, json!({"type":"msg.file","content":{"encrypted":"abcd","public_key":KEY,"encrypted_file_id": uuid::Uuid::new_v4().to_string()}})).await).await;
    assert_eq!(keys(&file["content"]), set(&["encrypted", "public_key", "encrypted_file_id", "last_edited_at"]));
    assert_view(&file["sender"], &alice, true);
}

#[tokio::test]
async fn posting_validates_the_body_and_path() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    let some_id = uuid::Uuid::new_v4().to_string();
    let cases = [
        (json!({"type":"msg.txt","content":{"encrypted":"abcd","public_key":KEY}}), "type", "invalid"),
        (json!({"type":"create"}), "type", "invalid"),
        (json!({"type":"member.kick"}), "type", "invalid"),
        (json!({"content":{}}), "type", "required"),
        (json!({"type":"msg.text"}), "content", "required"),
        (json!({"type":"msg.text","content":{"encrypted":"abcd=","public_key":KEY}}), "content.encrypted", "malformed"),
        (json!({"type":"msg.text","content":{"encrypted":"ab+/","public_key":KEY}}), "content.encrypted", "malformed"),
        (
            json!({"type":"msg.text","content":{"encrypted":"a".repeat(32769),"public_key":KEY}}),
            "content.encrypted",
            "invalid",
        ),
        (
            json!({"type":"msg.text","content":{"encrypted":"abcd","public_key":KEY},"referrer_id": some_id}),
            "referrer_id",
            "forbidden",
        ),
        (
            json!({"type":"msg.text","content":{"encrypted":"abcd","public_key":KEY},"extra":{"a":"b"}}),
            "extra",
            "forbidden",
        ),
        (json!({"type":"msg.edit","content":{"new_encrypted":"abcd","new_public_key":KEY}}), "referrer_id", "required"),
        (json!({"type":"msg.delete","referrer_id":"nope"}), "referrer_id", "malformed"),
        (json!({"type":"msg.delete","referrer_id": some_id, "content": {"a": 1}}), "content", "forbidden"),
        (json!({"type":"member.join","content":{"x":1}}), "content", "forbidden"),
        (json!({"type":"member.leave","referrer_id": some_id}), "referrer_id", "forbidden"),
        (json!({"type":"state.access_mode","content":{"value":"open"}}), "content.value", "invalid"),
        (json!({"type":"state.key_share","extra":{"misakey_share":"abcd"}}), "extra.other_share_hash", "required"),
        (
            json!({"type":"state.key_share","content":{"a":1},"extra":{"misakey_share":"abcd","other_share_hash":"abcd","encrypted_invitation_key_share":"abcd"}}),
            "content",
            "forbidden",
        ),
        (
            json!({"type":"access.add","content":{"restriction_type":"invitation_link","value":"x.com"}}),
            "content.restriction_type",
            "not_supported",
        ),
        (
            json!({"type":"access.add","content":{"restriction_type":"identity_id","value":"nope"}}),
            "content.value",
            "malformed",
        ),
        (
            json!({"type":"access.add","content":{"restriction_type":"identity_id","value": some_id},"extra":{"k":"abcd"}}),
            "content.auto_invite",
            "invalid",
        ),
        (
            json!({"type":"access.add","content":{"restriction_type":"identity_id","value": some_id,"auto_invite":true}}),
            "extra",
            "required",
        ),
        (json!({"type":"access.rm"}), "referrer_id", "required"),
    ];
    for (body, key, value) in cases {
        let res = app.post_event(&alice, &id, body.clone()).await;
        let b = assert_error(res, 400, key, value).await;
        assert_eq!(b["origin"], "body", "{body}");
    }
    assert_error(app.post_event(&alice, "not-a-uuid", text("abcd")).await, 400, "id", "malformed").await;
    let res =
        app.send_as(&alice, Method::POST, &format!("/boxes/{id}/events"), Some(text("abcd")), Auth::CookieNoCsrf).await;
    assert_error(res, 403, "X-CSRF-Token", "required").await;
    // Nothing was stored by the refused requests.
    assert_eq!(app.api(&alice).events_count(bid(&id)).await.unwrap(), 1);
}

#[tokio::test]
async fn non_members_and_unknown_boxes_are_refused() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    let unknown = uuid::Uuid::new_v4().to_string();

    assert_error(app.post_event(&bob, &id, text("abcd")).await, 403, "reason", "not_member").await;
    assert_error(app.post_event(&bob, &unknown, text("abcd")).await, 403, "reason", "not_member").await;
    assert_error(app.post_event(&bob, &unknown, json!({"type":"member.join"})).await, 403, "reason", "no_access").await;
    assert_error(app.post_event(&bob, &id, json!({"type":"member.join"})).await, 403, "reason", "no_access").await;
    assert_error(app.post_event(&bob, &id, json!({"type":"member.leave"})).await, 403, "reason", "not_member").await;
    assert_error(app.get(&bob, &format!("/boxes/{id}/events")).await, 403, "reason", "not_member").await;
    assert_error(app.get(&bob, &format!("/boxes/{unknown}/events")).await, 403, "reason", "not_member").await;
    assert_eq!(app.api(&bob).events_count(bid(&id)).await.err().and_then(|e| e.status()), Some(403));
    assert_error(app.get(&bob, "/boxes/xyz/events").await, 400, "id", "malformed").await;
}

#[tokio::test]
async fn edit_rules() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = two_member_box(&app, &alice, &bob).await;
    let msg = app.say(&bob, &id, "b3JpZ2luYWw").await;

    let e = created(app.post_event(&bob, &id, edit(&msg, "ZWRpdGVk")).await).await;
    assert_event_shape(&e);
    assert_eq!(e["type"], "msg.edit");
    assert_eq!(e["referrer_id"], msg["id"]);
    assert_eq!(e["content"], json!({"new_encrypted":"ZWRpdGVk","new_public_key":"bmV3S2V5"}));

    assert_error(app.post_event(&alice, &id, edit(&msg, "abcd")).await, 403, "reason", "not_author").await;
    let ghost = json!({"id": uuid::Uuid::new_v4().to_string()});
    assert_error(app.post_event(&bob, &id, edit(&ghost, "abcd")).await, 404, "referrer_id", "not_found").await;
    let other = box_id(&app.create_box(&bob, "Other").await);
    let elsewhere = app.say(&bob, &other, "abcd").await;
    assert_error(app.post_event(&bob, &id, edit(&elsewhere, "abcd")).await, 404, "referrer_id", "not_found").await;
    let file = created(app.post_event(&bob, &id, json!({"type":"msg.file","content":{"encrypted":"abcd","public_key":KEY,"encrypted_file_id": uuid::Uuid::new_v4().to_string()}})).await).await;
    assert_error(app.post_event(&bob, &id, edit(&file, "abcd")).await, 403, "reason", "not_editable").await;
    let join = events(&app, &bob, &id).await.into_iter().find(|e| e["type"] == "member.join").unwrap();
    assert_error(app.post_event(&bob, &id, edit(&join, "abcd")).await, 400, "referrer_id", "invalid").await;

    assert_eq!(app.post_event(&bob, &id, delete(&msg)).await.status(), 201);
    let res = app.post_event(&bob, &id, edit(&msg, "abcd")).await;
    assert_eq!(res.status(), 410);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "gone");
}

#[tokio::test]
async fn delete_rules() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let id = two_member_box(&app, &alice, &bob).await;
    app.add_member(&alice, &carol, &id).await;
    let by_bob = app.say(&bob, &id, "Ym9i").await;
    let by_carol = app.say(&carol, &id, "Y2Fyb2w").await;

    assert_error(app.post_event(&carol, &id, delete(&by_bob)).await, 403, "reason", "not_author").await;
    let d = created(app.post_event(&alice, &id, delete(&by_bob)).await).await;
    assert_event_shape(&d);
    assert_eq!(d["type"], "msg.delete");
    assert_eq!(d["content"], Value::Null);
    assert_eq!(d["referrer_id"], by_bob["id"]);
    assert_eq!(app.post_event(&alice, &id, delete(&by_bob)).await.status(), 410);
    assert_eq!(app.post_event(&carol, &id, delete(&by_carol)).await.status(), 201);
    let join = events(&app, &bob, &id).await.into_iter().find(|e| e["type"] == "member.join").unwrap();
    assert_error(app.post_event(&alice, &id, delete(&join)).await, 400, "referrer_id", "invalid").await;
    let ghost = json!({"id": uuid::Uuid::new_v4().to_string()});
    assert_error(app.post_event(&alice, &id, delete(&ghost)).await, 404, "referrer_id", "not_found").await;

    // The ciphertext is wiped from storage.
    let c = db(&app).await;
    let uid = uuid::Uuid::parse_str(by_bob["id"].as_str().unwrap()).unwrap();
    let content: Option<Value> =
        c.query_one("SELECT content FROM boxes.events WHERE id = $1", &[&uid]).await.unwrap().get(0);
    assert_eq!(content, None);
}

#[tokio::test]
async fn edits_and_deletions_are_folded_in_lists_and_last_event() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = two_member_box(&app, &alice, &bob).await;
    let first = app.say(&bob, &id, "Zmlyc3Q").await;
    let second = app.say(&bob, &id, "c2Vjb25k").await;
    created(app.post_event(&bob, &id, edit(&second, "ZWRpdDE")).await).await;
    let last_edit = created(app.post_event(&bob, &id, json!({"type":"msg.edit","referrer_id": second["id"],"content":{"new_encrypted":"ZWRpdDI","new_public_key":"a2V5Mg"}})).await).await;

    let box_view = get_json(&app, &bob, &format!("/boxes/{id}")).await;
    assert_eq!(box_view["last_event"]["id"], second["id"]);
    assert_eq!(
        box_view["last_event"]["content"],
        json!({"encrypted":"ZWRpdDI","public_key":"a2V5Mg","last_edited_at": last_edit["server_event_created_at"]})
    );

    let del = created(app.post_event(&alice, &id, delete(&first)).await).await;
    let list = events(&app, &bob, &id).await;
    let types: Vec<&str> = list.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec!["msg.text", "msg.text", "member.join", "create"],
        "edits, deletions and access rules are not listed"
    );
    assert_eq!(list[0]["id"], second["id"]);
    assert_eq!(list[0]["content"]["encrypted"], "ZWRpdDI");
    assert_eq!(list[1]["id"], first["id"]);
    assert_eq!(keys(&list[1]["content"]), set(&["deleted"]));
    assert_eq!(list[1]["content"]["deleted"]["at_time"], del["server_event_created_at"]);
    assert_view(&list[1]["content"]["deleted"]["by_identity"], &alice, false);
    let admin_list = events(&app, &alice, &id).await;
    assert_view(&admin_list[1]["content"]["deleted"]["by_identity"], &alice, true);
    assert_eq!(app.api(&bob).events_count(bid(&id)).await.unwrap(), 4);

    // Deleting the newest message folds into last_event too.
    created(app.post_event(&bob, &id, delete(&second)).await).await;
    let box_view = get_json(&app, &alice, &format!("/boxes/{id}")).await;
    assert_eq!(box_view["last_event"]["id"], second["id"]);
    assert_eq!(keys(&box_view["last_event"]["content"]), set(&["deleted"]));
    assert_view(&box_view["last_event"]["content"]["deleted"]["by_identity"], &bob, false);
    assert_view(&box_view["last_event"]["sender"], &bob, false);
}

#[tokio::test]
async fn events_are_listed_newest_first_and_paged() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    let mut sent = Vec::new();
    for i in 0..60 {
        sent.push(app.say(&alice, &id, &format!("bXNn{i:02}")).await["id"].clone());
    }
    let list = events(&app, &alice, &id).await;
    assert_eq!(list.len(), 50, "default limit");
    assert_eq!(list[0]["id"], sent[59]);
    assert_eq!(list[49]["id"], sent[10]);
    let times: Vec<&str> = list.iter().map(|e| e["server_event_created_at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "times never go backwards");

    let page = get_json(&app, &alice, &format!("/boxes/{id}/events?offset=55&limit=10")).await;
    let ids: Vec<&Value> = page.as_array().unwrap().iter().map(|e| &e["id"]).collect();
    let expected: Vec<&Value> = (0..5).rev().map(|i| &sent[i]).collect();
    assert_eq!(&ids[..5], &expected[..]);
    assert_eq!(page[5]["type"], "create");
    assert_eq!(page.as_array().unwrap().len(), 6);
    let all = get_json(&app, &alice, &format!("/boxes/{id}/events?limit=200")).await;
    assert_eq!(all.as_array().unwrap().len(), 61);
    assert_eq!(app.api(&alice).events_count(bid(&id)).await.unwrap(), 61);
    for q in ["limit=201", "limit=0", "offset=-3", "offset=a"] {
        let key = q.split('=').next().unwrap();
        assert_error(app.get(&alice, &format!("/boxes/{id}/events?{q}")).await, 400, key, "invalid").await;
    }
}

/// Every page folds its messages as the whole list does, wherever the page cuts the box: edits
/// and deletions are listed nowhere but are folded into the messages they refer to.
#[tokio::test]
async fn pages_fold_their_messages_like_the_whole_list() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = two_member_box(&app, &alice, &bob).await;
    let mut sent = Vec::new();
    for i in 0..12 {
        let who = if i % 3 == 0 { &alice } else { &bob };
        sent.push(app.say(who, &id, &format!("bXNn{i:02}")).await);
    }
    // Edited once, edited twice, edited then deleted, deleted by its author and by the admin.
    created(app.post_event(&bob, &id, edit(&sent[1], "ZWRpdDE")).await).await;
    created(app.post_event(&bob, &id, edit(&sent[4], "Zmlyc3Q")).await).await;
    created(app.post_event(&alice, &id, edit(&sent[9], "ZWRpdDk")).await).await;
    created(app.post_event(&bob, &id, edit(&sent[4], "c2Vjb25k")).await).await;
    created(app.post_event(&bob, &id, edit(&sent[7], "ZWRpdDc")).await).await;
    created(app.post_event(&bob, &id, delete(&sent[7])).await).await;
    created(app.post_event(&bob, &id, delete(&sent[2])).await).await;
    created(app.post_event(&alice, &id, delete(&sent[11])).await).await;

    for user in [&alice, &bob] {
        let all = get_json(&app, user, &format!("/boxes/{id}/events?limit=200")).await;
        let all = all.as_array().unwrap();
        assert_eq!(all.len(), 14, "the messages, bob's join and the creation");
        assert_eq!(all[7]["content"]["encrypted"], "c2Vjb25k");
        assert_eq!(all[10]["content"]["encrypted"], "ZWRpdDE");
        assert_eq!(keys(&all[4]["content"]), set(&["deleted"]));
        assert_eq!(keys(&all[0]["content"]), set(&["deleted"]));
        for (offset, limit) in [(0, 1), (0, 5), (3, 4), (4, 1), (7, 8), (10, 50), (14, 3)] {
            let page = get_json(&app, user, &format!("/boxes/{id}/events?offset={offset}&limit={limit}")).await;
            let end = all.len().min(offset + limit);
            assert_eq!(page.as_array().unwrap(), &all[offset..end], "offset {offset}, limit {limit}");
        }
    }
}

#[tokio::test]
async fn a_listed_message_is_the_message_as_posted() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = two_member_box(&app, &alice, &bob).await;
    let file = json!({"type":"msg.file","content":{"encrypted":"ZmlsZQ","public_key": KEY,
        "encrypted_file_id":"74ee16b5-89be-44f7-bcdd-117f496a90a7"}});
    let posted = [
        (&alice, created(app.post_event(&alice, &id, text("YWxpY2U")).await).await),
        (&bob, created(app.post_event(&bob, &id, text("Ym9i")).await).await),
        (&bob, created(app.post_event(&bob, &id, file).await).await),
    ];
    for (user, event) in &posted {
        let page = get_json(&app, user, &format!("/boxes/{id}/events?limit=10")).await;
        let listed = page.as_array().unwrap().iter().find(|e| e["id"] == event["id"]).expect("listed");
        assert_eq!(listed, event);
        assert_eq!(listed["content"]["last_edited_at"], Value::Null);
        assert!(listed["content"].as_object().unwrap().contains_key("last_edited_at"));
    }
}

#[tokio::test]
async fn join_and_leave_rules() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let id = box_id(&app.create_box(&alice, "Box").await);

    assert_error(app.post_event(&alice, &id, json!({"type":"member.join"})).await, 409, "type", "conflict").await;
    assert_error(
        app.post_event(&alice, &id, json!({"type":"member.leave"})).await,
        403,
        "reason",
        "admin_cannot_leave",
    )
    .await;
    created(app.post_event(&alice, &id, access_add(&bob)).await).await;
    let join = created(app.post_event(&bob, &id, json!({"type":"member.join"})).await).await;
    assert_event_shape(&join);
    assert_eq!(join["content"], Value::Null);
    assert_eq!(join["referrer_id"], Value::Null);
    assert_view(&join["sender"], &bob, false);
    assert_error(app.post_event(&bob, &id, json!({"type":"member.join"})).await, 409, "type", "conflict").await;

    let leave = created(app.post_event(&bob, &id, json!({"type":"member.leave"})).await).await;
    assert_eq!(leave["referrer_id"], join["id"]);
    assert_error(app.post_event(&bob, &id, json!({"type":"member.leave"})).await, 403, "reason", "not_member").await;
    assert_error(app.post_event(&bob, &id, text("abcd")).await, 403, "reason", "not_member").await;
    // The access rule stays: bob can come back.
    let again = created(app.post_event(&bob, &id, json!({"type":"member.join"})).await).await;
    assert_ne!(again["id"], join["id"]);
    let accesses = get_json(&app, &alice, &format!("/boxes/{id}/accesses")).await;
    assert_eq!(accesses.as_array().unwrap().len(), 1, "no duplicate rule on re-join");

    // Public box: anyone joins, and gets an identity rule in the same transaction.
    assert_error(app.post_event(&carol, &id, json!({"type":"member.join"})).await, 403, "reason", "no_access").await;
    let mode =
        created(app.post_event(&alice, &id, json!({"type":"state.access_mode","content":{"value":"public"}})).await)
            .await;
    assert_eq!(mode["content"], json!({"value":"public"}));
    created(app.post_event(&carol, &id, json!({"type":"member.join"})).await).await;
    let carol_rule = app.rule_for(&alice, &id, &carol.id.to_string()).await;
    assert_view(&carol_rule["sender"], &carol, true);
    assert_eq!(carol_rule["content"]["restriction_type"], "identity_id");

    // Back to limited: carol stays legitimate thanks to that rule.
    created(app.post_event(&alice, &id, json!({"type":"state.access_mode","content":{"value":"limited"}})).await).await;
    assert_eq!(get_json(&app, &carol, &format!("/boxes/{id}")).await["access_mode"], "limited");
}

#[tokio::test]
async fn admin_only_types_are_refused_to_members() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let id = two_member_box(&app, &alice, &bob).await;
    let ks = json!({"misakey_share":"abcd","other_share_hash": test_key("x"),"encrypted_invitation_key_share":"abcd"});
    let rule = get_json(&app, &alice, &format!("/boxes/{id}/accesses")).await[0].clone();
    for body in [
        json!({"type":"state.access_mode","content":{"value":"public"}}),
        json!({"type":"state.key_share","extra": ks}),
        access_add(&carol),
        json!({"type":"access.rm","referrer_id": rule["id"]}),
    ] {
        assert_error(app.post_event(&bob, &id, body.clone()).await, 403, "reason", "not_admin").await;
        assert_error(app.post_event(&carol, &id, body).await, 403, "reason", "not_admin").await;
    }
}

#[tokio::test]
async fn key_share_rotation() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let b = app.create_box(&alice, "Box").await;
    let id = box_id(&b);
    app.add_member(&alice, &bob, &id).await;
    app.add_member(&alice, &carol, &id).await;
    let hash = test_key("rotated");
    let body = json!({"type":"state.key_share","extra":{"misakey_share":"lBHT1vfwFAIBig5Nj+sD+w==","other_share_hash": hash,"encrypted_invitation_key_share":"bmV3IHNoYXJl"}});
    let e = created(app.post_event(&alice, &id, body.clone()).await).await;
    assert_eq!(e["type"], "state.key_share");
    assert_eq!(e["content"], Value::Null);
    assert_eq!(events(&app, &bob, &id).await[0]["id"], e["id"], "state.key_share is visible");

    let c = db(&app).await;
    let uid = uuid::Uuid::parse_str(&id).unwrap();
    let shares: Vec<String> = c
        .query("SELECT other_share_hash FROM boxes.key_shares WHERE box_id = $1", &[&uid])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(shares, vec![hash.clone()]);
    let actions = c
        .query(
            "SELECT identity_id, type, encryption_public_key, encrypted FROM boxes.crypto_actions WHERE box_id = $1 ORDER BY identity_id",
            &[&uid],
        )
        .await
        .unwrap();
    let mut expected = vec![*bob.id.as_uuid(), *carol.id.as_uuid()];
    expected.sort();
    assert_eq!(
        actions.iter().map(|r| r.get::<_, uuid::Uuid>(0)).collect::<Vec<_>>(),
        expected,
        "one per member but the sender"
    );
    for r in &actions {
        assert_eq!(r.get::<_, String>(1), "set_box_key_share");
        assert_eq!(r.get::<_, String>(2), b["public_key"].as_str().unwrap());
        assert_eq!(r.get::<_, String>(3), "bmV3IHNoYXJl");
    }

    assert_error(app.post_event(&alice, &id, body).await, 409, "extra.other_share_hash", "conflict").await;
    let reused = json!({"type":"state.key_share","extra":{"misakey_share":"abcd","other_share_hash": hash,"encrypted_invitation_key_share":"abcd"}});
    assert_error(app.post_event(&alice, &id, reused).await, 409, "extra.other_share_hash", "conflict").await;
    let n: i64 =
        c.query_one("SELECT count(*) FROM boxes.crypto_actions WHERE box_id = $1", &[&uid]).await.unwrap().get(0);
    assert_eq!(n, 2, "a refused rotation leaves nothing behind");
}

#[tokio::test]
async fn access_add_rules() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let keyless = app.user_with("Keyless", false).await;
    let id = box_id(&app.create_box(&alice, "Box").await);

    let rule = created(app.post_event(&alice, &id, access_add(&bob)).await).await;
    assert_event_shape(&rule);
    assert_eq!(rule["type"], "access.add");
    assert_eq!(
        rule["content"],
        json!({"restriction_type":"identity_id","value": bob.id.to_string(),"auto_invite": false})
    );
    assert_view(&rule["sender"], &alice, true);
    assert_error(app.post_event(&alice, &id, access_add(&bob)).await, 409, "content.value", "conflict").await;
    let ghost = json!({"type":"access.add","content":{"restriction_type":"identity_id","value": uuid::Uuid::new_v4().to_string()}});
    assert_error(app.post_event(&alice, &id, ghost).await, 404, "content.value", "not_found").await;
    assert_eq!(app.api(&alice).events_count(bid(&id)).await.unwrap(), 1, "access rules are not visible");

    let invite = |user: &User, key: &str| json!({"type":"access.add","content":{"restriction_type":"identity_id","value": user.id.to_string(),"auto_invite": true},"extra":{key: "aW52aXRl"}});
    assert_error(app.post_event(&alice, &id, invite(&keyless, &keyless.key)).await, 409, "content.value", "conflict")
        .await;
    let carol = app.user("Carol").await;
    assert_error(app.post_event(&alice, &id, invite(&carol, &bob.key)).await, 400, "extra", "invalid").await;
    let e = created(app.post_event(&alice, &id, invite(&carol, &carol.key)).await).await;
    assert_eq!(e["content"]["auto_invite"], true);
    let actions = get_json(&app, &carol, &format!("/identities/{}/crypto/actions", carol.id)).await;
    let actions = actions.as_array().unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["type"], "invitation");
    assert_eq!(actions[0]["box_id"], id);
    assert_eq!(actions[0]["encryption_public_key"], carol.key);
    assert_eq!(actions[0]["encrypted"], "aW52aXRl");
    created(app.post_event(&carol, &id, json!({"type":"member.join"})).await).await;
}

#[tokio::test]
async fn access_rm_kicks_members_that_are_no_longer_legitimate() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let id = two_member_box(&app, &alice, &bob).await;
    app.add_member(&alice, &carol, &id).await;
    let bob_join = events(&app, &bob, &id)
        .await
        .into_iter()
        .find(|e| e["type"] == "member.join" && e["sender"]["id"] == bob.id.to_string())
        .unwrap();
    let bob_rule = app.rule_for(&alice, &id, &bob.id.to_string()).await;

    let ghost = uuid::Uuid::new_v4().to_string();
    assert_error(
        app.post_event(&alice, &id, json!({"type":"access.rm","referrer_id": ghost})).await,
        404,
        "referrer_id",
        "not_found",
    )
    .await;
    assert_error(
        app.post_event(&alice, &id, json!({"type":"access.rm","referrer_id": bob_join["id"]})).await,
        404,
        "referrer_id",
        "not_found",
    )
    .await;

    let rm =
        created(app.post_event(&alice, &id, json!({"type":"access.rm","referrer_id": bob_rule["id"]})).await).await;
    assert_event_shape(&rm);
    assert_eq!(rm["type"], "access.rm");
    assert_eq!(rm["referrer_id"], bob_rule["id"]);
    assert_eq!(rm["content"], Value::Null);

    assert_error(app.post_event(&bob, &id, text("abcd")).await, 403, "reason", "not_member").await;
    assert_error(app.get(&bob, &format!("/boxes/{id}")).await, 403, "reason", "no_access").await;
    let members = get_json(&app, &alice, &format!("/boxes/{id}/members")).await;
    let ids: Vec<&str> = members.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![alice.id.to_string(), carol.id.to_string()]);

    let list = events(&app, &carol, &id).await;
    let kick = &list[0];
    assert_event_shape(kick);
    assert_eq!(kick["type"], "member.kick");
    assert_eq!(kick["referrer_id"], bob_join["id"]);
    assert_view(&kick["sender"], &bob, false);
    assert_eq!(keys(&kick["content"]), set(&["kicker"]));
    assert_view(&kick["content"]["kicker"], &alice, false);
    let admin_view = events(&app, &alice, &id).await;
    assert_view(&admin_view[0]["content"]["kicker"], &alice, true);

    // The removed rule cannot be removed again, and it no longer lets bob in.
    assert_error(
        app.post_event(&alice, &id, json!({"type":"access.rm","referrer_id": bob_rule["id"]})).await,
        404,
        "referrer_id",
        "not_found",
    )
    .await;
    assert_error(app.post_event(&bob, &id, json!({"type":"member.join"})).await, 403, "reason", "no_access").await;
    let accesses = get_json(&app, &alice, &format!("/boxes/{id}/accesses")).await;
    assert_eq!(accesses.as_array().unwrap().len(), 1);
}

fn identifier_rule(value: &str) -> Value {
    json!({"type":"access.add","content":{"restriction_type":"identifier","value": value}})
}

#[tokio::test]
async fn identifier_rules_let_in_whoever_has_that_email_or_phone() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    assert_error(app.get(&bob, &format!("/boxes/{id}")).await, 403, "reason", "no_access").await;

    // Stored lower-cased, so the same address in another case is the same rule.
    let rule = created(app.post_event(&alice, &id, identifier_rule("Bob@Example.COM")).await).await;
    assert_eq!(rule["content"], json!({"restriction_type":"identifier","value":"bob@example.com","auto_invite":false}));
    assert_error(
        app.post_event(&alice, &id, identifier_rule("bob@example.com")).await,
        409,
        "content.value",
        "conflict",
    )
    .await;
    assert_error(app.post_event(&alice, &id, identifier_rule("bob")).await, 400, "content.value", "malformed").await;
    assert_error(app.post_event(&bob, &id, identifier_rule("bob@example.com")).await, 403, "reason", "not_admin").await;
    let phone = created(app.post_event(&alice, &id, identifier_rule("+33612345678")).await).await;
    assert_eq!(phone["content"]["value"], "+33612345678");

    // Bob's identifier matches: he can join; Carol's does not.
    assert_error(app.get(&bob, &format!("/boxes/{id}")).await, 403, "reason", "not_member").await;
    assert_error(app.get(&carol, &format!("/boxes/{id}")).await, 403, "reason", "no_access").await;
    assert_error(app.post_event(&carol, &id, json!({"type":"member.join"})).await, 403, "reason", "no_access").await;
    created(app.post_event(&bob, &id, json!({"type":"member.join"})).await).await;
    // Joining added bob's own identity rule (§6.3), beside the identifier rules.
    let accesses = get_json(&app, &alice, &format!("/boxes/{id}/accesses")).await;
    let values: Vec<&str> =
        accesses.as_array().unwrap().iter().map(|a| a["content"]["value"].as_str().unwrap()).collect();
    assert_eq!(values, vec!["bob@example.com", "+33612345678", bob.id.to_string().as_str()]);
}

#[tokio::test]
async fn an_identifier_rule_keeps_a_member_legitimate() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = two_member_box(&app, &alice, &bob).await;
    let email_rule = created(app.post_event(&alice, &id, identifier_rule("bob@example.com")).await).await;
    let bob_rule = app.rule_for(&alice, &id, &bob.id.to_string()).await;

    // Without his identity rule, the email rule still matches bob: no kick.
    created(app.post_event(&alice, &id, json!({"type":"access.rm","referrer_id": bob_rule["id"]})).await).await;
    assert_eq!(app.get(&bob, &format!("/boxes/{id}")).await.status(), 200);
    assert!(events(&app, &alice, &id).await.iter().all(|e| e["type"] != "member.kick"));

    // Without either, he is kicked.
    created(app.post_event(&alice, &id, json!({"type":"access.rm","referrer_id": email_rule["id"]})).await).await;
    assert_error(app.get(&bob, &format!("/boxes/{id}")).await, 403, "reason", "no_access").await;
    let kick = &events(&app, &alice, &id).await[0];
    assert_eq!(kick["type"], "member.kick");
    assert_eq!(kick["sender"]["id"], bob.id.to_string());
}

/// Puts an identity through the internal API as auth-bridge does at a login.
async fn upsert_identity(app: &TestApp, user: &User, email: &str, verified: bool) {
    let res = app
        .client
        .put(app.internal_url(&format!("/internal/identities/{}", user.id)))
        .header("X-Internal-Token", crate::helpers::INTERNAL_TOKEN)
        .json(&json!({"display_name": user.name, "identifier_value": email, "identifier_kind": "email", "identifier_verified": verified}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn only_a_verified_identifier_satisfies_an_identifier_rule() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let mallory = app.user("Mallory").await;
    // Mallory's host app does not verify emails: she claims Bob's.
    upsert_identity(&app, &mallory, "bob@example.com", false).await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    created(app.post_event(&alice, &id, identifier_rule("bob@example.com")).await).await;

    assert_error(app.get(&mallory, &format!("/boxes/{id}")).await, 403, "reason", "no_access").await;
    assert_error(app.post_event(&mallory, &id, json!({"type":"member.join"})).await, 403, "reason", "no_access").await;
    // An upsert without the flag (an older caller) counts as unverified too.
    let res = app
        .client
        .put(app.internal_url(&format!("/internal/identities/{}", mallory.id)))
        .header("X-Internal-Token", crate::helpers::INTERNAL_TOKEN)
        .json(&json!({"display_name": "Mallory", "identifier_value": "bob@example.com", "identifier_kind": "email"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_error(app.post_event(&mallory, &id, json!({"type":"member.join"})).await, 403, "reason", "no_access").await;

    // The real Bob, from a host app that verifies, joins.
    let bob = app.user("Bob").await;
    created(app.post_event(&bob, &id, json!({"type":"member.join"})).await).await;

    // A member whose identifier stops being verified is no longer legitimate through the rule.
    upsert_identity(&app, &bob, "bob@example.com", false).await;
    let bob_rule = app.rule_for(&alice, &id, &bob.id.to_string()).await;
    created(app.post_event(&alice, &id, json!({"type":"access.rm","referrer_id": bob_rule["id"]})).await).await;
    assert_error(app.get(&bob, &format!("/boxes/{id}")).await, 403, "reason", "no_access").await;

    // A bad flag is a 400 on the field.
    let res = app
        .client
        .put(app.internal_url(&format!("/internal/identities/{}", mallory.id)))
        .header("X-Internal-Token", crate::helpers::INTERNAL_TOKEN)
        .json(&json!({"display_name": "M", "identifier_value": "m@example.com", "identifier_kind": "email", "identifier_verified": "yes"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "identifier_verified", "invalid").await;
}

#[tokio::test]
async fn access_rm_kicks_only_the_member_whose_rule_went() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    created(app.post_event(&alice, &id, json!({"type":"state.access_mode","content":{"value":"public"}})).await).await;
    created(app.post_event(&bob, &id, json!({"type":"member.join"})).await).await;
    created(app.post_event(&carol, &id, json!({"type":"member.join"})).await).await;
    created(app.post_event(&alice, &id, json!({"type":"state.access_mode","content":{"value":"limited"}})).await).await;
    let accesses = get_json(&app, &alice, &format!("/boxes/{id}/accesses")).await;
    let values: Vec<&str> =
        accesses.as_array().unwrap().iter().map(|a| a["content"]["value"].as_str().unwrap()).collect();
    assert_eq!(values, vec![bob.id.to_string(), carol.id.to_string()], "auto rules, oldest first");
    created(app.post_event(&alice, &id, json!({"type":"access.rm","referrer_id": accesses[1]["id"]})).await).await;

    let members = get_json(&app, &alice, &format!("/boxes/{id}/members")).await;
    let ids: Vec<&str> = members.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![alice.id.to_string(), bob.id.to_string()]);
    let list = events(&app, &bob, &id).await;
    let types: Vec<&str> = list.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec!["member.kick", "state.access_mode", "member.join", "member.join", "state.access_mode", "create"]
    );
    assert_eq!(list[0]["sender"]["id"], carol.id.to_string());
}

#[tokio::test]
async fn concurrent_posts_get_a_total_order() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = two_member_box(&app, &alice, &bob).await;
    let posts = (0..24).map(|i| {
        let (app, id) = (&app, &id);
        let who = if i % 2 == 0 { &alice } else { &bob };
        async move { app.post_event(who, id, text(&format!("Y29uY3VycmVudA{i:02}"))).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");

    let list = events(&app, &alice, &id).await;
    assert_eq!(list.len(), 26);
    let c = db(&app).await;
    let uid = uuid::Uuid::parse_str(&id).unwrap();
    let rows =
        c.query("SELECT seq, created_at FROM boxes.events WHERE box_id = $1 ORDER BY seq", &[&uid]).await.unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(seqs, (1..=rows.len() as i64).collect::<Vec<_>>(), "no gaps, no duplicates");
    let times: Vec<chrono::DateTime<chrono::Utc>> = rows.iter().map(|r| r.get(1)).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "time never goes backwards");
    let last_seq: i64 = c.query_one("SELECT last_seq FROM boxes.boxes WHERE id = $1", &[&uid]).await.unwrap().get(0);
    assert_eq!(last_seq, rows.len() as i64);
}

async fn after(app: &TestApp, user: &User, box_id: &str, query: &str) -> Vec<Value> {
    get_json(app, user, &format!("/boxes/{box_id}/events?{query}")).await.as_array().unwrap().clone()
}

fn seqs(list: &[Value]) -> Vec<i64> {
    list.iter().map(|e| e["seq"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn events_carry_their_box_seq_everywhere_they_appear() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let created_box = app.create_box(&alice, "Box").await;
    assert_eq!(created_box["last_event"]["seq"], 1, "create is the first event of a box");
    let id = box_id(&created_box);
    app.add_member(&alice, &bob, &id).await;
    let msg = app.say(&bob, &id, "aGk").await;
    let list = events(&app, &alice, &id).await;
    assert_eq!(seqs(&list), vec![msg["seq"].as_i64().unwrap(), 3, 1], "access.add (2) is not listed");
    let view = get_json(&app, &alice, &format!("/boxes/{id}")).await;
    assert_eq!(view["last_event"]["seq"], msg["seq"]);
}

#[tokio::test]
async fn the_cursor_lists_what_changed_after_a_seq_oldest_first_and_paged() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let id = two_member_box(&app, &alice, &bob).await;
    let old = app.say(&bob, &id, "b2xk").await;
    let kept = app.say(&bob, &id, "a2VwdA").await;
    let cursor = kept["seq"].as_i64().unwrap();
    assert!(after(&app, &bob, &id, &format!("after={cursor}")).await.is_empty(), "nothing after the newest");

    // After the cursor: an edit and a deletion of messages the client has, a new message edited
    // then deleted, one edited, an access rule (invisible) and a join.
    let edit_old = created(app.post_event(&bob, &id, edit(&old, "bmV3")).await).await;
    let new_deleted = app.say(&bob, &id, "Z29uZQ").await;
    created(app.post_event(&bob, &id, edit(&new_deleted, "Z29uZTI")).await).await;
    created(app.post_event(&alice, &id, delete(&new_deleted)).await).await;
    let new_edited = app.say(&alice, &id, "bmV3Mg").await;
    created(app.post_event(&alice, &id, edit(&new_edited, "bmV3Mw")).await).await;
    let delete_kept = created(app.post_event(&alice, &id, delete(&kept)).await).await;
    created(app.post_event(&alice, &id, access_add(&carol)).await).await;
    let join = created(app.post_event(&carol, &id, json!({"type":"member.join"})).await).await;

    let list = after(&app, &bob, &id, &format!("after={cursor}")).await;
    let got: Vec<(&str, &Value)> = list.iter().map(|e| (e["type"].as_str().unwrap(), &e["id"])).collect();
    assert_eq!(
        got,
        vec![
            ("msg.edit", &edit_old["id"]),
            ("msg.text", &new_deleted["id"]),
            ("msg.text", &new_edited["id"]),
            ("msg.delete", &delete_kept["id"]),
            ("member.join", &join["id"]),
        ],
        "{list:?}"
    );
    for e in &list {
        crate::boxes::assert_event_shape(e);
    }
    let s = seqs(&list);
    assert!(s.windows(2).all(|w| w[0] < w[1]) && s[0] > cursor, "oldest first, after the cursor: {s:?}");
    assert_eq!(list[0]["content"]["new_encrypted"], "bmV3");
    assert_eq!(list[0]["referrer_id"], old["id"]);
    assert_eq!(keys(&list[1]["content"]), set(&["deleted"]), "a new message comes folded");
    assert_eq!(list[2]["content"]["encrypted"], "bmV3Mw");
    assert_eq!(list[3]["referrer_id"], kept["id"]);

    // Paged with limit, resuming from the last seq of a page, gives the same sequence.
    let mut paged = Vec::new();
    let mut from = cursor;
    loop {
        let page = after(&app, &bob, &id, &format!("after={from}&limit=2")).await;
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        from = last["seq"].as_i64().unwrap();
        paged.extend(page);
    }
    // A message on an earlier page already came folded; its later edits and deletions may come
    // again as modifier events on the next pages (applying them again changes nothing).
    let listed: Vec<&Value> = paged.iter().filter(|e| e["referrer_id"].is_null()).map(|e| &e["id"]).collect();
    let again = |e: &&Value| {
        e["type"].as_str().is_some_and(|t| t == "msg.edit" || t == "msg.delete") && listed.contains(&&e["referrer_id"])
    };
    let without_repeats: Vec<Value> = paged.iter().filter(|e| !again(e)).cloned().collect();
    assert_eq!(without_repeats, list);

    // From 0: the whole visible box, oldest first, as the newest-first listing reversed.
    let mut newest_first = events(&app, &bob, &id).await;
    newest_first.reverse();
    assert_eq!(after(&app, &bob, &id, "after=0&limit=200").await, newest_first);
}

#[tokio::test]
async fn a_bad_cursor_is_400_and_outsiders_get_403() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let eve = app.user("Eve").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    for q in ["after=-1", "after=a", "after=", "after=1.5", "after=99999999999999999999", "after=+1"] {
        let body =
            assert_error(app.get(&alice, &format!("/boxes/{id}/events?{q}")).await, 400, "after", "invalid").await;
        assert_eq!(body["origin"], "query", "{q}");
    }
    assert_error(app.get(&eve, &format!("/boxes/{id}/events?after=0")).await, 403, "reason", "not_member").await;
    assert_error(app.get(&alice, &format!("/boxes/{id}/events?after=0&limit=201")).await, 400, "limit", "invalid")
        .await;
}
