//! An order's journey: its records, its idempotency record, its history.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::error::DisplayErrorContext;
use serde::Serialize;

use crate::domain::OrderId;
use crate::keys;

use super::OpsError;

/// An order's stored records, as an operator reads them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Journey {
    /// The order's items (one: the order, its lines inside), every attribute as JSON.
    pub records: Vec<serde_json::Value>,
    /// The idempotency record of `update-cart-products`, if any: the order's `idem_*`
    /// attributes, named as the separate record names them (`status`, ...).
    pub idempotency: Option<serde_json::Value>,
    /// `placed_at` → status, `processed_at` → status, in order.
    pub history: Vec<(String, String)>,
}

fn item_json(item: &HashMap<String, AttributeValue>) -> serde_json::Value {
    let value = |v: &AttributeValue| -> serde_json::Value {
        match v {
            AttributeValue::S(s) => serde_json::json!(s),
            AttributeValue::N(n) => serde_json::json!(n.parse::<f64>().ok()),
            AttributeValue::Bool(b) => serde_json::json!(b),
            other => serde_json::json!(format!("{other:?}")),
        }
    };
    serde_json::Value::Object(item.iter().map(|(k, v)| (k.clone(), value(v))).collect())
}

/// Reads an order's records and its idempotency record.
///
/// # Errors
/// [`OpsError`] if the table cannot be read.
pub async fn journey(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    order: &OrderId,
) -> Result<Journey, OpsError> {
    let dynamo_error = |e: &dyn std::fmt::Display| OpsError(format!("reading the table: {e}"));
    let items = dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", keys::PK)
        .expression_attribute_values(":pk", AttributeValue::S(keys::order_partition(order)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| dynamo_error(&DisplayErrorContext(&e)))?
        .items
        .unwrap_or_default();
    let records: Vec<serde_json::Value> = items.iter().map(item_json).collect();
    let mut history = Vec::new();
    if let Some(header) = records.iter().find(|r| r[keys::ENTITY] == "ORDER") {
        if let Some(at) = header["placed_at"].as_str() {
            history.push((at.to_owned(), "ORDERED".to_owned()));
        }
        if let Some(at) = header["processed_at"].as_str() {
            history.push((at.to_owned(), "PROCESSED".to_owned()));
        }
    }
    let idempotency = records
        .iter()
        .find(|r| r[keys::ENTITY] == "ORDER")
        .and_then(|order| {
            let record: serde_json::Map<String, serde_json::Value> = order
                .as_object()?
                .iter()
                .filter_map(|(name, value)| {
                    let field = name.strip_prefix("idem_")?;
                    Some((field.to_owned(), value.clone()))
                })
                .collect();
            (!record.is_empty()).then_some(serde_json::Value::Object(record))
        });
    Ok(Journey {
        records,
        idempotency,
        history,
    })
}
