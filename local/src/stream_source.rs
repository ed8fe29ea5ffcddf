//! A DynamoDB-stream event source mapping, run locally.
//!
//! Like Lambda's: it reads every shard from the start, drops records that match none
//! of the filters, fills batches (one shard each) up to `BatchSize` or until the
//! batching window closes, and invokes the function with the exact event JSON Lambda
//! delivers. A shard waits while its batch is retried.
//!
//! - A partial-batch response rewinds to the reported record: the records before it are
//!   done, the retry starts at it.
//! - A function error, crash or timeout retries the batch, split in two first when
//!   `BisectBatchOnFunctionError` is on.
//! - After `MaximumRetryAttempts` retries, the failing record (or, for a function
//!   error on one record, that record) goes to the on-failure destination as Lambda's
//!   invocation record with its sequence range, and the shard moves on. This models
//!   where Lambda's bisection ends: one record set aside, the rest processed.
//!
//! Each shard's position is its last sequence number read. A shard whose read fails
//! keeps its position and gets a fresh iterator after it on the next poll (as Lambda
//! does when an iterator expires); the other shards' records are kept. Every failed
//! poll is counted and logged ([`PollHealth`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::cloudwatch::Plane;
use crate::cloudwatch::store::MetricId;
use crate::filter::Pattern;
use crate::function::{Function, Outcome};
use crate::polling::PollHealth;
use crate::resources::QueueRef;

/// Settings of one stream mapping.
#[derive(Debug, Clone)]
pub struct StreamSourceConfig {
    /// The stream.
    pub stream_arn: String,
    /// The region in the records.
    pub region: String,
    /// Most records per invocation.
    pub batch_size: usize,
    /// Longest wait to fill a batch.
    pub batching_window: Duration,
    /// Split a failing batch before retrying it.
    pub bisect_on_error: bool,
    /// Retries before a record is set aside.
    pub maximum_retry_attempts: u32,
    /// Whether the function's `batchItemFailures` are honoured.
    pub report_batch_item_failures: bool,
    /// A record passes if any pattern matches (or there are none).
    pub filters: Vec<Pattern>,
    /// Where set-aside records are reported.
    pub on_failure: Option<QueueRef>,
    /// Pause before a retry.
    pub retry_delay: Duration,
    /// Whether the mapping is enabled: while it is not, the stream is not read (the
    /// records wait in the stream, as for a disabled mapping).
    pub enabled: Arc<std::sync::atomic::AtomicBool>,
    /// Where `IteratorAge` goes, if anywhere.
    pub plane: Option<Arc<Plane>>,
}

/// Counters of a stream source.
#[derive(Debug, Default)]
pub struct StreamSourceStats {
    /// Records read from the stream.
    pub records_read: AtomicU64,
    /// Records that passed the filters.
    pub records_matched: AtomicU64,
    /// Invocations (first attempts and retries).
    pub invocations: AtomicU64,
    /// Retries of a batch or part of one.
    pub retries: AtomicU64,
    /// Records sent to the on-failure destination.
    pub records_set_aside: AtomicU64,
    /// How reading the stream is going.
    pub polling: PollHealth,
}

/// Where the source is in one shard.
#[derive(Debug, Default)]
struct ShardPosition {
    /// The iterator to read next; `None` to get one after `last_sequence`.
    iterator: Option<String>,
    /// The last sequence number read.
    last_sequence: Option<String>,
    /// The shard is closed and read to its end.
    finished: bool,
}

/// Runs a stream mapping until `shutdown`.
pub async fn run(
    config: StreamSourceConfig,
    sdk: aws_config::SdkConfig,
    function: Function,
    stats: Arc<StreamSourceStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut shards: BTreeMap<String, ShardPosition> = BTreeMap::new();
    let source = format!("stream -> {}", function.name());
    // One buffer per shard, as Lambda never mixes shards in a batch; with the time its
    // first record arrived.
    let mut buffers: BTreeMap<String, (Vec<Value>, Instant)> = BTreeMap::new();
    let mapping = Mapping {
        config: &config,
        function: &function,
        sqs: &sqs,
        stats: &stats,
        created: std::sync::Mutex::new(HashMap::new()),
    };
    loop {
        if *shutdown.borrow() {
            return;
        }
        if !config.enabled.load(Ordering::Relaxed) {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = crate::http::stopped(&mut shutdown) => return,
            }
            continue;
        }
        let (records, errors) = poll(&streams, &config, &mut shards).await;
        match errors.first() {
            None => stats.polling.succeeded(&source),
            Some(error) => stats.polling.failed(&source, error),
        }
        let read = records.len();
        stats.records_read.fetch_add(read as u64, Ordering::Relaxed);
        for (shard, record) in records {
            let event = lambda_stream_record(&record, &config.stream_arn, &config.region);
            if let Some(change) = record.dynamodb.as_ref()
                && let (Some(sequence), Some(created)) = (
                    &change.sequence_number,
                    change.approximate_creation_date_time,
                )
                && let Ok(mut ages) = mapping.created.lock()
            {
                ages.insert(sequence.clone(), created.to_millis().unwrap_or_default());
            }
            if config.filters.is_empty() || config.filters.iter().any(|f| f.matches(&event)) {
                stats.records_matched.fetch_add(1, Ordering::Relaxed);
                buffers
                    .entry(shard)
                    .or_insert_with(|| (Vec::new(), Instant::now()))
                    .0
                    .push(event);
            }
        }
        for (shard, (buffer, since)) in &mut buffers {
            let window_closed = since.elapsed() >= config.batching_window;
            while buffer.len() >= config.batch_size || (window_closed && !buffer.is_empty()) {
                let take = buffer.len().min(config.batch_size);
                let batch: Vec<Value> = buffer.drain(..take).collect();
                deliver(&mapping, shard, batch, &mut shutdown).await;
            }
        }
        buffers.retain(|_, (buffer, _)| !buffer.is_empty());
        if read == 0 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = crate::http::stopped(&mut shutdown) => return,
            }
        }
    }
}

/// What delivering a shard's batches needs.
struct Mapping<'a> {
    config: &'a StreamSourceConfig,
    function: &'a Function,
    sqs: &'a aws_sdk_sqs::Client,
    stats: &'a StreamSourceStats,
    /// When each buffered record reached the stream (real epoch ms), by sequence
    /// number, for `IteratorAge`.
    created: std::sync::Mutex<HashMap<String, i64>>,
}

impl Mapping<'_> {
    /// `IteratorAge` of an invocation: the age of its last record when it is sent to
    /// the function, on the plane's clock.
    fn report_iterator_age(&self, records: &[Value]) {
        let Some(plane) = &self.config.plane else {
            return;
        };
        let created = records
            .last()
            .and_then(|r| r["dynamodb"]["SequenceNumber"].as_str())
            .and_then(|sequence| self.created.lock().ok()?.get(sequence).copied());
        if let Some(created) = created {
            let age = Duration::from_millis(
                (crate::cloudwatch::clock::wall_ms() - created).max(0) as u64
            );
            plane.put(
                MetricId::new(
                    "AWS/Lambda",
                    "IteratorAge",
                    [("FunctionName", self.function.name())],
                ),
                plane.clock().sim_duration(age).as_millis() as f64,
            );
        }
    }

    fn forget(&self, records: &[Value]) {
        if let Ok(mut created) = self.created.lock() {
            for sequence in records
                .iter()
                .filter_map(|r| r["dynamodb"]["SequenceNumber"].as_str())
            {
                created.remove(sequence);
            }
        }
    }
}

/// Reads every shard once. Returns the records read, in shard order, and the errors
/// met: a shard that fails is skipped (its position kept), the others are read.
async fn poll(
    client: &aws_sdk_dynamodbstreams::Client,
    config: &StreamSourceConfig,
    shards: &mut BTreeMap<String, ShardPosition>,
) -> (Vec<(String, Record)>, Vec<String>) {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let described = client
        .describe_stream()
        .stream_arn(&config.stream_arn)
        .send()
        .await;
    let listed = match described {
        Ok(output) => output
            .stream_description
            .and_then(|d| d.shards)
            .unwrap_or_default(),
        Err(e) => {
            errors.push(format!(
                "DescribeStream: {}",
                err(&aws_sdk_dynamodbstreams::error::DisplayErrorContext(e))
            ));
            return (records, errors);
        }
    };
    for shard in listed {
        let Some(shard_id) = shard.shard_id else {
            continue;
        };
        let position = shards.entry(shard_id.clone()).or_default();
        if position.finished {
            continue;
        }
        let iterator = match position.iterator.take() {
            Some(iterator) => iterator,
            None => {
                let request = client
                    .get_shard_iterator()
                    .stream_arn(&config.stream_arn)
                    .shard_id(&shard_id);
                let request = match &position.last_sequence {
                    Some(sequence) => request
                        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                        .sequence_number(sequence),
                    None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
                };
                match request.send().await {
                    Ok(output) => match output.shard_iterator {
                        Some(iterator) => iterator,
                        None => {
                            position.finished = true;
                            continue;
                        }
                    },
                    Err(e) => {
                        errors.push(format!(
                            "GetShardIterator {shard_id}: {}",
                            err(&aws_sdk_dynamodbstreams::error::DisplayErrorContext(e))
                        ));
                        continue;
                    }
                }
            }
        };
        match client
            .get_records()
            .shard_iterator(iterator)
            .limit(1000)
            .send()
            .await
        {
            Ok(output) => {
                let read = output.records.unwrap_or_default();
                if let Some(last) = read
                    .last()
                    .and_then(|r| r.dynamodb.as_ref())
                    .and_then(|d| d.sequence_number.clone())
                {
                    position.last_sequence = Some(last);
                }
                // No next iterator: the shard is closed and read to its end.
                position.finished = output.next_shard_iterator.is_none();
                position.iterator = output.next_shard_iterator;
                records.extend(read.into_iter().map(|r| (shard_id.clone(), r)));
            }
            // The iterator is dropped; the next poll gets one after the last record read.
            Err(e) => errors.push(format!(
                "GetRecords {shard_id}: {}",
                err(&aws_sdk_dynamodbstreams::error::DisplayErrorContext(e))
            )),
        }
    }
    (records, errors)
}

/// What the function said about a batch.
enum Verdict {
    Done,
    /// Lambda throttled the invocation: retried, without counting as a retry.
    Throttled,
    /// Rewind to this index.
    FailedAt(usize),
    /// The invocation failed as a whole.
    Failed(String),
}

fn verdict(config: &StreamSourceConfig, batch: &[Value], outcome: &Outcome) -> Verdict {
    let body = match outcome {
        Outcome::Response(body) => body,
        Outcome::Throttled => return Verdict::Throttled,
        other => return Verdict::Failed(format!("{other:?}")),
    };
    if !config.report_batch_item_failures {
        return Verdict::Done;
    }
    let response: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(failures) = response.get("batchItemFailures").and_then(Value::as_array) else {
        return Verdict::Done;
    };
    let positions: HashMap<&str, usize> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((r["dynamodb"]["SequenceNumber"].as_str()?, i)))
        .collect();
    let mut lowest = None;
    for failure in failures {
        // An empty or unknown identifier fails the whole batch, as on Lambda.
        match failure
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .and_then(|id| positions.get(id))
        {
            Some(&i) => lowest = Some(lowest.map_or(i, |l: usize| l.min(i))),
            None => return Verdict::Failed(format!("invalid itemIdentifier in {failure}")),
        }
    }
    lowest.map_or(Verdict::Done, Verdict::FailedAt)
}

async fn deliver(
    mapping: &Mapping<'_>,
    shard: &str,
    batch: Vec<Value>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let Mapping {
        config,
        function,
        stats,
        ..
    } = *mapping;
    // Work items: a slice of records and how many times it has been retried.
    let mut work: VecDeque<(Vec<Value>, u32)> = VecDeque::from([(batch, 0)]);
    while let Some((records, retries)) = work.pop_front() {
        if *shutdown.borrow() {
            return;
        }
        if retries > 0 {
            stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                () = tokio::time::sleep(config.retry_delay) => {}
                () = crate::http::stopped(shutdown) => return,
            }
        }
        stats.invocations.fetch_add(1, Ordering::Relaxed);
        mapping.report_iterator_age(&records);
        let event = json!({ "Records": records });
        let outcome = function.invoke(event.to_string()).await;
        match verdict(config, &records, &outcome) {
            Verdict::Done => mapping.forget(&records),
            Verdict::Throttled => {
                tokio::select! {
                    () = tokio::time::sleep(config.retry_delay) => {}
                    () = crate::http::stopped(shutdown) => return,
                }
                work.push_front((records, retries));
            }
            Verdict::FailedAt(index) => {
                function
                    .stats()
                    .batch_item_failures
                    .fetch_add(1, Ordering::Relaxed);
                let mut rest = records;
                rest.drain(..index);
                if retries >= config.maximum_retry_attempts {
                    let after = rest.split_off(1);
                    set_aside(
                        mapping,
                        shard,
                        &rest,
                        retries + 1,
                        "RetryAttemptsExhausted",
                        None,
                    )
                    .await;
                    if !after.is_empty() {
                        work.push_front((after, 0));
                    }
                } else {
                    work.push_front((rest, retries + 1));
                }
            }
            Verdict::Failed(reason) => {
                tracing::warn!(function = %function.name(), %reason, records = records.len(), "stream batch failed");
                if retries >= config.maximum_retry_attempts {
                    set_aside(
                        mapping,
                        shard,
                        &records,
                        retries + 1,
                        "RetryAttemptsExhausted",
                        Some(&reason),
                    )
                    .await;
                } else if config.bisect_on_error && records.len() > 1 {
                    let mut first = records;
                    let second = first.split_off(first.len() / 2);
                    work.push_front((second, retries + 1));
                    work.push_front((first, retries + 1));
                } else {
                    work.push_front((records, retries + 1));
                }
            }
        }
    }
}

/// Reports records to the on-failure destination in Lambda's invocation-record shape.
async fn set_aside(
    mapping: &Mapping<'_>,
    shard: &str,
    records: &[Value],
    attempts: u32,
    condition: &str,
    function_error: Option<&str>,
) {
    let Mapping {
        config,
        function,
        sqs,
        stats,
        ..
    } = mapping;
    mapping.forget(records);
    stats
        .records_set_aside
        .fetch_add(records.len() as u64, Ordering::Relaxed);
    let sequence = |r: Option<&Value>| {
        r.and_then(|r| r["dynamodb"]["SequenceNumber"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let record = json!({
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": function.arn(),
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": function_error,
        },
        "version": "1.0",
        "timestamp": crate::now_rfc3339(),
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": sequence(records.first()),
            "endSequenceNumber": sequence(records.last()),
            "batchSize": records.len(),
            "streamArn": config.stream_arn,
        },
    });
    tracing::error!(function = %function.name(), start = %sequence(records.first()), records = records.len(), "stream records set aside after retries");
    if let Some(queue) = &config.on_failure {
        let sent = sqs
            .send_message()
            .queue_url(&queue.url)
            .message_body(record.to_string())
            .send()
            .await;
        if let Err(e) = sent {
            tracing::error!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "cannot write to the on-failure destination");
        }
    }
}

/// A stream record as Lambda's event carries it.
pub fn lambda_stream_record(record: &Record, stream_arn: &str, region: &str) -> Value {
    let change = record.dynamodb.as_ref();
    let image = |item: Option<&HashMap<String, AttributeValue>>| {
        item.map(|item| {
            Value::Object(
                item.iter()
                    .map(|(k, v)| (k.clone(), attribute_json(v)))
                    .collect(),
            )
        })
    };
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": change.and_then(|c| c.approximate_creation_date_time).map(|t| t.secs()),
        "Keys": image(change.and_then(|c| c.keys.as_ref())),
        "SequenceNumber": change.and_then(|c| c.sequence_number.clone()),
        "SizeBytes": change.and_then(|c| c.size_bytes).unwrap_or(0),
        "StreamViewType": change.and_then(|c| c.stream_view_type.as_ref()).map(|v| v.as_str().to_owned()),
    });
    if let Some(new) = image(change.and_then(|c| c.new_image.as_ref())) {
        dynamodb["NewImage"] = new;
    }
    if let Some(old) = image(change.and_then(|c| c.old_image.as_ref())) {
        dynamodb["OldImage"] = old;
    }
    json!({
        "eventID": record.event_id,
        "eventName": record.event_name.as_ref().map(|n| n.as_str().to_owned()),
        "eventVersion": record.event_version,
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    })
}

fn attribute_json(value: &AttributeValue) -> Value {
    use aws_smithy_types::base64;
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": base64::encode(b.as_ref()) }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => {
            json!({ "BS": v.iter().map(|b| base64::encode(b.as_ref())).collect::<Vec<_>>() })
        }
        AttributeValue::M(m) => {
            json!({ "M": m.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect::<serde_json::Map<_, _>>() })
        }
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        other => json!({ "NULL": true, "unsupported": format!("{other:?}") }),
    }
}
