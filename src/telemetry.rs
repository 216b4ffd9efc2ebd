//! Logging, and traces when asked: RUST_LOG filters, PROXY_LOG_FORMAT picks pretty or JSON
//! lines, and with `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set,
//! the spans go out over OTLP/HTTP as well (`http/protobuf`, or `http/json`), the OpenTelemetry
//! SDK reading the standard `OTEL_*` variables. Without one, no exporter exists and a span costs
//! what it did. A leaf: the layers hand it spans and W3C trace-context strings, never their own
//! types.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The variables that turn the export on; the SDK reads them (and the rest of `OTEL_*`) itself.
const ENDPOINTS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];
/// The SDK release used here does not read these, and this build speaks OTLP over HTTP only (no
/// gRPC stack): anything else is refused rather than ignored.
const PROTOCOLS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
];
const SERVICE_NAME: &str = "claude-proxy";

/// Set once the export is on: the other functions here do nothing without it.
static EXPORTING: OnceLock<()> = OnceLock::new();

/// What must be ended with the server: the exporter, whose batch holds the last spans.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends what is still batched and ends the exporter (on graceful shutdown, after the last
    /// agent has ended). Blocks until it is sent or the SDK's export timeout passes, so it is
    /// called outside the async runtime.
    pub fn shutdown(self) {
        if let Some(Err(err)) = self.provider.map(|provider| provider.shutdown()) {
            eprintln!("claude-proxy: the last spans could not be exported: {err}");
        }
    }
}

/// Sets up logging in `format`, and the OTLP export when its endpoint is set. An error is the
/// one line that says which `OTEL_*` setting cannot be served.
pub fn init(format: LogFormat) -> Result<Telemetry, String> {
    let provider = tracer_provider()?;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("claude_proxy=info,tower_http=info"));
    let ansi = std::io::stderr().is_terminal();
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let log = match format {
        LogFormat::Pretty => log.boxed(),
        LogFormat::Json => log
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    };
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(SERVICE_NAME))
            .with_threads(false)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(spans)
        .with(log)
        .init();
    if provider.is_some() {
        let _ = EXPORTING.set(());
    }
    Ok(Telemetry { provider })
}

fn tracer_provider() -> Result<Option<SdkTracerProvider>, String> {
    let set = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    if !ENDPOINTS.iter().any(|name| set(name).is_some()) {
        return Ok(None);
    }
    let protocol = match PROTOCOLS
        .iter()
        .find_map(|name| set(name).map(|value| (name, value)))
    {
        None => Protocol::HttpBinary,
        Some((_, protocol)) if protocol == "http/protobuf" => Protocol::HttpBinary,
        Some((_, protocol)) if protocol == "http/json" => Protocol::HttpJson,
        Some((name, protocol)) => {
            return Err(format!(
                "{name}={protocol} is not supported: traces are exported over http/protobuf or http/json (unset it for http/protobuf)"
            ));
        }
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
        .map_err(|err| format!("the OTLP exporter cannot be set up: {err}"))?;
    let mut resource = Resource::builder();
    let named_by_operator = set("OTEL_SERVICE_NAME").is_some()
        || set("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attrs| attrs.contains("service.name="));
    if !named_by_operator {
        resource = resource.with_service_name(SERVICE_NAME);
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}

/// Whether spans are exported.
pub fn is_exporting() -> bool {
    EXPORTING.get().is_some()
}

/// Makes `span` (not yet entered) a child of the caller's span that a W3C `traceparent` (with
/// its `tracestate`) names, and records its trace id in its `trace_id` field, for the log
/// lines. A malformed `traceparent` starts a trace of its own, as the W3C says.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if !is_exporting() {
        return;
    }
    if let Some(traceparent) = traceparent {
        let mut carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        if let Some(tracestate) = tracestate {
            carrier.insert("tracestate".to_owned(), tracestate.to_owned());
        }
        let parent = TraceContextPropagator::new().extract(&carrier);
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    record_trace_id(span);
}

/// Records `span`'s trace id in its `trace_id` field, which each log line in it then carries.
pub fn record_trace_id(span: &tracing::Span) {
    if !is_exporting() {
        return;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", span_context.trace_id().to_string());
    }
}

/// `span`'s W3C `traceparent`, for a program that continues the trace; None when spans are not
/// exported.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if !is_exporting() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}
