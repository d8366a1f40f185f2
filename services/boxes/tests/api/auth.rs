//! The authentication matrix of §3, run on one endpoint of each kind: a read
//! (`GET /identities/{id}`), a write (`PUT /identities/{id}/public-keys`, settings `PUT`), a
//! path-identity endpoint (settings `GET`), the internal endpoint, and the optional-auth profile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use boxes::startup::Application;
use domain::IdentityId;
use reqwest::{Method, Response};
use serde_json::{json, Value};
use test_support::{TestKeys, TokenOptions};

use crate::helpers::{assert_error, db, seed_box, settings, spawn_app, Auth, TestApp, User, INTERNAL_TOKEN};

/// How a raw token is presented.
#[derive(Clone, Copy)]
enum Via {
    Bearer,
    Cookie,
}

/// One endpoint of the matrix: method, path and a body that is valid for it.
struct Endpoint {
    method: Method,
    path: String,
    body: Option<Value>,
}

impl Endpoint {
    fn read(user: &User) -> Self {
        Endpoint { method: Method::GET, path: format!("/identities/{}", user.id), body: None }
    }

    fn write(user: &User) -> Self {
        Endpoint {
            method: Method::PUT,
            path: format!("/identities/{}/public-keys", user.id),
            body: Some(json!({"pubkey": "cHVia2V5"})),
        }
    }

    fn settings_get(user: &User, box_id: &str) -> Self {
        Endpoint { method: Method::GET, path: format!("/box-users/{}/boxes/{box_id}/settings", user.id), body: None }
    }

    fn settings_put(user: &User, box_id: &str) -> Self {
        Endpoint {
            method: Method::PUT,
            path: format!("/box-users/{}/boxes/{box_id}/settings", user.id),
            body: Some(json!({"muted": true})),
        }
    }
}

async fn call(app: &TestApp, e: &Endpoint, token: Option<&str>, via: Via, csrf: Option<&str>) -> Response {
    let mut b = app.client.request(e.method.clone(), app.url(&e.path));
    if let Some(t) = token {
        b = match via {
            Via::Bearer => b.header("Authorization", format!("Bearer {t}")),
            Via::Cookie => b.header("Cookie", format!("accesstoken={t}; tokentype=bearer")),
        };
    }
    if let Some(c) = csrf {
        b = b.header("X-CSRF-Token", c);
    }
    if let Some(body) = &e.body {
        b = b.json(body);
    }
    b.send().await.unwrap()
}

fn payload_of(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn b64u_json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// An unsigned token (`alg: none`) carrying otherwise valid claims.
fn alg_none(valid: &str) -> String {
    format!("{}.{}.", b64u_json(&json!({"alg": "none", "typ": "JWT"})), b64u_json(&payload_of(valid)))
}

/// HMAC-SHA-256 (RFC 2104), with PostgreSQL's `sha256` as the hash.
async fn hmac_sha256(c: &tokio_postgres::Client, key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut key = key.to_vec();
    if key.len() > 64 {
        key = c.query_one("SELECT sha256($1::bytea)", &[&key]).await.unwrap().get::<_, Vec<u8>>(0);
    }
    key.resize(64, 0);
    let ipad: Vec<u8> = key.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = key.iter().map(|b| b ^ 0x5c).collect();
    c.query_one("SELECT sha256($1::bytea || sha256($2::bytea || $3::bytea))", &[&opad, &ipad, &message])
        .await
        .unwrap()
        .get(0)
}

/// An HS256 token carrying valid claims, keyed with the server's public key PEM: the classic
/// algorithm-confusion attack.
async fn hs256_with_public_key(app: &TestApp, valid: &str) -> String {
    let c = db(app).await;
    // RFC 4231, test case 2, so the token below really is a well-formed HS256 token.
    let vector = hmac_sha256(&c, b"Jefe", b"what do ya want for nothing?").await;
    let hex: String = vector.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    let signing_input =
        format!("{}.{}", b64u_json(&json!({"alg": "HS256", "typ": "JWT"})), b64u_json(&payload_of(valid)));
    let mac = hmac_sha256(&c, app.keys.public_pem.as_bytes(), signing_input.as_bytes()).await;
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// Every kind of bad token, each with the expected 401 for a bearer presentation.
async fn bad_tokens(app: &TestApp, user: &User) -> Vec<(&'static str, String)> {
    let foreign = TestKeys::generate().session(user.id).token;
    let expired = app.keys.session_with(user.id, TokenOptions { ttl_secs: -120, ..TokenOptions::default() }).token;
    let revoked = app.keys.session(user.id);
    let mut redis = test_support::redis_conn().await;
    test_support::revoke(&mut redis, revoked.sid).await;
    vec![
        ("garbage", "not-a-jwt".to_owned()),
        ("signed by another key", foreign),
        ("alg none", alg_none(&user.session.token)),
        ("hs256", hs256_with_public_key(app, &user.session.token).await),
        ("expired", expired),
        ("revoked", revoked.token),
    ]
}

#[tokio::test]
async fn every_bad_token_is_401_on_read_and_write() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    let endpoints = [
        Endpoint::read(&alice),
        Endpoint::write(&alice),
        Endpoint::settings_get(&alice, &box_id),
        Endpoint::settings_put(&alice, &box_id),
    ];
    for e in &endpoints {
        let res = call(&app, e, None, Via::Bearer, None).await;
        assert_eq!(res.status(), 401, "no token on {}", e.path);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized");
        for (name, token) in bad_tokens(&app, &alice).await {
            for via in [Via::Bearer, Via::Cookie] {
                let res = call(&app, e, Some(&token), via, Some(&alice.session.csrf)).await;
                assert_eq!(res.status(), 401, "{name} on {} {}", e.method, e.path);
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["code"], "unauthorized", "{name}: {body}");
                let origin = match via {
                    Via::Bearer => "headers",
                    Via::Cookie => "cookies",
                };
                assert_eq!(body["origin"], origin, "{name}: {body}");
            }
        }
        // The good token works on the same endpoint, so the 401s above are about the tokens.
        let res = call(&app, e, Some(&alice.session.token), Via::Bearer, None).await;
        assert!(res.status().is_success(), "good token on {}: {}", e.path, res.status());
    }
    // Nothing was written by the refused requests... except the one good write above.
    let stored = db(&app).await.query_one("SELECT count(*) FROM boxes.box_settings", &[]).await.unwrap();
    assert_eq!(stored.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn expired_and_revoked_tokens_say_expired() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let e = Endpoint::read(&alice);
    let expired = app.keys.session_with(alice.id, TokenOptions { ttl_secs: -120, ..TokenOptions::default() });
    let res = call(&app, &e, Some(&expired.token), Via::Bearer, None).await;
    assert_error(res, 401, "Authorization", "expired").await;
    // Within the 30 s leeway the token is still good.
    let fresh = app.keys.session_with(alice.id, TokenOptions { ttl_secs: -10, ..TokenOptions::default() });
    assert_eq!(call(&app, &e, Some(&fresh.token), Via::Bearer, None).await.status(), 200);

    let session = app.keys.session(alice.id);
    assert_eq!(call(&app, &e, Some(&session.token), Via::Cookie, None).await.status(), 200);
    let mut redis = test_support::redis_conn().await;
    test_support::revoke(&mut redis, session.sid).await;
    let res = call(&app, &e, Some(&session.token), Via::Cookie, None).await;
    let body = assert_error(res, 401, "accesstoken", "expired").await;
    assert_eq!(body["origin"], "cookies");
    // Another session of the same identity is not affected.
    assert_eq!(call(&app, &e, Some(&alice.session.token), Via::Bearer, None).await.status(), 200);
}

#[tokio::test]
async fn tokentype_cookie_is_required_and_must_be_bearer() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let url = app.url(&format!("/identities/{}", alice.id));
    let token = &alice.session.token;
    let res = app.client.get(&url).header("Cookie", format!("accesstoken={token}")).send().await.unwrap();
    let body = assert_error(res, 401, "tokentype", "required").await;
    assert_eq!(body["origin"], "cookies");
    let res =
        app.client.get(&url).header("Cookie", format!("accesstoken={token}; tokentype=mac")).send().await.unwrap();
    assert_error(res, 401, "tokentype", "invalid").await;
    let res =
        app.client.get(&url).header("Cookie", format!("accesstoken={token}; tokentype=Bearer")).send().await.unwrap();
    assert_error(res, 401, "tokentype", "invalid").await;
    let res = app.client.get(&url).header("Cookie", "tokentype=bearer").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res =
        app.client.get(&url).header("Cookie", format!("accesstoken={token}; tokentype=bearer")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // Authorization wins over cookies, and must then be a bearer token.
    let res = app
        .client
        .get(&url)
        .header("Authorization", format!("Basic {token}"))
        .header("Cookie", alice.session.cookie())
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "Authorization", "malformed").await;
    let res = app
        .client
        .get(&url)
        .header("Authorization", "Bearer nope")
        .header("Cookie", alice.session.cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let binary = reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap();
    let res = app
        .client
        .get(&url)
        .header("Authorization", binary)
        .header("Cookie", alice.session.cookie())
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "Authorization", "malformed").await;
}

#[tokio::test]
async fn unknown_sub_is_401() {
    let app = spawn_app().await;
    let ghost = IdentityId::new_v4();
    let session = app.keys.session(ghost);
    let res = app
        .client
        .get(app.url(&format!("/identities/{ghost}")))
        .header("Authorization", session.bearer())
        .send()
        .await
        .unwrap();
    let body = assert_error(res, 401, "sub", "not_found").await;
    assert_eq!(body["code"], "unauthorized");
    let res = app
        .client
        .put(app.url(&format!("/identities/{ghost}/public-keys")))
        .header("Cookie", session.cookie())
        .header("X-CSRF-Token", &session.csrf)
        .json(&json!({"pubkey": "abcd"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "sub", "not_found").await;
}

#[tokio::test]
async fn weak_acr_is_403() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    let weak = app.keys.session_with(alice.id, TokenOptions { acr: "0".into(), ..TokenOptions::default() });
    for e in [Endpoint::read(&alice), Endpoint::write(&alice), Endpoint::settings_get(&alice, &box_id)] {
        for via in [Via::Bearer, Via::Cookie] {
            let res = call(&app, &e, Some(&weak.token), via, Some(&weak.csrf)).await;
            assert_eq!(res.status(), 403, "{}", e.path);
            let body: Value = res.json().await.unwrap();
            assert_eq!(
                body,
                json!({"code":"forbidden","origin":"acr","desc":"token acr is too weak","details":{"acr":"forbidden","required_acr":"1"}})
            );
        }
    }
    let ok = app.keys.session_with(alice.id, TokenOptions { acr: "1".into(), ..TokenOptions::default() });
    assert_eq!(call(&app, &Endpoint::read(&alice), Some(&ok.token), Via::Bearer, None).await.status(), 200);
}

#[tokio::test]
async fn other_identity_in_the_path_is_403() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let box_id = seed_box(&app, &alice, &[&bob]).await;
    for e in [
        Endpoint::read(&alice),
        Endpoint::write(&alice),
        Endpoint::settings_get(&alice, &box_id),
        Endpoint::settings_put(&alice, &box_id),
    ] {
        let res = call(&app, &e, Some(&bob.session.token), Via::Cookie, Some(&bob.session.csrf)).await;
        let body = assert_error(res, 403, "id", "forbidden").await;
        assert_eq!(body["origin"], "path", "{}", e.path);
    }
    let stored: Value = app.get(&alice, &format!("/identities/{}", alice.id)).await.json().await.unwrap();
    assert_eq!(stored["pubkey"], Value::Null);
}

#[tokio::test]
async fn csrf_rules_for_writes() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    for e in [Endpoint::write(&alice), Endpoint::settings_put(&alice, &box_id)] {
        let token = Some(alice.session.token.as_str());
        let res = call(&app, &e, token, Via::Cookie, None).await;
        let body = assert_error(res, 403, "X-CSRF-Token", "required").await;
        assert_eq!(body["origin"], "headers");
        let res = call(&app, &e, token, Via::Cookie, Some("wrong")).await;
        assert_error(res, 403, "X-CSRF-Token", "invalid").await;
        // The CSRF token of another session of the same identity does not fit this token.
        let other = app.keys.session(alice.id);
        let res = call(&app, &e, token, Via::Cookie, Some(&other.csrf)).await;
        assert_error(res, 403, "X-CSRF-Token", "invalid").await;
        // Bearer callers need no header, but one sent is checked.
        let res = call(&app, &e, token, Via::Bearer, None).await;
        assert!(res.status().is_success(), "{}", e.path);
        let res = call(&app, &e, token, Via::Bearer, Some("wrong")).await;
        assert_error(res, 403, "X-CSRF-Token", "invalid").await;
        let res = call(&app, &e, token, Via::Cookie, Some(&alice.session.csrf)).await;
        assert!(res.status().is_success(), "{}", e.path);
    }
    // Reads never need it and ignore a wrong one.
    for e in [Endpoint::read(&alice), Endpoint::settings_get(&alice, &box_id)] {
        let res = call(&app, &e, Some(&alice.session.token), Via::Cookie, None).await;
        assert_eq!(res.status(), 200);
        let res = call(&app, &e, Some(&alice.session.token), Via::Cookie, Some("wrong")).await;
        assert_eq!(res.status(), 200);
    }
}

#[tokio::test]
async fn checks_run_in_the_documented_order() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let keys_path = format!("/identities/{}/public-keys", alice.id);

    // (1) before (4): a bad token with a bad body is 401.
    let res = app
        .client
        .put(app.url(&keys_path))
        .header("Authorization", "Bearer nope")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app.client.put(app.url(&keys_path)).body("{}").send().await.unwrap();
    assert_eq!(res.status(), 401, "no token, no Content-Type");

    // (2) before (3): a weak token without CSRF is 403 acr.
    let weak = app.keys.session_with(alice.id, TokenOptions { acr: "0".into(), ..TokenOptions::default() });
    let res =
        app.client.put(app.url(&keys_path)).header("Cookie", weak.cookie()).json(&json!({})).send().await.unwrap();
    let body = assert_error(res, 403, "acr", "forbidden").await;
    assert_eq!(body["origin"], "acr");

    // (3) before (4): missing CSRF with an invalid body is 403 CSRF.
    let res = app.send_as(&alice, Method::PUT, &keys_path, Some(json!({"pubkey": "+++"})), Auth::CookieNoCsrf).await;
    assert_error(res, 403, "X-CSRF-Token", "required").await;
    let res = app
        .client
        .put(app.url(&keys_path))
        .header("Cookie", alice.session.cookie())
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "X-CSRF-Token", "required").await;

    // (4) before (5): invalid path or body with another identity is 400.
    let res = app.get(&bob, "/identities/not-a-uuid").await;
    assert_error(res, 400, "id", "malformed").await;
    let res = app.send(&bob, Method::PUT, &keys_path, Some(json!({"pubkey": "+++"}))).await;
    assert_error(res, 400, "pubkey", "malformed").await;
    let res = app.get(&bob, &format!("/box-users/{}/boxes/nope/settings", alice.id)).await;
    assert_error(res, 400, "bid", "malformed").await;

    // (5) before (6): another identity's settings of a box nobody is a member of is 403 path.
    let res = app.get(&bob, &format!("/box-users/{}/boxes/{}/settings", alice.id, uuid::Uuid::new_v4())).await;
    assert_error(res, 403, "id", "forbidden").await;
}

#[tokio::test]
async fn body_rules_content_type_size_and_syntax() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let url = app.url(&format!("/identities/{}/public-keys", alice.id));
    let auth = alice.session.bearer();

    let res = app.client.put(&url).header("Authorization", &auth).body(r#"{"pubkey":"abcd"}"#).send().await.unwrap();
    let body = assert_error(res, 400, "Content-Type", "invalid").await;
    assert_eq!(body["origin"], "headers");
    let res = app
        .client
        .put(&url)
        .header("Authorization", &auth)
        .header("Content-Type", "text/plain")
        .body(r#"{"pubkey":"abcd"}"#)
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "Content-Type", "invalid").await;
    let res = app
        .client
        .put(&url)
        .header("Authorization", &auth)
        .header("Content-Type", "application/json; charset=utf-8")
        .body(r#"{"pubkey":"abcd"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "parameters after the media type are fine");

    for raw in ["{not json", "", "[1,2]", "\"string\"", "null"] {
        let res = app
            .client
            .put(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let body = assert_error(res, 400, "body", "malformed").await;
        assert_eq!(body["origin"], "body", "{raw:?}");
    }

    let padding = "a".repeat(64 * 1024);
    let res = app
        .client
        .put(&url)
        .header("Authorization", &auth)
        .json(&json!({"pubkey": "abcd", "padding": padding}))
        .send()
        .await
        .unwrap();
    let body: Value = {
        assert_eq!(res.status(), 413);
        res.json().await.unwrap()
    };
    assert_eq!(body["code"], "request_entity_too_large");
    // Just under the limit is read.
    let padding = "a".repeat(64 * 1024 - 100);
    let res = app
        .client
        .put(&url)
        .header("Authorization", &auth)
        .json(&json!({"pubkey": "abcd", "padding": padding}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A cookie write without CSRF and without Content-Type is 403: CSRF comes first.
    let res = app.client.put(&url).header("Cookie", alice.session.cookie()).body("x").send().await.unwrap();
    assert_error(res, 403, "X-CSRF-Token", "required").await;
}

#[tokio::test]
async fn internal_endpoint_takes_only_the_internal_token() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let url = app.internal_url(&format!("/internal/identities/{}", alice.id));
    let body = json!({"display_name": "A", "identifier_value": "a@example.com", "identifier_kind": "email"});
    let res = app.client.put(&url).json(&body).send().await.unwrap();
    assert_error(res, 401, "X-Internal-Token", "required").await;
    let res = app
        .client
        .put(&url)
        .header("Cookie", alice.session.cookie())
        .header("X-CSRF-Token", &alice.session.csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "X-Internal-Token", "required").await;
    let res = app
        .client
        .put(&url)
        .header("X-Internal-Token", "internal-test-token-0123456789abcdeg")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "X-Internal-Token", "invalid").await;
    // No CSRF is needed, and a wrong token beats a bad body.
    let res = app.client.put(&url).header("X-Internal-Token", "x").body("{").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app.client.put(&url).header("X-Internal-Token", INTERNAL_TOKEN).body("{").send().await.unwrap();
    assert_error(res, 400, "Content-Type", "invalid").await;
    let res = app.client.put(&url).header("X-Internal-Token", INTERNAL_TOKEN).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn optional_auth_profile_treats_bad_tokens_as_anonymous() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let e = Endpoint { method: Method::GET, path: format!("/identities/{}/profile", alice.id), body: None };

    let res = call(&app, &e, Some(&alice.session.token), Via::Cookie, None).await;
    let own: Value = res.json().await.unwrap();
    assert_eq!(own["identifier_value"], "alice@example.com");

    let mut tokens = bad_tokens(&app, &alice).await;
    let weak = app.keys.session_with(alice.id, TokenOptions { acr: "0".into(), ..TokenOptions::default() });
    tokens.push(("weak acr", weak.token));
    tokens.push(("unknown sub", app.keys.session(IdentityId::new_v4()).token));
    for (name, token) in tokens {
        for via in [Via::Bearer, Via::Cookie] {
            let res = call(&app, &e, Some(&token), via, None).await;
            assert_eq!(res.status(), 200, "{name}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["identifier_value"], "", "{name}: treated as anonymous");
            assert_eq!(body["display_name"], "Alice");
        }
    }
    let res = app
        .client
        .get(app.url(&e.path))
        .header("Cookie", format!("accesstoken={}", alice.session.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "missing tokentype: anonymous");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["identifier_value"], "");
}

/// A TCP proxy in front of the real Redis that can be cut: while down it closes every
/// connection, as a Redis that went away would.
struct RedisProxy {
    port: u16,
    up: Arc<AtomicBool>,
}

impl RedisProxy {
    async fn start() -> RedisProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let target = test_support::redis_url();
        let target = target.trim_start_matches("redis://").split('/').next().unwrap().to_owned();
        let flag = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { break };
                if !flag.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { continue };
                let flag = flag.clone();
                tokio::spawn(async move {
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    tokio::pin!(copy);
                    loop {
                        tokio::select! {
                            _ = &mut copy => break,
                            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                                if !flag.load(Ordering::SeqCst) {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        RedisProxy { port, up }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn redis_down_fails_closed_with_503() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let proxy = RedisProxy::start().await;
    let mut s = settings(&app.database_url, &app.keys);
    s.redis.url = secrecy::SecretString::from(proxy.url());
    let second = Application::build(s).await.unwrap();
    let address = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());
    let url = format!("{address}/identities/{}", alice.id);

    // The proxy runs on this test's runtime, which the second instance's start held for a while:
    // its revocation subscription may be reconnecting at first.
    let started = std::time::Instant::now();
    loop {
        let res = app.client.get(&url).header("Authorization", alice.session.bearer()).send().await.unwrap();
        if res.status() == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "through the proxy while Redis is up: {}", res.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    proxy.set_up(false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let res = app.client.get(&url).header("Authorization", alice.session.bearer()).send().await.unwrap();
    assert_eq!(res.status(), 503, "revocation cannot be checked: fail closed");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "service_unavailable");
    assert_eq!(body["details"], json!({}));
    // A request without a token is still a plain 401: nothing needed Redis.
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);

    proxy.set_up(true);
    let mut recovered = false;
    for _ in 0..40 {
        let res = app.client.get(&url).header("Authorization", alice.session.bearer()).send().await.unwrap();
        if res.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "answers again once Redis is back");
}

/// `POST /boxes/{id}/events` and `GET /boxes/{id}/events` check the identity in the same round
/// trip as their own statements; the order of §3.7 must still hold there.
#[tokio::test]
async fn event_post_and_list_keep_the_order_of_checks() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    let events = format!("/boxes/{box_id}/events");
    let text = json!({"type":"msg.text","content":{"encrypted":"abcd","public_key":"SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw"}});
    let post = |token: &str, body: Value| {
        app.client.post(app.url(&events)).header("Authorization", format!("Bearer {token}")).json(&body)
    };

    // (1) an unknown `sub` is 401 before membership (6), body (4), ACR (2) and CSRF (3).
    let ghost = app.keys.session(IdentityId::new_v4());
    assert_error(post(&ghost.token, text.clone()).send().await.unwrap(), 401, "sub", "not_found").await;
    assert_error(post(&ghost.token, json!({"type":"msg.text"})).send().await.unwrap(), 401, "sub", "not_found").await;
    let res = app.client.get(app.url(&events)).header("Authorization", ghost.bearer()).send().await.unwrap();
    assert_error(res, 401, "sub", "not_found").await;
    let res = app
        .client
        .get(app.url(&format!("{events}?limit=oops")))
        .header("Authorization", ghost.bearer())
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "sub", "not_found").await;
    let weak_ghost =
        app.keys.session_with(IdentityId::new_v4(), TokenOptions { acr: "0".into(), ..TokenOptions::default() });
    assert_error(post(&weak_ghost.token, text.clone()).send().await.unwrap(), 401, "sub", "not_found").await;
    let res = app.client.post(app.url(&events)).header("Cookie", ghost.cookie()).json(&text).send().await.unwrap();
    assert_error(res, 401, "sub", "not_found").await;

    // (1) a revoked session is 401.
    let revoked = app.keys.session(alice.id);
    let mut redis = test_support::redis_conn().await;
    test_support::revoke(&mut redis, revoked.sid).await;
    assert_error(post(&revoked.token, text.clone()).send().await.unwrap(), 401, "Authorization", "expired").await;
    let res = app.client.get(app.url(&events)).header("Authorization", revoked.bearer()).send().await.unwrap();
    assert_error(res, 401, "Authorization", "expired").await;

    // (2) ACR and (3) CSRF come before the body (4) and membership (6).
    let weak = app.keys.session_with(bob.id, TokenOptions { acr: "0".into(), ..TokenOptions::default() });
    assert_error(post(&weak.token, json!({"type":"msg.text"})).send().await.unwrap(), 403, "acr", "forbidden").await;
    let res = app
        .client
        .get(app.url(&format!("{events}?limit=oops")))
        .header("Authorization", weak.bearer())
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "acr", "forbidden").await;
    let res = app.send_as(&bob, Method::POST, &events, Some(json!({"type":"msg.text"})), Auth::CookieNoCsrf).await;
    assert_error(res, 403, "X-CSRF-Token", "required").await;

    // (4) the body and the page come before membership (6).
    assert_error(app.post_event(&bob, &box_id, json!({"type":"msg.text"})).await, 400, "content", "required").await;
    let res = app.get(&bob, &format!("{events}?limit=oops")).await;
    assert_eq!(res.status(), 400);
    assert_error(app.post_event(&bob, &box_id, text.clone()).await, 403, "reason", "not_member").await;

    // Only the create event is there: none of the refused requests wrote anything.
    let stored = db(&app).await.query_one("SELECT count(*) FROM boxes.events", &[]).await.unwrap();
    assert_eq!(stored.get::<_, i64>(0), 1);
    let res = app.post_event(&alice, &box_id, text).await;
    assert_eq!(res.status(), 201);
}
