//! The service's one error type. Client errors carry the §4 body as they are; dependency failures
//! answer 503 (which failures count as such is `web_kit::failure`'s rule) and anything unexpected a
//! bare 500. Causes are logged, never sent.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use domain::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A 4xx whose body explains the problem to the client.
    #[error("{0}")]
    Client(ErrorBody),
    /// 429 with `Retry-After`: a rate limit was reached (README, "Rate limits").
    #[error(transparent)]
    Limited(#[from] web_kit::ratelimit::Limited),
    /// 503: PostgreSQL or Redis cannot be reached.
    #[error("dependency unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// 500: a bug or an unexpected database answer.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<ErrorBody> for ApiError {
    fn from(e: ErrorBody) -> Self {
        ApiError::Client(e)
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        if web_kit::failure::pool_unavailable(&e) {
            ApiError::Unavailable(e.into())
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        if web_kit::failure::pg_unavailable(&e) {
            ApiError::Unavailable(e.into())
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        match e.postgres() {
            Some(pg) if web_kit::failure::pg_unavailable(pg) => ApiError::Unavailable(e.into()),
            _ => ApiError::Internal(e.into()),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        if web_kit::failure::redis_unavailable(&e) {
            ApiError::Unavailable(e.into())
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl From<web_kit::ratelimit::LimitError> for ApiError {
    fn from(e: web_kit::ratelimit::LimitError) -> Self {
        match e {
            web_kit::ratelimit::LimitError::Limited(l) => ApiError::Limited(l),
            web_kit::ratelimit::LimitError::Redis(e) => e.into(),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

/// Whether a PostgreSQL error is a violation of the named unique constraint.
pub fn is_unique_violation(e: &tokio_postgres::Error, constraint: &str) -> bool {
    e.as_db_error().is_some_and(|db| {
        db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint)
    })
}

impl ApiError {
    fn body(&self) -> ErrorBody {
        match self {
            ApiError::Client(body) => body.clone(),
            ApiError::Limited(l) => l.body(),
            ApiError::Unavailable(_) => ErrorBody::unavailable("a dependency is unavailable"),
            ApiError::Internal(_) => ErrorBody::internal(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.body().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Client(_) => {}
            ApiError::Limited(l) => return l.error_response(),
            ApiError::Unavailable(cause) => tracing::warn!(error = format!("{cause:#}"), "dependency unavailable"),
            ApiError::Internal(cause) => tracing::error!(error = format!("{cause:#}"), "internal error"),
        }
        HttpResponse::build(self.status_code()).json(self.body())
    }
}
