//! `update-cart-products`: completes each order named by a queue message.
//!
//! Every message of the batch is parsed and applied on its own. A message that is not
//! a valid [`OrderMessage`] fails alone; SQS makes it visible again after the
//! visibility timeout and, after the queue's `maxReceiveCount`, moves it to the
//! dead-letter queue.
//!
//! Each order is completed through the idempotency layer, keyed by order id and
//! validated by a hash of the message, in its on-item mode: the order is one item, and
//! completing it is one conditional `UpdateItem` that also writes the idempotency
//! record's attributes on the order. Completing an order costs one write (one unit
//! under 1 KB, plus one for its index entry, whose status changes). A redelivered
//! message is refused by the condition, and the refusal returns the order as stored
//! (`ALL_OLD`): the live record replays, or, once it has expired, the order's
//! PROCESSED status answers. Nothing changes, and nothing is read.
//!
//! The function is one `tower` stack ([`Completer::service`]), outermost first:
//!
//! | layer | what |
//! |---|---|
//! | `map_response(count_failures)` | the `BatchItemFailures` metric |
//! | [`SqsBatchLayer`] | one record at a time, failures reported by `messageId` |
//! | `FilterLayer::new(parse)` | a body that is not an [`OrderMessage`] fails alone |
//! | `map_request(correlate)` | the order id on the record's lines and span |
//! | settle | the write's outcome as the message's (`settle`) |
//! | [`ItemIdempotencyLayer`] | keyed by order id, the record's attributes committed on the order with the planned write (with `POWERTOOLS_IDEMPOTENCY_DISABLED`, the write alone) |
//! | `planner` | the conditional `UpdateItem`, no I/O (unit-tested without the emulator) |

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};
use lambda_runtime::LambdaEvent;
use middleware::batch::{BatchError, SqsBatchLayer};
use middleware::idempotency::{
    Idempotency, IdempotencyError, InFlight, ItemIdempotencyLayer, ItemOutcome, ItemWrite, Outcome,
    RequestKey, payload_hash,
};
use middleware::{logging, metrics};
use serde_json::value::RawValue;

use crate::clock::Timestamp;
use crate::domain::OrderId;
use crate::message::{MessageError, OrderMessage};
use crate::store::{CompleteError, Completion, Store, StoreError};

/// The prefix of this function's idempotency record keys (`<prefix>#<order id>`), as
/// Powertools names records by function. The binary, `ordersctl` and the tests read it
/// from here.
pub const IDEMPOTENCY_PREFIX: &str = "update-cart-products";

/// Why one message failed.
#[derive(Debug, thiserror::Error)]
pub enum CompleteMessageError {
    /// The record has no body.
    #[error("message has no body")]
    NoBody,
    /// The body is not an order message.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// The order could not be completed.
    #[error(transparent)]
    Complete(#[from] CompleteError),
    /// Another invocation is completing this order; retry later.
    #[error(transparent)]
    InFlight(#[from] InFlight),
    /// The idempotency record refused or failed.
    #[error("idempotency: {0}")]
    Idempotency(String),
    /// The transaction could not be built.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One order message, parsed: what the planner and the idempotency layer take.
#[derive(Debug, Clone)]
pub struct OrderToComplete {
    /// The message.
    pub message: OrderMessage,
    /// The hash of the message (a redelivery with another payload is refused).
    pub validation: String,
    /// When it is being completed (`processed_at`).
    pub now: Timestamp,
}

/// The parse filter: a message that is not an order message fails alone.
///
/// # Errors
/// [`CompleteMessageError`] naming why.
pub fn parse(record: SqsMessage) -> Result<OrderToComplete, CompleteMessageError> {
    let body = record.body.as_deref().ok_or(CompleteMessageError::NoBody)?;
    let message = OrderMessage::from_json(body)?;
    let validation = payload_hash(message.to_json().map_err(MessageError::from)?.as_bytes());
    Ok(OrderToComplete {
        message,
        validation,
        now: Timestamp::now(),
    })
}

/// The record's key for its log lines and its `## record` span.
fn correlate(order: OrderToComplete) -> OrderToComplete {
    logging::set_correlation_id(order.message.order_id.to_string());
    order
}

/// The pure planner: the conditional `UpdateItem` that completes an order, and the
/// `processed_at` it stamps. No I/O: the idempotency layer sends it.
fn planner(
    store: Arc<Store>,
) -> impl tower::Service<
    OrderToComplete,
    Response = (String, ItemWrite),
    Error = StoreError,
    Future: Send,
> + Clone {
    tower::service_fn(move |order: OrderToComplete| {
        let write = store.completion_write(&order.message, &order.now);
        std::future::ready(Ok((order.now.rfc3339, write)))
    })
}

/// Turns the idempotent write's outcome into the message's: completed, already
/// completed (replayed, or refused because the order is already processed), or why
/// not. A refusal carries the order as stored, so this reads nothing.
fn settle(
    id: OrderId,
    outcome: Result<ItemOutcome<String>, IdempotencyError<StoreError>>,
) -> Result<Completion, CompleteMessageError> {
    let completion = match outcome {
        Ok(ItemOutcome::Done(Outcome::Executed(_))) => Completion::Completed,
        Ok(ItemOutcome::Done(Outcome::Replayed(_))) => Completion::AlreadyCompleted,
        Ok(ItemOutcome::Done(Outcome::InFlight { lease_expires_ms })) => {
            metrics::add(&crate::metrics::ORDER_MESSAGES_IN_FLIGHT, 1.0);
            return Err(InFlight { lease_expires_ms }.into());
        }
        Ok(ItemOutcome::Refused(stored)) => Store::completion_refused(&id, stored)?,
        Err(IdempotencyError::Work(e)) => return Err(e.into()),
        Err(other) => return Err(CompleteMessageError::Idempotency(other.to_string())),
    };
    match completion {
        Completion::Completed => {
            metrics::add(&crate::metrics::ORDERS_COMPLETED, 1.0);
            tracing::info!(correlation_id = %id, "order completed");
        }
        Completion::AlreadyCompleted => {
            metrics::add(&crate::metrics::ORDER_MESSAGES_REPLAYED, 1.0);
            tracing::info!(correlation_id = %id, "order already completed; redelivered message ignored");
        }
    }
    Ok(completion)
}

/// What `update-cart-products` needs: the table and the idempotency records.
#[derive(Debug, Clone)]
pub struct Completer {
    // Shared by every record's clone of the stack (a clone is an `Arc` count, not a
    // copy of the table name).
    store: Arc<Store>,
    idempotency: Arc<Idempotency>,
}

impl Completer {
    /// A completer over `store`, with idempotency records configured by `idempotency`.
    pub fn new(store: Store, idempotency: Idempotency) -> Self {
        Self {
            store: Arc::new(store),
            idempotency: Arc::new(idempotency),
        }
    }

    /// One parsed message through the idempotent write, settled: correlation, settle,
    /// the on-item idempotency layer keyed by order id, the planner.
    fn order_service(
        &self,
    ) -> impl tower::Service<
        OrderToComplete,
        Response = Completion,
        Error = CompleteMessageError,
        Future: Send,
    > + Clone
    + use<> {
        use tower::ServiceExt as _;
        let write = tower::ServiceBuilder::new()
            .layer(ItemIdempotencyLayer::new(
                Arc::clone(&self.idempotency),
                |order: &OrderToComplete| RequestKey {
                    key: order.message.order_id.to_string(),
                    validation: Some(order.validation.clone()),
                },
            ))
            .service(planner(Arc::clone(&self.store)));
        tower::ServiceBuilder::new()
            .map_request(correlate)
            .service(tower::service_fn(move |order: OrderToComplete| {
                let write = write.clone();
                // Settling needs only the order's id: the message itself moves on.
                let id = order.message.order_id;
                async move { settle(id, write.oneshot(order).await) }
            }))
    }

    /// `update-cart-products` as one value: the batch layer, the parse filter (a bad
    /// message fails alone), correlation, settle, the on-item idempotency layer
    /// and the planner (see the module docs), with the batch's failures
    /// counted and its metrics also written per function. The binary runs this; [`Self::complete_orders`] calls it.
    pub fn service(
        &self,
    ) -> impl tower::Service<
        LambdaEvent<Box<RawValue>>,
        Response = SqsBatchResponse,
        Error = BatchError,
        Future: Send,
    > + Clone
    + use<> {
        tower::ServiceBuilder::new()
            .map_request(|event| {
                crate::metrics::by_function();
                event
            })
            .map_response(count_failures)
            .layer(SqsBatchLayer::new())
            .map_response(drop)
            .layer(tower::filter::FilterLayer::new(parse))
            .service(self.order_service())
    }

    /// Completes one order message.
    ///
    /// # Errors
    /// [`CompleteMessageError`] naming why.
    pub async fn complete_message(
        &self,
        body: Option<&str>,
    ) -> Result<Completion, CompleteMessageError> {
        use tower::ServiceExt as _;
        let mut record = SqsMessage::default();
        record.body = body.map(str::to_owned);
        self.order_service().oneshot(parse(record)?).await
    }

    /// Handles one SQS batch and reports the failed messages, through [`Self::service`].
    ///
    /// # Errors
    /// [`BatchError`] if the event is not an SQS batch or a record has no `messageId`.
    pub async fn complete_orders(&self, event: &RawValue) -> Result<SqsBatchResponse, BatchError> {
        use tower::ServiceExt as _;
        let event = LambdaEvent::new(event.to_owned(), lambda_runtime::Context::default());
        self.service().oneshot(event).await
    }
}

/// Counts a batch's failed records (`BatchItemFailures`).
fn count_failures(response: SqsBatchResponse) -> SqsBatchResponse {
    if !response.batch_item_failures.is_empty() {
        let failed = response.batch_item_failures.len() as f64;
        metrics::add(&crate::metrics::BATCH_ITEM_FAILURES, failed);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose client is never called: the planner does no I/O.
    fn offline_store() -> Store {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
            .build();
        Store::new(aws_sdk_dynamodb::Client::from_conf(config), "orders")
    }

    fn fixture_records() -> Vec<SqsMessage> {
        let event: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/sqs-batch.json")).unwrap();
        serde_json::from_value(event["Records"].clone()).unwrap()
    }

    /// The planner turns an order into its one conditional write without the emulator:
    /// ORDERED to PROCESSED on the order item, guarded by user and line count, stamped
    /// with the message's `processed_at`, counted in `completions`.
    #[test]
    fn the_planner_plans_one_guarded_update_of_the_order_without_io() {
        use tower::ServiceExt as _;
        let order = parse(fixture_records().remove(0)).unwrap();
        let lines = order.message.lines.len();
        let id = order.message.order_id;
        let now = order.now.rfc3339.clone();
        let (stamped, write) = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(planner(Arc::new(offline_store())).oneshot(order))
            .unwrap();
        assert_eq!(stamped, now);
        assert_eq!(write.key, crate::keys::order_header(&id).primary());
        let condition = write.condition.clone().unwrap_or_default();
        assert!(condition.contains("#status = :ordered"), "{condition}");
        assert!(
            condition.contains("line_count = :line_count"),
            "{condition}"
        );
        assert_eq!(
            write.values[":line_count"],
            aws_sdk_dynamodb::types::AttributeValue::N(lines.to_string())
        );
        assert_eq!(
            write.update_expression(),
            "SET #status = :processed, processed_at = :now ADD completions :one"
        );
    }

    /// A refusal is read from the order it returned: no order, an order already
    /// processed, or one that does not match the message.
    #[test]
    fn a_refused_completion_is_told_apart_from_the_stored_order() {
        use aws_sdk_dynamodb::types::AttributeValue;
        let id = OrderId::random();
        assert!(matches!(
            Store::completion_refused(&id, std::collections::HashMap::new()),
            Err(CompleteError::OrderNotFound(_))
        ));
        let stored = |status: &str| {
            std::collections::HashMap::from([(
                crate::keys::ORDER_STATUS.to_owned(),
                AttributeValue::S(status.to_owned()),
            )])
        };
        assert_eq!(
            Store::completion_refused(&id, stored("PROCESSED")).unwrap(),
            Completion::AlreadyCompleted
        );
        assert!(matches!(
            Store::completion_refused(&id, stored("ORDERED")),
            Err(CompleteError::Mismatch(_))
        ));
    }

    /// A message that is not an order fails in the parse filter, before any table work.
    #[test]
    fn the_parse_filter_refuses_what_is_not_an_order_message() {
        let records = fixture_records();
        assert!(parse(records[0].clone()).is_ok());
        assert!(matches!(
            parse(records[1].clone()),
            Err(CompleteMessageError::Message(_))
        ));
        let mut empty = records[0].clone();
        empty.body = None;
        assert!(matches!(parse(empty), Err(CompleteMessageError::NoBody)));
    }

    /// The fixture holds a malformed message between two good ones: parsing, which runs
    /// before any table access, fails that one alone.
    #[test]
    fn a_malformed_message_between_good_ones_fails_alone() {
        let event =
            RawValue::from_string(include_str!("../../tests/fixtures/sqs-batch.json").to_owned())
                .unwrap();
        let parsed = std::cell::RefCell::new(Vec::new());
        let response = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(middleware::batch::process_sqs(&event, |record| {
                let outcome = OrderMessage::from_json(record.body.as_deref().unwrap_or_default());
                if let Ok(message) = &outcome {
                    parsed.borrow_mut().push(message.order_id.to_string());
                }
                async move { outcome.map(drop) }
            }))
            .unwrap();
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["059f36b4-87a3-44ab-83d2-661975861922"]);
        assert_eq!(parsed.borrow().len(), 2);
    }
}
