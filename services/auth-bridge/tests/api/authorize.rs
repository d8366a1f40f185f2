//! The Boxo host web SDK endpoint `POST /api/v1/authorize/` (§10.8).

use crate::helpers::*;
use boxes_client::body::{AuthorizeBody, LoginBody};
use domain::auth::Verifier;
use domain::ErrorCode;
use serde_json::{json, Value};

const ORIGIN: &str = "https://host.example";

async fn authorize(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.http.post(app.url(path)).header("Origin", ORIGIN).json(&body).send().await.unwrap()
}

/// The SDK's body for miniapp [`APP_ID`], through the typed client.
fn sdk_login(auth_code: &str, client_id: &str, user_reference: Option<&str>) -> AuthorizeBody {
    let login = LoginBody { auth_code: auth_code.into(), app_id: APP_ID.into(), client_id: client_id.into() };
    AuthorizeBody { login, user_reference: user_reference.map(str::to_owned) }
}

#[tokio::test]
async fn the_sdk_gets_a_token_without_cookies() {
    let app = spawn_app().await;
    for (path, reference) in [("/api/v1/authorize/", Some("alice")), ("/api/v1/authorize", None)] {
        let code = app.code_for("alice").await;
        let mut body = json!({"auth_code": code, "client_id": "ref-hostapp", "app_id": APP_ID});
        if let Some(r) = reference {
            body["user_reference"] = json!(r);
        }
        let res = authorize(&app, path, body).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers().get("set-cookie").is_none());
        assert_eq!(res.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some(ORIGIN));
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["auth_token"], body["token"]);
        assert_eq!(body["expires_in"], 3600);
        let claims = Verifier::from_public_pems(&[app.keys.public_pem.as_str()], test_support::ISSUER)
            .unwrap()
            .verify(body["token"].as_str().unwrap())
            .unwrap();
        assert_eq!(claims.sub.to_string(), body["identity_id"].as_str().unwrap());

        // The miniapp refreshes with the body-borne refresh token.
        let refreshed = app.bridge().refresh(body["refresh_token"].as_str().unwrap()).await.unwrap();
        assert_eq!(refreshed.identity(), claims.sub);
    }
}

#[tokio::test]
async fn every_failure_is_non_2xx() {
    let app = spawn_app().await;
    let bridge = app.bridge();
    let res = bridge.authorize(&sdk_login("bogus", "ref-hostapp", None)).await;
    assert_refused(res, 401, ErrorCode::Unauthorized, &[("hostapp_error", "INVALID_AUTH_CODE")]);

    let code = app.code_for("alice").await;
    let res = bridge.authorize(&sdk_login(&code, "ref-hostapp", Some("bob"))).await;
    let body = assert_refused(res, 401, ErrorCode::Unauthorized, &[("user_reference", "invalid")]);
    assert_eq!(body.origin, domain::Origin::Body);
    assert_eq!(app.session_count().await, 0);

    let res = bridge.authorize(&sdk_login("code-nora", "ref-hostapp", None)).await;
    assert_refused(res, 502, ErrorCode::BadGateway, &[("hostapp_error", "INVALID_USER_DATA")]);
    // Raw: a body without its auth code.
    let res = authorize(&app, "/api/v1/authorize/", json!({"client_id": "ref-hostapp", "app_id": APP_ID})).await;
    assert_error(res, 400, "bad_request", &[("auth_code", "required")]).await;
    let res = bridge.authorize(&sdk_login("c", "x", None)).await;
    assert_refused(res, 400, ErrorCode::BadRequest, &[("client_id", "not_found")]);
}

#[tokio::test]
async fn cors_preflight_from_the_host_page() {
    let app = spawn_app().await;
    let res = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/authorize/"))
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_lowercase);
    assert_eq!(h("access-control-allow-origin").as_deref(), Some(ORIGIN));
    assert_eq!(h("access-control-allow-credentials").as_deref(), Some("true"));
    assert!(h("access-control-allow-headers").is_some_and(|v| v.contains("content-type")));
    assert!(h("access-control-allow-methods").is_some_and(|v| v.contains("post")));

    let res = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/authorize/"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}
