//! Stream batches Lambda set aside: read their orders back from the stream, clear them.

use aws_sdk_sqs::types::Message;
use serde::Serialize;

use crate::domain::OrderId;
use crate::keys;

use super::OpsError;
use super::dead_letters::Redrive;
use super::queue::{peek, take_selected};

/// A stream batch Lambda set aside after its retries: the invocation record it sent to
/// the on-failure queue, and the new orders in that range read back from the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamFailure {
    /// SQS message id in the on-failure queue (`stream-failures clear` takes it).
    pub message_id: String,
    /// Why Lambda gave up: `RetryAttemptsExhausted`, `RecordAgeExceeded`, ...
    pub condition: Option<String>,
    /// The function's error type, when the function failed as a whole.
    pub function_error: Option<String>,
    /// How many times Lambda invoked the function with the batch.
    pub approximate_invoke_count: Option<u64>,
    /// The batch's shard and sequence range, or why the record does not decode.
    pub batch: Result<StreamBatch, String>,
    /// The new orders in the range with their status now, or why they cannot be read
    /// (the stream keeps records for 24 hours).
    pub orders: Result<Vec<StreamedOrder>, String>,
}

/// `DDBStreamBatchInfo` of Lambda's invocation record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamBatch {
    /// The stream.
    pub stream_arn: String,
    /// The shard.
    pub shard_id: String,
    /// First sequence number of the batch.
    pub start_sequence_number: String,
    /// Last sequence number of the batch.
    pub end_sequence_number: String,
}

/// A new order found in a set-aside range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamedOrder {
    /// Its stream record.
    pub sequence_number: String,
    /// The order id from the record's keys.
    pub order_id: String,
    /// `ORDERED` (resend it), `PROCESSED` (nothing to do), `MISSING`, or why the order
    /// cannot be read (fix the item before resending).
    pub status_now: String,
}

fn stream_batch(body: &serde_json::Value) -> Result<StreamBatch, String> {
    let info = &body["DDBStreamBatchInfo"];
    let field = |name: &str| {
        info[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("not a stream invocation record: no DDBStreamBatchInfo.{name}"))
    };
    Ok(StreamBatch {
        stream_arn: field("streamArn")?,
        shard_id: field("shardId")?,
        start_sequence_number: field("startSequenceNumber")?,
        end_sequence_number: field("endSequenceNumber")?,
    })
}

/// Sequence numbers are decimal strings of any length: compare them as numbers.
fn sequence_order(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Lists the on-failure queue's records (up to `limit`), each with the orders in its
/// range and their status now. Nothing is consumed.
///
/// # Errors
/// [`OpsError`] if the queue cannot be read. A range that cannot be read back is
/// reported in its entry.
pub async fn list_stream_failures(
    sqs: &aws_sdk_sqs::Client,
    streams: &aws_sdk_dynamodbstreams::Client,
    store: &crate::store::Store,
    queue_url: &str,
    limit: usize,
) -> Result<Vec<StreamFailure>, OpsError> {
    let mut failures = Vec::new();
    for message in peek(sqs, queue_url, limit).await? {
        let body: serde_json::Value =
            serde_json::from_str(message.body.as_deref().unwrap_or_default())
                .unwrap_or(serde_json::Value::Null);
        let batch = stream_batch(&body);
        let orders = match &batch {
            Ok(batch) => orders_in_range(streams, store, batch).await,
            Err(e) => Err(e.clone()),
        };
        failures.push(StreamFailure {
            message_id: message.message_id.clone().unwrap_or_default(),
            condition: body["requestContext"]["condition"]
                .as_str()
                .map(str::to_owned),
            function_error: body["responseContext"]["functionError"]
                .as_str()
                .map(str::to_owned),
            approximate_invoke_count: body["requestContext"]["approximateInvokeCount"].as_u64(),
            batch,
            orders,
        });
    }
    Ok(failures)
}

/// Reads the batch's range back from the stream and keeps the new orders, each with
/// its status now.
async fn orders_in_range(
    streams: &aws_sdk_dynamodbstreams::Client,
    store: &crate::store::Store,
    batch: &StreamBatch,
) -> Result<Vec<StreamedOrder>, String> {
    use aws_sdk_dynamodbstreams::types::AttributeValue as StreamValue;

    let mut orders = Vec::new();
    for record in records_in_range(streams, batch).await? {
        let Some(change) = record.dynamodb else {
            continue;
        };
        let image = change.new_image.unwrap_or_default();
        let text = |name: &str| match image.get(name) {
            Some(StreamValue::S(v)) => Some(v.clone()),
            _ => None,
        };
        let is_new_order = record.event_name.as_ref().map(|n| n.as_str()) == Some("INSERT")
            && text(keys::ENTITY).as_deref() == Some("ORDER");
        let Some(order_id) = text("order_id").filter(|_| is_new_order) else {
            continue;
        };
        let status_now = match OrderId::parse(&order_id) {
            Err(e) => format!("unreadable: {e}"),
            Ok(id) => match store.get_order(&id).await {
                Ok(Some(order)) => order.order_status.as_str().to_owned(),
                Ok(None) => "MISSING".to_owned(),
                Err(e) => format!("unreadable: {e}"),
            },
        };
        orders.push(StreamedOrder {
            sequence_number: change.sequence_number.unwrap_or_default(),
            order_id,
            status_now,
        });
    }
    Ok(orders)
}

/// Empty pages in a row after which an open shard is taken to hold nothing more:
/// DynamoDB Streams may answer empty pages before a shard's later records.
const EMPTY_PAGES_AT_THE_END: u32 = 10;

/// The stream records from the batch's start to its end sequence number: from its shard,
/// or from every shard when the stream no longer lists that shard.
async fn records_in_range(
    streams: &aws_sdk_dynamodbstreams::Client,
    batch: &StreamBatch,
) -> Result<Vec<aws_sdk_dynamodbstreams::types::Record>, String> {
    use aws_sdk_dynamodbstreams::error::DisplayErrorContext;
    use std::cmp::Ordering;

    let shards: Vec<String> = streams
        .describe_stream()
        .stream_arn(&batch.stream_arn)
        .send()
        .await
        .map_err(|e| format!("describing the stream: {}", DisplayErrorContext(&e)))?
        .stream_description
        .and_then(|d| d.shards)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.shard_id)
        .collect();
    let shards = if shards.contains(&batch.shard_id) {
        vec![batch.shard_id.clone()]
    } else {
        shards
    };
    let mut in_range = Vec::new();
    for shard in shards {
        let mut iterator = shard_iterator(streams, batch, &shard).await?;
        let (mut pages, mut empty_in_a_row) = (0, 0);
        'pages: while let Some(current) = iterator.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(format!("shard {shard}: gave up after {pages} pages"));
            }
            let page = streams
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .map_err(|e| format!("reading shard {shard}: {}", DisplayErrorContext(&e)))?;
            let records = page.records.unwrap_or_default();
            empty_in_a_row = if records.is_empty() {
                empty_in_a_row + 1
            } else {
                0
            };
            if empty_in_a_row >= EMPTY_PAGES_AT_THE_END {
                break;
            }
            for record in records {
                let sequence = record
                    .dynamodb
                    .as_ref()
                    .and_then(|c| c.sequence_number.as_deref())
                    .unwrap_or_default();
                if sequence_order(sequence, &batch.end_sequence_number) == Ordering::Greater {
                    break 'pages;
                }
                if sequence_order(sequence, &batch.start_sequence_number) != Ordering::Less {
                    in_range.push(record);
                }
            }
            iterator = page.next_shard_iterator;
        }
    }
    Ok(in_range)
}

/// An iterator at the batch's first record on its own shard; on any other shard, or
/// when that record cannot be reached (trimmed), at the shard's start. The range check
/// skips what comes before the batch.
async fn shard_iterator(
    streams: &aws_sdk_dynamodbstreams::Client,
    batch: &StreamBatch,
    shard: &str,
) -> Result<Option<String>, String> {
    use aws_sdk_dynamodbstreams::error::DisplayErrorContext;
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;

    let request = || {
        streams
            .get_shard_iterator()
            .stream_arn(&batch.stream_arn)
            .shard_id(shard)
    };
    if shard == batch.shard_id {
        let at_start = request()
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(&batch.start_sequence_number)
            .send()
            .await;
        if let Ok(output) = at_start {
            return Ok(output.shard_iterator);
        }
    }
    request()
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .map(|output| output.shard_iterator)
        .map_err(|e| format!("reading shard {shard}: {}", DisplayErrorContext(&e)))
}

/// Deletes handled records from the on-failure queue by message id; the others stay.
///
/// # Errors
/// [`OpsError`] if the queue cannot be read or written.
pub async fn clear_stream_failures(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    message_ids: &[String],
) -> Result<Redrive, OpsError> {
    let selected = |m: &Message| {
        m.message_id
            .as_ref()
            .is_some_and(|id| message_ids.contains(id))
    };
    take_selected(sqs, queue_url, selected, async |_: &Message| Ok(())).await
}
