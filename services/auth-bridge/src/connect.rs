//! The caller checks of the Boxo platform's Connect call (`POST /auth/boxo/connect`, SPEC §10.7;
//! README, "Running behind the Boxo platform"): the miniapp's Basic credentials, and the host
//! app's request signature with its timestamp window and single-use nonce.
//!
//! Refusals are logged with the reason only: never the signature, the nonce, the secret or the
//! body.

use actix_web::http::header::AUTHORIZATION;
use actix_web::HttpRequest;
use domain::connect::{extract_signature, render_payload, PayloadFields};
use domain::error::{Detail, ErrorBody, Origin};

use crate::error::ApiError;
use crate::registry::{HostApp, Registry, SignatureConfig};

/// Prefix of the Redis keys that remember used nonces.
pub const NONCE_KEY_PREFIX: &str = "auth:connect_nonce:";
/// Longest accepted nonce.
pub const NONCE_MAX: usize = 128;

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn refused(header_name: &str, detail: &str, desc: &str) -> ApiError {
    ErrorBody::unauthorized(Origin::Headers, desc).with(header_name, detail).into()
}

/// The miniapp calling: `Authorization: Basic base64(app_id:secret_key)` with a secret from the
/// environment, and `X-Miniapp-App-ID` naming the same miniapp. Else 401.
pub fn miniapp_caller(req: &HttpRequest, registry: &Registry) -> Result<String, ApiError> {
    let authorization = header(req, AUTHORIZATION.as_str())
        .ok_or_else(|| refused("Authorization", Detail::Required.as_str(), "Connect credentials are required"))?;
    let Some(app_id) = registry.connect_caller(authorization) else {
        tracing::warn!("Connect call refused: bad Basic credentials");
        return Err(refused("Authorization", Detail::Invalid.as_str(), "bad Connect credentials"));
    };
    match header(req, "X-Miniapp-App-ID") {
        Some(a) if a == app_id => Ok(app_id.to_owned()),
        Some(_) => Err(refused("X-Miniapp-App-ID", Detail::Invalid.as_str(), "X-Miniapp-App-ID does not match")),
        None => Err(refused("X-Miniapp-App-ID", Detail::Required.as_str(), "X-Miniapp-App-ID is required")),
    }
}

/// The URL the platform called, for `{url}`: the configured one, else rebuilt from the request.
fn called_url(req: &HttpRequest, sig: &SignatureConfig) -> String {
    if let Some(url) = &sig.url {
        return url.clone();
    }
    let info = req.connection_info();
    format!("{}://{}{}", info.scheme(), info.host(), req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"))
}

fn now_in(millis: bool) -> i64 {
    let now = chrono::Utc::now();
    if millis {
        now.timestamp_millis()
    } else {
        now.timestamp()
    }
}

/// Checks the signature of a request for `app` when the registry asks for one: present,
/// well-formed, within the timestamp window, valid, and its nonce never seen before (kept in
/// Redis for twice the window, since a timestamp may be that far from another within it).
pub async fn check_signature(
    req: &HttpRequest,
    redis: &web_kit::redis::Redis,
    app: &HostApp,
    body: &[u8],
) -> Result<(), ApiError> {
    let Some(sig) = &app.signature else { return Ok(()) };
    let h = &sig.headers;
    let reject = |name: &str, detail: &str, reason: &str| {
        tracing::warn!(hostapp = %app.client_id, header = name, reason, "Connect call refused: signature");
        refused(name, detail, "the request signature is not valid")
    };
    let signature_header =
        header(req, &h.signature).ok_or_else(|| reject(&h.signature, Detail::Required.as_str(), "missing"))?;
    let signature = extract_signature(&sig.signature_template, signature_header)
        .ok_or_else(|| reject(&h.signature, Detail::Malformed.as_str(), "not base64 in the template"))?;
    let timestamp =
        header(req, &h.timestamp).ok_or_else(|| reject(&h.timestamp, Detail::Required.as_str(), "missing"))?;
    let ts: i64 = timestamp
        .parse()
        .ok()
        .filter(|_| timestamp.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| reject(&h.timestamp, Detail::Malformed.as_str(), "not an integer"))?;
    let window = sig.window.as_secs() as i64 * if sig.millis { 1000 } else { 1 };
    if (now_in(sig.millis) - ts).abs() > window {
        return Err(reject(&h.timestamp, Detail::Expired.as_str(), "outside the window"));
    }
    let nonce = header(req, &h.nonce).unwrap_or("");
    if nonce.is_empty() && sig.require_nonce {
        return Err(reject(&h.nonce, Detail::Required.as_str(), "missing"));
    }
    if nonce.len() > NONCE_MAX || nonce.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(reject(&h.nonce, Detail::Invalid.as_str(), "too long or not printable"));
    }
    let method = req.method().as_str().to_owned();
    let url = called_url(req, sig);
    let message = render_payload(
        &sig.payload_template,
        &PayloadFields {
            timestamp,
            nonce,
            identity: header(req, &h.identity).unwrap_or(""),
            client_id: header(req, &h.client_id).unwrap_or(""),
            merchant_id: header(req, &h.merchant_id).unwrap_or(""),
            request_method: &method,
            url: &url,
            payload: body,
        },
    );
    if !sig.verifier.verify(&message, &signature) {
        return Err(reject(&h.signature, Detail::Invalid.as_str(), "does not verify"));
    }
    // Only a verified request spends its nonce, so forged requests cannot burn real ones.
    if !nonce.is_empty() {
        let key = format!("{NONCE_KEY_PREFIX}{}:{}", app.client_id, domain::auth::sha256_b64u(nonce));
        let ttl = (sig.window.as_secs() * 2).max(1);
        let fresh: Option<String> =
            redis::cmd("SET").arg(&key).arg(1).arg("NX").arg("EX").arg(ttl).query_async(&mut redis.clone()).await?;
        if fresh.is_none() {
            return Err(reject(&h.nonce, Detail::Conflict.as_str(), "nonce already used"));
        }
    }
    Ok(())
}
