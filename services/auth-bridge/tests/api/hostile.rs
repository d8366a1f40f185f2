//! Hostile input over every endpoint of auth-bridge (issue 14): malformed JSON, wrong types, huge
//! numbers, control characters, invalid UTF-8, oversize bodies and headers, bad query strings,
//! over raw sockets. No answer may be a 5xx or take longer than `hostile::ANSWER_WITHIN`, and the
//! service must still log users in afterwards.

use crate::helpers::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use test_support::hostile::{attack, Target};

const LOGIN: &[&str] = &["auth_code", "app_id", "client_id", "user_reference"];

#[tokio::test]
async fn no_hostile_request_gets_a_5xx_or_hangs_or_crashes_auth_bridge() {
    let app = spawn_app().await;
    let port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    let session = app.login_ok("alice").await;
    let bearer = format!("Bearer {}", session["access_token"].as_str().unwrap());
    let hostapp = format!("Token {}", STANDARD.encode("ref-hostapp:ref-secret"));

    let anonymous = Target { port, auth: vec![("X-Anonymous", "1".to_owned())] };
    let user = Target { port, auth: vec![("Authorization", bearer), ("X-CSRF-Token", "x".to_owned())] };
    let host =
        Target { port, auth: vec![("Authorization", hostapp), ("X-Hostapp-Client-ID", "ref-hostapp".to_owned())] };
    let connect = Target {
        port,
        auth: vec![
            ("Authorization", format!("Basic {}", STANDARD.encode(format!("{APP_ID}:{CONNECT_SECRET}")))),
            ("X-Miniapp-App-ID", APP_ID.to_owned()),
            ("X-Hostapp-Client-ID", "ref-hostapp".to_owned()),
        ],
    };
    let endpoints: &[(&Target, &str, &str, &[&str])] = &[
        (&anonymous, "POST", "/auth/login", LOGIN),
        (&anonymous, "POST", "/api/v1/authorize/", LOGIN),
        (&anonymous, "POST", "/api/v1/authorize", LOGIN),
        (&anonymous, "POST", "/auth/refresh", &["refresh_token"]),
        (&anonymous, "GET", "/.well-known/jwks.json", &[]),
        (&anonymous, "GET", "/healthz", &[]),
        (&anonymous, "GET", "/readyz", &[]),
        (&anonymous, "GET", "/no/such/route", &[]),
        (&anonymous, "DELETE", "/auth/login", &[]),
        (&host, "GET", "/api/v1/accounts/consent/get_consent/", &[]),
        (&host, "GET", "/api/v1/accounts/consent/get_consent", &[]),
        (&host, "POST", "/auth/hostapp/revoke", &["client_id", "user_reference"]),
        (&user, "POST", "/auth/logout", &[]),
        (&connect, "POST", "/auth/boxo/connect", &["reference", "email", "phone", "first_name", "user_data"]),
        (&anonymous, "POST", "/auth/boxo/connect", &["reference"]),
    ];
    let mut failures = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for (target, method, path, fields) in endpoints {
        failures.extend(attack(target, method, path, fields, &[], &mut seen).await);
    }
    eprintln!("outcomes: {seen:?}");
    assert!(failures.is_empty(), "{} hostile requests failed:\n{}", failures.len(), failures.join("\n"));
    assert!(seen.keys().any(|k| k == "Status(400)"), "{seen:?}");

    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200, "healthz after the attack");
    app.login_ok("bob").await;
}
