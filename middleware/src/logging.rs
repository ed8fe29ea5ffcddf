//! Structured JSON logging with the Powertools keys, from ordinary `tracing` macros.
//!
//! Every line is one JSON object:
//! `level, location, message, timestamp`, and inside an invocation
//! `function_request_id, xray_trace_id, correlation_id` (and `sampling_rate` when
//! sampling is on); inside a batch record, its lines other than INFO also carry
//! `record_id` (the SQS message id) and `idempotency_key` (the record's id in the
//! idempotency table), what a person needs to act on a failed record. What is constant for an execution environment (`service,
//! cold_start, function_name, function_memory_size, function_arn`) is on the lines of
//! its cold invocation only (and on lines outside an invocation, `service`): Powertools
//! repeats it on every line, a third of each line's bytes, where the log stream already
//! names the environment. The event's own fields follow; an error recorded as a field
//! (`error = &e as &dyn std::error::Error`) becomes `exception_name` and `exception`.
//!
//! | variable | effect | default |
//! |---|---|---|
//! | `AWS_LAMBDA_LOG_LEVEL` | level (wins over the next) | |
//! | `POWERTOOLS_LOG_LEVEL` | level | `INFO` |
//! | `AWS_LAMBDA_LOG_FORMAT` | `Text` for plain lines | JSON |
//! | `POWERTOOLS_SERVICE_NAME` | `service` | `service_undefined` |
//! | `POWERTOOLS_LOGGER_SAMPLE_RATE` | share of invocations logged at DEBUG, decided per invocation | `0` |
//! | `POWERTOOLS_LOGGER_LOG_EVENT` | log each event | `false` |
//! | `MIDDLEWARE_LOG_BUFFER_MAX_BYTES` | per-invocation DEBUG buffer, written out when an ERROR is logged; `0` turns it off. Powertools sets its buffer in code only (`LoggerBufferConfig.max_bytes`, the same 20 KiB default); this variable is the crate's own, hence not `POWERTOOLS_` | `20480` |
//!
//! Log bytes cost money ($0.50/GB ingested): DEBUG lines are kept in the buffer and
//! written only when an error makes them worth reading. The buffer holds the
//! application's DEBUG lines, as Powertools' does; the plumbing's ([`DEPENDENCIES`]: the
//! AWS SDK, HTTP, TLS, runtimes) are only written at an explicit DEBUG level.
//!
//! # Example
//! ```
//! use middleware::logging::{self, LogSettings};
//!
//! let settings = LogSettings::from_lookup(|_| None);
//! let _ = logging::init(&settings);
//! logging::set_correlation_id("order-42"); // no-op outside an invocation
//! tracing::info!(items = 3, "order forwarded");
//! ```

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::context::{self, LambdaContext};
use crate::sink::Sink;

/// The output format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default).
    Json,
    /// Plain text, for reading in a terminal.
    Text,
}

/// Default size of the per-invocation DEBUG buffer.
pub const DEFAULT_BUFFER_BYTES: usize = 20 * 1024;

/// Every key a JSON line can carry besides the event's own fields: Powertools' names.
/// Queries over the logs (the dashboard's Logs Insights widgets) are checked against it.
pub const KEYS: [&str; 17] = [
    "level",
    "location",
    "message",
    "timestamp",
    "service",
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "xray_trace_id",
    "correlation_id",
    "record_id",
    "idempotency_key",
    "sampling_rate",
    "exception_name",
    "exception",
];

/// The keys constant for an execution environment: on the lines of its cold invocation
/// only (see the module docs).
pub const ENVIRONMENT_KEYS: [&str; 5] = [
    "service",
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
];

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// The most verbose level written (unless sampled).
    pub level: LevelFilter,
    /// How each line is written.
    pub format: LogFormat,
    /// The `service` key.
    pub service: String,
    /// Share of invocations logged at DEBUG (0 to 1).
    pub sample_rate: f64,
    /// Log each invocation's event.
    pub log_event: bool,
    /// Size of the DEBUG buffer; 0 turns it off.
    pub buffer_bytes: usize,
    /// Where lines go.
    pub sink: Sink,
}

fn parse_level(value: &str) -> Option<LevelFilter> {
    match value.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some(LevelFilter::TRACE),
        "DEBUG" => Some(LevelFilter::DEBUG),
        "INFO" => Some(LevelFilter::INFO),
        "WARN" | "WARNING" => Some(LevelFilter::WARN),
        // Lambda's FATAL has no tracing equivalent; ERROR is the closest that still logs.
        "ERROR" | "FATAL" | "CRITICAL" => Some(LevelFilter::ERROR),
        "OFF" => Some(LevelFilter::OFF),
        _ => None,
    }
}

impl LogSettings {
    /// Reads the settings through `var`, so precedence can be tested without touching
    /// the process environment. Unparseable values fall back to the next source or the
    /// default: a typo in a log setting must not take a function down.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        let level = ["AWS_LAMBDA_LOG_LEVEL", "POWERTOOLS_LOG_LEVEL"]
            .into_iter()
            .find_map(|name| var(name).and_then(|value| parse_level(&value)))
            .unwrap_or(LevelFilter::INFO);
        let format = match var("AWS_LAMBDA_LOG_FORMAT") {
            Some(value) if value.eq_ignore_ascii_case("text") => LogFormat::Text,
            _ => LogFormat::Json,
        };
        let sample_rate = var("POWERTOOLS_LOGGER_SAMPLE_RATE")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|r| (0.0..=1.0).contains(r))
            .unwrap_or(0.0);
        Self {
            level,
            format,
            service: var("POWERTOOLS_SERVICE_NAME")
                .unwrap_or_else(|| "service_undefined".to_owned()),
            sample_rate,
            log_event: var("POWERTOOLS_LOGGER_LOG_EVENT")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            buffer_bytes: var("MIDDLEWARE_LOG_BUFFER_MAX_BYTES")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(DEFAULT_BUFFER_BYTES),
            sink: Sink::Stdout,
        }
    }

    /// Reads the settings from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The most verbose level any invocation may produce (sampled or buffered DEBUG).
    fn ceiling(&self) -> LevelFilter {
        if (self.sample_rate > 0.0 || self.buffer_bytes > 0) && self.level < LevelFilter::DEBUG {
            LevelFilter::DEBUG
        } else {
            self.level
        }
    }
}

/// The log context of one invocation.
#[derive(Debug)]
pub struct InvocationLog {
    /// This invocation was drawn for DEBUG logging.
    pub sampled: bool,
    sample_rate: f64,
    buffer: Mutex<DebugBuffer>,
    /// An ERROR line was written during the invocation.
    error_logged: std::sync::atomic::AtomicBool,
    sink: Sink,
}

tokio::task_local! {
    static CURRENT: Arc<InvocationLog>;
}

/// Runs `future` with `log` as the current invocation's log context.
pub fn scope<F: Future>(log: Arc<InvocationLog>, future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(log, future)
}

/// Runs `f` with `log` as the current invocation's log context.
pub fn sync_scope<R>(log: Arc<InvocationLog>, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(log, f)
}

#[derive(Debug, Default)]
struct DebugBuffer {
    lines: std::collections::VecDeque<String>,
    bytes: usize,
}

impl DebugBuffer {
    /// Writes the buffered lines out, oldest first, and empties the buffer.
    fn write_out(&mut self, sink: &Sink) {
        for line in self.lines.drain(..) {
            sink.write_line(&line);
        }
        self.bytes = 0;
    }
}

impl InvocationLog {
    /// A fresh context; the sampling draw is made here, once per invocation.
    pub fn new(settings: &LogSettings, request_id: &str) -> Self {
        Self {
            sampled: settings.sample_rate > 0.0 && draw(request_id) < settings.sample_rate,
            sample_rate: settings.sample_rate,
            buffer: Mutex::new(DebugBuffer::default()),
            error_logged: std::sync::atomic::AtomicBool::new(false),
            sink: settings.sink.clone(),
        }
    }
}

/// Gives each invocation its log context (the sampling draw, the DEBUG buffer), and
/// writes the event first when `POWERTOOLS_LOGGER_LOG_EVENT` is on. Lines read the
/// invocation's facts from [`crate::context`].
#[derive(Debug, Clone)]
pub struct LoggingLayer {
    settings: Arc<LogSettings>,
}

impl LoggingLayer {
    /// A layer applying `settings`.
    pub fn new(settings: LogSettings) -> Self {
        Self {
            settings: Arc::new(settings),
        }
    }
}

impl<S> tower::Layer<S> for LoggingLayer {
    type Service = LoggingService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LoggingService {
            inner,
            settings: Arc::clone(&self.settings),
        }
    }
}

/// The service [`LoggingLayer`] builds.
#[derive(Debug, Clone)]
pub struct LoggingService<S> {
    inner: S,
    settings: Arc<LogSettings>,
}

impl<S> tower::Service<lambda_runtime::LambdaInvocation> for LoggingService<S>
where
    S: context::InvocationService,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = context::InvocationFuture;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: lambda_runtime::LambdaInvocation) -> Self::Future {
        let log = Arc::new(InvocationLog::new(
            &self.settings,
            &invocation.context.request_id,
        ));
        let log_event = self.settings.log_event;
        let inner = sync_scope(Arc::clone(&log), || {
            if log_event {
                let event: Value = serde_json::from_slice(&invocation.body).unwrap_or(Value::Null);
                tracing::info!(event = %event, "Lambda event");
            }
            self.inner.call(invocation)
        });
        Box::pin(scope(log, inner))
    }
}

/// A number in [0, 1) that differs per invocation (the request id is unique; the
/// hasher's keys are random per process).
fn draw(request_id: &str) -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(request_id.as_bytes());
    hasher.write_u128(crate::clock::since_epoch().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Sets the correlation id (e.g. the order id) for the rest of the current
/// invocation's log lines; no-op outside an invocation.
pub fn set_correlation_id(id: impl Into<String>) {
    let id = id.into();
    // Also the X-Ray annotation of the current span (`## handler` or `## record`).
    tracing::Span::current().record("annotation.correlation_id", id.as_str());
    context::with_current(|context| context.set_correlation_id(Some(id)));
}

/// Clears the correlation id for the rest of the current invocation's lines: for work
/// that is about a whole batch, not one record.
pub fn clear_correlation_id() {
    context::with_current(|context| context.set_correlation_id(None));
}

/// Starts a batch record for the rest of the current invocation's lines: `record_id`
/// is its id, and no correlation id or idempotency key is carried over from the record
/// before. `None` ends the batch's records. No-op outside an invocation.
pub fn start_record(record_id: Option<String>) {
    context::with_current(|context| context.start_record(record_id));
}

/// Sets the idempotency key of the work in progress for the rest of the current
/// record's lines (`idempotency_key`), and annotates the current span with it. No-op
/// outside an invocation.
pub fn set_idempotency_key(key: &str) {
    tracing::Span::current().record("annotation.idempotency_key", key);
    context::with_current(|context| context.set_idempotency_key(Some(key.to_owned())));
}

/// Writes out the current invocation's DEBUG buffer if an error was logged during the
/// invocation (the lines buffered since); the timeout guard calls it. No-op otherwise.
pub fn write_buffer_after_error() {
    let _ = CURRENT.try_with(|log| {
        if !log.error_logged.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Ok(mut buffer) = log.buffer.lock() {
            buffer.write_out(&log.sink);
        }
    });
}

/// The `tracing` layer that writes lines. Built by [`init`], public for tests.
#[derive(Debug)]
pub struct PowertoolsLogLayer {
    settings: LogSettings,
}

impl PowertoolsLogLayer {
    /// A layer applying `settings`.
    pub fn new(settings: LogSettings) -> Self {
        Self { settings }
    }
}

/// The crates a function depends on for its plumbing (the AWS SDK and Smithy, HTTP,
/// TLS, the async runtime, the Lambda runtime, OpenTelemetry). Their DEBUG events are
/// many (several per AWS call) and not the application's story: below an explicit DEBUG
/// level they are stopped where they are made, never rendered into the DEBUG buffer.
pub const DEPENDENCIES: [&str; 26] = [
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "aws_sdk_dynamodb",
    "aws_sdk_dynamodbstreams",
    "aws_sdk_sqs",
    "aws_sigv4",
    "aws_smithy_async",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_json",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_types",
    "h2",
    "hyper",
    "hyper_util",
    "lambda_runtime",
    "lambda_runtime_api_client",
    "opentelemetry",
    "opentelemetry_aws",
    "opentelemetry_sdk",
    "rustls",
    "tokio",
    "tower",
    "tracing_opentelemetry",
];

/// Whether a `tracing` target belongs to one of [`DEPENDENCIES`].
pub fn is_dependency(target: &str) -> bool {
    let crate_name = target.split("::").next().unwrap_or(target);
    DEPENDENCIES.contains(&crate_name)
}

/// The log layer with its filter: the most verbose level any invocation may produce
/// (DEBUG when lines are buffered or sampled), but [`DEPENDENCIES`] at the configured
/// level. The filter is the layer's own, so a quiet log level never hides spans from a
/// tracing layer beside it; and it is decided once per call site, so a DEBUG event
/// nobody keeps costs next to nothing.
pub fn layer<S>(settings: &LogSettings) -> impl tracing_subscriber::Layer<S> + use<S>
where
    S: Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(settings.ceiling())
        .with_targets(DEPENDENCIES.map(|crate_name| (crate_name, settings.level)));
    PowertoolsLogLayer::new(settings.clone()).with_filter(filter)
}

/// Installs a global subscriber with only the log layer.
///
/// # Errors
/// Fails if a global subscriber is already installed.
pub fn init(settings: &LogSettings) -> Result<(), tracing_subscriber::util::TryInitError> {
    tracing_subscriber::registry()
        .with(layer(settings))
        .try_init()
}

#[derive(Default)]
struct Fields {
    map: Map<String, Value>,
    exception: Option<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.map.insert(field.name().to_owned(), json!(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.map.insert(field.name().to_owned(), json!(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.map.insert(field.name().to_owned(), json!(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.map.insert(field.name().to_owned(), json!(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.map.insert(field.name().to_owned(), json!(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        // The variant or type name, as far as Debug shows it (`Aws { .. }` → `Aws`).
        let debug = format!("{value:?}");
        let name: String = debug
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        self.exception = Some((
            if name.is_empty() {
                field.name().to_owned()
            } else {
                name
            },
            text,
        ));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.map
            .insert(field.name().to_owned(), json!(format!("{value:?}")));
    }
}

/// Now, in RFC 3339 UTC with milliseconds.
fn timestamp() -> String {
    crate::clock::rfc3339_millis(crate::clock::since_epoch())
}

impl PowertoolsLogLayer {
    fn render(
        &self,
        event: &Event<'_>,
        fields: Fields,
        state: Option<(&LambdaContext, &InvocationLog)>,
    ) -> String {
        let meta = event.metadata();
        let mut fields = fields;
        let message = fields
            .map
            .remove("message")
            .unwrap_or(Value::String(String::new()));
        if self.settings.format == LogFormat::Text {
            let mut line = format!("{} {:<5} ", timestamp(), meta.level());
            if let Some((context, _)) = state {
                let _ = write!(line, "{} ", context.request_id);
            }
            let _ = write!(
                line,
                "{}",
                message
                    .as_str()
                    .map_or_else(|| message.to_string(), str::to_owned)
            );
            for (name, value) in &fields.map {
                let _ = write!(line, " {name}={value}");
            }
            if let Some((name, text)) = &fields.exception {
                let _ = write!(line, " exception_name={name} exception={text:?}");
            }
            return line;
        }
        let mut line = Map::new();
        line.insert("level".into(), json!(meta.level().as_str()));
        line.insert(
            "location".into(),
            json!(format!(
                "{}:{}",
                meta.file().unwrap_or("?"),
                meta.line().unwrap_or(0)
            )),
        );
        line.insert("message".into(), message);
        line.insert("timestamp".into(), json!(timestamp()));
        if state.is_none() {
            line.insert("service".into(), json!(self.settings.service));
        }
        if let Some((state, log)) = state {
            // What is constant for the execution environment is written on the lines of
            // its first (cold) invocation only: the log stream is the environment's, so
            // the warm lines carry it implicitly, at half the bytes.
            if state.cold_start {
                line.insert("service".into(), json!(self.settings.service));
                line.insert("cold_start".into(), json!(true));
                line.insert("function_name".into(), json!(state.function_name));
                line.insert(
                    "function_memory_size".into(),
                    json!(state.function_memory_size),
                );
                line.insert("function_arn".into(), json!(state.function_arn));
            }
            line.insert("function_request_id".into(), json!(state.request_id));
            if let Some(trace) = &state.xray_trace_id {
                line.insert("xray_trace_id".into(), json!(trace));
            }
            // What a person acts on when a record goes wrong (redrive the message,
            // clear the lease) is on the lines that say so: WARN and ERROR, and the
            // DEBUG lines an error brings out. A success's INFO line has the order's
            // id only: the two keys were two fifths of its bytes.
            let record_keys = *meta.level() != Level::INFO;
            state.with_record(|record| {
                if let Some(id) = &record.correlation_id {
                    line.insert("correlation_id".into(), json!(id));
                }
                if record_keys {
                    if let Some(id) = &record.record_id {
                        line.insert("record_id".into(), json!(id));
                    }
                    if let Some(key) = &record.idempotency_key {
                        line.insert("idempotency_key".into(), json!(key));
                    }
                }
            });
            if log.sample_rate > 0.0 {
                line.insert("sampling_rate".into(), json!(log.sample_rate));
            }
        }
        line.extend(fields.map);
        if let Some((name, text)) = fields.exception {
            line.insert("exception_name".into(), json!(name));
            line.insert("exception".into(), json!(text));
        }
        Value::Object(line).to_string()
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for PowertoolsLogLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let level = *event.metadata().level();
        let written = context::with_current(|context| {
            CURRENT
                .try_with(|log| self.write(event, level, context, log))
                .ok()
        })
        .flatten();
        if written.is_none() && self.settings.level >= level {
            let mut fields = Fields::default();
            event.record(&mut fields);
            self.settings
                .sink
                .write_line(&self.render(event, fields, None));
        }
    }
}

impl PowertoolsLogLayer {
    /// Writes (or buffers) an event of an invocation.
    fn write(&self, event: &Event<'_>, level: Level, context: &LambdaContext, log: &InvocationLog) {
        {
            let wanted = self.settings.level >= level || (log.sampled && level <= Level::DEBUG);
            let buffered = !wanted && level == Level::DEBUG && self.settings.buffer_bytes > 0;
            if !wanted && !buffered {
                return;
            }
            let mut fields = Fields::default();
            event.record(&mut fields);
            let line = self.render(event, fields, Some((context, log)));
            let Ok(mut buffer) = log.buffer.lock() else {
                return;
            };
            if buffered {
                if line.len() <= self.settings.buffer_bytes {
                    while buffer.bytes + line.len() > self.settings.buffer_bytes {
                        match buffer.lines.pop_front() {
                            Some(old) => buffer.bytes -= old.len(),
                            None => break,
                        }
                    }
                    buffer.bytes += line.len();
                    buffer.lines.push_back(line);
                }
                return;
            }
            if level == Level::ERROR {
                log.error_logged
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                // The DEBUG lines that led here are now worth their cost.
                buffer.write_out(&self.settings.sink);
            }
            self.settings.sink.write_line(&line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> LogSettings {
        LogSettings::from_lookup(|name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn defaults_follow_powertools() {
        let s = settings(&[]);
        assert_eq!(
            (s.level, s.format, s.service.as_str()),
            (LevelFilter::INFO, LogFormat::Json, "service_undefined")
        );
        assert_eq!(
            (s.sample_rate, s.log_event, s.buffer_bytes),
            (0.0, false, DEFAULT_BUFFER_BYTES)
        );
    }

    #[test]
    fn lambda_level_wins_over_powertools_level() {
        let s = settings(&[
            ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
            ("POWERTOOLS_LOG_LEVEL", "DEBUG"),
        ]);
        assert_eq!(s.level, LevelFilter::WARN);
        assert_eq!(
            settings(&[("POWERTOOLS_LOG_LEVEL", "debug")]).level,
            LevelFilter::DEBUG
        );
        let s = settings(&[
            ("AWS_LAMBDA_LOG_LEVEL", "LOUD"),
            ("POWERTOOLS_LOG_LEVEL", "error"),
        ]);
        assert_eq!(s.level, LevelFilter::ERROR);
    }

    #[test]
    fn other_settings_are_read_and_bad_values_ignored() {
        let s = settings(&[
            ("AWS_LAMBDA_LOG_FORMAT", "Text"),
            ("POWERTOOLS_SERVICE_NAME", "orders"),
            ("POWERTOOLS_LOGGER_SAMPLE_RATE", "0.25"),
            ("POWERTOOLS_LOGGER_LOG_EVENT", "true"),
            ("MIDDLEWARE_LOG_BUFFER_MAX_BYTES", "0"),
        ]);
        assert_eq!(
            (
                s.format,
                s.service.as_str(),
                s.sample_rate,
                s.log_event,
                s.buffer_bytes
            ),
            (LogFormat::Text, "orders", 0.25, true, 0)
        );
        assert_eq!(
            settings(&[("POWERTOOLS_LOGGER_SAMPLE_RATE", "7")]).sample_rate,
            0.0
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let t = timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.starts_with("20"), "{t}");
    }

    #[test]
    fn draws_spread_over_the_unit_interval() {
        let draws: Vec<f64> = (0..1000).map(|i| draw(&format!("req-{i}"))).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let below_half = draws.iter().filter(|d| **d < 0.5).count();
        assert!((350..650).contains(&below_half), "{below_half}");
    }
}
