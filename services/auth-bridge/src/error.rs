//! The error type of auth-bridge: the shared one of `web_kit::failure` (client errors, 429, 503
//! for an unavailable PostgreSQL, Redis or boxes internal API, a bare 500 otherwise), plus the
//! hostapp failures of §10.4. Causes are logged (never echoed) and never contain tokens.

use domain::ErrorBody;

use crate::hostapp::HostappError;

pub type ApiError = web_kit::failure::ApiError<HostappError>;

impl web_kit::failure::ServiceError for HostappError {
    /// 401, 502 or 504 (§10.4).
    fn body(&self) -> ErrorBody {
        HostappError::body(self)
    }

    fn log(&self) {
        tracing::warn!(hostapp = %self.client_id, step = self.step.as_str(), failure = ?self.failure, "hostapp failure");
    }
}

impl From<HostappError> for ApiError {
    fn from(e: HostappError) -> Self {
        ApiError::Service(e)
    }
}
