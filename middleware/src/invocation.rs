//! The invocation-level layer and the state it gives each invocation.
//!
//! [`PowertoolsLayer`] wraps the runtime's own service (add it with
//! `lambda_runtime::Runtime::layer`). For every invocation it builds an
//! [`InvocationState`] from the Lambda context (request id, ARN, X-Ray trace id,
//! deadline, cold start) with a fresh metrics recorder and log context, and makes it
//! the current state for that invocation's future only. State therefore never leaks
//! between invocations, also under `run_concurrent`. When the invocation ends (with a
//! response, an error, a panic or a cancellation) its metrics are flushed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use lambda_runtime::LambdaInvocation;
use tower::{Layer, Service};

use crate::logging::{InvocationLog, LogSettings};
use crate::metrics::{MetricsConfig, Recorder};

tokio::task_local! {
    static CURRENT: Arc<InvocationState>;
}

/// What the layers know about the invocation in progress.
#[derive(Debug)]
pub struct InvocationState {
    /// `function_request_id`.
    pub request_id: String,
    /// `function_arn`.
    pub function_arn: String,
    /// `function_name`.
    pub function_name: String,
    /// `function_memory_size` in MB.
    pub function_memory_size: i32,
    /// The `Root=` part of the X-Ray trace header, if traced.
    pub xray_trace_id: Option<String>,
    /// The invocation's deadline, in epoch milliseconds.
    pub deadline_ms: u64,
    /// First invocation of this process.
    pub cold_start: bool,
    /// This invocation's metrics, when metrics are on.
    pub metrics: Option<Mutex<Recorder>>,
    /// This invocation's log context.
    pub log: InvocationLog,
}

impl InvocationState {
    /// Builds the state for an invocation; `cold_start` is the caller's to decide.
    pub fn new(context: &lambda_runtime::Context, cold_start: bool, settings: &Settings) -> Self {
        let xray_trace_id = context.xray_trace_id.as_deref().map(|header| {
            header
                .split(';')
                .find_map(|part| part.strip_prefix("Root="))
                .unwrap_or(header)
                .to_owned()
        });
        Self {
            request_id: context.request_id.clone(),
            function_arn: context.invoked_function_arn.clone(),
            function_name: context.env_config.function_name.clone(),
            function_memory_size: context.env_config.memory,
            xray_trace_id,
            deadline_ms: context.deadline,
            cold_start,
            metrics: settings
                .metrics
                .as_ref()
                .map(|config| Mutex::new(Recorder::new(Arc::clone(config)))),
            log: InvocationLog::new(&settings.logging, &context.request_id),
        }
    }

    /// Writes what is pending: the metrics of the invocation.
    pub fn flush(&self) {
        if let Some(recorder) = &self.metrics
            && let Ok(mut recorder) = recorder.lock()
        {
            recorder.flush();
        }
    }
}

/// Runs `f` with the current invocation's state; `None` outside an invocation.
pub fn with_current<R>(f: impl FnOnce(&InvocationState) -> R) -> Option<R> {
    CURRENT.try_with(|state| f(state)).ok()
}

/// Runs `future` with `state` as the current invocation's state.
pub fn scope<F: Future>(state: Arc<InvocationState>, future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(state, future)
}

/// The settings the layer applies to every invocation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Metrics, or `None` to record none.
    pub metrics: Option<Arc<MetricsConfig>>,
    /// Logging.
    pub logging: LogSettings,
    /// Tracing, or `None` for no spans.
    pub tracing: Option<Tracing>,
}

/// Tracing as the layer applies it.
#[derive(Debug, Clone)]
pub struct Tracing {
    /// The `Service` annotation.
    pub service: String,
    /// Keeps the span exporter alive for the life of the process.
    pub provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

/// The invocation-level layer. See the module docs.
#[derive(Debug, Clone)]
pub struct PowertoolsLayer {
    settings: Arc<Settings>,
    /// Whether an invocation has been served. Built once per process in `main`, the
    /// layer's flag is the process's cold-start state.
    warm: Arc<AtomicBool>,
}

impl PowertoolsLayer {
    /// A layer applying `settings`.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings: Arc::new(settings),
            warm: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl<S> Layer<S> for PowertoolsLayer {
    type Service = PowertoolsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PowertoolsService {
            inner,
            settings: Arc::clone(&self.settings),
            warm: Arc::clone(&self.warm),
        }
    }
}

/// The service [`PowertoolsLayer`] builds.
#[derive(Debug, Clone)]
pub struct PowertoolsService<S> {
    inner: S,
    settings: Arc<Settings>,
    warm: Arc<AtomicBool>,
}

/// Flushes when dropped: after the response, an error, a panic or a cancellation.
struct FlushOnDrop(Arc<InvocationState>);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.0.flush();
    }
}

impl<S> Service<LambdaInvocation> for PowertoolsService<S>
where
    S: Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = Pin<Box<dyn Future<Output = Result<(), lambda_runtime::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let cold_start = !self.warm.swap(true, Ordering::Relaxed);
        let state = Arc::new(InvocationState::new(
            &invocation.context,
            cold_start,
            &self.settings,
        ));
        if cold_start
            && let Some(recorder) = &state.metrics
            && let Ok(recorder) = recorder.lock()
        {
            recorder.cold_start(&state.function_name);
        }
        let span = match &self.settings.tracing {
            Some(tracing_settings) => {
                let span = tracing::info_span!(
                    "## handler",
                    otel.kind = "internal",
                    annotation.ColdStart = cold_start,
                    annotation.Service = %tracing_settings.service,
                    annotation.FunctionName = %state.function_name,
                    annotation.correlation_id = tracing::field::Empty,
                );
                // The parent must be set before the span is entered.
                if let Some(header) = &invocation.context.xray_trace_id {
                    crate::xray::set_parent_from_header(&span, header);
                }
                span
            }
            None => tracing::Span::none(),
        };
        let log_event = self.settings.logging.log_event;
        // Entered for the synchronous part of the call too, so logs there carry context.
        let inner = span.in_scope(|| {
            CURRENT.sync_scope(Arc::clone(&state), || {
                if log_event {
                    let event: serde_json::Value =
                        serde_json::from_slice(&invocation.body).unwrap_or(serde_json::Value::Null);
                    tracing::info!(event = %event, "Lambda event");
                }
                self.inner.call(invocation)
            })
        });
        Box::pin(tracing::Instrument::instrument(finish(state, inner), span))
    }
}

async fn finish<F>(state: Arc<InvocationState>, inner: F) -> Result<(), lambda_runtime::Error>
where
    F: Future<Output = Result<(), lambda_runtime::Error>>,
{
    let guard = FlushOnDrop(Arc::clone(&state));
    let result = CURRENT.scope(state, inner).await;
    drop(guard);
    result
}

/// Start-up failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A global log subscriber was already installed.
    #[error("cannot install the log subscriber: {0}")]
    Logging(#[from] tracing_subscriber::util::TryInitError),
    /// Metrics are on without a namespace.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MissingNamespace),
    /// The X-Ray daemon socket could not be opened.
    #[error("cannot open the X-Ray daemon socket: {0}")]
    Tracing(#[from] std::io::Error),
}

/// Reads every setting from the environment, installs the log subscriber and returns
/// the invocation layer. Call once at the start of `main`:
///
/// ```no_run
/// # async fn main_() -> Result<(), lambda_runtime::Error> {
/// let powertools = middleware::invocation::init_from_env()?;
/// lambda_runtime::Runtime::new(tower::service_fn(|_: lambda_runtime::LambdaEvent<serde_json::Value>| async {
///     Ok::<(), lambda_runtime::Error>(())
/// }))
/// .layer(powertools)
/// .run()
/// .await
/// # }
/// ```
///
/// # Errors
/// [`InitError`] naming what is wrong.
pub fn init_from_env() -> Result<PowertoolsLayer, InitError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let var = |name: &str| std::env::var(name).ok();
    let logging = LogSettings::from_lookup(var);
    let metrics = MetricsConfig::from_lookup(var)?;
    let tracing_config = crate::xray::TracingConfig::from_lookup(var);
    let (span_layer, tracing) = if tracing_config.disabled {
        (None, None)
    } else {
        let (layer, provider) = crate::xray::layer(&tracing_config)?;
        let tracing = Tracing {
            service: tracing_config.service,
            provider: Some(provider),
        };
        (Some(layer), Some(tracing))
    };
    tracing_subscriber::registry()
        .with(crate::logging::layer(&logging))
        .with(span_layer)
        .try_init()?;
    Ok(PowertoolsLayer::new(Settings {
        metrics: Some(Arc::new(metrics)),
        logging,
        tracing,
    }))
}
