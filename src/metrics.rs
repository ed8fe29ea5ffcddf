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

/// The metrics the pipeline functions write: under both [`DIMENSION_SETS`].
pub static BY_FUNCTION: [&Metric; 5] = [
    &ORDERS_FORWARDED,
    &ORDERS_COMPLETED,
    &ORDER_MESSAGES_REPLAYED,
    &ORDER_MESSAGES_IN_FLIGHT,
    &BATCH_ITEM_FAILURES,
];

/// The dimension sets the service writes its metrics under, each as CloudWatch stores
/// it (dashboards and alarms name one exactly): every function writes `service`; the
/// pipeline functions also write `service, function_name` ([`by_function`]), so a
/// metric both of them write, `BatchItemFailures`, reads per function as well as in
/// total. Each set is a metric of its own to CloudWatch (billed per metric and month).
pub static DIMENSION_SETS: [&[&str]; 2] = [&["service"], &["service", "function_name"]];

/// Adds the per-function dimension set ([`DIMENSION_SETS`]) to the current
/// invocation's metrics; the pipeline functions call it as each invocation starts.
pub fn by_function() {
    let Some(function) = middleware::metrics::function_name() else {
        return;
    };
    if let Err(error) = middleware::metrics::add_dimension_set(&[("function_name", &function)]) {
        tracing::warn!(
            error = &error as &dyn std::error::Error,
            "metrics are not split by function"
        );
    }
}

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
