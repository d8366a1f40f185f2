//! The one browser-origin policy of every service: CORS (boxes, auth-bridge) and the websocket
//! `Origin` check (realtime).
//!
//! - An empty list allows no origin (requests without an `Origin` header, from non-browser
//!   clients, are not concerned).
//! - `null` (sandboxed frames, `file:` pages, some redirects) is never allowed, and refused in the
//!   configuration.
//! - In production the list names each origin (`https://miniapp.example.com`), matched
//!   case-insensitively, a trailing `/` ignored; those get CORS with credentials.
//! - `*`, for local development only, allows any other origin but never with credentials: CORS
//!   answers carry no `Access-Control-Allow-Credentials`, so the browser neither sends nor
//!   exposes cookies, and a websocket from such an origin must present its token in
//!   `?access_token=` or `Authorization`, not in cookies. `*` cannot be mixed with origins.

use actix_cors::Cors;
use actix_web::http::{header, Method};

/// Which browser origins may call a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// The named origins, with credentials; empty allows none.
    List(Vec<String>),
    /// `*`: any origin but `null`, without credentials.
    AnyWithoutCredentials,
}

/// A configuration the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("ALLOWED_ORIGINS: the `null` origin is never allowed")]
    Null,
    #[error("ALLOWED_ORIGINS: `*` cannot be combined with named origins")]
    Mixed,
    #[error("ALLOWED_ORIGINS: {0:?} is not an origin (scheme://host[:port])")]
    NotAnOrigin(String),
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

impl OriginPolicy {
    /// Reads `ALLOWED_ORIGINS` entries (already split at commas); blank entries are ignored.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, OriginError> {
        let entries: Vec<String> = entries.iter().map(|e| normalize(e.as_ref())).filter(|e| !e.is_empty()).collect();
        if entries.iter().any(|e| e == "null") {
            return Err(OriginError::Null);
        }
        if entries.iter().any(|e| e == "*") {
            return if entries.len() == 1 { Ok(OriginPolicy::AnyWithoutCredentials) } else { Err(OriginError::Mixed) };
        }
        if let Some(bad) = entries.iter().find(|e| !is_origin(e)) {
            return Err(OriginError::NotAnOrigin(bad.clone()));
        }
        Ok(OriginPolicy::List(entries))
    }

    /// Whether a browser page from `origin` may call the service.
    pub fn allows(&self, origin: &str) -> bool {
        let origin = normalize(origin);
        if origin == "null" || origin.is_empty() {
            return false;
        }
        match self {
            OriginPolicy::AnyWithoutCredentials => true,
            OriginPolicy::List(list) => list.contains(&origin),
        }
    }

    /// Whether a page from `origin` may use ambient credentials (cookies).
    pub fn allows_credentials(&self, origin: &str) -> bool {
        matches!(self, OriginPolicy::List(_)) && self.allows(origin)
    }

    /// The actix-web CORS middleware for this policy; `X-Total-Count` and `X-Request-Id` are exposed, and the
    /// headers of a resumable file download (`Range`, `If-Range`, `ETag`, `Content-Range`). Requests from other
    /// origins are served without CORS headers, so the browser withholds the answer.
    pub fn cors(&self) -> Cors {
        let policy = self.clone();
        let cors = Cors::default()
            .allowed_origin_fn(move |origin, _| origin.to_str().is_ok_and(|o| policy.allows(o)))
            .allowed_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allowed_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::HeaderName::from_static("x-csrf-token"),
                header::HeaderName::from_static("idempotency-key"),
                header::HeaderName::from_static(crate::telemetry::REQUEST_ID),
                header::HeaderName::from_static(crate::telemetry::TRACEPARENT),
                header::RANGE,
                header::IF_RANGE,
                header::IF_NONE_MATCH,
            ])
            .expose_headers([
                header::HeaderName::from_static("x-total-count"),
                header::HeaderName::from_static("idempotent-replayed"),
                header::HeaderName::from_static(crate::telemetry::REQUEST_ID),
                header::ETAG,
                header::CONTENT_RANGE,
                header::ACCEPT_RANGES,
            ])
            .block_on_origin_mismatch(false)
            .max_age(600);
        match self {
            OriginPolicy::List(_) => cors.supports_credentials(),
            OriginPolicy::AnyWithoutCredentials => cors,
        }
    }
}

/// `scheme://host[:port]`, nothing after.
fn is_origin(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else { return false };
    !scheme.is_empty()
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' ', ','])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_denies_everything() {
        let p = OriginPolicy::parse::<&str>(&[]).unwrap_or(OriginPolicy::AnyWithoutCredentials);
        assert_eq!(p, OriginPolicy::List(vec![]));
        assert!(!p.allows("https://app.example"));
        assert_eq!(OriginPolicy::parse(&[""]), Ok(OriginPolicy::List(vec![])));
    }

    #[test]
    fn lists_match_exactly_with_credentials() {
        let p = OriginPolicy::parse(&["https://app.example/", " http://localhost:3000"]);
        let Ok(p) = p else { panic!("{p:?}") };
        assert!(p.allows("https://app.example") && p.allows("HTTPS://APP.EXAMPLE/"));
        assert!(p.allows("http://localhost:3000"));
        assert!(!p.allows("https://evil.example") && !p.allows("https://app.example.evil.example"));
        assert!(p.allows_credentials("https://app.example"));
        assert!(!p.allows("null"));
    }

    #[test]
    fn null_is_never_allowed() {
        assert_eq!(OriginPolicy::parse(&["null"]), Err(OriginError::Null));
        assert_eq!(OriginPolicy::parse(&["https://a.example", "NULL"]), Err(OriginError::Null));
        assert!(!OriginPolicy::AnyWithoutCredentials.allows("null"));
    }

    #[test]
    fn the_wildcard_never_carries_credentials() {
        let p = OriginPolicy::parse(&["*"]);
        assert_eq!(p, Ok(OriginPolicy::AnyWithoutCredentials));
        let p = OriginPolicy::AnyWithoutCredentials;
        assert!(p.allows("https://anything.example"));
        assert!(!p.allows_credentials("https://anything.example"));
        assert_eq!(OriginPolicy::parse(&["*", "https://a.example"]), Err(OriginError::Mixed));
    }

    #[test]
    fn entries_must_be_origins() {
        assert!(matches!(OriginPolicy::parse(&["app.example"]), Err(OriginError::NotAnOrigin(_))));
        assert!(matches!(OriginPolicy::parse(&["https://app.example/path"]), Err(OriginError::NotAnOrigin(_))));
    }
}
