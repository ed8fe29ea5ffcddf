//! The timeout guard on the local stack: the real `overrun` function (a handler under
//! the functions' Powertools layer that sleeps past its deadline) run by the local
//! Lambda Runtime API, with the local X-Ray daemon receiving its spans.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use local::function::{Function, FunctionConfig, FunctionStats, Outcome};
use serde_json::{Value, json};
use tokio::sync::watch;

const TIMEOUT: Duration = Duration::from_secs(2);

struct Overrun {
    function: Function,
    stop: watch::Sender<bool>,
    dir: PathBuf,
    xray: PathBuf,
}

async fn start(guard_ms: &str) -> Overrun {
    let dir = std::env::temp_dir().join(format!("overrun-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let xray = dir.join("xray.log");
    let daemon = local::xray::start(xray.clone(), stop_rx.clone())
        .await
        .unwrap();
    let environment = BTreeMap::from(
        [
            ("POWERTOOLS_SERVICE_NAME", "overrun"),
            ("POWERTOOLS_METRICS_NAMESPACE", "Fixture"),
            ("MIDDLEWARE_TIMEOUT_GUARD_MS", guard_ms),
            ("AWS_XRAY_DAEMON_ADDRESS", &daemon.to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let config = FunctionConfig {
        name: "overrun".to_owned(),
        binary: PathBuf::from(env!("CARGO_BIN_EXE_overrun")),
        timeout: TIMEOUT,
        memory_mb: 128,
        region: "eu-west-1".to_owned(),
        environment,
        log_file: dir.join("overrun.log"),
        concurrency: 1,
    };
    let function = Function::start(config, stop_rx).await.unwrap();
    Overrun {
        function,
        stop,
        dir,
        xray,
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The X-Ray documents, waiting a little for the last datagrams.
async fn documents(path: &Path, wanted: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..50 {
        let documents = json_lines(path);
        if wanted(&documents) {
            return documents;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    json_lines(path)
}

impl Overrun {
    async fn stop(self) {
        self.stop.send_replace(true);
        self.function.stopped().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_timed_out_invocation_leaves_its_metrics_warning_debug_lines_and_spans() {
    let overrun = start("500").await;
    let event = json!({"order": "order-7", "sleep_ms": 60_000, "error_first": true});
    let outcome = overrun.function.invoke(event.to_string()).await;

    // Reported as a failed invocation before Lambda's kill, which did not happen.
    let Outcome::FunctionError { error_type, body } = &outcome else {
        panic!("expected the guard's error report, got {outcome:?}");
    };
    assert_eq!(error_type, "Timeout", "{body}");
    let stats = overrun.function.stats();
    assert_eq!(
        FunctionStats::get(&stats.restarts),
        0,
        "the process lives on"
    );

    let lines = json_lines(overrun.function.log_file());
    // The metrics recorded before the overrun: one EMF blob with the metric.
    let blob = lines
        .iter()
        .find(|l| l.get("OrdersSeen").is_some())
        .unwrap_or_else(|| panic!("no metrics blob in {lines:#?}"));
    assert_eq!(blob["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Fixture");
    assert_eq!(blob["OrdersSeen"], json!(1.0));
    // The warning line names the work in progress.
    let warning = lines
        .iter()
        .find(|l| l["kind"] == "Timeout")
        .unwrap_or_else(|| panic!("no Timeout line in {lines:#?}"));
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["correlation_id"], "order-7");
    assert_eq!(warning["work_in_progress"], "order-7");
    assert_eq!(warning["margin_ms"], 500);
    // An error was logged, so the DEBUG line buffered after it is written out; the one
    // before it was written with the error, once.
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    let position = |m: &str| messages.iter().position(|x| *x == m);
    assert_eq!(
        messages
            .iter()
            .filter(|m| **m == "before the error")
            .count(),
        1
    );
    let after = position("after the error: starting the slow part")
        .unwrap_or_else(|| panic!("the buffered DEBUG line is lost: {messages:#?}"));
    let timeout_line = messages
        .iter()
        .position(|m| m.starts_with("Timeout:"))
        .unwrap();
    assert!(after > timeout_line, "written by the guard: {messages:#?}");

    // The spans: `## work` was ended by the cancellation, `## handler` marked failed.
    let xray = documents(&overrun.xray, |d| {
        d.iter().any(|d| d["name"] == "## handler") && d.iter().any(|d| d["name"] == "## work")
    })
    .await;
    let work = xray
        .iter()
        .find(|d| d["name"] == "## work")
        .unwrap_or_else(|| panic!("the open span was lost: {xray:#?}"));
    assert!(work["end_time"].as_f64().is_some(), "{work}");
    let handler = xray.iter().find(|d| d["name"] == "## handler").unwrap();
    assert_eq!(handler["fault"], true, "{handler}");
    assert_eq!(handler["annotations"]["correlation_id"], "order-7");

    // The next invocation runs in the same, warm process.
    let outcome = overrun
        .function
        .invoke(json!({"sleep_ms": 0}).to_string())
        .await;
    let response: Value = serde_json::from_slice(outcome.response().expect("a response")).unwrap();
    assert_eq!(response, json!({"slept_ms": 0}));
    assert_eq!(FunctionStats::get(&stats.restarts), 0);
    assert_eq!(stats.init_durations().len(), 1);
    overrun.stop().await;
}

#[tokio::test]
async fn without_the_guard_lambdas_kill_loses_the_invocations_telemetry() {
    let overrun = start("0").await;
    let event = json!({"order": "order-8", "sleep_ms": 60_000, "error_first": true});
    let outcome = overrun.function.invoke(event.to_string()).await;
    assert_eq!(outcome, Outcome::TimedOut);
    let lines = json_lines(overrun.function.log_file());
    assert!(
        lines.iter().all(|l| l.get("OrdersSeen").is_none()),
        "{lines:#?}"
    );
    assert!(lines.iter().all(|l| l["kind"] != "Timeout"), "{lines:#?}");
    let xray = json_lines(&overrun.xray);
    assert!(xray.iter().all(|d| d["name"] != "## work"), "{xray:#?}");
    overrun.stop().await;
}
