//! Operator tasks behind `ordersctl`: inspect and redrive the dead-letter queue, read
//! the stream batches Lambda set aside and resend their orders, follow an order's
//! journey, clear a stale idempotency record. They work against AWS and
//! against the local stack alike (the SDK honours `AWS_ENDPOINT_URL`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use serde::Serialize;

use crate::domain::OrderId;
use crate::keys;
use crate::message::{ORDER_ID_ATTRIBUTE, OrderMessage};

/// An operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OpsError(String);

fn sqs_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
) -> impl FnOnce(aws_sdk_sqs::error::SdkError<E, R>) -> OpsError + '_ {
    move |e| OpsError(format!("{what}: {}", DisplayErrorContext(&e)))
}

/// A dead-lettered message, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// SQS message id.
    pub message_id: String,
    /// How many times it was received (on the source queue, then here).
    pub receive_count: u32,
    /// The order id from the message attribute, if any.
    pub order_id: Option<String>,
    /// The body, decoded as an order message, or why it does not decode.
    pub decoded: Result<OrderMessage, String>,
    /// The raw body.
    pub body: String,
}

/// Reads up to `limit` messages of a queue without consuming them (each becomes visible
/// again at once).
///
/// # Errors
/// [`OpsError`] if the queue cannot be read.
pub async fn list_dead_letters(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    limit: usize,
) -> Result<Vec<DeadLetter>, OpsError> {
    Ok(peek(sqs, dlq_url, limit)
        .await?
        .iter()
        .map(decode)
        .collect())
}

/// Reads up to `limit` distinct messages of a queue without consuming them (each
/// becomes visible again at once), in message-id order.
async fn peek(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    limit: usize,
) -> Result<Vec<Message>, OpsError> {
    let mut seen: HashMap<String, Message> = HashMap::new();
    for _ in 0..limit.div_ceil(10).max(1) * 2 {
        let messages = receive(sqs, url, 0).await?;
        let id = |m: &Message| m.message_id.clone().unwrap_or_default();
        if messages.is_empty() || messages.iter().all(|m| seen.contains_key(&id(m))) {
            break;
        }
        for message in messages {
            seen.entry(id(&message)).or_insert(message);
        }
        if seen.len() >= limit {
            break;
        }
    }
    let mut messages: Vec<Message> = seen.into_values().collect();
    messages.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    messages.truncate(limit);
    Ok(messages)
}

async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    visibility: i32,
) -> Result<Vec<Message>, OpsError> {
    Ok(sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(visibility)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(sqs_error("receiving from the queue"))?
        .messages
        .unwrap_or_default())
}

fn decode(message: &Message) -> DeadLetter {
    let body = message.body.clone().unwrap_or_default();
    DeadLetter {
        message_id: message.message_id.clone().unwrap_or_default(),
        receive_count: message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        order_id: message
            .message_attributes
            .as_ref()
            .and_then(|a| a.get(ORDER_ID_ATTRIBUTE))
            .and_then(|v| v.string_value.clone()),
        decoded: OrderMessage::from_json(&body).map_err(|e| e.to_string()),
        body,
    }
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Redrive {
    /// Message ids sent back to the source queue (and deleted from the DLQ).
    pub moved: Vec<String>,
    /// Message ids left in the DLQ because they were not selected.
    pub skipped: Vec<String>,
}

/// Moves dead-lettered messages back to the source queue: all of them, or those whose
/// message id or order id is in `only`. Each message is sent (body and attributes)
/// before it is deleted, so a failure part-way leaves a duplicate, never a loss; the
/// consumer completes an order once whatever the duplicates.
///
/// This is receive + send + delete rather than `StartMessageMoveTask`, so it can move
/// selected messages, and it works the same on AWS and on the emulator.
///
/// # Errors
/// [`OpsError`] if a queue cannot be read or written.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    source_url: &str,
    only: &[String],
) -> Result<Redrive, OpsError> {
    let selected = |message: &Message| {
        let letter = decode(message);
        only.is_empty()
            || only.contains(&letter.message_id)
            || letter.order_id.as_ref().is_some_and(|id| only.contains(id))
    };
    take_selected(sqs, dlq_url, selected, async |message: &Message| {
        let mut send = sqs
            .send_message()
            .queue_url(source_url)
            .message_body(message.body.clone().unwrap_or_default());
        for (name, value) in message.message_attributes.clone().unwrap_or_default() {
            let value = MessageAttributeValue::builder()
                .data_type(value.data_type)
                .set_string_value(value.string_value)
                .build()
                .map_err(|e| OpsError(e.to_string()))?;
            send = send.message_attributes(name, value);
        }
        send.send()
            .await
            .map_err(sqs_error("sending back to the source queue"))?;
        Ok(())
    })
    .await
}

/// Receives each message of `url`: a `selected` one is handed to `take` and deleted once
/// `take` succeeds; the others are released at once. Selected messages are held for
/// 30 s meanwhile, so a failure part-way leaves them to reappear, never lost.
async fn take_selected(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    selected: impl Fn(&Message) -> bool,
    mut take: impl AsyncFnMut(&Message) -> Result<(), OpsError>,
) -> Result<Redrive, OpsError> {
    let mut result = Redrive::default();
    for _ in 0..100 {
        let messages = receive(sqs, url, 30).await?;
        if messages.is_empty() {
            break;
        }
        let mut progressed = false;
        for message in messages {
            let id = message.message_id.clone().unwrap_or_default();
            let receipt = message.receipt_handle.clone().unwrap_or_default();
            if !selected(&message) {
                sqs.change_message_visibility()
                    .queue_url(url)
                    .receipt_handle(&receipt)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .map_err(sqs_error("releasing an unselected message"))?;
                if !result.skipped.contains(&id) {
                    result.skipped.push(id);
                }
                continue;
            }
            take(&message).await?;
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(&receipt)
                .send()
                .await
                .map_err(sqs_error("deleting a handled message"))?;
            result.moved.push(id);
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    Ok(result)
}

/// An order's stored records, as an operator reads them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Journey {
    /// The order header and lines (every attribute, as JSON).
    pub records: Vec<serde_json::Value>,
    /// The idempotency record of `update-cart-products`, if any.
    pub idempotency: Option<serde_json::Value>,
    /// `placed_at` → status, `processed_at` → status, in order.
    pub history: Vec<(String, String)>,
}

fn item_json(item: &HashMap<String, AttributeValue>) -> serde_json::Value {
    let value = |v: &AttributeValue| -> serde_json::Value {
        match v {
            AttributeValue::S(s) => serde_json::json!(s),
            AttributeValue::N(n) => serde_json::json!(n.parse::<f64>().ok()),
            AttributeValue::Bool(b) => serde_json::json!(b),
            other => serde_json::json!(format!("{other:?}")),
        }
    };
    serde_json::Value::Object(item.iter().map(|(k, v)| (k.clone(), value(v))).collect())
}

/// The key of a function's idempotency record for `key`.
pub fn idempotency_key(function: &str, key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            keys::PK.to_owned(),
            AttributeValue::S(format!("IDEMPOTENCY#{function}#{key}")),
        ),
        (
            keys::SK.to_owned(),
            AttributeValue::S("IDEMPOTENCY".to_owned()),
        ),
    ])
}

/// Reads an order's records and its idempotency record.
///
/// # Errors
/// [`OpsError`] if the table cannot be read.
pub async fn journey(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    order: &OrderId,
) -> Result<Journey, OpsError> {
    let dynamo_error = |e: &dyn std::fmt::Display| OpsError(format!("reading the table: {e}"));
    let items = dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", keys::PK)
        .expression_attribute_values(":pk", AttributeValue::S(keys::order_partition(order)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| dynamo_error(&DisplayErrorContext(&e)))?
        .items
        .unwrap_or_default();
    let records: Vec<serde_json::Value> = items.iter().map(item_json).collect();
    let mut history = Vec::new();
    if let Some(header) = records.iter().find(|r| r[keys::ENTITY] == "ORDER") {
        if let Some(at) = header["placed_at"].as_str() {
            history.push((at.to_owned(), "ORDERED".to_owned()));
        }
        if let Some(at) = header["processed_at"].as_str() {
            history.push((at.to_owned(), "PROCESSED".to_owned()));
        }
    }
    let idempotency = dynamodb
        .get_item()
        .table_name(table)
        .set_key(Some(idempotency_key(
            crate::pipeline::complete::IDEMPOTENCY_PREFIX,
            &order.to_string(),
        )))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| dynamo_error(&DisplayErrorContext(&e)))?
        .item
        .map(|item| item_json(&item));
    Ok(Journey {
        records,
        idempotency,
        history,
    })
}

/// What clearing an idempotency record did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Cleared {
    /// The record was deleted.
    Deleted,
    /// There was no record.
    Absent,
    /// The record is live (COMPLETED, or INPROGRESS with its lease running) and was
    /// kept; `--force` deletes it anyway.
    Kept(String),
}

/// Deletes a stale idempotency record: an INPROGRESS one whose lease has ended (its
/// holder died), or any record with `force`. The delete is conditional, so a record
/// that changes meanwhile is not removed by mistake.
///
/// # Errors
/// [`OpsError`] if the table cannot be read or written.
pub async fn clear_idempotency(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    function: &str,
    key: &str,
    force: bool,
) -> Result<Cleared, OpsError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut request = dynamodb
        .delete_item()
        .table_name(table)
        .set_key(Some(idempotency_key(function, key)))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
        .return_values_on_condition_check_failure(
            aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
        );
    if !force {
        request = request
            .condition_expression("#status = :inprogress AND #lease < :now")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#lease", "in_progress_expiration")
            .expression_attribute_values(":inprogress", AttributeValue::S("INPROGRESS".to_owned()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()));
    }
    match request.send().await {
        Ok(output) if output.attributes.as_ref().is_some_and(|a| !a.is_empty()) => Ok(Cleared::Deleted),
        Ok(_) => Ok(Cleared::Absent),
        Err(aws_sdk_dynamodb::error::SdkError::ServiceError(e))
            if matches!(e.err(), aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(_)) =>
        {
            let old = match e.err() {
                aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(c) => c.item.clone(),
                _ => None,
            };
            match old {
                None => Ok(Cleared::Absent),
                Some(item) => {
                    let status = item.get("status").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                    Ok(Cleared::Kept(status))
                }
            }
        }
        Err(e) => Err(OpsError(format!("deleting the record: {}", DisplayErrorContext(&e)))),
    }
}

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

/// What resending an order did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Resent {
    /// Its message is on the order queue; the consumer completes it once.
    Sent,
    /// The order is already processed: nothing was sent.
    AlreadyProcessed,
    /// There is no such order.
    NotFound,
}

/// Sends an `ORDERED` order's message to the order queue again, built from the table
/// (so an order whose item was repaired goes out as it is now). Safe to repeat: the
/// consumer completes each order exactly once.
///
/// # Errors
/// [`OpsError`] if the order cannot be read (a malformed item: repair it first) or the
/// queue refuses the message.
pub async fn resend<Q: crate::pipeline::forward::OrderQueue>(
    store: &crate::store::Store,
    queue: &Q,
    id: &OrderId,
) -> Result<Resent, OpsError> {
    let order = store
        .get_order(id)
        .await
        .map_err(|e| OpsError(format!("order {id} cannot be read: {e}")))?;
    let Some(order) = order else {
        return Ok(Resent::NotFound);
    };
    if order.order_status != crate::domain::OrderStatus::Ordered {
        return Ok(Resent::AlreadyProcessed);
    }
    let message = OrderMessage::for_order(&order);
    match queue.send_batch(std::slice::from_ref(&message)).await {
        Ok(failures) if failures.is_empty() => Ok(Resent::Sent),
        Ok(failures) => Err(OpsError(format!(
            "the queue refused order {id}: {}",
            failures
                .iter()
                .map(|f| f.reason.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ))),
        Err(e) => Err(OpsError(format!("sending order {id}: {e}"))),
    }
}
