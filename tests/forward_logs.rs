//! The stream function's failure lines name their own record's order or none. One test
//! in its own binary: it installs a scoped log subscriber, and `tracing` caches each
//! call site's interest process-wide, so a test running beside it on another thread
//! could register a call site as unwanted at the wrong moment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ecommerce_api::message::OrderMessage;
use ecommerce_api::order_queue::{OrderQueue, SendFailure};
use ecommerce_api::pipeline::forward::forward_orders;
use middleware::invocation::{InvocationState, Settings, scope};
use middleware::logging::{LogSettings, PowertoolsLogLayer};
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;

/// A queue that accepts everything but one order.
#[derive(Default)]
struct Queue {
    reject: Option<String>,
}

impl OrderQueue for Queue {
    async fn send_batch(&self, messages: &[OrderMessage]) -> Result<Vec<SendFailure>, String> {
        Ok(messages
            .iter()
            .enumerate()
            .filter(|(_, m)| Some(m.order_id.to_string()) == self.reject)
            .map(|(index, _)| SendFailure {
                index,
                reason: "throttled".into(),
            })
            .collect())
    }
}

/// A stream batch of `count` new ORDERED orders, sequence numbers `1000 + i`.
fn orders(count: usize) -> (Value, Vec<String>) {
    let mut event: Value =
        serde_json::from_str(include_str!("fixtures/dynamodb-stream-batch.json")).unwrap();
    let template = event["Records"][0].clone();
    let ids: Vec<String> = (0..count)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    event["Records"] = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut record = template.clone();
            record["dynamodb"]["NewImage"]["order_id"] = json!({ "S": id });
            record["dynamodb"]["SequenceNumber"] = format!("{}", 1000 + i).into();
            record
        })
        .collect();
    (event, ids)
}

/// The log lines one invocation of the stream function writes.
fn log_lines(queue: &Queue, event: &Value) -> Vec<Value> {
    let (sink, out) = middleware::sink::Sink::buffer();
    let mut logging = LogSettings::from_lookup(|_| None);
    logging.sink = sink;
    let settings = Settings {
        metrics: None,
        logging: logging.clone(),
        tracing: None,
        timeout_guard: None,
    };
    let subscriber = tracing_subscriber::registry().with(PowertoolsLogLayer::new(logging));
    let state = InvocationState::new(&lambda_runtime::Context::default(), false, &settings);
    let raw = serde_json::value::RawValue::from_string(event.to_string()).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime
            .block_on(scope(&state, forward_orders(queue, &raw)))
            .unwrap()
    });
    let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn line<'a>(lines: &'a [Value], starting: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(starting))
        })
        .unwrap_or_else(|| panic!("no line {starting:?} in {lines:#?}"))
}

/// A malformed record after forwarded orders carries none of their ids; a rejected
/// message carries its own.
#[test]
fn a_failure_line_names_its_own_order_or_none() {
    let (mut event, ids) = orders(3);
    let mut broken = event["Records"][0].clone();
    broken["dynamodb"]["NewImage"]["lines"] = json!({ "S": "not a list" });
    broken["dynamodb"]["SequenceNumber"] = "2000".into();
    event["Records"].as_array_mut().unwrap().push(broken);
    let lines = log_lines(&Queue::default(), &event);
    let failed = line(&lines, "stream record failed");
    assert_eq!(failed["sequence_number"], "2000");
    assert!(failed.get("correlation_id").is_none(), "{failed}");
    assert_eq!(line(&lines, "orders forwarded")["orders"], 3);

    let (event, ids_b) = orders(3);
    let rejecting = Queue {
        reject: Some(ids_b[1].clone()),
    };
    let lines = log_lines(&rejecting, &event);
    let failed = line(&lines, "order message not sent");
    assert_eq!(failed["correlation_id"], ids_b[1].as_str());
    assert_ne!(failed["correlation_id"], ids[0].as_str());
}
