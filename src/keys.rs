//! The single-table layout: every key format and attribute name, in one place.
//!
//! | item | `PK` | `SK` | `GSI1PK` | `GSI1SK` |
//! |---|---|---|---|---|
//! | product | `PRODUCT#{product_id}` | `PRODUCT` | `CATALOGUE` | `PRODUCT#{product_id}` |
//! | cart (its lines as `LINE#{product_id}` attributes) | `USER#{user_id}` | `CART` | | |
//! | order (its lines inside) | `ORDER#{order_id}` | `ORDER` | `USER#{user_id}` | `ORDER#{placed_at_ms:013}#{order_id}` |
//!
//! Orders and cart lines spread over one partition per order and per user, so no
//! partition is hot however many orders arrive (the workshop kept every order under
//! `PK = ORDER`). An order is one item: placing writes it once, completing it is one
//! conditional `UpdateItem`, reading it one `GetItem`. `GSI1` lists a user's orders
//! newest first, and the catalogue; the catalogue partition is 20 small items read by
//! one `Query`. It projects only what those listings show ([`GSI1_PROJECTED`]).
//!
//! Ids never contain `#` (see [`crate::domain`]), so a key splits unambiguously.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::{OrderId, ProductId, UserId};

/// Partition key attribute.
pub const PK: &str = "PK";
/// Sort key attribute.
pub const SK: &str = "SK";
/// Partition key of [`GSI1`].
pub const GSI1PK: &str = "GSI1PK";
/// Sort key of [`GSI1`].
pub const GSI1SK: &str = "GSI1SK";
/// The index that lists a user's orders and the catalogue.
pub const GSI1: &str = "GSI1";
/// Attribute naming what kind of item a row is; the stream filter matches on it.
pub const ENTITY: &str = "entity";
/// Attribute holding an order's status; the stream filter matches on it.
pub const ORDER_STATUS: &str = "order_status";
/// Attribute holding a line's status.
pub const LINE_STATUS: &str = "line_status";

/// The attributes `GSI1` projects besides the keys: what listing a user's orders
/// ([`crate::domain::OrderSummary`]) and the catalogue ([`crate::domain::Product`])
/// show. `template.yaml` must name exactly these (a test checks it). An order's
/// `order_status` and `processed_at` are among them, so completing an order writes
/// its index entry once; its lines, `completions` and idempotency attributes are not.
pub const GSI1_PROJECTED: [&str; 13] = [
    ENTITY,
    "order_id",
    ORDER_STATUS,
    "line_count",
    "total_minor",
    "currency",
    "placed_at",
    "processed_at",
    "product_id",
    "name",
    "category",
    "description",
    "unit_price_minor",
];

/// What kind of item a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// A catalogue product.
    Product,
    /// A user's cart.
    Cart,
    /// An order, its lines inside.
    Order,
}

impl Entity {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Product => "PRODUCT",
            Self::Cart => "CART",
            Self::Order => "ORDER",
        }
    }
}

const CATALOGUE: &str = "CATALOGUE";
const ORDER_SK: &str = "ORDER";
/// Prefix of the attributes that hold a cart's lines, one per product.
pub const CART_LINE_PREFIX: &str = "LINE#";
/// A cart's version: every change adds one, and placing an order from the cart
/// requires the version it priced.
pub const CART_VERSION: &str = "version";
/// Prefix of the GSI1 sort keys of a user's orders.
pub const USER_ORDER_PREFIX: &str = "ORDER#";

/// The primary key of an item, plus its GSI1 key when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKey {
    /// Partition key.
    pub pk: String,
    /// Sort key.
    pub sk: String,
    /// GSI1 partition and sort key.
    pub gsi1: Option<(String, String)>,
}

impl ItemKey {
    /// The primary key as DynamoDB attributes, for `GetItem`, `UpdateItem`, `DeleteItem`.
    pub fn primary(&self) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (PK.to_owned(), AttributeValue::S(self.pk.clone())),
            (SK.to_owned(), AttributeValue::S(self.sk.clone())),
        ])
    }

    /// Adds every key attribute and the entity marker to an item.
    pub fn stamp(&self, entity: Entity, item: &mut HashMap<String, AttributeValue>) {
        item.extend(self.primary());
        if let Some((pk, sk)) = &self.gsi1 {
            item.insert(GSI1PK.to_owned(), AttributeValue::S(pk.clone()));
            item.insert(GSI1SK.to_owned(), AttributeValue::S(sk.clone()));
        }
        item.insert(
            ENTITY.to_owned(),
            AttributeValue::S(entity.as_str().to_owned()),
        );
    }
}

/// A catalogue product.
pub fn product(id: &ProductId) -> ItemKey {
    ItemKey {
        pk: format!("PRODUCT#{id}"),
        sk: "PRODUCT".to_owned(),
        gsi1: Some((CATALOGUE.to_owned(), format!("PRODUCT#{id}"))),
    }
}

/// The GSI1 partition that lists the catalogue.
pub fn catalogue_partition() -> &'static str {
    CATALOGUE
}

/// The partition holding a user's cart lines.
pub fn user_partition(user: &UserId) -> String {
    format!("USER#{user}")
}

/// A user's cart: one item, its lines inside.
pub fn cart(user: &UserId) -> ItemKey {
    ItemKey {
        pk: user_partition(user),
        sk: "CART".to_owned(),
        gsi1: None,
    }
}

/// The cart's attribute that holds the line of `product`.
pub fn cart_line_attribute(product: &ProductId) -> String {
    format!("{CART_LINE_PREFIX}{product}")
}

/// An order's header, listed under its user in GSI1 by placement time.
pub fn order(id: &OrderId, user: &UserId, placed_at_ms: i64) -> ItemKey {
    ItemKey {
        gsi1: Some((user_partition(user), user_order_sort_key(placed_at_ms, id))),
        ..order_header(id)
    }
}

/// An order's header, for reads and updates (which do not touch GSI1 keys).
pub fn order_header(id: &OrderId) -> ItemKey {
    ItemKey {
        pk: order_partition(id),
        sk: ORDER_SK.to_owned(),
        gsi1: None,
    }
}

/// The partition holding an order's header and lines.
pub fn order_partition(id: &OrderId) -> String {
    format!("ORDER#{id}")
}

/// GSI1 sort key of an order: zero-padded milliseconds sort as numbers do.
pub fn user_order_sort_key(placed_at_ms: i64, id: &OrderId) -> String {
    format!("{USER_ORDER_PREFIX}{placed_at_ms:013}#{id}")
}

/// Reads the placement time and order id back from a GSI1 sort key (or the part after
/// its prefix, as used in page cursors).
pub fn parse_user_order_sort_key(value: &str) -> Option<(i64, OrderId)> {
    let rest = value.strip_prefix(USER_ORDER_PREFIX).unwrap_or(value);
    let (ms, id) = rest.split_once('#')?;
    if ms.len() != 13 || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((ms.parse().ok()?, OrderId::parse(id).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_cart_lines_get_their_own_partitions() {
        let a = OrderId::random();
        let b = OrderId::random();
        let alice = UserId::parse("alice").unwrap();
        assert_ne!(order(&a, &alice, 1).pk, order(&b, &alice, 1).pk);
        let bob = UserId::parse("bob").unwrap();
        assert_ne!(cart(&alice).pk, cart(&bob).pk);
    }

    #[test]
    fn user_order_sort_keys_sort_by_time_and_round_trip() {
        let id = OrderId::random();
        let early = user_order_sort_key(999, &id);
        let late = user_order_sort_key(1_700_000_000_000, &id);
        assert!(early < late, "{early} < {late}");
        assert_eq!(
            parse_user_order_sort_key(&late),
            Some((1_700_000_000_000, id))
        );
        let cursor = late.strip_prefix(USER_ORDER_PREFIX).unwrap();
        assert_eq!(
            parse_user_order_sort_key(cursor),
            Some((1_700_000_000_000, id))
        );
        for bad in ["", "ORDER#12#x", "ORDER#abcdefghijklm#x", "0000000000001"] {
            assert_eq!(parse_user_order_sort_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn stamp_adds_keys_and_entity() {
        let id = OrderId::random();
        let user = UserId::parse("u1").unwrap();
        let mut item = HashMap::new();
        order(&id, &user, 5).stamp(Entity::Order, &mut item);
        assert_eq!(item[PK], AttributeValue::S(format!("ORDER#{id}")));
        assert_eq!(item[SK], AttributeValue::S("ORDER".into()));
        assert_eq!(item[GSI1PK], AttributeValue::S("USER#u1".into()));
        assert_eq!(item[ENTITY], AttributeValue::S("ORDER".into()));
    }
}
