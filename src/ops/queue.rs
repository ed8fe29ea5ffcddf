//! Reading a queue as an operator does: peek without consuming, and take selected
//! messages so that a failure part-way loses none.

use std::collections::HashMap;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};

use super::dead_letters::Redrive;
use super::{OpsError, sqs_error};

/// Reads up to `limit` distinct messages of a queue without consuming them (each
/// becomes visible again at once), in message-id order.
pub(super) async fn peek(
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

pub(super) async fn receive(
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

/// Receives each message of `url`: a `selected` one is handed to `take` and deleted once
/// `take` succeeds; the others are released at once. Selected messages are held for
/// 30 s meanwhile, so a failure part-way leaves them to reappear, never lost.
pub(super) async fn take_selected(
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
