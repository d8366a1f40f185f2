//! The reference hostapp over real HTTP: Boxo Connect endpoints, test helpers and faults (§11).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::Parser;
use reference_hostapp::config::Settings;
use reference_hostapp::startup::Application;
use serde_json::{json, Value};

struct TestApp {
    base: String,
    http: reqwest::Client,
}

async fn spawn_app_with(edit: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = Settings::try_parse_from(["reference-hostapp", "--bind-addr=127.0.0.1:0"]).unwrap();
    edit(&mut settings);
    let app = Application::build(settings).await.expect("build");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp { base, http: reqwest::Client::new() }
}

async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

fn credentials() -> String {
    format!("Token {}", STANDARD.encode("ref-hostapp:ref-secret"))
}

impl TestApp {
    async fn code_for(&self, reference: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/_test/auth-codes", self.base))
            .json(&json!({"reference": reference}))
            .send()
            .await
            .unwrap()
    }

    async fn access_token_raw(&self, auth_code: &str, authorization: &str, app_id: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/hostapp/get-access-token", self.base))
            .header("Authorization", authorization)
            .header("X-Miniapp-App-ID", app_id)
            .header("X-Hostapp-Client-ID", "ref-hostapp")
            .json(&json!({"auth_code": auth_code}))
            .send()
            .await
            .unwrap()
    }

    async fn access_token(&self, auth_code: &str) -> Value {
        let res = self.access_token_raw(auth_code, &credentials(), "boxes-miniapp").await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    async fn user_data(&self, method: reqwest::Method, token: &str) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}/hostapp/get-user-data", self.base))
            .header("Authorization", format!("Token {token}"))
            .header("X-Miniapp-App-ID", "boxes-miniapp")
            .header("X-Hostapp-Client-ID", "ref-hostapp");
        if method == reqwest::Method::POST {
            req = req.json(&json!({}));
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn healthz_answers_ok() {
    let r = spawn_app().await;
    let res = r.http.get(format!("{}/healthz", r.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"status": "ok"}));
}

#[tokio::test]
async fn one_time_code_gives_a_token_that_serves_the_fixture_by_get_and_post() {
    let r = spawn_app().await;
    let res = r.code_for("alice").await;
    assert_eq!(res.status(), 200);
    let code = res.json::<Value>().await.unwrap()["auth_code"].as_str().unwrap().to_owned();

    let tokens = r.access_token(&code).await;
    let token = tokens["access_token"].as_str().unwrap();
    assert!(!token.is_empty() && token.len() <= 1000);
    assert!(tokens["refresh_token"].is_string());

    let expected = json!({"user_data": {"reference": "alice", "email": "alice@example.com", "first_name": "Alice",
        "last_name": "Martin", "custom_attributes": {"tier": "gold"}}});
    assert_eq!(r.user_data(reqwest::Method::GET, token).await, (200, expected.clone()));
    assert_eq!(r.user_data(reqwest::Method::POST, token).await, (200, expected));

    // Single use: the same code again is refused.
    assert_eq!(r.access_token(&code).await, json!({"error_code": "INVALID_AUTH_CODE"}));
}

#[tokio::test]
async fn invalid_fixture_users_are_served_unchanged() {
    let r = spawn_app().await;
    for (reference, expected) in [
        ("nora", json!({"reference": "nora", "first_name": "Nora"})),
        ("badphone", json!({"reference": "badphone", "phone": "0612345678"})),
    ] {
        let tokens = r.access_token(&format!("code-{reference}")).await;
        let (status, body) = r.user_data(reqwest::Method::GET, tokens["access_token"].as_str().unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(body, json!({"user_data": expected}));
    }
}

#[tokio::test]
async fn unknown_reference_gives_404_and_missing_reference_400() {
    let r = spawn_app().await;
    let res = r.code_for("mallory").await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["details"]["reference"], "not_found");

    let res = r.http.post(format!("{}/_test/auth-codes", r.base)).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["details"]["reference"], "required");
}

#[tokio::test]
async fn bad_credentials_or_headers_give_http_401() {
    let r = spawn_app().await;
    let wrong = format!("Token {}", STANDARD.encode("ref-hostapp:nope"));
    let res = r.access_token_raw("code-alice", &wrong, "boxes-miniapp").await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"error_code": "UNAUTHORIZED"}));

    let res = r.access_token_raw("code-alice", &credentials(), "other-miniapp").await;
    assert_eq!(res.status(), 401);

    let basic = format!("Basic {}", STANDARD.encode("ref-hostapp:ref-secret"));
    let res = r.access_token_raw("code-alice", &basic, "boxes-miniapp").await;
    assert_eq!(res.status(), 401);

    let res = r
        .http
        .get(format!("{}/hostapp/get-user-data", r.base))
        .header("Authorization", "Token x")
        .header("X-Miniapp-App-ID", "boxes-miniapp")
        .header("X-Hostapp-Client-ID", "someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn static_codes_can_be_turned_off() {
    let on = spawn_app().await;
    assert!(on.access_token("code-bob").await["access_token"].is_string());
    assert!(on.access_token("code-bob").await["access_token"].is_string(), "static codes are reusable");
    assert_eq!(on.access_token("code-mallory").await, json!({"error_code": "INVALID_AUTH_CODE"}));

    let off = spawn_app_with(|s| s.static_codes = false).await;
    assert_eq!(off.access_token("code-bob").await, json!({"error_code": "INVALID_AUTH_CODE"}));
}

#[tokio::test]
async fn fault_injection_codes() {
    let r = spawn_app_with(|s| s.timeout_delay_ms = 400).await;

    let res = r.access_token_raw("fail-500", &credentials(), "boxes-miniapp").await;
    assert_eq!(res.status(), 500);
    assert!(serde_json::from_str::<Value>(&res.text().await.unwrap()).is_err());

    let res = r.access_token_raw("fail-malformed", &credentials(), "boxes-miniapp").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "not json");

    assert_eq!(r.access_token("fail-no-token").await, json!({}));
    assert_eq!(r.access_token("fail-error-SOMETHING_ELSE").await, json!({"error_code": "SOMETHING_ELSE"}));
    assert_eq!(r.access_token("fail-error-lower case!").await, json!({"error_code": "lower case!"}));

    let tokens = r.access_token("fail-bad-access-token").await;
    let bad = tokens["access_token"].as_str().unwrap();
    assert_eq!(r.user_data(reqwest::Method::GET, bad).await, (200, json!({"error_code": "INVALID_ACCESS_TOKEN"})));

    let started = Instant::now();
    let res = r.access_token_raw("fail-timeout", &credentials(), "boxes-miniapp").await;
    assert_eq!(res.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn users_can_come_from_a_fixture_file() {
    let path = std::env::temp_dir().join(format!("ref-users-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&path, r#"[{"reference":"dave","email":"dave@example.net"}]"#).unwrap();
    let r = spawn_app_with(|s| s.users_file = Some(path.clone())).await;
    let tokens = r.access_token("code-dave").await;
    let (_, body) = r.user_data(reqwest::Method::GET, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(body, json!({"user_data": {"reference": "dave", "email": "dave@example.net"}}));
    assert_eq!(r.code_for("alice").await.status(), 404);
    std::fs::remove_file(path).ok();
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_body() {
    let r = spawn_app().await;
    let res = r.http.get(format!("{}/nope", r.base)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "not_found");
    let res = r.http.get(format!("{}/hostapp/get-access-token", r.base)).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "method_not_allowed");
}
