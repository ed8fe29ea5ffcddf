//! Idempotency records: where a function keeps them, and clearing a stale one. The
//! record's schema and the clearing itself live in `middleware::idempotency`.
//!
//! `update-cart-products` keeps its record on the order item it completes (the on-item
//! mode, `middleware::idempotency::on_item`); another function keeps separate records
//! under its name.

use middleware::idempotency::{Idempotency, IdempotencyConfig};

pub use middleware::idempotency::Cleared;

use super::OpsError;
use crate::domain::OrderId;
use crate::keys;

/// The idempotency records `function` keeps in `table` (its key prefix is the
/// function's name).
pub fn records(table: &str, function: &str) -> IdempotencyConfig {
    IdempotencyConfig::single_table(table, function, |_| None)
}

/// Removes a stale idempotency record: an INPROGRESS one whose lease has ended (its
/// holder died), or any record with `force`. For `update-cart-products` the record is
/// the idempotency attributes of the order `key` names, and the order itself stays.
/// The write is conditional, so a record that changes meanwhile is not removed by
/// mistake.
///
/// # Errors
/// [`OpsError`] if the table cannot be read or written, or the key of an on-order
/// record is not an order id.
pub async fn clear_idempotency(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    function: &str,
    key: &str,
    force: bool,
) -> Result<Cleared, OpsError> {
    let idempotency = Idempotency::new(dynamodb.clone(), records(table, function));
    if function == crate::pipeline::complete::IDEMPOTENCY_PREFIX {
        let id = OrderId::parse(key)
            .map_err(|e| OpsError(format!("{function} keeps its record on the order: {e}")))?;
        idempotency
            .clear_stale_on_item(keys::order_header(&id).primary(), force)
            .await
    } else {
        idempotency.clear_stale(key, force).await
    }
    .map_err(OpsError)
}
