//! Logs: JSON lines (or `pretty` for humans) filtered by `RUST_LOG`, and one span plus one line per
//! request carrying a request id, a W3C trace id, the method, the path, the status and the
//! duration ([`logger`]: tracing-actix-web's `TracingLogger` with a root span of ours). The query
//! string (it may hold `access_token` or a key-share hash), other headers and bodies are never
//! logged.
//!
//! Request ids and traces (README "Request ids and traces"): a well-formed incoming `X-Request-Id`
//! is kept, otherwise one is made, and every answer carries it back. A valid W3C `traceparent`
//! joins the request to its caller's trace, otherwise a new trace starts. While a request runs its
//! [`TraceContext`] is reachable through [`current`], so the calls it makes (boxes' internal API,
//! the Redis publishes realtime delivers) carry the same trace on with [`TraceContext::child`].

use std::future::Future;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing::Subscriber;
use tracing_actix_web::{RequestId, RootSpanBuilder, TracingLogger};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

pub mod otlp;

/// The request id header, read from requests and set on every answer.
pub const REQUEST_ID: &str = "x-request-id";
/// The W3C Trace Context header.
pub const TRACEPARENT: &str = "traceparent";
/// Longest request id kept from a caller.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// actix-http logs a request it cannot parse (a header value with bytes HTTP forbids, a broken
/// request line) as an ERROR `stream error` after answering it 400 itself: a client's garbage,
/// not a fault of the service, and a cheap way to flood an error alert. Its HTTP/1 dispatcher is
/// therefore quiet unless `RUST_LOG` names `actix_http`. (The services stream no response body,
/// the dispatcher's other error line.)
const QUIET_DISPATCHER: &str = "actix_http::h1::dispatcher=off";

/// A subscriber writing to `writer`, filtered by `RUST_LOG` or else by `default_filter`.
pub fn subscriber<W>(default_filter: &str, format: &str, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    subscriber_exporting(default_filter, format, writer, None)
}

/// [`subscriber`], also exporting the spans through `tracer` when there is one.
fn subscriber_exporting<W>(
    default_filter: &str,
    format: &str,
    writer: W,
    tracer: Option<opentelemetry_sdk::trace::SdkTracer>,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let spec = std::env::var("RUST_LOG").ok().filter(|s| !s.trim().is_empty());
    let mut filter =
        spec.as_deref().and_then(|s| EnvFilter::try_new(s).ok()).unwrap_or_else(|| EnvFilter::new(default_filter));
    if !spec.as_deref().unwrap_or(default_filter).contains("actix_http") {
        if let Ok(quiet) = QUIET_DISPATCHER.parse() {
            filter = filter.add_directive(quiet);
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    if format == "pretty" {
        exporting(builder.finish(), tracer)
    } else {
        // The spans once per line, outermost (the request's) first, under `spans`: the current
        // span under `span` as well repeated the innermost, and serialising a span is most of a
        // line's cost.
        exporting(builder.json().with_current_span(false).finish(), tracer)
    }
}

fn exporting<S>(base: S, tracer: Option<opentelemetry_sdk::trace::SdkTracer>) -> Box<dyn Subscriber + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    match tracer {
        Some(tracer) => Box::new(base.with(tracing_opentelemetry::layer().with_tracer(tracer))),
        None => Box::new(base),
    }
}

/// Installs a stdout subscriber for the process, exporting spans over OTLP when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set (see [`otlp`]). A second call (tests start several
/// applications in one process) keeps the first.
pub fn init(service: &'static str, format: &str) {
    let tracer = match otlp::start(service) {
        Ok(tracer) => tracer,
        Err(e) => {
            eprintln!("OpenTelemetry export disabled: {e:#}");
            None
        }
    };
    let _ = tracing::subscriber::set_global_default(subscriber_exporting("info", format, std::io::stdout, tracer));
}

/// Sends the spans not exported yet; called once the server has stopped.
pub fn shutdown() {
    otlp::shutdown();
}

/// `value` when it may serve as a request id: 1 to [`MAX_REQUEST_ID_LEN`] token characters
/// (RFC 9110 `tchar`), so it is safe in a header and a log line.
pub fn parse_request_id(value: &str) -> Option<&str> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    (!value.is_empty() && value.len() <= MAX_REQUEST_ID_LEN && value.bytes().all(tchar)).then_some(value)
}

/// The parts of a W3C `traceparent` (version `00`): lowercase hex trace id, parent span id and
/// flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traceparent {
    pub trace_id: String,
    pub parent_id: String,
    pub flags: String,
}

/// Reads a `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`, lowercase, ids not all zero.
pub fn parse_traceparent(value: &str) -> Option<Traceparent> {
    let mut parts = value.split('-');
    let (version, trace_id, parent_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    let valid = parts.next().is_none()
        && version == "00"
        && hex(trace_id, 32)
        && !zero(trace_id)
        && hex(parent_id, 16)
        && !zero(parent_id)
        && hex(flags, 2);
    valid.then(|| Traceparent {
        trace_id: trace_id.to_owned(),
        parent_id: parent_id.to_owned(),
        flags: flags.to_owned(),
    })
}

/// 16 random hex digits (from a v4 UUID, whose version digit keeps it from being all zero).
fn new_span_id() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(16);
    id
}

/// What ties the log lines of one unit of work together, and that work to its caller's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub request_id: String,
    pub trace_id: String,
    /// This unit's own span id: what a call it makes names as its parent.
    pub span_id: String,
    /// The caller's span id, when the trace came from a caller.
    pub parent_id: Option<String>,
    pub flags: String,
}

impl TraceContext {
    /// A new request id and a new trace.
    pub fn new() -> Self {
        TraceContext::from_parts(None, None)
    }

    /// Keeps a well-formed `request_id` and a valid `traceparent`, makes new ones otherwise.
    pub fn from_parts(request_id: Option<&str>, traceparent: Option<&str>) -> Self {
        let request_id =
            request_id.and_then(parse_request_id).map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let span_id = new_span_id();
        match traceparent.and_then(parse_traceparent) {
            Some(tp) => TraceContext {
                request_id,
                trace_id: tp.trace_id,
                span_id,
                parent_id: Some(tp.parent_id),
                flags: tp.flags,
            },
            None => TraceContext {
                request_id,
                trace_id: uuid::Uuid::new_v4().simple().to_string(),
                span_id,
                parent_id: None,
                flags: "01".to_owned(),
            },
        }
    }

    /// From a request's `X-Request-Id` and `traceparent` headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        TraceContext::from_parts(get(REQUEST_ID), get(TRACEPARENT))
    }

    /// The context of a call this unit makes: same request id and trace, a new span whose parent
    /// is this one.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            request_id: self.request_id.clone(),
            trace_id: self.trace_id.clone(),
            span_id: new_span_id(),
            parent_id: Some(self.span_id.clone()),
            flags: self.flags.clone(),
        }
    }

    /// This unit's `traceparent`, as sent on the calls it makes (see [`TraceContext::child`]).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }

    /// The `X-Request-Id` header value. The id is made of token characters, so it always is one.
    pub fn request_id_header(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.request_id).ok()
    }
}

impl Default for TraceContext {
    fn default() -> Self {
        TraceContext::new()
    }
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The context of the request being served by the current task, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `fut` with `ctx` as its [`current`] context.
pub async fn scope<F: Future>(ctx: TraceContext, fut: F) -> F::Output {
    CURRENT.scope(ctx, fut).await
}

/// The span every request is logged in: its ids, the method and the path. Never the query string
/// (it may hold `access_token` or a key-share hash), nor any header, nor the body.
pub fn request_span(ctx: &TraceContext, method: &str, path: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %ctx.request_id,
        trace_id = %ctx.trace_id,
        span_id = %ctx.span_id,
        parent_id = ctx.parent_id.as_deref(),
        method = %method,
        path = %path,
    )
}

/// The line that ends a request's log, inside its [`request_span`].
pub fn request_done(status: u16, started: Option<Instant>) {
    match started {
        Some(started) => {
            let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            tracing::info!(status, elapsed_us, "request done");
        }
        None => tracing::info!(status, "request done"),
    }
}

/// The request logger, to be wrapped outermost, with [`carry_context`] just inside it:
/// tracing-actix-web's `TracingLogger`, with [`RequestSpan`] as its root span.
pub fn logger() -> TracingLogger<RequestSpan> {
    TracingLogger::new()
}

/// When a request's logging started, kept in its extensions for the line that ends it.
#[derive(Clone, Copy)]
struct Started(Instant);

/// The root span of [`logger`]: [`request_span`] of the request's [`TraceContext`] (exported with
/// its ids when OTLP is on), and the "request done" line with the status and the duration.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> tracing::Span {
        let ctx = {
            let get = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
            let sent = get(REQUEST_ID).and_then(parse_request_id);
            // The id `TracingLogger` made for the request serves when the caller sent none.
            let made = request.extensions().get::<RequestId>().filter(|_| sent.is_none()).map(ToString::to_string);
            TraceContext::from_parts(sent.or(made.as_deref()), get(TRACEPARENT))
        };
        let span = request_span(&ctx, request.method().as_str(), request.path());
        otlp::adopt(&span, &ctx);
        let mut extensions = request.extensions_mut();
        extensions.insert(ctx);
        extensions.insert(Started(Instant::now()));
        span
    }

    // Called inside the request's span, so the line is in it.
    fn on_request_end<B: MessageBody>(_span: tracing::Span, outcome: &Result<ServiceResponse<B>, actix_web::Error>) {
        match outcome {
            Ok(res) => {
                let started = res.request().extensions().get::<Started>().map(|s| s.0);
                request_done(res.status().as_u16(), started);
            }
            Err(error) => {
                let started = error.as_error::<WithRequestId>().and_then(|e| e.started);
                request_done(error.as_response_error().status_code().as_u16(), started);
            }
        }
    }
}

/// Middleware (`actix_web::middleware::from_fn(carry_context)`), just inside [`logger`]: the
/// request's [`TraceContext`] as [`current`] while it is served, and `X-Request-Id` on every
/// answer, errors of inner middleware included. `TracingLogger` watches answers but cannot change
/// them, hence this part.
pub async fn carry_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let ctx =
        req.extensions_mut().remove::<TraceContext>().unwrap_or_else(|| TraceContext::from_headers(req.headers()));
    let started = req.extensions().get::<Started>().map(|s| s.0);
    let header = ctx.request_id_header();
    match scope(ctx, next.call(req)).await {
        Ok(mut res) => {
            if let Some(value) = header {
                res.headers_mut().insert(HeaderName::from_static(REQUEST_ID), value);
            }
            Ok(res)
        }
        Err(error) => match header {
            Some(request_id) => Err(WithRequestId { error, request_id, started }.into()),
            None => Err(error),
        },
    }
}

/// An error of an inner middleware, answered as it would be, with `X-Request-Id` added. (The
/// request itself cannot be kept to answer it here: the router needs it unshared.)
struct WithRequestId {
    error: actix_web::Error,
    request_id: HeaderValue,
    /// For the "request done" line, which [`RequestSpan`] writes from the error alone.
    started: Option<Instant>,
}

impl std::fmt::Debug for WithRequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.error, f)
    }
}

impl std::fmt::Display for WithRequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl actix_web::ResponseError for WithRequestId {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.error.as_response_error().status_code()
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        let mut res = self.error.error_response();
        res.headers_mut().insert(HeaderName::from_static(REQUEST_ID), self.request_id.clone());
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn request_ids_are_bounded_tokens() {
        assert_eq!(parse_request_id("abc-123_x.y"), Some("abc-123_x.y"));
        assert_eq!(parse_request_id(&"a".repeat(128)).map(str::len), Some(128));
        for bad in ["", "a b", "a\"b", "é", "a\tb", "a,b", "a;b", "<script>"] {
            assert_eq!(parse_request_id(bad), None, "{bad:?}");
        }
        assert_eq!(parse_request_id(&"a".repeat(129)), None);
    }

    #[test]
    fn traceparents_follow_w3c_version_00() {
        let tp = parse_traceparent(TP).map(|t| (t.trace_id, t.parent_id, t.flags));
        assert_eq!(tp, Some(("4bf92f3577b34da6a3ce929d0e0e4736".into(), "00f067aa0ba902b7".into(), "01".into())));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn contexts_keep_valid_ids_and_children_share_the_trace() {
        let ctx = TraceContext::from_parts(Some("req-1"), Some(TP));
        assert_eq!(ctx.request_id, "req-1");
        assert_eq!(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(ctx.span_id, "00f067aa0ba902b7");
        let child = ctx.child();
        assert_eq!((child.request_id.as_str(), child.trace_id.as_str()), ("req-1", ctx.trace_id.as_str()));
        assert_eq!(child.parent_id.as_ref(), Some(&ctx.span_id));
        let sent = parse_traceparent(&child.traceparent()).map(|t| (t.trace_id, t.parent_id));
        assert_eq!(sent, Some((ctx.trace_id.clone(), child.span_id.clone())));

        let fresh = TraceContext::from_parts(Some("bad id"), Some("garbage"));
        assert!(parse_request_id(&fresh.request_id).is_some() && fresh.request_id != "bad id");
        assert!(parse_traceparent(&fresh.traceparent()).is_some());
        assert_eq!(fresh.parent_id, None);
        assert_ne!(fresh.trace_id, TraceContext::new().trace_id);
    }
}
