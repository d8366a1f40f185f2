//! The login flow of `SPEC.md` §10.2, steps 1–7, shared by `POST /auth/login` and the Boxo host
//! SDK endpoint `POST /api/v1/authorize/` (§10.8). Each step reads like the spec; the hostapp's
//! own tokens are dropped after step 3 and never stored. Steps 5–7 ([`open_session`]) also serve
//! the Boxo platform's Connect endpoint (`connect`).

use domain::error::{Detail, ErrorBody, Origin};
use domain::identity::{DisplayName, IdentityUpsert};
use domain::input::{Obj, Report};
use domain::{IdentityId, SessionId};
use serde_json::Value;
use web_kit::limits::paused;
use web_kit::ratelimit::Check;

use domain::userdata::UserData;

use crate::error::ApiError;
use crate::registry::HostApp;
use crate::session::{self, TokenResponse};
use crate::startup::AppState;
use crate::store;

/// A parsed login request.
#[derive(Clone)]
pub struct LoginRequest {
    pub auth_code: String,
    pub app_id: String,
    pub client_id: String,
    /// Only on `/api/v1/authorize/`: must equal the hostapp's `reference` when given.
    pub user_reference: Option<String>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("auth_code_len", &self.auth_code.len())
            .field("app_id", &self.app_id)
            .field("client_id", &self.client_id)
            .field("user_reference", &self.user_reference)
            .finish()
    }
}

fn bounded<'a>(o: &Obj<'a>, key: &str, max: usize, required: bool, r: &mut Report) -> Option<&'a str> {
    let s = o.str(key, required, r)?;
    let n = s.chars().count();
    if n == 0 || n > max {
        r.fail(o.path(key), Detail::Invalid);
        return None;
    }
    Some(s)
}

/// Longest `auth_code`, and longest `app_id`, `client_id` or `user_reference`.
pub const AUTH_CODE_MAX: usize = 1000;
pub const NAME_MAX: usize = 100;

/// `POST /auth/login` (§10.2). 400 `details` keys: `auth_code`, `app_id`, `client_id`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LoginBody {
    #[schema(min_length = 1, max_length = 1000)]
    pub auth_code: String,
    #[schema(min_length = 1, max_length = 100)]
    pub app_id: String,
    #[schema(min_length = 1, max_length = 100)]
    pub client_id: String,
}

/// `POST /api/v1/authorize/` (§10.8): the login body, with the host app's `user_reference`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AuthorizeBody {
    #[schema(min_length = 1, max_length = 1000)]
    pub auth_code: String,
    #[schema(min_length = 1, max_length = 100)]
    pub app_id: String,
    #[schema(min_length = 1, max_length = 100)]
    pub client_id: String,
    #[schema(min_length = 1, max_length = 100, nullable = false)]
    pub user_reference: Option<String>,
}

impl LoginRequest {
    /// `auth_code` 1–1000, `app_id` and `client_id` 1–100; `user_reference` (1–100) if asked for.
    pub fn parse(body: &Value, with_reference: bool) -> Result<Self, ErrorBody> {
        let o = Obj::body(body)?;
        let mut r = Report::new();
        let auth_code = bounded(&o, "auth_code", AUTH_CODE_MAX, true, &mut r);
        let app_id = bounded(&o, "app_id", NAME_MAX, true, &mut r);
        let client_id = bounded(&o, "client_id", NAME_MAX, true, &mut r);
        let user_reference = if with_reference { bounded(&o, "user_reference", NAME_MAX, false, &mut r) } else { None };
        let value = match (auth_code, app_id, client_id) {
            (Some(a), Some(p), Some(c)) => Some(LoginRequest {
                auth_code: a.to_owned(),
                app_id: p.to_owned(),
                client_id: c.to_owned(),
                user_reference: user_reference.map(str::to_owned),
            }),
            _ => None,
        };
        r.finish(value)
    }
}

/// What a successful login produced.
pub struct LoggedIn {
    pub tokens: TokenResponse,
}

/// The `outcome` label of `auth_logins_total`: `success`, or one per row of the §10.4 failure
/// table (the two `malformed` rows share one), or the refusals before the hostapp is asked.
pub fn outcome<T>(result: &Result<T, ApiError>) -> &'static str {
    result.as_ref().map_or_else(error_outcome, |_| "success")
}

/// The `outcome` of a failed login.
pub fn error_outcome(e: &ApiError) -> &'static str {
    use crate::hostapp::{Failure, Step, INVALID_AUTH_CODE};
    match e {
        ApiError::Service(e) => match (&e.failure, e.step) {
            (Failure::ErrorCode(code), Step::GetAccessToken) if code == INVALID_AUTH_CODE => "invalid_auth_code",
            (Failure::ErrorCode(_), Step::GetAccessToken) => "access_token_error_code",
            (Failure::ErrorCode(_), Step::GetUserData) => "user_data_error_code",
            (Failure::InvalidUserData(_), _) => "invalid_user_data",
            (Failure::Http(_), _) => "hostapp_http_status",
            (Failure::Malformed, _) => "hostapp_malformed",
            (Failure::Unreachable, _) => "hostapp_unreachable",
            (Failure::TimedOut, _) => "hostapp_timed_out",
        },
        ApiError::Unavailable(_) => "unavailable",
        ApiError::Limited(_) => "rate_limited",
        ApiError::Client(_) => "refused",
        ApiError::Internal(_) => "internal_error",
    }
}

/// Counts a login of `flow` (`login`, `authorize`, `connect`) in `auth_logins_total`.
pub fn record<T>(flow: &'static str, result: &Result<T, ApiError>) {
    web_kit::metrics::login(flow, outcome(result));
}

/// Runs steps 1–7 for a client at `address` (`web_kit::ratelimit::client_address`).
#[tracing::instrument(skip_all, fields(client_id = %req.client_id, app_id = %req.app_id))]
pub async fn run(state: &AppState, req: &LoginRequest, address: &str) -> Result<LoggedIn, ApiError> {
    // 1. The hostapp and the miniapp.
    let app = state
        .registry
        .get(&req.client_id)
        .ok_or_else(|| ErrorBody::bad_request(Origin::Body, "unknown hostapp").with("client_id", Detail::NotFound))?;
    if !app.allows_app(&req.app_id) {
        return Err(ErrorBody::bad_request(Origin::Body, "app_id is not allowed for this hostapp")
            .with("app_id", Detail::Invalid)
            .into());
    }
    // Before any call to the hostapp: failed attempts (a guessed code) pay too.
    let rates = &state.settings.rates;
    web_kit::ratelimit::enforce(
        &state.redis,
        &[
            Check::new("login_per_address", address, rates.login_per_address),
            Check::new("login_per_hostapp", &app.client_id, rates.login_per_hostapp),
        ],
    )
    .await?;

    // 2–4. Access token, user data, validation.
    // The hostapp and internal calls have their own time limits, outside the request's.
    let hostapp_token = paused(state.hostapps.access_token(app, &req.app_id, &req.auth_code)).await?;
    let user = paused(state.hostapps.user_data(app, &req.app_id, &hostapp_token)).await?;
    drop(hostapp_token);
    if req.user_reference.as_ref().is_some_and(|r| *r != user.reference) {
        return Err(ErrorBody::unauthorized(Origin::Body, "user_reference does not match the hostapp user")
            .with("user_reference", Detail::Invalid)
            .into());
    }

    open_session(state, app, &req.app_id, &user).await
}

/// Steps 5–7 for user data already validated (step 4): shared by the login flow and the Boxo
/// platform's Connect endpoint, so a session opened either way is the same session.
pub async fn open_session(
    state: &AppState,
    app: &HostApp,
    app_id: &str,
    user: &UserData,
) -> Result<LoggedIn, ApiError> {
    // 5. The identity: the link in PostgreSQL, then the public part in boxes.
    let snapshot = serde_json::to_value(user).map_err(ApiError::internal)?;
    let identity_id = {
        let client = web_kit::metrics::pool_get(&state.pool).await?;
        store::upsert_hostapp_user(&client, &app.client_id, &user.reference, IdentityId::new_v4(), &snapshot).await?
    };
    let (identifier_value, identifier_kind) = user.identifier();
    let display_name = DisplayName::parse(&user.display_name())
        .map_err(|_| ApiError::internal(anyhow::anyhow!("derived display name is invalid")))?;
    let upsert = IdentityUpsert {
        display_name,
        identifier_value,
        identifier_kind,
        identifier_verified: app.verifies_identifiers,
    };
    paused(state.boxes.upsert_identity(identity_id, &upsert)).await.map_err(ApiError::Unavailable)?;

    // 7 (material first, so a signing fault leaves nothing behind).
    let sid = SessionId::new_v4();
    let csrf_token = session::random_token();
    let csrf_hash = session::csrf_hash(&csrf_token);
    let refresh_token = session::random_token();
    let s = &state.settings;
    let (access_token, _) = session::access_token(
        &state.signer,
        identity_id,
        sid,
        s.session_acr,
        &csrf_hash,
        &app.client_id,
        s.access_token_ttl,
    )?;

    // 6 and 7: consent and session in one statement.
    let client = web_kit::metrics::pool_get(&state.pool).await?;
    let refresh_hash = domain::auth::sha256_b64u(&refresh_token);
    store::record_consent_and_open_session(
        &client,
        &store::NewSession {
            sid,
            identity_id,
            client_id: &app.client_id,
            app_id,
            user_reference: &user.reference,
            refresh_hash: &refresh_hash,
            csrf_hash: &csrf_hash,
            refresh_ttl_secs: s.refresh_token_ttl,
            max_age_secs: s.session_max_age,
        },
    )
    .await?;
    drop(client);
    tracing::info!(%identity_id, %sid, reference = %user.reference, "session opened");

    Ok(LoggedIn {
        tokens: TokenResponse {
            identity_id,
            token_type: "bearer",
            access_token,
            expires_in: s.access_token_ttl,
            refresh_token,
            csrf_token: Some(csrf_token),
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn documented_limits_are_the_parsers() {
        use utoipa::PartialSchema;
        let revoke = serde_json::to_value(crate::routes::hostapp::RevokeBody::schema()).unwrap_or_default();
        assert_eq!(revoke["properties"]["user_reference"]["maxLength"].as_u64(), Some(super::NAME_MAX as u64));
        for schema in [super::LoginBody::schema(), super::AuthorizeBody::schema()] {
            let v = serde_json::to_value(schema).unwrap_or_default();
            assert_eq!(v["properties"]["auth_code"]["maxLength"].as_u64(), Some(super::AUTH_CODE_MAX as u64));
            assert_eq!(v["properties"]["app_id"]["maxLength"].as_u64(), Some(super::NAME_MAX as u64));
            assert_eq!(v["properties"]["client_id"]["maxLength"].as_u64(), Some(super::NAME_MAX as u64));
        }
        let v = serde_json::to_value(super::AuthorizeBody::schema()).unwrap_or_default();
        assert_eq!(v["properties"]["user_reference"]["maxLength"].as_u64(), Some(super::NAME_MAX as u64));
    }
}
