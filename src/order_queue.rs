//! The queue of order messages: where `process-cart-products` sends new orders and
//! `ordersctl resend` sends one again. [`OrderQueue`] is the seam (the forwarder's rules
//! are tested without a queue); [`SqsOrderQueue`] is SQS.

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    SendMessageBatchRequestEntry,
};

use crate::message::{ORDER_ID_ATTRIBUTE, OrderMessage};

/// Most entries in one `SendMessageBatch`.
pub const SQS_BATCH_LIMIT: usize = 10;

/// An entry of a batch send that the queue did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// Position of the message in the slice that was sent.
    pub index: usize,
    /// The queue's reason.
    pub reason: String,
}

/// Where order messages go. A trait so the ordering and failure rules can be tested
/// without a queue; [`SqsOrderQueue`] is the real one.
pub trait OrderQueue {
    /// Sends up to [`SQS_BATCH_LIMIT`] messages. `Ok` lists the entries that were not
    /// accepted (a successful call can still reject entries); `Err` means none were
    /// known to be sent.
    fn send_batch(
        &self,
        messages: &[OrderMessage],
    ) -> impl Future<Output = Result<Vec<SendFailure>, String>> + Send;
}

/// The SQS queue of order messages.
#[derive(Debug, Clone)]
pub struct SqsOrderQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsOrderQueue {
    /// Wraps a client and the queue URL.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl OrderQueue for SqsOrderQueue {
    async fn send_batch(&self, messages: &[OrderMessage]) -> Result<Vec<SendFailure>, String> {
        let mut entries = Vec::with_capacity(messages.len());
        // The trace this invocation belongs to, so the consumer's work joins it.
        let trace_header = middleware::xray::current_header();
        for (index, message) in messages.iter().enumerate() {
            let body = message.to_json().map_err(|e| e.to_string())?;
            let order_id = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(message.order_id.to_string())
                .build()
                .map_err(|e| e.to_string())?;
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .message_body(body)
                .message_attributes(ORDER_ID_ATTRIBUTE, order_id);
            if let Some(header) = &trace_header {
                let system = MessageSystemAttributeValue::builder()
                    .data_type("String")
                    .string_value(header)
                    .build()
                    .map_err(|e| e.to_string())?;
                entry = entry.message_system_attributes(
                    MessageSystemAttributeNameForSends::AwsTraceHeader,
                    system,
                );
            }
            let entry = entry.build().map_err(|e| e.to_string())?;
            entries.push(entry);
        }
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| format!("SendMessageBatch failed: {}", DisplayErrorContext(&e)))?;
        Ok(output
            .failed
            .iter()
            .map(|failed| SendFailure {
                // Ids are the indexes we set; an unknown one is treated as the first
                // entry, which errs towards redelivery rather than loss.
                index: failed.id.parse().unwrap_or(0),
                reason: format!(
                    "{} ({})",
                    failed.message.as_deref().unwrap_or("rejected"),
                    failed.code
                ),
            })
            .collect())
    }
}
