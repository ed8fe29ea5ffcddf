//! Shared harness of the integration tests: a real moto server on loopback, the real
//! AWS SDK clients pointed at it, the table and queues created from `template.yaml`,
//! and the two event sources Lambda would run (stream reader, queue receiver) turned
//! into the exact event JSON Lambda delivers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use ecommerce_api::api::OrdersApi;
use ecommerce_api::order_queue::SqsOrderQueue;
use ecommerce_api::pipeline::complete::Completer;
use ecommerce_api::store::Store;
use local::moto::Moto;
use local::resources::{self, Overrides};
use local::template::StackSpec;
use middleware::idempotency::{Idempotency, IdempotencyConfig};
use serde_json::value::RawValue;
use serde_json::{Value, json};

pub const REGION: &str = "eu-west-1";

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn template() -> StackSpec {
    StackSpec::from_file(&workspace().join("template.yaml")).unwrap()
}

/// How many receives before SQS moves a message to the dead-letter queue, per the template.
pub fn max_receive_count() -> u32 {
    template()
        .queue("OrdersQueue")
        .and_then(|q| q.redrive.as_ref())
        .map(|(_, n)| *n)
        .expect("OrdersQueue has a redrive policy")
}

/// One moto server per test binary; it stops when the binary exits, however it exits.
fn moto() -> &'static Moto {
    local::moto::shared(&workspace()).unwrap()
}

/// Starts the local stack with this package's binaries, gateway on a free port with
/// API key `key`, state in a fresh temporary folder (returned, for the test to remove);
/// `adjust` changes the options first.
pub async fn start_stack(
    key: &str,
    adjust: impl FnOnce(&mut local::stack::StackOptions),
) -> (local::stack::Stack, PathBuf) {
    let state = std::env::temp_dir().join(format!("local-stack-{}", uuid::Uuid::new_v4()));
    let mut options = local::stack::StackOptions::for_workspace(&workspace()).unwrap();
    options.binaries = Path::new(env!("CARGO_BIN_EXE_orders-api"))
        .parent()
        .unwrap()
        .to_path_buf();
    options.state_dir = state.clone();
    options.api_port = 0;
    options.api_key = key.to_owned();
    adjust(&mut options);
    (local::stack::Stack::start(options).await.unwrap(), state)
}

/// The emulator's endpoint, for tools run as separate processes.
pub fn endpoint() -> &'static str {
    moto().endpoint()
}

/// Everything one test needs, with names unique to the test so tests share the
/// emulator without seeing each other's data.
pub struct TestEnv {
    pub sdk: aws_config::SdkConfig,
    pub sqs: aws_sdk_sqs::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub stream_arn: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
    pub stream_failure_url: String,
    pub table: String,
    pub store: Store,
    pub completer: std::sync::Arc<Completer>,
    pub api: OrdersApi,
    pub queue: SqsOrderQueue,
}

/// SDK configuration whose calls go through a fault proxy injecting `fault` on every
/// call it applies to; the proxy stops when this is dropped.
pub struct Faulty {
    pub sdk: aws_config::SdkConfig,
    pub proxy: local::faults::ProxyHandle,
    _stop: tokio::sync::watch::Sender<bool>,
}

pub async fn faulty(fault: local::faults::Fault) -> Faulty {
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let plan = local::faults::FaultPlan {
        rate: 1.0,
        only: Some(fault),
        ..local::faults::FaultPlan::NONE
    };
    let proxy = local::faults::start(moto().endpoint(), plan, stop_rx)
        .await
        .unwrap();
    let sdk = resources::emulator_sdk_config(&proxy.endpoint, REGION).await;
    Faulty {
        sdk,
        proxy,
        _stop: stop,
    }
}

impl TestEnv {
    pub async fn new() -> Self {
        let sdk = resources::emulator_sdk_config(moto().endpoint(), REGION).await;
        let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
        let created = resources::create(&sdk, &template(), &prefix, &Overrides::default())
            .await
            .unwrap();
        let queue = created.queue("OrdersQueue").unwrap().clone();
        let dlq = created.queue("OrdersDeadLetterQueue").unwrap().clone();
        let stream_failures = created.queue("StreamFailureQueue").unwrap().clone();
        let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), &created.table_name);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let records = IdempotencyConfig::single_table(
            &created.table_name,
            ecommerce_api::pipeline::complete::IDEMPOTENCY_PREFIX,
            |_| None,
        );
        Self {
            completer: std::sync::Arc::new(Completer::new(
                store.clone(),
                Idempotency::new(store.client().clone(), records),
            )),
            api: OrdersApi::new(store.clone()),
            queue: SqsOrderQueue::new(sqs.clone(), &queue.url),
            store,
            streams: aws_sdk_dynamodbstreams::Client::new(&sdk),
            stream_arn: created.stream_arn.unwrap(),
            queue_url: queue.url,
            queue_arn: queue.arn,
            dlq_url: dlq.url,
            stream_failure_url: stream_failures.url,
            table: created.table_name.clone(),
            sqs,
            sdk,
        }
    }

    /// Reads the stream from where the reader left off.
    pub fn stream_reader(&self) -> StreamReader {
        StreamReader {
            client: self.streams.clone(),
            stream_arn: self.stream_arn.clone(),
            after: None,
        }
    }

    /// Receives up to 10 messages; `visibility` overrides the queue's timeout.
    pub async fn receive(
        &self,
        queue_url: &str,
        visibility: Option<i32>,
    ) -> Vec<aws_sdk_sqs::types::Message> {
        self.sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .set_visibility_timeout(visibility)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    }

    /// Deletes the messages whose ids are not among `failed`, as Lambda does after a
    /// partial-batch response.
    pub async fn delete_succeeded(
        &self,
        messages: &[aws_sdk_sqs::types::Message],
        failed: &[String],
    ) {
        for message in messages {
            if !failed.contains(message.message_id.as_ref().unwrap()) {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle.as_ref().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// Writes the INPROGRESS idempotency record an invocation of `function` leaves on
    /// the order `key` while it holds the lease, or after dying with it, until
    /// `lease_ends_ms`.
    pub async fn put_lease(&self, function: &str, key: &str, lease_ends_ms: u64) {
        use aws_sdk_dynamodb::types::AttributeValue;
        use middleware::idempotency::on_item::attr;
        // `update-cart-products` keeps its record on the order (an order that does not
        // exist yet is created bare, as the record's only holder).
        aws_sdk_dynamodb::Client::new(&self.sdk)
            .update_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S(format!("ORDER#{key}")))
            .key("SK", AttributeValue::S("ORDER".into()))
            .update_expression("SET #key = :key, #status = :status, #lease = :lease")
            .expression_attribute_names("#key", attr::KEY)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#lease", attr::LEASE)
            .expression_attribute_values(":key", AttributeValue::S(format!("{function}#{key}")))
            .expression_attribute_values(":status", AttributeValue::S("INPROGRESS".into()))
            .expression_attribute_values(":lease", AttributeValue::N(lease_ends_ms.to_string()))
            .send()
            .await
            .unwrap();
    }

    /// Sends Lambda's on-failure invocation record for a stream batch of `records`
    /// (Lambda-shaped, in stream order) to the stream failure queue, as Lambda does
    /// when the batch exhausts its retries. `shard` overrides the shard id (one the
    /// stream no longer lists, say). Returns the SQS message id.
    pub async fn set_aside(&self, records: &[Value], shard: Option<&str>) -> String {
        let shard = match shard {
            Some(shard) => shard.to_owned(),
            None => shards(&self.streams, &self.stream_arn)
                .await
                .into_iter()
                .next()
                .unwrap(),
        };
        let sequence = |r: &Value| r["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned();
        let record = json!({
            "requestContext": {
                "requestId": uuid::Uuid::new_v4().to_string(),
                "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:process-cart-products",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": 6,
            },
            "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
            "version": "1.0",
            "timestamp": "2026-11-24T00:00:00.000Z",
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": sequence(records.first().unwrap()),
                "endSequenceNumber": sequence(records.last().unwrap()),
                "batchSize": records.len(),
                "streamArn": self.stream_arn,
            },
        });
        self.sqs
            .send_message()
            .queue_url(&self.stream_failure_url)
            .message_body(record.to_string())
            .send()
            .await
            .unwrap()
            .message_id
            .unwrap()
    }

    /// Runs the `ordersctl` binary against the emulator with the stack's names in its
    /// environment, as the runbooks do; asserts it succeeds and returns its JSON.
    pub fn ordersctl(&self, args: &[&str]) -> Value {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ordersctl"))
            .args(args)
            .env("AWS_ENDPOINT_URL", endpoint())
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("DLQ_URL", &self.dlq_url)
            .env("QUEUE_URL", &self.queue_url)
            .env("STREAM_FAILURE_QUEUE_URL", &self.stream_failure_url)
            .env("TABLE_NAME", &self.table)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "ordersctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Sends `body` as it is to a queue (a foreign or malformed message).
    pub async fn send_raw(&self, queue_url: &str, body: &str) -> String {
        self.sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap()
            .message_id
            .unwrap()
    }

    /// Receives the order queue's messages, expecting `expected` of them, and has
    /// `update-cart-products` complete them all in one batch.
    pub async fn complete_queued(&self, expected: usize) {
        let messages = self.receive(&self.queue_url, None).await;
        assert_eq!(messages.len(), expected);
        let response = self
            .completer
            .complete_orders(&self.sqs_event(&messages))
            .await
            .unwrap();
        assert!(response.batch_item_failures.is_empty());
    }

    /// The Lambda SQS event for `messages`.
    pub fn sqs_event(&self, messages: &[aws_sdk_sqs::types::Message]) -> Box<RawValue> {
        let records: Vec<Value> = messages
            .iter()
            .map(|m| local::sqs_source::lambda_sqs_record(m, &self.queue_arn, REGION))
            .collect();
        raw(&json!({ "Records": records }))
    }
}

/// Milliseconds since the epoch, as idempotency leases count them.
pub fn now_ms() -> u64 {
    middleware::clock::epoch_ms()
}

/// The ids of a stream's shards.
async fn shards(client: &aws_sdk_dynamodbstreams::Client, stream_arn: &str) -> Vec<String> {
    client
        .describe_stream()
        .stream_arn(stream_arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .and_then(|d| d.shards)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.shard_id)
        .collect()
}

/// Reads a table's stream (one shard in the emulator) like an event source mapping.
pub struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    after: Option<String>,
}

impl StreamReader {
    /// The records written since the last call, as Lambda's stream records.
    pub async fn next_records(&mut self) -> Vec<Value> {
        let mut records = Vec::new();
        for shard in shards(&self.client, &self.stream_arn).await {
            let request = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(shard);
            let request = match &self.after {
                Some(sequence) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(sequence),
                None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            };
            let mut iterator = request.send().await.unwrap().shard_iterator;
            while let Some(current) = iterator {
                let output = self
                    .client
                    .get_records()
                    .shard_iterator(current)
                    .send()
                    .await
                    .unwrap();
                let batch = output.records.unwrap_or_default();
                if batch.is_empty() {
                    break;
                }
                records.extend(batch.iter().map(|r| {
                    local::stream_source::lambda_stream_record(r, &self.stream_arn, REGION)
                }));
                iterator = output.next_shard_iterator;
            }
        }
        if let Some(last) = records.last() {
            self.after = last["dynamodb"]["SequenceNumber"]
                .as_str()
                .map(str::to_owned);
        }
        records
    }
}

/// A stream batch event for `records`.
pub fn stream_event(records: &[Value]) -> Box<RawValue> {
    raw(&json!({ "Records": records }))
}

pub fn raw(value: &Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).unwrap()
}

/// Reads a file, or "" if it does not exist.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
