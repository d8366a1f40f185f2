//! Which PostgreSQL and Redis failures mean "the dependency is unavailable" (503) and which are
//! faults of ours (500). Every service maps its errors through these, so a restart, a shutdown or
//! a timeout reads the same everywhere.

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
}
