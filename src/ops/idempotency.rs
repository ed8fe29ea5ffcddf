//! Idempotency records: their key, and clearing a stale one.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::error::DisplayErrorContext;
use serde::Serialize;

use crate::keys;

use super::OpsError;

/// The key of a function's idempotency record for `key`.
pub fn idempotency_key(function: &str, key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            keys::PK.to_owned(),
            AttributeValue::S(format!("IDEMPOTENCY#{function}#{key}")),
        ),
        (
            keys::SK.to_owned(),
            AttributeValue::S("IDEMPOTENCY".to_owned()),
        ),
    ])
}

/// What clearing an idempotency record did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Cleared {
    /// The record was deleted.
    Deleted,
    /// There was no record.
    Absent,
    /// The record is live (COMPLETED, or INPROGRESS with its lease running) and was
    /// kept; `--force` deletes it anyway.
    Kept(String),
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
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut request = dynamodb
        .delete_item()
        .table_name(table)
        .set_key(Some(idempotency_key(function, key)))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
        .return_values_on_condition_check_failure(
            aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
        );
    if !force {
        request = request
            .condition_expression("#status = :inprogress AND #lease < :now")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#lease", "in_progress_expiration")
            .expression_attribute_values(":inprogress", AttributeValue::S("INPROGRESS".to_owned()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()));
    }
    match request.send().await {
        Ok(output) if output.attributes.as_ref().is_some_and(|a| !a.is_empty()) => Ok(Cleared::Deleted),
        Ok(_) => Ok(Cleared::Absent),
        Err(aws_sdk_dynamodb::error::SdkError::ServiceError(e))
            if matches!(e.err(), aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(_)) =>
        {
            let old = match e.err() {
                aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(c) => c.item.clone(),
                _ => None,
            };
            match old {
                None => Ok(Cleared::Absent),
                Some(item) => {
                    let status = item.get("status").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                    Ok(Cleared::Kept(status))
                }
            }
        }
        Err(e) => Err(OpsError(format!("deleting the record: {}", DisplayErrorContext(&e)))),
    }
}
