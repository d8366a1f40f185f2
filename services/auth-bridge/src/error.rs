//! The one error type of auth-bridge and its mapping to the §4 body.
//!
//! Client errors carry the body the client sees. Hostapp failures map per §10.4. Dependencies
//! that are down give a bare 503, and anything unexpected a bare 500; their causes are logged
//! (never echoed) and never contain tokens.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use domain::ErrorBody;

use crate::hostapp::HostappError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400, 401, 403, 404, 405 or 413: the body says what the client got wrong.
    #[error("{0}")]
    Client(ErrorBody),
    /// 401, 502 or 504: the hostapp refused the code or answered wrongly (§10.4).
    #[error(transparent)]
    Hostapp(#[from] HostappError),
    /// 429 with `Retry-After`: a rate limit was reached (README, "Rate limits").
    #[error(transparent)]
    Limited(#[from] web_kit::ratelimit::Limited),
    /// 503 with `details` `{}`: PostgreSQL, Redis or the boxes internal API is down.
    #[error("a dependency is unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// 500 with `details` `{}`: an unexpected fault.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn body(&self) -> ErrorBody {
        match self {
            ApiError::Client(body) => body.clone(),
            ApiError::Hostapp(e) => e.body(),
            ApiError::Limited(l) => l.body(),
            ApiError::Unavailable(_) => ErrorBody::unavailable("a dependency is unavailable"),
            ApiError::Internal(_) => ErrorBody::internal(),
        }
    }

    pub fn unavailable(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Unavailable(e.into())
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<ErrorBody> for ApiError {
    fn from(e: ErrorBody) -> Self {
        ApiError::Client(e)
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        let unavailable = web_kit::failure::pool_unavailable(&e);
        let e = anyhow::Error::new(e).context("getting a PostgreSQL connection");
        if unavailable {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(e)
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    /// A lost, refused or shut-down connection or a cancelled (timed-out) statement is an
    /// unavailable database (`web_kit::failure`); any other database error is a fault of ours.
    fn from(e: tokio_postgres::Error) -> Self {
        let unavailable = web_kit::failure::pg_unavailable(&e);
        let e = anyhow::Error::new(e).context("PostgreSQL");
        if unavailable {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(e)
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        let unavailable = web_kit::failure::redis_unavailable(&e);
        let e = anyhow::Error::new(e).context("Redis");
        if unavailable {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(e)
        }
    }
}

impl From<web_kit::ratelimit::LimitError> for ApiError {
    /// A limit that cannot be read fails closed: Redis being down is a 503 like any other.
    fn from(e: web_kit::ratelimit::LimitError) -> Self {
        match e {
            web_kit::ratelimit::LimitError::Limited(l) => ApiError::Limited(l),
            web_kit::ratelimit::LimitError::Redis(e) => e.into(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.body().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Limited(l) = self {
            return l.error_response();
        }
        let body = self.body();
        match self {
            ApiError::Limited(_) => {}
            ApiError::Client(_) => tracing::info!(status = body.status(), details = ?body.details, "request refused"),
            ApiError::Hostapp(e) => {
                tracing::warn!(hostapp = %e.client_id, step = e.step.as_str(), failure = ?e.failure, "hostapp failure")
            }
            ApiError::Unavailable(cause) => tracing::error!(error = format!("{cause:#}"), "dependency unavailable"),
            ApiError::Internal(cause) => tracing::error!(error = format!("{cause:#}"), "internal error"),
        }
        HttpResponse::build(self.status_code()).json(body)
    }
}
