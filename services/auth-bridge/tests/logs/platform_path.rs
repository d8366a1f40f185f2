//! Nothing secret from the Boxo platform path reaches the logs: the Connect secret, the HMAC
//! secret, the user-data key, signatures, nonces, user data (plain or encrypted) and the tokens
//! issued.

use crate::capture;
use crate::helpers::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use domain::connect::{format_signature, render_payload, CipherMode, Hash, PayloadFields, Signer, UserDataCipher};
use serde_json::{json, Value};

#[tokio::test]
async fn no_secret_of_the_platform_path_reaches_the_logs() {
    let capture = capture();

    let id = format!("logs-host-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let hmac = format!("hmac-{}", uuid::Uuid::new_v4().simple());
    let key = "3c".repeat(32);
    std::env::set_var(auth_bridge::registry::hmac_secret_env_var(&id), &hmac);
    std::env::set_var(auth_bridge::registry::user_data_key_env_var(&id), &key);
    let mut extra = hostapp_entry(&id, "s", "http://127.0.0.1:1/t", "http://127.0.0.1:1/u", "GET", 2000);
    extra.push_str(
        "user_data_encryption = \"AES-256-CBC\"\n[hostapp.signature]\nalgorithm = \"HMAC\"\nhash = \"SHA-256\"\n",
    );
    let app = spawn_app_with(Options { extra_hostapps: extra, ..Options::default() }).await;

    let email = format!("secret-{}@example.com", uuid::Uuid::new_v4().simple());
    let cipher = UserDataCipher::parse_key(CipherMode::Aes256Cbc, &key).unwrap();
    let encrypted = cipher
        .encrypt(json!({"reference": "logs-user", "email": email, "first_name": "Zebulon"}).to_string().as_bytes())
        .unwrap();
    let body = json!(encrypted).to_string();
    let signer = Signer::hmac(Hash::Sha256, hmac.as_bytes()).unwrap();
    let url = app.url("/auth/boxo/connect");
    let mut secrets = vec![
        hmac.clone(),
        key.clone(),
        CONNECT_SECRET.to_owned(),
        email.clone(),
        "Zebulon".to_owned(),
        encrypted.clone(),
    ];
    secrets.push(STANDARD.encode(format!("{APP_ID}:{CONNECT_SECRET}")));
    let send = |signer: &Signer, body: &str, nonce: &str| {
        let ts = chrono::Utc::now().timestamp().to_string();
        let message = render_payload(
            "{timestamp}.{nonce}.{request_method}.{url}.{payload}",
            &PayloadFields {
                timestamp: &ts,
                nonce,
                request_method: "POST",
                url: &url,
                payload: body.as_bytes(),
                ..Default::default()
            },
        );
        let sig = format_signature("{signature}", &signer.sign(&message).unwrap());
        let req = app
            .http
            .post(&url)
            .header("Authorization", format!("Basic {}", STANDARD.encode(format!("{APP_ID}:{CONNECT_SECRET}"))))
            .header("X-Miniapp-App-ID", APP_ID)
            .header("X-Hostapp-Client-ID", &id)
            .header("X-Signature", &sig)
            .header("X-Timestamp", ts)
            .header("X-Nonce", nonce)
            .body(body.to_owned());
        (sig, req.send())
    };

    // Success, then the same nonce replayed, a wrong signature and a wrong key.
    let nonce = format!("nonce-{}", uuid::Uuid::new_v4().simple());
    let (sig, res) = send(&signer, &body, &nonce);
    let ok: Value = res.await.unwrap().json().await.unwrap();
    secrets.extend([sig, nonce.clone()]);
    for k in ["auth_token", "refresh_token"] {
        secrets.push(ok[k].as_str().unwrap_or_else(|| panic!("{ok}")).to_owned());
    }
    let (_, res) = send(&signer, &body, &nonce);
    assert_eq!(res.await.unwrap().status(), 401);
    let other_nonce = format!("nonce-{}", uuid::Uuid::new_v4().simple());
    let (sig, res) = send(&Signer::hmac(Hash::Sha256, b"wrong").unwrap(), &body, &other_nonce);
    assert_eq!(res.await.unwrap().status(), 401);
    secrets.extend([sig, other_nonce]);
    let wrong = UserDataCipher::parse_key(CipherMode::Aes256Cbc, &"c3".repeat(32)).unwrap().encrypt(b"{}").unwrap();
    let third = format!("nonce-{}", uuid::Uuid::new_v4().simple());
    let (_, res) = send(&signer, &json!(wrong).to_string(), &third);
    assert_eq!(res.await.unwrap().json::<Value>().await.unwrap()["error_code"], "INVALID_USER_DATA");
    secrets.extend([wrong, third]);
    // Bad Basic credentials.
    let res = app
        .http
        .post(&url)
        .header("Authorization", format!("Basic {}", STANDARD.encode(format!("{APP_ID}:guess-{hmac}"))))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let logs = capture.text();
    assert!(
        logs.contains("Connect call refused: signature")
            && logs.contains("Connect call refused: bad Basic credentials"),
        "{logs}"
    );
    assert!(logs.contains("session opened"));
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a secret of length {} reached the logs", s.len());
    }
}
