//! The dead-letter queue: list its messages, decoded, and redrive the chosen ones.

use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use serde::Serialize;

use crate::message::{ORDER_ID_ATTRIBUTE, OrderMessage};

use super::queue::{peek, take_selected};
use super::{OpsError, sqs_error};

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

/// What a discard did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Discarded {
    /// Message ids deleted from the dead-letter queue.
    pub discarded: Vec<String>,
    /// Message ids left because they were not selected.
    pub skipped: Vec<String>,
}

/// Deletes the dead-lettered messages whose message id or order id is in `only`: the
/// fix for a message that can never succeed as it is (its body does not decode, or its
/// order item is broken). Never all of them: `only` must name some.
///
/// # Errors
/// [`OpsError`] if nothing is selected or the queue cannot be read or written.
pub async fn discard(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    only: &[String],
) -> Result<Discarded, OpsError> {
    if only.is_empty() {
        return Err(OpsError(
            "name the messages to discard (message ids or order ids); there is no --all".to_owned(),
        ));
    }
    let selected = |message: &Message| {
        let letter = decode(message);
        only.contains(&letter.message_id)
            || letter.order_id.as_ref().is_some_and(|id| only.contains(id))
    };
    let taken = take_selected(sqs, dlq_url, selected, async |_: &Message| Ok(())).await?;
    Ok(Discarded {
        discarded: taken.moved,
        skipped: taken.skipped,
    })
}
