//! The facts of the invocation in progress, and its per-record slot: a leaf module that
//! logging, metrics, tracing, batch processing and idempotency read, and that depends
//! on none of them.
//!
//! The invocation layer ([`crate::invocation::PowertoolsLayer`]) builds a
//! [`LambdaContext`] from Lambda's context for each invocation and makes it current for
//! that invocation's future only, so concurrent invocations never share one.
//!
//! # Example
//! ```
//! use middleware::context;
//!
//! // Outside an invocation there is no context.
//! assert_eq!(context::with_current(|c| c.deadline_ms), None);
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex};

tokio::task_local! {
    static CURRENT: Arc<LambdaContext>;
}

/// What the layers know about the invocation in progress.
#[derive(Debug)]
pub struct LambdaContext {
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
    /// The invocation's deadline, in epoch milliseconds; 0 when the invocation has
    /// none that is a point in time ([`deadline_ms`]).
    pub deadline_ms: u64,
    /// First invocation of this process.
    pub cold_start: bool,
    /// The record in progress, for log lines and the timeout guard; a batch starts
    /// each record with an empty one.
    record: Mutex<RecordSlot>,
}

impl LambdaContext {
    /// The context of an invocation; `cold_start` is the caller's to decide.
    pub fn new(context: &lambda_runtime::Context, cold_start: bool) -> Self {
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
            deadline_ms: deadline_ms(context.deadline),
            cold_start,
            record: Mutex::new(RecordSlot::default()),
        }
    }

    /// The correlation id of the work in progress, if one is set.
    pub fn correlation_id(&self) -> Option<String> {
        self.with_record(|record| record.correlation_id.clone())
    }

    /// Sets (or, with `None`, clears) the correlation id.
    pub fn set_correlation_id(&self, id: Option<String>) {
        self.update_record(|record| record.correlation_id = id);
    }

    /// Sets the idempotency key of the work in progress.
    pub fn set_idempotency_key(&self, key: Option<String>) {
        self.update_record(|record| record.idempotency_key = key);
    }

    /// Starts a batch record: its id, and no correlation id or idempotency key (a
    /// record's lines never carry the previous record's). `None` ends the batch's
    /// records.
    pub fn start_record(&self, record_id: Option<String>) {
        self.update_record(|record| {
            *record = RecordSlot {
                record_id,
                ..RecordSlot::default()
            };
        });
    }

    /// Runs `f` on the record slot, without copying it (every log line reads it).
    pub fn with_record<R>(&self, f: impl FnOnce(&RecordSlot) -> R) -> R {
        match self.record.lock() {
            Ok(record) => f(&record),
            Err(_) => f(&RecordSlot::default()),
        }
    }

    fn update_record(&self, f: impl FnOnce(&mut RecordSlot)) {
        if let Ok(mut record) = self.record.lock() {
            f(&mut record);
        }
    }

    /// The work in progress as a person reads it: `order-1 (record m-1)`, `order-1`,
    /// `record m-1`, or `None`.
    pub fn work_in_progress(&self) -> Option<String> {
        self.with_record(|record| match (&record.correlation_id, &record.record_id) {
            (Some(id), Some(record)) => Some(format!("{id} (record {record})")),
            (Some(id), None) => Some(id.clone()),
            (None, Some(record)) => Some(format!("record {record}")),
            (None, None) => None,
        })
    }

    /// The time left until `margin` before the deadline (zero once that is past), or
    /// `None` when the invocation has no deadline. What every deadline-aware layer
    /// reads: the batch layer, the forwarder's rounds, the timeout guard.
    pub fn until_deadline(&self, margin: std::time::Duration) -> Option<std::time::Duration> {
        (self.deadline_ms > 0).then(|| {
            std::time::Duration::from_millis(self.deadline_ms)
                .saturating_sub(crate::clock::since_epoch())
                .saturating_sub(margin)
        })
    }
}

/// The earliest deadline taken as a point in time (2001-09-09, 10^12 epoch ms).
const EARLIEST_DEADLINE_MS: u64 = 1_000_000_000_000;

/// An invocation's `Lambda-Runtime-Deadline-Ms` as epoch milliseconds, or 0 (no
/// deadline) when it is not one. Lambda sends the epoch time of the deadline; `cargo
/// lambda watch` sends the timeout itself (`600000`), which read as a time is long
/// past, and every deadline-aware layer would give each record up before starting it.
pub fn deadline_ms(header: u64) -> u64 {
    if header < EARLIEST_DEADLINE_MS {
        0
    } else {
        header
    }
}

/// What the layers know about the record in progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordSlot {
    /// The key of the work (an order id): `correlation_id` on log lines.
    pub correlation_id: Option<String>,
    /// The batch record's id (an SQS message id): `record_id` on log lines.
    pub record_id: Option<String>,
    /// The idempotency key of the work: `idempotency_key` on log lines.
    pub idempotency_key: Option<String>,
}

/// Runs `f` with the current invocation's context; `None` outside an invocation.
pub fn with_current<R>(f: impl FnOnce(&LambdaContext) -> R) -> Option<R> {
    CURRENT.try_with(|context| f(context)).ok()
}

/// Runs `future` with `context` as the current invocation's.
pub fn scope<F: Future>(context: Arc<LambdaContext>, future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(context, future)
}

/// Runs `f` with `context` as the current invocation's.
pub fn sync_scope<R>(context: Arc<LambdaContext>, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(context, f)
}

/// What an invocation-level layer wraps: the runtime's own service, or another
/// invocation-level layer's (`LambdaInvocation` in, `()` out once the response is
/// sent). Implemented for every such service.
pub trait InvocationService:
    tower::Service<
        lambda_runtime::LambdaInvocation,
        Response = (),
        Error = lambda_runtime::Error,
        Future: Send + 'static,
    >
{
}

impl<S> InvocationService for S where
    S: tower::Service<
            lambda_runtime::LambdaInvocation,
            Response = (),
            Error = lambda_runtime::Error,
            Future: Send + 'static,
        >
{
}

/// The boxed future of an invocation-level service.
pub type InvocationFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<(), lambda_runtime::Error>> + Send>>;

/// Makes each invocation's [`LambdaContext`] current, and decides cold starts: the
/// first invocation a layer value serves is the cold one (build it once per process,
/// in `main`).
#[derive(Debug, Clone, Default)]
pub struct ContextLayer {
    warm: Arc<std::sync::atomic::AtomicBool>,
}

impl ContextLayer {
    /// A layer whose first invocation is a cold start.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> tower::Layer<S> for ContextLayer {
    type Service = ContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ContextService {
            inner,
            warm: Arc::clone(&self.warm),
        }
    }
}

/// The service [`ContextLayer`] builds.
#[derive(Debug, Clone)]
pub struct ContextService<S> {
    inner: S,
    warm: Arc<std::sync::atomic::AtomicBool>,
}

impl<S> tower::Service<lambda_runtime::LambdaInvocation> for ContextService<S>
where
    S: InvocationService,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = InvocationFuture;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: lambda_runtime::LambdaInvocation) -> Self::Future {
        let cold_start = !self.warm.swap(true, std::sync::atomic::Ordering::Relaxed);
        let context = Arc::new(LambdaContext::new(&invocation.context, cold_start));
        // Current for the synchronous part of the call too, so lines there carry it.
        let inner = sync_scope(Arc::clone(&context), || self.inner.call(invocation));
        Box::pin(scope(context, inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_left_is_zero_past_the_margin_and_none_without_a_deadline() {
        let mut lambda = lambda_runtime::Context::default();
        let margin = std::time::Duration::from_millis(500);
        lambda.deadline = crate::clock::epoch_ms() + 60_000;
        let left = LambdaContext::new(&lambda, false).until_deadline(margin);
        assert!(
            left.is_some_and(|l| l > std::time::Duration::from_secs(50)),
            "{left:?}"
        );
        lambda.deadline = crate::clock::epoch_ms() + 100;
        let left = LambdaContext::new(&lambda, false).until_deadline(margin);
        assert_eq!(left, Some(std::time::Duration::ZERO));
        lambda.deadline = 600_000;
        assert_eq!(
            LambdaContext::new(&lambda, false).until_deadline(margin),
            None
        );
    }

    #[test]
    fn a_deadline_that_is_not_a_point_in_time_is_none() {
        assert_eq!(deadline_ms(1_796_442_183_467), 1_796_442_183_467);
        // What `cargo lambda watch` sends: its 600 s timeout.
        assert_eq!(deadline_ms(600_000), 0);
        assert_eq!(deadline_ms(0), 0);
    }
}
