//! The hostapp failure table (§10.4), row by row, against the reference hostapp's fault codes
//! and mock hostapps, plus the internal API being down.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::*;
use serde_json::{json, Value};
use wiremock::ResponseTemplate;

const STEP_TOKEN: (&str, &str) = ("hostapp_step", "get_access_token");
const STEP_USER: (&str, &str) = ("hostapp_step", "get_user_data");

#[tokio::test]
async fn reference_hostapp_fault_codes() {
    let app = spawn_app().await;

    let body = assert_error(
        app.login("no-such-code").await,
        401,
        "unauthorized",
        &[("auth_code", "invalid"), ("hostapp_error", "INVALID_AUTH_CODE"), STEP_TOKEN],
    )
    .await;
    assert_eq!(body["origin"], "body");

    // A one-time code works once; the second use is the hostapp's INVALID_AUTH_CODE.
    let code = app.code_for("alice").await;
    assert_eq!(app.login(&code).await.status(), 200);
    assert_error(app.login(&code).await, 401, "unauthorized", &[("hostapp_error", "INVALID_AUTH_CODE")]).await;

    let body = assert_error(
        app.login("fail-error-SOMETHING_ELSE").await,
        502,
        "bad_gateway",
        &[("hostapp_error", "SOMETHING_ELSE"), STEP_TOKEN],
    )
    .await;
    assert_eq!(body["origin"], "not_defined");
    assert_error(app.login("fail-error-lower_case").await, 502, "bad_gateway", &[("hostapp_error", "UNKNOWN")]).await;
    assert_error(app.login("fail-error-BAD<script>").await, 502, "bad_gateway", &[("hostapp_error", "UNKNOWN")]).await;
    assert_error(
        app.login(&format!("fail-error-{}", "A".repeat(65))).await,
        502,
        "bad_gateway",
        &[("hostapp_error", "UNKNOWN")],
    )
    .await;
    assert_error(app.login("fail-no-token").await, 502, "bad_gateway", &[("hostapp", "malformed"), STEP_TOKEN]).await;
    assert_error(app.login("fail-malformed").await, 502, "bad_gateway", &[("hostapp", "malformed"), STEP_TOKEN]).await;
    assert_error(app.login("fail-500").await, 502, "bad_gateway", &[("hostapp", "http_500"), STEP_TOKEN]).await;
    assert_error(
        app.login("fail-bad-access-token").await,
        502,
        "bad_gateway",
        &[("hostapp_error", "INVALID_ACCESS_TOKEN"), STEP_USER],
    )
    .await;

    // Credentials the hostapp does not accept: it answers HTTP 401.
    assert_error(
        app.login_as("other-hostapp", "code-alice").await,
        502,
        "bad_gateway",
        &[("hostapp", "http_401"), STEP_TOKEN],
    )
    .await;

    assert_eq!(app.session_count().await, 1);
    assert_eq!(app.upserts().await.len(), 1);
}

#[tokio::test]
async fn invalid_user_data_is_refused() {
    let app = spawn_app().await;
    let body = assert_error(
        app.login("code-nora").await,
        502,
        "bad_gateway",
        &[("hostapp_error", "INVALID_USER_DATA"), ("user_data.email", "required"), STEP_USER],
    )
    .await;
    assert_eq!(body["origin"], "not_defined");
    assert_error(
        app.login(&app.code_for("badphone").await).await,
        502,
        "bad_gateway",
        &[("hostapp_error", "INVALID_USER_DATA"), ("user_data.phone", "malformed")],
    )
    .await;
    assert_eq!(app.session_count().await, 0);
    assert!(app.upserts().await.is_empty());
    let links: i64 = app.db().await.query_one("SELECT count(*) FROM auth.hostapp_users", &[]).await.unwrap().get(0);
    assert_eq!(links, 0);
}

#[tokio::test]
async fn a_slow_hostapp_times_out_with_its_own_limit() {
    let app = spawn_app_with(Options { ref_timeout_ms: 700, ref_delay_ms: 10_000, ..Options::default() }).await;
    let started = Instant::now();
    let res = app.login("fail-timeout").await;
    let elapsed = started.elapsed();
    assert_error(res, 504, "gateway_timeout", &[("hostapp", "timed_out"), STEP_TOKEN]).await;
    assert!(elapsed >= Duration::from_millis(650) && elapsed < Duration::from_secs(5), "{elapsed:?}");
}

/// The app, with the hostapp `mock-hostapp` served at `base`.
async fn spawn_with_mock(base: &str) -> TestApp {
    spawn_app_with(Options { extra_hostapps: mock_entry("mock-hostapp", base), ..Options::default() }).await
}

fn good_user() -> ResponseTemplate {
    json_answer(json!({"user_data": {"reference": "m1", "email": "M1@Example.com"}}))
}

#[tokio::test]
async fn mock_hostapp_happy_path_sends_the_seed_headers() {
    let mock =
        mock_hostapp(json_answer(json!({"access_token": "hostapp-token-1", "refresh_token": "r"})), good_user()).await;
    let app = spawn_with_mock(&mock.uri()).await;
    let res = app.login_as("mock-hostapp", "some-code").await;
    assert_eq!(res.status(), 200);
    let reqs = recorded(&mock).await;
    assert_eq!(reqs.len(), 2);
    let (t, u) = (&reqs[0], &reqs[1]);
    assert_eq!((t.method.as_str(), t.path.as_str()), ("POST", "/token"));
    // base64("mock-hostapp:mock-secret"), standard alphabet, padded.
    assert_eq!(t.header("Authorization"), Some("Token bW9jay1ob3N0YXBwOm1vY2stc2VjcmV0"));
    assert_eq!(t.header("X-Miniapp-App-ID"), Some(APP_ID));
    assert_eq!(t.header("X-Hostapp-Client-ID"), Some("mock-hostapp"));
    assert!(t.header("Content-Type").is_some_and(|c| c.starts_with("application/json")));
    assert_eq!(t.json(), json!({"auth_code": "some-code"}));
    assert_eq!((u.method.as_str(), u.path.as_str()), ("GET", "/user"));
    assert_eq!(u.header("Authorization"), Some("Token hostapp-token-1"));
    assert_eq!(u.header("X-Miniapp-App-ID"), Some(APP_ID));
    assert_eq!(u.header("X-Hostapp-Client-ID"), Some("mock-hostapp"));
    assert_eq!(app.upserts().await[0].json()["identifier_value"], "m1@example.com");
    assert_eq!(app.upserts().await[0].json()["display_name"], "Anonymous");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let redirect = ResponseTemplate::new(302).insert_header("Location", "/token-again");
    let mock = mock_hostapp(redirect, good_user()).await;
    let app = spawn_with_mock(&mock.uri()).await;
    assert_error(app.login_as("mock-hostapp", "c").await, 502, "bad_gateway", &[("hostapp", "http_302"), STEP_TOKEN])
        .await;
    assert_eq!(recorded(&mock).await.len(), 1, "the redirect must not be followed, and nothing is retried");
}

#[tokio::test]
async fn oversized_bodies_are_malformed() {
    // No Content-Length: the body streams until the connection closes, so the cap applies while reading.
    let mut streamed = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".to_vec();
    let padding = "x".repeat(70 * 1024);
    streamed.extend_from_slice(json!({"access_token": "t", "padding": padding}).to_string().as_bytes());
    // Below HTTP's framing, so a raw server.
    let user = json_response(&json!({"user_data": {"reference": "m1", "email": "M1@Example.com"}}));
    let raw =
        RawServer::start(move |r| if r.path.starts_with("/token") { streamed.clone() } else { user.clone() }).await;
    let app = spawn_with_mock(&raw.base).await;
    assert_error(app.login_as("mock-hostapp", "c").await, 502, "bad_gateway", &[("hostapp", "malformed"), STEP_TOKEN])
        .await;

    let declared = json_answer(json!({"access_token": "t", "padding": "y".repeat(65 * 1024)}));
    let mock = mock_hostapp(declared, good_user()).await;
    let app = spawn_with_mock(&mock.uri()).await;
    assert_error(app.login_as("mock-hostapp", "c").await, 502, "bad_gateway", &[("hostapp", "malformed")]).await;

    let big_user = json_answer(
        json!({"user_data": {"reference": "m", "email": "a@b.c", "custom_attributes": {"p": "z".repeat(65 * 1024)}}}),
    );
    let mock = mock_hostapp(json_answer(json!({"access_token": "t"})), big_user).await;
    let app = spawn_with_mock(&mock.uri()).await;
    assert_error(app.login_as("mock-hostapp", "c").await, 502, "bad_gateway", &[("hostapp", "malformed"), STEP_USER])
        .await;
}

#[tokio::test]
async fn bad_token_answers() {
    for (answer, expected) in [
        (json!([1, 2, 3]), ("hostapp", "malformed")),
        (json!("a string"), ("hostapp", "malformed")),
        (json!({"access_token": "t".repeat(1001)}), ("hostapp", "malformed")),
        (json!({"access_token": ""}), ("hostapp", "malformed")),
        (json!({"access_token": 12}), ("hostapp", "malformed")),
        (json!({"error_code": "", "refresh_token": "r"}), ("hostapp", "malformed")),
        (json!({"error_code": "invalid_auth_code"}), ("hostapp_error", "UNKNOWN")),
        (json!({"error_code": "RATE_LIMITED", "access_token": "t"}), ("hostapp_error", "RATE_LIMITED")),
    ] {
        let mock = mock_hostapp(json_answer(answer.clone()), good_user()).await;
        let app = spawn_with_mock(&mock.uri()).await;
        let res = app.login_as("mock-hostapp", "c").await;
        assert_error(res, 502, "bad_gateway", &[expected, STEP_TOKEN]).await;
        assert_eq!(recorded(&mock).await.len(), 1, "{answer}");
    }
}

#[tokio::test]
async fn token_edge_cases_that_succeed() {
    // An empty error_code counts as absent; a 1000-character token is accepted.
    let mock =
        mock_hostapp(json_answer(json!({"error_code": "", "access_token": "t".repeat(1000)})), good_user()).await;
    let app = spawn_with_mock(&mock.uri()).await;
    assert_eq!(app.login_as("mock-hostapp", "c").await.status(), 200);
}

#[tokio::test]
async fn bad_user_data_answers() {
    for (answer, expected) in [
        (json!({}), ("user_data", "required")),
        (json!({"user_data": null}), ("user_data", "required")),
        (json!({"user_data": "encrypted-blob"}), ("user_data", "invalid")),
        (json!({"user_data": {"reference": "r".repeat(101), "email": "a@b.c"}}), ("user_data.reference", "invalid")),
        (json!({"user_data": {"email": "a@b.c"}}), ("user_data.reference", "required")),
        (json!({"user_data": {"reference": "x", "email": "not-an-email"}}), ("user_data.email", "malformed")),
    ] {
        let mock = mock_hostapp(json_answer(json!({"access_token": "t"})), json_answer(answer)).await;
        let app = spawn_with_mock(&mock.uri()).await;
        let res = app.login_as("mock-hostapp", "c").await;
        assert_error(res, 502, "bad_gateway", &[("hostapp_error", "INVALID_USER_DATA"), expected, STEP_USER]).await;
    }
    let mock =
        mock_hostapp(json_answer(json!({"access_token": "t"})), json_answer(json!({"error_code": "odd code"}))).await;
    let app = spawn_with_mock(&mock.uri()).await;
    assert_error(
        app.login_as("mock-hostapp", "c").await,
        502,
        "bad_gateway",
        &[("hostapp_error", "UNKNOWN"), STEP_USER],
    )
    .await;

    let not_found = ResponseTemplate::new(404).set_body_raw("<h1>no</h1>", "text/html");
    let mock = mock_hostapp(json_answer(json!({"access_token": "t"})), not_found).await;
    let app = spawn_with_mock(&mock.uri()).await;
    assert_error(app.login_as("mock-hostapp", "c").await, 502, "bad_gateway", &[("hostapp", "http_404"), STEP_USER])
        .await;
}

#[tokio::test]
async fn an_unreachable_hostapp() {
    let port = closed_port().await;
    let entry = hostapp_entry(
        "gone-hostapp",
        "s",
        &format!("http://127.0.0.1:{port}/t"),
        &format!("http://127.0.0.1:{port}/u"),
        "GET",
        2000,
    );
    let app = spawn_app_with(Options { extra_hostapps: entry, ..Options::default() }).await;
    assert_error(
        app.login_as("gone-hostapp", "c").await,
        502,
        "bad_gateway",
        &[("hostapp", "unreachable"), STEP_TOKEN],
    )
    .await;
}

#[tokio::test]
async fn internal_api_failure_gives_503_and_no_session() {
    for mode in [Internal::Fail500, Internal::Unreachable] {
        let app = spawn_app_with(Options { internal: mode, ..Options::default() }).await;
        let res = app.login("code-alice").await;
        assert!(res.headers().get("set-cookie").is_none());
        let body: Value = assert_error(res, 503, "service_unavailable", &[]).await;
        assert_eq!(body["details"], json!({}));
        assert_eq!(app.session_count().await, 0, "{mode:?}");
        let consents: i64 = app.db().await.query_one("SELECT count(*) FROM auth.consents", &[]).await.unwrap().get(0);
        assert_eq!(consents, 0);
    }
}

/// A hostapp that keeps connections alive, answers the first get-access-token and every
/// get-user-data, and closes the connection on any later get-access-token after reading it,
/// without answering (a raw server, for the dropped connection). Each recorded request carries
/// the number of its connection.
async fn hostapp_dying_on_the_second_code() -> (RawServer, Arc<Mutex<Vec<usize>>>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(Mutex::new(Vec::new()));
    let (recorded, conns) = (requests.clone(), connections.clone());
    tokio::spawn(async move {
        for conn in 0.. {
            let Ok((mut socket, _)) = listener.accept().await else { break };
            let (recorded, conns) = (recorded.clone(), conns.clone());
            tokio::spawn(async move {
                while let Some(req) = read_request(&mut socket).await {
                    let tokens_before =
                        recorded.lock().unwrap().iter().filter(|r: &&Recorded| r.path == "/token").count();
                    let is_token = req.path == "/token";
                    recorded.lock().unwrap().push(req);
                    conns.lock().unwrap().push(conn);
                    if is_token && tokens_before > 0 {
                        return; // dropped: the connection closes with the request unanswered
                    }
                    let body = if is_token {
                        json!({"access_token": "t"})
                    } else {
                        json!({"user_data": {"reference": "k1", "email": "k1@example.com"}})
                    };
                    let body = body.to_string();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    if socket.write_all(format!("{head}{body}").as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (RawServer { base, requests }, connections)
}

#[tokio::test]
async fn a_get_access_token_lost_on_a_pooled_connection_is_not_sent_again() {
    let (mock, connections) = hostapp_dying_on_the_second_code().await;
    let app = spawn_with_mock(&mock.base).await;
    assert_eq!(app.login_as("mock-hostapp", "code-1").await.status(), 200);
    assert_error(
        app.login_as("mock-hostapp", "code-2").await,
        502,
        "bad_gateway",
        &[("hostapp", "unreachable"), STEP_TOKEN],
    )
    .await;

    let paths: Vec<String> = mock.recorded().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/token", "/user", "/token"], "the second code reached the hostapp once");
    assert_eq!(mock.recorded()[2].json(), json!({"auth_code": "code-2"}));
    // All three went over one kept-alive connection, so the lost call was on a reused one.
    assert_eq!(*connections.lock().unwrap(), [0, 0, 0]);
    assert_eq!(app.session_count().await, 1);
}
