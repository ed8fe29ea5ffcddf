//! Property tests (proptest, stable Rust). CI runs proptest's default case count;
//! `scripts/fuzz` runs at least 100 000 cases per property.
//!
//! - The API never answers 5xx and never panics, whatever the method, path, headers,
//!   query or body, over a table that answers every call (an empty, always-available
//!   table: the API is the unit under test, so its store is canned here).
//! - An order message decodes from any text without panicking, and every valid message
//!   survives its own JSON.
//! - The stream function, over any batch of stream records (orders, other items,
//!   garbage), never panics, reports at most one failure, and forwards exactly the
//!   orders before the first record it cannot read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use ecommerce_api::api::{ApiRequest, Method, OrdersApi};
use ecommerce_api::domain::{Order, OrderId, OrderLine, OrderStatus};
use ecommerce_api::message::OrderMessage;
use ecommerce_api::order_queue::{OrderQueue, SendFailure};
use ecommerce_api::pipeline::forward::forward_orders;
use ecommerce_api::store::Store;
use proptest::prelude::*;
use serde_json::{Value, json};

/// A DynamoDB endpoint that answers every call with `200 {}`: no items, every write
/// accepted.
#[derive(Debug, Clone)]
struct EmptyTable;

impl HttpConnector for EmptyTable {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let status = aws_smithy_runtime_api::http::StatusCode::try_from(200u16).unwrap();
        let mut response = aws_smithy_runtime_api::http::Response::new(status, SdkBody::from("{}"));
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for EmptyTable {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

fn api() -> OrdersApi {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .http_client(EmptyTable)
        .build();
    OrdersApi::new(Store::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        "table",
    ))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Text that is often an id, sometimes a near miss, sometimes anything.
fn id_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{1,64}",
        "[A-Za-z0-9_-]{65,70}",
        "[a-z]{1,8}[ ./%#@!é😀][a-z]{0,8}",
        Just(String::new()),
        any::<String>(),
    ]
}

fn uuid_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).simple().to_string()),
        "[0-9a-f-]{0,40}",
        any::<String>(),
    ]
}

fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("loadProducts".to_owned()),
        Just("products".to_owned()),
        Just("cart".to_owned()),
        Just("order".to_owned()),
        Just("orders".to_owned()),
        Just("users".to_owned()),
        id_like(),
        uuid_like(),
    ];
    prop_oneof![
        prop::collection::vec(segment, 0..5).prop_map(|s| format!("/{}", s.join("/"))),
        (id_like(),).prop_map(|(u,)| format!("/cart/{u}")),
        (id_like(), id_like()).prop_map(|(u, p)| format!("/cart/{u}/{p}")),
        (uuid_like(),).prop_map(|(o,)| format!("/orders/{o}")),
        (id_like(),).prop_map(|(u,)| format!("/users/{u}/orders")),
        any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
        id_like().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("product_id".to_owned()),
                    Just("quantity".to_owned()),
                    Just("user_id".to_owned()),
                    any::<String>(),
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        (id_like(), any::<i64>()).prop_map(|(p, q)| json!({"product_id": p, "quantity": q})
            .to_string()
            .into_bytes()),
        (id_like(), -5i64..120).prop_map(|(p, q)| json!({"product_id": p, "quantity": q})
            .to_string()
            .into_bytes()),
        id_like().prop_map(|u| json!({ "user_id": u }).to_string().into_bytes()),
        (16 * 1024usize..17 * 1024).prop_map(|n| vec![b' '; n]),
    ]
}

fn request() -> impl Strategy<Value = ApiRequest> {
    let method = prop_oneof![
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        Just("DELETE".to_owned()),
        Just("PUT".to_owned()),
        Just("PATCH".to_owned()),
        any::<String>(),
    ];
    let header_value = prop_oneof![
        Just("application/json".to_owned()),
        Just("application/json; charset=utf-8".to_owned()),
        id_like(),
        any::<String>(),
    ];
    let headers = prop::collection::btree_map(
        prop_oneof![
            Just("content-type".to_owned()),
            Just("idempotency-key".to_owned()),
            "[a-z-]{1,12}",
        ],
        header_value,
        0..4,
    );
    let query = prop::collection::btree_map(
        prop_oneof![
            Just("limit".to_owned()),
            Just("cursor".to_owned()),
            any::<String>()
        ],
        prop_oneof!["-?[0-9]{1,4}", any::<String>()],
        0..3,
    );
    (method, path(), headers, query, body()).prop_map(|(method, path, headers, query, body)| {
        let mut request = ApiRequest::new(Method::parse(&method), path);
        request.headers = headers.into_iter().collect();
        request.query = query.into_iter().collect();
        request.body = body;
        request
    })
}

proptest! {
    #[test]
    fn the_api_never_answers_5xx_or_panics(request in request()) {
        let api = api();
        let response = runtime().block_on(api.handle(request.clone()));
        prop_assert!(
            (200..500).contains(&response.status),
            "{} for {:?}: {}", response.status, request, response.body
        );
        if response.status >= 400 {
            let body = response.json_body();
            prop_assert!(body["error"].as_str().is_some_and(|c| !c.is_empty()), "{}", response.body);
            prop_assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", response.body);
        } else if !response.body.is_empty() {
            prop_assert!(serde_json::from_str::<Value>(&response.body).is_ok(), "{}", response.body);
        }
    }

    #[test]
    fn a_message_decodes_from_any_text_without_panicking(text in any::<String>()) {
        let _ = OrderMessage::from_json(&text);
    }

    #[test]
    fn every_valid_message_survives_its_own_json(order in order()) {
        let message = OrderMessage::for_order(&order);
        let decoded = OrderMessage::from_json(&message.to_json().unwrap()).unwrap();
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn the_stream_function_forwards_exactly_the_orders_before_the_first_bad_record(
        records in prop::collection::vec(stream_record(), 0..40)
    ) {
        let queue = RecordingQueue::default();
        let event = json!({ "Records": records.iter().enumerate().map(|(i, r)| r.json(i)).collect::<Vec<_>>() });
        let event = serde_json::value::RawValue::from_string(event.to_string()).unwrap();
        let response = runtime().block_on(forward_orders(&queue, &event)).unwrap();
        let first_bad = records.iter().position(|r| matches!(r, Record::Garbage(_)));
        let expected_failure = first_bad.map(|i| format!("{}", 1000 + i));
        let failures: Vec<String> = response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.clone())
            .collect();
        prop_assert_eq!(failures, expected_failure.into_iter().collect::<Vec<_>>());
        let expected: Vec<OrderId> = records[..first_bad.unwrap_or(records.len())]
            .iter()
            .filter_map(|r| match r {
                Record::Order(order) => Some(order.order_id),
                _ => None,
            })
            .collect();
        let sent: Vec<OrderId> = queue.sent.lock().unwrap().iter().map(|m| m.order_id).collect();
        prop_assert_eq!(sent, expected);
    }
}

fn order() -> impl Strategy<Value = Order> {
    let line = (
        "[A-Za-z0-9_-]{1,64}",
        ".{0,40}",
        1u32..=99,
        0i64..10_000_000,
    )
        .prop_map(|(product, name, quantity, price)| {
            serde_json::from_value::<OrderLine>(json!({
                "product_id": product,
                "name": name,
                "quantity": quantity,
                "unit_price_minor": price,
                "line_total_minor": price * i64::from(quantity),
                "line_status": "PENDING",
            }))
            .unwrap()
        });
    (
        any::<u128>(),
        "[A-Za-z0-9_-]{1,64}",
        prop::collection::vec(line, 1..25),
    )
        .prop_map(|(id, user, lines)| {
            let total: i64 = lines.iter().map(|l| l.line_total_minor).sum();
            serde_json::from_value::<Order>(json!({
                "order_id": uuid::Uuid::from_u128(id).to_string(),
                "user_id": user,
                "order_status": OrderStatus::Ordered,
                "lines": lines,
                "total_minor": total,
                "currency": "USD",
                "placed_at": "2026-11-29T10:00:00Z",
            }))
            .unwrap()
        })
}

/// A stream record the test knows the meaning of.
#[derive(Debug, Clone)]
enum Record {
    /// A new ORDERED order: forwarded.
    Order(Box<Order>),
    /// Something else (a cart line, a MODIFY): skipped.
    Other(Value),
    /// A new ORDERED order whose image cannot be read: the first one fails the batch.
    Garbage(Value),
}

impl Record {
    fn json(&self, index: usize) -> Value {
        let sequence = format!("{}", 1000 + index);
        let (event_name, image) = match self {
            Self::Order(order) => {
                let item: serde_dynamo::Item = serde_dynamo::to_item(order.as_ref()).unwrap();
                let mut image = serde_json::to_value(item).unwrap();
                image["entity"] = json!({"S": "ORDER"});
                ("INSERT", image)
            }
            Self::Other(image) => ("MODIFY", image.clone()),
            Self::Garbage(image) => ("INSERT", image.clone()),
        };
        json!({
            "eventID": format!("e{index}"),
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "eu-west-1",
            "dynamodb": {"Keys": {}, "NewImage": image, "SequenceNumber": sequence, "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "eventSourceARN": "arn:aws:dynamodb:eu-west-1:1:table/t/stream/s",
        })
    }
}

fn stream_record() -> impl Strategy<Value = Record> {
    let garbage = (json_value(), any::<String>()).prop_map(|(lines, user)| {
        // An ORDERED order whose lines are anything but a list of lines.
        let lines = match lines {
            Value::Array(_) => json!({"S": "not a list"}),
            other => json!({"S": other.to_string()}),
        };
        json!({
            "entity": {"S": "ORDER"},
            "order_status": {"S": "ORDERED"},
            "order_id": {"S": uuid::Uuid::new_v4().to_string()},
            "user_id": {"S": user},
            "lines": lines,
        })
    });
    let other = prop_oneof![
        Just(json!({"entity": {"S": "CART_LINE"}})),
        Just(json!({"entity": {"S": "ORDER"}, "order_status": {"S": "PROCESSED"}})),
        json_value().prop_map(|v| json!({"entity": {"S": "PRODUCT"}, "x": {"S": v.to_string()}})),
    ];
    prop_oneof![
        6 => order().prop_map(|o| Record::Order(Box::new(o))),
        3 => other.prop_map(Record::Other),
        1 => garbage.prop_map(Record::Garbage),
    ]
}

#[derive(Debug, Default)]
struct RecordingQueue {
    sent: Mutex<Vec<OrderMessage>>,
}

impl OrderQueue for RecordingQueue {
    async fn send_batch(&self, messages: &[OrderMessage]) -> Result<Vec<SendFailure>, String> {
        self.sent.lock().unwrap().extend_from_slice(messages);
        Ok(Vec::new())
    }
}

#[test]
fn the_canned_table_is_empty_and_accepts_writes() {
    // The seam itself: reads find nothing, writes succeed.
    let api = api();
    let rt = runtime();
    let order = rt.block_on(api.handle(ApiRequest::new(
        Method::Get,
        "/orders/0b7c7d1e-2b0f-4f55-9a77-6d1c2f1b6a11",
    )));
    assert_eq!(order.status, 404);
    let load = rt.block_on(api.handle(ApiRequest::new(Method::Post, "/loadProducts")));
    assert_eq!(load.status, 200);
}
