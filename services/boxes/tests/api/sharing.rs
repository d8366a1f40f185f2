//! Sharing by email domain and by identifier (issue 17): `email_domain` access rules, the public
//! key lookup `GET /identities/pubkey` and `auto_invite` on `identifier` rules. A rule matches an
//! identity only through an identifier its host app verified.

use domain::crypto_action::{CryptoAction, CryptoActionType};
use serde_json::{json, Value};

use crate::boxes::box_id;
use crate::helpers::{assert_error, bid, spawn_app, spawn_app_with, TestApp, User, INTERNAL_TOKEN};

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
    let app = spawn_app().await;
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
    let app = spawn_app().await;
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

async fn lookup(app: &TestApp, user: &User, value: &str) -> reqwest::Response {
    let url = app.url("/identities/pubkey");
    app.client
        .get(url)
        .query(&[("identifier_value", value)])
        .header("Authorization", user.session.bearer())
        .send()
        .await
        .unwrap()
}

async fn keys_for(app: &TestApp, user: &User, value: &str) -> Vec<String> {
    app.api(user).pubkeys(value).await.unwrap_or_else(|e| panic!("lookup of {value}: {e}"))
}

#[tokio::test]
async fn the_pubkey_lookup_lists_the_keys_of_verified_identifiers_only() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let phone = user_identified(&app, "Phone", "+33612345678", "phone", true).await;
    let _mallory = user_identified(&app, "Mallory", "carol@example.com", "email", false).await;
    let _keyless = app.user_with("Dora", false).await;

    assert_eq!(keys_for(&app, &alice, "Bob@Example.com").await, std::slice::from_ref(&bob.key));
    assert_eq!(keys_for(&app, &alice, "+33612345678").await, [phone.key]);
    // Nobody, an unverified claim, an identity without a key: an empty list alike.
    assert!(keys_for(&app, &alice, "nobody@example.com").await.is_empty());
    assert!(keys_for(&app, &alice, "carol@example.com").await.is_empty());
    assert!(keys_for(&app, &alice, "dora@example.com").await.is_empty());
    // A second verified identity with the same address: both keys, oldest first.
    let bob2 = user_identified(&app, "Bob2", "bob@example.com", "email", true).await;
    assert_eq!(keys_for(&app, &alice, "bob@example.com").await, [bob.key, bob2.key]);

    for (value, detail) in [("bob", "malformed"), ("0612345678", "malformed"), ("b\u{1}@example.com", "invalid")] {
        let body = assert_error(lookup(&app, &alice, value).await, 400, "identifier_value", detail).await;
        assert_eq!(body["origin"], "query");
    }
    let res = app
        .client
        .get(app.url("/identities/pubkey"))
        .header("Authorization", alice.session.bearer())
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "identifier_value", "required").await;
    let res = app.client.get(app.url("/identities/pubkey?identifier_value=bob%40example.com")).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn the_pubkey_lookup_is_rate_limited_per_caller() {
    let app = spawn_app_with(|s| s.pubkey_lookups_per_identity = "3/600".parse().unwrap()).await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    for _ in 0..3 {
        keys_for(&app, &alice, "bob@example.com").await;
    }
    let res = lookup(&app, &alice, "bob@example.com").await;
    assert!(res.headers().get("retry-after").is_some());
    let body = assert_error(res, 429, "limit", "pubkey_lookups_per_identity").await;
    assert_eq!(body["code"], "too_many_requests");
    // Malformed lookups are refused before they are charged; other callers have their own budget.
    assert_error(lookup(&app, &alice, "bob").await, 400, "identifier_value", "malformed").await;
    keys_for(&app, &bob, "alice@example.com").await;
}

fn invite_identifier(value: &str, extra: Value) -> Value {
    json!({"type": "access.add", "content": {"restriction_type": "identifier", "value": value, "auto_invite": true}, "extra": extra})
}

async fn invitations_of(app: &TestApp, user: &User) -> Vec<CryptoAction> {
    app.api(user).crypto_actions(user.id).await.unwrap()
}

#[tokio::test]
async fn auto_invite_on_an_identifier_rule_invites_the_identities_that_have_it() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let mallory = user_identified(&app, "Mallory", "bob@example.com", "email", false).await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    let mut sub = test_support::Subscriber::new(&[domain::realtime::user_channel(bob.id)]).await.unwrap();

    // A key that is not bob's, or the unverified claimant's, is refused and leaves nothing.
    let wrong = invite_identifier("bob@example.com", json!({mallory.key.clone(): "aW52aXRl"}));
    assert_error(app.post_event(&alice, &id, wrong).await, 400, "extra", "invalid").await;
    assert!(invitations_of(&app, &mallory).await.is_empty());
    let missing = json!({"type": "access.add", "content": {"restriction_type": "identifier", "value": "bob@example.com", "auto_invite": true}});
    assert_error(app.post_event(&alice, &id, missing).await, 400, "extra", "required").await;

    // The key the lookup gave: bob is invited as by an identity_id rule.
    let keys = keys_for(&app, &alice, "bob@example.com").await;
    let key = keys[0].clone();
    let rule = created(
        app.post_event(&alice, &id, invite_identifier("Bob@example.com", json!({key.clone(): "aW52aXRl"}))).await,
    )
    .await;
    assert_eq!(
        rule["content"],
        json!({"restriction_type": "identifier", "value": "bob@example.com", "auto_invite": true})
    );
    let actions = invitations_of(&app, &bob).await;
    assert_eq!(actions.len(), 1);
    assert_eq!((actions[0].kind, actions[0].box_id), (CryptoActionType::Invitation, Some(bid(&id))));
    assert_eq!(actions[0].encryption_public_key, key);
    assert_eq!(actions[0].encrypted, "aW52aXRl");
    let (_, note) = sub.next_json(std::time::Duration::from_secs(2)).await.expect("a notification for bob");
    assert_eq!(note["type"], "notification");
    assert_eq!(note["object"]["type"], "box.auto_invite");
    assert_eq!(note["object"]["details"]["box_id"], id);
    assert_eq!(join(&app, &bob, &id).await.status(), 201);

    // Nobody has the address yet: the rule is made, nobody is invited; whoever verifies it later
    // can join without an invitation.
    let res = app.post_event(&alice, &id, invite_identifier("carol@example.com", json!({}))).await;
    assert_eq!(res.status(), 201);
    let carol = app.user("Carol").await;
    assert!(invitations_of(&app, &carol).await.is_empty());
    assert_eq!(join(&app, &carol, &id).await.status(), 201);

    // Once the lookup finds someone, the admin replaces the rule in one batch to invite them.
    let rule = app.rule_for(&alice, &id, "carol@example.com").await;
    let again = invite_identifier("carol@example.com", json!({carol.key.clone(): "aW52aXRl"}));
    let res = app
        .post(
            &alice,
            &format!("/boxes/{id}/batch-events"),
            json!({"batch_type": "accesses", "events": [
            {"type": "access.rm", "referrer_id": rule["id"]}, again]}),
        )
        .await;
    let kinds: Vec<String> =
        created(res).await.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["access.rm", "access.add"], "carol, still matched, is not kicked");
    assert_eq!(invitations_of(&app, &carol).await.len(), 1);
}
