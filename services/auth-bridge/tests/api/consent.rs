//! The Boxo consent endpoint (§10.6).

use crate::helpers::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use boxes_client::Consent;
use domain::ErrorCode;
use serde_json::Value;

fn creds(id: &str, secret: &str) -> String {
    format!("Token {}", STANDARD.encode(format!("{id}:{secret}")))
}

async fn ask(
    app: &TestApp,
    path: &str,
    query: &str,
    authorization: Option<&str>,
    client_header: Option<&str>,
) -> reqwest::Response {
    let mut req = app.http.get(app.url(&format!("{path}?{query}")));
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    if let Some(c) = client_header {
        req = req.header("X-Hostapp-Client-ID", c);
    }
    req.send().await.unwrap()
}

const PATH: &str = "/api/v1/accounts/consent/get_consent/";
const QUERY: &str = "client_id=ref-hostapp&app_id=boxes-miniapp&user_reference=alice";

#[tokio::test]
async fn consent_before_and_after_a_login() {
    let app = spawn_app().await;
    let good = creds("ref-hostapp", "ref-secret");
    let (bridge, host) = (app.bridge(), host_app("ref-hostapp", "ref-secret"));

    let consent = bridge.consent(&host, "ref-hostapp", APP_ID, "alice").await.unwrap();
    assert_eq!(
        consent,
        Consent {
            client_id: "ref-hostapp".into(),
            app_id: "boxes-miniapp".into(),
            user_reference: "alice".into(),
            consent: false,
            consented_at: None
        }
    );

    app.login_ok("alice").await;
    // Raw, for both paths and the exact form of the time.
    for path in [PATH, PATH.trim_end_matches('/')] {
        let res = ask(&app, path, QUERY, Some(&good), Some("ref-hostapp")).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["consent"], true);
        let at = body["consented_at"].as_str().unwrap();
        // RFC 3339, UTC, microseconds: 2024-05-02T09:14:03.512345Z
        assert_eq!(at.len(), 27, "{at}");
        assert!(at.ends_with('Z') && at.as_bytes()[19] == b'.', "{at}");
    }

    // Another miniapp or another user: no consent.
    assert!(!bridge.consent(&host, "ref-hostapp", "other", "alice").await.unwrap().consent);
    assert!(!bridge.consent(&host, "ref-hostapp", APP_ID, "bob").await.unwrap().consent);
}

#[tokio::test]
async fn consent_authentication_and_parameters() {
    let app = spawn_app().await;
    let good = creds("ref-hostapp", "ref-secret");

    let body = assert_error(
        ask(&app, PATH, QUERY, None, Some("ref-hostapp")).await,
        401,
        "unauthorized",
        &[("Authorization", "required")],
    )
    .await;
    assert_eq!(body["origin"], "headers");
    let bridge = app.bridge();
    let wrong = host_app("ref-hostapp", "nope");
    let res = bridge.consent(&wrong, "ref-hostapp", APP_ID, "alice").await;
    assert_refused(res, 401, ErrorCode::Unauthorized, &[("Authorization", "invalid")]);
    let basic = format!("Basic {}", STANDARD.encode("ref-hostapp:ref-secret"));
    assert_error(ask(&app, PATH, QUERY, Some(&basic), Some("ref-hostapp")).await, 401, "unauthorized", &[]).await;
    assert_error(
        ask(&app, PATH, QUERY, Some(&good), None).await,
        401,
        "unauthorized",
        &[("X-Hostapp-Client-ID", "required")],
    )
    .await;
    assert_error(
        ask(&app, PATH, QUERY, Some(&good), Some("other-hostapp")).await,
        401,
        "unauthorized",
        &[("X-Hostapp-Client-ID", "invalid")],
    )
    .await;

    // Valid credentials of another hostapp.
    let other = host_app("other-hostapp", OTHER_SECRET);
    let res = bridge.consent(&other, "ref-hostapp", APP_ID, "alice").await;
    let body = assert_refused(res, 403, ErrorCode::Forbidden, &[("client_id", "forbidden")]);
    assert_eq!(body.origin, domain::Origin::Query);

    let body = assert_error(
        ask(&app, PATH, "client_id=ref-hostapp", Some(&good), Some("ref-hostapp")).await,
        400,
        "bad_request",
        &[("app_id", "required"), ("user_reference", "required")],
    )
    .await;
    assert_eq!(body["origin"], "query");
    let body = assert_error(
        ask(&app, PATH, "app_id=boxes-miniapp&user_reference=&client_id=", Some(&good), Some("ref-hostapp")).await,
        400,
        "bad_request",
        &[("client_id", "required"), ("user_reference", "required")],
    )
    .await;
    assert_eq!(body["origin"], "query");
    let res = app.http.post(app.url(PATH)).send().await.unwrap();
    assert_error(res, 405, "method_not_allowed", &[]).await;
}
