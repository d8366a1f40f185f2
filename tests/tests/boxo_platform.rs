//! The Boxo platform path across the four separately started binaries: the reference host app,
//! playing the platform (`POST /_platform/login`), trades alice's and bob's auth codes, reads
//! their user data encrypted with AES-256-GCM and posts it, HMAC-signed, to auth-bridge's
//! `POST /auth/boxo/connect`. The tokens it gets back work in boxes and realtime exactly as a
//! login's do: keys published, a contact box made, the invitation delivered over bob's socket;
//! after logout boxes refuses alice's token and bob's socket is closed with 4001.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use e2e::{temp_file, Service};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use test_support::TestKeys;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const CONNECT_SECRET: &str = "e2e-connect-secret";
const HMAC: &str = "e2e-platform-hmac";
const KEY: &str = "6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b";

struct System {
    hostapp: Service,
    boxes: Service,
    realtime: Service,
    bridge: Service,
    _files: Vec<e2e::tempfile_lite::TempFile>,
    _keys: TestKeys,
}

async fn start_system() -> System {
    let database_url = test_support::fresh_database().await.unwrap();
    let keys = TestKeys::generate();
    let private = keys.private_file.path().display().to_string();
    let public = keys.public_file.path().display().to_string();
    let internal = format!("internal-{}", uuid::Uuid::new_v4().simple());
    let env =
        |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>();
    let bridge_port = e2e::free_port();
    let connect_url = format!("http://127.0.0.1:{bridge_port}/auth/boxo/connect");

    let mut hostapp = Service::start(
        "reference-hostapp",
        &env(&[
            ("REF_CLIENT_ID", "ref-hostapp"),
            ("REF_SECRET", "ref-secret"),
            ("REF_APP_IDS", "boxes-miniapp"),
            ("REF_STATIC_CODES", "true"),
            ("REF_USER_DATA_ENCRYPTION", "AES-256-GCM"),
            ("REF_USER_DATA_KEY", KEY),
            ("REF_PLATFORM_CONNECT_URL", &connect_url),
            ("REF_PLATFORM_CONNECT_SECRET", CONNECT_SECRET),
            ("REF_PLATFORM_SIGNATURE", "HMAC"),
            ("REF_PLATFORM_HMAC_SECRET", HMAC),
        ]),
    )
    .unwrap();
    hostapp.wait_ready("/healthz").await.unwrap();

    let redis = test_support::redis_url();
    let internal_addr = format!("127.0.0.1:{}", e2e::free_port());
    let mut boxes = Service::start(
        "boxes",
        &env(&[
            ("DATABASE_URL", &database_url),
            ("REDIS_URL", &redis),
            ("JWT_PUBLIC_KEY_FILE", &public),
            ("INTERNAL_API_TOKEN", &internal),
            ("INTERNAL_BIND_ADDR", &internal_addr),
        ]),
    )
    .unwrap();
    let mut realtime =
        Service::start("realtime", &env(&[("REDIS_URL", &redis), ("JWT_PUBLIC_KEY_FILE", &public)])).unwrap();
    let registry = temp_file(&format!(
        r#"[[hostapp]]
client_id = "ref-hostapp"
hostapp_client_id = "ref-hostapp"
hostapp_secret_key = "ref-secret"
get_access_token_url = "{h}/hostapp/get-access-token"
get_user_data_url = "{h}/hostapp/get-user-data"
allowed_app_ids = ["boxes-miniapp"]
user_data_encryption = "AES-256-GCM"
[hostapp.signature]
algorithm = "HMAC"
hash = "SHA-256"
url = "{connect_url}"
"#,
        h = hostapp.url()
    ));
    boxes.wait_ready("/readyz").await.unwrap();
    realtime.wait_ready("/readyz").await.unwrap();
    let mut bridge = Service::start_on(
        "auth-bridge",
        &env(&[
            ("DATABASE_URL", &database_url),
            ("REDIS_URL", &redis),
            ("JWT_PRIVATE_KEY_FILE", &private),
            ("JWT_PUBLIC_KEY_FILE", &public),
            ("INTERNAL_API_TOKEN", &internal),
            ("BOXES_INTERNAL_URL", &format!("http://{internal_addr}")),
            ("HOSTAPPS_CONFIG", &registry.path.display().to_string()),
            ("COOKIE_SECURE", "false"),
            ("BOXO_CONNECT_SECRET_BOXES_MINIAPP", CONNECT_SECRET),
            ("HOSTAPP_HMAC_SECRET_REF_HOSTAPP", HMAC),
            ("HOSTAPP_USER_DATA_KEY_REF_HOSTAPP", KEY),
        ]),
        bridge_port,
    )
    .unwrap();
    bridge.wait_ready("/readyz").await.unwrap();
    System { hostapp, boxes, realtime, bridge, _files: vec![registry], _keys: keys }
}

/// Logs `reference` in through the platform stand-in: `(identity id, access token)`.
async fn platform_login(sys: &System, http: &reqwest::Client, reference: &str) -> (String, String) {
    let res = http
        .post(format!("{}/_platform/login", sys.hostapp.url()))
        .json(&json!({"auth_code": format!("code-{reference}"), "app_id": "boxes-miniapp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "platform login of {reference}");
    let body: Value = res.json().await.unwrap();
    let token = body["auth_token"].as_str().unwrap_or_else(|| panic!("{reference}: {body}")).to_owned();
    (body["identity_id"].as_str().unwrap().to_owned(), token)
}

async fn next_text(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a message within 5 s") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).ok(),
            Some(Ok(Message::Ping(p))) => {
                let _ = ws.send(Message::Pong(p)).await;
            }
            Some(Ok(Message::Close(frame))) => {
                return Some(json!({"closed": frame.map(|f| u16::from(f.code)).unwrap_or(0)}));
            }
            Some(Ok(_)) => {}
            _ => return None,
        }
    }
}

async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v = next_text(ws).await.unwrap_or_else(|| panic!("socket ended waiting for {kind}"));
        if v["type"] == kind || (kind == "closed" && v.get("closed").is_some()) {
            return v;
        }
    }
}

fn key(seed: &str) -> String {
    use base64::Engine;
    let bytes: Vec<u8> =
        (0..32u8).map(|i| i.wrapping_mul(7).wrapping_add(seed.as_bytes()[i as usize % seed.len()])).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn the_platform_path_logs_users_in_for_boxes_and_realtime() {
    let sys = start_system().await;
    let http = reqwest::Client::new();
    let api = sys.boxes.url();
    let (alice, alice_token) = platform_login(&sys, &http, "alice").await;
    let (bob, bob_token) = platform_login(&sys, &http, "bob").await;
    assert_ne!(alice, bob);

    let bob_key = key("bob-identity");
    for (id, token, k) in [(&alice, &alice_token, key("alice-identity")), (&bob, &bob_token, bob_key.clone())] {
        let res = http
            .put(format!("{api}/identities/{id}/public-keys"))
            .bearer_auth(token)
            .json(&json!({"non_identified_pubkey": k}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    let url = format!("ws://127.0.0.1:{}/box-users/{bob}/ws?access_token={bob_token}", sys.realtime.port);
    let (mut bob_ws, res) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(res.status(), 101);
    assert_eq!(next_of(&mut bob_ws, "ready").await["object"]["identity_id"], bob.as_str());

    let res = http
        .post(format!("{api}/box-users/{alice}/contact"))
        .bearer_auth(&alice_token)
        .json(&json!({
            "contacted_identity_id": bob,
            "box": {"title": "Alice - Bob", "public_key": key("alice-bob-box")},
            "key_share": {"misakey_share": "lBHT1vfwFAIBig5Nj+sD+w==", "other_share_hash": key("other-share-1"),
                          "encrypted_invitation_key_share": "cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ="},
            "extra": {bob_key: "ZW5jcnlwdGVkIGludml0YXRpb24="}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let invite = next_of(&mut bob_ws, "notification").await;
    assert_eq!(invite["object"]["type"], "box.auto_invite");

    // Logout: boxes refuses alice's token, bob's socket is closed.
    for token in [&alice_token, &bob_token] {
        let res = http.post(format!("{}/auth/logout", sys.bridge.url())).bearer_auth(token).send().await.unwrap();
        assert_eq!(res.status(), 204);
    }
    let res = http.get(format!("{api}/boxes/joined")).bearer_auth(&alice_token).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(next_of(&mut bob_ws, "closed").await["closed"], 4001);
}
