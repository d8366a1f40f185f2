//! auth-bridge's sessions (§10.2, §10.5): login, refresh, logout.

use domain::IdentityId;
use serde::Deserialize;

use crate::body::LoginBody;
use crate::error::{read, send, Result};
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
}
