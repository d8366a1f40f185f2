//! The service's error type for its own helper endpoints, answered with the §4 body.
//!
//! The Boxo Connect endpoints answer in the hostapp format (`{"error_code"}`) instead and do not
//! use this type.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use domain::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Any 4xx whose body the client may see (status from the body's code).
    #[error("{0}")]
    Client(ErrorBody),
}

impl From<ErrorBody> for ApiError {
    fn from(e: ErrorBody) -> Self {
        ApiError::Client(e)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Client(body) => StatusCode::from_u16(body.status()).unwrap_or(StatusCode::BAD_REQUEST),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Client(body) => HttpResponse::build(self.status_code()).json(body),
        }
    }
}
