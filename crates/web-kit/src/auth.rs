//! What every service reads the same way from an authenticated request: the credentials it
//! presents (§3.2) and the ACR it must carry (§3.6). Verification itself is `domain::auth`.

use actix_web::cookie::Cookie;
use actix_web::http::header::{self, HeaderMap};
use domain::auth::{pick_token, Presented, Transport};
use domain::ErrorBody;

/// Every authenticated endpoint requires at least this ACR (§3.6).
pub const REQUIRED_ACR: u32 = 1;

/// Name of the cookie carrying the access token.
pub const ACCESS_COOKIE: &str = "accesstoken";
/// Name of the cookie that must say `bearer`.
pub const TYPE_COOKIE: &str = "tokentype";

/// The `Authorization` header and the token cookies of a request, borrowed from its headers.
#[derive(Debug, Default)]
pub struct Credentials<'a> {
    /// Present even when it is not text (then empty): it still takes precedence over cookies, and
    /// is refused.
    authorization: Option<&'a str>,
    token: Option<Cookie<'a>>,
    kind: Option<Cookie<'a>>,
}

impl<'a> Credentials<'a> {
    /// Reads the credentials from `headers`; cookies are percent-decoded as actix-web does.
    pub fn read(headers: &'a HeaderMap) -> Self {
        let authorization = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or_default());
        let (mut token, mut kind) = (None, None);
        let cookies = headers
            .get_all(header::COOKIE)
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(';'))
            .filter_map(|c| Cookie::parse_encoded(c.trim()).ok());
        for cookie in cookies {
            match cookie.name() {
                ACCESS_COOKIE if token.is_none() => token = Some(cookie),
                TYPE_COOKIE if kind.is_none() => kind = Some(cookie),
                _ => {}
            }
        }
        Credentials { authorization, token, kind }
    }

    /// The token to verify and how it came, by the precedence of §3.2: `query` (the websocket's
    /// `?access_token=`, `None` elsewhere), then `Authorization`, then the cookies.
    pub fn pick<'b>(&'b self, query: Option<&'b str>) -> Result<(&'b str, Transport), ErrorBody> {
        pick_token(&Presented {
            query,
            authorization: self.authorization,
            cookie_token: self.token.as_ref().map(Cookie::value),
            cookie_type: self.kind.as_ref().map(Cookie::value),
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
            );
        }
        map
    }

    #[test]
    fn query_then_header_then_cookies() {
        let h = headers(&[("authorization", "Bearer h"), ("cookie", "accesstoken=c; tokentype=bearer")]);
        let c = Credentials::read(&h);
        assert_eq!(c.pick(Some("q")).ok(), Some(("q", Transport::Query)));
        assert_eq!(c.pick(None).ok(), Some(("h", Transport::Bearer)));
        let h = headers(&[("cookie", "other=1"), ("cookie", "accesstoken=a%2Eb; tokentype=bearer")]);
        assert_eq!(Credentials::read(&h).pick(None).ok(), Some(("a.b", Transport::Cookie)));
        let h = headers(&[("cookie", "accesstoken=c")]);
        assert_eq!(Credentials::read(&h).pick(None).err().map(|e| e.status()), Some(401));
    }
}
