//! What a hostapp's server calls with its own credentials (§10.5, §10.6): the credential check
//! shared with the consent endpoint, and `POST /auth/hostapp/revoke`, which signs one of its
//! users out of every session.

use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::error::{Detail, ErrorBody, Origin};
use domain::input::{Obj, Report};
use web_kit::ratelimit::Check;

use crate::error::ApiError;
use crate::registry::HostApp;
use crate::revocation;
use crate::startup::AppState;
use crate::store;

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The hostapp whose credentials the request carries: `Authorization: <token_prefix>
/// base64(id:secret)` and a matching `X-Hostapp-Client-ID`, else 401.
pub fn caller<'s>(req: &HttpRequest, state: &'s AppState) -> Result<&'s HostApp, ApiError> {
    let authorization = header(req, AUTHORIZATION.as_str()).ok_or_else(|| {
        ErrorBody::unauthorized(Origin::Headers, "hostapp credentials are required")
            .with("Authorization", Detail::Required)
    })?;
    let caller = state.registry.by_credentials(authorization).ok_or_else(|| {
        ErrorBody::unauthorized(Origin::Headers, "bad hostapp credentials").with("Authorization", Detail::Invalid)
    })?;
    match header(req, "X-Hostapp-Client-ID") {
        Some(id) if id == caller.client_id => Ok(caller),
        Some(_) => Err(ErrorBody::unauthorized(Origin::Headers, "X-Hostapp-Client-ID does not match the credentials")
            .with("X-Hostapp-Client-ID", Detail::Invalid)
            .into()),
        None => Err(ErrorBody::unauthorized(Origin::Headers, "X-Hostapp-Client-ID is required")
            .with("X-Hostapp-Client-ID", Detail::Required)
            .into()),
    }
}

/// `POST /auth/hostapp/revoke` (§10.5). 400 `details` keys: `client_id`, `user_reference`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RevokeBody {
    #[schema(min_length = 1, max_length = 100)]
    pub client_id: String,
    #[schema(min_length = 1, max_length = 100)]
    pub user_reference: String,
}

/// A required string field of 1 to 100 characters.
fn reference<'a>(o: &Obj<'a>, key: &str, r: &mut Report) -> Option<&'a str> {
    match o.str(key, true, r) {
        Some("") => {
            r.fail(key, Detail::Required);
            None
        }
        Some(v) if v.chars().count() > crate::login::NAME_MAX => {
            r.fail(key, Detail::Invalid);
            None
        }
        other => other,
    }
}

/// `POST /auth/hostapp/revoke` `{client_id, user_reference}` (§10.5, OPTIONAL): revokes every
/// live session of that user of the calling hostapp, as `/auth/logout` revokes one (PostgreSQL,
/// the Redis marker, `session.revoked` to realtime). 204, also when there was nothing to revoke,
/// so the call can be repeated.
#[tracing::instrument(skip_all)]
#[utoipa::path(
    post,
    path = "/auth/hostapp/revoke",
    tag = "host apps",
    params(("Authorization" = String, Header, description = "`<token_prefix> base64(client_id:secret)` of the host app."), ("X-Hostapp-Client-ID" = String, Header, description = "The host app's client id.")),
    request_body(content = RevokeBody, content_type = "application/json"),
    responses(
        (status = 204, description = "Every session of that user of the host app is revoked."),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`client_id`, `user_reference`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
        (status = 401, description = "Host app credentials are `required` or `invalid`: `details.Authorization`, `details.X-Hostapp-Client-ID`.", body = domain::ErrorBody),
        (status = 403, description = "`client_id` is another host app: `details.client_id = forbidden`.", body = domain::ErrorBody),
        (status = 429, description = "Too many revocations from this host app.", body = domain::ErrorBody),
    )
)]
pub async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&req, &state)?;
    let per_hostapp = Check::new("revoke_per_hostapp", &caller.client_id, state.settings.rates.revoke_per_hostapp);
    web_kit::ratelimit::enforce(&state.redis, &[per_hostapp]).await?;
    let body = web_kit::body::json_body(&req, payload).await?;
    let o = Obj::body(&body)?;
    let mut r = Report::new();
    let (client_id, user_reference) = (reference(&o, "client_id", &mut r), reference(&o, "user_reference", &mut r));
    let (client_id, user_reference) = r.finish(client_id.zip(user_reference))?;
    if client_id != caller.client_id {
        return Err(ErrorBody::forbidden(Origin::Body, "these credentials belong to another hostapp")
            .with("client_id", Detail::Forbidden)
            .into());
    }

    let client = web_kit::metrics::pool_get(&state.pool).await?;
    let revoked = store::revoke_user_sessions(&client, client_id, user_reference).await?;
    revocation::announce(&state.redis, &state.pending, state.settings.access_token_ttl, &revoked).await?;
    tracing::info!(client_id, sessions = revoked.len(), "hostapp revoked a user's sessions");
    Ok(HttpResponse::NoContent().finish())
}
