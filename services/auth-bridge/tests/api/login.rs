//! `POST /auth/login` happy paths (§10.2) and request validation.

use crate::helpers::*;
use domain::auth::{sha256_b64u, Verifier};
use serde_json::{json, Value};

fn verifier(app: &TestApp) -> Verifier {
    Verifier::from_public_pems(&[app.keys.public_pem.as_str()], test_support::ISSUER).unwrap()
}

#[tokio::test]
async fn alice_logs_in_with_cookies_claims_identity_and_consent() {
    let app = spawn_app().await;
    let code = app.code_for("alice").await;
    let res = app.login(&code).await;
    assert_eq!(res.status(), 200);
    let cookies = set_cookies(&res);
    let body: Value = res.json().await.unwrap();

    // Step 8 body.
    let identity_id = body["identity_id"].as_str().unwrap().to_owned();
    assert!(domain::IdentityId::parse(&identity_id).is_ok());
    assert_eq!(identity_id, identity_id.to_lowercase());
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    let csrf = body["csrf_token"].as_str().unwrap();
    assert!(domain::b64::is_b64u(refresh) && domain::b64::is_b64u(csrf));
    assert_eq!(csrf.len(), 43);
    assert_eq!(body.as_object().unwrap().len(), 6);

    // Cookies and their attributes (§3.2).
    let a = cookie(&cookies, "accesstoken");
    assert_eq!(cookie_value(a), access);
    let t = cookie(&cookies, "tokentype");
    assert_eq!(cookie_value(t), "bearer");
    let r = cookie(&cookies, "refreshtoken");
    assert_eq!(cookie_value(r), refresh);
    for line in [a, t, r] {
        assert!(line.contains("HttpOnly"), "{line}");
        assert!(line.contains("Secure"), "{line}");
        assert!(line.contains("SameSite=Strict"), "{line}");
    }
    assert!(a.contains("Path=/;") || a.ends_with("Path=/"), "{a}");
    assert!(t.contains("Path=/;") || t.ends_with("Path=/"), "{t}");
    assert!(r.contains("Path=/auth"), "{r}");

    // Claims (§3.1).
    let claims = verifier(&app).verify(access).unwrap();
    assert_eq!(claims.sub.to_string(), identity_id);
    assert_eq!(claims.iss, "auth-bridge");
    assert_eq!(claims.aud, "boxes-api");
    assert_eq!(claims.acr, "2");
    assert_eq!(claims.cid, "ref-hostapp");
    assert_eq!(claims.csh, sha256_b64u(csrf));
    assert_eq!(claims.exp - claims.iat, 3600);
    assert_eq!(claims.jti.get_version_num(), 4);

    // Identity upsert (§10.2 step 5, §12).
    let puts = app.upserts().await;
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].path, format!("/internal/identities/{identity_id}"));
    assert_eq!(puts[0].header("X-Internal-Token"), Some(INTERNAL_TOKEN));
    assert_eq!(
        puts[0].json(),
        json!({"display_name": "Alice Martin", "identifier_value": "alice@example.com", "identifier_kind": "email", "identifier_verified": false})
    );

    // Link, snapshot, consent and session rows.
    let db = app.db().await;
    let row = db
        .query_one("SELECT identity_id, user_data FROM auth.hostapp_users WHERE client_id = 'ref-hostapp' AND reference = 'alice'", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, uuid::Uuid>(0).to_string(), identity_id);
    assert_eq!(row.get::<_, Value>(1)["custom_attributes"], json!({"tier": "gold"}));
    let consent = db
        .query_one(
            "SELECT consented_at, last_login_at FROM auth.consents WHERE client_id = 'ref-hostapp' AND app_id = 'boxes-miniapp' AND user_reference = 'alice'",
            &[],
        )
        .await
        .unwrap();
    let first: chrono::DateTime<chrono::Utc> = consent.get(0);
    let session =
        db.query_one("SELECT sid, refresh_hash, csrf_hash, revoked_at IS NULL FROM auth.sessions", &[]).await.unwrap();
    assert_eq!(session.get::<_, uuid::Uuid>(0), *claims.sid.as_uuid());
    assert_eq!(session.get::<_, String>(1), sha256_b64u(refresh));
    assert_eq!(session.get::<_, String>(2), sha256_b64u(csrf));
    assert!(session.get::<_, bool>(3));

    // A second login keeps the identity and the first consent time, and opens a new session.
    let again = app.login_ok("alice").await;
    assert_eq!(again["identity_id"], identity_id.as_str());
    let consent = db
        .query_one("SELECT consented_at, last_login_at FROM auth.consents WHERE user_reference = 'alice'", &[])
        .await
        .unwrap();
    assert_eq!(consent.get::<_, chrono::DateTime<chrono::Utc>>(0), first);
    assert!(consent.get::<_, chrono::DateTime<chrono::Utc>>(1) > first);
    assert_eq!(app.session_count().await, 2);
    assert_eq!(app.upserts().await.len(), 2);
}

#[tokio::test]
async fn bob_is_a_phone_identity() {
    let app = spawn_app().await;
    let body = app.login_ok("bob").await;
    let puts = app.upserts().await;
    assert_eq!(puts[0].path, format!("/internal/identities/{}", body["identity_id"].as_str().unwrap()));
    assert_eq!(
        puts[0].json(),
        json!({"display_name": "Bob", "identifier_value": "+33612345678", "identifier_kind": "phone", "identifier_verified": false})
    );
}

#[tokio::test]
async fn carol_has_both_and_the_email_wins() {
    let app = spawn_app().await;
    app.login_ok("carol").await;
    assert_eq!(
        app.upserts().await[0].json(),
        json!({"display_name": "Carol Smith", "identifier_value": "carol@example.org", "identifier_kind": "email", "identifier_verified": false})
    );
}

#[tokio::test]
async fn static_codes_and_post_user_data_work() {
    let app = spawn_app_with(Options { ref_user_data_method: "POST", ..Options::default() }).await;
    let res = app.login("code-alice").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn cookie_secure_false_drops_secure() {
    let app = spawn_app_with(Options { cookie_secure: false, ..Options::default() }).await;
    let res = app.login("code-alice").await;
    assert_eq!(res.status(), 200);
    let cookies = set_cookies(&res);
    assert_eq!(cookies.len(), 3);
    for (_, line) in &cookies {
        assert!(!line.contains("Secure"), "{line}");
        assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict"), "{line}");
    }
}

#[tokio::test]
async fn login_body_validation() {
    let app = spawn_app().await;
    let post = |body: Value| app.http.post(app.url("/auth/login")).json(&body).send();

    let res = post(json!({"app_id": APP_ID, "client_id": "ref-hostapp", "auth_code": null, "extra": 1})).await.unwrap();
    assert_error(res, 400, "bad_request", &[("auth_code", "required")]).await;

    let res = post(json!({"auth_code": "x".repeat(1001), "app_id": "", "client_id": "c".repeat(101)})).await.unwrap();
    let body = assert_error(
        res,
        400,
        "bad_request",
        &[("auth_code", "invalid"), ("app_id", "invalid"), ("client_id", "invalid")],
    )
    .await;
    assert_eq!(body["origin"], "body");

    let res = post(json!({"auth_code": 5, "app_id": APP_ID, "client_id": "ref-hostapp"})).await.unwrap();
    assert_error(res, 400, "bad_request", &[("auth_code", "invalid")]).await;

    let res = post(json!([1, 2])).await.unwrap();
    assert_error(res, 400, "bad_request", &[("body", "malformed")]).await;

    let res = app
        .http
        .post(app.url("/auth/login"))
        .header("Content-Type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "bad_request", &[("body", "malformed")]).await;

    let res =
        app.http.post(app.url("/auth/login")).header("Content-Type", "text/plain").body("{}").send().await.unwrap();
    let body = assert_error(res, 400, "bad_request", &[("Content-Type", "invalid")]).await;
    assert_eq!(body["origin"], "headers");

    let big = json!({"auth_code": "x".repeat(70 * 1024), "app_id": APP_ID, "client_id": "ref-hostapp"});
    let res = post(big).await.unwrap();
    assert_error(res, 413, "request_entity_too_large", &[]).await;

    let res = post(json!({"auth_code": "code-alice", "app_id": APP_ID, "client_id": "nobody"})).await.unwrap();
    assert_error(res, 400, "bad_request", &[("client_id", "not_found")]).await;

    let res = post(json!({"auth_code": "code-alice", "app_id": "another-miniapp", "client_id": "ref-hostapp"}))
        .await
        .unwrap();
    assert_error(res, 400, "bad_request", &[("app_id", "invalid")]).await;

    assert_eq!(app.session_count().await, 0);
    assert!(app.upserts().await.is_empty());
}

#[tokio::test]
async fn unknown_routes_methods_health_and_jwks() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_error(res, 404, "not_found", &[]).await;
    let res = app.http.get(app.url("/auth/login")).send().await.unwrap();
    assert_error(res, 405, "method_not_allowed", &[]).await;

    app.bridge().healthz().await.unwrap();
    app.bridge().readyz().await.unwrap();

    let jwks = app.bridge().jwks().await.unwrap();
    let expected = domain::auth::Jwk::from_public_pem(&app.keys.public_pem).unwrap();
    assert_eq!(jwks.keys, [expected]);
    assert_eq!(jwks.keys[0].kty, "OKP");
}

#[tokio::test]
async fn the_identifier_is_verified_only_for_a_host_app_that_verifies_identifiers() {
    // By default a registered host app does not vouch for its users' email or phone.
    let app = spawn_app().await;
    app.login_ok("alice").await;
    assert_eq!(app.upserts().await[0].json()["identifier_verified"], false);

    let app = spawn_app_with(Options { ref_verifies_identifiers: true, ..Options::default() }).await;
    app.login_ok("alice").await;
    app.login_ok("bob").await;
    let puts = app.upserts().await;
    assert_eq!(puts[0].json()["identifier_verified"], true);
    assert_eq!(puts[1].json()["identifier_verified"], true);
    assert_eq!(puts[1].json()["identifier_kind"], "phone");
}
