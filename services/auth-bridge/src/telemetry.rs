//! Logging: one JSON line per event, written to a sink chosen by the caller.
//!
//! `main` writes to stdout; tests pass a capturing writer to check what reaches the logs.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// A JSON subscriber filtered by `RUST_LOG`, or by `default_filter` when it is unset.
pub fn subscriber<W>(default_filter: &str, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(writer).finish()
}

/// Installs `subscriber` for the whole process; a second call keeps the first subscriber.
pub fn init(subscriber: impl Subscriber + Send + Sync) {
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        tracing::warn!("a global tracing subscriber was already installed");
    }
}
