//! Invitations per identity (issue 14, README "Rate limits"): contact boxes and `access.add` with
//! `auto_invite` share one budget per sender, kept in Redis; over it, 429 with `Retry-After` and
//! the §4 body, and nothing is stored.

use reqwest::Method;
use serde_json::{json, Value};
use web_kit::ratelimit::Quota;

use crate::helpers::{db, new_key_share, spawn_app_with, Auth, TestApp, User};

fn contact_body(to: &User) -> Value {
    json!({
        "contacted_identity_id": to.id.to_string(),
        "box": {"title": "Contact", "public_key": "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw"},
        "key_share": new_key_share(),
        "extra": {to.key.clone(): "ZW5jcnlwdGVk"}
    })
}

async fn contact(app: &TestApp, caller: &User, to: &User) -> reqwest::Response {
    let path = format!("/box-users/{}/contact", caller.id);
    app.send_as(caller, Method::POST, &path, Some(contact_body(to)), Auth::Cookie).await
}

fn invite(to: &User) -> Value {
    json!({"type":"access.add","content":{"restriction_type":"identity_id","value": to.id.to_string(),"auto_invite": true},"extra":{to.key.clone(): "aW52aXRl"}})
}

async fn assert_limited(res: reqwest::Response) {
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "too_many_requests");
    assert_eq!(body["origin"], "not_defined");
    assert_eq!(body["details"], json!({"limit": "invites_per_identity"}));
}

async fn crypto_actions(app: &TestApp) -> i64 {
    db(app).await.query_one("SELECT count(*) FROM boxes.crypto_actions", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn contacts_and_auto_invites_share_a_budget_per_identity() {
    let app = spawn_app_with(|s| s.invites_per_identity = Quota::per(3, 60)).await;
    let alice = app.user("Alice").await;
    let (bob, carol, dave, erin) =
        (app.user("Bob").await, app.user("Carol").await, app.user("Dave").await, app.user("Erin").await);

    assert_eq!(contact(&app, &alice, &bob).await.status(), 201);
    assert_eq!(contact(&app, &alice, &carol).await.status(), 201);
    let created = app.create_box(&alice, "Group").await;
    let box_id = created["id"].as_str().unwrap();
    assert_eq!(app.post_event(&alice, box_id, invite(&dave)).await.status(), 201);
    assert_eq!(crypto_actions(&app).await, 3);

    assert_limited(contact(&app, &alice, &erin).await).await;
    assert_limited(app.post_event(&alice, box_id, invite(&erin)).await).await;
    assert_eq!(crypto_actions(&app).await, 3, "a refused invitation leaves nothing behind");

    // An access rule without an invitation is not counted, nor is another sender.
    let plain = json!({"type":"access.add","content":{"restriction_type":"identity_id","value": erin.id.to_string()}});
    assert_eq!(app.post_event(&alice, box_id, plain).await.status(), 201);
    assert_eq!(contact(&app, &bob, &erin).await.status(), 201);
}

#[tokio::test]
async fn two_instances_count_one_budget() {
    let first = spawn_app_with(|s| s.invites_per_identity = Quota::per(2, 60)).await;
    // A second instance on the same database and Redis, with the same keys.
    let mut s = crate::helpers::settings(&first.database_url, &first.keys);
    s.invites_per_identity = Quota::per(2, 60);
    let second = boxes::startup::Application::build(s).await.unwrap();
    let second_url = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());

    let alice = first.user("Alice").await;
    let (bob, carol, dave) = (first.user("Bob").await, first.user("Carol").await, first.user("Dave").await);
    assert_eq!(contact(&first, &alice, &bob).await.status(), 201);
    let on_second = |to: &User| {
        first
            .client
            .post(format!("{second_url}/box-users/{}/contact", alice.id))
            .header("Authorization", alice.session.bearer())
            .json(&contact_body(to))
            .send()
    };
    assert_eq!(on_second(&carol).await.unwrap().status(), 201);
    assert_limited(on_second(&dave).await.unwrap()).await;
    assert_limited(contact(&first, &alice, &dave).await).await;
}
