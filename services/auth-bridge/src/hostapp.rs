//! The client of a hostapp's two Boxo Connect endpoints (`SPEC.md` §10.2 steps 2–4) and the
//! failure mapping of §10.4.
//!
//! Each exchange is one request, never retried (auth codes are single use): no redirects are
//! followed, the whole exchange including the body must finish within the hostapp's
//! `timeout_ms`, and the body is read with a 64 KiB cap. Codes and tokens are never logged.
//! Idle connections are kept for reuse (see [`HostappClient::new`] for why that cannot replay a
//! request).

use std::time::Duration;

use domain::error::{Detail, Details, ErrorBody, ErrorCode, Origin};
use domain::userdata::UserData;
use serde_json::{Map, Value};

use crate::registry::{HostApp, UserDataMethod};

/// Largest hostapp response body we read.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Longest accepted hostapp access token (seed `String(1000)`).
pub const ACCESS_TOKEN_MAX: usize = 1000;

/// How long an idle connection to a hostapp is kept for reuse.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Which call failed (`details.hostapp_step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    GetAccessToken,
    GetUserData,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::GetAccessToken => "get_access_token",
            Step::GetUserData => "get_user_data",
        }
    }
}

/// What went wrong with the hostapp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Any status but 200 (3xx not followed).
    Http(u16),
    /// Not JSON, not an object, too large, or a missing or bad access token.
    Malformed,
    /// Connection, DNS or TLS failure.
    Unreachable,
    /// No complete answer in time.
    TimedOut,
    /// An `error_code`, already sanitised.
    ErrorCode(String),
    /// `user_data` missing or failing §5.8, keyed `user_data.<field>`.
    InvalidUserData(Details),
}

/// A hostapp failure at one step, answered per §10.4.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hostapp {client_id} failed at {}: {failure:?}", step.as_str())]
pub struct HostappError {
    pub client_id: String,
    pub step: Step,
    pub failure: Failure,
}

pub const INVALID_AUTH_CODE: &str = "INVALID_AUTH_CODE";
pub const INVALID_USER_DATA: &str = "INVALID_USER_DATA";

impl HostappError {
    /// The §10.4 row: 401 for a refused auth code, 504 for a time-out, 502 otherwise.
    pub fn body(&self) -> ErrorBody {
        let step = self.step.as_str();
        let gateway =
            |desc: &str| ErrorBody::new(ErrorCode::BadGateway, Origin::NotDefined, desc).with("hostapp_step", step);
        match &self.failure {
            Failure::ErrorCode(code) if self.step == Step::GetAccessToken && code == INVALID_AUTH_CODE => {
                ErrorBody::unauthorized(Origin::Body, "the hostapp refused the auth code")
                    .with("auth_code", Detail::Invalid)
                    .with("hostapp_error", code.as_str())
                    .with("hostapp_step", step)
            }
            Failure::ErrorCode(code) => {
                gateway("the hostapp answered with an error").with("hostapp_error", code.as_str())
            }
            Failure::InvalidUserData(details) => gateway("the hostapp sent invalid user data")
                .with("hostapp_error", INVALID_USER_DATA)
                .with_details(details.clone()),
            Failure::Http(status) => {
                gateway("the hostapp answered with an unexpected status").with("hostapp", format!("http_{status}"))
            }
            Failure::Malformed => gateway("the hostapp answer is malformed").with("hostapp", Detail::Malformed),
            Failure::Unreachable => gateway("the hostapp is unreachable").with("hostapp", "unreachable"),
            Failure::TimedOut => ErrorBody::new(ErrorCode::GatewayTimeout, Origin::NotDefined, "the hostapp timed out")
                .with("hostapp", Detail::TimedOut)
                .with("hostapp_step", step),
        }
    }
}

/// §10.3: an upstream code is echoed only if it matches `[A-Z0-9_]{1,64}`, else `UNKNOWN`.
/// `None` when the code is absent, `null` or empty (an empty code counts as absent).
pub fn sanitise_error_code(value: Option<&Value>) -> Option<String> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s))
            if s.len() <= 64 && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') =>
        {
            Some(s.clone())
        }
        Some(_) => Some("UNKNOWN".to_owned()),
    }
}

/// Calls hostapps.
#[derive(Debug, Clone)]
pub struct HostappClient {
    http: reqwest::Client,
}

impl HostappClient {
    /// Idle connections are pooled: opening a TCP connection for each of the two calls of a
    /// login cost more than the rest of the exchange on both ends.
    ///
    /// Pooling cannot send a get-access-token request twice. The connection pool
    /// (hyper-util's legacy client) resends a request only when hyper hands it back unsent:
    /// hyper does so only while the request still sits in the connection's queue, before the
    /// connection task has taken it to write (`Envelope` dropped, or a queued request cancelled
    /// on a connection error); once taken, any failure is returned without the request, so it
    /// cannot be sent again. reqwest's own retry layer, which by default retries HTTP/2
    /// refusals, is turned off. A pooled connection that the hostapp closes while our request
    /// is being written fails that login with `unreachable` (502), never with a second call;
    /// the idle timeout stays below the 5 s default keep-alive of actix-web and Node.js to keep
    /// that race rare.
    pub fn new() -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build()?;
        Ok(HostappClient { http })
    }

    /// Step 2: trades the auth code for the hostapp's access token (thrown away after step 3).
    pub async fn access_token(&self, app: &HostApp, app_id: &str, auth_code: &str) -> Result<String, HostappError> {
        let fail = |failure| HostappError { client_id: app.client_id.clone(), step: Step::GetAccessToken, failure };
        let req = self
            .http
            .post(app.get_access_token_url.clone())
            .header("Authorization", app.credentials_header())
            .header("X-Miniapp-App-ID", app_id)
            .header("X-Hostapp-Client-ID", &app.client_id)
            .json(&serde_json::json!({"auth_code": auth_code}));
        let body = exchange(req, app.timeout).await.map_err(fail)?;
        if let Some(code) = sanitise_error_code(body.get("error_code")) {
            return Err(fail(Failure::ErrorCode(code)));
        }
        match body.get("access_token") {
            Some(Value::String(t)) if !t.is_empty() && t.chars().count() <= ACCESS_TOKEN_MAX => {
                tracing::debug!(hostapp = %app.client_id, token_len = t.len(), "hostapp access token received");
                Ok(t.clone())
            }
            _ => Err(fail(Failure::Malformed)),
        }
    }

    /// Steps 3 and 4: fetches and validates the user data.
    pub async fn user_data(&self, app: &HostApp, app_id: &str, access_token: &str) -> Result<UserData, HostappError> {
        let fail = |failure| HostappError { client_id: app.client_id.clone(), step: Step::GetUserData, failure };
        let req = match app.user_data_method {
            UserDataMethod::Get => self.http.get(app.get_user_data_url.clone()),
            UserDataMethod::Post => self.http.post(app.get_user_data_url.clone()).json(&serde_json::json!({})),
        }
        .header("Authorization", format!("{} {}", app.token_prefix, access_token))
        .header("X-Miniapp-App-ID", app_id)
        .header("X-Hostapp-Client-ID", &app.client_id);
        let body = exchange(req, app.timeout).await.map_err(fail)?;
        if let Some(code) = sanitise_error_code(body.get("error_code")) {
            return Err(fail(Failure::ErrorCode(code)));
        }
        let user_data = body.get("user_data").filter(|v| !v.is_null());
        read_user_data(app, user_data).map_err(|d| fail(Failure::InvalidUserData(d)))
    }
}

/// Validates user data (§5.8); a string is first decrypted with the host app's user-data key
/// (README, "Encrypted user data"). Without a key, or when decryption fails, the string is
/// `{"user_data": "invalid"}`: a wrong key and a tampered string look the same.
pub fn read_user_data(app: &HostApp, value: Option<&Value>) -> Result<UserData, Details> {
    let Some(Value::String(encrypted)) = value else { return UserData::validate(value) };
    let invalid = || Details::from([("user_data".to_owned(), Detail::Invalid.to_string())]);
    let cipher = app.user_data_cipher.as_ref().ok_or_else(invalid)?;
    let plain = cipher.decrypt(encrypted).ok_or_else(|| {
        tracing::info!(hostapp = %app.client_id, "encrypted user data could not be decrypted");
        invalid()
    })?;
    match serde_json::from_slice::<Value>(&plain) {
        Ok(v @ Value::Object(_)) => UserData::validate(Some(&v)),
        _ => Err(invalid()),
    }
}

/// Sends one request and reads a JSON object back, all within `timeout`.
async fn exchange(req: reqwest::RequestBuilder, timeout: Duration) -> Result<Map<String, Value>, Failure> {
    let call = async {
        let mut res = req.send().await.map_err(|e| transport_failure(&e))?;
        let status = res.status().as_u16();
        if status != 200 {
            return Err(Failure::Http(status));
        }
        if res.content_length().is_some_and(|n| n > BODY_LIMIT as u64) {
            return Err(Failure::Malformed);
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| transport_failure(&e))? {
            if body.len() + chunk.len() > BODY_LIMIT {
                return Err(Failure::Malformed);
            }
            body.extend_from_slice(&chunk);
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(Failure::Malformed),
        }
    };
    tokio::time::timeout(timeout, call).await.unwrap_or(Err(Failure::TimedOut))
}

fn transport_failure(e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::TimedOut
    } else if e.is_body() || e.is_decode() {
        Failure::Malformed
    } else {
        Failure::Unreachable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_codes_are_sanitised() {
        assert_eq!(sanitise_error_code(None), None);
        assert_eq!(sanitise_error_code(Some(&json!(null))), None);
        assert_eq!(sanitise_error_code(Some(&json!(""))), None);
        assert_eq!(sanitise_error_code(Some(&json!("INVALID_AUTH_CODE"))).as_deref(), Some("INVALID_AUTH_CODE"));
        assert_eq!(sanitise_error_code(Some(&json!("E_42"))).as_deref(), Some("E_42"));
        assert_eq!(sanitise_error_code(Some(&json!("lower"))).as_deref(), Some("UNKNOWN"));
        assert_eq!(sanitise_error_code(Some(&json!("A-B"))).as_deref(), Some("UNKNOWN"));
        assert_eq!(sanitise_error_code(Some(&json!("A".repeat(65)))).as_deref(), Some("UNKNOWN"));
        assert_eq!(sanitise_error_code(Some(&json!("A".repeat(64)))).map(|s| s.len()), Some(64));
        assert_eq!(sanitise_error_code(Some(&json!(42))).as_deref(), Some("UNKNOWN"));
    }

    #[test]
    fn failure_rows() {
        let e = |step, failure| HostappError { client_id: "h".into(), step, failure }.body();
        let b = e(Step::GetAccessToken, Failure::ErrorCode(INVALID_AUTH_CODE.into()));
        assert_eq!((b.status(), b.origin), (401, Origin::Body));
        assert_eq!(b.details.get("auth_code").map(String::as_str), Some("invalid"));
        let b = e(Step::GetUserData, Failure::ErrorCode(INVALID_AUTH_CODE.into()));
        assert_eq!(b.status(), 502);
        let b = e(Step::GetAccessToken, Failure::Http(302));
        assert_eq!(b.details.get("hostapp").map(String::as_str), Some("http_302"));
        assert_eq!(e(Step::GetAccessToken, Failure::TimedOut).status(), 504);
    }
}
