//! The bench's inputs, generated once from a seed and handed to every implementation:
//! orders, the DynamoDB-stream batches that announce them, the SQS batches that carry
//! their messages, and the table items a consumer needs to complete them, in the shape
//! of each table design ([`Design`]).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde_json::{Value, json};

use crate::capacity::{TableShape, WriteOutcome, Written, write_cost};

/// How a design stores an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// One item, its lines inside, their status following the order's (this
    /// repository's model); `GSI1` projects what listing needs.
    OneItem,
    /// The workshop's: an order header plus one item per line, each with its status;
    /// `GSI1` projects `ALL`.
    Workshop,
}

/// An order of the bench.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOrder {
    /// Its id (a UUID).
    pub order_id: String,
    /// Its user.
    pub user_id: String,
    /// (product id, name, quantity, unit price in minor units).
    pub lines: Vec<(String, String, u32, i64)>,
    /// When it was placed.
    pub placed_at: String,
}

const PRODUCTS: [(&str, &str, i64); 6] = [
    ("desk-oak-140", "Oak standing desk", 54_900),
    ("lamp-led-arc", "LED arc floor lamp", 12_950),
    ("mug-stoneware-set", "Stoneware mug set", 3_600),
    ("chair-mesh-pro", "Ergonomic mesh chair", 32_900),
    ("webcam-1080", "1080p webcam", 6_900),
    ("mat-desk-felt", "Felt desk mat", 2_900),
];

impl BenchOrder {
    /// Order `index` of the run seeded `seed`: one to three lines.
    pub fn generate(seed: u64, index: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed.wrapping_mul(1_000_003).wrapping_add(index));
        let count = rng.usize(1..=3);
        let first = rng.usize(..PRODUCTS.len());
        let lines = (0..count)
            .map(|i| {
                let (id, name, price) = PRODUCTS[(first + i) % PRODUCTS.len()];
                (id.to_owned(), name.to_owned(), rng.u32(1..=3), price)
            })
            .collect();
        Self {
            order_id: uuid::Uuid::from_u64_pair(seed, index).to_string(),
            user_id: format!("bench-user-{index}"),
            lines,
            placed_at: "2026-11-29T10:00:00.000Z".to_owned(),
        }
    }

    fn total(&self) -> i64 {
        self.lines
            .iter()
            .map(|(_, _, quantity, price)| i64::from(*quantity) * price)
            .sum()
    }

    /// The order message, as `src/message.rs` writes it.
    pub fn message(&self) -> String {
        json!({
            "version": 1,
            "order_id": self.order_id,
            "user_id": self.user_id,
            "lines": self.lines.iter().map(|(product, _, quantity, price)| json!({
                "product_id": product, "quantity": quantity, "unit_price_minor": price,
            })).collect::<Vec<_>>(),
            "total_minor": self.total(),
            "currency": "USD",
            "placed_at": self.placed_at,
        })
        .to_string()
    }

    /// The order's (header) item as `design` writes it (stream-JSON shape).
    fn header_json(&self, design: Design) -> Value {
        let s = |v: &str| json!({ "S": v });
        let n = |v: i64| json!({ "N": v.to_string() });
        json!({
            "PK": s(&format!("ORDER#{}", self.order_id)),
            "SK": s("ORDER"),
            "entity": s("ORDER"),
            "GSI1PK": s(&format!("USER#{}", self.user_id)),
            "GSI1SK": s(&format!("ORDER#1795946400000#{}", self.order_id)),
            "order_id": s(&self.order_id),
            "user_id": s(&self.user_id),
            "order_status": s("ORDERED"),
            "lines": { "L": self.lines.iter().map(|(product, name, quantity, price)| {
                let mut line = json!({
                    "product_id": s(product),
                    "name": s(name),
                    "quantity": n(i64::from(*quantity)),
                    "unit_price_minor": n(*price),
                    "line_total_minor": n(i64::from(*quantity) * price),
                });
                if design == Design::Workshop {
                    line["line_status"] = s("PENDING");
                }
                json!({ "M": line })
            }).collect::<Vec<_>>() },
            "line_count": n(self.lines.len() as i64),
            "total_minor": n(self.total()),
            "currency": s("USD"),
            "placed_at": s(&self.placed_at),
        })
    }

    /// The items a consumer completes: the order, and in the workshop's design one
    /// item per line.
    pub fn items(&self, design: Design) -> Vec<HashMap<String, AttributeValue>> {
        self.items_json(design).iter().map(attributes).collect()
    }

    fn items_json(&self, design: Design) -> Vec<Value> {
        let mut items = vec![self.header_json(design)];
        if design == Design::OneItem {
            return items;
        }
        for (product, name, quantity, price) in &self.lines {
            items.push(json!({
                "PK": { "S": format!("ORDER#{}", self.order_id) },
                "SK": { "S": format!("LINE#{product}") },
                "entity": { "S": "ORDER_LINE" },
                "order_id": { "S": self.order_id },
                "user_id": { "S": self.user_id },
                "product_id": { "S": product },
                "name": { "S": name },
                "quantity": { "N": quantity.to_string() },
                "unit_price_minor": { "N": price.to_string() },
                "line_total_minor": { "N": (i64::from(*quantity) * price).to_string() },
                "line_status": { "S": "PENDING" },
            }));
        }
        items
    }

    /// The workshop's cart: one item per line.
    fn cart_line_items(&self) -> Vec<Value> {
        self.lines
            .iter()
            .map(|(product, _, quantity, price)| {
                let mut item = self.cart_line(product, *quantity, *price);
                item["PK"] = json!({ "S": format!("USER#{}", self.user_id) });
                item["SK"] = json!({ "S": format!("CART#{product}") });
                item["entity"] = json!({ "S": "CART_LINE" });
                item["user_id"] = json!({ "S": self.user_id });
                item
            })
            .collect()
    }

    /// The one-item design's cart holding the first `lines` of this order's lines, at
    /// `version`, as `src/store.rs` keeps it.
    fn cart_item(&self, lines: usize, version: usize) -> Value {
        let mut item = json!({
            "PK": { "S": format!("USER#{}", self.user_id) },
            "SK": { "S": "CART" },
            "entity": { "S": "CART" },
            "user_id": { "S": self.user_id },
            "version": { "N": version.to_string() },
        });
        for (product, _, quantity, price) in self.lines.iter().take(lines) {
            item[format!("LINE#{product}")] =
                json!({ "M": self.cart_line(product, *quantity, *price) });
        }
        item
    }

    /// A cart line's own attributes, as `orders-api` stores a `CartLine`.
    fn cart_line(&self, product: &str, quantity: u32, price: i64) -> Value {
        json!({
            "product_id": { "S": product },
            "quantity": { "N": quantity.to_string() },
            "unit_price_minor": { "N": price.to_string() },
            "currency": { "S": "USD" },
            "updated_at": { "S": self.placed_at },
            "line_status": { "S": "PENDING" },
        })
    }

    /// The write units of filling the cart (a write per line) and of placing the
    /// order (one transaction: the order's items put, the cart emptied), counted by
    /// DynamoDB's rules over the items `design` writes, with `shape`'s index
    /// projections. The workshop keeps a cart line per item and deletes each; the
    /// one-item design keeps the cart as one item and empties it.
    pub fn placing_units(&self, design: Design, table: &str, shape: &TableShape) -> (u64, u64) {
        let written = |operation: &str, before: Option<&Value>, after: Option<&Value>| Written {
            operation: operation.to_owned(),
            table: table.to_owned(),
            before: before.and_then(|i| i.as_object().cloned()),
            after: after.and_then(|i| i.as_object().cloned()),
        };
        let shapes = |name: &str| (name == table).then(|| shape.clone());
        let alone = |w: Written| write_cost(&[w], false, WriteOutcome::Applied, &shapes).total();
        let mut placing: Vec<Written> = self
            .items_json(design)
            .iter()
            .map(|i| written("Put", None, Some(i)))
            .collect();
        let cart_units = match design {
            Design::Workshop => {
                let lines = self.cart_line_items();
                placing.extend(lines.iter().map(|i| written("Delete", Some(i), None)));
                lines
                    .iter()
                    .map(|i| alone(written("Put", None, Some(i))))
                    .sum()
            }
            Design::OneItem => {
                let n = self.lines.len();
                placing.push(written(
                    "Update",
                    Some(&self.cart_item(n, n)),
                    Some(&self.cart_item(0, n + 1)),
                ));
                (0..n)
                    .map(|k| {
                        let before = (k > 0).then(|| self.cart_item(k, k));
                        alone(written(
                            "Update",
                            before.as_ref(),
                            Some(&self.cart_item(k + 1, k + 1)),
                        ))
                    })
                    .sum()
            }
        };
        let placing_units = write_cost(&placing, true, WriteOutcome::Applied, &shapes).total();
        (cart_units, placing_units)
    }
}

/// An item in stream JSON (`{"S": ...}`, `{"N": ...}`, `{"L": ...}`, `{"M": ...}`) as
/// SDK attribute values.
fn attributes(item: &Value) -> HashMap<String, AttributeValue> {
    item.as_object()
        .map(|fields| {
            fields
                .iter()
                .map(|(k, v)| (k.clone(), attribute(v)))
                .collect()
        })
        .unwrap_or_default()
}

fn attribute(value: &Value) -> AttributeValue {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    match value.as_object().and_then(|o| o.iter().next()) {
        Some((kind, v)) if kind == "S" => AttributeValue::S(text(v)),
        Some((kind, v)) if kind == "N" => AttributeValue::N(text(v)),
        Some((kind, v)) if kind == "L" => AttributeValue::L(
            v.as_array()
                .map(|items| items.iter().map(attribute).collect())
                .unwrap_or_default(),
        ),
        Some((kind, v)) if kind == "M" => AttributeValue::M(attributes(v)),
        _ => AttributeValue::Null(true),
    }
}

/// A DynamoDB-stream event announcing `orders` as `design` stores them (INSERTs,
/// sequence numbers from `first_sequence`), exactly as Lambda delivers it.
pub fn stream_event(
    orders: &[BenchOrder],
    design: Design,
    first_sequence: u64,
    stream_arn: &str,
) -> String {
    let records: Vec<Value> = orders
        .iter()
        .enumerate()
        .map(|(i, order)| {
            let image = order.header_json(design);
            json!({
                "eventID": uuid::Uuid::from_u64_pair(first_sequence, i as u64).simple().to_string(),
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "eu-west-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_795_946_400,
                    "Keys": { "PK": image["PK"], "SK": image["SK"] },
                    "NewImage": image,
                    "SequenceNumber": format!("{:021}", first_sequence + i as u64),
                    "SizeBytes": 600,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": stream_arn,
            })
        })
        .collect();
    json!({ "Records": records }).to_string()
}

/// An SQS event carrying the messages of `orders`, as Lambda delivers it.
pub fn sqs_event(orders: &[BenchOrder], queue_arn: &str) -> String {
    let records: Vec<Value> = orders
        .iter()
        .map(|order| {
            json!({
                "messageId": uuid::Uuid::new_v4().to_string(),
                "receiptHandle": "AQEB-bench",
                "body": order.message(),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795946400000",
                    "SenderId": "AIDA-bench",
                    "ApproximateFirstReceiveTimestamp": "1795946400001",
                },
                "messageAttributes": {
                    "order_id": { "stringValue": order.order_id, "stringListValues": [], "binaryListValues": [], "dataType": "String" },
                },
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "eu-west-1",
            })
        })
        .collect();
    json!({ "Records": records }).to_string()
}

/// Writes the orders' items as `design` stores them, 25 per `BatchWriteItem`.
///
/// # Errors
/// A message if a write fails or items stay unprocessed.
pub async fn seed(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    orders: &[BenchOrder],
    design: Design,
) -> Result<(), String> {
    let items: Vec<_> = orders.iter().flat_map(|o| o.items(design)).collect();
    for chunk in items.chunks(25) {
        let writes: Vec<WriteRequest> = chunk
            .iter()
            .filter_map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .ok()?;
                Some(WriteRequest::builder().put_request(put).build())
            })
            .collect();
        let output = client
            .batch_write_item()
            .request_items(table, writes)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
        if output
            .unprocessed_items
            .is_some_and(|left| left.values().any(|v| !v.is_empty()))
        {
            return Err("the emulator left items unprocessed while seeding".to_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_reproducible_and_their_events_carry_them() {
        let order = BenchOrder::generate(5, 7);
        assert_eq!(order, BenchOrder::generate(5, 7));
        assert_ne!(order, BenchOrder::generate(5, 8));
        assert!((1..=3).contains(&order.lines.len()));
        let message: Value = serde_json::from_str(&order.message()).unwrap_or(Value::Null);
        assert_eq!(message["version"], 1);
        assert_eq!(message["order_id"], order.order_id.as_str());
        let stream: Value = serde_json::from_str(&stream_event(
            std::slice::from_ref(&order),
            Design::OneItem,
            100,
            "arn",
        ))
        .unwrap_or(Value::Null);
        let image = &stream["Records"][0]["dynamodb"]["NewImage"];
        assert_eq!(image["order_status"]["S"], "ORDERED");
        assert_eq!(
            image["lines"]["L"].as_array().map(Vec::len),
            Some(order.lines.len())
        );
        let sqs: Value = serde_json::from_str(&sqs_event(std::slice::from_ref(&order), "arn"))
            .unwrap_or(Value::Null);
        assert_eq!(sqs["Records"][0]["body"], order.message());
        // The workshop's header and one item per line, with the key attributes; the
        // one-item design's single item.
        assert_eq!(order.items(Design::OneItem).len(), 1);
        let items = order.items(Design::Workshop);
        assert_eq!(items.len(), 1 + order.lines.len());
        assert!(
            items
                .iter()
                .all(|i| i.contains_key("PK") && i.contains_key("SK"))
        );
        assert!(
            matches!(items[0].get("lines"), Some(AttributeValue::L(l)) if l.len() == order.lines.len())
        );
    }

    #[test]
    fn placing_costs_what_each_design_writes_by_dynamodbs_rules() {
        use crate::capacity::{IndexShape, Projection};
        let order = (0..)
            .map(|i| BenchOrder::generate(1, i))
            .find(|o| o.lines.len() == 2)
            .unwrap_or_else(|| BenchOrder::generate(1, 0));
        assert_eq!(order.lines.len(), 2);
        let shape = |projection: Projection| TableShape {
            keys: vec!["PK".to_owned(), "SK".to_owned()],
            indexes: vec![IndexShape {
                name: "GSI1".to_owned(),
                keys: vec!["GSI1PK".to_owned(), "GSI1SK".to_owned()],
                projection,
            }],
        };
        let include = Projection::Include(["order_status".to_owned()].into_iter().collect());
        // The cart: a write per line. Placing, one item: the order put and the cart
        // emptied in a transaction (2 units each), plus the order's index entry.
        assert_eq!(
            order.placing_units(Design::OneItem, "t", &shape(include)),
            (2, 2 * 2 + 1)
        );
        // The workshop: the header, two line items and two deletes, doubled, plus the
        // header's index entry (the lines have no index keys).
        assert_eq!(
            order.placing_units(Design::Workshop, "t", &shape(Projection::All)),
            (2, 2 * 5 + 1)
        );
    }
}
