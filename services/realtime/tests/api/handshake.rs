//! §9.1: every refusal with its status and §4 body, in the contract's order, and the accepted
//! ways of presenting a token.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use domain::IdentityId;
use serde_json::{json, Value};
use test_support::{TestKeys, TokenOptions};

use crate::helpers::*;

#[tokio::test]
async fn no_token_is_401() {
    let app = spawn_app().await;
    let (status, body) = refused(app.upgrade_request(&app.ws_url(IdentityId::new_v4())).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized");
    assert_eq!(body["origin"], "cookies");
    assert_eq!(body["details"]["accesstoken"], "required");
}

#[tokio::test]
async fn bad_signature_is_401() {
    let app = spawn_app().await;
    let other_keys = TestKeys::generate();
    let s = other_keys.session(IdentityId::new_v4());
    let url = format!("{}?access_token={}", app.ws_url(s.identity), s.token);
    let (status, body) = refused(app.upgrade_request(&url).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized");
    assert_eq!(body["origin"], "query");
    assert_eq!(body["details"]["access_token"], "invalid");
}

#[tokio::test]
async fn alg_none_is_401() {
    let app = spawn_app().await;
    let s = app.session();
    let claims: Value = {
        let payload = s.token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let forged = format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let (status, body) = refused(
        app.upgrade_request(&app.ws_url(s.identity))
            .header("Authorization", format!("Bearer {forged}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized");
    assert_eq!(body["origin"], "headers");
}

#[tokio::test]
async fn expired_token_is_401() {
    let app = spawn_app().await;
    let s = app.keys.session_with(IdentityId::new_v4(), TokenOptions { ttl_secs: -120, ..TokenOptions::default() });
    let (status, body) =
        refused(app.upgrade_request(&app.ws_url(s.identity)).header("Cookie", s.cookie()).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["origin"], "cookies");
    assert_eq!(body["details"]["accesstoken"], "expired");
}

#[tokio::test]
async fn revoked_session_is_401() {
    let app = spawn_app().await;
    let s = app.session();
    test_support::revoke(&mut test_support::redis_conn().await, s.sid).await;
    let (status, body) =
        refused(app.upgrade_request(&app.ws_url(s.identity)).header("Authorization", s.bearer()).send().await.unwrap())
            .await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized");
    assert_eq!(body["desc"], "session revoked");
}

#[tokio::test]
async fn tokentype_cookie_is_required() {
    let app = spawn_app().await;
    let s = app.session();
    let only_token = format!("accesstoken={}", s.token);
    let (status, body) =
        refused(app.upgrade_request(&app.ws_url(s.identity)).header("Cookie", only_token).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["origin"], "cookies");
    assert_eq!(body["details"]["tokentype"], "required");
    let wrong = format!("accesstoken={}; tokentype=mac", s.token);
    let (status, body) =
        refused(app.upgrade_request(&app.ws_url(s.identity)).header("Cookie", wrong).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["details"]["tokentype"], "invalid");
}

#[tokio::test]
async fn acr_zero_is_403_origin_acr() {
    let app = spawn_app().await;
    let s = app.keys.session_with(IdentityId::new_v4(), TokenOptions { acr: "0".into(), ..TokenOptions::default() });
    let (status, body) =
        refused(app.upgrade_request(&app.ws_url(s.identity)).header("Cookie", s.cookie()).send().await.unwrap()).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"code":"forbidden","origin":"acr","desc":"token acr is too weak","details":{"acr":"forbidden","required_acr":"1"}})
    );
}

#[tokio::test]
async fn non_uuid_id_is_400() {
    let app = spawn_app().await;
    let s = app.session();
    let (status, body) =
        refused(app.upgrade_request(&app.ws_url("not-a-uuid")).header("Cookie", s.cookie()).send().await.unwrap())
            .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "bad_request");
    assert_eq!(body["origin"], "path");
    assert_eq!(body["details"], json!({"id": "malformed"}));
}

#[tokio::test]
async fn other_identity_is_403() {
    let app = spawn_app().await;
    let s = app.session();
    let (status, body) = refused(
        app.upgrade_request(&app.ws_url(IdentityId::new_v4())).header("Cookie", s.cookie()).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["origin"], "path");
    assert_eq!(body["details"], json!({"id": "forbidden"}));
}

#[tokio::test]
async fn origin_must_be_allowed() {
    let keys = Arc::new(TestKeys::generate());
    let app = spawn_app_with(keys, |s| s.origins.allowed_origins = vec!["https://app.example".into()]).await;
    let s = app.session();
    let (status, body) = refused(
        app.upgrade_request(&app.ws_url(s.identity))
            .header("Cookie", s.cookie())
            .header("Origin", "https://evil.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["origin"], "headers");
    assert_eq!(body["details"], json!({"Origin": "forbidden"}));

    let url = format!("{}?access_token={}", app.ws_url(s.identity), s.token);
    assert_eq!(handshake_status(&url, &[("Origin", "https://app.example")]).await, 101);
    assert_eq!(handshake_status(&url, &[("Origin", "https://evil.example")]).await, 403);
    // No Origin header (a non-browser client, as the typed client is) is allowed; `null` never is.
    app.socket(&s, None).await;
    assert_eq!(handshake_status(&url, &[("Origin", "null")]).await, 403);
}

#[tokio::test]
async fn no_origin_is_allowed_by_default() {
    let app = spawn_app().await;
    let s = app.session();
    let url = format!("{}?access_token={}", app.ws_url(s.identity), s.token);
    assert_eq!(handshake_status(&url, &[("Origin", "https://app.example")]).await, 403);
    app.socket(&s, None).await;
}

#[tokio::test]
async fn the_wildcard_admits_any_origin_but_null_and_never_with_cookies() {
    let keys = Arc::new(TestKeys::generate());
    let app = spawn_app_with(keys, |s| s.origins.allowed_origins = vec!["*".into()]).await;
    let s = app.session();
    let url = format!("{}?access_token={}", app.ws_url(s.identity), s.token);
    assert_eq!(handshake_status(&url, &[("Origin", "https://anything.example")]).await, 101);
    assert_eq!(handshake_status(&url, &[("Origin", "null")]).await, 403);
    // Cookies are ambient credentials: a page admitted only by `*` cannot use them.
    let (status, body) = refused(
        app.upgrade_request(&app.ws_url(s.identity))
            .header("Cookie", s.cookie())
            .header("Origin", "https://anything.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["details"], json!({"Origin": "forbidden"}));
}

#[tokio::test]
async fn null_cannot_be_configured() {
    let keys = TestKeys::generate();
    let mut settings = settings(&keys);
    settings.origins.allowed_origins = vec!["null".into()];
    assert!(realtime::startup::Application::build(settings).await.is_err());
}

#[tokio::test]
async fn a_plain_get_is_400() {
    let app = spawn_app().await;
    let s = app.session();
    let response = reqwest::Client::new()
        .get(app.ws_url(s.identity).replace("ws://", "http://"))
        .header("Authorization", s.bearer())
        .send()
        .await
        .unwrap();
    let (status, body) = refused(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "bad_request");
    assert_eq!(body["details"]["Upgrade"], "invalid");
}

#[tokio::test]
async fn checks_run_in_the_contract_order() {
    let app = spawn_app().await;
    // A weak token on a malformed path of someone else, without upgrade: the ACR check wins.
    let s = app.keys.session_with(IdentityId::new_v4(), TokenOptions { acr: "0".into(), ..TokenOptions::default() });
    let response = reqwest::Client::new()
        .get(app.http_url("/box-users/nope/ws"))
        .header("Authorization", s.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(refused(response).await.1["origin"], "acr");
    // A good token: the malformed path (400) comes before the upgrade check.
    let s = app.session();
    let response = reqwest::Client::new()
        .get(app.http_url("/box-users/nope/ws"))
        .header("Authorization", s.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(refused(response).await.1["details"], json!({"id": "malformed"}));
}

#[tokio::test]
async fn revocation_lookup_without_redis_is_503() {
    let keys = Arc::new(TestKeys::generate());
    let app = spawn_app_with(keys, |s| s.redis.url = "redis://127.0.0.1:1".to_owned().into()).await;
    let s = app.session();
    let (status, body) =
        refused(app.upgrade_request(&app.ws_url(s.identity)).header("Cookie", s.cookie()).send().await.unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(body["code"], "service_unavailable");
    let (status, body) = refused(reqwest::get(app.http_url("/readyz")).await.unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!((body["code"].as_str(), body["origin"].as_str()), (Some("service_unavailable"), Some("not_defined")));
    assert!(body["desc"].is_string() && body["details"].is_object(), "{body}");
    assert_eq!(reqwest::get(app.http_url("/healthz")).await.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn cookie_bearer_and_query_tokens_are_accepted() {
    let app = spawn_app().await;
    let s = app.session();
    for headers in [vec![("Cookie", s.cookie())], vec![("Authorization", s.bearer())]] {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(app.ws_url(s.identity))
                .unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(response.status().as_u16(), 101);
        expect_ready(&mut ws, s.identity).await;
    }
    let _query = app.open(&s).await;
}

#[tokio::test]
async fn health_endpoints_answer() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    boxes_client::health::healthz(&http, &app.http_url("")).await.unwrap();
    assert!(eventually(WAIT, || app.handle.hub().is_connected()).await);
    boxes_client::health::readyz(&http, &app.http_url("")).await.unwrap();
    let (status, body) = refused(reqwest::get(app.http_url("/nowhere")).await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, _) = refused(
        reqwest::Client::new().post(app.ws_url(IdentityId::new_v4()).replace("ws://", "http://")).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 405);
}
