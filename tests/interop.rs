//! The bench compares like with like: the Python + Powertools functions (bench/python)
//! and the Rust ones speak the same messages. Each side's stream function forwards new
//! orders, and the *other* side's queue function completes them, every process under
//! the local Lambda Runtime API against the emulator. The orders are stored as the
//! completing side's design has them: one item (Rust, and the second Python pair), or
//! the workshop's header and line items (the first Python pair).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use local::bench::events::{BenchOrder, Design, seed, stream_event};
use local::function::{Function, FunctionConfig, Outcome};
use local::resources::{self, Overrides};
use support::{REGION, template, workspace};
use tokio::sync::watch;

struct Env {
    sdk: aws_config::SdkConfig,
    table: String,
    queue_url: String,
    queue_arn: String,
    stream_arn: String,
    logs: PathBuf,
    _stop: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
}

async fn env() -> Env {
    let sdk = resources::emulator_sdk_config(support::endpoint(), REGION).await;
    let prefix = format!("i{}", uuid::Uuid::new_v4().simple());
    let created = resources::create(&sdk, &template(), &prefix, &Overrides::default())
        .await
        .unwrap();
    let queue = created.queue("OrdersQueue").unwrap().clone();
    let logs = std::env::temp_dir().join(format!("interop-{prefix}"));
    std::fs::create_dir_all(&logs).unwrap();
    let (stop, stop_rx) = watch::channel(false);
    Env {
        sdk,
        table: created.table_name.clone(),
        queue_url: queue.url,
        queue_arn: queue.arn,
        stream_arn: created.stream_arn.unwrap(),
        logs,
        _stop: stop,
        stop_rx,
    }
}

#[derive(Clone, Copy, Debug)]
enum Side {
    Rust,
    Python,
    PythonOneItem,
}

impl Side {
    fn design(self) -> Design {
        match self {
            Self::Python => Design::Workshop,
            Self::Rust | Self::PythonOneItem => Design::OneItem,
        }
    }
}

impl Env {
    async fn function(&self, side: Side, binary: &str) -> Function {
        let mut environment = BTreeMap::from([
            ("TABLE_NAME".to_owned(), self.table.clone()),
            ("QUEUE_URL".to_owned(), self.queue_url.clone()),
            (
                "POWERTOOLS_SERVICE_NAME".to_owned(),
                "ecommerce-api".to_owned(),
            ),
            (
                "POWERTOOLS_METRICS_NAMESPACE".to_owned(),
                "EcommerceApi".to_owned(),
            ),
            ("POWERTOOLS_TRACE_DISABLED".to_owned(), "true".to_owned()),
            (
                "AWS_ENDPOINT_URL".to_owned(),
                support::endpoint().to_owned(),
            ),
            ("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned()),
        ]);
        let path = match side {
            Side::Rust => Path::new(env!("CARGO_BIN_EXE_orders-api"))
                .with_file_name(binary)
                .to_path_buf(),
            Side::Python | Side::PythonOneItem => {
                let python = std::env::var_os("BENCH_PYTHON")
                    .map_or_else(|| workspace().join(".venv-bench/bin/python"), PathBuf::from);
                assert!(
                    python.exists(),
                    "{} is missing: scripts/tools bench installs it",
                    python.display()
                );
                let handler = match (binary, side) {
                    ("process-cart-products", _) => "forwarder.handler",
                    (_, Side::PythonOneItem) => "consumer_one_item.handler",
                    _ => "consumer.handler",
                };
                environment.insert("BENCH_PYTHON".to_owned(), python.display().to_string());
                environment.insert("BENCH_HANDLER".to_owned(), handler.to_owned());
                workspace().join("bench/python/bootstrap")
            }
        };
        let config = FunctionConfig {
            name: binary.to_owned(),
            binary: path,
            timeout: Duration::from_secs(30),
            memory_mb: 256,
            region: REGION.to_owned(),
            environment,
            log_file: self.logs.join(format!("{side:?}-{binary}.log")),
            concurrency: 1,
        };
        Function::start(config, self.stop_rx.clone()).await.unwrap()
    }

    /// The messages on the queue, as Lambda's SQS event.
    async fn queued_event(&self, expected: usize) -> String {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut messages = Vec::new();
        while messages.len() < expected {
            let received = sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            assert!(
                !received.is_empty(),
                "expected {expected} messages, got {}",
                messages.len()
            );
            messages.extend(received);
        }
        let records: Vec<_> = messages
            .iter()
            .map(|m| local::sqs_source::lambda_sqs_record(m, &self.queue_arn, REGION))
            .collect();
        serde_json::json!({ "Records": records }).to_string()
    }

    async fn status(&self, order: &BenchOrder) -> (String, Option<String>) {
        let item = aws_sdk_dynamodb::Client::new(&self.sdk)
            .get_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S(format!("ORDER#{}", order.order_id)))
            .key("SK", AttributeValue::S("ORDER".to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let count = item.get("completions").and_then(|v| v.as_n().ok()).cloned();
        (text("order_status").unwrap_or_default(), count)
    }
}

fn succeeded(outcome: &Outcome) {
    let body = outcome.response().unwrap_or_else(|| panic!("{outcome:?}"));
    let response: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([]),
        "{response}"
    );
}

async fn one_way(forwarder: Side, consumer: Side, seed_value: u64) {
    let env = env().await;
    let orders: Vec<BenchOrder> = (0..5)
        .map(|i| BenchOrder::generate(seed_value, i))
        .collect();
    let design = consumer.design();
    seed(
        &aws_sdk_dynamodb::Client::new(&env.sdk),
        &env.table,
        &orders,
        design,
    )
    .await
    .unwrap();
    let forward = env.function(forwarder, "process-cart-products").await;
    succeeded(
        &forward
            .invoke(stream_event(&orders, design, 1_000, &env.stream_arn))
            .await,
    );
    let complete = env.function(consumer, "update-cart-products").await;
    succeeded(&complete.invoke(env.queued_event(orders.len()).await).await);
    for order in &orders {
        assert_eq!(
            env.status(order).await,
            ("PROCESSED".to_owned(), Some("1".to_owned())),
            "{forwarder:?} forwarded, {consumer:?} completed: order {}; logs in {}",
            order.order_id,
            env.logs.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_forwards_and_rust_completes() {
    one_way(Side::Python, Side::Rust, 71).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_forwards_and_python_completes() {
    one_way(Side::Rust, Side::Python, 72).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_forwards_and_python_completes_one_item_orders() {
    one_way(Side::Rust, Side::PythonOneItem, 73).await;
}
