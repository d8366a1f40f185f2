//! What a security review asked for: signing-key rotation, control characters, the origin policy,
//! the internal token's length.

use crate::helpers::*;
use auth_bridge::startup::Application;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use domain::auth::Verifier;
use secrecy::SecretString;
use serde_json::{json, Value};
use test_support::TestKeys;

fn creds(id: &str, secret: &str) -> String {
    format!("Token {}", STANDARD.encode(format!("{id}:{secret}")))
}

async fn start(settings: auth_bridge::config::Settings) -> String {
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    base
}

#[tokio::test]
async fn a_signing_key_rotation_keeps_old_tokens_working_until_they_expire() {
    let app = spawn_app().await;
    let old_key = &app.keys;
    let before = app.login_ok("alice").await;
    let old_token = before["access_token"].as_str().unwrap();

    // The new key signs; the old one is still listed, so it still verifies.
    let new_key = TestKeys::generate();
    let mut s = app.settings.clone();
    s.jwt_private_key_file = new_key.private_file.path().to_owned();
    s.jwt_public_key_file = vec![new_key.public_file.path().to_owned(), old_key.public_file.path().to_owned()];
    let rotated = start(s).await;

    let jwks = boxes_client::Bridge::new(app.http.clone(), &rotated).jwks().await.unwrap();
    let kids: Vec<&str> = jwks.keys.iter().map(|k| k.kid.as_str()).collect();
    let new_only = Verifier::from_public_pems(&[new_key.public_pem.as_str()], test_support::ISSUER).unwrap();
    let old_only = Verifier::from_public_pems(&[old_key.public_pem.as_str()], test_support::ISSUER).unwrap();
    assert_eq!(kids.len(), 2, "{jwks:?}");
    assert_eq!(kids[0], new_key.signer().kid(), "the signing key comes first");
    assert_eq!(kids[1], old_key.signer().kid());

    // New logins are signed with the new key.
    let code = app.code_for("bob").await;
    let res = app
        .http
        .post(format!("{rotated}/auth/login"))
        .json(&json!({"auth_code": code, "app_id": APP_ID, "client_id": "ref-hostapp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let bob: Value = res.json().await.unwrap();
    assert!(new_only.verify(bob["access_token"].as_str().unwrap()).is_ok());
    assert!(old_only.verify(bob["access_token"].as_str().unwrap()).is_err());

    // A verifier given both keys (boxes, realtime) accepts tokens of either.
    let both =
        Verifier::from_public_pems(&[new_key.public_pem.as_str(), old_key.public_pem.as_str()], test_support::ISSUER)
            .unwrap();
    assert!(both.verify(old_token).is_ok() && both.verify(bob["access_token"].as_str().unwrap()).is_ok());

    // The session opened under the old key refreshes (to a new-key token) and logs out with
    // its old-key token.
    let res = app
        .http
        .post(format!("{rotated}/auth/refresh"))
        .json(&json!({"refresh_token": before["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let refreshed: Value = res.json().await.unwrap();
    assert!(new_only.verify(refreshed["access_token"].as_str().unwrap()).is_ok());
    let res = app.http.post(format!("{rotated}/auth/logout")).bearer_auth(old_token).send().await.unwrap();
    assert_eq!(res.status(), 204);

    // Once the old key is dropped from the list, its tokens stop working.
    let mut s = app.settings.clone();
    s.jwt_private_key_file = new_key.private_file.path().to_owned();
    s.jwt_public_key_file = vec![new_key.public_file.path().to_owned()];
    let after = start(s).await;
    let res = app.http.post(format!("{after}/auth/logout")).bearer_auth(old_token).send().await.unwrap();
    assert_error(res, 401, "unauthorized", &[]).await;
}

#[tokio::test]
async fn the_private_key_must_match_a_listed_public_key() {
    let app = spawn_app().await;
    let other = TestKeys::generate();
    let mut s = app.settings.clone();
    s.jwt_public_key_file = vec![other.public_file.path().to_owned()];
    let err = Application::build(s).await.err().expect("a private key without its public key is refused");
    assert!(format!("{err:#}").contains("JWT_PUBLIC_KEY_FILE"), "{err:#}");
}

#[tokio::test]
async fn a_short_internal_token_is_refused_at_start() {
    let app = spawn_app().await;
    let mut s = app.settings.clone();
    s.internal_api_token = SecretString::from("y".repeat(31));
    let err = Application::build(s).await.err().expect("a 31-byte token must be refused");
    assert!(format!("{err:#}").contains("INTERNAL_API_TOKEN"), "{err:#}");
}

#[tokio::test]
async fn control_characters_are_refused() {
    let app = spawn_app().await;
    let good = creds("ref-hostapp", "ref-secret");
    // Consent query parameters: %00 and %0A decode to control characters.
    for query in [
        "client_id=ref-hostapp&app_id=boxes-miniapp&user_reference=al%00ice",
        "client_id=ref-hostapp&app_id=boxes%0Aminiapp&user_reference=alice",
    ] {
        let res = app
            .http
            .get(app.url(&format!("/api/v1/accounts/consent/get_consent/?{query}")))
            .header("Authorization", &good)
            .header("X-Hostapp-Client-ID", "ref-hostapp")
            .send()
            .await
            .unwrap();
        let body = assert_error(res, 400, "bad_request", &[]).await;
        assert_eq!(body["origin"], "query", "{body}");
    }
    // The host app's revoke body.
    let res = app
        .http
        .post(app.url("/auth/hostapp/revoke"))
        .header("Authorization", &good)
        .header("X-Hostapp-Client-ID", "ref-hostapp")
        .json(&json!({"client_id": "ref-hostapp", "user_reference": "al\u{0}ice"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "bad_request", &[("user_reference", "invalid")]).await;
    // Login fields.
    let res = app
        .http
        .post(app.url("/auth/login"))
        .json(&json!({"auth_code": "code\u{0}", "app_id": APP_ID, "client_id": "ref-hostapp"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "bad_request", &[("auth_code", "invalid")]).await;
}

#[tokio::test]
async fn a_host_app_sending_control_characters_in_names_is_invalid_user_data() {
    let user =
        json_answer(json!({"user_data": {"reference": "m1", "email": "m1@example.com", "first_name": "M\u{0}1"}}));
    let mock = mock_hostapp(json_answer(json!({"access_token": "t"})), user).await;
    let app =
        spawn_app_with(Options { extra_hostapps: mock_entry("mock-hostapp", &mock.uri()), ..Options::default() }).await;
    let res = app.login_as("mock-hostapp", "some-code").await;
    assert_error(
        res,
        502,
        "bad_gateway",
        &[("hostapp_error", "INVALID_USER_DATA"), ("user_data.first_name", "invalid")],
    )
    .await;
    assert!(app.upserts().await.is_empty(), "nothing reached boxes");
}

#[tokio::test]
async fn cors_follows_the_shared_origin_policy() {
    let app = spawn_app().await;
    let preflight = |base: String, origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, format!("{base}/auth/refresh"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
    };
    let res = preflight(app.base.clone(), "https://host.example").await.unwrap();
    assert_eq!(res.headers().get("access-control-allow-origin").unwrap(), "https://host.example");
    assert_eq!(res.headers().get("access-control-allow-credentials").unwrap(), "true");
    for origin in ["null", "https://evil.example"] {
        let res = preflight(app.base.clone(), origin).await.unwrap();
        assert!(res.headers().get("access-control-allow-origin").is_none(), "{origin}");
    }
    let mut s = app.settings.clone();
    s.origins.allowed_origins = vec!["*".into()];
    let dev = start(s).await;
    let res = preflight(dev.clone(), "https://anything.example").await.unwrap();
    assert_eq!(res.headers().get("access-control-allow-origin").unwrap(), "https://anything.example");
    assert!(res.headers().get("access-control-allow-credentials").is_none(), "`*` never with credentials");
    let res = preflight(dev, "null").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn readyz_failures_answer_the_error_shape() {
    let app = spawn_app().await;
    let name = app.db_url.rsplit('/').next().unwrap().to_owned();
    let (admin, conn) =
        tokio_postgres::connect(&test_support::admin_database_url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
    let body = assert_refused(app.bridge().readyz().await, 503, domain::ErrorCode::ServiceUnavailable, &[]);
    assert_eq!(body.origin, domain::Origin::NotDefined);
}
