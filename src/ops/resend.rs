//! Resending an order's message, built from the table.

use serde::Serialize;

use crate::domain::OrderId;
use crate::message::OrderMessage;

use super::OpsError;

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
pub async fn resend<Q: crate::order_queue::OrderQueue>(
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
