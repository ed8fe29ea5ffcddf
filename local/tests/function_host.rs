//! The local Lambda Runtime API and process supervision, exercised by small runtime
//! clients written in Python that speak the Runtime API over HTTP, as any custom
//! runtime does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use local::function::{Function, FunctionConfig, FunctionStats, Outcome};
use tokio::sync::watch;

const CLIENT: &str = r#"#!/usr/bin/env python3
import json, os, sys, time, urllib.request
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
base = f"http://{api}/2018-06-01/runtime"
mode = sys.argv[0].rsplit("-", 1)[-1]
marker = sys.argv[0] + ".started"
first_start = not os.path.exists(marker)
open(marker, "a").close()
if mode == "init":
    urllib.request.urlopen(urllib.request.Request(base + "/init/error", data=b'{"errorMessage":"missing TABLE_NAME","errorType":"Config"}', method="POST")).read()
    sys.exit(3)
while True:
    with urllib.request.urlopen(base + "/invocation/next") as r:
        headers = {k.lower(): v for k, v in r.headers.items()}
        body = r.read()
    rid = headers["lambda-runtime-aws-request-id"]
    if mode == "crash" and first_start:
        os._exit(1)
    if mode == "hang":
        time.sleep(3600)
    if mode == "error":
        req = urllib.request.Request(f"{base}/invocation/{rid}/error", data=b'{"errorMessage":"boom","errorType":"Handler.Boom"}', method="POST")
        req.add_header("Lambda-Runtime-Function-Error-Type", "Handler.Boom")
    else:
        event = json.loads(body)
        if isinstance(event, dict) and "sleep" in event:
            time.sleep(event["sleep"])
        env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "_HANDLER", "CUSTOM"))}
        out = json.dumps({"event": event, "headers": headers, "env": env, "pid": os.getpid()}).encode()
        req = urllib.request.Request(f"{base}/invocation/{rid}/response", data=out, method="POST")
    urllib.request.urlopen(req).read()
"#;

fn client(mode: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("runtime-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("bootstrap-{mode}"));
    std::fs::write(&path, CLIENT).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (path, dir)
}

async fn start(mode: &str, timeout: Duration) -> (Function, watch::Sender<bool>, PathBuf) {
    start_many(mode, timeout, 1).await
}

async fn start_many(
    mode: &str,
    timeout: Duration,
    concurrency: usize,
) -> (Function, watch::Sender<bool>, PathBuf) {
    let (binary, dir) = client(mode);
    let (stop, stop_rx) = watch::channel(false);
    let config = FunctionConfig {
        name: format!("fn-{mode}"),
        binary,
        timeout,
        memory_mb: 256,
        region: "eu-west-1".to_owned(),
        environment: BTreeMap::from([("CUSTOM_SETTING".to_owned(), "from-template".to_owned())]),
        log_file: dir.join("function.log"),
        concurrency,
    };
    (Function::start(config, stop_rx).await.unwrap(), stop, dir)
}

async fn stop(function: Function, stop: watch::Sender<bool>, dir: PathBuf) {
    let pids = function.pids();
    stop.send_replace(true);
    function.stopped().await;
    for pid in pids.into_iter().filter(|pid| *pid != 0) {
        assert!(
            !PathBuf::from(format!("/proc/{pid}")).exists(),
            "process {pid} outlived the stop"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn delivers_the_event_with_lambdas_headers_and_environment() {
    let (function, stopper, dir) = start("echo", Duration::from_secs(5)).await;
    let outcome = function.invoke(r#"{"Records":[1,2]}"#).await;
    let body: serde_json::Value =
        serde_json::from_slice(outcome.response().expect("a response")).unwrap();
    assert_eq!(body["event"]["Records"], serde_json::json!([1, 2]));
    let headers = &body["headers"];
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        headers["lambda-runtime-invoked-function-arn"],
        function.arn()
    );
    assert!(
        headers["lambda-runtime-trace-id"]
            .as_str()
            .unwrap()
            .starts_with("Root=1-")
    );
    let deadline: u128 = headers["lambda-runtime-deadline-ms"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(
        deadline > now && deadline <= now + 5_000,
        "deadline {deadline} vs now {now}"
    );
    let env = &body["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "fn-echo");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_REGION"], "eu-west-1");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/fn-echo");
    assert_eq!(env["CUSTOM_SETTING"], "from-template");
    // Its init (start to the first GET /next) was recorded, once.
    let init = function.stats().init_durations();
    assert_eq!(init.len(), 1);
    assert!(init[0] > Duration::ZERO && init[0] < Duration::from_secs(30));
    // A second event reuses the warm process.
    assert!(function.invoke("{}").await.response().is_some());
    assert_eq!(function.stats().init_durations().len(), 1);
    assert_eq!(FunctionStats::get(&function.stats().restarts), 0);
    assert_eq!(FunctionStats::get(&function.stats().invocations), 2);
    stop(function, stopper, dir).await;
}

#[tokio::test]
async fn a_crash_fails_the_invocation_it_held_and_the_process_is_restarted() {
    let (function, stopper, dir) = start("crash", Duration::from_secs(5)).await;
    assert!(
        matches!(function.invoke("{}").await, Outcome::Crashed(reason) if reason.contains("exited"))
    );
    // The restarted process (no longer on its first start) answers.
    assert!(function.invoke(r#"{"n":2}"#).await.response().is_some());
    assert_eq!(FunctionStats::get(&function.stats().restarts), 1);
    assert_eq!(FunctionStats::get(&function.stats().errors), 1);
    stop(function, stopper, dir).await;
}

#[tokio::test]
async fn an_init_failure_fails_the_waiting_invocation_with_the_reported_error() {
    let (function, stopper, dir) = start("init", Duration::from_secs(5)).await;
    match function.invoke("{}").await {
        Outcome::Crashed(reason) => assert!(reason.contains("missing TABLE_NAME"), "{reason}"),
        other => panic!("expected an init failure, got {other:?}"),
    }
    assert!(!function.init_errors().is_empty());
    stop(function, stopper, dir).await;
}

#[tokio::test]
async fn an_invocation_past_its_timeout_kills_and_restarts_the_process() {
    let (function, stopper, dir) = start("hang", Duration::from_millis(500)).await;
    let first_pid = loop {
        let pid = function.pid();
        if pid != 0 {
            break pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(function.invoke("{}").await, Outcome::TimedOut);
    for _ in 0..100 {
        if !PathBuf::from(format!("/proc/{first_pid}")).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !PathBuf::from(format!("/proc/{first_pid}")).exists(),
        "the timed-out process was not killed"
    );
    stop(function, stopper, dir).await;
}

#[tokio::test]
async fn a_reported_error_keeps_its_type() {
    let (function, stopper, dir) = start("error", Duration::from_secs(5)).await;
    match function.invoke("{}").await {
        Outcome::FunctionError { error_type, body } => {
            assert_eq!(error_type, "Handler.Boom");
            assert!(body.contains("boom"));
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    assert_eq!(FunctionStats::get(&function.stats().restarts), 0);
    stop(function, stopper, dir).await;
}

/// Several execution environments serve invocations at once, each with its own process;
/// killing one fails only the invocation it held.
#[tokio::test]
async fn concurrent_processes_serve_at_once_and_fail_alone() {
    let (function, stopper, dir) = start_many("echo", Duration::from_secs(10), 2).await;
    let pids = loop {
        let pids = function.pids();
        if pids.iter().all(|pid| *pid != 0) {
            break pids;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(pids.len(), 2);

    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(
        function.invoke(r#"{"sleep":1.0}"#),
        function.invoke(r#"{"sleep":1.0}"#)
    );
    let pid_of = |outcome: &Outcome| -> u64 {
        serde_json::from_slice::<serde_json::Value>(outcome.response().expect("a response"))
            .unwrap()["pid"]
            .as_u64()
            .unwrap()
    };
    assert_ne!(pid_of(&a), pid_of(&b), "two processes served them");
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "served at once, not one after the other: {:?}",
        started.elapsed()
    );

    let slow = || function.invoke(r#"{"sleep":3.0}"#);
    let killer = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        std::process::Command::new("kill")
            .args(["-9", &pids[0].to_string()])
            .status()
            .unwrap();
    };
    let (a, b, ()) = tokio::join!(slow(), slow(), killer);
    let crashed = [&a, &b]
        .iter()
        .filter(|o| matches!(o, Outcome::Crashed(_)))
        .count();
    assert_eq!(crashed, 1, "{a:?} {b:?}");
    assert!(a.response().is_some() || b.response().is_some());
    assert_eq!(FunctionStats::get(&function.stats().restarts), 1);
    stop(function, stopper, dir).await;
}
