//! A stand-in for the Boxo platform (development and tests): `POST /_platform/login`
//! `{"auth_code", "app_id"?}` runs the platform's side of docs.boxo.io miniapp/Connect. It trades
//! the auth code at this host app's get-access-token, fetches get-user-data (passed on as it is,
//! encrypted or not), and posts the user data to the miniapp backend's Connect endpoint with the
//! miniapp's Basic credentials, signed when configured. The Connect answer is returned as it
//! came (status and body). 404 when the stand-in is not configured.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use domain::connect::{format_signature, render_payload, PayloadFields};
use rand::RngCore;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::startup::{AppState, Platform};

fn failed(step: &str) -> HttpResponse {
    HttpResponse::BadGateway().json(json!({"error_code": "PLATFORM_STEP_FAILED", "step": step}))
}

async fn post_json(
    p: &Platform,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<(u16, Value), reqwest::Error> {
    let mut req = p.http.post(url).header("Content-Type", "application/json").body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    Ok((status, res.json::<Value>().await.unwrap_or(Value::Null)))
}

#[tracing::instrument(skip_all)]
pub async fn login(body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let Some(p) = &state.platform else { return web_kit::not_found().await };
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let auth_code = input.get("auth_code").and_then(Value::as_str).unwrap_or("");
    let app_id = input
        .get("app_id")
        .and_then(Value::as_str)
        .or(state.settings.app_ids.first().map(String::as_str))
        .unwrap_or("")
        .to_owned();
    let client_id = state.settings.client_id.clone();
    let hostapp_auth = format!(
        "Token {}",
        STANDARD.encode(format!("{}:{}", state.settings.client_id, state.settings.secret.expose_secret()))
    );
    let common = [("X-Miniapp-App-ID", app_id.clone()), ("X-Hostapp-Client-ID", client_id.clone())];

    // Steps 6-7 of the flow: the auth code for an access token.
    let mut headers = vec![("Authorization", hostapp_auth)];
    headers.extend(common.iter().cloned());
    let token_url = format!("{}/hostapp/get-access-token", p.hostapp_base);
    let token_body = json!({"auth_code": auth_code}).to_string();
    let access_token = match post_json(p, &token_url, &headers, token_body.as_bytes()).await {
        Ok((200, v)) => match v.get("access_token").and_then(Value::as_str) {
            Some(t) => t.to_owned(),
            None => return HttpResponse::Ok().json(v),
        },
        _ => return failed("get_access_token"),
    };

    // Steps 8-9: the user data.
    let mut headers = vec![("Authorization", format!("Token {access_token}"))];
    headers.extend(common.iter().cloned());
    let user_url = format!("{}/hostapp/get-user-data", p.hostapp_base);
    let user_data = match post_json(p, &user_url, &headers, b"{}").await {
        Ok((200, v)) => match v.get("user_data") {
            Some(u) => u.clone(),
            None => return HttpResponse::Ok().json(v),
        },
        _ => return failed("get_user_data"),
    };

    // Step 10: the miniapp backend, signed.
    let payload = user_data.to_string().into_bytes();
    let mut headers = vec![(
        "Authorization",
        format!("Basic {}", STANDARD.encode(format!("{app_id}:{}", p.connect_secret.expose_secret()))),
    )];
    headers.extend(common.iter().cloned());
    if let Some(signer) = &p.signer {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .to_string();
        let mut raw = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut raw);
        let nonce: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let message = render_payload(
            &p.payload_template,
            &PayloadFields {
                timestamp: &timestamp,
                nonce: &nonce,
                request_method: "POST",
                url: &p.connect_url,
                payload: &payload,
                client_id: &client_id,
                ..Default::default()
            },
        );
        let Some(sig) = signer.sign(&message) else { return failed("sign") };
        headers.push(("X-Signature", format_signature("{signature}", &sig)));
        headers.push(("X-Timestamp", timestamp));
        headers.push(("X-Nonce", nonce));
        headers.push(("X-Client-Id", client_id.clone()));
    }
    match post_json(p, &p.connect_url, &headers, &payload).await {
        Ok((status, v)) => {
            tracing::info!(status, "Connect answered");
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY)).json(v)
        }
        Err(_) => failed("connect"),
    }
}
