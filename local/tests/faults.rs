//! The fault proxy, seen by the real AWS SDK: each fault, forced on every call, has
//! the effect AWS's would have (an error the SDK classifies and retries, a
//! cancelled transaction, a partly failed batch, an error for a write that happened).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TransactWriteItem,
};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use local::faults::{self, Fault, FaultPlan, ProxyHandle};
use local::moto::Moto;
use tokio::sync::watch;

fn moto() -> &'static Moto {
    local::moto::shared(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))).unwrap()
}

struct Setup {
    /// Straight to the emulator.
    direct: aws_config::SdkConfig,
    /// Through a proxy that injects `fault` on every call.
    proxied: aws_config::SdkConfig,
    proxy: ProxyHandle,
    table: String,
    queue_url: String,
    _shutdown: watch::Sender<bool>,
}

async fn setup(fault: Fault) -> Setup {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let plan = FaultPlan {
        rate: 1.0,
        seed: 3,
        min_latency: Duration::from_millis(50),
        max_latency: Duration::from_millis(300),
        only: Some(fault),
    };
    let proxy = faults::start(moto().endpoint(), plan, shutdown_rx)
        .await
        .unwrap();
    let direct = local::resources::emulator_sdk_config(moto().endpoint(), "eu-west-1").await;
    let proxied = local::resources::emulator_sdk_config(&proxy.endpoint, "eu-west-1").await;
    let table = format!("t{}", uuid::Uuid::new_v4().simple());
    aws_sdk_dynamodb::Client::new(&direct)
        .create_table()
        .table_name(&table)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("PK")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("PK")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let queue_url = aws_sdk_sqs::Client::new(&direct)
        .create_queue()
        .queue_name(format!("q{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Setup {
        direct,
        proxied,
        proxy,
        table,
        queue_url,
        _shutdown: shutdown,
    }
}

impl Setup {
    async fn put(&self, pk: &str) -> Result<(), aws_sdk_dynamodb::Error> {
        aws_sdk_dynamodb::Client::new(&self.proxied)
            .put_item()
            .table_name(&self.table)
            .item("PK", AttributeValue::S(pk.to_owned()))
            .send()
            .await
            .map(drop)
            .map_err(Into::into)
    }

    async fn exists(&self, pk: &str) -> bool {
        aws_sdk_dynamodb::Client::new(&self.direct)
            .get_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S(pk.to_owned()))
            .send()
            .await
            .unwrap()
            .item
            .is_some()
    }
}

#[tokio::test]
async fn service_errors_have_aws_codes_and_are_retried_by_the_sdk() {
    for (fault, code) in [
        (
            Fault::ProvisionedThroughputExceeded,
            "ProvisionedThroughputExceededException",
        ),
        (Fault::Throttling, "ThrottlingException"),
        (Fault::InternalServerError, "InternalServerError"),
        (Fault::Http503, "ServiceUnavailable"),
        (Fault::Http500, "InternalFailure"),
    ] {
        let setup = setup(fault).await;
        let error = setup.put("a").await.unwrap_err();
        assert_eq!(error.code(), Some(code), "{fault:?}: {error:?}");
        assert!(!setup.exists("a").await, "{fault:?}: nothing was applied");
        // The SDK classified it as retryable: every attempt reached the proxy.
        assert_eq!(setup.proxy.stats.total_calls(), 3, "{fault:?}");
        assert_eq!(setup.proxy.stats.faults()[&fault], 3);
        assert_eq!(setup.proxy.stats.dynamodb_writes(), 3);
    }
}

#[tokio::test]
async fn sqs_throttling_is_request_throttled() {
    let setup = setup(Fault::Throttling).await;
    let error = aws_sdk_sqs::Client::new(&setup.proxied)
        .send_message()
        .queue_url(&setup.queue_url)
        .message_body("m")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_request_throttled(), "{error:?}");
    assert_eq!(setup.proxy.stats.total_calls(), 3, "retried as throttling");
}

#[tokio::test]
async fn a_transaction_conflict_cancels_the_transaction_and_applies_nothing() {
    let setup = setup(Fault::TransactionConflict).await;
    let puts = ["x", "y"].map(|pk| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&setup.table)
                    .item("PK", AttributeValue::S(pk.to_owned()))
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let error = aws_sdk_dynamodb::Client::new(&setup.proxied)
        .transact_write_items()
        .set_transact_items(Some(puts.to_vec()))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancelled) = error else {
        panic!("{error:?}");
    };
    let codes: Vec<_> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|r| r.code().unwrap_or_default())
        .collect();
    assert_eq!(codes.len(), 2);
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == "TransactionConflict")
            .count(),
        1,
        "{codes:?}"
    );
    assert!(codes.contains(&"None"));
    assert!(!setup.exists("x").await && !setup.exists("y").await);
}

#[tokio::test]
async fn a_partial_batch_sends_only_the_entries_it_does_not_list_as_failed() {
    let setup = setup(Fault::PartialBatch).await;
    let entries: Vec<_> = (0..10)
        .map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(format!("m{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let output = aws_sdk_sqs::Client::new(&setup.proxied)
        .send_message_batch()
        .queue_url(&setup.queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .unwrap();
    let failed: Vec<&str> = output.failed().iter().map(|f| f.id()).collect();
    assert!(!failed.is_empty(), "at least one entry fails");
    assert_eq!(output.successful().len() + failed.len(), 10);
    let mut on_queue = Vec::new();
    let sqs = aws_sdk_sqs::Client::new(&setup.direct);
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&setup.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            break;
        }
        for message in received {
            on_queue.push(message.body.unwrap().trim_start_matches('m').to_owned());
            sqs.delete_message()
                .queue_url(&setup.queue_url)
                .receipt_handle(message.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    on_queue.sort();
    let mut sent: Vec<String> = output
        .successful()
        .iter()
        .map(|s| s.id().to_owned())
        .collect();
    sent.sort();
    assert_eq!(on_queue, sent, "exactly the entries not listed as failed");
}

#[tokio::test]
async fn a_reset_before_the_request_applies_nothing_and_after_it_hides_a_write() {
    let before = setup(Fault::ResetBeforeApplied).await;
    assert!(before.put("a").await.is_err());
    assert!(!before.exists("a").await);
    assert_eq!(
        before.proxy.stats.total_calls(),
        3,
        "a dropped connection is retried"
    );

    let after = setup(Fault::ResetAfterApplied).await;
    assert!(after.put("b").await.is_err(), "the client sees an error");
    assert!(after.exists("b").await, "for a write that happened");
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let setup = setup(Fault::Latency).await;
    let started = Instant::now();
    setup.put("slow").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(setup.exists("slow").await);
}

#[tokio::test]
async fn without_faults_the_proxy_counts_calls_by_operation() {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let proxy = faults::start(moto().endpoint(), FaultPlan::NONE, shutdown_rx)
        .await
        .unwrap();
    let sdk = local::resources::emulator_sdk_config(&proxy.endpoint, "eu-west-1").await;
    aws_sdk_dynamodb::Client::new(&sdk)
        .list_tables()
        .send()
        .await
        .unwrap();
    aws_sdk_sqs::Client::new(&sdk)
        .list_queues()
        .send()
        .await
        .unwrap();
    let calls = proxy.stats.calls();
    assert_eq!(calls.get("DynamoDB.ListTables"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("SQS.ListQueues"), Some(&1), "{calls:?}");
    assert_eq!(proxy.stats.total_faults(), 0);
    assert_eq!(proxy.stats.dynamodb_writes(), 0);
    assert_eq!(proxy.stats.dynamodb_write_units(), 0);
    drop(shutdown);
}
