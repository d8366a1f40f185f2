//! `POST /auth/boxo/connect` (SPEC §10.7): the Boxo platform hands over a host app user's data
//! and gets our session tokens back (docs.boxo.io miniapp/Connect).
//!
//! A caller that fails authentication (Basic credentials, request signature) gets 401 with the
//! §4 body: it is not the platform. Once authenticated, every answer is 200, as the platform
//! expects: `{"auth_token", "refresh_token"}` or `{"error_code"}` (README, "Running behind the
//! Boxo platform", lists the codes).

use actix_web::{web, HttpRequest, HttpResponse};
use domain::IdentityId;
use serde::Serialize;
use serde_json::Value;
use web_kit::ratelimit::Check;

use crate::connect;
use crate::error::ApiError;
use crate::hostapp::{read_user_data, INVALID_USER_DATA};
use crate::login;
use crate::startup::AppState;

/// An unknown host app, or one that does not allow the calling miniapp.
pub const INVALID_CLIENT_ID: &str = "INVALID_CLIENT_ID";
pub const TOO_MANY_REQUESTS: &str = "TOO_MANY_REQUESTS";
pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";

#[derive(Serialize)]
struct Connected {
    auth_token: String,
    refresh_token: String,
    identity_id: IdentityId,
    expires_in: i64,
}

/// The `flow` label of this endpoint's logins.
const FLOW: &str = "connect";

fn error_code(code: &str) -> HttpResponse {
    crate::session::no_store(&mut HttpResponse::Ok()).json(serde_json::json!({ "error_code": code }))
}

/// A failure after authentication: 200 with a Boxo error code, the cause logged. A refusal of
/// the caller itself stays a 401.
fn failure(e: ApiError) -> Result<HttpResponse, ApiError> {
    web_kit::metrics::login(FLOW, login::error_outcome(&e));
    let code = match &e {
        ApiError::Client(b) if b.status() == 401 => return Err(e),
        ApiError::Client(_) | ApiError::Service(_) => INVALID_USER_DATA,
        ApiError::Limited(_) => TOO_MANY_REQUESTS,
        ApiError::Unavailable(cause) => {
            tracing::error!(error = format!("{cause:#}"), "Connect: dependency unavailable");
            SERVICE_UNAVAILABLE
        }
        ApiError::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "Connect: internal error");
            INTERNAL_ERROR
        }
    };
    Ok(error_code(code))
}

/// The body: the UserData object, a JSON string (encrypted UserData), or either under
/// `user_data`.
fn user_data_value(body: &[u8]) -> Option<Value> {
    match serde_json::from_slice::<Value>(body).ok()? {
        Value::Object(mut m) if !m.contains_key("reference") && m.contains_key("user_data") => m.remove("user_data"),
        v => Some(v),
    }
}

#[tracing::instrument(skip_all)]
#[utoipa::path(
    post,
    path = "/auth/boxo/connect",
    tag = "boxo",
    params(("Authorization" = String, Header, description = "The Boxo platform's credentials for the miniapp (README, \"Running behind the Boxo platform\")."), ("X-Miniapp-App-ID" = String, Header, description = "The miniapp."), ("X-Hostapp-Client-ID" = String, Header, description = "The host app.")),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The session, or a Boxo error code (`{\"error_code\": …}`) for a failure after authentication.", body = Object),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`user_data`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
        (status = 401, description = "The platform's credentials or signature are `required` or `invalid`: `details` names the header.", body = domain::ErrorBody),
        (status = 429, description = "Too many Connect calls.", body = domain::ErrorBody),
    )
)]
pub async fn connect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let app_id = connect::miniapp_caller(&req, &state.registry)?;
    let client_id = req.headers().get("X-Hostapp-Client-ID").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(app) = state.registry.get(client_id).filter(|a| a.allows_app(&app_id)) else {
        tracing::info!(%app_id, "Connect: unknown host app or miniapp not allowed");
        web_kit::metrics::login(FLOW, "refused");
        return Ok(error_code(INVALID_CLIENT_ID));
    };
    let body = web_kit::body::read_capped(&req, payload).await?;
    if let Err(e) = connect::check_signature(&req, &state.redis, app, &body).await {
        return failure(e);
    }
    let limit = Check::new("login_per_hostapp", &app.client_id, state.settings.rates.login_per_hostapp);
    if let Err(e) = web_kit::ratelimit::enforce(&state.redis, &[limit]).await {
        return failure(e.into());
    }
    let user = match read_user_data(app, user_data_value(&body).as_ref()) {
        Ok(user) => user,
        Err(details) => {
            tracing::info!(hostapp = %app.client_id, fields = ?details.keys().collect::<Vec<_>>(), "Connect: invalid user data");
            web_kit::metrics::login(FLOW, "invalid_user_data");
            return Ok(error_code(INVALID_USER_DATA));
        }
    };
    match login::open_session(&state, app, &app_id, &user).await {
        Ok(done) => {
            web_kit::metrics::login(FLOW, "success");
            let t = done.tokens;
            Ok(crate::session::no_store(&mut HttpResponse::Ok()).json(Connected {
                auth_token: t.access_token,
                refresh_token: t.refresh_token,
                identity_id: t.identity_id,
                expires_in: t.expires_in,
            }))
        }
        Err(e) => failure(e),
    }
}
