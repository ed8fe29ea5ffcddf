//! Idempotency against a real moto server with the real SDK client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TransactWriteItem,
};
use local::moto::Moto;
use middleware::idempotency::on_item::attr as item_attr;
use middleware::idempotency::{
    Cleared, Idempotency, IdempotencyConfig, IdempotencyError, ItemOutcome, ItemWrite, Outcome,
    TransactionOutcome, payload_hash,
};

fn moto() -> &'static Moto {
    local::moto::shared(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))).unwrap()
}

async fn store(
    configure: impl FnOnce(&mut IdempotencyConfig),
) -> (Idempotency, aws_sdk_dynamodb::Client, String) {
    let sdk = local::resources::emulator_sdk_config(moto().endpoint(), "eu-west-1").await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("idem-{}", uuid::Uuid::new_v4().simple());
    let key = |name: &str, kind| {
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
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("PK", KeyType::Hash))
        .key_schema(key("SK", KeyType::Range))
        .attribute_definitions(attribute("PK"))
        .attribute_definitions(attribute("SK"))
        .send()
        .await
        .unwrap();
    let mut config = IdempotencyConfig::single_table(&table, "test-fn", |_| None);
    configure(&mut config);
    (Idempotency::new(client.clone(), config), client, table)
}

async fn counted(counter: &AtomicU32, result: u32) -> Result<u32, String> {
    counter.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(result)
}

/// Runs `key` with work that counts its calls and returns `result`.
async fn run_counted(
    idempotency: &Idempotency,
    key: &str,
    validation: Option<&str>,
    counter: &AtomicU32,
    result: u32,
) -> Outcome<u32> {
    idempotency
        .run(key, validation, || counted(counter, result))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_execute_once() {
    let (idempotency, _, _) = store(|_| {}).await;
    let idempotency = Arc::new(idempotency);
    let counter = Arc::new(AtomicU32::new(0));
    let runs: Vec<_> = (0..5)
        .map(|_| {
            let (idempotency, counter) = (Arc::clone(&idempotency), Arc::clone(&counter));
            tokio::spawn(
                async move { run_counted(&idempotency, "order-1", None, &counter, 7).await },
            )
        })
        .collect();
    let mut outcomes = Vec::new();
    for run in runs {
        outcomes.push(run.await.unwrap());
    }
    assert_eq!(counter.load(Ordering::SeqCst), 1);
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Outcome::Executed(7))
            .count(),
        1
    );
    assert!(outcomes.iter().all(|o| matches!(
        o,
        Outcome::Executed(7) | Outcome::Replayed(7) | Outcome::InFlight { .. }
    )));
    // Once completed, a repeat replays.
    assert_eq!(
        run_counted(&idempotency, "order-1", None, &counter, 8).await,
        Outcome::Replayed(7)
    );
    assert_eq!(counter.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_expired_record_runs_again() {
    let (idempotency, _, _) = store(|c| c.expires_after = Duration::from_secs(1)).await;
    let counter = AtomicU32::new(0);
    assert_eq!(
        run_counted(&idempotency, "k", None, &counter, 1).await,
        Outcome::Executed(1)
    );
    assert_eq!(
        run_counted(&idempotency, "k", None, &counter, 2).await,
        Outcome::Replayed(1)
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(
        run_counted(&idempotency, "k", None, &counter, 3).await,
        Outcome::Executed(3)
    );
}

#[tokio::test]
async fn a_lease_past_its_deadline_is_taken_over_and_a_live_one_is_in_flight() {
    let (idempotency, client, table) = store(|_| {}).await;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for (key, lease) in [("dead", now_ms - 1_000), ("alive", now_ms + 60_000)] {
        client
            .put_item()
            .table_name(&table)
            .item(
                "PK",
                AttributeValue::S(format!("IDEMPOTENCY#test-fn#{key}")),
            )
            .item("SK", AttributeValue::S("IDEMPOTENCY".into()))
            .item("status", AttributeValue::S("INPROGRESS".into()))
            .item(
                "expiration",
                AttributeValue::N((now_ms / 1000 + 3600).to_string()),
            )
            .item(
                "in_progress_expiration",
                AttributeValue::N(lease.to_string()),
            )
            .send()
            .await
            .unwrap();
    }
    let counter = AtomicU32::new(0);
    assert_eq!(
        run_counted(&idempotency, "dead", None, &counter, 1).await,
        Outcome::Executed(1)
    );
    assert_eq!(
        run_counted(&idempotency, "alive", None, &counter, 2).await,
        Outcome::InFlight {
            lease_expires_ms: now_ms + 60_000
        }
    );
    assert_eq!(counter.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_different_payload_is_refused_on_every_path() {
    let (idempotency, _, _) = store(|c| c.local_cache_size = 16).await;
    let counter = AtomicU32::new(0);
    let (a, b) = (
        payload_hash(b"{\"lines\":1}"),
        payload_hash(b"{\"lines\":2}"),
    );
    assert_eq!(
        run_counted(&idempotency, "k", Some(&a), &counter, 1).await,
        Outcome::Executed(1)
    );
    // The local cache answers now: it must validate too.
    assert!(matches!(
        idempotency
            .run("k", Some(&b), || counted(&counter, 2))
            .await,
        Err(IdempotencyError::PayloadMismatch { .. })
    ));
    assert_eq!(
        run_counted(&idempotency, "k", Some(&a), &counter, 3).await,
        Outcome::Replayed(1)
    );
    // And without the cache, from the store.
    let (uncached, _, _) = store(|_| {}).await;
    assert_eq!(
        run_counted(&uncached, "k", Some(&a), &counter, 4).await,
        Outcome::Executed(4)
    );
    assert!(matches!(
        uncached.run("k", Some(&b), || counted(&counter, 5)).await,
        Err(IdempotencyError::PayloadMismatch { .. })
    ));
}

#[tokio::test]
async fn falsy_results_are_replayed() {
    let (idempotency, _, _) = store(|_| {}).await;
    assert_eq!(
        idempotency
            .run("f", None, || async { Ok::<_, String>(false) })
            .await
            .unwrap(),
        Outcome::Executed(false)
    );
    assert_eq!(
        idempotency
            .run("f", None, || async { Ok::<_, String>(true) })
            .await
            .unwrap(),
        Outcome::Replayed(false)
    );
    assert_eq!(
        idempotency
            .run("n", None, || async { Ok::<Option<u8>, String>(None) })
            .await
            .unwrap(),
        Outcome::Executed(None)
    );
    assert_eq!(
        idempotency
            .run("n", None, || async { Ok::<_, String>(Some(1u8)) })
            .await
            .unwrap(),
        Outcome::Replayed(None)
    );
    assert_eq!(
        idempotency
            .run("e", None, || async { Ok::<Vec<u8>, String>(vec![]) })
            .await
            .unwrap(),
        Outcome::Executed(vec![])
    );
    assert_eq!(
        idempotency
            .run("e", None, || async { Ok::<_, String>(vec![1u8]) })
            .await
            .unwrap(),
        Outcome::Replayed(vec![])
    );
}

#[tokio::test]
async fn a_failed_run_releases_the_key() {
    let (idempotency, _, _) = store(|_| {}).await;
    let failed = idempotency
        .run("k", None, || async {
            Err::<u8, _>("downstream unavailable")
        })
        .await;
    assert!(matches!(
        failed,
        Err(IdempotencyError::Work("downstream unavailable"))
    ));
    assert_eq!(
        idempotency
            .run("k", None, || async { Ok::<_, String>(5u8) })
            .await
            .unwrap(),
        Outcome::Executed(5)
    );
}

/// The work's own write: the item `EFFECT`, put only if it does not exist.
fn effect(table: &str, value: &str) -> Vec<TransactWriteItem> {
    let put = Put::builder()
        .table_name(table)
        .item("PK", AttributeValue::S("EFFECT".into()))
        .item("SK", AttributeValue::S("1".into()))
        .item("value", AttributeValue::S(value.to_owned()))
        .condition_expression("attribute_not_exists(PK)")
        .build()
        .unwrap();
    vec![TransactWriteItem::builder().put(put).build()]
}

/// The `value` the `EFFECT` item holds.
async fn effect_value(client: &aws_sdk_dynamodb::Client, table: &str) -> AttributeValue {
    let stored = client
        .get_item()
        .table_name(table)
        .key("PK", AttributeValue::S("EFFECT".into()))
        .key("SK", AttributeValue::S("1".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    stored["value"].clone()
}

#[tokio::test]
async fn a_transaction_carries_the_record_in_one_write() {
    let (idempotency, client, table) = store(|_| {}).await;
    let effect = |value: &str| effect(&table, value);
    let first = idempotency
        .run_in_transaction("t", None, || async {
            Ok::<_, String>((1u8, effect("first")))
        })
        .await
        .unwrap();
    assert_eq!(first, TransactionOutcome::Done(Outcome::Executed(1)));
    let again = idempotency
        .run_in_transaction("t", None, || async {
            Ok::<_, String>((2u8, effect("second")))
        })
        .await
        .unwrap();
    assert_eq!(again, TransactionOutcome::Done(Outcome::Replayed(1)));
    // A new key whose work conflicts with the existing effect is cancelled by the work's
    // own condition, and says so.
    let other = idempotency
        .run_in_transaction("u", None, || async {
            Ok::<_, String>((3u8, effect("third")))
        })
        .await
        .unwrap();
    assert_eq!(
        other,
        TransactionOutcome::Cancelled(vec!["ConditionalCheckFailed".to_owned()])
    );
    assert_eq!(
        effect_value(&client, &table).await,
        AttributeValue::S("first".into())
    );
}

#[tokio::test]
async fn disabled_runs_every_time() {
    let (idempotency, _, _) = store(|c| c.disabled = true).await;
    let counter = AtomicU32::new(0);
    assert_eq!(
        run_counted(&idempotency, "k", None, &counter, 1).await,
        Outcome::Executed(1)
    );
    assert_eq!(
        run_counted(&idempotency, "k", None, &counter, 2).await,
        Outcome::Executed(2)
    );
}

/// The layer form: a per-request service behind `IdempotencyLayer`, keyed by a closure,
/// runs once per key and refuses the key with another payload.
#[tokio::test]
async fn the_layer_runs_its_service_once_per_key() {
    use middleware::idempotency::{IdempotencyLayer, RequestKey};
    use tower::{ServiceBuilder, ServiceExt, service_fn};
    let (idempotency, _, _) = store(|_| {}).await;
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let service = ServiceBuilder::new()
        .layer(IdempotencyLayer::new(
            Arc::new(idempotency),
            |(order, payload): &(String, String)| RequestKey {
                key: order.clone(),
                validation: Some(payload_hash(payload.as_bytes())),
            },
        ))
        .service(service_fn(move |(_, payload): (String, String)| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, String>(payload.len()) }
        }));
    let request = |order: &str, payload: &str| (order.to_owned(), payload.to_owned());
    let first = service
        .clone()
        .oneshot(request("o-1", "abc"))
        .await
        .unwrap();
    assert_eq!(first, Outcome::Executed(3));
    let again = service
        .clone()
        .oneshot(request("o-1", "abc"))
        .await
        .unwrap();
    assert_eq!(again, Outcome::Replayed(3));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let other_payload = service.clone().oneshot(request("o-1", "abcd")).await;
    assert!(
        matches!(other_payload, Err(IdempotencyError::PayloadMismatch { .. })),
        "{other_payload:?}"
    );
    let other_key = service.oneshot(request("o-2", "abcd")).await.unwrap();
    assert_eq!(other_key, Outcome::Executed(4));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// The transactional layer over a planner: the planner answers its result and its
/// writes, the layer commits them with the record in one transaction; a repeat is
/// replayed and writes nothing, and a plan whose own condition fails is cancelled.
#[tokio::test]
async fn the_transactional_layer_commits_the_plan_with_its_record() {
    use middleware::idempotency::{RequestKey, TransactionalIdempotencyLayer};
    use tower::{ServiceBuilder, ServiceExt, service_fn};
    let (idempotency, client, table) = store(|_| {}).await;
    let planner_table = table.clone();
    let service = ServiceBuilder::new()
        .layer(TransactionalIdempotencyLayer::new(
            Arc::new(idempotency),
            |(key, _): &(String, String)| RequestKey {
                key: key.clone(),
                validation: None,
            },
        ))
        .service(service_fn(move |(key, value): (String, String)| {
            let planned = effect(&planner_table, &value);
            async move { Ok::<_, String>((key, planned)) }
        }));
    let call = |key: &str, value: &str| service.clone().oneshot((key.to_owned(), value.to_owned()));
    assert_eq!(
        call("t", "first").await.unwrap(),
        TransactionOutcome::Done(Outcome::Executed("t".to_owned()))
    );
    assert_eq!(
        call("t", "second").await.unwrap(),
        TransactionOutcome::Done(Outcome::Replayed("t".to_owned()))
    );
    assert_eq!(
        call("u", "third").await.unwrap(),
        TransactionOutcome::Cancelled(vec!["ConditionalCheckFailed".to_owned()])
    );
    assert_eq!(
        effect_value(&client, &table).await,
        AttributeValue::S("first".into())
    );
}

/// With idempotency disabled the choice is made at construction: the transactional
/// layer becomes a plain transaction. The plan commits, no record is kept, and a repeat
/// runs again (here its own condition cancels it).
#[tokio::test]
async fn disabled_idempotency_builds_a_plain_transaction_that_keeps_no_record() {
    use middleware::idempotency::{RequestKey, TransactionalIdempotencyLayer};
    use tower::{ServiceBuilder, ServiceExt, service_fn};
    let (idempotency, client, table) = store(|c| c.disabled = true).await;
    let record_key = idempotency.config().record_key("t");
    let layer =
        TransactionalIdempotencyLayer::from_config(Arc::new(idempotency), |key: &String| {
            RequestKey {
                key: key.clone(),
                validation: None,
            }
        });
    assert!(matches!(layer, tower::util::Either::Right(_)));
    let planner_table = table.clone();
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(move |key: String| {
            let planned = effect(&planner_table, "plain");
            async move { Ok::<_, String>((key, planned)) }
        }));
    assert_eq!(
        service.clone().oneshot("t".to_owned()).await.unwrap(),
        TransactionOutcome::Done(Outcome::Executed("t".to_owned()))
    );
    assert_eq!(
        service.oneshot("t".to_owned()).await.unwrap(),
        TransactionOutcome::Cancelled(vec!["ConditionalCheckFailed".to_owned()])
    );
    let record = client
        .get_item()
        .table_name(&table)
        .set_key(Some(record_key))
        .send()
        .await
        .unwrap()
        .item;
    assert!(record.is_none(), "{record:?}");
}

/// An order-like item: `state` moves from `OPEN` to `DONE` once, `applied` counts it.
async fn put_business_item(client: &aws_sdk_dynamodb::Client, table: &str, id: &str) {
    client
        .put_item()
        .table_name(table)
        .item("PK", AttributeValue::S(format!("ITEM#{id}")))
        .item("SK", AttributeValue::S("ITEM".into()))
        .item("state", AttributeValue::S("OPEN".into()))
        .send()
        .await
        .unwrap();
}

fn item_key(id: &str) -> std::collections::HashMap<String, AttributeValue> {
    std::collections::HashMap::from([
        ("PK".to_owned(), AttributeValue::S(format!("ITEM#{id}"))),
        ("SK".to_owned(), AttributeValue::S("ITEM".into())),
    ])
}

/// The work: `OPEN` → `DONE`, `applied + 1`, guarded by `state = OPEN`.
fn finish(id: &str) -> ItemWrite {
    ItemWrite {
        key: item_key(id),
        condition: Some("#state = :open".to_owned()),
        set: vec!["#state = :done".to_owned()],
        add: vec!["applied :one".to_owned()],
        names: std::collections::HashMap::from([("#state".to_owned(), "state".to_owned())]),
        values: std::collections::HashMap::from([
            (":open".to_owned(), AttributeValue::S("OPEN".into())),
            (":done".to_owned(), AttributeValue::S("DONE".into())),
            (":one".to_owned(), AttributeValue::N("1".into())),
        ]),
        ..ItemWrite::default()
    }
}

async fn stored(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    id: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(table)
        .set_key(Some(item_key(id)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default()
}

#[tokio::test]
async fn on_the_item_the_record_commits_with_the_work_and_a_repeat_replays_without_a_read() {
    let (idempotency, client, table) = store(|_| {}).await;
    put_business_item(&client, &table, "a").await;
    let hash = payload_hash(b"payload");
    let run = |result: u8, validation: String| {
        let idempotency = &idempotency;
        async move {
            idempotency
                .run_on_item("a", Some(&validation), || async move {
                    Ok::<_, String>((result, finish("a")))
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(
        run(1, hash.clone()).await,
        ItemOutcome::Done(Outcome::Executed(1))
    );
    let item = stored(&client, &table, "a").await;
    assert_eq!(item["state"], AttributeValue::S("DONE".into()));
    assert_eq!(
        item[item_attr::STATUS],
        AttributeValue::S("COMPLETED".into())
    );
    assert_eq!(item[item_attr::KEY], AttributeValue::S("test-fn#a".into()));
    assert_eq!(item[item_attr::VALIDATION], AttributeValue::S(hash.clone()));
    assert!(
        !item.contains_key("expiration"),
        "never the table's TTL attribute"
    );
    // A repeat: refused by the record, answered from the refusal.
    assert_eq!(
        run(2, hash.clone()).await,
        ItemOutcome::Done(Outcome::Replayed(1))
    );
    assert_eq!(
        stored(&client, &table, "a").await,
        item,
        "the repeat wrote nothing"
    );
    // Another payload under the same key is refused.
    let mismatch = idempotency
        .run_on_item("a", Some(&payload_hash(b"other")), || async {
            Ok::<_, String>((3u8, finish("a")))
        })
        .await;
    assert!(matches!(
        mismatch,
        Err(IdempotencyError::PayloadMismatch { .. })
    ));
}

#[tokio::test]
async fn on_the_item_an_expired_record_leaves_the_answer_to_the_works_own_condition() {
    let (idempotency, client, table) = store(|config| {
        config.expires_after = Duration::ZERO;
    })
    .await;
    put_business_item(&client, &table, "b").await;
    let first = idempotency
        .run_on_item("b", None, || async { Ok::<_, String>((1u8, finish("b"))) })
        .await
        .unwrap();
    assert_eq!(first, ItemOutcome::Done(Outcome::Executed(1)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The record has expired: the work's own condition (state = OPEN) refuses, and the
    // refusal carries the item as stored.
    let again = idempotency
        .run_on_item("b", None, || async { Ok::<_, String>((2u8, finish("b"))) })
        .await
        .unwrap();
    match again {
        ItemOutcome::Refused(item) => {
            assert_eq!(item["state"], AttributeValue::S("DONE".into()));
            assert_eq!(item["applied"], AttributeValue::N("1".into()));
        }
        other => panic!("{other:?}"),
    }
    // No item at all: refused with nothing stored, and nothing created.
    let missing = idempotency
        .run_on_item("c", None, || async { Ok::<_, String>((1u8, finish("c"))) })
        .await
        .unwrap();
    assert_eq!(missing, ItemOutcome::Refused(Default::default()));
    assert!(stored(&client, &table, "c").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_item_concurrent_duplicates_apply_once() {
    let (idempotency, client, table) = store(|_| {}).await;
    put_business_item(&client, &table, "d").await;
    let idempotency = Arc::new(idempotency);
    let runs: Vec<_> = (0..4u8)
        .map(|i| {
            let idempotency = Arc::clone(&idempotency);
            tokio::spawn(async move {
                idempotency
                    .run_on_item(
                        "d",
                        None,
                        || async move { Ok::<_, String>((i, finish("d"))) },
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut executed = 0;
    for run in runs {
        if matches!(run.await.unwrap(), ItemOutcome::Done(Outcome::Executed(_))) {
            executed += 1;
        }
    }
    assert_eq!(executed, 1);
    assert_eq!(
        stored(&client, &table, "d").await["applied"],
        AttributeValue::N("1".into())
    );
}

#[tokio::test]
async fn on_the_item_a_lease_guards_work_with_outside_effects() {
    let (idempotency, client, table) = store(|_| {}).await;
    put_business_item(&client, &table, "e").await;
    // The work fails after taking the lease: the lease is given back.
    let failed = idempotency
        .run_on_item_leased(item_key("e"), "e", None, |_before| async {
            Err::<(u8, ItemWrite), _>("payment declined".to_owned())
        })
        .await;
    assert!(matches!(failed, Err(IdempotencyError::Work(_))));
    assert!(
        !stored(&client, &table, "e")
            .await
            .contains_key(item_attr::STATUS)
    );
    // The work sees the item as it was, and commits under its lease.
    let done = idempotency
        .run_on_item_leased(item_key("e"), "e", None, |before| async move {
            assert_eq!(before["state"], AttributeValue::S("OPEN".into()));
            Ok::<_, String>((7u8, finish("e")))
        })
        .await
        .unwrap();
    assert_eq!(done, ItemOutcome::Done(Outcome::Executed(7)));
    let item = stored(&client, &table, "e").await;
    assert_eq!(
        item[item_attr::STATUS],
        AttributeValue::S("COMPLETED".into())
    );
    assert!(!item.contains_key(item_attr::LEASE));
    // A repeat replays without running the work.
    let again = idempotency
        .run_on_item_leased::<u8, String, _, _>(item_key("e"), "e", None, |_| async {
            panic!("the work must not run again")
        })
        .await
        .unwrap();
    assert_eq!(again, ItemOutcome::Done(Outcome::Replayed(7)));

    // A live lease held by another run: in flight, and kept by a clear without force.
    put_business_item(&client, &table, "f").await;
    client
        .update_item()
        .table_name(&table)
        .set_key(Some(item_key("f")))
        .update_expression("SET idem_key = :k, idem_status = :s, idem_lease = :l")
        .expression_attribute_values(":k", AttributeValue::S("test-fn#f".into()))
        .expression_attribute_values(":s", AttributeValue::S("INPROGRESS".into()))
        .expression_attribute_values(":l", AttributeValue::N((now_ms() + 60_000).to_string()))
        .send()
        .await
        .unwrap();
    let busy = idempotency
        .run_on_item("f", None, || async { Ok::<_, String>((1u8, finish("f"))) })
        .await
        .unwrap();
    assert!(matches!(busy, ItemOutcome::Done(Outcome::InFlight { .. })));
    assert_eq!(
        idempotency.clear_stale_on_item(item_key("f"), false).await,
        Ok(Cleared::Kept("INPROGRESS".into()))
    );
    assert_eq!(
        idempotency.clear_stale_on_item(item_key("f"), true).await,
        Ok(Cleared::Deleted)
    );
    let item = stored(&client, &table, "f").await;
    assert_eq!(
        item["state"],
        AttributeValue::S("OPEN".into()),
        "the item itself stays"
    );
    assert!(!item.contains_key(item_attr::STATUS));
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}
