//! The error body every non-2xx answer carries (`SPEC.md` §4), and the vocabulary of its details.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Machine code of an error; each maps to exactly one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    Gone,
    /// 422: the request is well-formed but cannot be applied as sent; ours (not in §4), for an
    /// `Idempotency-Key` reused with another request.
    UnprocessableEntity,
    RequestTimeout,
    RequestEntityTooLarge,
    /// 416: ours (not in §4), for a `Range` outside an encrypted file (issue 18).
    RangeNotSatisfiable,
    TooManyRequests,
    Internal,
    BadGateway,
    ServiceUnavailable,
    GatewayTimeout,
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::Gone => 410,
            ErrorCode::UnprocessableEntity => 422,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::RequestEntityTooLarge => 413,
            ErrorCode::RangeNotSatisfiable => 416,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Internal => 500,
            ErrorCode::BadGateway => 502,
            ErrorCode::ServiceUnavailable => 503,
            ErrorCode::GatewayTimeout => 504,
        }
    }
}

/// Where in the request the problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Body,
    Query,
    Path,
    Headers,
    Cookies,
    Acr,
    NotDefined,
}

/// The documented detail values (§4). Free-form values (hostapp codes, `required_acr`) use strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    Required,
    Malformed,
    Invalid,
    Conflict,
    NotFound,
    Forbidden,
    Expired,
    TimedOut,
    NotSupported,
}

impl Detail {
    pub fn as_str(self) -> &'static str {
        match self {
            Detail::Required => "required",
            Detail::Malformed => "malformed",
            Detail::Invalid => "invalid",
            Detail::Conflict => "conflict",
            Detail::NotFound => "not_found",
            Detail::Forbidden => "forbidden",
            Detail::Expired => "expired",
            Detail::TimedOut => "timed_out",
            Detail::NotSupported => "not_supported",
        }
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Detail> for String {
    fn from(d: Detail) -> String {
        d.as_str().to_owned()
    }
}

/// `details` of the error body: field (dotted path) to detail value. Ordered, so bodies are stable.
pub type Details = BTreeMap<String, String>;

/// `{code, origin, desc, details}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub origin: Origin,
    pub desc: String,
    pub details: Details,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, origin: Origin, desc: impl Into<String>) -> Self {
        ErrorBody { code, origin, desc: desc.into(), details: Details::new() }
    }

    /// Adds one detail; chainable.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    pub fn with_details(mut self, details: Details) -> Self {
        self.details.extend(details);
        self
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    pub fn bad_request(origin: Origin, desc: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, origin, desc)
    }

    pub fn unauthorized(origin: Origin, desc: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, origin, desc)
    }

    pub fn forbidden(origin: Origin, desc: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, origin, desc)
    }

    /// 403 for a box rule, with `details.reason` (§4 special keys).
    pub fn box_rule(reason: &str) -> Self {
        Self::new(ErrorCode::Forbidden, Origin::NotDefined, "").with("reason", reason)
    }

    pub fn not_found(origin: Origin, field: &str) -> Self {
        Self::new(ErrorCode::NotFound, origin, format!("{field} not found")).with(field, Detail::NotFound)
    }

    /// 422 `unprocessable_entity` with `{field: invalid}`.
    pub fn unprocessable(origin: Origin, field: &str, desc: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnprocessableEntity, origin, desc).with(field, Detail::Invalid)
    }

    pub fn conflict(origin: Origin, field: &str, desc: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, origin, desc).with(field, Detail::Conflict)
    }

    /// A bare 500: the cause is only logged, never echoed.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, Origin::NotDefined, "internal server error")
    }

    pub fn unavailable(desc: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServiceUnavailable, Origin::NotDefined, desc)
    }

    /// 504 `{"commit": "timed_out"}`: the request ran out of time after its COMMIT was sent, so
    /// its change may or may not have been saved (unlike a 503, after which nothing was).
    pub fn commit_unknown(desc: impl Into<String>) -> Self {
        Self::new(ErrorCode::GatewayTimeout, Origin::NotDefined, desc).with("commit", Detail::TimedOut)
    }

    /// 400 `{"body": "malformed"}` for a body that is not a JSON object.
    pub fn malformed_body() -> Self {
        Self::bad_request(Origin::Body, "request body is not a JSON object").with("body", Detail::Malformed)
    }

    /// 400 `{"Content-Type": "invalid"}` (§2.1).
    pub fn bad_content_type() -> Self {
        Self::bad_request(Origin::Headers, "Content-Type must be application/json")
            .with("Content-Type", Detail::Invalid)
    }

    pub fn too_large() -> Self {
        Self::new(ErrorCode::RequestEntityTooLarge, Origin::Body, "request body is too large")
    }

    /// 408 `{"body": "timed_out"}`: the body did not arrive within the server's limit.
    pub fn body_timeout() -> Self {
        Self::new(ErrorCode::RequestTimeout, Origin::Body, "the request body did not arrive in time")
            .with("body", Detail::TimedOut)
    }

    /// 429: a cap or a rate limit was reached.
    pub fn too_many_requests(origin: Origin, desc: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooManyRequests, origin, desc)
    }

    pub fn not_allowed() -> Self {
        Self::new(ErrorCode::MethodNotAllowed, Origin::NotDefined, "method not allowed")
    }

    pub fn route_not_found() -> Self {
        Self::new(ErrorCode::NotFound, Origin::Path, "no such route")
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({:?}): {} {:?}", self.code, self.origin, self.desc, self.details)
    }
}

impl std::error::Error for ErrorBody {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_in_the_spec_shape() {
        let body = ErrorBody::bad_request(Origin::Path, "invalid box id").with("id", Detail::Malformed);
        let json = serde_json::to_value(&body).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"code":"bad_request","origin":"path","desc":"invalid box id","details":{"id":"malformed"}})
        );
        assert_eq!(body.status(), 400);
    }

    #[test]
    fn box_rules_carry_a_reason() {
        let json = serde_json::to_value(ErrorBody::box_rule("not_member")).unwrap_or_default();
        assert_eq!(json["origin"], "not_defined");
        assert_eq!(json["details"]["reason"], "not_member");
        assert_eq!(json["code"], "forbidden");
    }
}
