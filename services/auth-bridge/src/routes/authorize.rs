//! `POST /api/v1/authorize/` (§10.8): the endpoint the Boxo host web SDK calls from the host
//! page's browser. Same flow as `/auth/login`, answered with the SDK's field names and without
//! cookies; every failure is non-2xx, because the SDK takes any 2xx as a success.

use actix_web::{web, HttpRequest, HttpResponse};
use domain::IdentityId;
use serde::Serialize;

use crate::error::ApiError;
use crate::login::{self, LoginRequest};
use crate::startup::AppState;

#[derive(Serialize)]
struct Authorized {
    auth_token: String,
    token: String,
    refresh_token: String,
    identity_id: IdentityId,
    expires_in: i64,
}

#[tracing::instrument(skip_all)]
#[utoipa::path(
    post,
    path = "/api/v1/authorize/",
    tag = "boxo",
    request_body(content = crate::login::AuthorizeBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The session, with the Boxo host SDK's field names.", body = Object),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`auth_code`, `app_id`, `client_id`, `user_reference`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
        (status = 401, description = "The host app refused the auth code (`details.auth_code = invalid`, `details.hostapp_error`), or the user data is unusable.", body = domain::ErrorBody),
        (status = 403, description = "The miniapp or host app is not allowed, or the user has not consented: `details` names the field.", body = domain::ErrorBody),
        (status = 429, description = "Too many logins from this address or for this host app.", body = domain::ErrorBody),
        (status = 502, description = "The host app answered with an error or could not be reached: `details.hostapp_step`, `details.hostapp`, `details.hostapp_error`.", body = domain::ErrorBody),
        (status = 504, description = "The host app did not answer in time.", body = domain::ErrorBody),
    )
)]
pub async fn authorize(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = web_kit::body::json_body(&req, payload).await?;
    let request = LoginRequest::parse(&body, true)?;
    let address = web_kit::ratelimit::client_address(&req, state.settings.rates.trusted_proxy_hops);
    let done = login::run(&state, &request, &address).await;
    login::record("authorize", &done);
    let t = done?.tokens;
    Ok(crate::session::no_store(&mut HttpResponse::Ok()).json(Authorized {
        auth_token: t.access_token.clone(),
        token: t.access_token,
        refresh_token: t.refresh_token,
        identity_id: t.identity_id,
        expires_in: t.expires_in,
    }))
}
