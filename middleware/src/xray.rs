//! AWS X-Ray tracing through OpenTelemetry.
//!
//! Spans from ordinary `tracing` macros become X-Ray subsegments:
//! - the invocation layer opens `## handler` for each invocation, with its parent taken
//!   from `Context.xray_trace_id` **before** the span is entered (an X-Ray span without
//!   a parent is dropped, and a `tracing-opentelemetry` parent cannot be set later), as
//!   an internal (non-server) span, annotated `ColdStart`, `Service` and `FunctionName`;
//! - [`crate::batch::process_sqs`] opens `## record` per message, with its parent taken
//!   from the message's `AWSTraceHeader`, so the consumer's work joins the producer's
//!   trace; [`crate::logging::set_correlation_id`] annotates it (`correlation_id`);
//! - every AWS SDK call is a subsegment (the SDK's `<Service>.<Operation>` span, which
//!   carries `rpc.system = aws-api`) under the current one.
//!
//! Spans are exported one by one as they end (a UDP datagram each, to
//! `AWS_XRAY_DAEMON_ADDRESS`), so nothing waits in a batch when Lambda freezes the
//! process and nothing is left to flush. `POWERTOOLS_TRACE_DISABLED=true` installs no
//! tracing layer at all: no span is exported and no OpenTelemetry code runs.
//!
//! # Example
//! ```
//! use middleware::xray;
//!
//! // A consumer continues the trace a producer named in a message attribute.
//! let span = tracing::info_span!("## record");
//! xray::set_parent_from_header(&span, "Root=1-6748d7a0-1c2b3d4e5f60718293a4b5c6;Parent=53995c3f42cd8ad8;Sampled=1");
//! let _entered = span.enter();
//! // Outside a traced invocation there is no header to pass on.
//! assert_eq!(xray::current_header(), None);
//! ```

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_aws::trace::{XrayIdGenerator, XrayPropagator};
use opentelemetry_aws::xray_exporter::daemon_client::XrayDaemonClient;
use opentelemetry_aws::xray_exporter::{SegmentTranslator, XrayExporter};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The header (and SQS system attribute) that carries X-Ray trace context.
pub const TRACE_HEADER: &str = "x-amzn-trace-id";

/// Tracing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracingConfig {
    /// `POWERTOOLS_TRACE_DISABLED=true`.
    pub disabled: bool,
    /// `AWS_XRAY_DAEMON_ADDRESS` (Lambda sets it), default `127.0.0.1:2000`.
    pub daemon: SocketAddr,
    /// The `Service` annotation (`POWERTOOLS_SERVICE_NAME`).
    pub service: String,
}

impl TracingConfig {
    /// Reads the settings through `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        let daemon = var("AWS_XRAY_DAEMON_ADDRESS")
            .and_then(|address| {
                address
                    .split_whitespace()
                    .next()
                    .and_then(|a| a.trim_start_matches("udp:").parse().ok())
            })
            .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 2000)));
        Self {
            disabled: var("POWERTOOLS_TRACE_DISABLED")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            daemon,
            service: var("POWERTOOLS_SERVICE_NAME")
                .unwrap_or_else(|| "service_undefined".to_owned()),
        }
    }
}

/// The span layer exporting to the X-Ray daemon, and its provider (keep it alive for
/// the life of the process).
///
/// # Errors
/// If the UDP socket for the daemon cannot be opened.
pub fn layer<S>(
    config: &TracingConfig,
) -> std::io::Result<(impl Layer<S> + use<S>, SdkTracerProvider)>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let client = XrayDaemonClient::new(config.daemon)?;
    let exporter = XrayExporter::new(client).with_translator(SegmentTranslator::new());
    let provider = SdkTracerProvider::builder()
        .with_id_generator(XrayIdGenerator::default())
        .with_simple_exporter(exporter)
        .build();
    let tracer = provider.tracer("middleware");
    // Spans only: the application's at INFO and up, plus each AWS SDK operation's span
    // (`SQS.SendMessageBatch`, recognisable by its `rpc.system` field). Log events stay
    // in the logs; the SDK's internal spans (serialization, attempts...) and the
    // plumbing's own (lambda_runtime's per-invocation span) stay out of the trace and
    // cost nothing.
    let filter = tracing_subscriber::filter::filter_fn(|meta| {
        meta.is_span()
            && (meta.fields().field("rpc.system").is_some()
                || (*meta.level() <= tracing::Level::INFO
                    && !crate::logging::is_dependency(meta.target())))
    });
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(filter);
    Ok((layer, provider))
}

/// Opens `## handler` for each invocation: an internal span annotated `ColdStart`,
/// `Service` and `FunctionName` (from [`crate::context`]), its parent taken from the
/// invocation's trace header before it is entered. Holds the span exporter for the life
/// of the process. Left out (`POWERTOOLS_TRACE_DISABLED`), no span is opened.
#[derive(Debug, Clone)]
pub struct TracingLayer {
    service: std::sync::Arc<str>,
    provider: Option<SdkTracerProvider>,
}

impl TracingLayer {
    /// Spans annotated with `service`; `provider` is kept alive with the layer.
    pub fn new(service: &str, provider: Option<SdkTracerProvider>) -> Self {
        Self {
            service: service.into(),
            provider,
        }
    }

    /// The exporter's provider, if the layer holds one.
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }
}

impl<S> tower::Layer<S> for TracingLayer {
    type Service = TracingService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TracingService {
            inner,
            service: std::sync::Arc::clone(&self.service),
        }
    }
}

/// The service [`TracingLayer`] builds.
#[derive(Debug, Clone)]
pub struct TracingService<S> {
    inner: S,
    service: std::sync::Arc<str>,
}

impl<S> tower::Service<lambda_runtime::LambdaInvocation> for TracingService<S>
where
    S: crate::context::InvocationService,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = crate::context::InvocationFuture;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: lambda_runtime::LambdaInvocation) -> Self::Future {
        let (cold_start, function) =
            crate::context::with_current(|c| (c.cold_start, c.function_name.clone()))
                .unwrap_or_default();
        let span = tracing::info_span!(
            "## handler",
            otel.kind = "internal",
            annotation.ColdStart = cold_start,
            annotation.Service = %self.service,
            annotation.FunctionName = %function,
            annotation.correlation_id = tracing::field::Empty,
            annotation.batch_records = tracing::field::Empty,
            annotation.batch_failures = tracing::field::Empty,
            metadata.response = tracing::field::Empty,
            metadata.error = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        // The parent must be set before the span is entered.
        if let Some(header) = &invocation.context.xray_trace_id {
            set_parent_from_header(&span, header);
        }
        // Entered for the synchronous part of the call too.
        let inner =
            span.in_scope(|| HANDLER_SPAN.sync_scope(span.clone(), || self.inner.call(invocation)));
        let inner = HANDLER_SPAN.scope(span.clone(), inner);
        Box::pin(tracing::Instrument::instrument(inner, span))
    }
}

tokio::task_local! {
    /// The invocation's `## handler` span, for what is known only inside it (the
    /// typed response, the batch's outcome).
    static HANDLER_SPAN: tracing::Span;
}

/// Runs `f` on the current invocation's `## handler` span (no-op without one: tracing
/// off, or outside an invocation).
fn on_handler_span(f: impl FnOnce(&tracing::Span)) {
    let _ = HANDLER_SPAN.try_with(f);
}

/// Annotates the invocation's `## handler` subsegment with its batch's outcome:
/// `batch_records` and `batch_failures` (searchable in X-Ray:
/// `annotation.batch_failures > 0`).
pub fn annotate_batch(records: usize, failures: usize) {
    on_handler_span(|span| {
        // As i64: OpenTelemetry has no unsigned integers, and a u64 becomes a string.
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        span.record("annotation.batch_records", count(records));
        span.record("annotation.batch_failures", count(failures));
    });
}

/// Marks the invocation's `## handler` subsegment as failed (X-Ray `fault`).
pub fn mark_handler_failed() {
    on_handler_span(|span| {
        span.record("otel.status_code", "ERROR");
    });
}

/// Whether the handler's response and error are captured as metadata of `## handler`:
/// `POWERTOOLS_TRACER_CAPTURE_RESPONSE` and `POWERTOOLS_TRACER_CAPTURE_ERROR`, both on
/// unless set to `false`, as in Powertools. Turn the response off for a handler whose
/// response is sensitive or larger than X-Ray's 64 KB document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capture {
    /// Capture the response as `response` metadata.
    pub response: bool,
    /// Capture the error as `error` metadata.
    pub error: bool,
}

impl Capture {
    /// Reads the settings through `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        let on = |name: &str| var(name).is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"));
        Self {
            response: on("POWERTOOLS_TRACER_CAPTURE_RESPONSE"),
            error: on("POWERTOOLS_TRACER_CAPTURE_ERROR"),
        }
    }

    /// Reads the settings from the environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// Records a typed handler's response or error as metadata of the invocation's
/// `## handler` subsegment (`response`, `error`), as Powertools'
/// `capture_lambda_handler` does. The invocation layer cannot: when its service ends,
/// the runtime has already serialised and sent the response. Put this layer around
/// the handler, inside `Runtime::new`. The response is serialised only when the
/// invocation is traced and capture is on.
#[derive(Debug, Clone, Copy)]
pub struct CaptureLayer {
    capture: Capture,
}

impl CaptureLayer {
    /// A layer capturing what `capture` says.
    pub fn new(capture: Capture) -> Self {
        Self { capture }
    }

    /// A layer configured from the environment ([`Capture::from_env`]).
    pub fn from_env() -> Self {
        Self::new(Capture::from_env())
    }
}

impl<S> tower::Layer<S> for CaptureLayer {
    type Service = CaptureService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CaptureService {
            inner,
            capture: self.capture,
        }
    }
}

/// The service [`CaptureLayer`] builds.
#[derive(Debug, Clone)]
pub struct CaptureService<S> {
    inner: S,
    capture: Capture,
}

impl<S, Request> tower::Service<Request> for CaptureService<S>
where
    S: tower::Service<Request>,
    S::Response: serde::Serialize,
    S::Error: std::fmt::Display,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send + 'static>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let capture = self.capture;
        let work = self.inner.call(request);
        Box::pin(async move {
            let result = work.await;
            on_handler_span(|span| match &result {
                Ok(response) if capture.response => {
                    if let Ok(json) = serde_json::to_string(response) {
                        span.record("metadata.response", json.as_str());
                    }
                }
                Err(error) => {
                    if capture.error {
                        span.record("metadata.error", error.to_string().as_str());
                    }
                    span.record("otel.status_code", "ERROR");
                }
                Ok(_) => {}
            });
            result
        })
    }
}

/// The OpenTelemetry context an X-Ray trace header (`Root=...;Parent=...;Sampled=1`)
/// stands for.
pub fn context_from_header(header: &str) -> opentelemetry::Context {
    let carrier = HashMap::from([(TRACE_HEADER.to_owned(), header.to_owned())]);
    XrayPropagator::default().extract(&carrier)
}

/// Makes `span` a child of the trace `header` names. Call before entering the span.
pub fn set_parent_from_header(span: &tracing::Span, header: &str) {
    let _ = span.set_parent(context_from_header(header));
}

/// The X-Ray trace header of the current span, to pass downstream (e.g. as the SQS
/// `AWSTraceHeader`); `None` when there is no trace.
pub fn current_header() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    XrayPropagator::default().inject_context(&context, &mut carrier);
    carrier.remove(TRACE_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_lambda_and_powertools() {
        let c = TracingConfig::from_lookup(|_| None);
        assert_eq!(
            (c.disabled, c.daemon.to_string().as_str()),
            (false, "127.0.0.1:2000")
        );
        let c = TracingConfig::from_lookup(|name| match name {
            "AWS_XRAY_DAEMON_ADDRESS" => Some("169.254.79.129:2000".into()),
            "POWERTOOLS_TRACE_DISABLED" => Some("true".into()),
            _ => None,
        });
        assert_eq!(
            (c.disabled, c.daemon.to_string().as_str()),
            (true, "169.254.79.129:2000")
        );
    }
}
