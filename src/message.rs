//! The SQS message from `process-cart-products` to `update-cart-products`: one type,
//! one version number, used by both sides.
//!
//! One message per order. The body is JSON; the order id also travels as the string
//! message attribute [`ORDER_ID_ATTRIBUTE`] so it can be read (and correlated in logs)
//! without parsing the body. A consumer accepts only the versions it knows and says
//! which version it got otherwise; a new field that old consumers may ignore keeps the
//! version, a change of meaning bumps it.

use serde::{Deserialize, Serialize};

use crate::domain::{Currency, Order, OrderId, ProductId, Quantity, UserId};

/// The version this build writes and reads.
pub const ORDER_MESSAGE_VERSION: u16 = 1;
/// Name of the message attribute that carries the order id.
pub const ORDER_ID_ATTRIBUTE: &str = "order_id";

/// The message version, checked while parsing: only [`ORDER_MESSAGE_VERSION`] parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Version;

/// A message of a version this build does not read.
#[derive(Debug, thiserror::Error)]
#[error("unsupported order message version {0}; this build reads version {ORDER_MESSAGE_VERSION}")]
pub struct UnsupportedVersion(u16);

impl TryFrom<u16> for Version {
    type Error = UnsupportedVersion;
    fn try_from(value: u16) -> Result<Self, Self::Error> {
        if value == ORDER_MESSAGE_VERSION {
            Ok(Self)
        } else {
            Err(UnsupportedVersion(value))
        }
    }
}

impl From<Version> for u16 {
    fn from(_: Version) -> u16 {
        ORDER_MESSAGE_VERSION
    }
}

/// "This order was placed; process it."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderMessage {
    /// Always [`ORDER_MESSAGE_VERSION`]; first in the JSON so a wrong version is the
    /// error reported.
    pub version: Version,
    /// The order.
    pub order_id: OrderId,
    /// Who placed it.
    pub user_id: UserId,
    /// What was ordered.
    pub lines: Vec<MessageLine>,
    /// The order's total in minor units.
    pub total_minor: i64,
    /// The currency of the total and prices.
    pub currency: Currency,
    /// When the order was placed (RFC 3339).
    pub placed_at: String,
}

/// One line of an [`OrderMessage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageLine {
    /// The product.
    pub product_id: ProductId,
    /// How many units.
    pub quantity: Quantity,
    /// Price of one unit in minor units.
    pub unit_price_minor: i64,
}

/// Why a message body was rejected.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Not JSON, or not the shape of an [`OrderMessage`] (including an unknown version).
    #[error("malformed order message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Parsed, but the message carries no lines.
    #[error("order message {0} has no lines")]
    NoLines(OrderId),
}

impl OrderMessage {
    /// The message for a placed order.
    pub fn for_order(order: &Order) -> Self {
        Self::from_order(order.clone())
    }

    /// The message for a placed order, taking the order's strings rather than copying
    /// them (the stream function decodes an order only to send it).
    pub fn from_order(order: Order) -> Self {
        Self {
            version: Version,
            order_id: order.order_id,
            user_id: order.user_id,
            lines: order
                .lines
                .into_iter()
                .map(|line| MessageLine {
                    product_id: line.product_id,
                    quantity: line.quantity,
                    unit_price_minor: line.unit_price_minor,
                })
                .collect(),
            total_minor: order.total_minor,
            currency: order.currency,
            placed_at: order.placed_at,
        }
    }

    /// Parses and checks a message body.
    ///
    /// # Errors
    /// [`MessageError`] naming what is wrong.
    pub fn from_json(body: &str) -> Result<Self, MessageError> {
        let message: Self = serde_json::from_str(body)?;
        if message.lines.is_empty() {
            return Err(MessageError::NoLines(message.order_id));
        }
        Ok(message)
    }

    /// The message body.
    ///
    /// # Errors
    /// Never in practice (the fields are strings and integers); typed for honesty.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: &str = r#"{"version":1,"order_id":"0b7e6f0e-3c1a-4f7e-9a51-2f0c8d1e4b6a","user_id":"alice","lines":[{"product_id":"desk-oak-140","quantity":2,"unit_price_minor":54900}],"total_minor":109800,"currency":"USD","placed_at":"2026-11-24T10:00:00.000Z"}"#;

    fn message() -> OrderMessage {
        OrderMessage {
            version: Version,
            order_id: OrderId::parse("0b7e6f0e-3c1a-4f7e-9a51-2f0c8d1e4b6a").unwrap(),
            user_id: UserId::parse("alice").unwrap(),
            lines: vec![MessageLine {
                product_id: ProductId::parse("desk-oak-140").unwrap(),
                quantity: Quantity::new(2).unwrap(),
                unit_price_minor: 54_900,
            }],
            total_minor: 109_800,
            currency: Currency::Usd,
            placed_at: "2026-11-24T10:00:00.000Z".to_owned(),
        }
    }

    #[test]
    fn json_is_pinned_and_round_trips() {
        assert_eq!(message().to_json().unwrap(), PINNED);
        assert_eq!(OrderMessage::from_json(PINNED).unwrap(), message());
    }

    #[test]
    fn the_fixture_used_by_the_sqs_tests_is_a_current_message() {
        let event: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/sqs-batch.json")).unwrap();
        let body = event["Records"][0]["body"].as_str().unwrap();
        assert!(OrderMessage::from_json(body).is_ok(), "{body}");
    }

    #[test]
    fn other_versions_are_rejected_by_name() {
        let v2 = PINNED.replace(r#""version":1"#, r#""version":2"#);
        let err = OrderMessage::from_json(&v2).unwrap_err().to_string();
        assert!(err.contains("unsupported order message version 2"), "{err}");
    }

    #[test]
    fn invalid_content_is_rejected_with_the_reason() {
        for (body, expected) in [
            ("not json", "expected ident"),
            (r#"{"version":1}"#, "missing field"),
            (
                &PINNED.replace(r#""quantity":2"#, r#""quantity":0"#),
                "quantity must be between",
            ),
            (&PINNED.replace("alice", "al ice"), "may only contain"),
            (
                &PINNED.replace(r#""currency""#, r#""extra":1,"currency""#),
                "unknown field",
            ),
        ] {
            let err = OrderMessage::from_json(body).unwrap_err().to_string();
            assert!(err.contains(expected), "{body}: {err}");
        }
        let empty = PINNED.replace(
            r#"[{"product_id":"desk-oak-140","quantity":2,"unit_price_minor":54900}]"#,
            "[]",
        );
        assert!(matches!(
            OrderMessage::from_json(&empty),
            Err(MessageError::NoLines(_))
        ));
    }
}
