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
use std::sync::{Arc, Mutex};

use tower::Layer;
use tower::util::Either;

use crate::context::{ContextLayer, ContextService, LambdaContext};
use crate::logging::{InvocationLog, LogSettings, LoggingLayer, LoggingService};
use crate::metrics::{MetricsConfig, MetricsLayer, MetricsService, Recorder};
use crate::timeout::{TimeoutGuard, TimeoutGuardLayer};
use crate::xray::{TracingLayer, TracingService};

/// What one invocation has: its facts, its log context, its metrics (when on), for
/// running work as an invocation outside the layer ([`scope`]), as tests do. The layer
/// itself builds each part in the layer that owns it.
#[derive(Debug, Clone)]
pub struct InvocationState {
    context: Arc<LambdaContext>,
    log: Arc<InvocationLog>,
    metrics: Option<Arc<Mutex<Recorder>>>,
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
    /// How long before the deadline the timeout guard gives an invocation up
    /// ([`crate::timeout`]), or `None` for no guard.
    pub timeout_guard: Option<std::time::Duration>,
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
    /// Built once per process in `main`, its first invocation is the cold one.
    context: ContextLayer,
    timeout_guard: Option<TimeoutGuardLayer>,
}

impl PowertoolsLayer {
    /// A layer applying `settings`.
    pub fn new(settings: Settings) -> Self {
        Self {
            timeout_guard: settings.timeout_guard.map(TimeoutGuardLayer::new),
            settings: Arc::new(settings),
            context: ContextLayer::new(),
        }
    }

    /// The layer with a default dimension on every metric of every invocation
    /// (Powertools' `set_default_dimensions`): call it in `main`, before the runtime
    /// starts. No-op with metrics off.
    ///
    /// # Errors
    /// [`crate::metrics::DimensionError`] for an empty name or value, or beyond the
    /// limit.
    pub fn with_default_dimension(
        self,
        name: &str,
        value: &str,
    ) -> Result<Self, crate::metrics::DimensionError> {
        let mut settings = (*self.settings).clone();
        if let Some(metrics) = settings.metrics.take() {
            let metrics = (*metrics).clone().with_default_dimension(name, value)?;
            settings.metrics = Some(Arc::new(metrics));
        }
        Ok(Self {
            settings: Arc::new(settings),
            ..self
        })
    }
}

/// What the timeout guard makes of the inner service, when on.
type Guarded<S> = Either<TimeoutGuard<S>, S>;

/// What the logging and metrics layers make of the inner service.
type Logged<S> = LoggingService<Either<MetricsService<Guarded<S>>, Guarded<S>>>;

/// The service [`PowertoolsLayer`] builds: context, then (when on) the `## handler`
/// span, logging, then (when on) metrics and the timeout guard, around the inner
/// service. The guard is innermost, so the log context and the metrics it writes out
/// are current when it fires.
pub type PowertoolsService<S> = ContextService<Either<TracingService<Logged<S>>, Logged<S>>>;

impl<S> Layer<S> for PowertoolsLayer {
    type Service = PowertoolsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let settings = &self.settings;
        tower::ServiceBuilder::new()
            .layer(self.context.clone())
            .option_layer(
                settings
                    .tracing
                    .as_ref()
                    .map(|t| TracingLayer::new(&t.service, t.provider.clone())),
            )
            .layer(LoggingLayer::new(settings.logging.clone()))
            .option_layer(
                settings
                    .metrics
                    .as_ref()
                    .map(|m| MetricsLayer::new(Arc::clone(m))),
            )
            .option_layer(self.timeout_guard.clone())
            .service(inner)
    }
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
        timeout_guard: crate::timeout::margin_from_lookup(var),
    }))
}
