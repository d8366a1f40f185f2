//! The error of every store function. It names the step that failed, as the place in `store/`
//! that sent the statement or read the row, so the log line of a 500 points at it.

use std::panic::Location;

/// What made a row unreadable.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// PostgreSQL failed a statement, or could not be reached.
    #[error("statement at {at}")]
    Statement {
        at: &'static Location<'static>,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A row PostgreSQL returned does not decode: a corrupt value is an error, never a default.
    #[error("reading a row at {at}")]
    Row {
        at: &'static Location<'static>,
        #[source]
        source: Cause,
    },
}

impl Error {
    pub(super) fn statement(at: &'static Location<'static>, source: tokio_postgres::Error) -> Self {
        Error::Statement { at, source }
    }

    /// A value that decoded but is not one the service writes.
    #[track_caller]
    pub(super) fn corrupt(what: impl Into<String>) -> Self {
        Error::Row { at: Location::caller(), source: what.into().into() }
    }

    /// The PostgreSQL failure of a statement, to tell an outage (503) from a bug (500).
    pub fn postgres(&self) -> Option<&tokio_postgres::Error> {
        match self {
            Error::Statement { source, .. } => Some(source),
            Error::Row { .. } => None,
        }
    }
}

/// `map_err` for a statement sent without the helpers of `sql` (the pipelined requests): the
/// error names the line that calls this.
#[track_caller]
pub(super) fn step() -> impl Fn(tokio_postgres::Error) -> Error {
    let at = Location::caller();
    move |e| Error::statement(at, e)
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn the_logged_chain_names_the_step() {
        let logged = format!("{:#}", anyhow::Error::from(Error::corrupt("event type \"msg.bogus\"")));
        assert!(logged.contains("store/error.rs:"), "{logged}");
        assert!(logged.contains("msg.bogus"), "{logged}");
    }
}
