//! Logs: JSON lines (or `pretty` for humans) filtered by `RUST_LOG`, and one span plus one line per
//! request carrying a request id, the method, the path, the status and the duration. The query
//! string (it may hold `access_token` or a key-share hash), headers and bodies are never logged.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing::{Instrument, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// A subscriber writing to `writer`, filtered by `RUST_LOG` or else by `default_filter`.
pub fn subscriber<W>(default_filter: &str, format: &str, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    if format == "pretty" {
        Box::new(builder.finish())
    } else {
        Box::new(builder.json().finish())
    }
}

/// Installs a stdout subscriber for the process. A second call (tests start several applications
/// in one process) keeps the first.
pub fn init(format: &str) {
    let _ = tracing::subscriber::set_global_default(subscriber("info", format, std::io::stdout));
}

/// The span every request is logged in: an id, the method and the path, never the query string.
pub fn request_span(method: &str, path: &str) -> tracing::Span {
    tracing::info_span!("request", request_id = %uuid::Uuid::new_v4(), method = %method, path = %path)
}

/// The line that ends a request's log, inside its [`request_span`].
pub fn request_done(status: u16, started: std::time::Instant) {
    let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    tracing::info!(status, elapsed_us, "request done");
}

/// Middleware (`actix_web::middleware::from_fn(log_request)`): one span and one line per request.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let span = request_span(req.method().as_str(), req.path());
    async move {
        let started = std::time::Instant::now();
        let res = next.call(req).await?;
        request_done(res.status().as_u16(), started);
        Ok(res)
    }
    .instrument(span)
    .await
}
