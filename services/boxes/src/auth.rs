//! Session-token checks of §3, in the order of §3.7: authentication (401, including revocation and
//! unknown `sub`), ACR (403), CSRF for writes (403). Path identity (§3.5) is checked by handlers
//! after they have validated the path, with [`Caller::require_self`].
//!
//! Most handlers call [`authenticate`]. The hot handlers (posting a message, listing events) take
//! the steps one by one instead: [`verify`] (signature and claims), [`Pending::revocation`]
//! (Redis), then [`Pending::finish`] with the answer of their own first statement to "is `sub` a
//! known identity", so the identity lookup travels with their queries. [`Pending::precheck`]
//! tells them beforehand whether ACR and CSRF will pass.

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

/// Steps 2 and 3 of §3.7: ACR, then CSRF for writes.
fn check_acr_and_csrf(req: &HttpRequest, claims: &Claims, transport: Transport) -> ApiResult<()> {
    claims.require_acr(REQUIRED_ACR)?;
    let csrf = req.headers().get("X-CSRF-Token").and_then(|v| v.to_str().ok());
    check_csrf(claims, transport, is_write(req.method()), csrf)?;
    Ok(())
}

/// A token whose signature and claims are valid (§3.3 step 1); revocation and the identity are
/// still to be checked.
#[derive(Debug)]
pub struct Pending {
    claims: Claims,
    transport: Transport,
}

/// §3.3 step 1: picks the token (§3.2) and verifies it. No I/O.
pub fn verify(req: &HttpRequest, state: &AppState) -> ApiResult<Pending> {
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
    Ok(Pending { claims, transport })
}

impl Pending {
    pub fn id(&self) -> IdentityId {
        self.claims.sub
    }

    /// §3.3 step 2: a revoked session is 401; Redis out of reach is 503 (fail closed).
    pub async fn revocation(&self, state: &AppState) -> ApiResult<()> {
        let mut redis = state.redis.clone();
        let revoked: Option<String> =
            redis.get(revoked_sid_key(self.claims.sid)).await.map_err(|e| ApiError::Unavailable(e.into()))?;
        if revoked.is_some() {
            return Err(revoked_error(self.transport).into());
        }
        Ok(())
    }

    /// The checks that follow authentication (ACR, then CSRF for writes), without the identity.
    pub fn precheck(&self, req: &HttpRequest) -> ApiResult<()> {
        check_acr_and_csrf(req, &self.claims, self.transport)
    }

    /// §3.3 step 3 with `known` (whether `sub` names an identity), then ACR and CSRF.
    pub fn finish(self, req: &HttpRequest, known: bool) -> ApiResult<Caller> {
        let caller = self.confirmed(known)?;
        check_acr_and_csrf(req, &caller.claims, caller.transport)?;
        Ok(caller)
    }

    fn confirmed(self, known: bool) -> ApiResult<Caller> {
        if !known {
            return Err(ErrorBody::unauthorized(self.transport.origin(), "unknown identity").with("sub", Detail::NotFound).into());
        }
        Ok(Caller { claims: self.claims, transport: self.transport })
    }
}

/// Whether `id` names a known identity, on a connection of its own.
pub async fn known_identity(state: &AppState, id: IdentityId) -> ApiResult<bool> {
    let client = state.db.get().await?;
    Ok(store::identities::exists(&client, id).await?)
}

/// Steps 2 and 3 of §3.3, run concurrently (Redis and PostgreSQL); their answers are then taken
/// in the order of §3.3, so the outcome is the one of running them one after the other.
async fn verify_and_confirm(req: &HttpRequest, state: &AppState) -> ApiResult<Caller> {
    let pending = verify(req, state)?;
    let (revocation, known) = futures_util::join!(pending.revocation(state), known_identity(state, pending.id()));
    revocation?;
    pending.confirmed(known?)
}

/// Authenticates a request; see the module header for the order.
pub async fn authenticate(req: &HttpRequest, state: &AppState) -> ApiResult<Caller> {
    let caller = verify_and_confirm(req, state).await?;
    check_acr_and_csrf(req, &caller.claims, caller.transport)?;
    Ok(caller)
}

/// Optional authentication: an invalid or absent token makes the request anonymous (§3.7), and
/// so does a token below the required ACR, which must not unlock more than no token does.
pub async fn authenticate_optional(req: &HttpRequest, state: &AppState) -> ApiResult<Option<Caller>> {
    match verify_and_confirm(req, state).await {
        Ok(caller) if caller.claims.require_acr(REQUIRED_ACR).is_err() => Ok(None),
        Ok(caller) => Ok(Some(caller)),
        Err(ApiError::Client(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
