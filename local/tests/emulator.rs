//! The emulator the local stack runs keeps DynamoDB's transaction guarantees under
//! concurrent clients. The transaction and query tests failed against plain moto 5.2
//! (see `local/src/moto_serve.py`): a cancelled transaction detached the stream from
//! open iterators (the pipeline stall), and dropped writes other clients made meanwhile.
//! The queue-count test guards a speed fix, so it passes against plain moto too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, StreamSpecification, StreamViewType,
    TransactWriteItem,
};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use local::moto::Moto;

fn moto() -> &'static Moto {
    local::moto::shared(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))).unwrap()
}

struct Table {
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    name: String,
    stream_arn: String,
}

/// A table keyed by `PK` and `SK`, with a stream of new images.
async fn table() -> Table {
    let sdk = local::resources::emulator_sdk_config(moto().endpoint(), "eu-west-1").await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let name = format!("t{}", uuid::Uuid::new_v4().simple());
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let created = dynamodb
        .create_table()
        .table_name(&name)
        .key_schema(key("PK", KeyType::Hash))
        .key_schema(key("SK", KeyType::Range))
        .attribute_definitions(attribute("PK"))
        .attribute_definitions(attribute("SK"))
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    Table {
        streams: aws_sdk_dynamodbstreams::Client::new(&sdk),
        stream_arn: created
            .table_description
            .unwrap()
            .latest_stream_arn
            .unwrap(),
        dynamodb,
        name,
    }
}

fn item(pk: &str, extra: &[(&str, &str)]) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("PK".to_owned(), AttributeValue::S(pk.to_owned())),
        ("SK".to_owned(), AttributeValue::S("ITEM".to_owned())),
    ]);
    for (name, value) in extra {
        item.insert((*name).to_owned(), AttributeValue::S((*value).to_owned()));
    }
    item
}

fn put_if_absent(table: &str, pk: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item(pk, &[("writer", "transaction")])))
                .condition_expression("attribute_not_exists(PK)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .unwrap(),
        )
        .build()
}

impl Table {
    async fn put(&self, pk: &str) {
        self.dynamodb
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item(pk, &[("writer", "put")])))
            .send()
            .await
            .unwrap();
    }

    async fn seed(&self, count: usize) {
        let padding = "x".repeat(200);
        for chunk in (0..count).collect::<Vec<_>>().chunks(25) {
            let writes = chunk
                .iter()
                .map(|i| {
                    let put = aws_sdk_dynamodb::types::PutRequest::builder()
                        .set_item(Some(item(&format!("seed{i}"), &[("padding", &padding)])))
                        .build()
                        .unwrap();
                    aws_sdk_dynamodb::types::WriteRequest::builder()
                        .put_request(put)
                        .build()
                })
                .collect();
            self.dynamodb
                .batch_write_item()
                .request_items(&self.name, writes)
                .send()
                .await
                .unwrap();
        }
    }

    async fn exists(&self, pk: &str) -> bool {
        let key = item(pk, &[]);
        self.dynamodb
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .is_some()
    }

    async fn iterator(&self, kind: ShardIteratorType) -> String {
        let shard = self
            .streams
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .unwrap()
            .stream_description
            .unwrap()
            .shards
            .unwrap()
            .remove(0)
            .shard_id
            .unwrap();
        self.streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap()
    }

    /// The partition keys of the records the iterator yields, and the next iterator.
    async fn read(&self, iterator: String) -> (Vec<String>, String) {
        let output = self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .unwrap();
        let keys = output
            .records
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| match r.dynamodb?.keys?.remove("PK")? {
                aws_sdk_dynamodbstreams::types::AttributeValue::S(pk) => Some(pk),
                _ => None,
            })
            .collect();
        (keys, output.next_shard_iterator.unwrap())
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError>
    {
        self.dynamodb
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
            .map_err(aws_sdk_dynamodb::error::SdkError::into_service_error)
    }
}

#[tokio::test]
async fn an_open_stream_iterator_keeps_reading_after_a_cancelled_transaction() {
    let table = table().await;
    let iterator = table.iterator(ShardIteratorType::TrimHorizon).await;
    table.put("before").await;
    let (read, iterator) = table.read(iterator).await;
    assert_eq!(read, ["before"]);

    let cancelled = table
        .transact(vec![put_if_absent(&table.name, "before")])
        .await;
    assert!(
        cancelled
            .as_ref()
            .is_err_and(|e| e.is_transaction_canceled_exception()),
        "{cancelled:?}"
    );

    table.put("after").await;
    let (read, _) = table.read(iterator).await;
    assert_eq!(
        read,
        ["after"],
        "the iterator held across a cancelled transaction must see the next record"
    );
}

#[tokio::test]
async fn a_cancelled_transaction_applies_nothing_and_names_the_existing_item() {
    let table = table().await;
    table.put("taken").await;
    let iterator = table.iterator(ShardIteratorType::Latest).await;

    // The first put would succeed on its own; the second cancels the transaction.
    let error = table
        .transact(vec![
            put_if_absent(&table.name, "fresh"),
            put_if_absent(&table.name, "taken"),
        ])
        .await
        .unwrap_err();
    let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancelled) = error else {
        panic!("expected a cancelled transaction, got {error:?}");
    };
    let reasons = cancelled.cancellation_reasons();
    assert_eq!(reasons.len(), 2);
    assert_eq!(reasons[1].code(), Some("ConditionalCheckFailed"));
    assert_eq!(
        reasons[1].item().and_then(|i| i.get("writer")),
        Some(&AttributeValue::S("put".to_owned())),
        "ALL_OLD returns the item that failed the condition"
    );

    assert!(
        !table.exists("fresh").await,
        "a cancelled transaction wrote an item"
    );
    let (read, _) = table.read(iterator).await;
    assert!(
        read.is_empty(),
        "a cancelled transaction left stream records: {read:?}"
    );

    // The same items commit once the condition holds, with a record each.
    let iterator = table.iterator(ShardIteratorType::Latest).await;
    table
        .transact(vec![
            put_if_absent(&table.name, "fresh"),
            put_if_absent(&table.name, "second"),
        ])
        .await
        .unwrap();
    assert!(table.exists("fresh").await && table.exists("second").await);
    let (read, _) = table.read(iterator).await;
    assert_eq!(read, ["fresh", "second"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_made_while_other_transactions_are_cancelled_are_kept() {
    let table = std::sync::Arc::new(table().await);
    // A table the size of a busy local run: plain moto copied it whole per
    // transaction, which is the window in which other writes were lost.
    table.seed(2000).await;
    table.put("contended").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let canceller = {
        let (table, stop) = (table.clone(), stop.clone());
        tokio::spawn(async move {
            let mut cancelled = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if table
                    .transact(vec![put_if_absent(&table.name, "contended")])
                    .await
                    .is_err()
                {
                    cancelled += 1;
                }
            }
            cancelled
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let table = table.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    table.put(&format!("w{writer}-{i}")).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let cancelled = canceller.await.unwrap();
    assert!(
        cancelled > 0,
        "no transaction was cancelled, so the test proved nothing"
    );

    let mut lost = Vec::new();
    for writer in 0..4 {
        for i in 0..40 {
            let pk = format!("w{writer}-{i}");
            if !table.exists(&pk).await {
                lost.push(pk);
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged puts lost while {cancelled} transactions were cancelled: {lost:?}",
        lost.len()
    );

    // Every acknowledged put is on the stream once, in a unique sequence number.
    let mut iterator = table.iterator(ShardIteratorType::TrimHorizon).await;
    let mut seen = Vec::new();
    loop {
        let (read, next) = table.read(iterator).await;
        if read.is_empty() {
            break;
        }
        seen.extend(read);
        iterator = next;
    }
    for writer in 0..4 {
        for i in 0..40 {
            let pk = format!("w{writer}-{i}");
            assert_eq!(seen.iter().filter(|s| **s == pk).count(), 1, "{pk}");
        }
    }
}

/// A Query on the base table reads its own partition (the emulator no longer sorts the
/// whole table for it) with DynamoDB's semantics: key conditions, order, paging.
#[tokio::test]
async fn a_query_reads_one_partition_in_order_with_paging() {
    let table = table().await;
    for pk in ["other-a", "target", "other-b"] {
        for i in 0..12 {
            let mut item = item(pk, &[]);
            item.insert("SK".to_owned(), AttributeValue::S(format!("LINE#{i:02}")));
            table
                .dynamodb
                .put_item()
                .table_name(&table.name)
                .set_item(Some(item))
                .send()
                .await
                .unwrap();
        }
        table.put(pk).await; // SK = ITEM, outside the LINE# prefix
    }
    let mut seen = Vec::new();
    let mut start = None;
    loop {
        let page = table
            .dynamodb
            .query()
            .table_name(&table.name)
            .key_condition_expression("PK = :pk AND begins_with(SK, :line)")
            .expression_attribute_values(":pk", AttributeValue::S("target".to_owned()))
            .expression_attribute_values(":line", AttributeValue::S("LINE#".to_owned()))
            .scan_index_forward(false)
            .limit(5)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            assert_eq!(item["PK"], AttributeValue::S("target".to_owned()));
            seen.push(item["SK"].as_s().unwrap().clone());
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (0..12).rev().map(|i| format!("LINE#{i:02}")).collect();
    assert_eq!(seen, expected);
    let missing = table
        .dynamodb
        .query()
        .table_name(&table.name)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("nobody".to_owned()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.count, 0);
}

/// A new standard queue: its client and URL.
async fn queue() -> (aws_sdk_sqs::Client, String) {
    let sdk = local::resources::emulator_sdk_config(moto().endpoint(), "eu-west-1").await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = sqs
        .create_queue()
        .queue_name(format!("q{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (sqs, url)
}

/// `AWSTraceHeader` set on a batch entry reaches the receiver, as on SQS (moto dropped
/// the system attributes of batch entries).
#[tokio::test]
async fn a_batch_entry_keeps_its_trace_header() {
    use aws_sdk_sqs::types::{
        MessageSystemAttributeName, MessageSystemAttributeNameForSends,
        MessageSystemAttributeValue, SendMessageBatchRequestEntry,
    };
    let (sqs, url) = queue().await;
    let header = "Root=1-6748d7a0-1c2b3d4e5f60718293a4b5c6;Parent=53995c3f42cd8ad8;Sampled=1";
    let traced = SendMessageBatchRequestEntry::builder()
        .id("traced")
        .message_body("a")
        .message_system_attributes(
            MessageSystemAttributeNameForSends::AwsTraceHeader,
            MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(header)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let plain = SendMessageBatchRequestEntry::builder()
        .id("plain")
        .message_body("b")
        .build()
        .unwrap();
    sqs.send_message_batch()
        .queue_url(&url)
        .entries(traced)
        .entries(plain)
        .send()
        .await
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let header_of = |body: &str| {
        received
            .iter()
            .find(|m| m.body() == Some(body))
            .and_then(|m| m.attributes())
            .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader).cloned())
    };
    assert_eq!(header_of("a").as_deref(), Some(header));
    assert_eq!(header_of("b"), None);
}

/// The queue's counts, which the local stack's patch computes with one clock reading
/// (moto read the clock once per queued message, on every SendMessage), still tell
/// visible, in-flight and delayed messages apart, and a receive returns only visible
/// ones.
#[tokio::test]
async fn queue_counts_tell_visible_in_flight_and_delayed_messages_apart() {
    use aws_sdk_sqs::types::QueueAttributeName;
    let (sqs, url) = queue().await;
    for body in ["a", "b", "c"] {
        sqs.send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    sqs.send_message()
        .queue_url(&url)
        .message_body("later")
        .delay_seconds(60)
        .send()
        .await
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(2)
        .visibility_timeout(60)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|m| m.body() != Some("later")));
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    let count = |name: QueueAttributeName| attributes.get(&name).cloned();
    assert_eq!(
        count(QueueAttributeName::ApproximateNumberOfMessages).as_deref(),
        Some("1")
    );
    assert_eq!(
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible).as_deref(),
        Some("2")
    );
    assert_eq!(
        count(QueueAttributeName::ApproximateNumberOfMessagesDelayed).as_deref(),
        Some("1")
    );
    let rest = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(rest.len(), 1);
    assert_ne!(rest[0].body(), Some("later"));
}
