//! `POST /auth/login` (§10.2), `POST /auth/refresh` and `POST /auth/logout` (§10.5).

use actix_web::cookie::Cookie;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use domain::auth::{check_csrf, sha256_b64u, token_error};
use domain::error::{Detail, ErrorBody, Origin};
use domain::input::{Obj, Report};
use web_kit::ratelimit::Check;

use crate::error::ApiError;
use crate::login::{self, LoginRequest};
use crate::revocation;
use crate::session::{self, TokenResponse, REFRESH_COOKIE};
use crate::startup::AppState;
use crate::store;

const CSRF_HEADER: &str = "X-CSRF-Token";

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).map(|v| v.to_str().unwrap_or(""))
}

fn with_cookies(mut res: HttpResponseBuilder, cookies: [Cookie<'static>; 3]) -> HttpResponseBuilder {
    for c in cookies {
        res.cookie(c);
    }
    res
}

fn answer(state: &AppState, tokens: &TokenResponse) -> HttpResponse {
    let s = &state.settings;
    let mut res = with_cookies(HttpResponse::Ok(), session::cookies(s.cookie_secure, tokens, s.refresh_token_ttl));
    session::no_store(&mut res).json(tokens)
}

/// `POST /auth/refresh`: the refresh token in the body, or else in the `refreshtoken` cookie
/// (then with `X-CSRF-Token`). 400/401 `details` key: `refresh_token`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RefreshBody {
    #[schema(nullable = false)]
    pub refresh_token: Option<String>,
}

/// Logs a hostapp user in: 200 with the token body and the three session cookies.
#[tracing::instrument(skip_all)]
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "sessions",
    request_body(content = crate::login::LoginBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The session: access and refresh tokens, also set as the `accesstoken`, `refreshtoken` and `tokentype` cookies.", body = Object),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`auth_code`, `app_id`, `client_id`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
        (status = 401, description = "The host app refused the auth code (`details.auth_code = invalid`, `details.hostapp_error`), or the user data is unusable.", body = domain::ErrorBody),
        (status = 403, description = "The miniapp or host app is not allowed, or the user has not consented: `details` names the field.", body = domain::ErrorBody),
        (status = 429, description = "Too many logins from this address or for this host app.", body = domain::ErrorBody),
        (status = 502, description = "The host app answered with an error or could not be reached: `details.hostapp_step`, `details.hostapp`, `details.hostapp_error`.", body = domain::ErrorBody),
        (status = 504, description = "The host app did not answer in time.", body = domain::ErrorBody),
    )
)]
pub async fn login(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = web_kit::body::json_body(&req, payload).await?;
    let request = LoginRequest::parse(&body, false)?;
    let address = web_kit::ratelimit::client_address(&req, state.settings.rates.trusted_proxy_hops);
    let done = login::run(&state, &request, &address).await;
    login::record("login", &done);
    let done = done?;
    Ok(answer(&state, &done.tokens))
}

/// Rotates the refresh token and issues a new access token for the same session.
#[tracing::instrument(skip_all)]
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "sessions",
    params(("X-CSRF-Token" = Option<String>, Header, description = "Required when the refresh token comes from the cookie.")),
    request_body(content = RefreshBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The session: access and refresh tokens, also set as the `accesstoken`, `refreshtoken` and `tokentype` cookies.", body = Object),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`refresh_token`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
        (status = 401, description = "No usable refresh token: `details.refresh_token` is `required` or `invalid`.", body = domain::ErrorBody),
        (status = 403, description = "The CSRF token of a cookie refresh is missing or wrong: `details.X-CSRF-Token`.", body = domain::ErrorBody),
        (status = 429, description = "Too many refreshes.", body = domain::ErrorBody),
    )
)]
pub async fn refresh(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = web_kit::body::optional_json_body(&req, payload).await?;
    let from_body = match &body {
        Some(v) => {
            let o = Obj::body(v)?;
            let mut r = Report::new();
            let t = o.str("refresh_token", false, &mut r).map(str::to_owned);
            r.finish(Some(t))?
        }
        None => None,
    };
    let (refresh_token, origin) = match from_body {
        Some(t) => (t, Origin::Body),
        None => match req.cookie(REFRESH_COOKIE).map(|c| c.value().to_owned()).filter(|v| !v.is_empty()) {
            Some(t) => (t, Origin::Cookies),
            None => {
                return Err(ErrorBody::unauthorized(Origin::Body, "a refresh token is required")
                    .with("refresh_token", Detail::Required)
                    .into())
            }
        },
    };
    let field = if origin == Origin::Cookies { REFRESH_COOKIE } else { "refresh_token" };

    let refused =
        || ErrorBody::unauthorized(origin, "unknown, expired or revoked refresh token").with(field, Detail::Invalid);
    let refresh_hash = sha256_b64u(&refresh_token);
    let mut client = web_kit::metrics::pool_get(&state.pool).await?;
    let tx = client.transaction().await?;
    let row = store::session_for_refresh(&tx, &refresh_hash).await?;
    let Some(row) = row.filter(|r| r.usable) else {
        drop(tx);
        // A rotated token presented again was copied: whoever holds the session now may be the
        // thief, so the whole session ends (OAuth 2.0 Security BCP, refresh token rotation).
        if let Some((sid, identity)) = store::session_of_retired_refresh(&client, &refresh_hash).await? {
            let newly = store::revoke_session(&client, sid).await?;
            revocation::announce(&state.redis, &state.pending, state.settings.access_token_ttl, &[(sid, identity)])
                .await?;
            tracing::warn!(%sid, identity_id = %identity, newly_revoked = newly, "rotated refresh token reused: session revoked");
        }
        return Err(refused().into());
    };
    let per_session = Check::new("refresh_per_session", row.sid, state.settings.rates.refresh_per_session);
    web_kit::ratelimit::enforce(&state.redis, &[per_session]).await?;
    match header(&req, CSRF_HEADER) {
        None if origin == Origin::Cookies => {
            return Err(ErrorBody::forbidden(Origin::Headers, "X-CSRF-Token is required")
                .with(CSRF_HEADER, Detail::Required)
                .into())
        }
        Some(h) if session::csrf_hash(h) != row.csrf_hash => {
            return Err(ErrorBody::forbidden(Origin::Headers, "X-CSRF-Token is invalid")
                .with(CSRF_HEADER, Detail::Invalid)
                .into())
        }
        _ => {}
    }

    let s = &state.settings;
    let new_refresh = session::random_token();
    let (access_token, _) = session::access_token(
        &state.signer,
        row.identity_id,
        row.sid,
        s.session_acr,
        &row.csrf_hash,
        &row.client_id,
        s.access_token_ttl,
    )?;
    store::rotate_refresh(&tx, row.sid, &sha256_b64u(&new_refresh), s.refresh_token_ttl).await?;
    web_kit::limits::committing(tx.commit()).await?;
    tracing::info!(sid = %row.sid, identity_id = %row.identity_id, "session refreshed");

    let tokens = TokenResponse {
        identity_id: row.identity_id,
        token_type: "bearer",
        access_token,
        expires_in: s.access_token_ttl,
        refresh_token: new_refresh,
        csrf_token: None,
    };
    Ok(answer(&state, &tokens))
}

/// Revokes the caller's session everywhere: PostgreSQL, the Redis marker every service reads,
/// and a `session.revoked` message that makes realtime close the session's sockets. 204, also
/// when the session was already revoked.
#[tracing::instrument(skip_all)]
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "sessions",
    responses(
        (status = 204, description = "The session is revoked everywhere (also when it already was)."),
    )
)]
pub async fn logout(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let credentials = web_kit::auth::Credentials::read(req.headers());
    let (token, transport) = credentials.pick(None)?;
    let claims = state.verifier.verify(token).map_err(|e| token_error(e, transport))?;
    claims.require_acr(web_kit::auth::REQUIRED_ACR)?;
    check_csrf(&claims, transport, true, header(&req, CSRF_HEADER))?;

    let client = web_kit::metrics::pool_get(&state.pool).await?;
    let newly = store::revoke_session(&client, claims.sid).await?;
    revocation::announce(&state.redis, &state.pending, state.settings.access_token_ttl, &[(claims.sid, claims.sub)])
        .await?;
    tracing::info!(sid = %claims.sid, identity_id = %claims.sub, newly_revoked = newly, "session revoked");

    Ok(with_cookies(HttpResponse::NoContent(), session::cleared_cookies(state.settings.cookie_secure)).finish())
}
