//! Operator tasks behind `ordersctl`: inspect and redrive the dead-letter queue, follow
//! an order's journey, clear a stale idempotency record. They work against AWS and
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
    let mut seen = HashMap::new();
    for _ in 0..limit.div_ceil(10).max(1) * 2 {
        let messages = receive(sqs, dlq_url, 0).await?;
        if messages.is_empty()
            || messages
                .iter()
                .all(|m| seen.contains_key(&m.message_id.clone().unwrap_or_default()))
        {
            break;
        }
        for message in messages {
            let letter = decode(&message);
            seen.entry(letter.message_id.clone()).or_insert(letter);
        }
        if seen.len() >= limit {
            break;
        }
    }
    let mut letters: Vec<DeadLetter> = seen.into_values().collect();
    letters.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    letters.truncate(limit);
    Ok(letters)
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
        .map_err(sqs_error("receiving from the dead-letter queue"))?
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
    let mut result = Redrive::default();
    let mut passes = 0;
    loop {
        passes += 1;
        // Selected messages are taken for 30 s; the rest are released at once.
        let messages = receive(sqs, dlq_url, 30).await?;
        if messages.is_empty() || passes > 100 {
            break;
        }
        let mut progressed = false;
        for message in messages {
            let letter = decode(&message);
            let selected = only.is_empty()
                || only.contains(&letter.message_id)
                || letter.order_id.as_ref().is_some_and(|id| only.contains(id));
            let receipt = message.receipt_handle.clone().unwrap_or_default();
            if !selected {
                sqs.change_message_visibility()
                    .queue_url(dlq_url)
                    .receipt_handle(&receipt)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .map_err(sqs_error("releasing an unselected message"))?;
                if !result.skipped.contains(&letter.message_id) {
                    result.skipped.push(letter.message_id);
                }
                continue;
            }
            let mut send = sqs
                .send_message()
                .queue_url(source_url)
                .message_body(letter.body.clone());
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
            sqs.delete_message()
                .queue_url(dlq_url)
                .receipt_handle(&receipt)
                .send()
                .await
                .map_err(sqs_error("deleting from the dead-letter queue"))?;
            result.moved.push(letter.message_id);
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
            "update-cart-products",
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
