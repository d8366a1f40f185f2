//! What a security review asked for: the internal API on its own listener, the origin policy,
//! control characters refused, `/readyz` failures in the §4 shape.

use boxes::startup::Application;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};
use test_support::TestKeys;

use crate::helpers::{assert_error, box_key, settings, spawn_app, INTERNAL_TOKEN};

fn upsert_body() -> Value {
    json!({"display_name": "Alice", "identifier_value": "alice@example.com", "identifier_kind": "email"})
}

#[tokio::test]
async fn the_internal_api_is_only_on_its_own_listener() {
    let app = spawn_app().await;
    let path = format!("/internal/identities/{}", uuid::Uuid::new_v4());
    // The public port does not know the path, even with the right token.
    let res =
        app.client.put(app.url(&path)).header("X-Internal-Token", INTERNAL_TOKEN).json(&upsert_body()).send().await;
    let res = res.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "not_found");
    // The internal port serves it, and nothing of the public API.
    let res = app
        .client
        .put(app.internal_url(&path))
        .header("X-Internal-Token", INTERNAL_TOKEN)
        .json(&upsert_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app.client.post(app.internal_url("/boxes")).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_ne!(app.address, app.internal_address);
}

#[tokio::test]
async fn a_short_internal_token_is_refused_at_start() {
    let database_url = test_support::fresh_database().await.unwrap();
    let keys = TestKeys::generate();
    let mut s = settings(&database_url, &keys);
    s.internal_api_token = SecretString::from("x".repeat(31));
    let err = Application::build(s).await.err().expect("a 31-byte token must be refused");
    assert!(format!("{err:#}").contains("INTERNAL_API_TOKEN"), "{err:#}");
    let mut s = settings(&database_url, &keys);
    s.internal_api_token = SecretString::from("x".repeat(32));
    assert!(Application::build(s).await.is_ok());
}

/// A page of an allowed origin can resume a file download: it may send `Range` and `If-Range`,
/// and read `ETag` and `Content-Range`.
#[tokio::test]
async fn pages_can_resume_downloads() {
    let app = spawn_app().await;
    let res = app
        .client
        .request(Method::OPTIONS, app.url(&format!("/encrypted-files/{}", uuid::Uuid::new_v4())))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "range,if-range,if-none-match")
        .send()
        .await
        .unwrap();
    let allowed = res.headers().get("access-control-allow-headers").unwrap().to_str().unwrap().to_ascii_lowercase();
    for h in ["range", "if-range", "if-none-match"] {
        assert!(allowed.contains(h), "{h} not allowed: {allowed}");
    }
    let res = app.client.get(app.url("/boxes/joined")).header("Origin", "https://app.example").send().await.unwrap();
    let exposed = res.headers().get("access-control-expose-headers").unwrap().to_str().unwrap().to_ascii_lowercase();
    for h in ["etag", "content-range", "accept-ranges", "x-request-id"] {
        assert!(exposed.contains(h), "{h} not exposed: {exposed}");
    }
}

#[tokio::test]
async fn origins_follow_the_shared_policy() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/boxes/joined"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .send()
    };
    let res = preflight("https://app.example").await.unwrap();
    let h = res.headers();
    assert_eq!(h.get("access-control-allow-origin").unwrap(), "https://app.example");
    assert_eq!(h.get("access-control-allow-credentials").unwrap(), "true");
    for origin in ["null", "https://evil.example"] {
        let res = preflight(origin).await.unwrap();
        assert!(res.headers().get("access-control-allow-origin").is_none(), "{origin} allowed");
        assert!(res.headers().get("access-control-allow-credentials").is_none(), "{origin} credentials");
    }

    // `*`: any origin but `null`, never with credentials.
    let database_url = test_support::fresh_database().await.unwrap();
    let mut s = settings(&database_url, &app.keys);
    s.origins.allowed_origins = vec!["*".into()];
    let dev = Application::build(s).await.unwrap();
    let url = format!("http://127.0.0.1:{}/boxes/joined", dev.port());
    tokio::spawn(dev.run_until_stopped());
    for (origin, allowed) in [("https://anything.example", true), ("null", false)] {
        let res =
            app.client.get(&url).header("Origin", origin).header("Authorization", "Bearer x").send().await.unwrap();
        let h = res.headers();
        assert_eq!(h.get("access-control-allow-origin").is_some(), allowed, "{origin}");
        assert!(h.get("access-control-allow-credentials").is_none(), "{origin}");
    }

    // The default is no origin at all; `null` cannot even be configured.
    let mut s = settings(&database_url, &app.keys);
    s.origins.allowed_origins = vec!["https://app.example".into(), "null".into()];
    assert!(Application::build(s).await.is_err());
}

#[tokio::test]
async fn control_characters_are_refused_with_400() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    for title in ["a\u{0}b", "line\nbreak", "bell\u{7}", "c1\u{85}"] {
        let res = app.post(&alice, "/boxes", json!({"title": title, "public_key": box_key("t")})).await;
        assert_error(res, 400, "title", "invalid").await;
    }
    let box_id = crate::helpers::seed_box(&app, &alice, &[]).await;
    let rule =
        json!({"type": "access.add", "content": {"restriction_type": "identifier", "value": "a\u{0}@example.com"}});
    let res = app.post(&alice, &format!("/boxes/{box_id}/events"), rule).await;
    assert_error(res, 400, "content.value", "invalid").await;
    let res = app
        .client
        .put(app.internal_url(&format!("/internal/identities/{}", uuid::Uuid::new_v4())))
        .header("X-Internal-Token", INTERNAL_TOKEN)
        .json(
            &json!({"display_name": "Al\u{0}ice", "identifier_value": "alice@example.com", "identifier_kind": "email"}),
        )
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "display_name", "invalid").await;
}

#[tokio::test]
async fn readyz_failures_answer_the_error_shape() {
    let app = spawn_app().await;
    let name = app.database_url.rsplit('/').next().unwrap().to_owned();
    let (admin, conn) =
        tokio_postgres::connect(&test_support::admin_database_url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
    let err = boxes_client::Boxes::new(app.client.clone(), &app.address).readyz().await.unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    let body = err.body().unwrap_or_else(|| panic!("the §4 body: {err}"));
    assert_eq!(
        (body.code, body.origin),
        (domain::ErrorCode::ServiceUnavailable, domain::Origin::NotDefined),
        "{body:?}"
    );
    assert!(body.desc.contains("postgres"), "{body:?}");
}
