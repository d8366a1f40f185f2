//! The service's error type: the shared one of `web_kit::failure` (client errors as they are,
//! 429, 503 for an unavailable dependency, a bare 500 otherwise), with no variant of its own.

pub type ApiError = web_kit::failure::ApiError;

pub type ApiResult<T> = Result<T, ApiError>;

/// A store failure: 503 when its statement met an unavailable PostgreSQL, 500 otherwise (a bug, a
/// corrupt row); the logged cause names the step.
impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        ApiError::classify(e.into())
    }
}

/// Whether a PostgreSQL error is a violation of the named unique constraint.
pub fn is_unique_violation(e: &tokio_postgres::Error, constraint: &str) -> bool {
    e.as_db_error().is_some_and(|db| {
        db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint)
    })
}
