//! auth-bridge (§10): sessions (login, refresh, logout), the keys that verify tokens, what a host
//! app's server calls with its own credentials (consent, revocation), and the Boxo platform's
//! endpoints (Connect, the host SDK's authorize).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use domain::auth::Jwk;
use domain::{IdentityId, Timestamp};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;

use crate::body::{AuthorizeBody, LoginBody};
use crate::error::{read, send, Result};
use crate::health::{self, Health, Readiness};
use crate::{trim, Auth};

#[derive(Clone, Debug)]
pub struct Bridge {
    http: reqwest::Client,
    base: String,
}

/// The token body of a login or a refresh.
#[derive(Clone, Deserialize)]
pub struct Tokens {
    pub identity_id: IdentityId,
    pub token_type: String,
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: String,
    pub csrf_token: Option<String>,
}

/// A session as a browser holds it: the token body and the cookies that came with it.
#[derive(Clone)]
pub struct Login {
    pub tokens: Tokens,
    /// `name=value` of every `Set-Cookie` of the answer.
    pub cookies: Vec<(String, String)>,
}

impl Login {
    pub fn identity(&self) -> IdentityId {
        self.tokens.identity_id
    }

    /// Reads the answer of a login or a refresh: 200 with the tokens and the cookies.
    pub async fn read(res: reqwest::Response) -> Result<Login> {
        let cookies = res
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|line| line.split(';').next()?.split_once('='))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let what = format!("POST {}", res.url().path());
        let tokens = read(&what, 200, res).await?;
        Ok(Login { tokens, cookies })
    }

    /// The value of one cookie the answer set.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Cookie authentication as a page does it: `accesstoken` and `tokentype`, and the CSRF token.
    pub fn auth(&self) -> Auth {
        Auth::Cookies { cookie: self.cookie_header(), csrf: self.tokens.csrf_token.clone().unwrap_or_default() }
    }

    /// The `Cookie` header a page sends: `accesstoken` and `tokentype`.
    pub fn cookie_header(&self) -> String {
        let access = self.cookies.iter().filter(|(n, _)| n == "accesstoken" || n == "tokentype");
        access.map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// Bearer authentication with the access token.
    pub fn bearer(&self) -> Auth {
        Auth::bearer(&self.tokens.access_token)
    }
}

// Tokens must never reach a log or a panic message.
impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login").field("identity_id", &self.tokens.identity_id).finish_non_exhaustive()
    }
}

/// A host app's server, calling with its own credentials (§10.5, §10.6):
/// `Authorization: <token_prefix> base64(client_id:secret)` and `X-Hostapp-Client-ID`.
#[derive(Clone)]
pub struct HostApp {
    client_id: String,
    authorization: String,
}

impl HostApp {
    /// The credentials of host app `client_id`, whose registry entry has `token_prefix` (`Token`).
    pub fn new(client_id: &str, token_prefix: &str, secret: &str) -> HostApp {
        let encoded = STANDARD.encode(format!("{client_id}:{secret}"));
        HostApp { client_id: client_id.to_owned(), authorization: format!("{token_prefix} {encoded}") }
    }

    fn apply(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        rb.header(AUTHORIZATION, &self.authorization).header("X-Hostapp-Client-ID", &self.client_id)
    }
}

impl fmt::Debug for HostApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostApp").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// The Boxo platform calling Connect for a miniapp (§10.7): `Authorization: Basic
/// base64(app_id:secret)` and `X-Miniapp-App-ID`.
#[derive(Clone)]
pub struct Platform {
    app_id: String,
    authorization: String,
}

impl Platform {
    /// The platform's credentials for miniapp `app_id`, with its Connect secret.
    pub fn new(app_id: &str, secret: &str) -> Platform {
        let encoded = STANDARD.encode(format!("{app_id}:{secret}"));
        Platform { app_id: app_id.to_owned(), authorization: format!("Basic {encoded}") }
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Platform").field("app_id", &self.app_id).finish_non_exhaustive()
    }
}

/// What Connect answers an authenticated platform: always 200, with a session or with a Boxo
/// error code (README, "Running behind the Boxo platform").
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum Connected {
    Session(ConnectSession),
    Failed { error_code: String },
}

impl Connected {
    /// The session, when one was opened.
    pub fn session(&self) -> Option<&ConnectSession> {
        match self {
            Connected::Session(s) => Some(s),
            Connected::Failed { .. } => None,
        }
    }

    /// The Boxo error code of a failure (`INVALID_USER_DATA`…).
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Connected::Session(_) => None,
            Connected::Failed { error_code } => Some(error_code),
        }
    }
}

impl fmt::Debug for Connected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Connected::Session(s) => f.debug_tuple("Session").field(s).finish(),
            Connected::Failed { error_code } => f.debug_struct("Failed").field("error_code", error_code).finish(),
        }
    }
}

/// A session opened by Connect, with the platform's field names.
#[derive(Clone, Deserialize)]
pub struct ConnectSession {
    pub auth_token: String,
    pub refresh_token: String,
    pub identity_id: IdentityId,
    pub expires_in: i64,
}

/// A session opened by the host SDK's authorize: the access token is under both `auth_token`
/// and `token`.
#[derive(Clone, Deserialize)]
pub struct Authorized {
    pub auth_token: String,
    pub token: String,
    pub refresh_token: String,
    pub identity_id: IdentityId,
    pub expires_in: i64,
}

// Tokens must never reach a log or a panic message.
impl fmt::Debug for ConnectSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectSession").field("identity_id", &self.identity_id).finish_non_exhaustive()
    }
}

impl fmt::Debug for Authorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorized").field("identity_id", &self.identity_id).finish_non_exhaustive()
    }
}

/// Whether a host app's user consented to share data with a miniapp, and when (§10.6).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Consent {
    pub client_id: String,
    pub app_id: String,
    pub user_reference: String,
    pub consent: bool,
    pub consented_at: Option<Timestamp>,
}

/// The public keys that verify access tokens, the signing one first (§3.1).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Bridge {
    pub fn new(http: reqwest::Client, base: &str) -> Bridge {
        Bridge { http, base: trim(base) }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path`, for calls that need their own headers; read a session answer with
    /// [`Login::read`].
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// `POST /auth/login` with an auth code of the host app `client_id`, for miniapp `app_id`.
    pub async fn login(&self, body: &LoginBody) -> Result<Login> {
        let rb = self.http.post(format!("{}/auth/login", self.base)).json(body);
        Login::read(send("POST /auth/login", rb).await?).await
    }

    /// `POST /auth/refresh` with the refresh token in the body.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Login> {
        let body = serde_json::json!({ "refresh_token": refresh_token });
        let rb = self.http.post(format!("{}/auth/refresh", self.base)).json(&body);
        Login::read(send("POST /auth/refresh", rb).await?).await
    }

    /// `POST /auth/refresh` as a page does it: the `refreshtoken` cookie and the CSRF token.
    pub async fn refresh_with_cookie(&self, refresh_token: &str, csrf_token: &str) -> Result<Login> {
        let rb = self
            .http
            .post(format!("{}/auth/refresh", self.base))
            .header(reqwest::header::COOKIE, format!("refreshtoken={refresh_token}"))
            .header("X-CSRF-Token", csrf_token);
        Login::read(send("POST /auth/refresh", rb).await?).await
    }

    /// `POST /auth/logout`: ends the session of `auth`.
    pub async fn logout(&self, auth: &Auth) -> Result<()> {
        let rb = auth.apply(self.http.post(format!("{}/auth/logout", self.base)));
        read("POST /auth/logout", 204, send("POST /auth/logout", rb).await?).await
    }

    /// `POST /api/v1/authorize/`: a login as the Boxo host SDK makes it, answered without cookies.
    pub async fn authorize(&self, body: &AuthorizeBody) -> Result<Authorized> {
        let what = "POST /api/v1/authorize/";
        read(what, 200, send(what, self.http.post(format!("{}/api/v1/authorize/", self.base)).json(body)).await?).await
    }

    /// `POST /auth/boxo/connect` as `platform`, for a user of host app `client_id`: `user_data`
    /// is sent as it is (the UserData object, an encrypted string, or either under `user_data`),
    /// with the request-signature headers `signature` when the host app signs (§10.7).
    pub async fn connect(
        &self,
        platform: &Platform,
        client_id: &str,
        signature: &[(String, String)],
        user_data: impl Into<reqwest::Body>,
    ) -> Result<Connected> {
        let what = "POST /auth/boxo/connect";
        let mut rb = self
            .http
            .post(format!("{}/auth/boxo/connect", self.base))
            .header(AUTHORIZATION, &platform.authorization)
            .header("X-Miniapp-App-ID", &platform.app_id)
            .header("X-Hostapp-Client-ID", client_id)
            .header(CONTENT_TYPE, "application/json");
        for (name, value) in signature {
            rb = rb.header(name.as_str(), value.as_str());
        }
        read(what, 200, send(what, rb.body(user_data)).await?).await
    }

    /// `POST /auth/hostapp/revoke` as `host`: signs `user_reference`, a user of host app
    /// `client_id`, out of every session; answered alike when there was nothing to revoke.
    pub async fn revoke_user(&self, host: &HostApp, client_id: &str, user_reference: &str) -> Result<()> {
        let what = "POST /auth/hostapp/revoke";
        let body = serde_json::json!({ "client_id": client_id, "user_reference": user_reference });
        let rb = host.apply(self.http.post(format!("{}/auth/hostapp/revoke", self.base))).json(&body);
        read(what, 204, send(what, rb).await?).await
    }

    /// `GET /api/v1/accounts/consent/get_consent/` as `host`: whether `user_reference`, a user
    /// of host app `client_id`, consented to miniapp `app_id`.
    pub async fn consent(
        &self,
        host: &HostApp,
        client_id: &str,
        app_id: &str,
        user_reference: &str,
    ) -> Result<Consent> {
        let what = "GET /api/v1/accounts/consent/get_consent/";
        let query = [("client_id", client_id), ("app_id", app_id), ("user_reference", user_reference)];
        let rb = host.apply(self.http.get(format!("{}/api/v1/accounts/consent/get_consent/", self.base)));
        read(what, 200, send(what, rb.query(&query)).await?).await
    }

    /// `GET /.well-known/jwks.json`.
    pub async fn jwks(&self) -> Result<Jwks> {
        let what = "GET /.well-known/jwks.json";
        read(what, 200, send(what, self.http.get(format!("{}/.well-known/jwks.json", self.base))).await?).await
    }

    /// `GET /healthz`.
    pub async fn healthz(&self) -> Result<Health> {
        health::healthz(&self.http, &self.base).await
    }

    /// `GET /readyz`: PostgreSQL and Redis, or a 503 refusal naming what is down.
    pub async fn readyz(&self) -> Result<Readiness> {
        health::readyz(&self.http, &self.base).await
    }
}
