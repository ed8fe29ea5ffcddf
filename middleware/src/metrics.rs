//! CloudWatch metrics in the Embedded Metric Format (EMF), the Powertools way.
//!
//! Metrics are declared once, as `static` [`Metric`]s (name, unit, resolution), so a
//! service's catalogue can be listed and checked against dashboards and alarms.
//! Values are recorded with [`add`] during an invocation and written as EMF blobs on
//! stdout when the invocation ends (also when it fails), one JSON object per line:
//!
//! ```json
//! {"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"Shop",
//!   "Dimensions":[["service"]],"Metrics":[{"Name":"OrdersPlaced","Unit":"Count"}]}]},
//!  "service":"orders","OrdersPlaced":1.0}
//! ```
//!
//! As in Powertools: the namespace comes from `POWERTOOLS_METRICS_NAMESPACE`, the
//! `service` dimension from `POWERTOOLS_SERVICE_NAME` and is always added, a blob holds
//! at most 100 metrics and a metric at most 100 values (a full blob is written early),
//! at most 29 dimensions may be added besides `service`, the first invocation of a
//! process writes a separate `ColdStart` blob with `function_name` and `service`, and
//! `POWERTOOLS_METRICS_DISABLED=true` turns everything off.
//!
//! # Example
//! ```
//! use middleware::metrics::{self, Metric, Unit};
//!
//! static ORDERS_PLACED: Metric = Metric::new("OrdersPlaced", Unit::Count);
//!
//! // Inside an invocation wrapped by the invocation layer; outside one it is a no-op.
//! metrics::add(&ORDERS_PLACED, 1.0);
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

pub use crate::sink::Sink;

/// Most metrics in one blob, and most values of one metric.
pub const MAX_METRICS_PER_BLOB: usize = 100;
/// Most dimensions a caller may add (CloudWatch allows 30, `service` is one).
pub const MAX_USER_DIMENSIONS: usize = 29;

/// A CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// A count of things.
    Count,
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
    /// Bytes.
    Bytes,
    /// A percentage.
    Percent,
    /// No unit.
    None,
}

impl Unit {
    /// The name CloudWatch uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
            Self::Seconds => "Seconds",
            Self::Bytes => "Bytes",
            Self::Percent => "Percent",
            Self::None => "None",
        }
    }
}

/// A metric's declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Metric {
    /// Metric name.
    pub name: &'static str,
    /// Unit.
    pub unit: Unit,
    /// One-second resolution (`StorageResolution: 1`) instead of one minute.
    pub high_resolution: bool,
}

impl Metric {
    /// A standard-resolution metric.
    pub const fn new(name: &'static str, unit: Unit) -> Self {
        Self {
            name,
            unit,
            high_resolution: false,
        }
    }

    /// The same metric at one-second resolution.
    pub const fn high_resolution(self) -> Self {
        Self {
            high_resolution: true,
            ..self
        }
    }
}

/// The metric written on a process's first invocation.
pub static COLD_START: Metric = Metric::new("ColdStart", Unit::Count);

/// Metrics settings.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// CloudWatch namespace.
    pub namespace: String,
    /// Value of the `service` dimension.
    pub service: String,
    /// Write nothing.
    pub disabled: bool,
    /// Where blobs go.
    pub sink: Sink,
    /// The `function_name` of the `ColdStart` metric, instead of the function's own
    /// (`POWERTOOLS_METRICS_FUNCTION_NAME`).
    pub function_name: Option<String>,
    /// Dimensions on every metric of every invocation of the process, in every
    /// dimension set and on `ColdStart` (Powertools' default dimensions). Set them with
    /// [`MetricsConfig::with_default_dimension`], once, before the first invocation.
    pub default_dimensions: Vec<(String, String)>,
}

/// `POWERTOOLS_METRICS_NAMESPACE` is missing while metrics are enabled.
#[derive(Debug, thiserror::Error)]
#[error("POWERTOOLS_METRICS_NAMESPACE must be set (or POWERTOOLS_METRICS_DISABLED=true)")]
pub struct MissingNamespace;

impl MetricsConfig {
    /// Reads the Powertools variables through `var`.
    ///
    /// # Errors
    /// [`MissingNamespace`] when metrics are enabled without a namespace: a function
    /// that would silently lose its metrics should not start.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, MissingNamespace> {
        let disabled =
            var("POWERTOOLS_METRICS_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let namespace = var("POWERTOOLS_METRICS_NAMESPACE").filter(|n| !n.is_empty());
        if namespace.is_none() && !disabled {
            return Err(MissingNamespace);
        }
        Ok(Self {
            namespace: namespace.unwrap_or_default(),
            service: var("POWERTOOLS_SERVICE_NAME")
                .unwrap_or_else(|| "service_undefined".to_owned()),
            disabled,
            sink: Sink::Stdout,
            function_name: var("POWERTOOLS_METRICS_FUNCTION_NAME").filter(|n| !n.is_empty()),
            default_dimensions: Vec::new(),
        })
    }

    /// This configuration with a default dimension added (or its value replaced).
    ///
    /// # Errors
    /// [`DimensionError`] for an empty name or value, or beyond the limit.
    pub fn with_default_dimension(
        mut self,
        name: &str,
        value: &str,
    ) -> Result<Self, DimensionError> {
        set_dimension(
            &mut self.default_dimensions,
            name,
            value,
            MAX_USER_DIMENSIONS,
        )?;
        Ok(self)
    }

    /// Reads the Powertools variables from the environment.
    ///
    /// # Errors
    /// See [`MetricsConfig::from_lookup`].
    pub fn from_env() -> Result<Self, MissingNamespace> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// An added dimension was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DimensionError {
    /// More than [`MAX_USER_DIMENSIONS`].
    #[error("at most {MAX_USER_DIMENSIONS} dimensions may be added")]
    TooMany,
    /// Empty name or value.
    #[error("dimension names and values must not be empty")]
    Empty,
    /// A dimension already has another value in this invocation's metrics: a blob
    /// holds one value per dimension name.
    #[error("dimension {0} already has another value in this blob")]
    Conflict(String),
}

/// Adds `name = value` to `dimensions`, or replaces its value; at most `limit`.
fn set_dimension(
    dimensions: &mut Vec<(String, String)>,
    name: &str,
    value: &str,
    limit: usize,
) -> Result<(), DimensionError> {
    if name.is_empty() || value.is_empty() {
        return Err(DimensionError::Empty);
    }
    if let Some(existing) = dimensions.iter_mut().find(|(n, _)| n == name) {
        existing.1 = value.to_owned();
        return Ok(());
    }
    if dimensions.len() >= limit {
        return Err(DimensionError::TooMany);
    }
    dimensions.push((name.to_owned(), value.to_owned()));
    Ok(())
}

/// The metrics of one invocation.
#[derive(Debug)]
pub struct Recorder {
    config: Arc<MetricsConfig>,
    dimensions: Vec<(String, String)>,
    /// More dimension sets, each written beside the first (`service`, the default
    /// dimensions and [`Recorder::add_dimension`]'s).
    dimension_sets: Vec<Vec<(String, String)>>,
    values: BTreeMap<&'static str, (Metric, Vec<f64>)>,
}

fn now_ms() -> u64 {
    crate::clock::epoch_ms()
}

impl Recorder {
    /// A recorder with no values yet.
    pub fn new(config: Arc<MetricsConfig>) -> Self {
        Self {
            config,
            dimensions: Vec::new(),
            dimension_sets: Vec::new(),
            values: BTreeMap::new(),
        }
    }

    /// Records a value; writes a blob early when one is full.
    pub fn add(&mut self, metric: &Metric, value: f64) {
        if self.config.disabled {
            return;
        }
        let full =
            !self.values.contains_key(metric.name) && self.values.len() >= MAX_METRICS_PER_BLOB;
        if full {
            self.flush();
        }
        let entry = self
            .values
            .entry(metric.name)
            .or_insert_with(|| (*metric, Vec::new()));
        entry.1.push(value);
        if entry.1.len() >= MAX_METRICS_PER_BLOB {
            self.flush();
        }
    }

    /// Adds a dimension to every metric of this invocation.
    ///
    /// # Errors
    /// [`DimensionError`] beyond the limit, for an empty name or value, or for a name
    /// another dimension set gives another value.
    pub fn add_dimension(&mut self, name: &str, value: &str) -> Result<(), DimensionError> {
        if self.check_conflict(name, value)? {
            return Ok(());
        }
        let limit = MAX_USER_DIMENSIONS.saturating_sub(self.config.default_dimensions.len());
        set_dimension(&mut self.dimensions, name, value, limit)
    }

    /// Writes every metric of this invocation under one more dimension set as well:
    /// `service`, the default dimensions and `dimensions` (Powertools TypeScript's
    /// `addDimensions`). CloudWatch stores each metric once per set, so a metric can be
    /// read in total and, for example, per function.
    ///
    /// # Errors
    /// [`DimensionError`] beyond the limit, for an empty name or value, or for a name
    /// another set gives another value (a blob holds one value per name).
    pub fn add_dimension_set(&mut self, dimensions: &[(&str, &str)]) -> Result<(), DimensionError> {
        let limit = MAX_USER_DIMENSIONS.saturating_sub(self.config.default_dimensions.len());
        let mut set = Vec::with_capacity(dimensions.len());
        for (name, value) in dimensions {
            if !self.check_conflict(name, value)? {
                set_dimension(&mut set, name, value, limit)?;
            }
        }
        if !self.dimension_sets.contains(&set) {
            self.dimension_sets.push(set);
        }
        Ok(())
    }

    /// Refuses a value for `name` that differs from the one the blob already has;
    /// `Ok(true)` when `name` already leads every set with this value (`service` or a
    /// default dimension), so adding it again would name it twice.
    fn check_conflict(&self, name: &str, value: &str) -> Result<bool, DimensionError> {
        if name == "service" {
            return (value == self.config.service)
                .then_some(true)
                .ok_or_else(|| DimensionError::Conflict(name.to_owned()));
        }
        let mut leads = false;
        for (n, v) in std::iter::once(&self.config.default_dimensions)
            .chain(&self.dimension_sets)
            .flatten()
            .filter(|(n, _)| n == name)
        {
            if v != value {
                return Err(DimensionError::Conflict(n.clone()));
            }
            leads |= self
                .config
                .default_dimensions
                .iter()
                .any(|(d, _)| d == name);
        }
        Ok(leads)
    }

    /// The blob's dimension sets, each led by `service` and the default dimensions.
    fn dimension_names(&self) -> Vec<Value> {
        let lead = std::iter::once("service").chain(
            self.config
                .default_dimensions
                .iter()
                .map(|(n, _)| n.as_str()),
        );
        std::iter::once(&self.dimensions)
            .chain(&self.dimension_sets)
            .map(|set| {
                json!(
                    lead.clone()
                        .chain(set.iter().map(|(n, _)| n.as_str()))
                        .collect::<Vec<_>>()
                )
            })
            .collect()
    }

    /// Writes what was recorded (nothing if nothing was) and starts over.
    pub fn flush(&mut self) {
        if self.values.is_empty() || self.config.disabled {
            self.values.clear();
            return;
        }
        let mut blob = Map::new();
        blob.insert("service".to_owned(), json!(self.config.service));
        for (name, value) in self
            .config
            .default_dimensions
            .iter()
            .chain(&self.dimensions)
            .chain(self.dimension_sets.iter().flatten())
        {
            blob.insert(name.clone(), json!(value));
        }
        let mut definitions = Vec::with_capacity(self.values.len());
        for (name, (metric, values)) in std::mem::take(&mut self.values) {
            let mut definition = json!({ "Name": name, "Unit": metric.unit.as_str() });
            if metric.high_resolution {
                definition["StorageResolution"] = json!(1);
            }
            definitions.push(definition);
            let value = if values.len() == 1 {
                json!(values[0])
            } else {
                json!(values)
            };
            blob.insert(name.to_owned(), value);
        }
        blob.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": now_ms(),
                "CloudWatchMetrics": [{
                    "Namespace": self.config.namespace,
                    "Dimensions": self.dimension_names(),
                    "Metrics": definitions,
                }],
            }),
        );
        self.config
            .sink
            .write_line(&Value::Object(blob).to_string());
    }

    /// Writes the `ColdStart` blob: its own dimensions, `function_name` (the
    /// configured one, else `function_name`), `service` and the default dimensions.
    pub fn cold_start(&self, function_name: &str) {
        if self.config.disabled {
            return;
        }
        let function_name = self
            .config
            .function_name
            .as_deref()
            .unwrap_or(function_name);
        let mut names = vec!["function_name", "service"];
        let mut blob = Map::new();
        for (name, value) in &self.config.default_dimensions {
            names.push(name);
            blob.insert(name.clone(), json!(value));
        }
        blob.insert("function_name".to_owned(), json!(function_name));
        blob.insert("service".to_owned(), json!(self.config.service));
        blob.insert(COLD_START.name.to_owned(), json!(1.0));
        blob.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": now_ms(),
                "CloudWatchMetrics": [{
                    "Namespace": self.config.namespace,
                    "Dimensions": [names],
                    "Metrics": [{ "Name": COLD_START.name, "Unit": COLD_START.unit.as_str() }],
                }],
            }),
        );
        self.config
            .sink
            .write_line(&Value::Object(blob).to_string());
    }
}

tokio::task_local! {
    static CURRENT: Option<Arc<Mutex<Recorder>>>;
}

/// Runs `future` with `recorder` as the current invocation's (`None`: metrics off).
pub fn scope<F: Future>(
    recorder: Option<Arc<Mutex<Recorder>>>,
    future: F,
) -> impl Future<Output = F::Output> {
    CURRENT.scope(recorder, future)
}

/// Runs `f` with `recorder` as the current invocation's (`None`: metrics off).
pub fn sync_scope<R>(recorder: Option<Arc<Mutex<Recorder>>>, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(recorder, f)
}

fn with_recorder<R>(f: impl FnOnce(&mut Recorder) -> R) -> Option<R> {
    CURRENT
        .try_with(|recorder| {
            let mut recorder = recorder.as_ref()?.lock().ok()?;
            Some(f(&mut recorder))
        })
        .ok()
        .flatten()
}

/// Gives each invocation a metrics recorder, writes the cold-start blob on a cold
/// invocation ([`crate::context`] says which), and flushes the invocation's metrics
/// when it ends: with a response, an error, a panic or a cancellation. Left out (for
/// example with `ServiceBuilder::option_layer`), [`add`] records nothing.
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    config: Arc<MetricsConfig>,
}

impl MetricsLayer {
    /// A layer writing with `config`.
    pub fn new(config: Arc<MetricsConfig>) -> Self {
        Self { config }
    }
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`MetricsLayer`] builds.
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    config: Arc<MetricsConfig>,
}

/// Flushes when dropped: after the response, an error, a panic or a cancellation.
struct FlushOnDrop(Arc<Mutex<Recorder>>);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        if let Ok(mut recorder) = self.0.lock() {
            recorder.flush();
        }
    }
}

impl<S> tower::Service<lambda_runtime::LambdaInvocation> for MetricsService<S>
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
        let recorder = Arc::new(Mutex::new(Recorder::new(Arc::clone(&self.config))));
        if let Some(function) =
            crate::context::with_current(|c| c.cold_start.then(|| c.function_name.clone()))
                .flatten()
            && let Ok(recorder) = recorder.lock()
        {
            recorder.cold_start(&function);
        }
        let inner = sync_scope(Some(Arc::clone(&recorder)), || self.inner.call(invocation));
        // Made before the first poll, so a cancellation or a panic flushes too.
        let guard = FlushOnDrop(Arc::clone(&recorder));
        let work = scope(Some(recorder), inner);
        Box::pin(async move {
            let result = work.await;
            drop(guard);
            result
        })
    }
}

/// Records `value` for `metric` in the current invocation (no-op outside one).
pub fn add(metric: &Metric, value: f64) {
    with_recorder(|recorder| recorder.add(metric, value));
}

/// Writes what the current invocation has recorded so far (no-op outside one); the
/// invocation's end writes the rest.
pub fn flush() {
    with_recorder(Recorder::flush);
}

/// Adds a dimension to the current invocation's metrics (no-op outside one).
///
/// # Errors
/// [`DimensionError`] beyond the limit or for an empty name or value.
pub fn add_dimension(name: &str, value: &str) -> Result<(), DimensionError> {
    with_recorder(|recorder| recorder.add_dimension(name, value)).unwrap_or(Ok(()))
}

/// The `function_name` dimension's value in the current invocation: the configured one
/// (`POWERTOOLS_METRICS_FUNCTION_NAME`), else the function's own; `None` outside an
/// invocation with metrics on.
pub fn function_name() -> Option<String> {
    let configured = with_recorder(|recorder| recorder.config.function_name.clone()).flatten();
    configured.or_else(|| crate::context::with_current(|c| c.function_name.clone()))
}

/// Writes the current invocation's metrics under one more dimension set as well (no-op
/// outside one); see [`Recorder::add_dimension_set`].
///
/// # Errors
/// [`DimensionError`] beyond the limit, for an empty name or value, or a conflict.
pub fn add_dimension_set(dimensions: &[(&str, &str)]) -> Result<(), DimensionError> {
    with_recorder(|recorder| recorder.add_dimension_set(dimensions)).unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    static PLACED: Metric = Metric::new("OrdersPlaced", Unit::Count);
    static LATENCY: Metric = Metric::new("Latency", Unit::Milliseconds).high_resolution();

    fn recorder() -> (Recorder, Arc<Mutex<Vec<u8>>>) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let config = MetricsConfig {
            namespace: "Shop".into(),
            service: "orders".into(),
            disabled: false,
            sink: Sink::Buffer(Arc::clone(&buffer)),
            function_name: None,
            default_dimensions: Vec::new(),
        };
        (Recorder::new(Arc::new(config)), buffer)
    }

    fn blobs(buffer: &Arc<Mutex<Vec<u8>>>) -> Vec<Value> {
        String::from_utf8(buffer.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_blob_has_the_powertools_shape() {
        let (mut r, buffer) = recorder();
        r.add_dimension("operation", "place").unwrap();
        r.add(&PLACED, 1.0);
        r.add(&LATENCY, 12.0);
        r.add(&LATENCY, 15.0);
        r.flush();
        let blobs = blobs(&buffer);
        assert_eq!(blobs.len(), 1);
        let b = &blobs[0];
        let directive = &b["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Shop");
        assert_eq!(directive["Dimensions"], json!([["service", "operation"]]));
        assert!(b["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
        let metrics = directive["Metrics"].as_array().unwrap();
        assert!(metrics.contains(&json!({"Name": "OrdersPlaced", "Unit": "Count"})));
        assert!(
            metrics.contains(
                &json!({"Name": "Latency", "Unit": "Milliseconds", "StorageResolution": 1})
            )
        );
        assert_eq!(b["service"], "orders");
        assert_eq!(b["operation"], "place");
        assert_eq!(b["OrdersPlaced"], json!(1.0));
        assert_eq!(b["Latency"], json!([12.0, 15.0]));
    }

    #[test]
    fn nothing_recorded_writes_nothing() {
        let (mut r, buffer) = recorder();
        r.flush();
        assert!(blobs(&buffer).is_empty());
    }

    #[test]
    fn a_full_blob_is_written_early() {
        let (mut r, buffer) = recorder();
        let names: Vec<&'static str> = (0..=MAX_METRICS_PER_BLOB)
            .map(|i| &*Box::leak(format!("M{i}").into_boxed_str()))
            .collect();
        for name in &names {
            r.add(&Metric::new(name, Unit::Count), 1.0);
        }
        r.flush();
        let blobs = blobs(&buffer);
        assert_eq!(blobs.len(), 2);
        assert_eq!(
            blobs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            MAX_METRICS_PER_BLOB
        );
        assert_eq!(
            blobs[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            1
        );

        let (mut r, buffer) = recorder();
        for _ in 0..150 {
            r.add(&PLACED, 1.0);
        }
        r.flush();
        let blobs = self::blobs(&buffer);
        assert_eq!(
            blobs[0]["OrdersPlaced"].as_array().unwrap().len(),
            MAX_METRICS_PER_BLOB
        );
        assert_eq!(blobs[1]["OrdersPlaced"].as_array().unwrap().len(), 50);
    }

    #[test]
    fn dimensions_are_limited() {
        let (mut r, _) = recorder();
        for i in 0..MAX_USER_DIMENSIONS {
            r.add_dimension(&format!("d{i}"), "v").unwrap();
        }
        assert_eq!(
            r.add_dimension("one_more", "v"),
            Err(DimensionError::TooMany)
        );
        assert_eq!(r.add_dimension("d0", "replaced"), Ok(()));
        assert_eq!(r.add_dimension("", "v"), Err(DimensionError::Empty));
    }

    #[test]
    fn cold_start_is_its_own_blob() {
        let (r, buffer) = recorder();
        r.cold_start("orders-api");
        let b = &blobs(&buffer)[0];
        assert_eq!(
            b["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["function_name", "service"]])
        );
        assert_eq!(b["ColdStart"], json!(1.0));
        assert_eq!(b["function_name"], "orders-api");
    }

    #[test]
    fn dimension_sets_share_one_blob_each_led_by_service_and_the_default_dimensions() {
        let (mut r, buffer) = recorder();
        r.config = Arc::new(
            (*r.config)
                .clone()
                .with_default_dimension("environment", "prod")
                .unwrap(),
        );
        r.add_dimension("operation", "place").unwrap();
        r.add_dimension_set(&[("function_name", "update-cart-products")])
            .unwrap();
        // The same set twice is written once.
        r.add_dimension_set(&[("function_name", "update-cart-products")])
            .unwrap();
        assert_eq!(
            r.add_dimension_set(&[("function_name", "another")]),
            Err(DimensionError::Conflict("function_name".into()))
        );
        assert_eq!(
            r.add_dimension("environment", "dev"),
            Err(DimensionError::Conflict("environment".into()))
        );
        // What already leads every set is not named twice.
        assert_eq!(r.add_dimension("environment", "prod"), Ok(()));
        assert_eq!(r.add_dimension("service", "orders"), Ok(()));
        r.add(&PLACED, 1.0);
        r.flush();
        let b = &blobs(&buffer)[0];
        assert_eq!(
            b["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([
                ["service", "environment", "operation"],
                ["service", "environment", "function_name"]
            ])
        );
        assert_eq!(
            (&b["environment"], &b["operation"], &b["function_name"]),
            (
                &json!("prod"),
                &json!("place"),
                &json!("update-cart-products")
            )
        );
        // Default dimensions are the process's: the next invocation's blob has them
        // too, and none of this one's.
        let mut next = Recorder::new(Arc::clone(&r.config));
        next.add(&PLACED, 1.0);
        next.flush();
        let b = &blobs(&buffer)[1];
        assert_eq!(
            b["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["service", "environment"]])
        );
        assert!(b.get("function_name").is_none());
        // ... and the cold-start blob has them.
        next.cold_start("orders-api");
        let b = &blobs(&buffer)[2];
        assert_eq!(
            b["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["function_name", "service", "environment"]])
        );
        assert_eq!(b["environment"], "prod");
    }

    #[test]
    fn the_cold_start_function_name_can_be_set() {
        let config = MetricsConfig::from_lookup(|name| match name {
            "POWERTOOLS_METRICS_NAMESPACE" => Some("Shop".into()),
            "POWERTOOLS_METRICS_FUNCTION_NAME" => Some("orders".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.function_name.as_deref(), Some("orders"));
        let (r, buffer) = recorder();
        let r = Recorder::new(Arc::new(MetricsConfig {
            function_name: config.function_name,
            ..(*r.config).clone()
        }));
        r.cold_start("orders-api-Xy12AbC");
        assert_eq!(blobs(&buffer)[0]["function_name"], "orders");
    }

    #[test]
    fn configuration_follows_powertools() {
        let lookup = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(MetricsConfig::from_lookup(lookup(&[])).is_err());
        let c =
            MetricsConfig::from_lookup(lookup(&[("POWERTOOLS_METRICS_DISABLED", "true")])).unwrap();
        assert!(c.disabled);
        let c = MetricsConfig::from_lookup(lookup(&[("POWERTOOLS_METRICS_NAMESPACE", "Shop")]))
            .unwrap();
        assert_eq!(
            (c.namespace.as_str(), c.service.as_str()),
            ("Shop", "service_undefined")
        );
        let (mut r, buffer) = recorder();
        r.config = Arc::new(MetricsConfig {
            disabled: true,
            ..(*r.config).clone()
        });
        r.add(&PLACED, 1.0);
        r.flush();
        r.cold_start("f");
        assert!(blobs(&buffer).is_empty());
    }
}
