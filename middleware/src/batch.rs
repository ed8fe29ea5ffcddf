//! Per-record processing of SQS and DynamoDB-stream batches.
//!
//! Lambda hands a function a batch of records; with `ReportBatchItemFailures` on the
//! event source mapping, the function answers with the identifiers of the records that
//! failed, and only those are retried. This module holds the parts of that contract
//! that do not depend on what the records mean:
//!
//! - Each record is parsed **on its own** from the raw event. Deserialising the whole
//!   event into typed records (for example `SqsEventObj<T>`) fails the invocation, and
//!   with it every record, when a single body is malformed.
//! - **SQS standard queues**: every record is tried; the failures are reported by
//!   `messageId`. **FIFO queues** (source ARN ending in `.fifo`): processing stops at the
//!   first failure and every later record is reported too, to keep the group's order.
//! - **DynamoDB streams**: Lambda rewinds the shard to the lowest reported sequence
//!   number and redelivers everything after it, so a stream function processes in order,
//!   stops at the first failure and reports that record alone ([`stream_failure`]).
//! - A batch whose records cannot be identified at all is an error of the invocation,
//!   because an empty or unknown `itemIdentifier` would fail the batch anyway.
//! - **Deadline-aware**: within [`DEADLINE_MARGIN`] of the invocation's deadline no
//!   record is started; the unstarted ones are reported as failures (retried later)
//!   instead of being cut off by a timeout that would fail the whole batch and lose the
//!   invocation's logs and metrics. A record already running is given up at the same
//!   point ([`before_deadline`]): an AWS call that hangs fails its record, in time.
//!
//! # Example
//! ```
//! use middleware::batch::process_sqs;
//! use serde_json::value::RawValue;
//!
//! # tokio_test_block_on(async {
//! let event = RawValue::from_string(r#"{"Records":[
//!     {"messageId":"a","body":"1"},
//!     {"messageId":"b","body":"not a number"}
//! ]}"#.to_owned()).unwrap();
//! let response = process_sqs(&event, |message| async move {
//!     let body = message.body.unwrap_or_default();
//!     body.parse::<u32>().map(drop).map_err(|e| format!("bad body: {e}"))
//! })
//! .await
//! .unwrap();
//! let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
//! assert_eq!(failed, ["b"]);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
//! # }
//! ```

use std::borrow::Cow;
use std::fmt::Display;
use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Why a batch could not be processed record by record.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The event is not an object with a `Records` array.
    #[error("the event is not a batch of records: {0}")]
    NotABatch(#[source] serde_json::Error),
    /// A record has no identifier, so its failure cannot be reported on its own.
    #[error(
        "record {index} of the batch has no {field}, so it cannot be reported on its own: {reason}"
    )]
    Unidentifiable {
        /// Position of the record in the batch.
        index: usize,
        /// The identifier that is missing (`messageId` or `dynamodb.SequenceNumber`).
        field: &'static str,
        /// What went wrong while reading the record.
        reason: String,
    },
}

impl From<BatchError> for lambda_runtime::Diagnostic {
    /// A meaningful `errorType` for the invocation error Lambda records.
    fn from(error: BatchError) -> Self {
        let error_type = match error {
            BatchError::NotABatch(_) => "Batch.NotABatch",
            BatchError::Unidentifiable { .. } => "Batch.UnidentifiableRecord",
        };
        Self {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, rename = "Records")]
    records: Vec<&'a RawValue>,
}

/// Splits a Lambda batch event into its records, left unparsed.
///
/// # Errors
/// [`BatchError::NotABatch`] if the event has no `Records` array.
pub fn records(event: &RawValue) -> Result<Vec<&RawValue>, BatchError> {
    serde_json::from_str::<Envelope<'_>>(event.get())
        .map(|envelope| envelope.records)
        .map_err(BatchError::NotABatch)
}

#[derive(Deserialize)]
struct SqsIdentity {
    #[serde(rename = "messageId")]
    message_id: String,
}

/// Processes an SQS batch one message at a time and reports the failed ones.
///
/// `handler` sees each message that parsed; a message that does not parse, and every
/// message whose handler returned `Err`, is reported by `messageId` and logged with the
/// reason. On a FIFO queue the first failure ends the batch: the rest are reported
/// without being tried, so a message group keeps its order.
///
/// # Errors
/// [`BatchError`] if the event is not a batch or a record has no `messageId`; the
/// invocation should then fail, which makes Lambda retry the whole batch.
pub async fn process_sqs<F, Fut, E>(
    event: &RawValue,
    mut handler: F,
) -> Result<SqsBatchResponse, BatchError>
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let raw_records = records(event)?;
    // Identify every record before doing any work: an unidentifiable record fails the
    // invocation, and it is better that it does so before any side effect.
    let mut parsed = Vec::with_capacity(raw_records.len());
    for (index, raw) in raw_records.iter().enumerate() {
        parsed.push(match serde_json::from_str::<SqsMessage>(raw.get()) {
            Ok(message) => match message.message_id.clone() {
                Some(id) => (id, Ok(message)),
                None => {
                    return Err(BatchError::Unidentifiable {
                        index,
                        field: "messageId",
                        reason: "messageId is null".to_owned(),
                    });
                }
            },
            Err(parse_error) => match serde_json::from_str::<SqsIdentity>(raw.get()) {
                Ok(identity) => (identity.message_id, Err(parse_error.to_string())),
                Err(_) => {
                    return Err(BatchError::Unidentifiable {
                        index,
                        field: "messageId",
                        reason: parse_error.to_string(),
                    });
                }
            },
        });
    }
    let records_in_batch = parsed.len();
    let fifo = parsed.iter().any(|(_, message)| {
        message.as_ref().is_ok_and(|m| {
            m.event_source_arn
                .as_deref()
                .is_some_and(|arn| arn.ends_with(".fifo"))
        })
    });

    let mut response = SqsBatchResponse::default();
    let mut stopped = false;
    let mut out_of_time = 0;
    for (message_id, message) in parsed {
        if !stopped && near_deadline() {
            stopped = true;
        }
        if stopped {
            if !fifo || response.batch_item_failures.is_empty() {
                out_of_time += 1;
            }
            response.add_failure(message_id);
            continue;
        }
        // Each record starts with its own id and no correlation id: its lines, its
        // failure line included, name the key its handler sets, or none, never a
        // previous record's.
        crate::logging::start_record(Some(message_id.clone()));
        let (span, outcome) = match message {
            Ok(message) => {
                let span = sqs_record_span(&message);
                let work = tracing::Instrument::instrument(handler(message), span.clone());
                let outcome = match before_deadline(work).await {
                    Ok(done) => done.map_err(|e| e.to_string()),
                    Err(out_of_time) => Err(out_of_time.to_string()),
                };
                (span, outcome)
            }
            Err(reason) => (
                tracing::Span::none(),
                Err(format!("malformed SQS record: {reason}")),
            ),
        };
        if let Err(reason) = outcome {
            span.in_scope(|| {
                tracing::warn!(message_id = %message_id, reason = %reason, "SQS record failed");
            });
            response.add_failure(message_id);
            stopped = fifo;
        }
    }
    crate::logging::start_record(None);
    crate::xray::annotate_batch(records_in_batch, response.batch_item_failures.len());
    if out_of_time > 0 {
        tracing::warn!(
            records = out_of_time,
            "stopped short of the deadline; unstarted records are reported for retry"
        );
    }
    Ok(response)
}

/// How long before the invocation's deadline no new record is started, so the ones
/// in flight can finish and telemetry can be flushed before Lambda stops the process.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);

/// Whether the current invocation is within [`DEADLINE_MARGIN`] of its deadline
/// (`false` outside an invocation or without a deadline).
pub fn near_deadline() -> bool {
    crate::context::with_current(|context| context.until_deadline(DEADLINE_MARGIN))
        .flatten()
        .is_some_and(|left| left.is_zero())
}

/// Work given up because the invocation's deadline was near.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "gave up {} ms before the invocation's deadline (reported for retry)",
    DEADLINE_MARGIN.as_millis()
)]
pub struct OutOfTime;

/// Runs `work` until [`DEADLINE_MARGIN`] before the invocation's deadline, and gives it
/// up then: a record whose AWS call hangs fails on its own, in time for the invocation
/// to report it and flush its telemetry, instead of the whole invocation timing out.
/// Outside an invocation (or without a deadline) `work` runs unbounded; the SDK's own
/// timeouts still apply.
///
/// Giving up drops `work`: a write it had sent may or may not have been applied, which
/// is why a record's work must be idempotent (the retry finds what was done).
///
/// # Errors
/// [`OutOfTime`] if the deadline margin was reached first.
pub async fn before_deadline<F: Future>(work: F) -> Result<F::Output, OutOfTime> {
    match crate::context::with_current(|context| context.until_deadline(DEADLINE_MARGIN)).flatten()
    {
        None => Ok(work.await),
        Some(left) => tokio::time::timeout(left, work)
            .await
            .map_err(|_| OutOfTime),
    }
}

/// Lifts a service of one SQS message to the batch event Lambda delivers: the layer
/// form of [`process_sqs`], with its rules (each record parsed on its own from the raw
/// event, so one malformed record fails alone; standard queues try every record, FIFO
/// queues stop at the first failure; deadline-aware). Each record runs in its own
/// `## record` span with no correlation id carried over from the one before.
///
/// # Example
/// ```
/// use aws_lambda_events::sqs::SqsMessage;
/// use lambda_runtime::LambdaEvent;
/// use middleware::batch::SqsBatchLayer;
/// use serde_json::value::RawValue;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// let service = ServiceBuilder::new()
///     .layer(SqsBatchLayer::new())
///     .service(service_fn(|message: SqsMessage| async move {
///         match message.body.as_deref() {
///             Some("ok") => Ok(()),
///             _ => Err("not ok"),
///         }
///     }));
/// let event = RawValue::from_string(
///     r#"{"Records":[{"messageId":"1","body":"ok"},{"messageId":"2","body":"no"}]}"#.into(),
/// )
/// .unwrap();
/// let response = tokio::runtime::Builder::new_current_thread()
///     .enable_time()
///     .build()
///     .unwrap()
///     .block_on(service.oneshot(LambdaEvent::new(event, Default::default())))
///     .unwrap();
/// let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
/// assert_eq!(failed, ["2"]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SqsBatchLayer;

impl SqsBatchLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> tower::Layer<S> for SqsBatchLayer {
    type Service = SqsBatch<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SqsBatch::new(inner)
    }
}

/// The service [`SqsBatchLayer`] builds around a per-record service.
#[derive(Debug, Clone)]
pub struct SqsBatch<S> {
    inner: S,
}

impl<S> SqsBatch<S> {
    /// Wraps a per-record service.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The per-record service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The per-record service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the per-record service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> tower::Service<lambda_runtime::LambdaEvent<Box<RawValue>>> for SqsBatch<S>
where
    S: tower::Service<SqsMessage, Response = ()> + Clone + Send + 'static,
    S::Error: Display,
    S::Future: Send,
{
    type Response = SqsBatchResponse;
    type Error = BatchError;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<SqsBatchResponse, BatchError>> + Send + 'static>,
    >;

    /// Always ready: each record readies its own clone of the inner service.
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, event: lambda_runtime::LambdaEvent<Box<RawValue>>) -> Self::Future {
        use tower::ServiceExt as _;
        let inner = self.inner.clone();
        let batch = async move {
            process_sqs(&event.payload, move |message| {
                inner.clone().oneshot(message)
            })
            .await
        };
        // Under the invocation layer the invocation's context is current already;
        // without it, the event's own context gives the deadline.
        match crate::context::with_current(|_| ()) {
            Some(()) => Box::pin(batch),
            None => {
                let context =
                    std::sync::Arc::new(crate::context::LambdaContext::new(&event.context, false));
                Box::pin(crate::context::scope(context, batch))
            }
        }
    }
}

/// The span of one record: `## record`, annotated with the function's name and, once
/// [`crate::logging::set_correlation_id`] is called inside it, the record's key.
pub fn record_span(record_id: &str) -> tracing::Span {
    let function =
        crate::context::with_current(|context| context.function_name.clone()).unwrap_or_default();
    tracing::info_span!(
        "## record",
        otel.kind = "internal",
        record_id,
        annotation.FunctionName = %function,
        annotation.correlation_id = tracing::field::Empty,
        annotation.idempotency_key = tracing::field::Empty,
    )
}

/// The span of one SQS record, a child of the trace named by the message's
/// `AWSTraceHeader`, so the consumer's work joins the producer's trace.
fn sqs_record_span(message: &SqsMessage) -> tracing::Span {
    let span = record_span(message.message_id.as_deref().unwrap_or_default());
    if let Some(header) = message.attributes.get("AWSTraceHeader") {
        crate::xray::set_parent_from_header(&span, header);
    }
    span
}

/// One record of a DynamoDB-stream batch, parsed on its own and lightly: the envelope's
/// fields are checked and borrowed from the event, the new image is parsed into a
/// borrowed tree the function decodes if it needs it ([`crate::stream_image`]), the old
/// image is left as raw JSON.
#[derive(Debug)]
pub struct StreamRecord<'a> {
    /// The record's `dynamodb.SequenceNumber`: the identifier reported on failure.
    pub sequence_number: Cow<'a, str>,
    /// The record, or why it did not parse.
    pub change: Result<StreamChange<'a>, serde_json::Error>,
}

/// A DynamoDB-stream record as a function reads it.
#[derive(Debug, Deserialize)]
pub struct StreamChange<'a> {
    /// `INSERT`, `MODIFY` or `REMOVE`.
    #[serde(rename = "eventName", borrow)]
    pub event_name: Cow<'a, str>,
    /// The change.
    #[serde(borrow)]
    pub dynamodb: StreamChangeBody<'a>,
}

/// The `dynamodb` part of a stream record.
#[derive(Debug, Deserialize)]
pub struct StreamChangeBody<'a> {
    /// The record's sequence number.
    #[serde(rename = "SequenceNumber", borrow)]
    pub sequence_number: Cow<'a, str>,
    /// The item's key attributes.
    #[serde(rename = "Keys", borrow, default)]
    pub keys: Option<crate::stream_image::Item<'a>>,
    /// The item after the change, when the stream view has it: parsed in the same pass
    /// as the record, decoded only if the function asks ([`crate::stream_image::Item::decode`]).
    #[serde(rename = "NewImage", borrow, default)]
    pub new_image: Option<crate::stream_image::Item<'a>>,
    /// The item before the change, when the stream view has it.
    #[serde(rename = "OldImage", borrow, default)]
    pub old_image: Option<&'a RawValue>,
    /// Approximate size of the record.
    #[serde(rename = "SizeBytes", default)]
    pub size_bytes: Option<u64>,
    /// When the change was made (epoch seconds).
    #[serde(rename = "ApproximateCreationDateTime", default)]
    pub approximate_creation_date_time: Option<f64>,
}

#[derive(Deserialize)]
struct StreamIdentity<'a> {
    #[serde(borrow)]
    dynamodb: StreamIdentityChange<'a>,
}

#[derive(Deserialize)]
struct StreamIdentityChange<'a> {
    #[serde(rename = "SequenceNumber", borrow)]
    sequence_number: Cow<'a, str>,
}

/// Parses each record of a DynamoDB-stream batch on its own, in stream order.
///
/// # Errors
/// [`BatchError`] if the event is not a batch or a record has no sequence number.
/// Nothing has been processed at that point, so failing the invocation is safe.
pub fn stream_records(event: &RawValue) -> Result<Vec<StreamRecord<'_>>, BatchError> {
    // The usual batch parses whole in one pass over its bytes. Only when some record
    // does not parse is the batch split first, so that record fails alone.
    #[derive(Deserialize)]
    struct Batch<'a> {
        #[serde(borrow, rename = "Records")]
        records: Vec<StreamChange<'a>>,
    }
    if let Ok(batch) = serde_json::from_str::<Batch<'_>>(event.get())
        && batch
            .records
            .iter()
            .all(|change| !change.dynamodb.sequence_number.is_empty())
    {
        return Ok(batch
            .records
            .into_iter()
            .map(|change| StreamRecord {
                sequence_number: change.dynamodb.sequence_number.clone(),
                change: Ok(change),
            })
            .collect());
    }
    records(event)?
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let change = serde_json::from_str::<StreamChange<'_>>(raw.get());
            let sequence_number = match &change {
                Ok(change) => Some(change.dynamodb.sequence_number.clone()),
                Err(_) => serde_json::from_str::<StreamIdentity<'_>>(raw.get())
                    .ok()
                    .map(|identity| identity.dynamodb.sequence_number),
            };
            match sequence_number {
                Some(sequence_number) if !sequence_number.is_empty() => Ok(StreamRecord {
                    sequence_number,
                    change,
                }),
                _ => Err(BatchError::Unidentifiable {
                    index,
                    field: "dynamodb.SequenceNumber",
                    reason: change
                        .err()
                        .map_or_else(|| "no sequence number".to_owned(), |e| e.to_string()),
                }),
            }
        })
        .collect()
}

/// The response of a stream function: empty on success, or the sequence number of the
/// first record that failed. Lambda resumes the shard from that record.
pub fn stream_failure(first_failed: Option<String>) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    if let Some(sequence_number) = first_failed {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence_number);
        response.batch_item_failures.push(failure);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    fn run<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    }

    /// The layer over a per-record service that records what it saw and fails bodies
    /// that are not "ok".
    fn layered(
        seen: &std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) -> impl tower::Service<
        lambda_runtime::LambdaEvent<Box<RawValue>>,
        Response = SqsBatchResponse,
        Error = BatchError,
    > {
        let seen = std::sync::Arc::clone(seen);
        tower::ServiceBuilder::new()
            .layer(SqsBatchLayer::new())
            .service(tower::service_fn(move |message: SqsMessage| {
                let seen = std::sync::Arc::clone(&seen);
                async move {
                    let body = message.body.unwrap_or_default();
                    seen.lock().unwrap().push(body.clone());
                    if body.starts_with("ok") {
                        Ok(())
                    } else {
                        Err(format!("refused {body}"))
                    }
                }
            }))
    }

    fn event(json: &str) -> lambda_runtime::LambdaEvent<Box<RawValue>> {
        lambda_runtime::LambdaEvent::new(raw(json), lambda_runtime::Context::default())
    }

    #[test]
    fn the_batch_layer_tries_every_record_of_a_standard_queue_and_reports_the_failures() {
        use tower::ServiceExt as _;
        let seen = std::sync::Arc::default();
        let response = run(layered(&seen).oneshot(event(
            r#"{"Records":[{"messageId":"1","body":"ok 1"},{"messageId":"2","body":"bad"},{"messageId":"3","body":7},{"messageId":"4","body":"ok 4"}]}"#,
        )))
        .unwrap();
        assert_eq!(failed_ids(&response), ["2", "3"]);
        assert_eq!(*seen.lock().unwrap(), ["ok 1", "bad", "ok 4"]);
    }

    #[test]
    fn the_batch_layer_stops_a_fifo_batch_at_its_first_failure() {
        use tower::ServiceExt as _;
        let arn = "arn:aws:sqs:eu-west-1:1:orders.fifo";
        let seen = std::sync::Arc::default();
        let response = run(layered(&seen).oneshot(event(&format!(
            r#"{{"Records":[{{"messageId":"1","body":"ok","eventSourceARN":"{arn}"}},{{"messageId":"2","body":"bad","eventSourceARN":"{arn}"}},{{"messageId":"3","body":"ok","eventSourceARN":"{arn}"}}]}}"#
        ))))
        .unwrap();
        assert_eq!(failed_ids(&response), ["2", "3"]);
        assert_eq!(*seen.lock().unwrap(), ["ok", "bad"]);
    }

    /// Without the invocation layer, the batch layer reads the deadline from the
    /// event's own context: near it, no record is started and each is reported.
    #[test]
    fn the_batch_layer_reads_the_deadline_from_the_events_context() {
        use tower::ServiceExt as _;
        let seen = std::sync::Arc::default();
        let mut near = lambda_runtime::Context::default();
        near.deadline = crate::clock::epoch_ms() + 100;
        let event = lambda_runtime::LambdaEvent::new(
            raw(r#"{"Records":[{"messageId":"1","body":"ok"},{"messageId":"2","body":"ok"}]}"#),
            near,
        );
        let response = run(layered(&seen).oneshot(event)).unwrap();
        assert_eq!(failed_ids(&response), ["1", "2"]);
        assert!(seen.lock().unwrap().is_empty());
    }

    /// `cargo lambda watch` sends its timeout (600 s) where Lambda sends the deadline's
    /// epoch time: read as a time, it is long past, and every record was given up.
    #[test]
    fn a_deadline_that_is_a_duration_gives_no_record_up() {
        use tower::ServiceExt as _;
        let seen = std::sync::Arc::default();
        let mut watch = lambda_runtime::Context::default();
        watch.deadline = 600_000;
        let event = lambda_runtime::LambdaEvent::new(
            raw(r#"{"Records":[{"messageId":"1","body":"ok"},{"messageId":"2","body":"ok"}]}"#),
            watch,
        );
        let response = run(layered(&seen).oneshot(event)).unwrap();
        assert!(failed_ids(&response).is_empty());
        assert_eq!(*seen.lock().unwrap(), ["ok", "ok"]);
    }

    #[test]
    fn the_batch_layer_refuses_an_event_that_is_not_a_batch() {
        use tower::ServiceExt as _;
        let seen = std::sync::Arc::default();
        let error = run(layered(&seen).oneshot(event(r#"{"hello":1}"#))).unwrap_err();
        assert!(matches!(error, BatchError::NotABatch(_)), "{error}");
        assert!(seen.lock().unwrap().is_empty());
    }

    #[test]
    fn a_malformed_sqs_record_fails_alone_and_the_rest_are_tried() {
        // The second record's body is a number where SqsMessage expects a string.
        let event = raw(
            r#"{"Records":[{"messageId":"1","body":"ok"},{"messageId":"2","body":7},{"messageId":"3","body":"ok"}]}"#,
        );
        let seen = RefCell::new(Vec::new());
        let response = run(process_sqs(&event, |m| {
            seen.borrow_mut().push(m.message_id.unwrap());
            async { Ok::<(), String>(()) }
        }))
        .unwrap();
        assert_eq!(failed_ids(&response), ["2"]);
        assert_eq!(*seen.borrow(), ["1", "3"]);
    }

    #[test]
    fn standard_queue_tries_every_record_after_a_failure() {
        let event = raw(
            r#"{"Records":[{"messageId":"1","body":"bad"},{"messageId":"2","body":"ok"},{"messageId":"3","body":"bad"}]}"#,
        );
        let tried = RefCell::new(0);
        let response = run(process_sqs(&event, |m| {
            *tried.borrow_mut() += 1;
            async move {
                match m.body.as_deref() {
                    Some("ok") => Ok(()),
                    _ => Err("rejected"),
                }
            }
        }))
        .unwrap();
        assert_eq!(failed_ids(&response), ["1", "3"]);
        assert_eq!(*tried.borrow(), 3);
    }

    #[test]
    fn fifo_queue_stops_at_the_first_failure_and_reports_the_rest() {
        let arn = "arn:aws:sqs:eu-west-1:123456789012:orders.fifo";
        let event = raw(&format!(
            r#"{{"Records":[
                {{"messageId":"1","body":"ok","eventSourceARN":"{arn}"}},
                {{"messageId":"2","body":"bad","eventSourceARN":"{arn}"}},
                {{"messageId":"3","body":"ok","eventSourceARN":"{arn}"}}]}}"#
        ));
        let tried = RefCell::new(Vec::new());
        let response = run(process_sqs(&event, |m| {
            let body = m.body.clone();
            tried.borrow_mut().push(m.message_id.unwrap());
            async move {
                if body.as_deref() == Some("ok") {
                    Ok(())
                } else {
                    Err("rejected")
                }
            }
        }))
        .unwrap();
        assert_eq!(failed_ids(&response), ["2", "3"]);
        assert_eq!(*tried.borrow(), ["1", "2"]);
    }

    #[test]
    fn an_all_failed_batch_reports_every_record_without_an_error() {
        let event = raw(r#"{"Records":[{"messageId":"1"},{"messageId":"2"}]}"#);
        let response = run(process_sqs(&event, |_| async { Err::<(), _>("down") })).unwrap();
        assert_eq!(failed_ids(&response), ["1", "2"]);
    }

    #[test]
    fn a_record_without_message_id_fails_the_invocation_before_any_work() {
        let event = raw(r#"{"Records":[{"messageId":"1","body":"ok"},{"body":"orphan"}]}"#);
        let tried = RefCell::new(0);
        let result = run(process_sqs(&event, |_| {
            *tried.borrow_mut() += 1;
            async { Ok::<(), String>(()) }
        }));
        assert!(matches!(
            result,
            Err(BatchError::Unidentifiable { index: 1, .. })
        ));
        assert_eq!(*tried.borrow(), 0);
    }

    #[test]
    fn a_hanging_record_is_given_up_before_the_deadline_and_the_rest_not_started() {
        use std::sync::Arc;
        let now_ms = crate::clock::epoch_ms();
        let invocation = |deadline_ms: u64| {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "lambda-runtime-deadline-ms",
                deadline_ms.to_string().parse().unwrap(),
            );
            let context = lambda_runtime::Context::new(
                "req",
                Arc::new(lambda_runtime::Config::default()),
                &headers,
            )
            .unwrap();
            let settings = crate::invocation::Settings {
                tracing: None,
                timeout_guard: None,
                metrics: None,
                logging: crate::logging::LogSettings::from_lookup(|_| None),
            };
            crate::invocation::InvocationState::new(&context, false, &settings)
        };
        let event = raw(r#"{"Records":[{"messageId":"1"},{"messageId":"2"},{"messageId":"3"}]}"#);
        // The second record's AWS call hangs. It is given up at the margin, reported
        // with the record after it (not started), and the invocation still answers.
        let tried = RefCell::new(0);
        let state = invocation(now_ms + DEADLINE_MARGIN.as_millis() as u64 + 300);
        let started = std::time::Instant::now();
        let response = run(crate::invocation::scope(
            &state,
            process_sqs(&event, |message| {
                *tried.borrow_mut() += 1;
                async move {
                    if message.message_id.as_deref() == Some("2") {
                        std::future::pending::<()>().await;
                    }
                    Ok::<(), String>(())
                }
            }),
        ))
        .unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(*tried.borrow(), 2);
        assert_eq!(failed_ids(&response), ["2", "3"]);
        // With time to spare, everything runs.
        let state = invocation(now_ms + 60_000);
        let response = run(crate::invocation::scope(
            &state,
            process_sqs(&event, |_| async { Ok::<(), String>(()) }),
        ))
        .unwrap();
        assert!(response.batch_item_failures.is_empty());
    }

    #[test]
    fn an_event_without_records_is_not_a_batch() {
        assert!(matches!(
            records(&raw(r#"{"foo":1}"#)),
            Err(BatchError::NotABatch(_))
        ));
    }

    #[test]
    fn stream_records_keep_the_sequence_number_of_malformed_records() {
        let event = raw(r#"{"Records":[
              {"eventID":"1","eventName":"INSERT","awsRegion":"eu-west-1","dynamodb":{"SequenceNumber":"100","SizeBytes":10}},
              {"eventID":"2","eventName":42,"dynamodb":{"SequenceNumber":"200","SizeBytes":10}}]}"#);
        let parsed = stream_records(&event).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].sequence_number, "100");
        assert!(parsed[0].change.is_ok());
        assert_eq!(parsed[1].sequence_number, "200");
        assert!(parsed[1].change.is_err());
    }

    #[test]
    fn a_stream_record_without_sequence_number_is_unidentifiable() {
        let event = raw(r#"{"Records":[{"eventName":"INSERT","dynamodb":{"SizeBytes":1}}]}"#);
        assert!(matches!(
            stream_records(&event),
            Err(BatchError::Unidentifiable {
                field: "dynamodb.SequenceNumber",
                ..
            })
        ));
    }

    #[test]
    fn stream_failure_names_one_sequence_number_or_none() {
        assert!(stream_failure(None).batch_item_failures.is_empty());
        let response = stream_failure(Some("300".to_owned()));
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["batchItemFailures"][0]["itemIdentifier"], "300");
    }
}
