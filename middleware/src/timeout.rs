//! Telemetry that survives a timeout.
//!
//! Lambda ends an invocation that reaches its deadline by killing the process: the
//! metrics not yet written, the DEBUG lines kept for an error and the spans still open
//! are lost with it, and the log says only `Task timed out`. [`TimeoutGuardLayer`]
//! gives the invocation up a margin before its deadline instead:
//!
//! 1. the work is cancelled: its future is dropped, which ends its open spans
//!    (`## record`, the AWS SDK calls in flight), and the X-Ray exporter sends them as
//!    they end;
//! 2. a `WARN` line of kind `Timeout` names the work that was in progress (the
//!    correlation id and the batch record's id stay in [`crate::context`]), and the
//!    `## handler` span is marked as failed;
//! 3. the DEBUG buffer is written if an error was logged during the invocation;
//! 4. the invocation's metrics are written (one EMF blob);
//! 5. the invocation is reported as failed to the Runtime API (`errorType: Timeout`),
//!    as Lambda would have, so the event source retries it the same way; but the
//!    process lives on, and the next invocation is not a cold start.
//!
//! Cancelling work a margin early is what Lambda's kill does at the deadline: work that
//! writes must already survive being stopped at any point (the consumer's idempotency
//! lease does). The guard costs one timer per invocation; nothing runs unless it fires.
//!
//! | variable | effect | default |
//! |---|---|---|
//! | `MIDDLEWARE_TIMEOUT_GUARD_MS` | how long before the deadline the guard fires; `0` turns it off | `250` |
//!
//! The batch layer gives a record's work up 500 ms before the deadline
//! ([`crate::batch::before_deadline`]), so in a batch function that path answers first
//! and the guard is the backstop for work outside a record. An invocation that starts
//! with less than the margin left, or with no deadline that is a point in time
//! ([`crate::context::deadline_ms`]), is not guarded.

use std::sync::Arc;
use std::time::Duration;

use crate::context::{self, InvocationFuture};

/// The default margin before the deadline.
pub const DEFAULT_MARGIN: Duration = Duration::from_millis(250);

/// The variable that sets the margin, in milliseconds (`0` turns the guard off).
pub const MARGIN_VARIABLE: &str = "MIDDLEWARE_TIMEOUT_GUARD_MS";

/// The guard's margin from the settings read through `var`: `None` when turned off.
/// An unparseable value keeps the default: a typo must not remove the guard.
pub fn margin_from_lookup(var: impl Fn(&str) -> Option<String>) -> Option<Duration> {
    let margin = var(MARGIN_VARIABLE)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_MARGIN, Duration::from_millis);
    (!margin.is_zero()).then_some(margin)
}

/// Gives each invocation up `margin` before its deadline, writing out its telemetry
/// first. See the module docs. Place it inside the context, logging and metrics
/// layers: it reads the deadline from [`crate::context`], and their state must be
/// current when it fires ([`crate::invocation::PowertoolsLayer`] does this). Without
/// a current context it guards nothing.
#[derive(Debug, Clone)]
pub struct TimeoutGuardLayer {
    margin: Duration,
    runtime_api: Arc<RuntimeApi>,
}

impl TimeoutGuardLayer {
    /// A guard firing `margin` before each invocation's deadline; it reports a
    /// timed-out invocation to the Runtime API named by `AWS_LAMBDA_RUNTIME_API`.
    pub fn new(margin: Duration) -> Self {
        Self {
            margin,
            runtime_api: Arc::new(RuntimeApi::default()),
        }
    }

    /// The margin before the deadline.
    pub fn margin(&self) -> Duration {
        self.margin
    }
}

impl<S> tower::Layer<S> for TimeoutGuardLayer {
    type Service = TimeoutGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutGuard {
            inner,
            margin: self.margin,
            runtime_api: Arc::clone(&self.runtime_api),
        }
    }
}

/// The service [`TimeoutGuardLayer`] builds.
#[derive(Debug, Clone)]
pub struct TimeoutGuard<S> {
    inner: S,
    margin: Duration,
    runtime_api: Arc<RuntimeApi>,
}

impl<S> tower::Service<lambda_runtime::LambdaInvocation> for TimeoutGuard<S>
where
    S: context::InvocationService,
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
        let report = Report {
            request_id: invocation.context.request_id.clone(),
            invocation_id: invocation
                .parts
                .headers
                .get(INVOCATION_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
        // The context layer, outside this one, has made the invocation's facts current.
        let left = context::with_current(|context| context.until_deadline(self.margin))
            .flatten()
            .filter(|left| !left.is_zero());
        let work = self.inner.call(invocation);
        let Some(left) = left else {
            return Box::pin(work);
        };
        let margin = self.margin;
        let runtime_api = Arc::clone(&self.runtime_api);
        Box::pin(async move {
            // Awaiting the timeout consumes it: on expiry the work's future is dropped
            // here, which ends the spans it had open.
            match tokio::time::timeout(left, work).await {
                Ok(result) => result,
                Err(_) => {
                    timed_out(margin);
                    runtime_api.report(&report, margin).await
                }
            }
        })
    }
}

/// The header that names an invocation when a process serves several at once.
const INVOCATION_ID_HEADER: &str = "lambda-runtime-invocation-id";

/// What names the invocation to the Runtime API.
#[derive(Debug)]
struct Report {
    request_id: String,
    invocation_id: Option<String>,
}

/// Writes out what the given-up invocation has, once its work is cancelled: the
/// warning line, the DEBUG buffer after an error, the metrics; marks the `## handler`
/// span as failed.
fn timed_out(margin: Duration) {
    let margin_ms = u64::try_from(margin.as_millis()).unwrap_or(u64::MAX);
    let work = context::with_current(context::LambdaContext::work_in_progress).flatten();
    crate::xray::mark_handler_failed();
    tracing::warn!(
        kind = "Timeout",
        margin_ms,
        work_in_progress = work.as_deref().unwrap_or("none"),
        "Timeout: the invocation was given up {margin_ms} ms before its deadline; its telemetry so far follows"
    );
    crate::logging::write_buffer_after_error();
    crate::metrics::flush();
}

/// The Runtime API, reached to report a given-up invocation; the client is built on
/// first use (most processes never need it).
#[derive(Debug, Default)]
struct RuntimeApi {
    client: std::sync::OnceLock<Option<lambda_runtime_api_client::PooledClient>>,
}

impl RuntimeApi {
    fn client(&self) -> Option<&lambda_runtime_api_client::PooledClient> {
        self.client
            .get_or_init(|| {
                let api = std::env::var("AWS_LAMBDA_RUNTIME_API").ok()?;
                let uri = format!("http://{api}").parse().ok()?;
                Some(
                    lambda_runtime_api_client::PooledClient::builder()
                        .with_endpoint(uri)
                        .build(),
                )
            })
            .as_ref()
    }

    /// Reports the invocation as failed with `errorType: Timeout`. When that fails the
    /// error is returned, which stops the runtime: Lambda then fails the invocation and
    /// starts a new process, as it would have at the deadline.
    async fn report(&self, report: &Report, margin: Duration) -> Result<(), lambda_runtime::Error> {
        let Some(client) = self.client() else {
            tracing::error!("Timeout: AWS_LAMBDA_RUNTIME_API is not set; the runtime stops");
            return Err("timed out, and the Runtime API is unknown".into());
        };
        let body = serde_json::json!({
            "errorType": "Timeout",
            "errorMessage": format!(
                "the invocation was given up {} ms before its deadline",
                margin.as_millis()
            ),
        });
        let mut request = lambda_runtime_api_client::build_request()
            .method("POST")
            .uri(format!(
                "/2018-06-01/runtime/invocation/{}/error",
                report.request_id
            ))
            .header("lambda-runtime-function-error-type", "Timeout")
            .header("content-type", "application/json");
        if let Some(id) = &report.invocation_id {
            request = request.header(INVOCATION_ID_HEADER, id);
        }
        let request = request.body(lambda_runtime_api_client::body::Body::from(
            body.to_string().into_bytes(),
        ))?;
        let answer = tokio::time::timeout(Duration::from_secs(2), client.call(request)).await;
        match answer {
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                tracing::error!(status, "Timeout: the Runtime API refused the error report");
                Err(format!("the Runtime API refused the timeout report: {status}").into())
            }
            Ok(Err(error)) => {
                tracing::error!(error = &*error, "Timeout: the error report failed");
                Err(error)
            }
            Err(_) => {
                tracing::error!("Timeout: the Runtime API did not answer the error report");
                Err("the Runtime API did not answer the timeout report".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_read_and_zero_turns_the_guard_off() {
        let lookup = |value: Option<&'static str>| {
            move |name: &str| (name == MARGIN_VARIABLE).then_some(value?.to_owned())
        };
        assert_eq!(margin_from_lookup(lookup(None)), Some(DEFAULT_MARGIN));
        assert_eq!(
            margin_from_lookup(lookup(Some("1000"))),
            Some(Duration::from_secs(1))
        );
        assert_eq!(margin_from_lookup(lookup(Some("0"))), None);
        assert_eq!(
            margin_from_lookup(lookup(Some("soon"))),
            Some(DEFAULT_MARGIN)
        );
    }
}
