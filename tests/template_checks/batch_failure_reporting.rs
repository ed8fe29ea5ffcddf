//! The template and the code agree on partial-batch responses: every event source
//! mapping of a function that answers with `batchItemFailures` has
//! `FunctionResponseTypes: [ReportBatchItemFailures]` (without it Lambda ignores the
//! list and treats the batch as a success: the failed records are lost), and every
//! mapping with it points at a function that answers with the list (otherwise Lambda
//! reads a response without one as "all succeeded", whatever failed).
//!
//! What a function answers is not declared anywhere that could drift: each function's
//! real binary is run under the local Lambda Runtime API and sent a batch of the
//! mapping's kind holding one malformed record, which fails without any AWS call.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use local::function::{Function, FunctionConfig, Outcome};
use local::template::{SqsMappingSpec, StackSpec};
use serde_json::Value;
use tokio::sync::watch;

use super::workspace;

/// The kinds of batch an event source mapping delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Sqs,
    DynamoDbStream,
}

impl Kind {
    /// A batch of this kind with one malformed record, and the id Lambda expects back.
    fn probe(self) -> (&'static str, &'static str) {
        match self {
            Self::Sqs => (
                r#"{"Records":[{"messageId":"probe-1","body":"not an order","eventSource":"aws:sqs","attributes":{},"messageAttributes":{}}]}"#,
                "probe-1",
            ),
            // No eventName: the record does not parse.
            Self::DynamoDbStream => (
                r#"{"Records":[{"eventSource":"aws:dynamodb","dynamodb":{"SequenceNumber":"4200"}}]}"#,
                "4200",
            ),
        }
    }
}

/// One mapping as the check sees it.
#[derive(Debug, Clone)]
struct Mapping {
    name: String,
    function: String,
    kind: Kind,
    reports: bool,
}

fn mappings(stack: &StackSpec) -> Vec<Mapping> {
    let streams = stack.stream_mappings.iter().map(|m| Mapping {
        name: format!("stream of {} -> {}", m.table, m.function),
        function: m.function.clone(),
        kind: Kind::DynamoDbStream,
        reports: m.report_batch_item_failures,
    });
    let queues = stack.sqs_mappings.iter().map(|m| Mapping {
        name: format!("queue {} -> {}", m.queue, m.function),
        function: m.function.clone(),
        kind: Kind::Sqs,
        reports: m.report_batch_item_failures,
    });
    streams.chain(queues).collect()
}

/// Whether the function's binary answers a batch of `kind` with `batchItemFailures`
/// naming the failed record.
async fn answers_with_batch_item_failures(binary: &str, kind: Kind) -> bool {
    let binaries = Path::new(env!("CARGO_BIN_EXE_orders-api"))
        .parent()
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "batch-probe-{binary}-{}-{:?}",
        std::process::id(),
        kind
    ));
    std::fs::create_dir_all(&dir).unwrap();
    // Every variable the functions require, pointing nowhere: the probe makes no call.
    let environment = BTreeMap::from(
        [
            ("TABLE_NAME", "probe"),
            ("QUEUE_URL", "http://127.0.0.1:9/000000000000/probe"),
            ("POWERTOOLS_SERVICE_NAME", "probe"),
            ("POWERTOOLS_METRICS_NAMESPACE", "Probe"),
            ("POWERTOOLS_TRACE_DISABLED", "true"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_ACCESS_KEY_ID", "probe"),
            ("AWS_SECRET_ACCESS_KEY", "probe"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let (stop, stop_rx) = watch::channel(false);
    let function = Function::start(
        FunctionConfig {
            name: binary.to_owned(),
            binary: binaries.join(binary),
            timeout: Duration::from_secs(10),
            memory_mb: 128,
            region: "eu-west-1".to_owned(),
            environment,
            log_file: dir.join("function.log"),
            concurrency: 1,
        },
        stop_rx,
    )
    .await
    .unwrap();
    let (event, failed_id) = kind.probe();
    let outcome = function.invoke(event).await;
    stop.send_replace(true);
    function.stopped().await;
    let answered = match &outcome {
        Outcome::Response(body) => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| b.get("batchItemFailures").cloned())
            .and_then(|f| f.as_array().cloned())
            .is_some_and(|failures| failures.iter().any(|f| f["itemIdentifier"] == failed_id)),
        _ => false,
    };
    eprintln!("{binary} answered a {kind:?} batch with {outcome:?}");
    let _ = std::fs::remove_dir_all(dir);
    answered
}

/// Every disagreement between the mappings and what their functions answer.
async fn disagreements(stack: &StackSpec) -> Vec<String> {
    let mut problems = Vec::new();
    let mut answers: BTreeMap<(String, Kind), bool> = BTreeMap::new();
    for mapping in mappings(stack) {
        let function = stack
            .function(&mapping.function)
            .unwrap_or_else(|| panic!("{}: no function {}", mapping.name, mapping.function));
        let key = (function.binary.clone(), mapping.kind);
        let answers_list = match answers.get(&key) {
            Some(known) => *known,
            None => {
                let known = answers_with_batch_item_failures(&function.binary, mapping.kind).await;
                answers.insert(key, known);
                known
            }
        };
        match (answers_list, mapping.reports) {
            (true, false) => problems.push(format!(
                "{}: {} answers with batchItemFailures, but the mapping lacks \
                 FunctionResponseTypes: [ReportBatchItemFailures] (failed records would be lost)",
                mapping.name, mapping.function
            )),
            (false, true) => problems.push(format!(
                "{}: the mapping has ReportBatchItemFailures, but {} does not answer with \
                 batchItemFailures (every batch would count as a success)",
                mapping.name, mapping.function
            )),
            _ => {}
        }
    }
    problems
}

fn template() -> StackSpec {
    StackSpec::from_file(&workspace().join("template.yaml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mapping_reports_batch_item_failures_exactly_when_its_function_returns_them() {
    let stack = template();
    assert!(
        mappings(&stack).len() >= 2,
        "the template's stream and queue mappings"
    );
    assert_eq!(disagreements(&stack).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_without_the_setting_or_with_it_on_the_wrong_function_is_found() {
    // The queue mapping without ReportBatchItemFailures.
    let text = std::fs::read_to_string(workspace().join("template.yaml")).unwrap();
    let queue_mapping = "            MaximumBatchingWindowInSeconds: 0\n            FunctionResponseTypes: [ReportBatchItemFailures]\n";
    assert!(text.contains(queue_mapping), "the template changed shape");
    let without = StackSpec::from_yaml(&text.replace(
        queue_mapping,
        "            MaximumBatchingWindowInSeconds: 0\n",
    ))
    .unwrap();
    let problems = disagreements(&without).await;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("UpdateCartProductsFunction answers with batchItemFailures"),
        "{problems:#?}"
    );

    // A mapping with it, on the API function, which answers HTTP requests.
    let mut wrong = template();
    let mut mapping: SqsMappingSpec = wrong.sqs_mappings[0].clone();
    mapping.function = "OrdersApiFunction".to_owned();
    wrong.sqs_mappings.push(mapping);
    let problems = disagreements(&wrong).await;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("does not answer with batchItemFailures"),
        "{problems:#?}"
    );
}
