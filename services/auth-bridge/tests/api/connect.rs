//! The Boxo platform's Connect endpoint `POST /auth/boxo/connect` (SPEC §10.7; README, "Running
//! behind the Boxo platform"): Basic credentials, signed requests and encrypted user data.

use crate::helpers::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use boxes_client::{ConnectSession, Connected, Platform};
use domain::auth::Verifier;
use domain::connect::{
    format_signature, render_payload, Algorithm, CipherMode, Hash, PayloadFields, Signer, UserDataCipher,
};
use domain::ErrorCode::Unauthorized;
use redis::AsyncCommands;
use serde_json::{json, Value};

const PATH: &str = "/auth/boxo/connect";
const TEMPLATE: &str = "{timestamp}.{nonce}.{request_method}.{url}.{payload}";

fn basic(app_id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{app_id}:{secret}")))
}

fn alice() -> Value {
    json!({"reference": "alice-connect", "email": "Alice@Example.com", "first_name": "Alice", "last_name": "Martin"})
}

/// A Connect call as the platform makes it, through the typed client, with the signature
/// headers `signature`.
async fn call(
    app: &TestApp,
    client_id: &str,
    signature: &[(String, String)],
    body: &[u8],
) -> boxes_client::Result<Connected> {
    app.bridge().connect(&Platform::new(APP_ID, CONNECT_SECRET), client_id, signature, body.to_vec()).await
}

/// The Boxo error code of a Connect answered 200 without a session.
#[track_caller]
fn error_code(res: boxes_client::Result<Connected>) -> String {
    match res {
        Ok(Connected::Failed { error_code }) => error_code,
        other => panic!("an error code, not {other:?}"),
    }
}

/// The session of a Connect answered 200 with one.
#[track_caller]
fn session(res: boxes_client::Result<Connected>) -> ConnectSession {
    match res {
        Ok(Connected::Session(s)) => s,
        other => panic!("a session, not {other:?}"),
    }
}

/// Signature headers for `body` at `timestamp` with `nonce`, signed by `signer`.
fn signed(app: &TestApp, signer: &Signer, timestamp: i64, nonce: &str, body: &[u8]) -> Vec<(String, String)> {
    let ts = timestamp.to_string();
    let url = app.url(PATH);
    let message = render_payload(
        TEMPLATE,
        &PayloadFields {
            timestamp: &ts,
            nonce,
            request_method: "POST",
            url: &url,
            payload: body,
            ..Default::default()
        },
    );
    vec![
        ("X-Signature".into(), format_signature("{signature}", &signer.sign(&message).unwrap())),
        ("X-Timestamp".into(), ts),
        ("X-Nonce".into(), nonce.to_owned()),
    ]
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A host app registered with `extra` lines appended to its `[[hostapp]]` entry.
fn entry(client_id: &str, extra: &str) -> String {
    let mut e = hostapp_entry(client_id, "s", "http://127.0.0.1:1/t", "http://127.0.0.1:1/u", "GET", 2000);
    e.push_str(extra);
    e
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test]
async fn connect_opens_a_session_that_refreshes_and_logs_out_like_a_login() {
    let app = spawn_app().await;
    // Raw, for the headers: no cookies.
    let res = app
        .http
        .post(app.url(PATH))
        .header("Authorization", basic(APP_ID, CONNECT_SECRET))
        .header("X-Miniapp-App-ID", APP_ID)
        .header("X-Hostapp-Client-ID", "ref-hostapp")
        .header("Content-Type", "application/json")
        .body(alice().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_none());
    let body: Value = res.json().await.unwrap();
    let token = body["auth_token"].as_str().unwrap();
    let claims = Verifier::from_public_pems(&[app.keys.public_pem.as_str()], test_support::ISSUER)
        .unwrap()
        .verify(token)
        .unwrap();
    assert_eq!(claims.sub.to_string(), body["identity_id"].as_str().unwrap());

    // The same identity upsert and consent as a login.
    let upserts = app.upserts().await;
    assert_eq!(upserts.len(), 1);
    assert_eq!(upserts[0].json()["identifier_value"], "alice@example.com");
    let db = app.db().await;
    let consents: i64 = db
        .query_one(
            "SELECT count(*) FROM auth.consents WHERE client_id = 'ref-hostapp' AND user_reference = 'alice-connect'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(consents, 1);

    // A second Connect for the same user keeps the identity.
    let again = session(call(&app, "ref-hostapp", &[], alice().to_string().as_bytes()).await);
    assert_eq!(again.identity_id.to_string(), body["identity_id"].as_str().unwrap());

    // Refresh with the body-borne token, then log out with the bearer token.
    let refreshed = app.bridge().refresh(body["refresh_token"].as_str().unwrap()).await.unwrap();
    assert_eq!(refreshed.identity().to_string(), body["identity_id"].as_str().unwrap());
    app.bridge().logout(&boxes_client::Auth::bearer(token)).await.unwrap();
    let mut redis =
        redis::Client::open(test_support::redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    assert!(redis.exists::<_, bool>(format!("auth:revoked_sid:{}", claims.sid)).await.unwrap());
    let res = app.bridge().refresh(&refreshed.tokens.refresh_token).await;
    assert_refused(res, 401, Unauthorized, &[]);
}

#[tokio::test]
async fn bad_basic_credentials_are_refused_with_401() {
    let app = spawn_app().await;
    let body = alice().to_string();
    let send = |auth: Option<String>, miniapp: Option<&'static str>| {
        let mut req = app.http.post(app.url(PATH)).header("X-Hostapp-Client-ID", "ref-hostapp").body(body.clone());
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        if let Some(m) = miniapp {
            req = req.header("X-Miniapp-App-ID", m);
        }
        req.send()
    };
    let res = send(None, Some(APP_ID)).await.unwrap();
    assert_error(res, 401, "unauthorized", &[("Authorization", "required")]).await;
    for auth in [
        basic(APP_ID, "wrong"),
        basic(APP_ID, ""),
        basic("unknown-miniapp", CONNECT_SECRET),
        format!("Token {}", STANDARD.encode(format!("{APP_ID}:{CONNECT_SECRET}"))),
        "Basic !!!".to_owned(),
        "Basic".to_owned(),
        STANDARD.encode(format!("{APP_ID}:{CONNECT_SECRET}")),
    ] {
        let res = send(Some(auth.clone()), Some(APP_ID)).await.unwrap();
        assert_error(res, 401, "unauthorized", &[("Authorization", "invalid")]).await;
    }
    let res = send(Some(basic(APP_ID, CONNECT_SECRET)), Some("other-miniapp")).await.unwrap();
    assert_error(res, 401, "unauthorized", &[("X-Miniapp-App-ID", "invalid")]).await;
    let res = send(Some(basic(APP_ID, CONNECT_SECRET)), None).await.unwrap();
    assert_error(res, 401, "unauthorized", &[("X-Miniapp-App-ID", "required")]).await;
    assert_eq!(app.session_count().await, 0);
}

#[tokio::test]
async fn a_miniapp_without_a_secret_in_the_environment_cannot_connect() {
    // `lonely-miniapp` is allowed by a host app but has no BOXO_CONNECT_SECRET_LONELY_MINIAPP.
    let extra = entry(&unique("lonely-host"), "").replace(APP_ID, "lonely-miniapp");
    let app = spawn_app_with(Options { extra_hostapps: extra, ..Options::default() }).await;
    for secret in ["", "anything", CONNECT_SECRET] {
        let res = app
            .http
            .post(app.url(PATH))
            .header("Authorization", basic("lonely-miniapp", secret))
            .header("X-Miniapp-App-ID", "lonely-miniapp")
            .body(alice().to_string())
            .send()
            .await
            .unwrap();
        assert_error(res, 401, "unauthorized", &[("Authorization", "invalid")]).await;
    }
}

#[tokio::test]
async fn an_unknown_host_app_or_one_not_allowing_the_miniapp_is_an_error_code() {
    let other = unique("no-boxes");
    let extra = entry(&other, "").replace(&format!("allowed_app_ids = [\"{APP_ID}\"]"), "allowed_app_ids = [\"x\"]");
    let app = spawn_app_with(Options { extra_hostapps: extra, ..Options::default() }).await;
    let body = alice().to_string();
    assert_eq!(error_code(call(&app, "nobody", &[], body.as_bytes()).await), "INVALID_CLIENT_ID");
    assert_eq!(error_code(call(&app, &other, &[], body.as_bytes()).await), "INVALID_CLIENT_ID");
    assert_eq!(app.session_count().await, 0);
}

#[tokio::test]
async fn invalid_user_data_is_an_error_code_and_opens_nothing() {
    let app = spawn_app().await;
    for body in [
        json!({"reference": "r"}).to_string(),
        json!({"email": "a@b.co"}).to_string(),
        json!({"reference": "r", "email": "not-an-email"}).to_string(),
        json!({"reference": "r", "phone": "0123"}).to_string(),
        json!({"reference": "r".repeat(101), "email": "a@b.co"}).to_string(),
        json!("an encrypted string, but this host app has no key").to_string(),
        json!([1, 2]).to_string(),
        json!(null).to_string(),
        "{not json".to_owned(),
        String::new(),
    ] {
        assert_eq!(error_code(call(&app, "ref-hostapp", &[], body.as_bytes()).await), "INVALID_USER_DATA", "{body}");
    }
    // Invalid UTF-8 too.
    assert_eq!(error_code(call(&app, "ref-hostapp", &[], b"{\"reference\":\"\xff\"}").await), "INVALID_USER_DATA");
    assert_eq!(app.session_count().await, 0);
    assert!(app.upserts().await.is_empty());
    // The wrapped form works.
    session(call(&app, "ref-hostapp", &[], json!({"user_data": alice()}).to_string().as_bytes()).await);
}

#[tokio::test]
async fn hmac_signatures_are_checked_with_their_window_and_nonce() {
    let id = unique("hmac-host");
    std::env::set_var(auth_bridge::registry::hmac_secret_env_var(&id), "hmac-secret-1");
    let extra = entry(&id, "[hostapp.signature]\nalgorithm = \"HMAC\"\nhash = \"SHA-256\"\nwindow_secs = 60\n");
    let app = spawn_app_with(Options { extra_hostapps: extra, ..Options::default() }).await;
    let signer = Signer::hmac(Hash::Sha256, b"hmac-secret-1").unwrap();
    let body = alice().to_string();
    let b = body.as_bytes();

    let n = nonce();
    let headers = signed(&app, &signer, now(), &n, b);
    session(call(&app, &id, &headers, b).await);
    // Replayed as is.
    assert_refused(call(&app, &id, &headers, b).await, 401, Unauthorized, &[("X-Nonce", "conflict")]);

    // Missing signature, timestamp or nonce.
    for drop in ["X-Signature", "X-Timestamp", "X-Nonce"] {
        let h: Vec<_> = signed(&app, &signer, now(), &nonce(), b).into_iter().filter(|(k, _)| k != drop).collect();
        assert_refused(call(&app, &id, &h, b).await, 401, Unauthorized, &[(drop, "required")]);
    }
    // Stale, and too far in the future.
    for skew in [-120, 120] {
        let h = signed(&app, &signer, now() + skew, &nonce(), b);
        assert_refused(call(&app, &id, &h, b).await, 401, Unauthorized, &[("X-Timestamp", "expired")]);
    }
    let mut h = signed(&app, &signer, now(), &nonce(), b);
    h[1].1 = "12abc".into();
    assert_refused(call(&app, &id, &h, b).await, 401, Unauthorized, &[("X-Timestamp", "malformed")]);
    // A wrong secret, a tampered body, a nonce changed after signing, a signature not in base64.
    let wrong = Signer::hmac(Hash::Sha256, b"other").unwrap();
    let h = signed(&app, &wrong, now(), &nonce(), b);
    assert_refused(call(&app, &id, &h, b).await, 401, Unauthorized, &[("X-Signature", "invalid")]);
    let h = signed(&app, &signer, now(), &nonce(), b);
    let tampered = body.replace("alice-connect", "mallory");
    assert_refused(call(&app, &id, &h, tampered.as_bytes()).await, 401, Unauthorized, &[("X-Signature", "invalid")]);
    let mut h = signed(&app, &signer, now(), &nonce(), b);
    h[2].1 = nonce();
    assert_refused(call(&app, &id, &h, b).await, 401, Unauthorized, &[("X-Signature", "invalid")]);
    let mut h = signed(&app, &signer, now(), &nonce(), b);
    h[0].1 = "%%%".into();
    assert_refused(call(&app, &id, &h, b).await, 401, Unauthorized, &[("X-Signature", "malformed")]);
    // A refused request does not spend its nonce: signed properly, the same nonce still works.
    let n = nonce();
    let mut h = signed(&app, &wrong, now(), &n, b);
    assert_eq!(call(&app, &id, &h, b).await.unwrap_err().status(), Some(401));
    h = signed(&app, &signer, now(), &n, b);
    session(call(&app, &id, &h, b).await);
    assert_eq!(app.session_count().await, 2);
}

#[tokio::test]
async fn rsa_and_ecdsa_signatures_verify_with_the_registered_public_key() {
    let cases = [
        ("rsa", "RSA2", "SHA-256", "rsa-public.pem", "rsa-private.pem", Algorithm::Rsa2, Hash::Sha256),
        ("rsa512", "RSA2", "SHA-512", "rsa-public.pem", "rsa-private.pem", Algorithm::Rsa2, Hash::Sha512),
        ("ec256", "ECDSA", "SHA-256", "ec256-public.pem", "ec256-private.pem", Algorithm::Ecdsa, Hash::Sha256),
        ("ec384", "ECDSA", "SHA-384", "ec384-public.pem", "ec384-private.pem", Algorithm::Ecdsa, Hash::Sha384),
        ("ec256-512", "ECDSA", "SHA-512", "ec256-public.pem", "ec256-private.pem", Algorithm::Ecdsa, Hash::Sha512),
        ("ec384-512", "ECDSA", "SHA-512", "ec384-public.pem", "ec384-private.pem", Algorithm::Ecdsa, Hash::Sha512),
    ];
    let mut extra = String::new();
    let mut ids = Vec::new();
    for (name, alg, hash, public, _, _, _) in &cases {
        let id = unique(name);
        let path = format!("{}/tests/fixtures/{public}", env!("CARGO_MANIFEST_DIR"));
        extra.push_str(&entry(
            &id,
            &format!("[hostapp.signature]\nalgorithm = \"{alg}\"\nhash = \"{hash}\"\npublic_key_file = \"{path}\"\n"),
        ));
        ids.push(id);
    }
    let app = spawn_app_with(Options { extra_hostapps: extra, ..Options::default() }).await;
    let body = alice().to_string();
    let b = body.as_bytes();
    for ((name, _, _, _, private, alg, hash), id) in cases.iter().zip(&ids) {
        let signer = Signer::private(*alg, *hash, fixture(private).as_bytes()).unwrap();
        let h = signed(&app, &signer, now(), &nonce(), b);
        let res = call(&app, id, &h, b).await;
        assert!(matches!(res, Ok(Connected::Session(_))), "{name}: {res:?}");
        let h = signed(&app, &signer, now(), &nonce(), b);
        let tampered = body.replace("Alice", "Eve");
        let res = call(&app, id, &h, tampered.as_bytes()).await;
        assert_refused(res, 401, Unauthorized, &[("X-Signature", "invalid")]);
    }
    // A key of another kind verifies nothing: the P-384 key signs for the P-256 host app.
    let signer = Signer::private(Algorithm::Ecdsa, Hash::Sha384, fixture("ec384-private.pem").as_bytes()).unwrap();
    let h = signed(&app, &signer, now(), &nonce(), b);
    assert_refused(call(&app, &ids[2], &h, b).await, 401, Unauthorized, &[("X-Signature", "invalid")]);
}

#[tokio::test]
async fn encrypted_user_data_is_read_in_both_modes_and_a_wrong_key_or_tampering_is_invalid_user_data() {
    let gcm = unique("gcm-host");
    let cbc = unique("cbc-host");
    let key = "42".repeat(32);
    std::env::set_var(auth_bridge::registry::user_data_key_env_var(&gcm), &key);
    std::env::set_var(auth_bridge::registry::user_data_key_env_var(&cbc), STANDARD.encode([0x42u8; 32]));
    let mut extra = entry(&gcm, "user_data_encryption = \"AES-256-GCM\"\n");
    extra.push_str(&entry(&cbc, "user_data_encryption = \"AES-256-CBC\"\n"));
    let app = spawn_app_with(Options { extra_hostapps: extra, ..Options::default() }).await;
    let plain = alice().to_string();
    for (id, mode) in [(&gcm, CipherMode::Aes256Gcm), (&cbc, CipherMode::Aes256Cbc)] {
        let cipher = UserDataCipher::parse_key(mode, &key).unwrap();
        let enc = cipher.encrypt(plain.as_bytes()).unwrap();
        for body in [json!(enc), json!({"user_data": enc})] {
            let res = call(&app, id, &[], body.to_string().as_bytes()).await;
            assert!(matches!(res, Ok(Connected::Session(_))), "{mode:?}: {res:?}");
        }
        let wrong = UserDataCipher::parse_key(mode, &"24".repeat(32)).unwrap().encrypt(plain.as_bytes()).unwrap();
        let mut raw = STANDARD.decode(&enc).unwrap();
        let middle = raw.len() / 2;
        raw[middle] ^= 0x80;
        let tampered = STANDARD.encode(&raw);
        let truncated = STANDARD.encode(&STANDARD.decode(&enc).unwrap()[..20]);
        let not_json = cipher.encrypt(b"not json").unwrap();
        for bad in [wrong, tampered, truncated, not_json, "%%%".to_owned(), String::new()] {
            let res = call(&app, id, &[], json!(bad).to_string().as_bytes()).await;
            assert_eq!(error_code(res), "INVALID_USER_DATA", "{mode:?}");
        }
    }
    assert_eq!(app.session_count().await, 4);
}

#[tokio::test]
async fn the_login_flow_decrypts_user_data_from_get_user_data() {
    let key = "17".repeat(32);
    let cipher = UserDataCipher::parse_key(CipherMode::Aes256Gcm, &key).unwrap();
    let good = cipher.encrypt(alice().to_string().as_bytes()).unwrap();
    let mock = mock_hostapp(json_answer(json!({"access_token": "t"})), json_answer(json!({"user_data": good}))).await;
    let id = unique("enc-host");
    std::env::set_var(auth_bridge::registry::user_data_key_env_var(&id), &key);
    let mut extra = mock_entry(&id, &mock.uri());
    extra.push_str("user_data_encryption = \"AES-256-GCM\"\n");
    let app = spawn_app_with(Options { extra_hostapps: extra, ..Options::default() }).await;
    let res = app.login_as(&id, "code").await;
    assert_eq!(res.status(), 200);
    // The same host app without the key sees a string it cannot read.
    let plain_id = unique("plain-host");
    let app2 =
        spawn_app_with(Options { extra_hostapps: mock_entry(&plain_id, &mock.uri()), ..Options::default() }).await;
    let res = app2.login_as(&plain_id, "code").await;
    assert_error(res, 502, "bad_gateway", &[("hostapp_error", "INVALID_USER_DATA"), ("user_data", "invalid")]).await;
}

/// A reference host app that also plays the Boxo platform, calling `app`'s Connect endpoint.
async fn platform(app: &TestApp, client_id: &str, hmac: &str, key: &str) -> String {
    let mut s = reference_settings();
    s.client_id = client_id.to_owned();
    s.user_data_encryption = Some("AES-256-GCM".into());
    s.user_data_key = Some(key.to_owned().into());
    s.platform = reference_hostapp::config::PlatformSettings {
        connect_url: Some(app.url(PATH)),
        connect_secret: Some(CONNECT_SECRET.to_owned().into()),
        signature: Some("HMAC".into()),
        signature_hash: "SHA-512".into(),
        hmac_secret: Some(hmac.to_owned().into()),
        private_key_file: None,
        payload_template: TEMPLATE.into(),
    };
    let reference = reference_hostapp::startup::Application::build(s).await.unwrap();
    let base = format!("http://127.0.0.1:{}", reference.port());
    tokio::spawn(reference.run_until_stopped());
    base
}

async fn platform_login(app: &TestApp, base: &str) -> reqwest::Response {
    let res =
        app.http.post(format!("{base}/_test/auth-codes")).json(&json!({"reference": "alice"})).send().await.unwrap();
    let code = res.json::<Value>().await.unwrap()["auth_code"].as_str().unwrap().to_owned();
    app.http.post(format!("{base}/_platform/login")).json(&json!({"auth_code": code})).send().await.unwrap()
}

#[tokio::test]
async fn the_platform_stand_in_runs_the_whole_path_signed_and_encrypted() {
    let id = unique("platform-host");
    let key = "5a".repeat(32);
    std::env::set_var(auth_bridge::registry::hmac_secret_env_var(&id), "platform-hmac");
    std::env::set_var(auth_bridge::registry::user_data_key_env_var(&id), &key);
    let extra = entry(
        &id,
        "user_data_encryption = \"AES-256-GCM\"\n[hostapp.signature]\nalgorithm = \"HMAC\"\nhash = \"SHA-512\"\n",
    );
    let app = spawn_app_with(Options { extra_hostapps: extra, ..Options::default() }).await;

    let base = platform(&app, &id, "platform-hmac", &key).await;
    let res = platform_login(&app, &base).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let token = body["auth_token"].as_str().unwrap_or_else(|| panic!("{body}"));
    let claims = Verifier::from_public_pems(&[app.keys.public_pem.as_str()], test_support::ISSUER)
        .unwrap()
        .verify(token)
        .unwrap();
    assert_eq!(claims.sub.to_string(), body["identity_id"].as_str().unwrap());
    let reference: String = app
        .db()
        .await
        .query_one("SELECT reference FROM auth.hostapp_users WHERE client_id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reference, "alice");

    // A platform signing with another secret is refused; one encrypting with another key gets
    // INVALID_USER_DATA.
    let forged = platform(&app, &id, "not-the-secret", &key).await;
    assert_error(platform_login(&app, &forged).await, 401, "unauthorized", &[("X-Signature", "invalid")]).await;
    let wrong_key = platform(&app, &id, "platform-hmac", &"a5".repeat(32)).await;
    let res = platform_login(&app, &wrong_key).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("auth_token").is_none(), "{body}");
    assert_eq!(body["error_code"], "INVALID_USER_DATA");
    assert_eq!(app.session_count().await, 1);
}

#[tokio::test]
async fn custom_headers_templates_and_millisecond_timestamps_follow_the_registry() {
    let id = unique("custom-host");
    std::env::set_var(auth_bridge::registry::hmac_secret_env_var(&id), "custom-secret");
    let extra = entry(
        &id,
        "[hostapp.signature]\nalgorithm = \"HMAC\"\nhash = \"SHA-384\"\ntimespec = \"milliseconds\"\nwindow_secs = 30\n\
         headers = { signature = \"X-Boxo-Sig\", timestamp = \"X-Boxo-Time\", nonce = \"X-Boxo-Nonce\", identity = \"X-Boxo-Identity\" }\n\
         payload_template = \"{identity}|{request_method}|{timestamp}|{nonce}|{payload}\"\n\
         signature_template = \"v1={signature}\"\n",
    );
    let app = spawn_app_with(Options { extra_hostapps: extra, ..Options::default() }).await;
    let signer = Signer::hmac(Hash::Sha384, b"custom-secret").unwrap();
    let body = alice().to_string();
    let b = body.as_bytes();
    let sign = |ts: i64, n: &str, identity: &str| {
        let ts = ts.to_string();
        let message = render_payload(
            "{identity}|{request_method}|{timestamp}|{nonce}|{payload}",
            &PayloadFields {
                timestamp: &ts,
                nonce: n,
                identity,
                request_method: "POST",
                payload: b,
                ..Default::default()
            },
        );
        vec![
            ("X-Boxo-Sig".to_owned(), format_signature("v1={signature}", &signer.sign(&message).unwrap())),
            ("X-Boxo-Time".to_owned(), ts),
            ("X-Boxo-Nonce".to_owned(), n.to_owned()),
            ("X-Boxo-Identity".to_owned(), identity.to_owned()),
        ]
    };
    let ms = chrono::Utc::now().timestamp_millis();
    session(call(&app, &id, &sign(ms, &nonce(), "boxo"), b).await);
    // Seconds where milliseconds are expected are far outside the window.
    let res = call(&app, &id, &sign(now(), &nonce(), "boxo"), b).await;
    assert_refused(res, 401, Unauthorized, &[("X-Boxo-Time", "expired")]);
    // The identity header is part of the signed payload.
    let mut h = sign(ms, &nonce(), "boxo");
    h[3].1 = "other".into();
    assert_refused(call(&app, &id, &h, b).await, 401, Unauthorized, &[("X-Boxo-Sig", "invalid")]);
    // Without the template's prefix the signature is malformed.
    let mut h = sign(ms, &nonce(), "boxo");
    h[0].1 = h[0].1.trim_start_matches("v1=").to_owned();
    assert_refused(call(&app, &id, &h, b).await, 401, Unauthorized, &[("X-Boxo-Sig", "malformed")]);
}

#[tokio::test]
async fn a_spent_host_app_budget_is_answered_with_an_error_code() {
    // A host app of its own: the budget lives in the shared Redis, keyed by the host app.
    let id = unique("budget-host");
    let rates = auth_bridge::config::RateSettings {
        login_per_hostapp: "2/3600".parse().unwrap(),
        trusted_proxy_hops: 1,
        ..Default::default()
    };
    let app = spawn_app_with(Options { rates, extra_hostapps: entry(&id, ""), ..Options::default() }).await;
    let body = alice().to_string();
    for _ in 0..2 {
        session(call(&app, &id, &[], body.as_bytes()).await);
    }
    assert_eq!(error_code(call(&app, &id, &[], body.as_bytes()).await), "TOO_MANY_REQUESTS");
    assert_eq!(app.session_count().await, 2);
}

#[tokio::test]
async fn md5_and_sha1_signatures_work_only_for_a_host_app_that_enables_them() {
    let weak = unique("md5-host");
    let strict = unique("strict-host");
    for id in [&weak, &strict] {
        std::env::set_var(auth_bridge::registry::hmac_secret_env_var(id), "legacy-secret");
    }
    let mut extra = entry(&weak, "[hostapp.signature]\nalgorithm = \"HMAC\"\nhash = \"MD5\"\nallow_weak_hash = true\n");
    extra.push_str(&entry(&strict, "[hostapp.signature]\nalgorithm = \"HMAC\"\nhash = \"SHA-256\"\n"));
    let app = spawn_app_with(Options { extra_hostapps: extra, ..Options::default() }).await;
    let md5 = Signer::hmac(Hash::Md5, b"legacy-secret").unwrap();
    let body = alice().to_string();
    let b = body.as_bytes();
    let h = signed(&app, &md5, now(), &nonce(), b);
    session(call(&app, &weak, &h, b).await);
    // The host app that did not enable MD5 verifies with its own hash: an MD5 tag is refused.
    let h = signed(&app, &md5, now(), &nonce(), b);
    assert_refused(call(&app, &strict, &h, b).await, 401, Unauthorized, &[("X-Signature", "invalid")]);
    // And a registry naming MD5 without enabling it does not load at all.
    let refused = entry(&unique("md5-refused"), "[hostapp.signature]\nalgorithm = \"HMAC\"\nhash = \"MD5\"\n");
    let env = |name: &str| std::env::var(name).ok().or_else(|| name.starts_with("HOSTAPP_HMAC").then(|| "s".into()));
    assert!(auth_bridge::registry::Registry::parse(&refused, env).is_err());
}

#[tokio::test]
async fn a_signed_call_while_redis_is_down_is_refused_quickly_and_its_nonce_stays_usable() {
    let mut redis = test_support::PrivateRedis::start(17015).await;
    let id = unique("nonce-host");
    std::env::set_var(auth_bridge::registry::hmac_secret_env_var(&id), "nonce-secret");
    let extra = entry(&id, "[hostapp.signature]\nalgorithm = \"HMAC\"\nhash = \"SHA-256\"\n");
    let app =
        spawn_app_with(Options { extra_hostapps: extra, redis_url: Some(redis.url()), ..Options::default() }).await;
    let signer = Signer::hmac(Hash::Sha256, b"nonce-secret").unwrap();
    let body = alice().to_string();
    let b = body.as_bytes();
    let n = nonce();
    let h = signed(&app, &signer, now(), &n, b);

    redis.kill();
    let started = std::time::Instant::now();
    // The nonce cannot be recorded, so the call is not accepted: a replay could not be told apart.
    assert_eq!(error_code(call(&app, &id, &h, b).await), "SERVICE_UNAVAILABLE");
    assert!(started.elapsed() < std::time::Duration::from_millis(1500), "took {:?}", started.elapsed());
    assert_eq!(app.session_count().await, 0);

    redis.restart().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let res = call(&app, &id, &h, b).await.unwrap();
        if res.session().is_some() {
            break;
        }
        assert_eq!(res.error_code(), Some("SERVICE_UNAVAILABLE"), "{res:?}");
        assert!(std::time::Instant::now() < deadline, "no session 10 s after Redis came back");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Spent now: the same request again is a replay.
    assert_refused(call(&app, &id, &h, b).await, 401, Unauthorized, &[("X-Nonce", "conflict")]);
    assert_eq!(app.session_count().await, 1);
}
