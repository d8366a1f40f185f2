//! Session-token checks of §3, in the order of §3.7: authentication (401, including revocation and
//! unknown `sub`), ACR (403), CSRF for writes (403). Path identity (§3.5) is checked by handlers
//! after they have validated the path, with [`Caller::own_path`] or [`Caller::require_self`].
//!
//! Handlers take the caller as an argument: [`Caller`] (every check done), or [`MaybeCaller`] on
//! optional-auth endpoints. The hot handlers (posting a message, listing events) take a
//! [`Pending`] instead (signature and claims verified, no I/O yet) and finish the steps
//! themselves: [`Pending::revocation`] (the in-memory set of revoked sessions,
//! `web_kit::revocations`), then [`Pending::finish`] with the answer of their own first statement
//! to "is `sub` a known identity", so the identity lookup travels with their queries.
//! [`Pending::precheck`] tells them beforehand whether ACR and CSRF will pass.
//!
//! The other arguments of a handler that takes one must not fail (the path as `String`, the
//! payload, the state): actix polls all arguments together and answers with the first failure
//! that is ready, which would then come before authentication, against the order of §3.7.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{web, FromRequest, HttpRequest};
use domain::auth::{
    check_csrf, check_path_identity, revoked_error, token_error, Claims, TokenError, Transport, Verifier,
};
use domain::input::path_id;
use domain::{Detail, ErrorBody, IdentityId};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use web_kit::auth::{Credentials, REQUIRED_ACR};
use web_kit::revocations::Status;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store;

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

    /// Steps 4 and 5 of §3.7 for a path whose `{id}` is the only thing to validate: the id, then
    /// that it is the caller.
    pub fn own_path(&self, raw: &str) -> ApiResult<IdentityId> {
        let id = path_id(raw, "id")?;
        self.require_self(id)?;
        Ok(id)
    }
}

/// The caller of an optional-auth endpoint: `None` when the request counts as anonymous.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

fn app_state(req: &HttpRequest) -> ApiResult<web::Data<AppState>> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the application state is not registered")))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req, &*app_state(&req)?).await })
    }
}

impl FromRequest for MaybeCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate_optional(&req, &*app_state(&req)?).await.map(MaybeCaller) })
    }
}

impl FromRequest for Pending {
    type Error = ApiError;
    type Future = Ready<ApiResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(app_state(req).and_then(|state| verify(req, &state)))
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
fn verify(req: &HttpRequest, state: &AppState) -> ApiResult<Pending> {
    let credentials = Credentials::read(req.headers());
    let (token, transport) = credentials.pick(None)?;
    let claims = state.verified.verify(&state.verifier, token).map_err(|e| token_error(e, transport))?;
    Ok(Pending { claims, transport })
}

/// Claims of tokens whose signature was verified recently, keyed by the whole token: a client
/// presents the same token on every request until it refreshes it, and the Ed25519 verification
/// is the largest CPU cost of a request. The verdict on a given token string can only change
/// with time (the keys are loaded once at start), so a cached token is accepted only while its
/// `exp` is still ahead; from then on it goes through the full verification again, which applies
/// the leeway and answers `expired` exactly as before. Only successes are kept.
#[derive(Debug, Default)]
pub struct VerifiedTokens {
    claims: Mutex<HashMap<Box<str>, Claims>>,
}

impl VerifiedTokens {
    /// Tokens kept at most; when full, expired entries are dropped, then everything if needed.
    const CAPACITY: usize = 8192;

    pub fn verify(&self, verifier: &Verifier, token: &str) -> Result<Claims, TokenError> {
        let now = unix_now();
        if let Some(claims) = self.lock().get(token).filter(|c| c.exp > now) {
            return Ok(claims.clone());
        }
        let claims = verifier.verify(token)?;
        if claims.exp > now {
            let mut cache = self.lock();
            if cache.len() >= Self::CAPACITY {
                cache.retain(|_, c| c.exp > now);
                if cache.len() >= Self::CAPACITY {
                    cache.clear();
                }
            }
            cache.insert(token.into(), claims.clone());
        }
        Ok(claims)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Claims>> {
        // A panic while holding the lock leaves a map that is still consistent: keep using it.
        self.claims.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Pending {
    pub fn id(&self) -> IdentityId {
        self.claims.sub
    }

    /// §3.3 step 2, in memory: a revoked session is 401; a set that may be missing revocations
    /// (subscription down, not loaded yet, Redis without its revocations) is 503 (fail closed).
    pub fn revocation(&self, state: &AppState) -> ApiResult<()> {
        match state.revocations.check(self.claims.sid) {
            Status::Live => Ok(()),
            Status::Revoked => Err(revoked_error(self.transport).into()),
            Status::Unavailable => {
                Err(ApiError::Unavailable(anyhow::anyhow!("the revoked sessions are not loaded from Redis")))
            }
        }
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
            return Err(ErrorBody::unauthorized(self.transport.origin(), "unknown identity")
                .with("sub", Detail::NotFound)
                .into());
        }
        Ok(Caller { claims: self.claims, transport: self.transport })
    }
}

/// Whether `id` names a known identity, on a connection of its own.
pub async fn known_identity(state: &AppState, id: IdentityId) -> ApiResult<bool> {
    let client = web_kit::metrics::pool_get(&state.db).await?;
    Ok(store::identities::exists(&client, id).await?)
}

/// Steps 2 and 3 of §3.3, in that order.
async fn verify_and_confirm(req: &HttpRequest, state: &AppState) -> ApiResult<Caller> {
    let pending = verify(req, state)?;
    pending.revocation(state)?;
    let known = known_identity(state, pending.id()).await?;
    pending.confirmed(known)
}

/// Authenticates a request; see the module header for the order.
async fn authenticate(req: &HttpRequest, state: &AppState) -> ApiResult<Caller> {
    let caller = verify_and_confirm(req, state).await?;
    check_acr_and_csrf(req, &caller.claims, caller.transport)?;
    Ok(caller)
}

/// Optional authentication: an invalid or absent token makes the request anonymous (§3.7), and
/// so does a token below the required ACR, which must not unlock more than no token does.
async fn authenticate_optional(req: &HttpRequest, state: &AppState) -> ApiResult<Option<Caller>> {
    match verify_and_confirm(req, state).await {
        Ok(caller) if caller.claims.require_acr(REQUIRED_ACR).is_err() => Ok(None),
        Ok(caller) => Ok(Some(caller)),
        Err(ApiError::Client(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
