//! The Boxo host web SDK endpoint `POST /api/v1/authorize/` (§10.8).

use crate::helpers::*;
use domain::auth::Verifier;
use serde_json::{json, Value};

const ORIGIN: &str = "https://host.example";

async fn authorize(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.http.post(app.url(path)).header("Origin", ORIGIN).json(&body).send().await.unwrap()
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
    let res = authorize(
        &app,
        "/api/v1/authorize/",
        json!({"auth_code": "bogus", "client_id": "ref-hostapp", "app_id": APP_ID}),
    )
    .await;
    assert_error(res, 401, "unauthorized", &[("hostapp_error", "INVALID_AUTH_CODE")]).await;

    let code = app.code_for("alice").await;
    let res = authorize(
        &app,
        "/api/v1/authorize/",
        json!({"auth_code": code, "client_id": "ref-hostapp", "app_id": APP_ID, "user_reference": "bob"}),
    )
    .await;
    let body = assert_error(res, 401, "unauthorized", &[("user_reference", "invalid")]).await;
    assert_eq!(body["origin"], "body");
    assert_eq!(app.session_count().await, 0);

    let res = authorize(
        &app,
        "/api/v1/authorize/",
        json!({"auth_code": "code-nora", "client_id": "ref-hostapp", "app_id": APP_ID}),
    )
    .await;
    assert_error(res, 502, "bad_gateway", &[("hostapp_error", "INVALID_USER_DATA")]).await;
    let res = authorize(&app, "/api/v1/authorize/", json!({"client_id": "ref-hostapp", "app_id": APP_ID})).await;
    assert_error(res, 400, "bad_request", &[("auth_code", "required")]).await;
    let res =
        authorize(&app, "/api/v1/authorize/", json!({"auth_code": "c", "client_id": "x", "app_id": APP_ID})).await;
    assert_error(res, 400, "bad_request", &[("client_id", "not_found")]).await;
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
