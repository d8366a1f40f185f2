//! A typed client of the whole API: boxes' public and internal HTTP API ([`Boxes`],
//! [`Internal`]), auth-bridge's sessions and Boxo platform endpoints ([`Bridge`], calling as a
//! user, a host app's server or the platform) and realtime's websocket ([`Socket`]).
//!
//! Answers are read into the types of `domain` (`BoxView`, `Event`, `CryptoAction`…); request
//! bodies are the serialisable shapes of [`body`], since `domain`'s request types only parse. A
//! refusal is an [`Error::Api`] carrying the §4 error body.

pub mod body;
mod boxes;
mod bridge;
mod error;
pub mod health;
mod socket;

pub use boxes::{Boxes, Internal};
pub use bridge::{Authorized, Bridge, ConnectSession, Connected, Consent, HostApp, Jwks, Login, Platform, Tokens};
pub use error::{read as answer, Error, Result};
pub use socket::Socket;

/// How a caller proves who it is (§3.2).
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>`; the value held is the whole header value.
    Bearer(String),
    /// The session cookies as a `Cookie` header value, with the CSRF token that state-changing
    /// requests send in `X-CSRF-Token`.
    Cookies { cookie: String, csrf: String },
}

impl Auth {
    /// Bearer authentication with `token`.
    pub fn bearer(token: &str) -> Auth {
        Auth::Bearer(format!("Bearer {token}"))
    }

    fn apply(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::Bearer(header) => rb.header(reqwest::header::AUTHORIZATION, header),
            Auth::Cookies { cookie, csrf } => rb.header(reqwest::header::COOKIE, cookie).header("X-CSRF-Token", csrf),
        }
    }
}

// Tokens and CSRF values must never reach a log or a panic message.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Auth::Bearer(..)"),
            Auth::Cookies { .. } => f.write_str("Auth::Cookies(..)"),
        }
    }
}

/// `base` without a trailing slash, so paths join with `format!("{base}{path}")`.
fn trim(base: &str) -> String {
    base.trim_end_matches('/').to_owned()
}
