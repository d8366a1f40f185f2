//! The Boxo platform path across the four separately started binaries: the reference host app,
//! playing the platform (`POST /_platform/login`), trades alice's and bob's auth codes, reads
//! their user data encrypted with AES-256-GCM and posts it, HMAC-signed, to auth-bridge's
//! `POST /auth/boxo/connect`. The tokens it gets back work in boxes and realtime exactly as a
//! login's do: keys published, a contact box made, the invitation delivered over bob's socket;
//! after logout boxes refuses alice's token and bob's socket is closed with 4001.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use boxes_client::body::{Contact, KeyShare, NewBox, PublicKeys};
use boxes_client::{Auth, Socket};
use domain::IdentityId;
use e2e::system::{Options, System};
use serde_json::{json, Value};

const CONNECT_SECRET: &str = "e2e-connect-secret";
const HMAC: &str = "e2e-platform-hmac";
const KEY: &str = "6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b";

async fn start_system() -> System {
    let bridge_port = e2e::free_port();
    let connect_url = format!("http://127.0.0.1:{bridge_port}/auth/boxo/connect");
    let signature = format!(
        "user_data_encryption = \"AES-256-GCM\"\n[hostapp.signature]\nalgorithm = \"HMAC\"\nhash = \"SHA-256\"\nurl = \"{connect_url}\"\n"
    );
    System::start_with(Options {
        hostapp: &[
            ("REF_USER_DATA_ENCRYPTION", "AES-256-GCM"),
            ("REF_USER_DATA_KEY", KEY),
            ("REF_PLATFORM_CONNECT_URL", &connect_url),
            ("REF_PLATFORM_CONNECT_SECRET", CONNECT_SECRET),
            ("REF_PLATFORM_SIGNATURE", "HMAC"),
            ("REF_PLATFORM_HMAC_SECRET", HMAC),
        ],
        hostapp_entry: &signature,
        bridge: &[
            ("BOXO_CONNECT_SECRET_BOXES_MINIAPP", CONNECT_SECRET),
            ("HOSTAPP_HMAC_SECRET_REF_HOSTAPP", HMAC),
            ("HOSTAPP_USER_DATA_KEY_REF_HOSTAPP", KEY),
        ],
        bridge_port: Some(bridge_port),
        ..Options::default()
    })
    .await
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
    let (alice, alice_token) = platform_login(&sys, &http, "alice").await;
    let (bob, bob_token) = platform_login(&sys, &http, "bob").await;
    assert_ne!(alice, bob);

    let boxes = sys.boxes_api(&http);
    let (as_alice, as_bob) = (boxes.as_user(Auth::bearer(&alice_token)), boxes.as_user(Auth::bearer(&bob_token)));
    let bob_key = key("bob-identity");
    for (api, id, k) in [(&as_alice, &alice, key("alice-identity")), (&as_bob, &bob, bob_key.clone())] {
        let keys = PublicKeys { non_identified_pubkey: Some(k), ..Default::default() };
        api.set_public_keys(IdentityId::parse(id).unwrap(), &keys).await.unwrap();
    }

    // A browser's socket: the token in the query.
    let bob_id = IdentityId::parse(&bob).unwrap();
    let mut bob_ws = Socket::connect_with_query_token(&sys.realtime.url(), bob_id, &bob_token, None).await.unwrap();
    assert_eq!(bob_ws.ready.identity_id, bob_id);

    let contact = Contact {
        contacted_identity_id: bob_id,
        new_box: NewBox::new("Alice - Bob", &key("alice-bob-box")),
        key_share: KeyShare {
            misakey_share: "lBHT1vfwFAIBig5Nj+sD+w==".into(),
            other_share_hash: key("other-share-1"),
            encrypted_invitation_key_share: Some("cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ=".into()),
        },
        extra: [(bob_key, "ZW5jcnlwdGVkIGludml0YXRpb24=".to_owned())].into(),
    };
    as_alice.contact(IdentityId::parse(&alice).unwrap(), &contact).await.unwrap();
    let invite = bob_ws.next_of("notification").await.unwrap();
    assert_eq!(invite.object["type"], "box.auto_invite");

    // Logout: boxes refuses alice's token, bob's socket is closed.
    let bridge = sys.bridge_api(&http);
    for token in [&alice_token, &bob_token] {
        bridge.logout(&Auth::bearer(token)).await.unwrap();
    }
    assert_eq!(as_alice.joined_boxes().await.unwrap_err().status(), Some(401));
    assert_eq!(bob_ws.close_code(Duration::from_secs(5)).await.unwrap(), 4001);
}
