//! Shared harness of the integration tests: a real moto server on loopback, the real
//! AWS SDK clients pointed at it, the table and queues the service needs, and the two
//! event sources Lambda would run (stream reader, queue receiver) turned into the
//! exact event JSON Lambda delivers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, ShardIteratorType};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use ecommerce_api::api::OrdersApi;
use ecommerce_api::keys;
use ecommerce_api::pipeline::forward::SqsOrderQueue;
use ecommerce_api::store::Store;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// The pinned emulator version (see `requirements.txt`).
pub const REGION: &str = "eu-west-1";
/// How many receives before SQS moves a message to the dead-letter queue.
pub const MAX_RECEIVE_COUNT: u32 = 3;

/// A moto server for this test binary, stopped when the binary exits.
///
/// moto runs under a small shell that waits on its standard input: when this process
/// ends, for whatever reason, the pipe closes and the shell stops the server, so no
/// emulator outlives the tests.
struct Moto {
    endpoint: String,
    _guard: Child,
}

fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    assert!(
        local.exists(),
        "moto_server not found at {}; run ./scripts/test (it installs the pinned tools into .venv) or set MOTO_SERVER",
        local.display()
    );
    local
}

fn start_moto() -> Moto {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port");
    let log = std::env::temp_dir().join(format!("moto-{port}.log"));
    let guard = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 & pid=$!; cat >/dev/null; kill "$pid" 2>/dev/null; wait "$pid""#)
        .arg(moto_binary())
        .arg(port.to_string())
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if Instant::now() > deadline {
            let mut text = String::new();
            let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
            panic!("moto_server did not listen on port {port} within 30 s:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _guard: guard,
    }
}

fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start_moto)
}

/// Everything one test needs, with names unique to the test so tests share the
/// emulator without seeing each other's data.
pub struct TestEnv {
    pub sdk: aws_config::SdkConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub table: String,
    pub stream_arn: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
    pub store: Store,
    pub api: OrdersApi,
    pub queue: SqsOrderQueue,
}

impl TestEnv {
    pub async fn new() -> Self {
        let moto = moto();
        let sdk = ecommerce_api::aws::config_loader()
            .endpoint_url(&moto.endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let table = format!("orders-{suffix}");
        let stream_arn = create_table(&dynamodb, &table).await;
        let (queue_url, queue_arn, dlq_url) = create_queues(&sqs, &suffix).await;
        let store = Store::new(dynamodb.clone(), &table);
        Self {
            api: OrdersApi::new(store.clone()),
            queue: SqsOrderQueue::new(sqs.clone(), &queue_url),
            store,
            sdk,
            dynamodb,
            sqs,
            streams,
            table,
            stream_arn,
            queue_url,
            queue_arn,
            dlq_url,
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

    /// The Lambda SQS event for `messages`.
    pub fn sqs_event(&self, messages: &[aws_sdk_sqs::types::Message]) -> Box<RawValue> {
        let records: Vec<Value> = messages
            .iter()
            .map(|m| sqs_record(m, &self.queue_arn))
            .collect();
        raw(&json!({ "Records": records }))
    }
}

async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> String {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(
            [keys::PK, keys::SK, keys::GSI1PK, keys::GSI1SK]
                .map(attribute)
                .to_vec(),
        ))
        .key_schema(key(keys::PK, KeyType::Hash))
        .key_schema(key(keys::SK, KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(keys::GSI1)
                .key_schema(key(keys::GSI1PK, KeyType::Hash))
                .key_schema(key(keys::GSI1SK, KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expiration")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table
        .and_then(|t| t.latest_stream_arn)
        .expect("the table has a stream")
}

async fn create_queues(client: &aws_sdk_sqs::Client, suffix: &str) -> (String, String, String) {
    let arn_of = |url: String| async move {
        let attributes = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        (url, attributes[&QueueAttributeName::QueueArn].clone())
    };
    let dlq_url = client
        .create_queue()
        .queue_name(format!("orders-dlq-{suffix}"))
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let (dlq_url, dlq_arn) = arn_of(dlq_url).await;
    let redrive =
        json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT }).to_string();
    let queue_url = client
        .create_queue()
        .queue_name(format!("orders-{suffix}"))
        .attributes(QueueAttributeName::VisibilityTimeout, "180")
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let (queue_url, queue_arn) = arn_of(queue_url).await;
    (queue_url, queue_arn, dlq_url)
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
        let shards = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .unwrap()
            .stream_description
            .and_then(|d| d.shards)
            .unwrap_or_default();
        let mut records = Vec::new();
        for shard in shards {
            let request = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(shard.shard_id.unwrap());
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
                records.extend(
                    batch
                        .iter()
                        .map(|r| lambda_stream_record(r, &self.stream_arn)),
                );
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

/// A stream record as the Lambda event carries it.
fn lambda_stream_record(
    record: &aws_sdk_dynamodbstreams::types::Record,
    stream_arn: &str,
) -> Value {
    let change = record.dynamodb.as_ref().unwrap();
    let image = |item: &Option<HashMap<String, StreamValue>>| {
        item.as_ref().map(|item| {
            Value::Object(
                item.iter()
                    .map(|(k, v)| (k.clone(), attribute_json(v)))
                    .collect(),
            )
        })
    };
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": change.approximate_creation_date_time.map(|t| t.secs()),
        "Keys": image(&change.keys),
        "SequenceNumber": change.sequence_number,
        "SizeBytes": change.size_bytes.unwrap_or(0),
        "StreamViewType": change.stream_view_type.as_ref().map(|v| v.as_str().to_owned()),
    });
    if let Some(new) = image(&change.new_image) {
        dynamodb["NewImage"] = new;
    }
    if let Some(old) = image(&change.old_image) {
        dynamodb["OldImage"] = old;
    }
    json!({
        "eventID": record.event_id,
        "eventName": record.event_name.as_ref().map(|n| n.as_str().to_owned()),
        "eventVersion": record.event_version,
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    })
}

fn attribute_json(value: &StreamValue) -> Value {
    use aws_smithy_types::base64;
    match value {
        StreamValue::S(s) => json!({ "S": s }),
        StreamValue::N(n) => json!({ "N": n }),
        StreamValue::B(b) => json!({ "B": base64::encode(b.as_ref()) }),
        StreamValue::Ss(v) => json!({ "SS": v }),
        StreamValue::Ns(v) => json!({ "NS": v }),
        StreamValue::Bs(v) => {
            json!({ "BS": v.iter().map(|b| base64::encode(b.as_ref())).collect::<Vec<_>>() })
        }
        StreamValue::M(m) => {
            json!({ "M": m.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect::<serde_json::Map<_, _>>() })
        }
        StreamValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        StreamValue::Null(b) => json!({ "NULL": b }),
        StreamValue::Bool(b) => json!({ "BOOL": b }),
        other => panic!("unsupported attribute value {other:?}"),
    }
}

fn sqs_record(message: &aws_sdk_sqs::types::Message, queue_arn: &str) -> Value {
    let attributes: serde_json::Map<String, Value> = message
        .attributes
        .as_ref()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                .collect()
        })
        .unwrap_or_default();
    let message_attributes: serde_json::Map<String, Value> = message
        .message_attributes
        .as_ref()
        .map(|a| {
            a.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({ "stringValue": v.string_value, "stringListValues": [], "binaryListValues": [], "dataType": v.data_type }),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    })
}

/// A stream batch event for `records`.
pub fn stream_event(records: &[Value]) -> Box<RawValue> {
    raw(&json!({ "Records": records }))
}

pub fn raw(value: &Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).unwrap()
}
