//! Structured logs. Request spans and access lines carry the method, the path (never the query
//! string: it may hold `access_token`), the status and a request id; tokens and cookies are never
//! logged.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::Error;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: `json` lines, or `pretty` for humans. A second call (tests
/// start several applications in one process) is ignored.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if format == "pretty" { builder.try_init() } else { builder.json().try_init() };
}

/// Root span without the query string, and one access line per request.
pub struct PathOnlySpan;

impl RootSpanBuilder for PathOnlySpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.path(),
            request_id = %uuid::Uuid::new_v4(),
            status = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        if let Ok(response) = outcome {
            let status = response.status().as_u16();
            span.record("status", status);
            span.in_scope(|| tracing::info!(status, "request handled"));
        }
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}
