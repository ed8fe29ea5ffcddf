//! `update-cart-products`: completes each order named by a queue message.
//!
//! Every message of the batch is parsed and applied on its own. A message that is not
//! a valid [`OrderMessage`] fails alone; SQS makes it visible again after the
//! visibility timeout and, after the queue's `maxReceiveCount`, moves it to the
//! dead-letter queue.
//!
//! Each order is completed through the idempotency layer, keyed by order id and
//! validated by a hash of the message: the idempotency record is committed in the same
//! transaction as the order's own updates, so completing an order costs one write
//! request, and a redelivered message is answered from the record (or, once the record
//! has expired, by the order's PROCESSED status) without changing anything.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};
use lambda_runtime::LambdaEvent;
use middleware::batch::{BatchError, SqsBatchLayer};
use middleware::idempotency::{
    Idempotency, IdempotencyError, InFlight, Outcome, TransactionOutcome, payload_hash,
};
use middleware::{logging, metrics};
use serde_json::value::RawValue;

use crate::clock::Timestamp;
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
    /// The transaction kept being cancelled for a transient reason (a concurrent
    /// transaction on the order, throttling); the message is retried.
    #[error("{0}")]
    Conflict(String),
    /// The idempotency record refused or failed.
    #[error("idempotency: {0}")]
    Idempotency(String),
    /// The transaction could not be built.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `update-cart-products` needs: the table and the idempotency records.
#[derive(Debug)]
pub struct Completer {
    store: Store,
    idempotency: Idempotency,
}

impl Completer {
    /// A completer over `store`, with idempotency records configured by `idempotency`.
    pub fn new(store: Store, idempotency: Idempotency) -> Self {
        Self { store, idempotency }
    }

    /// Completes one order message.
    ///
    /// # Errors
    /// [`CompleteMessageError`] naming why.
    pub async fn complete_message(
        &self,
        body: Option<&str>,
    ) -> Result<Completion, CompleteMessageError> {
        let body = body.ok_or(CompleteMessageError::NoBody)?;
        let message = OrderMessage::from_json(body)?;
        let id = message.order_id;
        logging::set_correlation_id(id.to_string());
        let now = Timestamp::now();
        let validation = payload_hash(message.to_json().map_err(MessageError::from)?.as_bytes());
        let outcome = self
            .idempotency
            .run_in_transaction(&id.to_string(), Some(&validation), || async {
                let items = self.store.completion_items(&message, &now)?;
                Ok::<_, StoreError>((now.rfc3339.clone(), items))
            })
            .await;
        let completion = match outcome {
            Ok(TransactionOutcome::Done(Outcome::Executed(_))) => Completion::Completed,
            Ok(TransactionOutcome::Done(Outcome::Replayed(_))) => Completion::AlreadyCompleted,
            Ok(TransactionOutcome::Done(Outcome::InFlight { lease_expires_ms })) => {
                metrics::add(&crate::metrics::ORDER_MESSAGES_IN_FLIGHT, 1.0);
                return Err(InFlight { lease_expires_ms }.into());
            }
            Ok(TransactionOutcome::Cancelled(_)) => self.store.completion_conflict(&id).await?,
            Err(IdempotencyError::Work(e)) => return Err(e.into()),
            Err(conflict @ IdempotencyError::Conflict { .. }) => {
                return Err(CompleteMessageError::Conflict(conflict.to_string()));
            }
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

    /// Handles one SQS batch and reports the failed messages, through the same
    /// [`service`] the binary runs.
    ///
    /// # Errors
    /// [`BatchError`] if the event is not an SQS batch or a record has no `messageId`.
    pub async fn complete_orders(
        self: &Arc<Self>,
        event: &RawValue,
    ) -> Result<SqsBatchResponse, BatchError> {
        use tower::ServiceExt as _;
        let event = LambdaEvent::new(event.to_owned(), lambda_runtime::Context::default());
        service(Arc::clone(self)).oneshot(event).await
    }
}

/// `update-cart-products` as one value: the batch layer over each message's completion,
/// with the batch's failures counted. The binary runs this.
pub fn service(
    completer: Arc<Completer>,
) -> impl tower::Service<
    LambdaEvent<Box<RawValue>>,
    Response = SqsBatchResponse,
    Error = BatchError,
    Future: Send,
> + Clone {
    tower::ServiceBuilder::new()
        .map_response(count_failures)
        .layer(SqsBatchLayer::new())
        .service(tower::service_fn(move |message: SqsMessage| {
            let completer = Arc::clone(&completer);
            async move {
                completer
                    .complete_message(message.body.as_deref())
                    .await
                    .map(drop)
            }
        }))
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
