//! The whole order flow against a real moto server with the real SDK clients:
//! API → table → stream → process-cart-products → queue → update-cart-products → table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use ecommerce_api::api::{ApiRequest, ApiResponse, Method};

use aws_sdk_dynamodb::types::AttributeValue;
use ecommerce_api::api::OrdersApi;
use ecommerce_api::pipeline::complete::{self, CompleteMessageError, Completer};
use ecommerce_api::pipeline::forward::forward_orders;
use ecommerce_api::store::Store;
use middleware::idempotency::{Idempotency, IdempotencyConfig};
use serde_json::{Value, json};
use support::{TestEnv, max_receive_count, stream_event};

async fn call(env: &TestEnv, request: ApiRequest) -> (u16, Value, ApiResponse) {
    let response = env.api.handle(request).await;
    (response.status, response.json_body(), response)
}

async fn add_to_cart(env: &TestEnv, user: &str, product: &str, quantity: i64) -> u16 {
    let body = json!({ "product_id": product, "quantity": quantity }).to_string();
    call(
        env,
        ApiRequest::new(Method::Post, format!("/cart/{user}")).json(body),
    )
    .await
    .0
}

async fn place_order(env: &TestEnv, user: &str, key: Option<&str>) -> (u16, Value, ApiResponse) {
    let mut request =
        ApiRequest::new(Method::Post, "/order").json(json!({ "user_id": user }).to_string());
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    call(env, request).await
}

async fn order(env: &TestEnv, id: &str) -> Value {
    let (status, body, _) = call(env, ApiRequest::new(Method::Get, format!("/orders/{id}"))).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The order's item as stored, every attribute.
async fn raw_order(env: &TestEnv, id: &str) -> std::collections::HashMap<String, AttributeValue> {
    aws_sdk_dynamodb::Client::new(&env.sdk)
        .get_item()
        .table_name(env.store.table())
        .key("PK", AttributeValue::S(format!("ORDER#{id}")))
        .key("SK", AttributeValue::S("ORDER".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

fn failed_ids(response: &aws_lambda_events::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

fn failed_sequences(response: &aws_lambda_events::streams::DynamoDbEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect()
}

async fn loaded_env() -> TestEnv {
    let env = TestEnv::new().await;
    let (status, body, _) = call(&env, ApiRequest::new(Method::Post, "/loadProducts")).await;
    assert_eq!((status, &body["loaded"]), (200, &json!(20)));
    env
}

#[tokio::test]
async fn orders_flow_through_the_pipeline_exactly_once() {
    let env = loaded_env().await;
    let (status, body, _) = call(&env, ApiRequest::new(Method::Get, "/products")).await;
    assert_eq!(status, 200);
    assert_eq!(body["products"].as_array().unwrap().len(), 20);

    assert_eq!(add_to_cart(&env, "alice", "desk-oak-140", 2).await, 201);
    assert_eq!(add_to_cart(&env, "alice", "lamp-desk-clip", 1).await, 201);
    assert_eq!(
        add_to_cart(&env, "alice", "desk-oak-140", 3).await,
        200,
        "same product replaces the quantity"
    );
    assert_eq!(add_to_cart(&env, "bob", "mug-stoneware-set", 4).await, 201);

    let (status, cart, _) = call(&env, ApiRequest::new(Method::Get, "/cart/alice")).await;
    assert_eq!(status, 200);
    assert_eq!(cart["lines"].as_array().unwrap().len(), 2);

    // The client sends a total; it is ignored and computed from catalogue prices.
    let (status, placed, response) = call(
        &env,
        ApiRequest::new(Method::Post, "/order")
            .json(r#"{"user_id":"alice","order_total":1}"#)
            .header("Idempotency-Key", "checkout-1"),
    )
    .await;
    assert_eq!(status, 201, "{placed}");
    let alice_order = placed["order_id"].as_str().unwrap().to_owned();
    assert_eq!(placed["total_minor"], 3 * 54_900 + 3_499);
    assert_eq!(placed["order_status"], "ORDERED");
    assert!(
        response
            .headers
            .contains(&("location", format!("/orders/{alice_order}")))
    );

    // A retry with the same key returns the first order, even though the cart is empty now.
    let (status, replay, response) = place_order(&env, "alice", Some("checkout-1")).await;
    assert_eq!(status, 200);
    assert_eq!(replay["order_id"], alice_order.as_str());
    assert!(
        response
            .headers
            .contains(&("idempotent-replayed", "true".to_owned()))
    );
    let (status, cart, _) = call(&env, ApiRequest::new(Method::Get, "/cart/alice")).await;
    assert_eq!((status, cart["lines"].as_array().unwrap().len()), (200, 0));
    let (status, body, _) = place_order(&env, "alice", None).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("CART_EMPTY")));

    let (status, placed, _) = place_order(&env, "bob", None).await;
    assert_eq!(status, 201);
    let bob_order = placed["order_id"].as_str().unwrap().to_owned();

    let before = order(&env, &alice_order).await;
    assert_eq!(before["order_status"], "ORDERED");
    assert!(
        before["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["line_status"] == "PENDING")
    );

    // Stream → process-cart-products. The batch is deliberately unfiltered (products,
    // cart lines, order lines, deletions): the function must pick out the two orders.
    let mut reader = env.stream_reader();
    let records = reader.next_records().await;
    assert!(records.len() > 20, "{} records", records.len());
    let stream_batch = stream_event(&records);
    let response = forward_orders(&env.queue, &stream_batch).await.unwrap();
    assert!(response.batch_item_failures.is_empty());

    let messages = env.receive(&env.queue_url, None).await;
    let mut forwarded: Vec<String> = messages
        .iter()
        .map(|m| {
            m.message_attributes.as_ref().unwrap()["order_id"]
                .string_value
                .clone()
                .unwrap()
        })
        .collect();
    forwarded.sort();
    let mut expected = vec![alice_order.clone(), bob_order.clone()];
    expected.sort();
    assert_eq!(forwarded, expected);

    // Queue → update-cart-products.
    let sqs_batch = env.sqs_event(&messages);
    let response = env.completer.complete_orders(&sqs_batch).await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        failed_ids(&response)
    );
    env.delete_succeeded(&messages, &failed_ids(&response))
        .await;

    let done = order(&env, &alice_order).await;
    assert_eq!(done["order_status"], "PROCESSED");
    assert!(done["processed_at"].is_string());
    assert!(
        done["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["line_status"] == "ORDERED")
    );
    assert_eq!(order(&env, &bob_order).await["order_status"], "PROCESSED");

    let (status, listed, _) = call(&env, ApiRequest::new(Method::Get, "/users/alice/orders")).await;
    assert_eq!(status, 200);
    assert_eq!(listed["orders"].as_array().unwrap().len(), 1);
    assert_eq!(listed["orders"][0]["order_id"], alice_order.as_str());

    // Replays change nothing: the same SQS batch again, then the same stream batch again
    // (Lambda redelivers after a timeout) and the duplicate messages it produces.
    let response = env.completer.complete_orders(&sqs_batch).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let response = forward_orders(&env.queue, &stream_batch).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let duplicates = env.receive(&env.queue_url, None).await;
    assert_eq!(duplicates.len(), 2);
    let response = env
        .completer
        .complete_orders(&env.sqs_event(&duplicates))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    env.delete_succeeded(&duplicates, &[]).await;
    assert_eq!(
        order(&env, &alice_order).await,
        done,
        "a replay must not change the order"
    );

    // The idempotency record was committed on the order itself, in the same write:
    // COMPLETED, with the payload's hash. Once it has expired (removed here), a
    // redelivery is still a no-op, recognised by the order's own PROCESSED status as
    // the refusal returns it.
    let item = raw_order(&env, &alice_order).await;
    assert_eq!(item["idem_status"], AttributeValue::S("COMPLETED".into()));
    assert_eq!(item["idem_validation"].as_s().unwrap().len(), 64);
    assert_eq!(
        item["idem_key"],
        AttributeValue::S(format!("update-cart-products#{alice_order}"))
    );
    assert!(
        !item.contains_key("expiration"),
        "the order must never carry the table's TTL attribute"
    );
    let dynamodb = aws_sdk_dynamodb::Client::new(&env.sdk);
    dynamodb
        .update_item()
        .table_name(env.store.table())
        .key("PK", AttributeValue::S(format!("ORDER#{alice_order}")))
        .key("SK", AttributeValue::S("ORDER".into()))
        .update_expression(
            "REMOVE idem_status, idem_key, idem_expiration, idem_data, idem_validation",
        )
        .send()
        .await
        .unwrap();
    let response = env.completer.complete_orders(&sqs_batch).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(order(&env, &alice_order).await, done);

    // Exactly once, observably: the completion counts itself on the order, and after
    // every replay above the count is one.
    assert_eq!(
        raw_order(&env, &alice_order).await.get("completions"),
        Some(&AttributeValue::N("1".into()))
    );

    // The pipeline's own writes (the order's MODIFY) are not forwarded.
    let later = reader.next_records().await;
    assert!(!later.is_empty());
    let response = forward_orders(&env.queue, &stream_event(&later))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert!(env.receive(&env.queue_url, None).await.is_empty());
}

#[tokio::test]
async fn a_poison_message_fails_alone_and_reaches_the_dead_letter_queue() {
    let env = loaded_env().await;
    let mut ids = Vec::new();
    for user in ["carol", "dave"] {
        assert_eq!(add_to_cart(&env, user, "kettle-gooseneck", 1).await, 201);
        let (status, body, _) = place_order(&env, user, None).await;
        assert_eq!(status, 201);
        ids.push(body["order_id"].as_str().unwrap().to_owned());
    }
    let records = env.stream_reader().next_records().await;
    forward_orders(&env.queue, &stream_event(&records))
        .await
        .unwrap();
    let good = env.receive(&env.queue_url, None).await;
    assert_eq!(good.len(), 2);
    env.sqs
        .send_message()
        .queue_url(&env.queue_url)
        .message_body(r#"{"version":1,"order_id":"truncated"#)
        .send()
        .await
        .unwrap();
    let poison = env.receive(&env.queue_url, None).await;
    assert_eq!(poison.len(), 1);
    let poison_id = poison[0].message_id.clone().unwrap();

    // One batch, the malformed message between the two good ones.
    let batch = vec![good[0].clone(), poison[0].clone(), good[1].clone()];
    let response = env
        .completer
        .complete_orders(&env.sqs_event(&batch))
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), std::slice::from_ref(&poison_id));
    env.delete_succeeded(&batch, &failed_ids(&response)).await;
    for id in &ids {
        assert_eq!(order(&env, id).await["order_status"], "PROCESSED");
    }

    // Lambda keeps failing it; SQS moves it to the DLQ after maxReceiveCount receives.
    // (Ending its visibility timeout now stands in for waiting it out.)
    env.sqs
        .change_message_visibility()
        .queue_url(&env.queue_url)
        .receipt_handle(poison[0].receipt_handle.clone().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let max = max_receive_count();
    let mut receives = 1;
    loop {
        let again = env.receive(&env.queue_url, Some(0)).await;
        if again.is_empty() {
            break;
        }
        receives += 1;
        assert!(
            receives <= max,
            "still on the queue after {receives} receives"
        );
        let response = env
            .completer
            .complete_orders(&env.sqs_event(&again))
            .await
            .unwrap();
        assert_eq!(failed_ids(&response), std::slice::from_ref(&poison_id));
    }
    assert_eq!(receives, max);
    let dead = env.receive(&env.dlq_url, None).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].body.as_deref(),
        Some(r#"{"version":1,"order_id":"truncated"#)
    );
}

#[tokio::test]
async fn a_malformed_stream_record_is_the_one_failure_and_each_order_is_forwarded_once() {
    let env = loaded_env().await;
    for user in ["erin", "frank"] {
        assert_eq!(add_to_cart(&env, user, "mat-desk-felt", 2).await, 201);
        assert_eq!(place_order(&env, user, None).await.0, 201);
    }
    let records = env.stream_reader().next_records().await;
    let orders: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r["eventName"] == "INSERT" && r["dynamodb"]["NewImage"]["entity"]["S"] == "ORDER"
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(orders.len(), 2);

    // Corrupt a copy of the first order's record and put it right after the first order.
    let mut bad = records[orders[0]].clone();
    bad["dynamodb"]["NewImage"]["lines"] = json!({ "S": "oops" });
    let bad_sequence = "999";
    bad["dynamodb"]["SequenceNumber"] = json!(bad_sequence);
    let mut batch = records[..=orders[0]].to_vec();
    batch.push(bad.clone());
    let rest = records[orders[0] + 1..].to_vec();
    batch.extend(rest.iter().cloned());

    let response = forward_orders(&env.queue, &stream_event(&batch))
        .await
        .unwrap();
    assert_eq!(failed_sequences(&response), [bad_sequence]);
    let first = env.receive(&env.queue_url, None).await;
    assert_eq!(
        first.len(),
        1,
        "only the order before the bad record is forwarded"
    );

    // Lambda redelivers from the failed record; once its retries are spent it moves on,
    // and the records after it are forwarded exactly once.
    let retry = forward_orders(&env.queue, &stream_event(&[bad]))
        .await
        .unwrap();
    assert_eq!(failed_sequences(&retry), [bad_sequence]);
    let response = forward_orders(&env.queue, &stream_event(&rest))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let second = env.receive(&env.queue_url, None).await;
    assert_eq!(second.len(), 1);
    assert_ne!(first[0].body, second[0].body);
}

/// Concurrent requests with one key: whichever loses the race, whether it finds the
/// order, an emptied cart or a cancelled transaction, answers with the winner's order.
/// Twenty-four users at once, so the losing interleavings do happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_with_one_idempotency_key_create_one_order() {
    let env = loaded_env().await;
    let users: Vec<String> = (0..24).map(|i| format!("gina{i}")).collect();
    for user in &users {
        assert_eq!(add_to_cart(&env, user, "bottle-steel-750", 2).await, 201);
    }
    let attempts: Vec<_> = users
        .iter()
        .flat_map(|user| std::iter::repeat_n(user.clone(), 4))
        .map(|user| {
            let api = env.api.clone();
            tokio::spawn(async move {
                let request = ApiRequest::new(Method::Post, "/order")
                    .json(json!({ "user_id": user }).to_string())
                    .header("Idempotency-Key", "same-key");
                (user, api.handle(request).await)
            })
        })
        .collect();
    let mut answers: std::collections::BTreeMap<String, Vec<(u16, Value)>> = Default::default();
    for attempt in attempts {
        let (user, response) = attempt.await.unwrap();
        answers
            .entry(user)
            .or_default()
            .push((response.status, response.json_body()));
    }
    for (user, answers) in &answers {
        let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{user}: {answers:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 201 || *s == 200),
            "{user}: {answers:?}"
        );
        let first = &answers[0].1["order_id"];
        assert!(
            answers.iter().all(|(_, body)| body["order_id"] == *first),
            "{user}: {answers:?}"
        );
        let (_, listed, _) = call(
            &env,
            ApiRequest::new(Method::Get, format!("/users/{user}/orders")),
        )
        .await;
        assert_eq!(listed["orders"].as_array().unwrap().len(), 1, "{user}");
    }
}

#[tokio::test]
async fn the_api_reports_missing_resources_and_pages_orders() {
    let env = loaded_env().await;
    let (status, body, _) = call(
        &env,
        ApiRequest::new(Method::Get, "/products/no-such-thing"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("PRODUCT_NOT_FOUND"))
    );
    let (status, product, _) = call(
        &env,
        ApiRequest::new(Method::Get, "/products/clock-wall-quiet"),
    )
    .await;
    assert_eq!(
        (status, product["unit_price_minor"].as_i64()),
        (200, Some(3_950))
    );
    assert_eq!(add_to_cart(&env, "hana", "no-such-thing", 1).await, 404);

    let (status, body, _) = call(
        &env,
        ApiRequest::new(Method::Delete, "/cart/hana/clock-wall-quiet"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("CART_LINE_NOT_FOUND"))
    );
    assert_eq!(add_to_cart(&env, "hana", "clock-wall-quiet", 1).await, 201);
    let (status, _, response) = call(
        &env,
        ApiRequest::new(Method::Delete, "/cart/hana/clock-wall-quiet"),
    )
    .await;
    assert_eq!((status, response.body.as_str()), (204, ""));

    let missing = uuid::Uuid::new_v4().to_string();
    let (status, body, _) = call(
        &env,
        ApiRequest::new(Method::Get, format!("/orders/{missing}")),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("ORDER_NOT_FOUND"))
    );

    let mut placed = Vec::new();
    for product in ["plant-pot-ceramic", "webcam-1080", "dock-usbc-11"] {
        assert_eq!(add_to_cart(&env, "hana", product, 1).await, 201);
        let (status, body, _) = place_order(&env, "hana", None).await;
        assert_eq!(status, 201);
        placed.push(body["order_id"].as_str().unwrap().to_owned());
        // Distinct placement milliseconds keep the expected order unambiguous.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = ApiRequest::new(Method::Get, "/users/hana/orders").query("limit", "2");
        if let Some(c) = &cursor {
            request = request.query("cursor", c.clone());
        }
        let (status, page, _) = call(&env, request).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["order_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    placed.reverse();
    assert_eq!(seen, placed, "newest first, every order once");
}

#[tokio::test]
async fn a_message_whose_order_is_leased_elsewhere_waits_and_then_completes_once() {
    let env = loaded_env().await;
    assert_eq!(add_to_cart(&env, "erin", "kettle-gooseneck", 1).await, 201);
    let (status, body, _) = place_order(&env, "erin", None).await;
    assert_eq!(status, 201);
    let id = body["order_id"].as_str().unwrap().to_owned();
    let records = env.stream_reader().next_records().await;
    forward_orders(&env.queue, &stream_event(&records))
        .await
        .unwrap();
    let messages = env.receive(&env.queue_url, None).await;
    assert_eq!(messages.len(), 1);

    // Another invocation holds the order's lease (a live INPROGRESS record).
    env.put_lease(
        complete::IDEMPOTENCY_PREFIX,
        &id,
        support::now_ms() + 60_000,
    )
    .await;

    let event = env.sqs_event(&messages);
    let response = env.completer.complete_orders(&event).await.unwrap();
    assert_eq!(
        failed_ids(&response),
        vec![messages[0].message_id.clone().unwrap()],
        "the message is left for redelivery, not dropped"
    );
    assert_eq!(order(&env, &id).await["order_status"], "ORDERED");

    // The runbook's command: a live lease is kept unless forced.
    let clear = |force: bool| {
        let mut args = vec!["clear-idempotency", id.as_str()];
        if force {
            args.push("--force");
        }
        env.ordersctl(&args)
    };
    assert_eq!(clear(false), json!({ "Kept": "INPROGRESS" }));
    let response = env.completer.complete_orders(&event).await.unwrap();
    assert_eq!(failed_ids(&response).len(), 1, "still leased");
    // The lease holder is known to be gone.
    assert_eq!(clear(true), json!("Deleted"));
    let response = env.completer.complete_orders(&event).await.unwrap();
    assert!(failed_ids(&response).is_empty());
    assert_eq!(order(&env, &id).await["order_status"], "PROCESSED");
}

/// The completion applies but its answer is lost (the connection closes after the
/// table applied the write, on every attempt the SDK makes). The message fails and is
/// redelivered; the redelivery's write is refused by the record the first one left on
/// the order, and the refusal replays it: the order completed once, read nowhere.
#[tokio::test]
async fn a_completion_whose_answer_was_lost_is_replayed_from_the_orders_own_record() {
    let env = loaded_env().await;
    assert_eq!(add_to_cart(&env, "fred", "kettle-gooseneck", 1).await, 201);
    let (_, body, _) = place_order(&env, "fred", None).await;
    let id = body["order_id"].as_str().unwrap().to_owned();
    let records = env.stream_reader().next_records().await;
    forward_orders(&env.queue, &stream_event(&records))
        .await
        .unwrap();
    let messages = env.receive(&env.queue_url, None).await;

    let faulty = support::faulty(local::faults::Fault::ResetAfterApplied).await;
    let store = Store::new(
        aws_sdk_dynamodb::Client::new(&faulty.sdk),
        env.store.table(),
    );
    let records_config =
        IdempotencyConfig::single_table(env.store.table(), complete::IDEMPOTENCY_PREFIX, |_| None);
    let completer = Completer::new(
        store.clone(),
        Idempotency::new(store.client().clone(), records_config),
    );
    let error = completer
        .complete_message(messages[0].body.as_deref())
        .await
        .unwrap_err();
    assert!(
        matches!(error, CompleteMessageError::Idempotency(_)),
        "{error:?}"
    );
    let stored = raw_order(&env, &id).await;
    assert_eq!(
        stored["order_status"],
        AttributeValue::S("PROCESSED".into()),
        "the first attempt applied"
    );
    assert_eq!(stored["idem_status"], AttributeValue::S("COMPLETED".into()));

    // Redelivered: refused by the live record, replayed, nothing written twice.
    let response = env
        .completer
        .complete_orders(&env.sqs_event(&messages))
        .await
        .unwrap();
    assert!(failed_ids(&response).is_empty());
    assert_eq!(
        raw_order(&env, &id).await,
        stored,
        "the replay wrote nothing"
    );
    assert_eq!(stored["completions"], AttributeValue::N("1".into()));
}

/// Placing an order during a transaction conflict answers 503 with `Retry-After`, not
/// 500; the client's retry with the same key places it once.
#[tokio::test]
async fn an_order_placed_during_a_transaction_conflict_is_a_503_and_the_retry_places_it_once() {
    let env = loaded_env().await;
    assert_eq!(add_to_cart(&env, "gail", "kettle-gooseneck", 2).await, 201);
    let faulty = support::faulty(local::faults::Fault::TransactionConflict).await;
    let api = OrdersApi::new(Store::new(
        aws_sdk_dynamodb::Client::new(&faulty.sdk),
        env.store.table(),
    ));
    let request = || {
        ApiRequest::new(Method::Post, "/order")
            .json(r#"{"user_id":"gail"}"#)
            .header("Idempotency-Key", "k1")
    };
    let response = api.handle(request()).await;
    assert_eq!(response.status, 503, "{}", response.body);
    assert_eq!(response.json_body()["error"], "TRANSACTION_CONFLICT");
    assert!(
        response
            .headers
            .iter()
            .any(|(name, _)| *name == "retry-after")
    );
    assert_eq!(
        faulty
            .proxy
            .stats
            .calls()
            .get("DynamoDB.TransactWriteItems"),
        Some(&3)
    );
    let (status, _, _) = call(&env, request()).await;
    assert_eq!(status, 201);
    let (_, listed, _) = call(&env, ApiRequest::new(Method::Get, "/users/gail/orders")).await;
    assert_eq!(listed["orders"].as_array().unwrap().len(), 1);
}

/// `GSI1` projects exactly what the listings read (`keys::GSI1_PROJECTED`), so an
/// order's lines and idempotency attributes never reach the index and completing an
/// order writes its entry once, for its status.
#[test]
fn the_index_projects_exactly_what_the_listings_read() {
    let spec = support::template();
    let index = spec
        .table
        .indexes
        .iter()
        .find(|i| i.name == ecommerce_api::keys::GSI1)
        .unwrap();
    assert_eq!(index.projection, "INCLUDE");
    let mut projected = index.non_key_attributes.clone();
    projected.sort();
    let mut expected: Vec<String> = ecommerce_api::keys::GSI1_PROJECTED
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    expected.sort();
    assert_eq!(projected, expected);
    for kept_out in [
        "lines",
        "completions",
        "idem_status",
        "idem_data",
        "user_id",
    ] {
        assert!(!projected.iter().any(|a| a == kept_out), "{kept_out}");
    }
}
