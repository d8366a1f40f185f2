//! Rate limits (issue 14, README "Rate limits"): login and authorize per client address and per
//! host app, refresh per session, consent and revoke per host app; 429 with `Retry-After` and
//! the §4 body; shared by several instances through Redis; closed while Redis is down.
//!
//! Each test names host apps and client addresses of its own, so the budgets it spends in the
//! shared Redis are its alone.

use std::time::{Duration, Instant};

use crate::helpers::*;
use auth_bridge::config::RateSettings;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use web_kit::ratelimit::Quota;

fn per_minute(n: u32) -> Quota {
    Quota::per(n, 60)
}

/// A host app of this test alone, whose endpoints are a closed port (its logins fail quickly
/// with 502, after the limits were charged).
async fn lone_hostapp() -> (String, String) {
    let id = format!("rl-{}", uuid::Uuid::new_v4().simple());
    let dead = format!("http://127.0.0.1:{}", closed_port().await);
    let entry = hostapp_entry(&id, "lone-secret", &format!("{dead}/token"), &format!("{dead}/user"), "GET", 1000);
    (id, entry)
}

fn creds(id: &str, secret: &str) -> String {
    format!("Token {}", STANDARD.encode(format!("{id}:{secret}")))
}

async fn login_from(app: &TestApp, address: &str, client_id: &str, code: &str) -> reqwest::Response {
    app.http
        .post(app.url("/auth/login"))
        .header("X-Forwarded-For", address)
        .json(&json!({"auth_code": code, "app_id": APP_ID, "client_id": client_id}))
        .send()
        .await
        .unwrap()
}

/// 429, `Retry-After` in whole seconds within `max`, and the §4 body naming the limit.
async fn assert_limited(res: reqwest::Response, limit: &str, max: u64) {
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=max).contains(&retry), "Retry-After {retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": "too_many_requests", "origin": "not_defined", "desc": body["desc"], "details": {"limit": limit}})
    );
    assert!(body["desc"].is_string());
}

#[tokio::test]
async fn login_and_authorize_share_a_budget_per_client_address() {
    let rates = RateSettings { login_per_address: per_minute(3), trusted_proxy_hops: 1, ..RateSettings::default() };
    let app = spawn_app_with(Options { rates, ..Options::default() }).await;
    let (me, other) = (random_address(), random_address());

    for reference in ["alice", "bob"] {
        let code = app.code_for(reference).await;
        assert_eq!(login_from(&app, &me, "ref-hostapp", &code).await.status(), 200);
    }
    // A failed login pays too: guessing codes is what the limit is for.
    assert_eq!(login_from(&app, &me, "ref-hostapp", "guessed").await.status(), 401);

    let code = app.code_for("carol").await;
    assert_limited(login_from(&app, &me, "ref-hostapp", &code).await, "login_per_address", 60).await;
    let res = app
        .http
        .post(app.url("/api/v1/authorize/"))
        .header("X-Forwarded-For", &me)
        .json(&json!({"auth_code": code, "app_id": APP_ID, "client_id": "ref-hostapp"}))
        .send()
        .await
        .unwrap();
    assert_limited(res, "login_per_address", 60).await;

    // The refused attempts never reached the host app: the one-time code still works, from
    // another address.
    assert_eq!(login_from(&app, &other, "ref-hostapp", &code).await.status(), 200);
}

#[tokio::test]
async fn logins_are_limited_per_host_app_whatever_the_address() {
    let (lone, entry) = lone_hostapp().await;
    let rates = RateSettings { login_per_hostapp: per_minute(2), trusted_proxy_hops: 1, ..RateSettings::default() };
    let app = spawn_app_with(Options { rates, extra_hostapps: entry, ..Options::default() }).await;

    for _ in 0..2 {
        assert_eq!(login_from(&app, &random_address(), &lone, "c").await.status(), 502);
    }
    assert_limited(login_from(&app, &random_address(), &lone, "c").await, "login_per_hostapp", 60).await;
    // Another host app has its own budget.
    let code = app.code_for("alice").await;
    assert_eq!(login_from(&app, &random_address(), "ref-hostapp", &code).await.status(), 200);
}

#[tokio::test]
async fn two_instances_share_one_budget() {
    let rates = RateSettings { login_per_address: per_minute(3), trusted_proxy_hops: 1, ..RateSettings::default() };
    let first = spawn_app_with(Options { rates, ..Options::default() }).await;
    let second = {
        let app = auth_bridge::startup::Application::build(first.settings.clone()).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        base
    };
    let me = random_address();
    for (i, base) in [&first.base, &second, &first.base].into_iter().enumerate() {
        let res = first
            .http
            .post(format!("{base}/auth/login"))
            .header("X-Forwarded-For", &me)
            .json(&json!({"auth_code": format!("bad-{i}"), "app_id": APP_ID, "client_id": "ref-hostapp"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let res = first
        .http
        .post(format!("{second}/auth/login"))
        .header("X-Forwarded-For", &me)
        .json(&json!({"auth_code": "bad", "app_id": APP_ID, "client_id": "ref-hostapp"}))
        .send()
        .await
        .unwrap();
    assert_limited(res, "login_per_address", 60).await;
}

#[tokio::test]
async fn refresh_is_limited_per_session() {
    let rates = RateSettings { refresh_per_session: per_minute(2), trusted_proxy_hops: 1, ..RateSettings::default() };
    let app = spawn_app_with(Options { rates, ..Options::default() }).await;
    let refresh = |token: Value| app.http.post(app.url("/auth/refresh")).json(&json!({"refresh_token": token})).send();

    let mut token = app.login_ok("alice").await["refresh_token"].clone();
    for _ in 0..2 {
        let res = refresh(token.clone()).await.unwrap();
        assert_eq!(res.status(), 200);
        token = res.json::<Value>().await.unwrap()["refresh_token"].clone();
    }
    assert_limited(refresh(token.clone()).await.unwrap(), "refresh_per_session", 60).await;

    // The refused refresh rotated nothing: once the budget has room, the same token works.
    // Another session is not concerned.
    let other = app.login_ok("bob").await;
    assert_eq!(refresh(other["refresh_token"].clone()).await.unwrap().status(), 200);
    let rates = RateSettings { refresh_per_session: Quota::OFF, ..app.settings.rates.clone() };
    let unlimited = {
        let mut s = app.settings.clone();
        s.rates = rates;
        let a = auth_bridge::startup::Application::build(s).await.unwrap();
        let base = format!("http://127.0.0.1:{}", a.port());
        tokio::spawn(a.run_until_stopped());
        base
    };
    let res = app.http.post(format!("{unlimited}/auth/refresh")).json(&json!({"refresh_token": token})).send().await;
    assert_eq!(res.unwrap().status(), 200, "the refused refresh left the token valid");
}

#[tokio::test]
async fn consent_and_revoke_are_limited_per_host_app() {
    let (lone, entry) = lone_hostapp().await;
    let rates = RateSettings {
        consent_per_hostapp: per_minute(2),
        revoke_per_hostapp: per_minute(1),
        trusted_proxy_hops: 1,
        ..RateSettings::default()
    };
    let app = spawn_app_with(Options { rates, extra_hostapps: entry, ..Options::default() }).await;
    let auth = creds(&lone, "lone-secret");
    let (bridge, host) = (app.bridge(), host_app(&lone, "lone-secret"));
    // Raw, for the answers that are limited: `Retry-After`.
    let consent = || {
        app.http
            .get(app.url(&format!(
                "/api/v1/accounts/consent/get_consent/?client_id={lone}&app_id={APP_ID}&user_reference=u"
            )))
            .header("Authorization", &auth)
            .header("X-Hostapp-Client-ID", &lone)
            .send()
    };
    let revoke = || {
        app.http
            .post(app.url("/auth/hostapp/revoke"))
            .header("Authorization", &auth)
            .header("X-Hostapp-Client-ID", &lone)
            .json(&json!({"client_id": lone, "user_reference": "u"}))
            .send()
    };
    for _ in 0..2 {
        bridge.consent(&host, &lone, APP_ID, "u").await.unwrap();
    }
    assert_limited(consent().await.unwrap(), "consent_per_hostapp", 60).await;
    bridge.revoke_user(&host, &lone, "u").await.unwrap();
    assert_limited(revoke().await.unwrap(), "revoke_per_hostapp", 60).await;

    // Bad credentials are refused before any budget is spent, so nobody can use up a host
    // app's budget without its secret.
    let res = bridge.revoke_user(&host_app(&lone, "wrong"), &lone, "u").await;
    assert_eq!(res.unwrap_err().status(), Some(401));
}

#[tokio::test]
async fn the_default_limits_let_a_burst_of_logins_through() {
    let app = spawn_app().await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let http = app.http.clone();
        let url = app.url("/auth/login");
        tasks.push(tokio::spawn(async move {
            let body = json!({"auth_code": format!("bad-{i}"), "app_id": APP_ID, "client_id": "ref-hostapp"});
            http.post(url).json(&body).send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn limits_fail_closed_while_redis_is_down() {
    let mut redis = test_support::PrivateRedis::start(17013).await;
    let app = spawn_app_with(Options { redis_url: Some(redis.url()), ..Options::default() }).await;
    let code = app.code_for("alice").await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let res = app.login(&code).await;
    assert_eq!(res.status(), 503);
    assert!(started.elapsed() < Duration::from_millis(2500), "answered in {:?}", started.elapsed());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "service_unavailable");
    redis.restart().await;
}
