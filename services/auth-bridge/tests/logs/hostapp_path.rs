//! Nothing secret reaches the logs: auth codes, hostapp tokens, refresh tokens, CSRF tokens and
//! access tokens.

use crate::capture;
use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn no_secret_reaches_the_logs() {
    let capture = capture();

    let hostapp_token = format!("hostapp-access-{}", uuid::Uuid::new_v4().simple());
    let hostapp_refresh = format!("hostapp-refresh-{}", uuid::Uuid::new_v4().simple());
    let token_answer = json_answer(json!({"access_token": hostapp_token, "refresh_token": hostapp_refresh}));
    let user_answer = json_answer(json!({"user_data": {"reference": "m1", "email": "m1@example.com"}}));
    let mock = mock_hostapp(token_answer, user_answer).await;
    let app =
        spawn_app_with(Options { extra_hostapps: mock_entry("mock-hostapp", &mock.uri()), ..Options::default() }).await;

    let mut secrets: Vec<String> = vec![hostapp_token.clone(), hostapp_refresh.clone()];

    // Login through the reference hostapp with a one-time code, then refresh by cookie and log out.
    let code = app.code_for("alice").await;
    secrets.push(code.clone());
    let res = app.login(&code).await;
    assert_eq!(res.status(), 200);
    let login: serde_json::Value = res.json().await.unwrap();
    for k in ["access_token", "refresh_token", "csrf_token"] {
        secrets.push(login[k].as_str().unwrap().to_owned());
    }
    let bridge = app.bridge();
    let (refresh, csrf) = (login["refresh_token"].as_str().unwrap(), login["csrf_token"].as_str().unwrap());
    let refreshed = bridge.refresh_with_cookie(refresh, csrf).await.unwrap();
    secrets.push(refreshed.tokens.access_token.clone());
    secrets.push(refreshed.tokens.refresh_token.clone());
    // A wrong CSRF token (sent by hand: the client sends only the one it holds) and a replayed
    // refresh token are refused and logged as refusals.
    let res = app
        .http
        .post(app.url("/auth/logout"))
        .bearer_auth(&refreshed.tokens.access_token)
        .header("X-CSRF-Token", "bad-csrf-value-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    secrets.push("bad-csrf-value-123".to_owned());
    assert_eq!(bridge.refresh(refresh).await.err().and_then(|e| e.status()), Some(401));
    bridge.logout(&refreshed.bearer()).await.unwrap();

    // Login through the mock hostapp (known hostapp tokens), and a refused code.
    let mock_code = format!("mock-code-{}", uuid::Uuid::new_v4().simple());
    secrets.push(mock_code.clone());
    let res = app.login_as("mock-hostapp", &mock_code).await;
    assert_eq!(res.status(), 200);
    let bogus = format!("bogus-code-{}", uuid::Uuid::new_v4().simple());
    secrets.push(bogus.clone());
    assert_eq!(app.login(&bogus).await.status(), 401);

    // The SDK endpoint.
    let sdk_code = app.code_for("bob").await;
    secrets.push(sdk_code.clone());
    let res = app
        .http
        .post(app.url("/api/v1/authorize/"))
        .json(&json!({"auth_code": sdk_code, "client_id": "ref-hostapp", "app_id": APP_ID}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let sdk: serde_json::Value = res.json().await.unwrap();
    secrets.push(sdk["token"].as_str().unwrap().to_owned());
    secrets.push(sdk["refresh_token"].as_str().unwrap().to_owned());

    // The secrets reached the wire, so they really were in play.
    assert!(recorded(&mock).await.iter().any(|r| r.header("Authorization") == Some(&format!("Token {hostapp_token}"))));

    let logs = capture.text();
    assert!(logs.contains("request done"), "no request lines were captured");
    assert!(logs.contains("session opened") && logs.contains("session revoked"), "{logs}");
    assert!(logs.lines().count() > 10);
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a secret of length {} reached the logs", s.len());
    }
    // The Basic-style hostapp credentials never appear either.
    assert!(!logs.contains("cmVmLWhvc3RhcHA6cmVmLXNlY3JldA"));
    assert!(!logs.contains(INTERNAL_TOKEN));
}
