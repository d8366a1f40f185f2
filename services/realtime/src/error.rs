//! The one error type of the service's HTTP surface: the handshake refusals of §9.1 and the
//! health checks, answered with the §4 JSON body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use domain::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal the contract describes (400, 401, 403, 404, 405, 503), answered as is.
    #[error("{0}")]
    Refused(ErrorBody),
    /// 500: an unexpected fault. The cause is logged; the client gets the generic body.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl From<ErrorBody> for ApiError {
    fn from(body: ErrorBody) -> Self {
        ApiError::Refused(body)
    }
}

impl ApiError {
    /// 503 for a dependency (Redis) that cannot be reached.
    pub fn unavailable(desc: &str) -> Self {
        ApiError::Refused(ErrorBody::unavailable(desc))
    }

    fn body(&self) -> ErrorBody {
        match self {
            ApiError::Refused(body) => body.clone(),
            ApiError::Internal(_) => ErrorBody::internal(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.body().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        HttpResponse::build(self.status_code()).json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Detail, Origin};

    #[test]
    fn refusals_keep_their_status_and_internal_errors_hide_their_cause() {
        let e = ApiError::from(ErrorBody::forbidden(Origin::Path, "x").with("id", Detail::Forbidden));
        assert_eq!(e.status_code(), StatusCode::FORBIDDEN);
        let e = ApiError::Internal(anyhow::anyhow!("secret cause"));
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.body().desc, "internal server error");
    }
}
