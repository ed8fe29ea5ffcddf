//! The service's metrics, declared once: the handlers record them, and dashboards and
//! alarms are checked against [`CATALOGUE`].

use middleware::metrics::{Metric, Unit};

/// `orders-api`: an order was created.
pub static ORDERS_PLACED: Metric = Metric::new("OrdersPlaced", Unit::Count);
/// `orders-api`: a retried `POST /order` returned the first order.
pub static ORDER_REQUESTS_REPLAYED: Metric = Metric::new("OrderRequestsReplayed", Unit::Count);
/// `process-cart-products`: an order message reached the queue.
pub static ORDERS_FORWARDED: Metric = Metric::new("OrdersForwarded", Unit::Count);
/// `update-cart-products`: an order moved to PROCESSED.
pub static ORDERS_COMPLETED: Metric = Metric::new("OrdersCompleted", Unit::Count);
/// `update-cart-products`: a redelivered message found its order already PROCESSED.
pub static ORDER_MESSAGES_REPLAYED: Metric = Metric::new("OrderMessagesReplayed", Unit::Count);
/// `update-cart-products`: another invocation held the order's idempotency lease, so the
/// message was left for redelivery (a duplicate delivery racing the first, or a lease
/// left by a crashed invocation until it expires).
pub static ORDER_MESSAGES_IN_FLIGHT: Metric = Metric::new("OrderMessagesInFlight", Unit::Count);
/// Both pipeline functions: records reported as failed in a partial-batch response.
pub static BATCH_ITEM_FAILURES: Metric = Metric::new("BatchItemFailures", Unit::Count);

/// Every metric the service writes (besides the middleware's `ColdStart`).
pub static CATALOGUE: [&Metric; 7] = [
    &ORDERS_PLACED,
    &ORDER_REQUESTS_REPLAYED,
    &ORDERS_FORWARDED,
    &ORDERS_COMPLETED,
    &ORDER_MESSAGES_REPLAYED,
    &ORDER_MESSAGES_IN_FLIGHT,
    &BATCH_ITEM_FAILURES,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique() {
        let names: HashSet<_> = CATALOGUE.iter().map(|m| m.name).collect();
        assert_eq!(names.len(), CATALOGUE.len());
        assert!(!names.contains(middleware::metrics::COLD_START.name));
    }
}
