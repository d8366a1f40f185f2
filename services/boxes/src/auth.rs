//! Session-token checks of §3, in the order of §3.7: authentication (401, including revocation and
//! unknown `sub`), ACR (403), CSRF for writes (403). Path identity (§3.5) is checked by handlers
//! after they have validated the path, with [`Caller::require_self`].

use actix_web::http::Method;
use actix_web::HttpRequest;
use domain::auth::{check_csrf, check_path_identity, pick_token, revoked_error, token_error, Claims, Presented, Transport};
use domain::realtime::revoked_sid_key;
use domain::{Detail, ErrorBody, IdentityId};
use redis::AsyncCommands;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store;

/// Every authenticated endpoint requires at least this ACR (§3.6).
pub const REQUIRED_ACR: u32 = 1;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: Claims,
    pub transport: Transport,
}

impl Caller {
    pub fn id(&self) -> IdentityId {
        self.claims.sub
    }

    /// §3.5: `{id}` in the path must be the caller.
    pub fn require_self(&self, path_id: IdentityId) -> ApiResult<()> {
        check_path_identity(path_id, &self.claims).map_err(Into::into)
    }
}

fn is_write(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

/// Authenticates a request; see the module header for the order.
pub async fn authenticate(req: &HttpRequest, state: &AppState) -> ApiResult<Caller> {
    let (claims, transport) = verify_token(req, state).await?;
    claims.require_acr(REQUIRED_ACR)?;
    let csrf = req.headers().get("X-CSRF-Token").and_then(|v| v.to_str().ok());
    check_csrf(&claims, transport, is_write(req.method()), csrf)?;
    Ok(Caller { claims, transport })
}

/// Optional authentication: an invalid or absent token makes the request anonymous (§3.7), and
/// so does a token below the required ACR, which must not unlock more than no token does.
pub async fn authenticate_optional(req: &HttpRequest, state: &AppState) -> ApiResult<Option<Caller>> {
    match verify_token(req, state).await {
        Ok((claims, _)) if claims.require_acr(REQUIRED_ACR).is_err() => Ok(None),
        Ok((claims, transport)) => Ok(Some(Caller { claims, transport })),
        Err(ApiError::Client(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn verify_token(req: &HttpRequest, state: &AppState) -> ApiResult<(Claims, Transport)> {
    // A header that is present but not text still takes precedence over cookies, and is refused.
    let authorization = req.headers().get(actix_web::http::header::AUTHORIZATION).map(|v| v.to_str().unwrap_or_default());
    let cookie_token = req.cookie("accesstoken");
    let cookie_type = req.cookie("tokentype");
    let presented = Presented {
        query: None,
        authorization,
        cookie_token: cookie_token.as_ref().map(|c| c.value()),
        cookie_type: cookie_type.as_ref().map(|c| c.value()),
    };
    let (token, transport) = pick_token(&presented)?;
    let claims = state.verifier.verify(token).map_err(|e| token_error(e, transport))?;
    let mut redis = state.redis.clone();
    let revoked: Option<String> = redis.get(revoked_sid_key(claims.sid)).await.map_err(|e| ApiError::Unavailable(e.into()))?;
    if revoked.is_some() {
        return Err(revoked_error(transport).into());
    }
    let client = state.db.get().await?;
    if !store::identities::exists(&client, claims.sub).await? {
        return Err(ErrorBody::unauthorized(transport.origin(), "unknown identity").with("sub", Detail::NotFound).into());
    }
    Ok((claims, transport))
}
