//! The story a user lives, across the four separately started binaries: alice and bob log in
//! through the reference host app, publish keys, alice contacts bob, bob joins, messages, an edit
//! and a deletion flow both ways over the websockets, alice rotates the key share, bob leaves
//! (and, to be told of the deletion, joins again), alice deletes the box, bob logs out and his
//! socket is closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use e2e::{temp_file, Service};
use futures_util::{SinkExt, StreamExt};
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{json, Value};
use test_support::TestKeys;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

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

    let mut hostapp = Service::start(
        "reference-hostapp",
        &env(&[
            ("REF_CLIENT_ID", "ref-hostapp"),
            ("REF_SECRET", "ref-secret"),
            ("REF_APP_IDS", "boxes-miniapp"),
            ("REF_STATIC_CODES", "true"),
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
token_prefix = "Token"
get_access_token_url = "{h}/hostapp/get-access-token"
get_user_data_url = "{h}/hostapp/get-user-data"
user_data_method = "GET"
allowed_app_ids = ["boxes-miniapp"]
timeout_ms = 5000
"#,
        h = hostapp.url()
    ));
    boxes.wait_ready("/readyz").await.unwrap();
    realtime.wait_ready("/readyz").await.unwrap();
    let mut bridge = Service::start(
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
        ]),
    )
    .unwrap();
    bridge.wait_ready("/readyz").await.unwrap();
    System { hostapp, boxes, realtime, bridge, _files: vec![registry], _keys: keys }
}

/// A logged-in user, as a browser would hold it: cookies and the CSRF token.
struct User {
    id: String,
    cookies: String,
    csrf: String,
    refresh: String,
}

async fn login(sys: &System, http: &reqwest::Client, reference: &str) -> User {
    let res = http
        .post(format!("{}/auth/login", sys.bridge.url()))
        .json(&json!({"auth_code": format!("code-{reference}"), "app_id": "boxes-miniapp", "client_id": "ref-hostapp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login of {reference}");
    let cookies: Vec<String> = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .filter(|c| c.starts_with("accesstoken=") || c.starts_with("tokentype="))
        .collect();
    assert_eq!(cookies.len(), 2, "accesstoken and tokentype cookies");
    let body: Value = res.json().await.unwrap();
    User {
        id: body["identity_id"].as_str().unwrap().to_owned(),
        cookies: cookies.join("; "),
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// A cookie-authenticated request with the CSRF header, as the seed describes.
async fn call(
    http: &reqwest::Client,
    user: &User,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> reqwest::Response {
    let mut b = http.request(method, url).header(COOKIE, &user.cookies).header("X-CSRF-Token", &user.csrf);
    if let Some(body) = body {
        b = b.json(&body);
    }
    b.send().await.unwrap()
}

async fn connect(sys: &System, user: &User) -> Ws {
    let mut req =
        format!("ws://127.0.0.1:{}/box-users/{}/ws", sys.realtime.port, user.id).into_client_request().unwrap();
    req.headers_mut().insert(COOKIE, user.cookies.parse().unwrap());
    let (mut ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(res.status(), 101);
    let ready = next_of(&mut ws, "ready").await;
    assert_eq!(ready["object"]["identity_id"], user.id.as_str());
    ws
}

/// The next envelope of `kind`, skipping others; fails after 5 s.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.unwrap_or_else(|_| panic!("no {kind} within 5 s"));
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == kind {
                    return v;
                }
            }
            Some(Ok(Message::Ping(p))) => {
                let _ = ws.send(Message::Pong(p)).await;
            }
            Some(Ok(_)) => {}
            other => panic!("socket ended while waiting for {kind}: {other:?}"),
        }
    }
}

/// The next `event.new` whose event has `event_type`.
async fn next_event(ws: &mut Ws, event_type: &str) -> Value {
    loop {
        let v = next_of(ws, "event.new").await;
        if v["object"]["type"] == event_type {
            return v["object"].clone();
        }
    }
}

/// The `event.new` carrying the event `id` (the sender's own events arrive on its sockets too).
async fn event_with_id(ws: &mut Ws, id: &Value) -> Value {
    loop {
        let v = next_of(ws, "event.new").await;
        if v["object"]["id"] == *id {
            return v["object"].clone();
        }
    }
}

fn key(seed: &str) -> String {
    use base64::Engine;
    let digest: Vec<u8> = (0..32u8)
        .map(|i| {
            i.wrapping_mul(31).wrapping_add(seed.len() as u8).wrapping_add(seed.as_bytes()[i as usize % seed.len()])
        })
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

#[tokio::test]
async fn alice_and_bob_live_the_whole_story() {
    use reqwest::Method;
    let sys = start_system().await;
    let http = reqwest::Client::new();
    let api = sys.boxes.url();

    let alice = login(&sys, &http, "alice").await;
    let bob = login(&sys, &http, "bob").await;
    assert_ne!(alice.id, bob.id);

    let (alice_key, bob_key) = (key("alice-identity"), key("bob-identity"));
    for (user, k) in [(&alice, &alice_key), (&bob, &bob_key)] {
        let res = call(
            &http,
            user,
            Method::PUT,
            format!("{api}/identities/{}/public-keys", user.id),
            Some(json!({"non_identified_pubkey": k})),
        )
        .await;
        assert_eq!(res.status(), 200);
    }

    let mut alice_ws = connect(&sys, &alice).await;
    let mut bob_ws = connect(&sys, &bob).await;

    // alice contacts bob with the seed's endpoint and body shape.
    let box_key = key("alice-bob-box");
    let res = call(
        &http,
        &alice,
        Method::POST,
        format!("{api}/box-users/{}/contact", alice.id),
        Some(json!({
            "contacted_identity_id": bob.id,
            "box": {"title": "Alice - Bob", "public_key": box_key},
            "key_share": {"misakey_share": "lBHT1vfwFAIBig5Nj+sD+w==", "other_share_hash": key("other-share-1"),
                          "encrypted_invitation_key_share": "cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ="},
            "extra": {bob_key.clone(): "ZW5jcnlwdGVkIGludml0YXRpb24="}
        })),
    )
    .await;
    assert_eq!(res.status(), 201);
    let bx: Value = res.json().await.unwrap();
    let box_id = bx["id"].as_str().unwrap().to_owned();
    assert_eq!(bx["last_event"]["type"], "create");
    assert_eq!(next_event(&mut alice_ws, "create").await["box_id"], box_id.as_str());

    let invite = next_of(&mut bob_ws, "notification").await;
    assert_eq!(invite["object"]["type"], "box.auto_invite");
    assert_eq!(invite["object"]["details"]["box_id"], box_id.as_str());
    let actions: Value = call(&http, &bob, Method::GET, format!("{api}/identities/{}/crypto/actions", bob.id), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(actions[0]["type"], "invitation");
    assert_eq!(actions[0]["encrypted"], "ZW5jcnlwdGVkIGludml0YXRpb24=");

    let events = format!("{api}/boxes/{box_id}/events");
    let res = call(&http, &bob, Method::POST, events.clone(), Some(json!({"type": "member.join"}))).await;
    assert_eq!(res.status(), 201);
    assert_eq!(next_event(&mut alice_ws, "member.join").await["sender"]["id"], bob.id.as_str());

    // Messages both ways, an edit and a deletion.
    let hello = call(
        &http,
        &alice,
        Method::POST,
        events.clone(),
        Some(json!({"type":"msg.text","content":{"encrypted":"aGVsbG8tYm9i","public_key": box_key}})),
    )
    .await;
    assert_eq!(hello.status(), 201);
    let hello: Value = hello.json().await.unwrap();
    let got = event_with_id(&mut bob_ws, &hello["id"]).await;
    assert_eq!(got["type"], "msg.text");
    assert_eq!(got["content"]["encrypted"], "aGVsbG8tYm9i");

    let reply = call(
        &http,
        &bob,
        Method::POST,
        events.clone(),
        Some(json!({"type":"msg.text","content":{"encrypted":"aGktYWxpY2U","public_key": box_key}})),
    )
    .await;
    assert_eq!(reply.status(), 201);
    let reply: Value = reply.json().await.unwrap();
    assert_eq!(event_with_id(&mut alice_ws, &reply["id"]).await["sender"]["id"], bob.id.as_str());

    let edit = call(&http, &alice, Method::POST, events.clone(), Some(json!({"type":"msg.edit","referrer_id": hello["id"],"content":{"new_encrypted":"aGVsbG8tYm9iLWVkaXRlZA","new_public_key": box_key}}))).await;
    assert_eq!(edit.status(), 201);
    let edit: Value = edit.json().await.unwrap();
    assert_eq!(event_with_id(&mut bob_ws, &edit["id"]).await["referrer_id"], hello["id"]);

    let delete =
        call(&http, &bob, Method::POST, events.clone(), Some(json!({"type":"msg.delete","referrer_id": reply["id"]})))
            .await;
    assert_eq!(delete.status(), 201);
    let delete: Value = delete.json().await.unwrap();
    assert_eq!(event_with_id(&mut alice_ws, &delete["id"]).await["referrer_id"], reply["id"]);

    let list: Value = call(&http, &bob, Method::GET, events.clone(), None).await.json().await.unwrap();
    let by_id = |id: &Value| list.as_array().unwrap().iter().find(|e| e["id"] == *id).cloned().unwrap();
    assert_eq!(by_id(&hello["id"])["content"]["encrypted"], "aGVsbG8tYm9iLWVkaXRlZA");
    assert!(by_id(&reply["id"])["content"]["deleted"].is_object());

    // alice rotates the key share: bob is told and gets the new share as a crypto action.
    let rotate = call(&http, &alice, Method::POST, events.clone(), Some(json!({"type":"state.key_share","extra":{
        "misakey_share":"bmV3LXNoYXJl","other_share_hash": key("other-share-2"),"encrypted_invitation_key_share":"bmV3LWludml0YXRpb24"}}))).await;
    assert_eq!(rotate.status(), 201);
    next_event(&mut bob_ws, "state.key_share").await;
    let actions: Value = call(&http, &bob, Method::GET, format!("{api}/identities/{}/crypto/actions", bob.id), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(actions
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["type"] == "set_box_key_share" && a["encrypted"] == "bmV3LWludml0YXRpb24"));

    // bob leaves; his access rule stays, so he can come back.
    let leave = call(&http, &bob, Method::POST, events.clone(), Some(json!({"type":"member.leave"}))).await;
    assert_eq!(leave.status(), 201);
    assert_eq!(next_event(&mut alice_ws, "member.leave").await["sender"]["id"], bob.id.as_str());
    let rejoin = call(&http, &bob, Method::POST, events.clone(), Some(json!({"type":"member.join"}))).await;
    assert_eq!(rejoin.status(), 201);

    // alice deletes the box; bob is told.
    let res = call(
        &http,
        &alice,
        Method::DELETE,
        format!("{api}/boxes/{box_id}"),
        Some(json!({"user_confirmation":"delete"})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let gone = next_of(&mut bob_ws, "box.delete").await;
    assert_eq!(gone["object"]["id"], box_id.as_str());
    assert_eq!(gone["object"]["sender_id"], alice.id.as_str());

    // bob logs out: his socket is closed with 4001 and his token stops working.
    let res = call(&http, &bob, Method::POST, format!("{}/auth/logout", sys.bridge.url()), None).await;
    assert_eq!(res.status(), 204);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let code = loop {
        match tokio::time::timeout_at(deadline, bob_ws.next()).await.expect("close within 5 s") {
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, 4001);
    let res = call(&http, &bob, Method::GET, format!("{api}/boxes/joined"), None).await;
    assert_eq!(res.status(), 401);
    assert!(!bob.refresh.is_empty());

    // No service logged a token, a CSRF token or ciphertext.
    for svc in [&sys.boxes, &sys.realtime, &sys.bridge, &sys.hostapp] {
        let log = svc.log_text();
        for secret in [
            &alice.csrf,
            &bob.csrf,
            &bob.refresh,
            &"aGVsbG8tYm9i".to_owned(),
            &"ZW5jcnlwdGVkIGludml0YXRpb24=".to_owned(),
        ] {
            assert!(!log.contains(secret.as_str()), "{} logged a secret", svc.name);
        }
        let token = alice.cookies.split("; ").find_map(|c| c.strip_prefix("accesstoken=")).unwrap();
        assert!(!log.contains(token), "{} logged an access token", svc.name);
    }
}
