//! OpenTelemetry export of the request spans over OTLP (HTTP, protobuf), on only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the other `OTEL_*` variables of the SDK apply, e.g.
//! `OTEL_BSP_SCHEDULE_DELAY`). Off, nothing is built and [`adopt`] returns at once.
//!
//! An exported span takes the ids the logs already carry: a request's span is given its
//! [`TraceContext`]'s trace and span ids and, when a caller sent a `traceparent`, that caller's
//! span as its parent. So the span of a call (auth-bridge's internal call, boxes' publish, see
//! [`call_span`]) is the parent of the span that serves it, and a login or a post and its delivery
//! form one trace.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{TraceContext, Traceparent};

static ON: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The variable that turns the export on.
pub const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Whether spans are exported.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Builds the exporter when [`ENDPOINT_VAR`] is set; `None` when it is not.
pub fn start(service: &'static str) -> anyhow::Result<Option<SdkTracer>> {
    if std::env::var_os(ENDPOINT_VAR).is_none_or(|v| v.is_empty()) {
        return Ok(None);
    }
    if let Some(provider) = PROVIDER.get() {
        return Ok(Some(provider.tracer(service)));
    }
    // The blocking HTTP client runs a runtime of its own, which must not be created (or later
    // dropped) on a thread of the service's runtime.
    let provider = std::thread::spawn(move || -> anyhow::Result<SdkTracerProvider> {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()?;
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_id_generator(Preset)
            .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service).build())
            .build())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("building the OTLP exporter panicked"))??;
    let tracer = provider.tracer(service);
    let _ = PROVIDER.set(provider);
    ON.store(true, Ordering::Relaxed);
    Ok(Some(tracer))
}

/// Exports what is left; the exporter's thread runs its own HTTP client, so this blocks on a
/// thread of its own.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let provider = provider.clone();
        let _ = std::thread::spawn(move || provider.shutdown()).join();
    }
}

thread_local! {
    /// The ids the next span built on this thread takes (see [`Preset`]).
    static PRESET: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

/// Gives a span being built the ids set in [`PRESET`], else random ones.
#[derive(Debug)]
struct Preset;

impl IdGenerator for Preset {
    fn new_trace_id(&self) -> TraceId {
        PRESET.with(|p| p.get()).map_or_else(|| RandomIdGenerator::default().new_trace_id(), |(t, _)| t)
    }

    fn new_span_id(&self) -> SpanId {
        PRESET.with(|p| p.get()).map_or_else(|| RandomIdGenerator::default().new_span_id(), |(_, s)| s)
    }
}

/// Builds `span`'s OpenTelemetry span now, with these ids and, if given, this remote parent.
fn build(span: &tracing::Span, trace_id: &str, span_id: &str, parent: Option<(&str, &str)>) {
    let (Ok(trace), Ok(id)) = (TraceId::from_hex(trace_id), SpanId::from_hex(span_id)) else { return };
    if let Some((parent_id, flags)) = parent {
        let (Ok(parent_id), Ok(flags)) = (SpanId::from_hex(parent_id), u8::from_str_radix(flags, 16)) else {
            return;
        };
        let remote = SpanContext::new(trace, parent_id, TraceFlags::new(flags), true, TraceState::default());
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    PRESET.with(|p| p.set(Some((trace, id))));
    // Building happens here, synchronously: the generator reads the preset ids.
    let _ = span.context();
    PRESET.with(|p| p.set(None));
}

/// Gives a request's span the ids of its [`TraceContext`] and its caller's span as parent.
pub fn adopt(span: &tracing::Span, ctx: &TraceContext) {
    if !enabled() {
        return;
    }
    build(span, &ctx.trace_id, &ctx.span_id, ctx.parent_id.as_deref().map(|p| (p, ctx.flags.as_str())));
}

/// The span of a call made under `call` (a [`TraceContext::child`]): exported with `call`'s span
/// id, so the span serving the call has it as parent. Disabled when the export is off.
pub fn call_span(call: &TraceContext, name: &'static str) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!("call", otel.name = name);
    build(&span, &call.trace_id, &call.span_id, call.parent_id.as_deref().map(|p| (p, call.flags.as_str())));
    span
}

/// A span for work a traced message asked for (realtime's delivery of a publish): a new span whose
/// parent is the publisher's. Disabled when the export is off.
pub fn message_span(tp: &Traceparent, name: &'static str) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!("message", otel.name = name);
    build(&span, &tp.trace_id, &super::new_span_id(), Some((&tp.parent_id, &tp.flags)));
    span
}
