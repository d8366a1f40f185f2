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
