//! Idempotency records: where a function keeps them, and clearing a stale one. The
//! record's schema and the clearing itself live in `middleware::idempotency`.

use middleware::idempotency::{Idempotency, IdempotencyConfig};

pub use middleware::idempotency::Cleared;

use super::OpsError;

/// The idempotency records `function` keeps in `table` (its key prefix is the
/// function's name).
pub fn records(table: &str, function: &str) -> IdempotencyConfig {
    IdempotencyConfig::single_table(table, function, |_| None)
}

/// Deletes a stale idempotency record: an INPROGRESS one whose lease has ended (its
/// holder died), or any record with `force`. The delete is conditional, so a record
/// that changes meanwhile is not removed by mistake.
///
/// # Errors
/// [`OpsError`] if the table cannot be read or written.
pub async fn clear_idempotency(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    function: &str,
    key: &str,
    force: bool,
) -> Result<Cleared, OpsError> {
    Idempotency::new(dynamodb.clone(), records(table, function))
        .clear_stale(key, force)
        .await
        .map_err(OpsError)
}
