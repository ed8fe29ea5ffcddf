//! The operator commands against moto with the real SDK: the fixes the runbooks name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use ecommerce_api::api::{ApiRequest, Method};
use ecommerce_api::domain::OrderId;
use ecommerce_api::ops::{self, Cleared};
use ecommerce_api::pipeline::forward::forward_orders;
use serde_json::json;
use support::{TestEnv, stream_event};

/// Places an order and forwards it, then moves its message to the DLQ, as if the
/// consumer had failed it `maxReceiveCount` times (say, while the table was throttled).
async fn dead_lettered_order(env: &TestEnv, user: &str) -> String {
    let (mut ids, new_orders) = placed_orders(env, &[user]).await;
    forward_orders(&env.queue, &stream_event(&new_orders))
        .await
        .unwrap();
    let id = ids.pop().unwrap();
    let message = env.receive(&env.queue_url, None).await.pop().unwrap();
    let mut send = env
        .sqs
        .send_message()
        .queue_url(&env.dlq_url)
        .message_body(message.body.clone().unwrap());
    for (name, value) in message.message_attributes.clone().unwrap_or_default() {
        send = send.message_attributes(name, value);
    }
    send.send().await.unwrap();
    env.sqs
        .delete_message()
        .queue_url(&env.queue_url)
        .receipt_handle(message.receipt_handle.unwrap())
        .send()
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_redriven_order_completes_and_unselected_messages_stay() {
    let env = TestEnv::new().await;
    let id = dead_lettered_order(&env, "ops-ann").await;
    env.send_raw(&env.dlq_url, "{not json").await;

    let letters = ops::list_dead_letters(&env.sqs, &env.dlq_url, 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 2);
    let order = letters
        .iter()
        .find(|l| l.order_id.as_deref() == Some(id.as_str()))
        .expect("the order's message");
    assert_eq!(order.decoded.as_ref().unwrap().order_id.to_string(), id);
    let poison = letters.iter().find(|l| l.order_id.is_none()).unwrap();
    assert!(
        poison
            .decoded
            .as_ref()
            .unwrap_err()
            .contains("malformed order message")
    );
    // Listing does not consume.
    assert_eq!(
        ops::list_dead_letters(&env.sqs, &env.dlq_url, 10)
            .await
            .unwrap()
            .len(),
        2
    );

    let moved = ops::redrive(
        &env.sqs,
        &env.dlq_url,
        &env.queue_url,
        std::slice::from_ref(&id),
    )
    .await
    .unwrap();
    assert_eq!(moved.moved, std::slice::from_ref(&order.message_id));
    assert_eq!(moved.skipped, std::slice::from_ref(&poison.message_id));

    env.complete_queued(1).await;
    let journey = ops::journey(
        &aws_sdk_dynamodb::Client::new(&env.sdk),
        &env.table,
        &OrderId::parse(&id).unwrap(),
    )
    .await
    .unwrap();
    let states: Vec<&str> = journey.history.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(states, ["ORDERED", "PROCESSED"]);
    assert_eq!(
        journey.records.len(),
        1,
        "the order, one item, its lines inside"
    );
    assert_eq!(journey.idempotency.unwrap()["status"], "COMPLETED");
    let left = ops::list_dead_letters(&env.sqs, &env.dlq_url, 10)
        .await
        .unwrap();
    assert_eq!(
        left.len(),
        1,
        "the poison message stays for a person to look at"
    );
}

#[tokio::test]
async fn only_a_stale_idempotency_record_is_cleared_without_force() {
    let env = TestEnv::new().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&env.sdk);
    let now_ms = support::now_ms();
    let (stale, live) = (OrderId::random().to_string(), OrderId::random().to_string());
    for (key, lease) in [(&stale, now_ms - 1_000), (&live, now_ms + 60_000)] {
        env.put_lease("update-cart-products", key, lease).await;
    }
    let clear = |key: String, force: bool| {
        let (dynamodb, table) = (dynamodb.clone(), env.table.clone());
        async move {
            ops::clear_idempotency(&dynamodb, &table, "update-cart-products", &key, force)
                .await
                .unwrap()
        }
    };
    assert_eq!(clear(stale.clone(), false).await, Cleared::Deleted);
    assert_eq!(clear(stale, false).await, Cleared::Absent);
    assert_eq!(
        clear(live.clone(), false).await,
        Cleared::Kept("INPROGRESS".into())
    );
    assert_eq!(clear(live, true).await, Cleared::Deleted);
    // The key of a record kept on an order must be an order id.
    assert!(
        ops::clear_idempotency(&dynamodb, &env.table, "update-cart-products", "nope", false)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_cli_lists_and_redrives_the_dead_letter_queue() {
    let env = TestEnv::new().await;
    let id = dead_lettered_order(&env, "ops-cli").await;
    let ordersctl = |args: &[&str]| env.ordersctl(args);
    let listed = ordersctl(&["dlq", "list"]);
    assert_eq!(listed[0]["order_id"], id.as_str());
    let redriven = ordersctl(&["dlq", "redrive", "--all"]);
    assert_eq!(redriven["moved"].as_array().unwrap().len(), 1);
    assert_eq!(env.receive(&env.queue_url, None).await.len(), 1);
    let journey = ordersctl(&["order", &id]);
    assert_eq!(journey["history"][0][1], "ORDERED");
    // A mistyped id is refused with a clear message and a failing exit code.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_ordersctl"))
        .args(["order", "--table", "t", "not-an-id"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("order_id must be a UUID"));
}

/// Every distinct `ordersctl ...` command the runbooks spell, placeholders included.
fn runbook_commands() -> std::collections::BTreeSet<String> {
    let dir = support::workspace().join("alarms/runbooks");
    let mut commands = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // Commands are written as inline code: `ordersctl ...`.
        for (i, code) in text.split('`').enumerate() {
            if i % 2 == 1 && code.starts_with("ordersctl ") {
                commands.insert(code.to_owned());
            }
        }
    }
    commands
}

#[tokio::test]
async fn every_command_the_runbooks_name_runs_as_written_and_the_orders_complete() {
    let env = TestEnv::new().await;
    let first = dead_lettered_order(&env, "runbook-1").await;
    let second = dead_lettered_order(&env, "runbook-2").await;
    // A fourth that can never succeed: the runbook discards it.
    let fourth = dead_lettered_order(&env, "runbook-4").await;
    let fourth_message = ops::list_dead_letters(&env.sqs, &env.dlq_url, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.order_id.as_deref() == Some(fourth.as_str()))
        .unwrap()
        .message_id;
    // A third order whose stream batch Lambda set aside.
    let (placed, new_orders) = placed_orders(&env, &["runbook-3"]).await;
    let third = placed[0].clone();
    let set_aside = env.set_aside(&new_orders, None).await;

    let commands = runbook_commands();
    // Read-only commands first, then the fixes, the selective redrive before `--all`.
    let kinds = [
        "ordersctl dlq list",
        "ordersctl stream-failures list",
        "ordersctl order ",
        "ordersctl clear-idempotency ",
        "ordersctl dlq discard --only ",
        "ordersctl dlq redrive --only ",
        "ordersctl dlq redrive --all",
        "ordersctl resend ",
        "ordersctl stream-failures clear ",
    ];
    let rank = |command: &str| {
        kinds
            .iter()
            .position(|known| command.starts_with(known))
            .unwrap_or_else(|| panic!("a runbook names `{command}`, which this test does not run"))
    };
    let mut ordered: Vec<&String> = commands.iter().collect();
    ordered.sort_by_key(|c| rank(c));
    let mut outputs = Vec::new();
    for command in &ordered {
        let order = if command.starts_with("ordersctl dlq redrive --only") {
            &first
        } else if command.starts_with("ordersctl resend") {
            &third
        } else {
            &second
        };
        let message = if command.starts_with("ordersctl dlq discard") {
            &fourth_message
        } else {
            &set_aside
        };
        let args: Vec<&str> = command
            .split_whitespace()
            .skip(1)
            .filter(|a| *a != "...")
            .map(|a| a.trim_end_matches("..."))
            .map(|a| match a {
                "<order_id>" => order.as_str(),
                "<message_id>" => message.as_str(),
                other => other,
            })
            .collect();
        outputs.push((command.as_str(), env.ordersctl(&args)));
    }
    let named: std::collections::BTreeSet<usize> = ordered.iter().map(|c| rank(c)).collect();
    assert_eq!(
        named.len(),
        kinds.len(),
        "the runbooks name every kind of fix: {commands:?}"
    );
    let output = |prefix: &str| {
        outputs
            .iter()
            .find(|(c, _)| c.starts_with(prefix))
            .map(|(_, o)| o)
            .unwrap()
    };
    assert_eq!(output("ordersctl dlq list").as_array().unwrap().len(), 3);
    assert_eq!(
        output("ordersctl dlq discard")["discarded"],
        json!([fourth_message])
    );
    assert_eq!(
        output("ordersctl stream-failures list")[0]["orders"]["Ok"][0]["order_id"],
        third.as_str()
    );
    assert_eq!(
        output("ordersctl clear-idempotency").as_str(),
        Some("Absent")
    );
    for (prefix, moved) in [
        ("ordersctl dlq redrive --only", &first),
        ("ordersctl dlq redrive --all", &second),
    ] {
        let moved_ids = output(prefix)["moved"].as_array().unwrap().len();
        assert_eq!(moved_ids, 1, "{prefix} moved {moved}");
    }
    assert_eq!(output("ordersctl resend")[third.as_str()], "Sent");
    assert_eq!(
        output("ordersctl stream-failures clear")["moved"],
        json!([set_aside])
    );

    // All three orders are on the queue and complete exactly once.
    env.complete_queued(3).await;
    for id in [&first, &second, &third] {
        let journey = env.ordersctl(&["order", id]);
        assert_eq!(journey["history"][1][1], "PROCESSED", "{journey}");
    }
    assert!(
        env.ordersctl(&["dlq", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        env.ordersctl(&["stream-failures", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// Loads the catalogue, places one order per user and returns the order ids with the
/// Lambda-shaped stream records of those new orders (what the filter passes).
async fn placed_orders(env: &TestEnv, users: &[&str]) -> (Vec<String>, Vec<serde_json::Value>) {
    assert_eq!(
        env.api
            .handle(ApiRequest::new(Method::Post, "/loadProducts"))
            .await
            .status,
        200
    );
    let mut ids = Vec::new();
    for user in users {
        let add = ApiRequest::new(Method::Post, format!("/cart/{user}"))
            .json(r#"{"product_id":"webcam-1080","quantity":1}"#);
        assert_eq!(env.api.handle(add).await.status, 201);
        let placed = env
            .api
            .handle(
                ApiRequest::new(Method::Post, "/order")
                    .json(json!({ "user_id": user }).to_string()),
            )
            .await;
        ids.push(placed.json_body()["order_id"].as_str().unwrap().to_owned());
    }
    let new_orders = env
        .stream_reader()
        .next_records()
        .await
        .into_iter()
        .filter(|r| {
            let image = &r["dynamodb"]["NewImage"];
            r["eventName"] == "INSERT"
                && image["entity"]["S"] == "ORDER"
                && ids.iter().any(|id| image["order_id"]["S"] == id.as_str())
        })
        .collect();
    (ids, new_orders)
}

#[tokio::test]
async fn a_set_aside_stream_batch_is_listed_with_its_orders_which_resend_completes() {
    let env = TestEnv::new().await;
    let (ids, new_orders) = placed_orders(&env, &["sf-a", "sf-b"]).await;
    assert_eq!(new_orders.len(), 2);
    // Lambda gave up on the batch of both orders (the records between them, the
    // orders' lines and cart deletions, are in the range too and are not orders).
    let set_aside = env.set_aside(&new_orders, None).await;
    // The same range on a shard the stream no longer lists: every shard is read.
    let on_gone_shard = env
        .set_aside(&new_orders, Some("shardId-00000000000000000000-gone"))
        .await;
    env.send_raw(&env.stream_failure_url, "not an invocation record")
        .await;

    let listed = env.ordersctl(&["stream-failures", "list"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for message_id in [&set_aside, &on_gone_shard] {
        let entry = listed
            .iter()
            .find(|f| f["message_id"] == message_id.as_str())
            .unwrap();
        assert_eq!(entry["condition"], "RetryAttemptsExhausted");
        assert_eq!(entry["function_error"], "Unhandled");
        let orders = entry["orders"]["Ok"].as_array().unwrap();
        let found: Vec<(&str, &str)> = orders
            .iter()
            .map(|o| {
                (
                    o["order_id"].as_str().unwrap(),
                    o["status_now"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [(ids[0].as_str(), "ORDERED"), (ids[1].as_str(), "ORDERED")]
        );
    }
    let other = listed
        .iter()
        .find(|f| f["batch"].get("Err").is_some())
        .unwrap();
    assert!(
        other["batch"]["Err"]
            .as_str()
            .unwrap()
            .contains("not a stream invocation record"),
        "{other}"
    );

    // The runbook's fix: resend the orders, then clear the handled record.
    let resent = env.ordersctl(&["resend", &ids[0], &ids[1]]);
    assert_eq!(
        resent,
        json!({ ids[0].clone(): "Sent", ids[1].clone(): "Sent" })
    );
    env.complete_queued(2).await;
    assert_eq!(
        env.ordersctl(&["resend", &ids[0]]),
        json!({ ids[0].clone(): "AlreadyProcessed" })
    );
    let listed = env.ordersctl(&["stream-failures", "list"]);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["message_id"] == set_aside.as_str())
        .unwrap();
    assert!(
        entry["orders"]["Ok"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status_now"] == "PROCESSED"),
        "{entry}"
    );
    let cleared = env.ordersctl(&["stream-failures", "clear", &set_aside, &on_gone_shard]);
    let mut moved: Vec<&str> = cleared["moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    moved.sort_unstable();
    let mut expected = [set_aside.as_str(), on_gone_shard.as_str()];
    expected.sort_unstable();
    assert_eq!(moved, expected);
    assert_eq!(cleared["skipped"].as_array().unwrap().len(), 1);
    let left = env.ordersctl(&["stream-failures", "list"]);
    assert_eq!(
        left.as_array().unwrap().len(),
        1,
        "the undecodable record stays"
    );
    // An id that is not an order id is refused before anything is sent.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_ordersctl"))
        .args(["resend", "--table", "t", "--queue-url", "q", "not-an-id"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}
