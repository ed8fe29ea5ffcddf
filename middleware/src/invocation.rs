//! The invocation-level layer and the state it gives each invocation.
//!
//! [`PowertoolsLayer`] wraps the runtime's own service (add it with
//! `lambda_runtime::Runtime::layer`). For every invocation it builds an
//! [`InvocationState`]: the Lambda facts ([`crate::context::LambdaContext`]: request
//! id, ARN, X-Ray trace id, deadline, cold start), a fresh log context
//! ([`crate::logging`]) and metrics recorder ([`crate::metrics`]), each module owning
//! its own, and makes them current for that invocation's future only. This module
//! depends on those; they depend only on [`crate::context`], never on this one. State therefore never leaks
//! between invocations, also under `run_concurrent`. When the invocation ends (with a
//! response, an error, a panic or a cancellation) its metrics are flushed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use lambda_runtime::LambdaInvocation;
use tower::{Layer, Service};

use crate::context::LambdaContext;
use crate::logging::{InvocationLog, LogSettings};
use crate::metrics::{MetricsConfig, Recorder};

/// What one invocation has: its facts, its log context, its metrics (when on). Each
/// part is made current by the module that owns it.
#[derive(Debug, Clone)]
pub struct InvocationState {
    /// The Lambda facts and the per-record slot.
    pub context: Arc<LambdaContext>,
    /// The log context.
    pub log: Arc<InvocationLog>,
    /// The metrics, when metrics are on.
    pub metrics: Option<Arc<Mutex<Recorder>>>,
}

impl InvocationState {
    /// Builds the state for an invocation; `cold_start` is the caller's to decide.
    pub fn new(context: &lambda_runtime::Context, cold_start: bool, settings: &Settings) -> Self {
        Self {
            context: Arc::new(LambdaContext::new(context, cold_start)),
            log: Arc::new(InvocationLog::new(&settings.logging, &context.request_id)),
            metrics: settings
                .metrics
                .as_ref()
                .map(|config| Arc::new(Mutex::new(Recorder::new(Arc::clone(config))))),
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

    fn sync_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        crate::context::sync_scope(Arc::clone(&self.context), || {
            crate::logging::sync_scope(Arc::clone(&self.log), || {
                crate::metrics::sync_scope(self.metrics.clone(), f)
            })
        })
    }
}

/// Runs `future` with `state` as the current invocation's: its context, log context and
/// metrics.
pub fn scope<F: Future>(
    state: &InvocationState,
    future: F,
) -> impl Future<Output = F::Output> + use<F> {
    crate::context::scope(
        Arc::clone(&state.context),
        crate::logging::scope(
            Arc::clone(&state.log),
            crate::metrics::scope(state.metrics.clone(), future),
        ),
    )
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
struct FlushOnDrop(InvocationState);

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
        let state = InvocationState::new(&invocation.context, cold_start, &self.settings);
        if cold_start
            && let Some(recorder) = &state.metrics
            && let Ok(recorder) = recorder.lock()
        {
            recorder.cold_start(&state.context.function_name);
        }
        let span = match &self.settings.tracing {
            Some(tracing_settings) => {
                let span = tracing::info_span!(
                    "## handler",
                    otel.kind = "internal",
                    annotation.ColdStart = cold_start,
                    annotation.Service = %tracing_settings.service,
                    annotation.FunctionName = %state.context.function_name,
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
            state.sync_scope(|| {
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

async fn finish<F>(state: InvocationState, inner: F) -> Result<(), lambda_runtime::Error>
where
    F: Future<Output = Result<(), lambda_runtime::Error>>,
{
    let work = scope(&state, inner);
    // Made before the first poll, so a cancellation or a panic flushes too.
    let guard = FlushOnDrop(state);
    let result = work.await;
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
