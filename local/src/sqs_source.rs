//! An SQS event source mapping, run locally.
//!
//! Receives up to `BatchSize` messages (at most 10 per receive), invokes the function
//! with Lambda's SQS event, deletes the messages that succeeded and leaves the failed
//! ones on the queue: they come back after the visibility timeout, and the queue's
//! redrive policy moves them to the dead-letter queue after `maxReceiveCount`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::function::{Function, Outcome};
use crate::polling::PollHealth;
use crate::resources::QueueRef;

/// Settings of one SQS mapping.
#[derive(Debug, Clone)]
pub struct SqsSourceConfig {
    /// The queue.
    pub queue: QueueRef,
    /// The region in the records.
    pub region: String,
    /// Most messages per invocation (capped at 10).
    pub batch_size: usize,
    /// Whether the function's `batchItemFailures` are honoured.
    pub report_batch_item_failures: bool,
    /// Pollers receiving and invoking at once (the mapping's MaximumConcurrency).
    pub concurrency: usize,
    /// Whether the mapping is enabled: while it is not, nothing is received.
    pub enabled: Arc<std::sync::atomic::AtomicBool>,
}

/// Counters of an SQS source.
#[derive(Debug, Default)]
pub struct SqsSourceStats {
    /// Messages received (a redelivery counts again).
    pub received: AtomicU64,
    /// Messages deleted after success.
    pub deleted: AtomicU64,
    /// Messages left for redelivery.
    pub failed: AtomicU64,
    /// How receiving is going.
    pub polling: PollHealth,
    /// Why each message that failed last failed, by message id (forgotten once it
    /// succeeds): the reason a dead-lettered message carries.
    failure_reasons: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl SqsSourceStats {
    /// Why the message last failed, if it did and has not succeeded since.
    pub fn failure_reason(&self, message_id: &str) -> Option<String> {
        self.failure_reasons
            .lock()
            .ok()
            .and_then(|reasons| reasons.get(message_id).cloned())
    }

    fn record_outcomes(&self, messages: &[Message], failed: &HashSet<String>, outcome: &Outcome) {
        let Ok(mut reasons) = self.failure_reasons.lock() else {
            return;
        };
        let reason = match outcome {
            Outcome::Response(_) => "the function reported it as a batch item failure".to_owned(),
            Outcome::FunctionError { error_type, .. } => {
                format!("the invocation failed ({error_type})")
            }
            Outcome::Crashed(why) => format!("the function process died ({why})"),
            Outcome::TimedOut => "the invocation timed out".to_owned(),
            Outcome::Throttled => "Lambda throttled the invocation".to_owned(),
        };
        for id in messages.iter().filter_map(|m| m.message_id.as_deref()) {
            if failed.contains(id) {
                reasons.insert(id.to_owned(), reason.clone());
            } else {
                reasons.remove(id);
            }
        }
    }
}

/// Runs an SQS mapping until `shutdown`: `concurrency` pollers, each receiving a batch
/// and invoking the function with it, as Lambda's pollers do.
pub async fn run(
    config: SqsSourceConfig,
    sdk: aws_config::SdkConfig,
    function: Function,
    stats: Arc<SqsSourceStats>,
    shutdown: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    let client = aws_sdk_sqs::Client::new(&sdk);
    let pollers: Vec<_> = (0..config.concurrency.max(1))
        .map(|_| {
            tokio::spawn(poll(
                Arc::clone(&config),
                client.clone(),
                function.clone(),
                Arc::clone(&stats),
                shutdown.clone(),
            ))
        })
        .collect();
    for poller in pollers {
        let _ = poller.await;
    }
}

async fn poll(
    config: Arc<SqsSourceConfig>,
    client: aws_sdk_sqs::Client,
    function: Function,
    stats: Arc<SqsSourceStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let source = format!("queue {} -> {}", config.queue.name, function.name());
    loop {
        if !config.enabled.load(Ordering::Relaxed) {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = crate::http::stopped(&mut shutdown) => return,
            }
            continue;
        }
        let receive = client
            .receive_message()
            .queue_url(&config.queue.url)
            .max_number_of_messages(config.batch_size.clamp(1, 10) as i32)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send();
        let messages = tokio::select! {
            received = receive => match received {
                Ok(output) => {
                    stats.polling.succeeded(&source);
                    output.messages.unwrap_or_default()
                }
                Err(e) => {
                    let error = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string();
                    stats.polling.failed(&source, &format!("ReceiveMessage: {error}"));
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        () = crate::http::stopped(&mut shutdown) => return,
                    }
                    continue;
                }
            },
            () = crate::http::stopped(&mut shutdown) => return,
        };
        if messages.is_empty() {
            continue;
        }
        stats
            .received
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        let event = json!({ "Records": messages.iter().map(|m| lambda_sqs_record(m, &config.queue.arn, &config.region)).collect::<Vec<_>>() });
        let outcome = function.invoke(event.to_string()).await;
        let failed = failed_ids(&config, &messages, &outcome);
        stats.record_outcomes(&messages, &failed, &outcome);
        function
            .stats()
            .batch_item_failures
            .fetch_add(failed.len() as u64, Ordering::Relaxed);
        stats
            .failed
            .fetch_add(failed.len() as u64, Ordering::Relaxed);
        let done: Vec<&Message> = messages
            .iter()
            .filter(|m| {
                m.message_id
                    .as_deref()
                    .is_some_and(|id| !failed.contains(id))
            })
            .collect();
        for chunk in done.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle.clone()?)
                        .build()
                        .ok()
                })
                .collect();
            match client
                .delete_message_batch()
                .queue_url(&config.queue.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(output) => {
                    stats.deleted.fetch_add(
                        (chunk.len() - output.failed.len()) as u64,
                        Ordering::Relaxed,
                    );
                }
                Err(e) => {
                    tracing::warn!(source = %source, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "deleting processed messages failed; they will be redelivered")
                }
            }
        }
    }
}

/// The ids of the messages to leave on the queue.
fn failed_ids(
    config: &SqsSourceConfig,
    messages: &[Message],
    outcome: &Outcome,
) -> HashSet<String> {
    let all = || {
        messages
            .iter()
            .filter_map(|m| m.message_id.clone())
            .collect()
    };
    let Outcome::Response(body) = outcome else {
        return all();
    };
    if !config.report_batch_item_failures {
        return HashSet::new();
    }
    let response: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(failures) = response.get("batchItemFailures").and_then(Value::as_array) else {
        return HashSet::new();
    };
    let known: HashSet<&str> = messages
        .iter()
        .filter_map(|m| m.message_id.as_deref())
        .collect();
    let mut failed = HashSet::new();
    for failure in failures {
        match failure.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if known.contains(id) => {
                failed.insert(id.to_owned());
            }
            // An empty or unknown identifier fails the whole batch, as on Lambda.
            _ => return all(),
        }
    }
    failed
}

/// An SQS message as Lambda's event carries it.
pub fn lambda_sqs_record(message: &Message, queue_arn: &str, region: &str) -> Value {
    let attributes: serde_json::Map<String, Value> = message
        .attributes
        .as_ref()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                .collect()
        })
        .unwrap_or_default();
    let message_attributes: serde_json::Map<String, Value> = message
        .message_attributes
        .as_ref()
        .map(|a| {
            a.iter()
                .map(|(k, v)| {
                    let value = json!({ "stringValue": v.string_value, "stringListValues": [], "binaryListValues": [], "dataType": v.data_type });
                    (k.clone(), value)
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    })
}
