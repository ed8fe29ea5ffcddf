//! DynamoDB access: every read and write the service makes, over the layout in
//! [`crate::keys`].
//!
//! Writes that must not race are conditional, never read-then-write: placing an order
//! is one transaction that creates the order only if it does not exist and empties the
//! cart only if it is still the version that was priced; completing an order is one conditional
//! `UpdateItem` that only applies to an order still `ORDERED`.

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, Put, PutRequest, ReturnValue,
    TransactWriteItem, Update, WriteRequest,
};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::{
    Cart, CartLine, Order, OrderId, OrderStatus, OrderSummary, Product, ProductId, UserId,
};
use crate::keys::{self, Entity, ItemKey};
use crate::message::OrderMessage;
use middleware::idempotency::{ItemWrite, failed_condition, is_transient_cancellation, transact};

type Item = HashMap<String, AttributeValue>;

/// Attempts at a batch operation whose unprocessed items are retried with backoff.
const BATCH_ATTEMPTS: u32 = 6;

/// A failure to read or write the table.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The call failed (network, throttling beyond the SDK's retries, permissions...).
    #[error("DynamoDB {operation} failed: {message}")]
    Aws {
        /// The API operation.
        operation: &'static str,
        /// The SDK error with its context (code, request id).
        message: String,
    },
    /// An item does not have the shape this build expects.
    #[error("stored {what} is malformed: {source}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// The decoding error.
        #[source]
        source: serde_dynamo::Error,
    },
    /// A batch operation kept returning unprocessed items.
    #[error(
        "DynamoDB {operation} left {remaining} items unprocessed after {BATCH_ATTEMPTS} attempts"
    )]
    Unprocessed {
        /// The API operation.
        operation: &'static str,
        /// How many items were left.
        remaining: usize,
    },
}

fn aws_error<E, R>(operation: &'static str) -> impl FnOnce(SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: Debug,
{
    move |error| StoreError::Aws {
        operation,
        message: DisplayErrorContext(&error).to_string(),
    }
}

fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|source| StoreError::Corrupt { what, source })
}

fn decode<T: serde::de::DeserializeOwned>(what: &'static str, item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|source| StoreError::Corrupt { what, source })
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Why an order could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateOrderError {
    /// An order with this id exists (a concurrent retry with the same idempotency key).
    #[error("order already exists")]
    OrderExists,
    /// The cart changed between reading and ordering; nothing was written.
    #[error("the cart changed while the order was being placed")]
    CartChanged,
    /// The transaction kept being cancelled for a transient reason; nothing was
    /// written, and trying again later can succeed.
    #[error(
        "the order transaction was cancelled {attempts} times for a transient reason ({codes})"
    )]
    Conflict {
        /// The cancellation codes of the last attempt.
        codes: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The table could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What completing an order did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The order moved from ORDERED to PROCESSED (and so its lines to ORDERED).
    Completed,
    /// The order was already PROCESSED: a redelivered message, nothing changed.
    AlreadyCompleted,
}

/// Why an order could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum CompleteError {
    /// No order has the message's id.
    #[error("order {0} does not exist")]
    OrderNotFound(OrderId),
    /// The order exists but does not match the message (owner or lines differ).
    #[error("order {0} does not match the message (user or lines differ)")]
    Mismatch(OrderId),
    /// The table could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A page of a user's orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    /// The orders, as `GSI1` projects them.
    pub orders: Vec<OrderSummary>,
    /// Pass to the next call to continue after the last order; `None` at the end.
    pub next_cursor: Option<String>,
}

/// The service's view of its DynamoDB table.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    table: String,
}

impl Store {
    /// Wraps a client and the table name.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes the products (overwriting same ids), 25 per `BatchWriteItem`.
    ///
    /// # Errors
    /// [`StoreError`] if a call fails or items stay unprocessed.
    pub async fn put_products(&self, products: &[Product]) -> Result<usize, StoreError> {
        for chunk in products.chunks(25) {
            let mut requests = Vec::with_capacity(chunk.len());
            for product in chunk {
                let mut item = encode("product", product)?;
                keys::product(&product.product_id).stamp(Entity::Product, &mut item);
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| StoreError::Aws {
                        operation: "BatchWriteItem",
                        message: e.to_string(),
                    })?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            until_processed(
                "BatchWriteItem",
                HashMap::from([(self.table.clone(), requests)]),
                |pending| pending.values().map(Vec::len).sum(),
                |pending| {
                    let sent = self
                        .client
                        .batch_write_item()
                        .set_request_items(Some(pending))
                        .send();
                    async move {
                        let output = sent.await.map_err(aws_error("BatchWriteItem"))?;
                        Ok(((), output.unprocessed_items.unwrap_or_default()))
                    }
                },
                |()| Ok(()),
            )
            .await?;
        }
        Ok(products.len())
    }

    /// The whole catalogue, in product-id order.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails or an item is malformed.
    pub async fn list_products(&self) -> Result<Vec<Product>, StoreError> {
        let mut products = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(keys::GSI1)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::GSI1PK)
                .expression_attribute_values(":pk", s(keys::catalogue_partition()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(aws_error("Query"))?;
            for item in output.items.unwrap_or_default() {
                products.push(decode("product", item)?);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(products);
            }
        }
    }

    /// One product, if it exists.
    ///
    /// # Errors
    /// [`StoreError`] if the read fails or the item is malformed.
    pub async fn get_product(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        self.get(&keys::product(id), "product").await
    }

    /// The products that exist among `ids`, read consistently in `BatchGetItem`s.
    ///
    /// # Errors
    /// [`StoreError`] if a read fails, keys stay unprocessed, or an item is malformed.
    pub async fn get_products(
        &self,
        ids: &[ProductId],
    ) -> Result<HashMap<ProductId, Product>, StoreError> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(
                    chunk.iter().map(|id| keys::product(id).primary()).collect(),
                ))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Aws {
                    operation: "BatchGetItem",
                    message: e.to_string(),
                })?;
            until_processed(
                "BatchGetItem",
                HashMap::from([(self.table.clone(), request)]),
                |pending| pending.values().map(|keys| keys.keys.len()).sum(),
                |pending| {
                    let sent = self
                        .client
                        .batch_get_item()
                        .set_request_items(Some(pending))
                        .send();
                    async move {
                        let output = sent.await.map_err(aws_error("BatchGetItem"))?;
                        Ok((
                            output.responses.unwrap_or_default(),
                            output.unprocessed_keys.unwrap_or_default(),
                        ))
                    }
                },
                |responses| {
                    for item in responses.into_values().flatten() {
                        let product: Product = decode("product", item)?;
                        found.insert(product.product_id.clone(), product);
                    }
                    Ok(())
                },
            )
            .await?;
        }
        Ok(found)
    }

    /// A user's cart, read consistently (one `GetItem`), its lines in product-id
    /// order, with its version.
    ///
    /// # Errors
    /// [`StoreError`] if the read fails or a line is malformed.
    pub async fn cart(&self, user: &UserId) -> Result<Cart, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::cart(user).primary()))
            .consistent_read(true)
            .send()
            .await
            .map_err(aws_error("GetItem"))?;
        let Some(item) = output.item else {
            return Ok(Cart::default());
        };
        let version = item
            .get(keys::CART_VERSION)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut lines = item
            .into_iter()
            .filter(|(name, _)| name.starts_with(keys::CART_LINE_PREFIX))
            .map(|(name, value)| match value {
                AttributeValue::M(line) => decode("cart line", line),
                _ => Err(StoreError::Corrupt {
                    what: "cart line",
                    source: serde::de::Error::custom(format!("{name} is not a map")),
                }),
            })
            .collect::<Result<Vec<CartLine>, _>>()?;
        lines.sort_by(|a, b| a.product_id.as_str().cmp(b.product_id.as_str()));
        Ok(Cart { lines, version })
    }

    /// Sets a cart line (replacing the quantity of an existing one), in one
    /// `UpdateItem` on the cart that also counts its version. Returns `true` if the
    /// line is new.
    ///
    /// # Errors
    /// [`StoreError`] if the write fails.
    pub async fn put_cart_line(&self, user: &UserId, line: &CartLine) -> Result<bool, StoreError> {
        let attribute = keys::cart_line_attribute(&line.product_id);
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::cart(user).primary()))
            .update_expression(
                "SET #line = :line, #entity = :entity, user_id = :user ADD #version :one",
            )
            .expression_attribute_names("#line", &attribute)
            .expression_attribute_names("#entity", keys::ENTITY)
            .expression_attribute_names("#version", keys::CART_VERSION)
            .expression_attribute_values(":line", AttributeValue::M(encode("cart line", line)?))
            .expression_attribute_values(":entity", s(Entity::Cart.as_str()))
            .expression_attribute_values(":user", s(user.as_str()))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await
            .map_err(aws_error("UpdateItem"))?;
        Ok(output
            .attributes
            .is_none_or(|old| !old.contains_key(&attribute)))
    }

    /// Removes a cart line. Returns `false` if there was none.
    ///
    /// # Errors
    /// [`StoreError`] if the write fails.
    pub async fn delete_cart_line(
        &self,
        user: &UserId,
        product: &ProductId,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::cart(user).primary()))
            .condition_expression("attribute_exists(#line)")
            .update_expression("REMOVE #line ADD #version :one")
            .expression_attribute_names("#line", keys::cart_line_attribute(product))
            .expression_attribute_names("#version", keys::CART_VERSION)
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(aws_error("UpdateItem")(e)),
        }
    }

    /// An order, read consistently: one `GetItem` (the order is one item, its lines
    /// inside; each line's status follows the order's).
    ///
    /// # Errors
    /// [`StoreError`] if the read fails or the item is malformed.
    pub async fn get_order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        Ok(self
            .get::<Order>(&keys::order_header(id), "order")
            .await?
            .map(Order::with_line_status))
    }

    /// A user's orders, newest first, `limit` at a time.
    ///
    /// `after` is a cursor from a previous page. The listing reads GSI1, which is
    /// eventually consistent: an order placed a moment ago may not be listed yet.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails or an item is malformed.
    pub async fn orders_of_user(
        &self,
        user: &UserId,
        limit: i32,
        after: Option<(i64, OrderId)>,
    ) -> Result<OrderPage, StoreError> {
        let start = after.map(|(placed_at_ms, id)| {
            let mut key = Item::new();
            keys::order(&id, user, placed_at_ms).stamp(Entity::Order, &mut key);
            key.remove(keys::ENTITY);
            key
        });
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", keys::GSI1PK)
            .expression_attribute_names("#sk", keys::GSI1SK)
            .expression_attribute_values(":pk", s(keys::user_partition(user)))
            .expression_attribute_values(":prefix", s(keys::USER_ORDER_PREFIX))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(aws_error("Query"))?;
        let orders = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| decode("order summary", item))
            .collect::<Result<Vec<OrderSummary>, _>>()?;
        let next_cursor = output
            .last_evaluated_key
            .as_ref()
            .and_then(|key| key.get(keys::GSI1SK))
            .and_then(|v| v.as_s().ok())
            .and_then(|sk| sk.strip_prefix(keys::USER_ORDER_PREFIX))
            .map(str::to_owned);
        Ok(OrderPage {
            orders,
            next_cursor,
        })
    }

    /// Creates an order from exactly `cart` in one transaction of two items: the
    /// order, one item with its lines inside (only if its id is new), and the cart
    /// emptied (only if its version is still the one that was priced, so exactly the
    /// priced lines leave it). The cart item stays, its version counting on, so a
    /// stale request can never empty a later cart that happens to look the same.
    ///
    /// # Errors
    /// [`CreateOrderError::OrderExists`] if the id is taken,
    /// [`CreateOrderError::CartChanged`] if the cart changed, or a store error.
    pub async fn create_order(
        &self,
        order: &Order,
        cart: &Cart,
        placed_at_ms: i64,
    ) -> Result<(), CreateOrderError> {
        let header = order_item(order, placed_at_ms)?;
        let mut empty = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::cart(&order.user_id).primary()))
            .condition_expression("#version = :version")
            .expression_attribute_names("#version", keys::CART_VERSION)
            .expression_attribute_values(":version", n(cart.version))
            .expression_attribute_values(":one", n(1));
        let mut removed = Vec::with_capacity(cart.lines.len());
        for (i, line) in cart.lines.iter().enumerate() {
            removed.push(format!("#l{i}"));
            empty = empty.expression_attribute_names(
                format!("#l{i}"),
                keys::cart_line_attribute(&line.product_id),
            );
        }
        let empty = empty
            .update_expression(format!("REMOVE {} ADD #version :one", removed.join(", ")))
            .build()
            .map_err(build_error("TransactWriteItems"))?;
        let items = vec![
            put_new(&self.table, header)?,
            TransactWriteItem::builder().update(empty).build(),
        ];
        let (sent, attempt) = transact(&self.client, &items).await;
        match sent {
            Ok(_) => Ok(()),
            Err(error) => match cancellation_reasons(&error) {
                Some(reasons) if is_transient_cancellation(reasons) => {
                    Err(CreateOrderError::Conflict {
                        codes: reasons
                            .iter()
                            .map(|r| r.code().unwrap_or("None"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        attempts: attempt,
                    })
                }
                // Item 0 is the order header: its id exists already.
                Some(reasons) if reasons.first().is_some_and(failed_condition) => {
                    Err(CreateOrderError::OrderExists)
                }
                Some(reasons) if reasons.iter().any(failed_condition) => {
                    Err(CreateOrderError::CartChanged)
                }
                _ => Err(aws_error("TransactWriteItems")(error).into()),
            },
        }
    }

    /// The one conditional `UpdateItem` that applies an order message: the order moves
    /// from ORDERED to PROCESSED with `processed_at`, and `completions` counts the
    /// application. It applies only to an order still ORDERED, owned by the message's
    /// user, with as many lines as the message. The idempotency layer adds its record
    /// to the same write.
    pub fn completion_write(&self, message: &OrderMessage, now: &Timestamp) -> ItemWrite {
        ItemWrite {
            key: keys::order_header(&message.order_id).primary(),
            condition: Some(
                "#status = :ordered AND user_id = :user AND line_count = :line_count".to_owned(),
            ),
            // `completions` makes exactly-once observable: a second application, were
            // the guards ever broken, would leave 2.
            set: vec![
                "#status = :processed".to_owned(),
                "processed_at = :now".to_owned(),
            ],
            add: vec!["completions :one".to_owned()],
            remove: Vec::new(),
            names: HashMap::from([("#status".to_owned(), keys::ORDER_STATUS.to_owned())]),
            values: HashMap::from([
                (":ordered".to_owned(), s(OrderStatus::Ordered.as_str())),
                (":processed".to_owned(), s(OrderStatus::Processed.as_str())),
                (":user".to_owned(), s(message.user_id.as_str())),
                (":line_count".to_owned(), n(message.lines.len())),
                (":now".to_owned(), s(now.rfc3339.clone())),
                (":one".to_owned(), n(1)),
            ]),
        }
    }

    /// What a refused [`Store::completion_write`] means, read from the order as the
    /// refusal returned it (no second read): already PROCESSED (a redelivery whose
    /// idempotency record has expired), missing, or different from the message.
    ///
    /// # Errors
    /// [`CompleteError`] unless the order is already PROCESSED.
    pub fn completion_refused(id: &OrderId, stored: Item) -> Result<Completion, CompleteError> {
        if stored.is_empty() {
            return Err(CompleteError::OrderNotFound(*id));
        }
        let status = stored.get(keys::ORDER_STATUS).and_then(|v| v.as_s().ok());
        if status.map(String::as_str) == Some(OrderStatus::Processed.as_str()) {
            Ok(Completion::AlreadyCompleted)
        } else {
            Err(CompleteError::Mismatch(*id))
        }
    }

    /// The table's client, for middleware that keeps records in the same table.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        key: &ItemKey,
        what: &'static str,
    ) -> Result<Option<T>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key.primary()))
            .consistent_read(true)
            .send()
            .await
            .map_err(aws_error("GetItem"))?;
        output.item.map(|item| decode(what, item)).transpose()
    }
}

/// The order as its one item: keys, entity, `line_count`, and the lines without a
/// status of their own (a line's status follows the order's).
fn order_item(order: &Order, placed_at_ms: i64) -> Result<Item, StoreError> {
    let mut item = encode("order", order)?;
    keys::order(&order.order_id, &order.user_id, placed_at_ms).stamp(Entity::Order, &mut item);
    item.insert("line_count".to_owned(), n(order.lines.len()));
    if let Some(AttributeValue::L(lines)) = item.get_mut("lines") {
        for line in lines {
            if let AttributeValue::M(line) = line {
                line.remove(keys::LINE_STATUS);
            }
        }
    }
    Ok(item)
}

fn put_new(table: &str, item: Item) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", keys::PK)
        .build()
        .map_err(build_error("TransactWriteItems"))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn build_error(
    operation: &'static str,
) -> impl Fn(aws_sdk_dynamodb::error::BuildError) -> StoreError {
    move |e| StoreError::Aws {
        operation,
        message: e.to_string(),
    }
}

/// The per-item reasons of a cancelled transaction, if that is what `error` is.
fn cancellation_reasons<R>(
    error: &SdkError<TransactWriteItemsError, R>,
) -> Option<&[CancellationReason]> {
    match error.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(e) => Some(e.cancellation_reasons()),
        _ => None,
    }
}

/// Runs a batch operation (`BatchWriteItem`, `BatchGetItem`) until nothing is left
/// unprocessed: `call` sends what is pending and returns its answer and what the table
/// left, `answered` takes each answer, and what is left is sent again with backoff, at
/// most [`BATCH_ATTEMPTS`] times in all.
async fn until_processed<P, R, Fut>(
    operation: &'static str,
    mut pending: P,
    left: impl Fn(&P) -> usize,
    call: impl Fn(P) -> Fut,
    mut answered: impl FnMut(R) -> Result<(), StoreError>,
) -> Result<(), StoreError>
where
    Fut: Future<Output = Result<(R, P), StoreError>>,
{
    for attempt in 0..BATCH_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt)).await;
        }
        let (answer, unprocessed) = call(pending).await?;
        answered(answer)?;
        pending = unprocessed;
        if left(&pending) == 0 {
            return Ok(());
        }
    }
    Err(StoreError::Unprocessed {
        operation,
        remaining: left(&pending),
    })
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(25u64 << attempt.min(6))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn run<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    }

    /// A table that processes `per_call` items of what it is sent and leaves the rest.
    fn table(
        per_call: usize,
    ) -> impl Fn(usize) -> std::future::Ready<Result<(usize, usize), StoreError>> {
        move |pending: usize| {
            let done = pending.min(per_call);
            std::future::ready(Ok((done, pending - done)))
        }
    }

    #[test]
    fn what_a_batch_leaves_unprocessed_is_sent_again_until_none_is_left() {
        let answered = Mutex::new(Vec::new());
        run(until_processed(
            "BatchWriteItem",
            25,
            |left| *left,
            table(10),
            |done| {
                answered.lock().unwrap().push(done);
                Ok(())
            },
        ))
        .unwrap();
        assert_eq!(answered.into_inner().unwrap(), [10, 10, 5]);
    }

    #[test]
    fn items_still_unprocessed_after_the_last_attempt_are_an_error_naming_them() {
        let calls = Mutex::new(0);
        let error = run(until_processed(
            "BatchGetItem",
            100,
            |left| *left,
            table(1),
            |_| {
                *calls.lock().unwrap() += 1;
                Ok(())
            },
        ))
        .unwrap_err();
        assert_eq!(*calls.lock().unwrap(), BATCH_ATTEMPTS);
        assert!(
            matches!(
                error,
                StoreError::Unprocessed {
                    operation: "BatchGetItem",
                    remaining,
                } if remaining == 100 - BATCH_ATTEMPTS as usize
            ),
            "{error}"
        );
    }

    #[test]
    fn an_answer_that_does_not_decode_stops_the_retries() {
        let error = run(until_processed(
            "BatchGetItem",
            3,
            |left| *left,
            table(1),
            |_| {
                Err(StoreError::Aws {
                    operation: "BatchGetItem",
                    message: "malformed".into(),
                })
            },
        ))
        .unwrap_err();
        assert!(matches!(error, StoreError::Aws { .. }), "{error}");
    }
}
