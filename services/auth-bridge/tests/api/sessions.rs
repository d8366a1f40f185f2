//! Refresh rotation and logout (§10.5).

use crate::helpers::*;
use domain::auth::Verifier;
use domain::ErrorCode::{Forbidden, Unauthorized};
use redis::AsyncCommands;
use serde_json::{json, Value};

async fn refresh_body(app: &TestApp, refresh: &str) -> reqwest::Response {
    app.http.post(app.url("/auth/refresh")).json(&json!({"refresh_token": refresh})).send().await.unwrap()
}

/// The session is revoked in PostgreSQL and its refresh token no longer works.
async fn assert_revoked(app: &TestApp, sid: domain::SessionId, refresh_token: &str) {
    let revoked: bool = app
        .db()
        .await
        .query_one("SELECT revoked_at IS NOT NULL FROM auth.sessions WHERE sid = $1", &[sid.as_uuid()])
        .await
        .unwrap()
        .get(0);
    assert!(revoked, "session {sid} revoked in PostgreSQL");
    assert_refused(app.bridge().refresh(refresh_token).await, 401, Unauthorized, &[]);
}

#[tokio::test]
async fn refresh_rotates_the_token() {
    let app = spawn_app().await;
    let login = app.login_ok("alice").await;
    let old = login["refresh_token"].as_str().unwrap();

    let res = refresh_body(&app, old).await;
    assert_eq!(res.status(), 200);
    let cookies = set_cookies(&res);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["identity_id"], login["identity_id"]);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["csrf_token"].is_null());
    assert!(body.as_object().unwrap().contains_key("csrf_token"));
    let new = body["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(cookie_value(cookie(&cookies, "refreshtoken")), new);
    assert_eq!(cookie_value(cookie(&cookies, "accesstoken")), body["access_token"].as_str().unwrap());
    assert_eq!(cookie_value(cookie(&cookies, "tokentype")), "bearer");

    // Same session, same CSRF binding, fresh token.
    let verifier = Verifier::from_public_pems(&[app.keys.public_pem.as_str()], test_support::ISSUER).unwrap();
    let before = verifier.verify(login["access_token"].as_str().unwrap()).unwrap();
    let after = verifier.verify(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!((after.sid, after.sub, &after.csh), (before.sid, before.sub, &before.csh));
    assert_ne!(after.jti, before.jti);

    // The new token works once (a second use is a reuse, see below).
    app.bridge().refresh(new).await.unwrap();
    assert_refused(app.bridge().refresh(new).await, 401, Unauthorized, &[("refresh_token", "invalid")]);

    assert_refused(app.bridge().refresh("never-issued").await, 401, Unauthorized, &[]);
    // Raw: no body at all.
    let res = app.http.post(app.url("/auth/refresh")).send().await.unwrap();
    assert_error(res, 401, "unauthorized", &[("refresh_token", "required")]).await;
}

#[tokio::test]
async fn token_answers_are_never_cached() {
    let app = spawn_app().await;
    let code = app.code_for("alice").await;
    let res = app.login(&code).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
    let login: Value = res.json().await.unwrap();
    let res = refresh_body(&app, login["refresh_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
    assert_eq!(res.headers().get("pragma").unwrap(), "no-cache");
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_session() {
    let app = spawn_app().await;
    let login = app.login_ok("alice").await;
    let identity = login["identity_id"].as_str().unwrap();
    let claims = Verifier::from_public_pems(&[app.keys.public_pem.as_str()], test_support::ISSUER)
        .unwrap()
        .verify(login["access_token"].as_str().unwrap())
        .unwrap();
    let stolen = login["refresh_token"].as_str().unwrap();
    // The legitimate client rotates; then the copied, rotated token comes back.
    let current = app.bridge().refresh(stolen).await.unwrap();
    let mut sub = test_support::Subscriber::new(&[format!("user_{identity}:ws")]).await.unwrap();
    assert_refused(app.bridge().refresh(stolen).await, 401, Unauthorized, &[("refresh_token", "invalid")]);

    // The whole session is gone: PostgreSQL, the Redis marker, the realtime message, and the
    // refresh token the legitimate client holds.
    let (channel, payload) = sub.next_json(WAIT).await.expect("session.revoked published");
    assert_eq!(channel, format!("user_{identity}:ws"));
    assert_eq!(payload, json!({"type": "session.revoked", "object": {"sid": claims.sid.to_string()}}));
    let mut redis = test_support::redis_conn().await;
    assert!(redis.exists::<_, bool>(format!("auth:revoked_sid:{}", claims.sid)).await.unwrap());
    assert_revoked(&app, claims.sid, &current.tokens.refresh_token).await;
    // Other sessions of the same user are not concerned.
    let other = app.login_ok("alice").await;
    app.bridge().refresh(other["refresh_token"].as_str().unwrap()).await.unwrap();
}

#[tokio::test]
async fn refreshing_never_extends_the_absolute_session_lifetime() {
    let app = spawn_app_with(Options { session_max_age: 3, ..Options::default() }).await;
    let login = app.login_ok("alice").await;
    let sid = Verifier::from_public_pems(&[app.keys.public_pem.as_str()], test_support::ISSUER)
        .unwrap()
        .verify(login["access_token"].as_str().unwrap())
        .unwrap()
        .sid;
    let limits = || async {
        let row = app
            .db()
            .await
            .query_one(
                "SELECT extract(epoch FROM expires_at)::float8, extract(epoch FROM max_expires_at)::float8,
                        extract(epoch FROM max_expires_at - created_at)::float8
                 FROM auth.sessions WHERE sid = $1",
                &[sid.as_uuid()],
            )
            .await
            .unwrap();
        (row.get::<_, f64>(0), row.get::<_, f64>(1), row.get::<_, f64>(2))
    };
    let (expires, max, age) = limits().await;
    assert!(expires <= max && (age - 3.0).abs() < 0.5, "{expires} {max} {age}");
    let refreshed = app.bridge().refresh(login["refresh_token"].as_str().unwrap()).await.unwrap();
    let (expires_after, max_after, _) = limits().await;
    assert_eq!(max_after, max, "the limit does not move");
    assert!(expires_after <= max, "a refresh never passes the limit");
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    let res = app.bridge().refresh(&refreshed.tokens.refresh_token).await;
    assert_refused(res, 401, Unauthorized, &[("refresh_token", "invalid")]);
}

#[tokio::test]
async fn cookie_refresh_needs_the_csrf_token() {
    let app = spawn_app().await;
    let login = app.login_ok("bob").await;
    let refresh = login["refresh_token"].as_str().unwrap();
    let csrf = login["csrf_token"].as_str().unwrap();
    let with_cookie = || app.http.post(app.url("/auth/refresh")).header("Cookie", format!("refreshtoken={refresh}"));

    let res = with_cookie().send().await.unwrap();
    let body = assert_error(res, 403, "forbidden", &[("X-CSRF-Token", "required")]).await;
    assert_eq!(body["origin"], "headers");
    let res = with_cookie().header("X-CSRF-Token", "wrong").send().await.unwrap();
    assert_error(res, 403, "forbidden", &[("X-CSRF-Token", "invalid")]).await;

    // The refused attempts did not rotate anything.
    let rotated = app.bridge().refresh_with_cookie(refresh, csrf).await.unwrap();
    assert_ne!(rotated.tokens.refresh_token, refresh);

    // A body-borne token with a wrong header sent anyway is checked too.
    let res = app
        .http
        .post(app.url("/auth/refresh"))
        .header("X-CSRF-Token", "wrong")
        .json(&json!({"refresh_token": rotated.tokens.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "forbidden", &[("X-CSRF-Token", "invalid")]).await;
}

#[tokio::test]
async fn logout_revokes_everywhere() {
    let app = spawn_app().await;
    let login = app.login_ok("alice").await;
    let access = login["access_token"].as_str().unwrap();
    let identity = login["identity_id"].as_str().unwrap();
    let claims = Verifier::from_public_pems(&[app.keys.public_pem.as_str()], test_support::ISSUER)
        .unwrap()
        .verify(access)
        .unwrap();
    let mut sub = test_support::Subscriber::new(&[format!("user_{identity}:ws")]).await.unwrap();
    let mut notices = test_support::Subscriber::new(&[domain::realtime::REVOCATIONS_CHANNEL.to_owned()]).await.unwrap();

    // Cookie-authenticated logout needs the CSRF token.
    let cookie_header = format!("accesstoken={access}; tokentype=bearer");
    let res = app.http.post(app.url("/auth/logout")).header("Cookie", &cookie_header).send().await.unwrap();
    assert_error(res, 403, "forbidden", &[("X-CSRF-Token", "required")]).await;
    let res = app.http.post(app.url("/auth/logout")).send().await.unwrap();
    assert_error(res, 401, "unauthorized", &[]).await;

    let res = app
        .http
        .post(app.url("/auth/logout"))
        .header("Cookie", &cookie_header)
        .header("X-CSRF-Token", login["csrf_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let cookies = set_cookies(&res);
    for name in ["accesstoken", "tokentype", "refreshtoken"] {
        let line = cookie(&cookies, name);
        assert!(line.contains("Max-Age=0"), "{line}");
        assert_eq!(cookie_value(line), "");
    }
    assert!(res.text().await.unwrap().is_empty());

    // Redis marker with its TTL, and the control message.
    let mut redis = test_support::redis_conn().await;
    let key = format!("auth:revoked_sid:{}", claims.sid);
    assert!(redis.exists::<_, bool>(&key).await.unwrap());
    let ttl: i64 = redis.ttl(&key).await.unwrap();
    assert!(ttl > 3600 && ttl <= 3660, "{ttl}");
    let (channel, payload) = sub.next_json(WAIT).await.expect("session.revoked published");
    assert_eq!(channel, format!("user_{identity}:ws"));
    assert_eq!(payload, json!({"type": "session.revoked", "object": {"sid": claims.sid.to_string()}}));

    // The entry of the revoked-sessions set, and the notice every verifier keeps in memory (other
    // tests publish on the same channel).
    let until: Option<i64> = redis.zscore(domain::realtime::REVOKED_SIDS_KEY, claims.sid.to_string()).await.unwrap();
    let left = until.expect("entry in auth:revoked_sids") - chrono::Utc::now().timestamp();
    assert!(left > 3600 && left <= 3661, "{left}");
    let notice = loop {
        let (_, payload) = notices.next(WAIT).await.expect("notice on auth:revocations");
        let entries = domain::realtime::parse_revocation_notice(&payload);
        if let Some(entry) = entries.into_iter().find(|(sid, _)| *sid == claims.sid) {
            break entry;
        }
    };
    assert_eq!(Some(notice.1), until);

    // PostgreSQL, refresh refused, and a repeat is harmless.
    assert_revoked(&app, claims.sid, login["refresh_token"].as_str().unwrap()).await;
    app.bridge().logout(&boxes_client::Auth::bearer(access)).await.unwrap();
}

#[tokio::test]
async fn bearer_logout_needs_no_csrf_but_checks_a_sent_one() {
    let app = spawn_app().await;
    let login = app.login_ok("carol").await;
    let access = login["access_token"].as_str().unwrap();
    let res = app
        .http
        .post(app.url("/auth/logout"))
        .bearer_auth(access)
        .header("X-CSRF-Token", "wrong")
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "forbidden", &[("X-CSRF-Token", "invalid")]).await;
    app.bridge().logout(&boxes_client::Auth::bearer(access)).await.unwrap();
    let res = app.http.post(app.url("/auth/logout")).bearer_auth("not.a.jwt").send().await.unwrap();
    assert_error(res, 401, "unauthorized", &[]).await;
    // A token signed by another key is refused.
    let other = test_support::TestKeys::generate().session(domain::IdentityId::new_v4());
    let res = app.bridge().logout(&boxes_client::Auth::Bearer(other.bearer())).await;
    assert_refused(res, 401, Unauthorized, &[]);
}

fn hostapp_creds(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!("Token {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

async fn hostapp_revoke(app: &TestApp, creds: Option<(&str, &str)>, body: Value) -> reqwest::Response {
    let mut req = app.http.post(app.url("/auth/hostapp/revoke")).json(&body);
    if let Some((id, secret)) = creds {
        req = req.header("Authorization", hostapp_creds(id, secret)).header("X-Hostapp-Client-ID", id);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_hostapp_can_sign_a_user_out_of_every_session() {
    let app = spawn_app().await;
    let first = app.login_ok("alice").await;
    let second = app.login_ok("alice").await;
    let bob = app.login_ok("bob").await;
    let alice = first["identity_id"].as_str().unwrap();
    assert_eq!(second["identity_id"], alice);
    let verifier = Verifier::from_public_pems(&[app.keys.public_pem.as_str()], test_support::ISSUER).unwrap();
    let sid = |login: &Value| verifier.verify(login["access_token"].as_str().unwrap()).unwrap().sid;
    let mut sub = test_support::Subscriber::new(&[format!("user_{alice}:ws")]).await.unwrap();
    let body = json!({"client_id": "ref-hostapp", "user_reference": "alice"});
    let (bridge, host) = (app.bridge(), host_app("ref-hostapp", "ref-secret"));

    // Credentials first, then the body, then whose user it is.
    assert_error(hostapp_revoke(&app, None, body.clone()).await, 401, "unauthorized", &[("Authorization", "required")])
        .await;
    let res = bridge.revoke_user(&host_app("ref-hostapp", "nope"), "ref-hostapp", "alice").await;
    assert_refused(res, 401, Unauthorized, &[("Authorization", "invalid")]);
    // Raw: bodies the typed call cannot send.
    let good = Some(("ref-hostapp", "ref-secret"));
    let long = "x".repeat(101);
    assert_error(
        hostapp_revoke(&app, good, json!({"client_id": "", "user_reference": long})).await,
        400,
        "bad_request",
        &[("client_id", "required"), ("user_reference", "invalid")],
    )
    .await;
    assert_error(
        hostapp_revoke(&app, good, json!({"client_id": "ref-hostapp", "user_reference": 7})).await,
        400,
        "bad_request",
        &[("user_reference", "invalid")],
    )
    .await;
    let res = bridge.revoke_user(&host_app("other-hostapp", OTHER_SECRET), "ref-hostapp", "alice").await;
    assert_refused(res, 403, Forbidden, &[("client_id", "forbidden")]);
    assert!(sub.next_json(std::time::Duration::from_millis(200)).await.is_none(), "nothing revoked yet");

    bridge.revoke_user(&host, "ref-hostapp", "alice").await.unwrap();

    // Both of alice's sessions, everywhere; bob's untouched.
    let mut redis = test_support::redis_conn().await;
    let mut announced = Vec::new();
    for login in [&first, &second] {
        let sid = sid(login);
        assert!(redis.exists::<_, bool>(format!("auth:revoked_sid:{sid}")).await.unwrap());
        assert_revoked(&app, sid, login["refresh_token"].as_str().unwrap()).await;
        let (channel, payload) = sub.next_json(WAIT).await.expect("session.revoked published");
        assert_eq!(channel, format!("user_{alice}:ws"));
        assert_eq!(payload["type"], "session.revoked");
        announced.push(payload["object"]["sid"].as_str().unwrap().to_owned());
    }
    announced.sort();
    let mut expected = vec![sid(&first).to_string(), sid(&second).to_string()];
    expected.sort();
    assert_eq!(announced, expected);
    assert!(!redis.exists::<_, bool>(format!("auth:revoked_sid:{}", sid(&bob))).await.unwrap());
    bridge.refresh(bob["refresh_token"].as_str().unwrap()).await.unwrap();

    // Repeating it, or naming a user who never logged in, revokes nothing and still answers 204.
    bridge.revoke_user(&host, "ref-hostapp", "alice").await.unwrap();
    bridge.revoke_user(&host, "ref-hostapp", "nobody").await.unwrap();
    assert!(sub.next_json(std::time::Duration::from_millis(200)).await.is_none());
}
