//! The two Boxo Connect endpoints a hostapp backend serves (seed; `SPEC.md` §11).
//!
//! Both answer HTTP 200 with `{"error_code"}` for business failures, as Boxo requires. A caller
//! whose headers do not check out gets HTTP 401 `{"error_code":"UNAUTHORIZED"}`, so the bridge's
//! `http_401` path can be exercised. Auth codes and tokens are never logged.

use std::time::Duration;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::startup::AppState;

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `X-Hostapp-Client-ID` is ours and `X-Miniapp-App-ID` is one of the configured miniapps.
fn caller_headers_ok(req: &HttpRequest, state: &AppState) -> bool {
    let client_ok = header(req, "X-Hostapp-Client-ID") == Some(state.settings.client_id.as_str());
    let app_ok = header(req, "X-Miniapp-App-ID").is_some_and(|a| state.settings.app_ids.iter().any(|x| x == a));
    client_ok && app_ok
}

/// `Authorization: Token base64(client_id:secret)`.
fn credentials_ok(req: &HttpRequest, state: &AppState) -> bool {
    let expected = STANDARD.encode(format!("{}:{}", state.settings.client_id, state.settings.secret.expose_secret()));
    header(req, AUTHORIZATION.as_str())
        .and_then(|h| h.strip_prefix("Token "))
        .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), expected.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({"error_code": "UNAUTHORIZED"}))
}

fn error_code(code: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({"error_code": code}))
}

/// What an auth code asks get-access-token to do.
enum CodeKind<'a> {
    Fail500,
    FailMalformed,
    FailTimeout,
    FailNoToken,
    FailError(&'a str),
    FailBadAccessToken,
    Grant(String),
    Invalid,
}

fn classify<'a>(code: &'a str, state: &AppState) -> CodeKind<'a> {
    match code {
        "fail-500" => CodeKind::Fail500,
        "fail-malformed" => CodeKind::FailMalformed,
        "fail-timeout" => CodeKind::FailTimeout,
        "fail-no-token" => CodeKind::FailNoToken,
        "fail-bad-access-token" => CodeKind::FailBadAccessToken,
        _ => {
            if let Some(c) = code.strip_prefix("fail-error-") {
                return CodeKind::FailError(c);
            }
            if state.settings.static_codes {
                if let Some(reference) = code.strip_prefix("code-").filter(|r| state.users.get(r).is_some()) {
                    return CodeKind::Grant(reference.to_owned());
                }
            }
            match state.grants.take_code(code) {
                Some(reference) => CodeKind::Grant(reference),
                None => CodeKind::Invalid,
            }
        }
    }
}

/// `POST /hostapp/get-access-token` with `{auth_code}`.
#[tracing::instrument(skip_all)]
pub async fn get_access_token(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    if !credentials_ok(&req, &state) || !caller_headers_ok(&req, &state) {
        tracing::info!("get-access-token refused: bad credentials or headers");
        return unauthorized();
    }
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("auth_code").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    match classify(&code, &state) {
        CodeKind::Fail500 => {
            tracing::info!(fault = "fail-500", "fault injected");
            HttpResponse::InternalServerError().content_type("text/plain").body("internal error")
        }
        CodeKind::FailMalformed => {
            tracing::info!(fault = "fail-malformed", "fault injected");
            HttpResponse::Ok().content_type("application/json").body("not json")
        }
        CodeKind::FailTimeout => {
            tracing::info!(fault = "fail-timeout", delay_ms = state.settings.timeout_delay_ms, "fault injected");
            tokio::time::sleep(Duration::from_millis(state.settings.timeout_delay_ms)).await;
            error_code("TIMED_OUT")
        }
        CodeKind::FailNoToken => {
            tracing::info!(fault = "fail-no-token", "fault injected");
            HttpResponse::Ok().json(json!({}))
        }
        CodeKind::FailError(c) => {
            tracing::info!(fault = "fail-error", "fault injected");
            error_code(c)
        }
        CodeKind::FailBadAccessToken => {
            tracing::info!(fault = "fail-bad-access-token", "fault injected");
            HttpResponse::Ok().json(json!({"access_token": crate::store::random_token()}))
        }
        CodeKind::Grant(reference) => {
            let (access_token, refresh_token) = state.grants.issue_token(&reference);
            tracing::info!(reference, token_len = access_token.len(), "access token issued");
            HttpResponse::Ok().json(json!({"access_token": access_token, "refresh_token": refresh_token}))
        }
        CodeKind::Invalid => {
            tracing::info!(code_len = code.len(), "unknown, used or expired auth code");
            error_code("INVALID_AUTH_CODE")
        }
    }
}

/// `GET` or `POST /hostapp/get-user-data` with `Authorization: Token <access_token>`.
#[tracing::instrument(skip_all)]
pub async fn get_user_data(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if !caller_headers_ok(&req, &state) {
        tracing::info!("get-user-data refused: bad headers");
        return unauthorized();
    }
    let token = header(&req, AUTHORIZATION.as_str()).and_then(|h| h.strip_prefix("Token ")).map(str::trim);
    let user = token
        .and_then(|t| state.grants.token_reference(t))
        .and_then(|reference| state.users.get(&reference).cloned().map(|u| (reference, u)));
    match user {
        Some((reference, user_data)) => {
            tracing::info!(reference, encrypted = state.cipher.is_some(), "user data served");
            match &state.cipher {
                None => HttpResponse::Ok().json(json!({"user_data": user_data})),
                Some(cipher) => match cipher.encrypt(user_data.to_string().as_bytes()) {
                    Some(encrypted) => HttpResponse::Ok().json(json!({"user_data": encrypted})),
                    None => HttpResponse::InternalServerError().json(json!({"error_code": "ENCRYPTION_FAILED"})),
                },
            }
        }
        None => {
            tracing::info!("unknown or expired access token");
            error_code("INVALID_ACCESS_TOKEN")
        }
    }
}
