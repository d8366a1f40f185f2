//! Session material (§3.1, §3.4, §10.2 step 7): random tokens, access JWTs and the cookies
//! that carry them (§3.2).

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use domain::auth::{sha256_b64u, Claims, SessionClaims, Signer};
use domain::{IdentityId, SessionId};
use rand::RngCore;
use serde::Serialize;
use web_kit::auth::{ACCESS_COOKIE, TYPE_COOKIE};

use crate::error::ApiError;

pub const REFRESH_COOKIE: &str = "refreshtoken";

/// 32 random bytes as b64u: CSRF and refresh tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    domain::auth::b64u_token(&bytes)
}

/// Signs an access token for one session.
pub fn access_token(
    signer: &Signer,
    sub: IdentityId,
    sid: SessionId,
    acr: u32,
    csrf_hash: &str,
    client_id: &str,
    ttl_secs: i64,
) -> Result<(String, Claims), ApiError> {
    let acr = acr.to_string();
    signer
        .sign(SessionClaims { sub, sid, acr: &acr, csrf_hash, client_id, ttl_secs })
        .map_err(|e| ApiError::internal(anyhow::Error::new(e).context("signing an access token")))
}

/// The body of a successful login (§10.2 step 8) or refresh (§10.5, `csrf_token` null).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub identity_id: IdentityId,
    pub token_type: &'static str,
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: String,
    pub csrf_token: Option<String>,
}

/// The three session cookies: `HttpOnly; SameSite=Strict; Path=/` (`Path=/auth` for the refresh
/// cookie), `Secure` unless turned off.
pub fn cookies(secure: bool, t: &TokenResponse, refresh_ttl_secs: i64) -> [Cookie<'static>; 3] {
    let access_age = CookieDuration::seconds(t.expires_in);
    [
        cookie(ACCESS_COOKIE, t.access_token.clone(), "/", secure, access_age),
        cookie(TYPE_COOKIE, "bearer".to_owned(), "/", secure, access_age),
        cookie(REFRESH_COOKIE, t.refresh_token.clone(), "/auth", secure, CookieDuration::seconds(refresh_ttl_secs)),
    ]
}

/// The same cookies, emptied with `Max-Age=0`.
pub fn cleared_cookies(secure: bool) -> [Cookie<'static>; 3] {
    [
        cookie(ACCESS_COOKIE, String::new(), "/", secure, CookieDuration::ZERO),
        cookie(TYPE_COOKIE, String::new(), "/", secure, CookieDuration::ZERO),
        cookie(REFRESH_COOKIE, String::new(), "/auth", secure, CookieDuration::ZERO),
    ]
}

fn cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    secure: bool,
    max_age: CookieDuration,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .path(path)
        .max_age(max_age)
        .finish()
}

/// Token answers must not be kept by browsers or proxies (RFC 6749 §5.1).
pub fn no_store(res: &mut actix_web::HttpResponseBuilder) -> &mut actix_web::HttpResponseBuilder {
    res.insert_header(("Cache-Control", "no-store")).insert_header(("Pragma", "no-cache"))
}

/// `b64u(SHA-256(csrf_token))`, the `csh` claim and the stored CSRF hash.
pub fn csrf_hash(csrf_token: &str) -> String {
    sha256_b64u(csrf_token)
}
