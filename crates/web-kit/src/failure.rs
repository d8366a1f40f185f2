//! The one error type of every service's HTTP surface and the one classification of PostgreSQL
//! and Redis failures into §4 answers.
//!
//! A client error carries its §4 body as it is; a rate limit answers 429 with `Retry-After`; a
//! dependency that is unavailable (down, restarting, shutting down, overloaded, or a statement
//! that timed out) answers a bare 503; anything unexpected a bare 500. Causes are logged, never
//! sent. A service adds only its own variants, through [`ServiceError`] (auth-bridge's hostapp
//! failures); the others use [`ApiError`] with its default, [`NoServiceError`].

use std::convert::Infallible;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use domain::ErrorBody;
use tokio_postgres::error::SqlState;

/// SQLSTATE classes that say the server cannot serve now: 08 connection exception, 53
/// insufficient resources (too many connections, out of memory, disk full), 57 operator
/// intervention (57014 statement timeout, 57P01 admin shutdown, 57P02 crash shutdown,
/// 57P03 cannot connect now).
const UNAVAILABLE_CLASSES: [&str; 3] = ["08", "53", "57"];

/// Whether a PostgreSQL error is the database being out of reach, shutting down, overloaded or
/// too slow, rather than a bug or a constraint.
pub fn pg_unavailable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return sqlstate_unavailable(code);
    }
    // No SQLSTATE: an I/O error, a failed or timed-out connect. Conversion errors have no I/O
    // source and stay internal.
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    io || e.to_string() == "timeout waiting for server" || e.to_string() == "error connecting to server"
}

pub fn sqlstate_unavailable(code: &SqlState) -> bool {
    UNAVAILABLE_CLASSES.iter().any(|class| code.code().starts_with(class))
}

/// Whether a pool error is the database being unavailable: every pool timeout, a closed pool, or
/// a connection that could not be made.
pub fn pool_unavailable(e: &deadpool_postgres::PoolError) -> bool {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Timeout(_) | PoolError::Closed | PoolError::PostCreateHook(_) => true,
        PoolError::Backend(e) => pg_unavailable(e),
        PoolError::NoRuntimeSpecified => false,
    }
}

/// Whether a Redis error is Redis being unavailable. Only an answer of the wrong type (a bug of
/// ours) and a bad client configuration are not.
pub fn redis_unavailable(e: &redis::RedisError) -> bool {
    !matches!(e.kind(), redis::ErrorKind::TypeError | redis::ErrorKind::InvalidClientConfig)
}

/// Answers of every service: the §4 body and its status, `E` for a service's own failures.
#[derive(Debug, thiserror::Error)]
pub enum ApiError<E: ServiceError = NoServiceError> {
    /// A 4xx whose body explains the problem to the client.
    #[error("{0}")]
    Client(ErrorBody),
    /// 429 with `Retry-After`: a rate limit was reached (README, "Rate limits").
    #[error(transparent)]
    Limited(#[from] crate::ratelimit::Limited),
    /// 503 with `details` `{}`: PostgreSQL, Redis or another dependency cannot serve now.
    #[error("dependency unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// 500 with `details` `{}`: a bug or an unexpected answer.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
    /// A failure only this service has, answered with its own body.
    #[error(transparent)]
    Service(E),
}

/// A service's own kind of failure, next to the shared ones.
pub trait ServiceError: std::error::Error + Send + Sync + 'static {
    /// The §4 body (its code gives the status).
    fn body(&self) -> ErrorBody;
    /// Records the failure; never its secrets.
    fn log(&self) {}
}

/// For services without failures of their own.
pub type NoServiceError = Infallible;

impl ServiceError for Infallible {
    fn body(&self) -> ErrorBody {
        match *self {}
    }
}

impl<E: ServiceError> ApiError<E> {
    /// 503 for a dependency known to be unavailable.
    pub fn unavailable(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Unavailable(e.into())
    }

    /// 500 for a fault of ours.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    /// 503 or 500, by the first PostgreSQL, pool or Redis error in `e`'s chain: a statement
    /// timeout wrapped in `.context()` is still a 503.
    pub fn classify(e: anyhow::Error) -> Self {
        if chain_unavailable(&e) {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(e)
        }
    }

    pub fn body(&self) -> ErrorBody {
        match self {
            ApiError::Client(body) => body.clone(),
            ApiError::Limited(l) => l.body(),
            ApiError::Unavailable(_) => ErrorBody::unavailable("a dependency is unavailable"),
            ApiError::Internal(_) => ErrorBody::internal(),
            ApiError::Service(e) => e.body(),
        }
    }
}

/// Whether the first dependency error in the chain says the dependency is unavailable.
fn chain_unavailable(e: &anyhow::Error) -> bool {
    for cause in e.chain() {
        if let Some(e) = cause.downcast_ref::<tokio_postgres::Error>() {
            return pg_unavailable(e);
        }
        if let Some(e) = cause.downcast_ref::<deadpool_postgres::PoolError>() {
            return pool_unavailable(e);
        }
        if let Some(e) = cause.downcast_ref::<redis::RedisError>() {
            return redis_unavailable(e);
        }
    }
    false
}

impl<E: ServiceError> From<ErrorBody> for ApiError<E> {
    fn from(e: ErrorBody) -> Self {
        ApiError::Client(e)
    }
}

impl<E: ServiceError> From<anyhow::Error> for ApiError<E> {
    fn from(e: anyhow::Error) -> Self {
        ApiError::classify(e)
    }
}

impl<E: ServiceError> From<deadpool_postgres::PoolError> for ApiError<E> {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ApiError::classify(anyhow::Error::new(e).context("getting a PostgreSQL connection"))
    }
}

impl<E: ServiceError> From<tokio_postgres::Error> for ApiError<E> {
    fn from(e: tokio_postgres::Error) -> Self {
        ApiError::classify(anyhow::Error::new(e).context("PostgreSQL"))
    }
}

impl<E: ServiceError> From<redis::RedisError> for ApiError<E> {
    fn from(e: redis::RedisError) -> Self {
        ApiError::classify(anyhow::Error::new(e).context("Redis"))
    }
}

impl<E: ServiceError> From<crate::ratelimit::LimitError> for ApiError<E> {
    /// A limit that cannot be read fails closed: Redis being down is a 503 like any other.
    fn from(e: crate::ratelimit::LimitError) -> Self {
        match e {
            crate::ratelimit::LimitError::Limited(l) => ApiError::Limited(l),
            crate::ratelimit::LimitError::Redis(e) => e.into(),
        }
    }
}

impl<E: ServiceError> ResponseError for ApiError<E> {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.body().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Client(body) => {
                tracing::debug!(status = body.status(), details = ?body.details, "request refused")
            }
            ApiError::Limited(l) => return l.error_response(),
            ApiError::Unavailable(cause) => tracing::warn!(error = format!("{cause:#}"), "dependency unavailable"),
            ApiError::Internal(cause) => tracing::error!(error = format!("{cause:#}"), "internal error"),
            ApiError::Service(e) => e.log(),
        }
        HttpResponse::build(self.status_code()).json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_and_timeout_states_are_unavailable() {
        for code in [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::QUERY_CANCELED,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::CONNECTION_FAILURE,
        ] {
            assert!(sqlstate_unavailable(&code), "{}", code.code());
        }
        for code in [SqlState::UNIQUE_VIOLATION, SqlState::SYNTAX_ERROR, SqlState::T_R_DEADLOCK_DETECTED] {
            assert!(!sqlstate_unavailable(&code), "{}", code.code());
        }
    }

    #[test]
    fn redis_io_errors_are_unavailable_and_type_errors_are_not() {
        let io = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(redis_unavailable(&io));
        let loading = redis::RedisError::from((redis::ErrorKind::BusyLoadingError, "loading"));
        assert!(redis_unavailable(&loading));
        let typed = redis::RedisError::from((redis::ErrorKind::TypeError, "wrong type"));
        assert!(!redis_unavailable(&typed));
    }

    #[test]
    fn causes_wrapped_in_context_keep_their_class() {
        let io = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        let e: ApiError = anyhow::Error::new(io).context("reading a counter").into();
        assert!(matches!(e, ApiError::Unavailable(_)));
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let typed = redis::RedisError::from((redis::ErrorKind::TypeError, "wrong type"));
        let e: ApiError = anyhow::Error::new(typed).context("reading a counter").into();
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let e: ApiError = anyhow::anyhow!("secret cause").into();
        assert_eq!(e.body().desc, "internal server error");
    }
}
