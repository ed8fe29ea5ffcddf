//! `process-cart-products`: forwards new orders from the table's stream to the queue.
//!
//! Records are handled in stream order. Only an INSERT of an order whose status is
//! ORDERED yields a message (the event source mapping filters for exactly that, and the
//! function checks again, since filters are configuration and configuration drifts);
//! anything else is skipped. Messages go out with `SendMessageBatch`, ten at a time.
//!
//! Up to [`SENDS_IN_FLIGHT`] sends wait on the queue together, so a batch of 100
//! records costs one round trip, not ten (less billed duration, and fewer wake-ups).
//!
//! At the first record that fails (it does not parse, it is an order that cannot be
//! read, or SQS rejects its message), the function stops and reports that record's
//! sequence number. Lambda restarts the shard from there, so the records after it are
//! forwarded on the redelivery. Those a send of the same round already delivered go
//! twice (the failure line counts them as `sent_ahead`); the consumer's conditional
//! completion makes the second copy a no-op, so each order still completes once. After the mapping's
//! `MaximumRetryAttempts` a record that keeps failing goes to its on-failure
//! destination, so nothing is lost silently. Near the invocation's deadline it stops
//! the same way, at the first record it did not send; a send still waiting then is
//! given up and counts as not sent.

use aws_lambda_events::streams::DynamoDbEventResponse;
use middleware::batch::{
    BatchError, StreamChange, before_deadline, near_deadline, stream_failure, stream_records,
};
use middleware::{logging, metrics};
use serde_json::value::RawValue;

use crate::domain::{Order, OrderStatus};
use crate::keys::{self, Entity};
use crate::message::OrderMessage;
use crate::order_queue::{OrderQueue, SQS_BATCH_LIMIT, SendFailure};

/// Most `SendMessageBatch` calls in flight at once: a batch of 100 records goes out in
/// one round trip instead of ten.
pub const SENDS_IN_FLIGHT: usize = 10;

/// What a stream record means to this function.
#[derive(Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Not a new ORDERED order: nothing to do.
    Skip,
    /// A new order: send this message.
    Forward(Box<OrderMessage>),
    /// A new order that cannot be read.
    Malformed(String),
}

/// Decides what to do with one stream record. Only an INSERT's new image is read, and
/// only a new ORDERED order's is decoded whole (straight from the event's JSON, see
/// [`middleware::stream_image`]).
pub fn disposition(change: StreamChange<'_>) -> Disposition {
    if change.event_name != "INSERT" {
        return Disposition::Skip;
    }
    let Some(item) = change.dynamodb.new_image else {
        // Without it no INSERT can be told apart: skipping would drop every order.
        return Disposition::Malformed(
            "an INSERT without its new image: the stream's view type must include new images"
                .to_owned(),
        );
    };
    if item.string(keys::ENTITY) != Some(Entity::Order.as_str())
        || item.string(keys::ORDER_STATUS) != Some(OrderStatus::Ordered.as_str())
    {
        return Disposition::Skip;
    }
    match item.decode::<Order>() {
        Ok(order) if order.lines.is_empty() => {
            Disposition::Malformed(format!("order {} has no lines", order.order_id))
        }
        Ok(order) => Disposition::Forward(Box::new(OrderMessage::from_order(order))),
        Err(e) => Disposition::Malformed(format!("order image does not decode: {e}")),
    }
}

/// `process-cart-products` as one value: a batch-level service (it sends ten messages
/// per call, so its unit of work is the batch), over `queue`.
pub fn service<Q: OrderQueue + Clone + Send + Sync + 'static>(
    queue: Q,
) -> impl tower::Service<
    lambda_runtime::LambdaEvent<Box<RawValue>>,
    Response = DynamoDbEventResponse,
    Error = BatchError,
    Future: Send,
> + Clone {
    tower::service_fn(move |event: lambda_runtime::LambdaEvent<Box<RawValue>>| {
        let queue = queue.clone();
        crate::metrics::by_function();
        async move { forward_orders(&queue, &event.payload).await }
    })
}

/// The batch's response, its outcome annotated on the `## handler` subsegment: the
/// records, and one failure when the batch stops at a record (the stream resumes there).
fn outcome(records: usize, failed_at: Option<String>) -> DynamoDbEventResponse {
    middleware::xray::annotate_batch(records, usize::from(failed_at.is_some()));
    stream_failure(failed_at)
}

/// Handles one stream batch; see the module docs for the rules.
///
/// # Errors
/// [`BatchError`] if the event is not a stream batch or a record has no sequence
/// number; nothing has been sent then.
pub async fn forward_orders<Q: OrderQueue>(
    queue: &Q,
    event: &RawValue,
) -> Result<DynamoDbEventResponse, BatchError> {
    // Parallel vectors: the messages are sent as slices, without a copy.
    let mut sequences: Vec<std::borrow::Cow<'_, str>> = Vec::new();
    let mut outgoing: Vec<OrderMessage> = Vec::new();
    let mut stopped_at = None;
    // No span or log line per record: a batch is one `## handler` with its sends, and
    // each consumer's `## record` joins that trace through `AWSTraceHeader`, so an
    // order's annotation finds the whole journey. A record's own line is written when
    // it fails.
    let records = stream_records(event)?;
    let total = records.len();
    for record in records {
        let disposition = match record.change {
            Ok(change) => disposition(change),
            Err(e) => Disposition::Malformed(format!("stream record does not parse: {e}")),
        };
        match disposition {
            Disposition::Skip => {}
            Disposition::Forward(message) => {
                sequences.push(record.sequence_number);
                outgoing.push(*message);
            }
            Disposition::Malformed(reason) => {
                stopped_at = Some((record.sequence_number, reason));
                break;
            }
        }
    }

    let mut forwarded = 0;
    let sends: Vec<(&[OrderMessage], &[std::borrow::Cow<'_, str>])> = outgoing
        .chunks(SQS_BATCH_LIMIT)
        .zip(sequences.chunks(SQS_BATCH_LIMIT))
        .collect();
    for round in sends.chunks(SENDS_IN_FLIGHT) {
        if near_deadline() {
            // Report the first unsent record: Lambda resumes there, and this
            // invocation still has time to flush its logs and metrics.
            tracing::warn!(forwarded, "stopping short of the deadline");
            return Ok(outcome(total, Some(round[0].1[0].to_string())));
        }
        // The round's sends wait on the queue together. A send that hangs is given up
        // before the deadline and counts as not sent.
        let outcomes = futures_util::future::join_all(
            round
                .iter()
                .map(|(chunk, _)| before_deadline(queue.send_batch(chunk))),
        )
        .await;
        let mut outcomes = round
            .iter()
            .zip(outcomes)
            .map(|((chunk, chunk_sequences), outcome)| {
                let first_failure = match outcome {
                    Ok(Ok(failures)) => failures.into_iter().min_by_key(|f| f.index),
                    Ok(Err(reason)) => Some(SendFailure { index: 0, reason }),
                    Err(out_of_time) => Some(SendFailure {
                        index: 0,
                        reason: format!("SendMessageBatch {out_of_time}"),
                    }),
                };
                (*chunk, *chunk_sequences, first_failure)
            });
        while let Some((chunk, chunk_sequences, first_failure)) = outcomes.next() {
            if let Some(failure) = first_failure {
                let index = failure.index.min(chunk.len() - 1);
                let (sequence_number, message) = (&chunk_sequences[index], &chunk[index]);
                // Sends after this one in the round may have been accepted: their
                // orders go again with the redelivery, and the consumer's conditional
                // completion makes the second copy a no-op.
                let sent_ahead: usize = outcomes
                    .filter(|(_, _, failure)| failure.is_none())
                    .map(|(chunk, _, _)| chunk.len())
                    .sum();
                metrics::add(&crate::metrics::BATCH_ITEM_FAILURES, 1.0);
                logging::set_correlation_id(message.order_id.to_string());
                tracing::warn!(
                    correlation_id = %message.order_id,
                    sequence_number = %sequence_number,
                    reason = %failure.reason,
                    forwarded = forwarded + index,
                    sent_ahead,
                    "order message not sent; the stream will redeliver from this record"
                );
                return Ok(outcome(total, Some(sequence_number.to_string())));
            }
            forwarded += chunk.len();
            metrics::add(&crate::metrics::ORDERS_FORWARDED, chunk.len() as f64);
            // One line per send, naming its orders: the same facts as a line per order
            // at a tenth of the bytes.
            let ids: Vec<String> = chunk.iter().map(|m| m.order_id.to_string()).collect();
            logging::clear_correlation_id();
            tracing::info!(correlation_ids = %ids.join(","), orders = chunk.len(), "orders forwarded");
        }
    }

    if let Some((sequence_number, reason)) = stopped_at {
        metrics::add(&crate::metrics::BATCH_ITEM_FAILURES, 1.0);
        tracing::error!(
            sequence_number = %sequence_number,
            reason = %reason,
            forwarded,
            "stream record failed; the stream will retry it, then send it to the on-failure destination"
        );
        return Ok(outcome(total, Some(sequence_number.into_owned())));
    }
    Ok(outcome(total, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A queue that records what it was sent and rejects chosen orders. Each send
    /// waits once before it answers, so sends that overlap are seen to.
    #[derive(Default)]
    struct FakeQueue {
        sent: Mutex<Vec<Vec<String>>>,
        reject_order: Option<String>,
        unreachable: bool,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl OrderQueue for FakeQueue {
        async fn send_batch(&self, messages: &[OrderMessage]) -> Result<Vec<SendFailure>, String> {
            if self.unreachable {
                return Err("connection refused".into());
            }
            let ids: Vec<String> = messages.iter().map(|m| m.order_id.to_string()).collect();
            self.sent.lock().unwrap().push(ids.clone());
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::task::yield_now().await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let failures = ids
                .iter()
                .enumerate()
                .filter(|(_, id)| Some(*id) == self.reject_order.as_ref())
                .map(|(index, _)| SendFailure {
                    index,
                    reason: "throttled".into(),
                })
                .collect();
            Ok(failures)
        }
    }

    fn fixture() -> serde_json::Value {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/dynamodb-stream-batch.json"
        ))
        .unwrap()
    }

    fn to_raw(value: &serde_json::Value) -> Box<RawValue> {
        RawValue::from_string(value.to_string()).unwrap()
    }

    fn order_ids(value: &serde_json::Value) -> Vec<String> {
        value["Records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["eventName"] == "INSERT" && r["dynamodb"]["NewImage"]["entity"]["S"] == "ORDER"
            })
            .filter_map(|r| r["dynamodb"]["NewImage"]["order_id"]["S"].as_str())
            .map(str::to_owned)
            .collect()
    }

    fn run<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn failures(response: &DynamoDbEventResponse) -> Vec<String> {
        response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.clone())
            .collect()
    }

    #[test]
    fn forwards_only_new_ordered_orders_and_skips_other_records() {
        // The fixture: an ORDERED order INSERT, an order-line INSERT, a cart-line REMOVE,
        // a MODIFY of an order to PROCESSED, and a second ORDERED order INSERT.
        let event = fixture();
        let queue = FakeQueue::default();
        let response = run(forward_orders(&queue, &to_raw(&event))).unwrap();
        assert!(failures(&response).is_empty());
        let sent = queue.sent.lock().unwrap().concat();
        assert_eq!(sent, order_ids(&event));
        assert_eq!(sent.len(), 2);
    }

    #[test]
    fn a_malformed_record_is_the_one_failure_and_records_before_it_are_forwarded() {
        let mut event = fixture();
        let records = event["Records"].as_array_mut().unwrap();
        // Corrupt the second order's lines: the third record of five goes bad instead.
        let mut bad = records[0].clone();
        bad["dynamodb"]["SequenceNumber"] = "150".into();
        bad["dynamodb"]["NewImage"]["lines"] = serde_json::json!({"S": "not a list"});
        records.insert(1, bad);
        let queue = FakeQueue::default();
        let response = run(forward_orders(&queue, &to_raw(&event))).unwrap();
        assert_eq!(failures(&response), ["150"]);
        let sent = queue.sent.lock().unwrap().concat();
        assert_eq!(sent, order_ids(&fixture())[..1]);
    }

    #[test]
    fn a_record_that_is_not_a_stream_record_fails_with_its_sequence_number() {
        let mut event = fixture();
        let records = event["Records"].as_array_mut().unwrap();
        records.insert(
            1,
            serde_json::json!({"eventName": 7, "dynamodb": {"SequenceNumber": "111"}}),
        );
        let queue = FakeQueue::default();
        let response = run(forward_orders(&queue, &to_raw(&event))).unwrap();
        assert_eq!(failures(&response), ["111"]);
        assert_eq!(queue.sent.lock().unwrap().concat().len(), 1);
    }

    #[test]
    fn a_rejected_entry_reports_its_record() {
        let event = fixture();
        let second = order_ids(&event)[1].clone();
        let queue = FakeQueue {
            reject_order: Some(second.clone()),
            ..FakeQueue::default()
        };
        let response = run(forward_orders(&queue, &to_raw(&event))).unwrap();
        let seq = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["dynamodb"]["NewImage"]["order_id"]["S"] == second.as_str()
                    && r["eventName"] == "INSERT"
            })
            .map(|r| r["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned())
            .unwrap();
        assert_eq!(failures(&response), [seq]);
    }

    #[test]
    fn an_unreachable_queue_fails_at_the_first_order() {
        let event = fixture();
        let queue = FakeQueue {
            unreachable: true,
            ..FakeQueue::default()
        };
        let response = run(forward_orders(&queue, &to_raw(&event))).unwrap();
        assert_eq!(
            failures(&response),
            [event["Records"][0]["dynamodb"]["SequenceNumber"]
                .as_str()
                .unwrap()]
        );
    }

    /// A batch of `count` new ORDERED orders: order ids `...{i}`, sequence numbers
    /// `1000 + i`.
    fn orders(count: usize) -> (serde_json::Value, Vec<String>) {
        let mut event = fixture();
        let template = event["Records"][0].clone();
        let mut records = Vec::new();
        let mut ids = Vec::new();
        for i in 0..count {
            let mut record = template.clone();
            let id = format!("00000000-0000-4000-8000-{i:012}");
            record["dynamodb"]["NewImage"]["order_id"] = serde_json::json!({"S": id});
            record["dynamodb"]["SequenceNumber"] = format!("{}", 1000 + i).into();
            ids.push(id);
            records.push(record);
        }
        event["Records"] = records.into();
        (event, ids)
    }

    #[test]
    fn sends_in_chunks_of_ten_in_stream_order() {
        let (event, expected) = orders(23);
        let queue = FakeQueue::default();
        let response = run(forward_orders(&queue, &to_raw(&event))).unwrap();
        assert!(failures(&response).is_empty());
        let sent = queue.sent.lock().unwrap().clone();
        assert_eq!(sent.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 3]);
        assert_eq!(sent.concat(), expected);
    }

    /// A batch's sends wait on the queue together (one round trip, not one per ten
    /// records), and a rejection is still reported at the first failed record in
    /// stream order.
    #[test]
    fn sends_overlap_and_the_first_rejected_record_in_stream_order_is_reported() {
        let (event, ids) = orders(2 * SENDS_IN_FLIGHT * SQS_BATCH_LIMIT + 5);
        let queue = FakeQueue::default();
        let response = run(forward_orders(&queue, &to_raw(&event))).unwrap();
        assert!(failures(&response).is_empty());
        assert_eq!(queue.most_in_flight.load(Ordering::SeqCst), SENDS_IN_FLIGHT);
        assert_eq!(queue.sent.lock().unwrap().concat(), ids);

        let (event, ids) = orders(35);
        let queue = FakeQueue {
            reject_order: Some(ids[12].clone()),
            ..FakeQueue::default()
        };
        let response = run(forward_orders(&queue, &to_raw(&event))).unwrap();
        assert_eq!(failures(&response), ["1012"]);
        assert_eq!(queue.most_in_flight.load(Ordering::SeqCst), 4);
    }

    /// A stream whose view lost new images must not skip every order silently.
    #[test]
    fn an_insert_without_its_new_image_fails_rather_than_being_skipped() {
        let mut event = fixture();
        let first_insert = event["Records"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|r| r["eventName"] == "INSERT")
            .unwrap();
        first_insert["dynamodb"]
            .as_object_mut()
            .unwrap()
            .remove("NewImage");
        let sequence = first_insert["dynamodb"]["SequenceNumber"]
            .as_str()
            .unwrap()
            .to_owned();
        let queue = FakeQueue::default();
        let response = run(forward_orders(&queue, &to_raw(&event))).unwrap();
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(failed, [sequence]);
    }
}
