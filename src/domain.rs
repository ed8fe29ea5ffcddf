//! Products, cart lines and orders, and the rules that keep them valid.
//!
//! Everything that comes from outside (path segments, request bodies, queue messages)
//! becomes one of these types through a checking constructor, so code further in can
//! rely on an id being well formed and a quantity being in range. Money is an integer
//! number of minor units (cents) with its currency; it is never a float.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest accepted user or product id, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty, or longer than [`MAX_ID_LEN`].
    #[error("{kind} must be 1 to {MAX_ID_LEN} characters long")]
    Length {
        /// Which id was rejected.
        kind: &'static str,
    },
    /// A character outside `A-Z a-z 0-9 - _`.
    #[error("{kind} may only contain ASCII letters, digits, '-' and '_'")]
    Characters {
        /// Which id was rejected.
        kind: &'static str,
    },
    /// An order id that is not a UUID.
    #[error("order_id must be a UUID such as 0b7e6f0e-3c1a-4f7e-9a51-2f0c8d1e4b6a")]
    NotUuid,
}

fn check_slug(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(IdError::Length { kind });
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(IdError::Characters { kind });
    }
    Ok(())
}

/// Declares an id type made of 1 to [`MAX_ID_LEN`] characters from `A-Z a-z 0-9 - _`.
///
/// The character set keeps ids safe inside table keys (which use `#` as a separator),
/// URLs and log lines without escaping.
macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        // Written as the string it holds, without the copy `#[serde(into)]` would make.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl $name {
            /// Checks and wraps an id.
            ///
            /// # Errors
            /// [`IdError`] when the id is empty, too long or has other characters.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_slug($kind, &value)?;
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

slug_id!(
    /// Identifies a user (the owner of a cart and of orders).
    UserId,
    "user_id"
);
slug_id!(
    /// Identifies a product of the catalogue.
    ProductId,
    "product_id"
);

/// Identifies an order: a UUID, random or derived from an idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderId(Uuid);

// Read from and written as the hyphenated text, with no intermediate `String`.
impl Serialize for OrderId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buffer = Uuid::encode_buffer();
        serializer.serialize_str(self.0.hyphenated().encode_lower(&mut buffer))
    }
}

impl<'de> Deserialize<'de> for OrderId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = OrderId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an order id (a hyphenated UUID)")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<OrderId, E> {
                OrderId::parse(value).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// Namespace of the order ids derived from `(user_id, Idempotency-Key)`.
const ORDER_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_5a0e_2b7c_4e19_9c3d_8a41_07e2_b5f6);

impl OrderId {
    /// A new random order id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The order id that a user's idempotency key stands for.
    ///
    /// Deriving the id (UUID v5) instead of storing a key → id mapping means a retried
    /// `POST /order` finds the first order with one `GetItem`, and two concurrent
    /// retries collide on the same conditional `Put`, so only one order is created.
    pub fn for_idempotency_key(user: &UserId, key: &IdempotencyKey) -> Self {
        let name = format!("{}\n{}", user.as_str(), key.as_str());
        Self(Uuid::new_v5(&ORDER_ID_NAMESPACE, name.as_bytes()))
    }

    /// Checks and wraps an order id.
    ///
    /// # Errors
    /// [`IdError::NotUuid`] unless `value` is a hyphenated UUID.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        if value.len() != 36 {
            return Err(IdError::NotUuid);
        }
        Uuid::try_parse(value)
            .map(Self)
            .map_err(|_| IdError::NotUuid)
    }
}

impl TryFrom<String> for OrderId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(&value)
    }
}

impl From<OrderId> for String {
    fn from(id: OrderId) -> String {
        id.to_string()
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A client's `Idempotency-Key` header: 1 to 64 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks and wraps a key.
    ///
    /// # Errors
    /// A message naming the rule that was broken.
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        if value.is_empty() || value.len() > MAX_ID_LEN {
            return Err("Idempotency-Key must be 1 to 64 characters long");
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("Idempotency-Key may only contain printable ASCII characters");
        }
        Ok(Self(value.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Smallest quantity of a cart line.
pub const MIN_QUANTITY: u32 = 1;
/// Largest quantity of a cart line.
pub const MAX_QUANTITY: u32 = 99;
/// Most lines a cart (and so an order) can hold. Placing an order writes two items per
/// line plus the order in one transaction, which DynamoDB caps at 100 items.
pub const MAX_CART_LINES: usize = 25;

/// How many units of a product a line holds: from [`MIN_QUANTITY`] to [`MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Quantity(u32);

/// A quantity outside the accepted range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("quantity must be between {MIN_QUANTITY} and {MAX_QUANTITY}, got {0}")]
pub struct QuantityOutOfRange(pub i64);

impl Quantity {
    /// Checks and wraps a quantity.
    ///
    /// # Errors
    /// [`QuantityOutOfRange`] outside `MIN_QUANTITY..=MAX_QUANTITY`.
    pub fn new(value: i64) -> Result<Self, QuantityOutOfRange> {
        match u32::try_from(value) {
            Ok(v) if (MIN_QUANTITY..=MAX_QUANTITY).contains(&v) => Ok(Self(v)),
            _ => Err(QuantityOutOfRange(value)),
        }
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Quantity {
    type Error = QuantityOutOfRange;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Quantity> for u32 {
    fn from(q: Quantity) -> u32 {
        q.0
    }
}

/// The currencies prices are kept in. The catalogue is single-currency today; the type
/// makes a second currency a compile-time decision rather than a silent string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Currency {
    /// US dollars; minor unit: cents.
    #[serde(rename = "USD")]
    Usd,
}

/// A product of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The product's id.
    pub product_id: ProductId,
    /// Display name.
    pub name: String,
    /// Catalogue category.
    pub category: String,
    /// One-sentence description.
    pub description: String,
    /// Price of one unit in minor units (cents).
    pub unit_price_minor: i64,
    /// Currency of the price.
    pub currency: Currency,
}

/// The catalogue shipped with the service (`POST /loadProducts` writes it).
///
/// # Errors
/// Fails only if the bundled file is corrupt, which a unit test rules out.
pub fn bundled_catalogue() -> Result<Vec<Product>, serde_json::Error> {
    serde_json::from_str(include_str!("../data/products.json"))
}

/// Where a cart line is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LineStatus {
    /// In the cart, or in an order that the pipeline has not processed yet.
    #[default]
    Pending,
    /// Processed by the order pipeline.
    Ordered,
}

impl LineStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Ordered => "ORDERED",
        }
    }
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Placed by the user; waiting for the pipeline.
    Ordered,
    /// The pipeline marked its lines ORDERED (`processed_at` is set).
    Processed,
}

impl OrderStatus {
    /// The stored form, as the stream filter matches it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ordered => "ORDERED",
            Self::Processed => "PROCESSED",
        }
    }
}

/// A line of a user's cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    /// The product.
    pub product_id: ProductId,
    /// How many units.
    pub quantity: Quantity,
    /// The catalogue price when the line was last set; the order re-prices it.
    pub unit_price_minor: i64,
    /// Currency of the price.
    pub currency: Currency,
    /// When the line was last set (RFC 3339).
    pub updated_at: String,
    /// Always [`LineStatus::Pending`] while in the cart.
    pub line_status: LineStatus,
}

/// A user's cart: its lines, and its version (every change adds one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cart {
    /// The lines, in product-id order.
    pub lines: Vec<CartLine>,
    /// The version the lines were read at.
    pub version: u64,
}

/// A priced line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The product.
    pub product_id: ProductId,
    /// The product's name when ordered.
    pub name: String,
    /// How many units.
    pub quantity: Quantity,
    /// Catalogue price of one unit when ordered.
    pub unit_price_minor: i64,
    /// `quantity × unit_price_minor`.
    pub line_total_minor: i64,
    /// [`LineStatus::Pending`] until the pipeline processes the order, then
    /// [`LineStatus::Ordered`]. Not stored: it follows the order's status
    /// ([`Order::with_line_status`]), since the pipeline moves every line at once.
    #[serde(default)]
    pub line_status: LineStatus,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id.
    pub order_id: OrderId,
    /// Who placed it.
    pub user_id: UserId,
    /// Where it is in its life.
    pub order_status: OrderStatus,
    /// The lines, in product-id order.
    pub lines: Vec<OrderLine>,
    /// Sum of the line totals.
    pub total_minor: i64,
    /// Currency of every amount in the order.
    pub currency: Currency,
    /// When it was placed (RFC 3339).
    pub placed_at: String,
    /// When the pipeline processed it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<String>,
}

impl Order {
    /// The order with each line's status as its own status implies: PENDING while the
    /// order is ORDERED, ORDERED once it is PROCESSED.
    #[must_use]
    pub fn with_line_status(mut self) -> Self {
        let status = match self.order_status {
            OrderStatus::Ordered => LineStatus::Pending,
            OrderStatus::Processed => LineStatus::Ordered,
        };
        for line in &mut self.lines {
            line.line_status = status;
        }
        self
    }
}

/// An order as a user's listing shows it: what `GSI1` projects, so completing an
/// order rewrites the index entry only because its status changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    /// The order's id.
    pub order_id: OrderId,
    /// Where it is in its life.
    pub order_status: OrderStatus,
    /// How many lines it has.
    pub line_count: u32,
    /// Sum of the line totals.
    pub total_minor: i64,
    /// Currency of the total.
    pub currency: Currency,
    /// When it was placed (RFC 3339).
    pub placed_at: String,
    /// When the pipeline processed it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<String>,
}

/// Why a cart could not be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// A line's product is no longer in the catalogue.
    #[error("product {0} is no longer in the catalogue")]
    UnknownProduct(ProductId),
    /// A product is priced in another currency than the rest of the cart.
    #[error("product {0} is priced in another currency than the rest of the cart")]
    MixedCurrencies(ProductId),
    /// A price is negative or a total does not fit in 64 bits.
    #[error("the price of product {0} is out of range")]
    PriceOutOfRange(ProductId),
}

/// Prices cart lines from the catalogue: the client never supplies a price or total.
///
/// Returns the order lines (in the cart's order) and their total.
///
/// # Errors
/// [`PricingError`] if a product is missing, currencies differ, or arithmetic overflows.
pub fn price_lines(
    cart: &[CartLine],
    catalogue: &HashMap<ProductId, Product>,
) -> Result<(Vec<OrderLine>, i64, Currency), PricingError> {
    let mut currency = None;
    let mut total: i64 = 0;
    let mut lines = Vec::with_capacity(cart.len());
    for line in cart {
        let id = &line.product_id;
        let product = catalogue
            .get(id)
            .ok_or_else(|| PricingError::UnknownProduct(id.clone()))?;
        if *currency.get_or_insert(product.currency) != product.currency {
            return Err(PricingError::MixedCurrencies(id.clone()));
        }
        let out_of_range = || PricingError::PriceOutOfRange(id.clone());
        if product.unit_price_minor < 0 {
            return Err(out_of_range());
        }
        let line_total = product
            .unit_price_minor
            .checked_mul(i64::from(line.quantity.get()))
            .ok_or_else(out_of_range)?;
        total = total.checked_add(line_total).ok_or_else(out_of_range)?;
        lines.push(OrderLine {
            product_id: id.clone(),
            name: product.name.clone(),
            quantity: line.quantity,
            unit_price_minor: product.unit_price_minor,
            line_total_minor: line_total,
            line_status: LineStatus::Pending,
        });
    }
    Ok((lines, total, currency.unwrap_or(Currency::Usd)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn slug_ids_accept_the_documented_alphabet_only() {
        assert!(UserId::parse("user-42_A").is_ok());
        assert_eq!(UserId::parse(""), Err(IdError::Length { kind: "user_id" }));
        assert_eq!(
            ProductId::parse("a".repeat(MAX_ID_LEN + 1)),
            Err(IdError::Length { kind: "product_id" })
        );
        assert!(ProductId::parse("a".repeat(MAX_ID_LEN)).is_ok());
        for bad in ["a#b", "a b", "é", "../x", "a/b"] {
            assert_eq!(
                UserId::parse(bad),
                Err(IdError::Characters { kind: "user_id" }),
                "{bad}"
            );
        }
    }

    #[test]
    fn ids_deserialize_through_their_checks() {
        assert!(serde_json::from_str::<UserId>(r#""ok""#).is_ok());
        let err = serde_json::from_str::<UserId>(r#""not ok""#).unwrap_err();
        assert!(err.to_string().contains("may only contain"), "{err}");
    }

    #[test]
    fn order_ids_are_hyphenated_uuids() {
        let id = OrderId::random();
        assert_eq!(OrderId::parse(&id.to_string()), Ok(id));
        assert_eq!(OrderId::parse("nope"), Err(IdError::NotUuid));
        // Simple (unhyphenated) and braced forms would give one order two spellings.
        assert_eq!(
            OrderId::parse(&id.to_string().replace('-', "")),
            Err(IdError::NotUuid)
        );
    }

    #[test]
    fn derived_order_ids_depend_on_user_and_key() {
        let key = IdempotencyKey::parse("retry-1").unwrap();
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let a1 = OrderId::for_idempotency_key(&alice, &key);
        assert_eq!(a1, OrderId::for_idempotency_key(&alice, &key));
        assert_ne!(a1, OrderId::for_idempotency_key(&bob, &key));
        let other = IdempotencyKey::parse("retry-2").unwrap();
        assert_ne!(a1, OrderId::for_idempotency_key(&alice, &other));
    }

    #[test]
    fn idempotency_keys_are_bounded_printable_ascii() {
        assert!(IdempotencyKey::parse("8f14e45f-ceea-467f").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(65)).is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
    }

    #[test]
    fn quantity_range_is_inclusive() {
        assert_eq!(Quantity::new(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::new(99).map(Quantity::get), Ok(99));
        for bad in [0, 100, -1, i64::MAX, i64::from(u32::MAX) + 1] {
            assert_eq!(Quantity::new(bad), Err(QuantityOutOfRange(bad)));
        }
    }

    #[test]
    fn bundled_catalogue_has_twenty_distinct_priced_products() {
        let catalogue = bundled_catalogue().unwrap();
        assert_eq!(catalogue.len(), 20);
        let ids: HashSet<_> = catalogue.iter().map(|p| p.product_id.clone()).collect();
        assert_eq!(ids.len(), 20);
        assert!(catalogue.iter().all(|p| p.unit_price_minor > 0));
    }

    fn line(id: &str, quantity: i64) -> CartLine {
        CartLine {
            product_id: ProductId::parse(id).unwrap(),
            quantity: Quantity::new(quantity).unwrap(),
            // A stale or forged price on the line must not matter.
            unit_price_minor: 1,
            currency: Currency::Usd,
            updated_at: String::new(),
            line_status: LineStatus::Pending,
        }
    }

    fn catalogue() -> HashMap<ProductId, Product> {
        bundled_catalogue()
            .unwrap()
            .into_iter()
            .map(|p| (p.product_id.clone(), p))
            .collect()
    }

    #[test]
    fn pricing_uses_catalogue_prices_not_line_prices() {
        let (lines, total, currency) = price_lines(
            &[line("desk-oak-140", 2), line("lamp-desk-clip", 3)],
            &catalogue(),
        )
        .unwrap();
        assert_eq!(lines[0].line_total_minor, 2 * 54_900);
        assert_eq!(lines[1].line_total_minor, 3 * 3_499);
        assert_eq!(total, 2 * 54_900 + 3 * 3_499);
        assert_eq!(currency, Currency::Usd);
        assert_eq!(lines[0].name, "Oak standing desk");
    }

    #[test]
    fn pricing_rejects_unknown_products_and_overflow() {
        let mut cat = catalogue();
        assert_eq!(
            price_lines(&[line("gone", 1)], &cat),
            Err(PricingError::UnknownProduct(
                ProductId::parse("gone").unwrap()
            ))
        );
        let desk = ProductId::parse("desk-oak-140").unwrap();
        if let Some(p) = cat.get_mut(&desk) {
            p.unit_price_minor = i64::MAX / 2;
        }
        assert_eq!(
            price_lines(&[line("desk-oak-140", 3)], &cat),
            Err(PricingError::PriceOutOfRange(desk))
        );
    }
}
