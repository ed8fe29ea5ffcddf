//! End-to-end tests on the local stack: moto, the three real function binaries behind
//! the local Lambda Runtime API, the event sources and the API gateway, all built from
//! `template.yaml`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use local::client::ApiClient;
use local::function::FunctionStats;
use local::resources::Overrides;
use local::stack::{Stack, StackOptions};
use serde_json::{Value, json};
use support::{max_receive_count, read};

const KEY: &str = "e2e-test-key";

async fn start_stack(stream_retry_delay: Duration) -> (Stack, PathBuf) {
    start_stack_with(|options| options.stream_retry_delay = stream_retry_delay).await
}

async fn start_stack_with(adjust: impl FnOnce(&mut StackOptions)) -> (Stack, PathBuf) {
    support::start_stack(KEY, |options| {
        options.overrides = Overrides {
            visibility_timeout_seconds: Some(1),
        };
        adjust(options);
    })
    .await
}

fn client(stack: &Stack) -> ApiClient {
    ApiClient::new(stack.api_url(), Some(KEY.to_owned()))
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Loads the catalogue and returns its product ids.
async fn load_catalogue(api: &ApiClient) -> Vec<String> {
    let (status, body) = api.call("POST", "/loadProducts", None, None).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (_, catalogue) = api.call("GET", "/products", None, None).await.unwrap();
    catalogue["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["product_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn place_order(api: &ApiClient, user: &str, products: &[&str]) -> String {
    for product in products {
        let body = json!({ "product_id": product, "quantity": 1 });
        let (status, answer) = api
            .call("POST", &format!("/cart/{user}"), Some(&body), None)
            .await
            .unwrap();
        assert_eq!(status, 201, "{answer}");
    }
    let (status, order) = api
        .call("POST", "/order", Some(&json!({ "user_id": user })), None)
        .await
        .unwrap();
    assert_eq!(status, 201, "{order}");
    order["order_id"].as_str().unwrap().to_owned()
}

async fn order_status(api: &ApiClient, id: &str) -> Value {
    let (status, order) = api
        .call("GET", &format!("/orders/{id}"), None, None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{order}");
    order
}

fn stat(
    stack: &Stack,
    function: &str,
    pick: fn(&FunctionStats) -> &std::sync::atomic::AtomicU64,
) -> u64 {
    FunctionStats::get(pick(stack.function(function).unwrap().stats()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_placed_through_the_gateway_is_processed_and_nothing_outlives_the_stack() {
    let (stack, state) = start_stack(Duration::from_millis(300)).await;
    let api = client(&stack);
    load_catalogue(&api).await;
    let id = place_order(&api, "e2e-alice", &["desk-oak-140", "lamp-led-arc"]).await;
    wait_until(
        "the order to be processed",
        Duration::from_secs(30),
        || async { order_status(&api, &id).await["order_status"] == "PROCESSED" },
    )
    .await;
    let order = order_status(&api, &id).await;
    assert!(
        order["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["line_status"] == "ORDERED")
    );
    // Both pipeline functions log the order by its id (the consumer as the line's
    // correlation_id, the forwarder in the correlation_ids of the send that carried it),
    // in JSON lines with the invocation's context, and write EMF blobs with business
    // metrics.
    for (function, metric) in [
        ("process-cart-products", "OrdersForwarded"),
        ("update-cart-products", "OrdersCompleted"),
    ] {
        let log = read(&stack.logs().join(format!("{function}.log")));
        let lines: Vec<Value> = log
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let correlated = lines
            .iter()
            .find(|l| {
                l["correlation_id"] == id.as_str()
                    || l["correlation_ids"]
                        .as_str()
                        .is_some_and(|ids| ids.split(',').any(|i| i == id))
            })
            .unwrap_or_else(|| panic!("{function} did not log {id}"));
        assert!(correlated["function_request_id"].is_string());
        let emf = lines
            .iter()
            .find(|l| l.get(metric).is_some())
            .unwrap_or_else(|| panic!("{function} wrote no {metric}"));
        assert_eq!(
            emf["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "EcommerceApi"
        );
        assert_eq!(emf[metric], 1.0);
        // ... in total and per function, as `src/metrics.rs` declares (the dashboard
        // and alarms are checked against that declaration).
        let sets: Vec<Vec<&str>> = emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|set| {
                set.as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                    .collect()
            })
            .collect();
        let declared: Vec<Vec<&str>> = ecommerce_api::metrics::DIMENSION_SETS
            .iter()
            .map(|set| set.to_vec())
            .collect();
        assert_eq!(sets, declared, "{function}'s blob");
        assert_eq!(emf["function_name"], function);
    }

    // X-Ray: the consumer's record, annotated with the order id, is in the producer's
    // trace, under process-cart-products' `## handler` (whose batch carried the order).
    let documents: Vec<Value> = read(&stack.xray_log())
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let record_of = |function: &str| {
        documents
            .iter()
            .find(|d| {
                d["name"] == "## record"
                    && d["annotations"]["correlation_id"] == id.as_str()
                    && d["annotations"]["FunctionName"] == function
            })
            .unwrap_or_else(|| panic!("no ## record of {function} annotated with the order id"))
    };
    let record = record_of("update-cart-products");
    let producer = documents
        .iter()
        .find(|d| d["trace_id"] == record["trace_id"] && d["name"] == "## handler")
        .expect("the producer's handler in the same trace");
    assert_eq!(
        producer["annotations"]["FunctionName"],
        "process-cart-products"
    );
    assert!(
        documents
            .iter()
            .any(|d| d["trace_id"] == record["trace_id"] && d["name"] == "DynamoDB"),
        "the consumer's table call is traced"
    );

    let pids: Vec<u32> = stack
        .functions()
        .values()
        .map(local::function::Function::pid)
        .collect();
    assert!(pids.iter().all(|pid| *pid != 0));
    let gateway = stack.api_url().trim_start_matches("http://").to_owned();
    stack.stop().await;
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "function process {pid} still running"
        );
    }
    assert!(
        std::net::TcpStream::connect(&gateway).is_err(),
        "the gateway still listens"
    );
    let _ = std::fs::remove_dir_all(state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_requires_the_api_key() {
    let (stack, state) = start_stack(Duration::from_millis(300)).await;
    let missing = ApiClient::new(stack.api_url(), None);
    let wrong = ApiClient::new(stack.api_url(), Some("not-the-key".to_owned()));
    for api in [&missing, &wrong] {
        let (status, body) = api.call("GET", "/products", None, None).await.unwrap();
        assert_eq!((status, &body["message"]), (403, &json!("Forbidden")));
    }
    let (status, body) = client(&stack)
        .call("GET", "/no/such/route", None, None)
        .await
        .unwrap();
    assert_eq!(
        (status, &body["message"]),
        (403, &json!("Missing Authentication Token"))
    );
    let (status, body) = client(&stack)
        .call("GET", "/products", None, None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    // The API's own errors come through with their status and shape.
    let (status, body) = client(&stack)
        .call("GET", "/orders/not-a-uuid", None, None)
        .await
        .unwrap();
    assert_eq!((status, &body["error"]), (400, &json!("VALIDATION_FAILED")));
    assert_eq!(
        stat(&stack, "orders-api", |s| &s.invocations),
        2,
        "rejected requests never reach the function"
    );
    stack.stop().await;
    let _ = std::fs::remove_dir_all(state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_reaches_the_dead_letter_queue_after_max_receive_count() {
    let (stack, state) = start_stack(Duration::from_millis(300)).await;
    let sqs = aws_sdk_sqs::Client::new(stack.sdk());
    let queue = stack.resources().queue("OrdersQueue").unwrap().clone();
    let dlq = stack
        .resources()
        .queue("OrdersDeadLetterQueue")
        .unwrap()
        .clone();
    let poison = r#"{"version":1,"order_id":"cut short"#;
    sqs.send_message()
        .queue_url(&queue.url)
        .message_body(poison)
        .send()
        .await
        .unwrap();

    let started = Instant::now();
    let dead: Vec<String> = loop {
        let messages = sqs
            .receive_message()
            .queue_url(&dlq.url)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if !messages.is_empty() {
            break messages.into_iter().filter_map(|m| m.body).collect();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the poison message never reached the DLQ"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead, [poison]);
    let failures = stat(&stack, "update-cart-products", |s| &s.batch_item_failures);
    assert_eq!(
        failures,
        u64::from(max_receive_count()),
        "one failed attempt per receive"
    );
    let left = sqs
        .receive_message()
        .queue_url(&queue.url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert!(left.is_empty());
    stack.stop().await;
    let _ = std::fs::remove_dir_all(state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_record_whose_send_fails_is_retried_and_forwarded_exactly_once() {
    let (stack, state) = start_stack(Duration::from_secs(1)).await;
    let api = client(&stack);
    let sqs = aws_sdk_sqs::Client::new(stack.sdk());
    let queue = stack.resources().queue("OrdersQueue").unwrap().clone();
    let set_max_size = |bytes: &'static str| {
        let (sqs, url) = (sqs.clone(), queue.url.clone());
        async move {
            sqs.set_queue_attributes()
                .queue_url(url)
                .attributes(QueueAttributeName::MaximumMessageSize, bytes)
                .send()
                .await
                .unwrap();
        }
    };
    // The queue refuses messages over 1 KiB; an order with twenty lines is larger.
    set_max_size("1024").await;
    let products = load_catalogue(&api).await;
    let products: Vec<&str> = products.iter().map(String::as_str).collect();
    let id = place_order(&api, "e2e-bulk", &products).await;

    wait_until(
        "a reported send failure",
        Duration::from_secs(30),
        || async { stat(&stack, "process-cart-products", |s| &s.batch_item_failures) >= 1 },
    )
    .await;
    set_max_size("262144").await;
    wait_until(
        "the order to be processed",
        Duration::from_secs(30),
        || async { order_status(&api, &id).await["order_status"] == "PROCESSED" },
    )
    .await;
    // Give a duplicate, if one had been sent, the time to arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let queue_stats = &stack.sources().queues["UpdateCartProductsFunction"];
    assert_eq!(
        FunctionStats::get(&queue_stats.received),
        1,
        "the order was forwarded once"
    );
    let stream_stats = &stack.sources().streams["ProcessCartProductsFunction"];
    assert!(FunctionStats::get(&stream_stats.retries) >= 1);
    assert_eq!(FunctionStats::get(&stream_stats.records_set_aside), 0);
    let log = read(&stack.logs().join("update-cart-products.log"));
    assert_eq!(log.matches("order completed").count(), 1);
    assert!(!log.contains("already completed"));
    stack.stop().await;
    let _ = std::fs::remove_dir_all(state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_record_that_keeps_failing_goes_to_the_on_failure_destination_and_the_shard_moves_on()
 {
    let (stack, state) = start_stack(Duration::from_millis(200)).await;
    let api = client(&stack);
    load_catalogue(&api).await;
    // An ORDERED order the pipeline cannot read: it passes the mapping's filter and
    // fails in process-cart-products on every attempt.
    let broken = uuid::Uuid::new_v4().to_string();
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned());
    aws_sdk_dynamodb::Client::new(stack.sdk())
        .put_item()
        .table_name(&stack.resources().table_name)
        .item("PK", s(&format!("ORDER#{broken}")))
        .item("SK", s("ORDER"))
        .item("entity", s("ORDER"))
        .item("order_status", s("ORDERED"))
        .item("order_id", s(&broken))
        .item("lines", s("not a list"))
        .send()
        .await
        .unwrap();
    let id = place_order(&api, "e2e-behind", &["mug-stoneware-set"]).await;

    wait_until(
        "the order behind the broken record to be processed",
        Duration::from_secs(30),
        || async { order_status(&api, &id).await["order_status"] == "PROCESSED" },
    )
    .await;
    let destination = stack
        .resources()
        .queue("StreamFailureQueue")
        .unwrap()
        .url
        .clone();
    // The operator's view: the record, and the order in its range, which cannot be
    // read, so `resend` refuses it until the item is repaired.
    let ordersctl = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ordersctl"))
            .args(args)
            .env("AWS_ENDPOINT_URL", stack.sdk().endpoint_url().unwrap())
            .env("AWS_REGION", stack.sdk().region().unwrap().to_string())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("STREAM_FAILURE_QUEUE_URL", &destination)
            .env(
                "QUEUE_URL",
                &stack.resources().queue("OrdersQueue").unwrap().url,
            )
            .env("TABLE_NAME", &stack.resources().table_name)
            .output()
            .unwrap()
    };
    let listed = ordersctl(&["stream-failures", "list"]);
    assert!(listed.status.success());
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let orders = listed[0]["orders"]["Ok"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{listed}");
    assert_eq!(orders[0]["order_id"], broken.as_str());
    assert!(
        orders[0]["status_now"]
            .as_str()
            .unwrap()
            .starts_with("unreadable"),
        "{listed}"
    );
    let refused = ordersctl(&["resend", &broken]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot be read"));
    let messages = aws_sdk_sqs::Client::new(stack.sdk())
        .receive_message()
        .queue_url(destination)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(messages.len(), 1);
    let record: Value = serde_json::from_str(messages[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(
        record["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    let retries = stack.spec().stream_mappings[0].maximum_retry_attempts;
    assert_eq!(
        record["requestContext"]["approximateInvokeCount"],
        retries + 1
    );
    assert_eq!(record["DDBStreamBatchInfo"]["batchSize"], 1);
    // The shard the record came from, as Lambda names it.
    let shards = aws_sdk_dynamodbstreams::Client::new(stack.sdk())
        .describe_stream()
        .stream_arn(record["DDBStreamBatchInfo"]["streamArn"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .stream_description
        .and_then(|d| d.shards)
        .unwrap_or_default();
    assert!(
        shards
            .iter()
            .any(|s| s.shard_id.as_deref() == record["DDBStreamBatchInfo"]["shardId"].as_str()),
        "{record}"
    );
    let stream_stats = &stack.sources().streams["ProcessCartProductsFunction"];
    assert_eq!(FunctionStats::get(&stream_stats.records_set_aside), 1);
    stack.stop().await;
    let _ = std::fs::remove_dir_all(state);
}

/// The stall of 200 users at 16 clients, made deterministic: any cancelled
/// transaction (here, the consumer's, for a redelivered message of a processed order;
/// under load, also duplicate order requests) detached the emulator's stream from the
/// stream source's iterator, and no later order was ever forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_keep_flowing_after_a_redelivered_message_cancels_a_transaction() {
    let (stack, state) = start_stack(Duration::from_millis(300)).await;
    let api = client(&stack);
    load_catalogue(&api).await;
    let processed = |id: String| {
        let api = api.clone();
        move || {
            let (api, id) = (api.clone(), id.clone());
            async move { order_status(&api, &id).await["order_status"] == "PROCESSED" }
        }
    };
    let first = place_order(&api, "e2e-first", &["desk-oak-140"]).await;
    wait_until(
        "the first order to be processed",
        Duration::from_secs(30),
        processed(first.clone()),
    )
    .await;

    // At-least-once delivery: the first order's message arrives again.
    let (_, order) = api
        .call("GET", &format!("/orders/{first}"), None, None)
        .await
        .unwrap();
    let order: ecommerce_api::domain::Order = serde_json::from_value(order).unwrap();
    let message = ecommerce_api::message::OrderMessage::for_order(&order)
        .to_json()
        .unwrap();
    aws_sdk_sqs::Client::new(stack.sdk())
        .send_message()
        .queue_url(&stack.resources().queue("OrdersQueue").unwrap().url)
        .message_body(message)
        .send()
        .await
        .unwrap();
    let consumer_log = stack.logs().join("update-cart-products.log");
    wait_until(
        "the redelivered message to be answered",
        Duration::from_secs(30),
        || async { read(&consumer_log).contains("already completed") },
    )
    .await;

    let second = place_order(&api, "e2e-second", &["lamp-led-arc"]).await;
    wait_until(
        "the order placed after the cancelled transaction to be processed",
        Duration::from_secs(30),
        processed(second),
    )
    .await;
    stack.stop().await;
    let _ = std::fs::remove_dir_all(state);
}

/// `local chaos`, smaller: faults on a tenth of the functions' AWS calls, every function
/// killed, duplicate requests, a short visibility timeout. Every order completes exactly
/// once or fails with its reason; none is lost or applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_faults_kills_and_duplicates_every_order_completes_once_or_fails_with_a_reason() {
    let (stack, state) = start_stack_with(|options| {
        options.stream_retry_delay = Duration::from_millis(300);
        options.overrides = Overrides {
            visibility_timeout_seconds: Some(2),
        };
        options.faults = local::faults::FaultPlan {
            rate: 0.1,
            seed: 11,
            ..local::faults::FaultPlan::NONE
        };
    })
    .await;
    let options = local::chaos::ChaosOptions {
        orders: 60,
        concurrency: 8,
        kills: 5,
        seed: 11,
        poison: 2,
        patience: Duration::from_secs(60),
        ..local::chaos::ChaosOptions::default()
    };
    let report = local::chaos::run(&stack, &options).await.unwrap();
    stack.stop().await;
    eprintln!("{report}");
    assert!(report.holds(), "{report}");
    assert_eq!(report.audit.settled(), report.audit.orders, "{report}");
    assert!(report.acknowledged >= 55, "{report}");
    assert!(report.total_kills() >= 5, "{report}");
    assert_eq!(report.kills.len(), 3, "every function killed: {report}");
    assert!(
        report.total_faults() * 20 >= report.calls,
        "faults on at least 5 % of the calls: {report}"
    );
    assert!(report.duplicates.0 > 0, "{report}");
    // The two poisoned orders failed for good, each with its reason.
    assert_eq!(report.audit.set_aside.len(), 1, "{report}");
    assert_eq!(report.audit.dead_lettered.len(), 1, "{report}");
    assert!(
        report
            .audit
            .dead_lettered
            .values()
            .all(|r| r.contains("does not match")),
        "{report}"
    );
    assert!(
        report
            .audit
            .set_aside
            .values()
            .all(|r| r.contains("does not decode")),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(state);
}
