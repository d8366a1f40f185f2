//! Sharing by email domain and by identifier (issue 17): `email_domain` access rules, the public
//! key lookup `GET /identities/pubkey` and `auto_invite` on `identifier` rules. A rule matches an
//! identity only through an identifier its host app verified.

use serde_json::{json, Value};

use crate::boxes::box_id;
use crate::helpers::{assert_error, TestApp, User, INTERNAL_TOKEN};

fn domain_rule(value: &str) -> Value {
    json!({"type": "access.add", "content": {"restriction_type": "email_domain", "value": value}})
}

async fn created(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

/// A user whose identifier is `identifier` (`kind` email or phone), verified or not by its host app.
async fn user_identified(app: &TestApp, name: &str, identifier: &str, kind: &str, verified: bool) -> User {
    let user = app.user(name).await;
    let res = app
        .client
        .put(app.internal_url(&format!("/internal/identities/{}", user.id)))
        .header("X-Internal-Token", INTERNAL_TOKEN)
        .json(&json!({"display_name": name, "identifier_value": identifier, "identifier_kind": kind, "identifier_verified": verified}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    user
}

async fn join(app: &TestApp, user: &User, box_id: &str) -> reqwest::Response {
    app.post_event(user, box_id, json!({"type": "member.join"})).await
}

#[tokio::test]
async fn an_email_domain_rule_lets_in_verified_addresses_at_that_domain() {
    let app = TestApp::spawn().await;
    let alice = app.user("Alice").await;
    let bob = user_identified(&app, "Bob", "Bob@Acme.Example", "email", true).await;
    let carol = user_identified(&app, "Carol", "carol@other.example", "email", true).await;
    let mallory = user_identified(&app, "Mallory", "mallory@acme.example", "email", false).await;
    let sub = user_identified(&app, "Sub", "sub@mail.acme.example", "email", true).await;
    let phone = user_identified(&app, "Phone", "+33612345678", "phone", true).await;
    let id = box_id(&app.create_box(&alice, "Box").await);

    let rule = created(app.post_event(&alice, &id, domain_rule("ACME.example")).await).await;
    assert_eq!(
        rule["content"],
        json!({"restriction_type": "email_domain", "value": "acme.example", "auto_invite": false})
    );
    assert_error(app.post_event(&alice, &id, domain_rule("acme.example")).await, 409, "content.value", "conflict")
        .await;
    assert_error(app.post_event(&bob, &id, domain_rule("x.example")).await, 403, "reason", "not_admin").await;

    // Bob's verified address is at the domain (its case does not matter): he may join.
    assert_error(app.get(&bob, &format!("/boxes/{id}")).await, 403, "reason", "not_member").await;
    assert_eq!(join(&app, &bob, &id).await.status(), 201);
    // Another domain, a subdomain, an unverified address, a phone: no.
    for other in [&carol, &sub, &mallory, &phone] {
        assert_error(join(&app, other, &id).await, 403, "reason", "no_access").await;
    }
}

#[tokio::test]
async fn an_email_domain_rule_keeps_members_legitimate_and_is_validated() {
    let app = TestApp::spawn().await;
    let alice = app.user("Alice").await;
    let bob = user_identified(&app, "Bob", "bob@acme.example", "email", true).await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &bob, &id).await;
    let bob_rule = app.rule_for(&alice, &id, &bob.id.to_string()).await;
    let domain = created(app.post_event(&alice, &id, domain_rule("acme.example")).await).await;

    // Without his identity rule the domain rule still lets bob in: no kick.
    created(app.post_event(&alice, &id, json!({"type": "access.rm", "referrer_id": bob_rule["id"]})).await).await;
    assert_eq!(app.get(&bob, &format!("/boxes/{id}")).await.status(), 200);
    // Without either, he is kicked.
    created(app.post_event(&alice, &id, json!({"type": "access.rm", "referrer_id": domain["id"]})).await).await;
    assert_error(app.get(&bob, &format!("/boxes/{id}")).await, 403, "reason", "no_access").await;

    for (value, detail) in [("@acme.example", "malformed"), ("acme", "malformed"), ("bob@acme.example", "malformed")] {
        assert_error(app.post_event(&alice, &id, domain_rule(value)).await, 400, "content.value", detail).await;
    }
    assert_error(app.post_event(&alice, &id, domain_rule("ac\u{1}me.example")).await, 400, "content.value", "invalid")
        .await;
    let invite = json!({"type": "access.add", "content": {"restriction_type": "email_domain", "value": "acme.example", "auto_invite": true}, "extra": {"k": "abcd"}});
    assert_error(app.post_event(&alice, &id, invite).await, 400, "content.auto_invite", "not_supported").await;
}
