//! The invocation-level layer with the log and metrics layers, on real
//! `LambdaInvocation`s. One test per process-wide concern: cold start is per process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use lambda_runtime::LambdaInvocation;
use middleware::invocation::{PowertoolsLayer, Settings};
use middleware::logging::{self, LogSettings, PowertoolsLogLayer};
use middleware::metrics::{self, Metric, MetricsConfig, Sink, Unit};
use serde_json::Value;
use support::{invocation, lines, log_lines_of_one_invocation};
use tower::{Layer, Service, ServiceExt, service_fn};
use tracing_subscriber::layer::SubscriberExt;

const TRACE: &str = "Root=1-6748d7a0-1c2b3d4e5f60718293a4b5c6;Parent=53995c3f42cd8ad8;Sampled=1";

static HANDLED: Metric = Metric::new("Handled", Unit::Count);

#[test]
fn invocations_get_their_own_context_metrics_and_debug_buffer() {
    let (log_sink, log_out) = Sink::buffer();
    let (metric_sink, metric_out) = Sink::buffer();
    let mut log_settings = LogSettings::from_lookup(|name| {
        (name == "POWERTOOLS_SERVICE_NAME").then(|| "orders".to_owned())
    });
    log_settings.sink = log_sink;
    let metrics_config = MetricsConfig {
        namespace: "Shop".into(),
        service: "orders".into(),
        disabled: false,
        function_name: None,
        default_dimensions: Vec::new(),
        sink: metric_sink,
    };
    let settings = Settings {
        tracing: None,
        timeout_guard: None,
        metrics: Some(Arc::new(metrics_config)),
        logging: log_settings.clone(),
    };
    let subscriber = tracing_subscriber::registry().with(PowertoolsLogLayer::new(log_settings));

    let inner = service_fn(|invocation: LambdaInvocation| async move {
        let id = invocation.context.request_id.clone();
        logging::set_correlation_id(format!("order-of-{id}"));
        tracing::debug!(step = 1, "looked the order up");
        metrics::add(&HANDLED, 1.0);
        // Let the other invocation run in between: state must not leak across.
        tokio::task::yield_now().await;
        tracing::info!("handled");
        if id == "req-fails" {
            tracing::error!(
                error = &std::io::Error::other("disk on fire") as &dyn std::error::Error,
                "could not handle"
            );
            return Err::<(), lambda_runtime::Error>("failed".into());
        }
        Ok(())
    });
    let layer = PowertoolsLayer::new(settings);
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut first = layer.layer(inner);
            first.ready().await.unwrap();
            let a = first.call(invocation("req-a", Some(TRACE)));
            let mut second = layer.layer(inner);
            second.ready().await.unwrap();
            let b = second.call(invocation("req-fails", Some(TRACE)));
            let (a, b) = tokio::join!(a, b);
            assert!(a.is_ok());
            assert!(b.is_err());
            tracing::info!("outside any invocation");
        });
    });

    let logs = lines(&log_out);
    let handled: Vec<&Value> = logs.iter().filter(|l| l["message"] == "handled").collect();
    assert_eq!(handled.len(), 2);
    for line in &handled {
        let id = line["function_request_id"].as_str().unwrap();
        assert_eq!(
            line["correlation_id"],
            format!("order-of-{id}"),
            "state leaked between invocations"
        );
        assert_eq!(line["xray_trace_id"], "1-6748d7a0-1c2b3d4e5f60718293a4b5c6");
        assert_eq!(line["level"], "INFO");
        assert!(
            line["location"]
                .as_str()
                .unwrap()
                .contains("invocation_layer.rs:")
        );
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    // Exactly one of the two concurrent invocations is the cold start, and only its
    // lines carry what is constant for the execution environment.
    let (cold, warm): (Vec<&&Value>, Vec<&&Value>) =
        handled.iter().partition(|l| l["cold_start"] == true);
    assert_eq!((cold.len(), warm.len()), (1, 1), "{handled:?}");
    assert_eq!(cold[0]["function_name"], "orders");
    assert_eq!(cold[0]["function_memory_size"], 256);
    assert_eq!(
        cold[0]["function_arn"],
        "arn:aws:lambda:eu-west-1:1:function:orders"
    );
    assert_eq!(cold[0]["service"], "orders");
    for constant in [
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "service",
    ] {
        assert!(warm[0].get(constant).is_none(), "{constant} on a warm line");
    }

    // DEBUG lines stay in the buffer unless the invocation logs an error.
    let debug: Vec<&Value> = logs.iter().filter(|l| l["level"] == "DEBUG").collect();
    assert_eq!(
        debug.len(),
        1,
        "only the failing invocation's DEBUG line is written"
    );
    assert_eq!(debug[0]["function_request_id"], "req-fails");
    let error_at = logs.iter().position(|l| l["level"] == "ERROR").unwrap();
    let debug_at = logs.iter().position(|l| l["level"] == "DEBUG").unwrap();
    assert!(debug_at < error_at, "buffered lines come before the error");
    assert_eq!(logs[error_at]["exception"], "disk on fire");
    assert_eq!(logs[error_at]["exception_name"], "Custom");
    // The error line carries every key but `sampling_rate` (no sampling here) and, if
    // its invocation was warm, the environment's constants; no line carries a key
    // outside `logging::KEYS` besides its event's own (`step`).
    let error_was_cold = logs[error_at]["cold_start"] == true;
    let error_keys: Vec<&str> = logs[error_at]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in logging::KEYS {
        let expected = !["sampling_rate", "record_id", "idempotency_key"].contains(&key)
            && (error_was_cold || !logging::ENVIRONMENT_KEYS.contains(&key));
        assert_eq!(
            error_keys.contains(&key),
            expected,
            "{key} in {error_keys:?}"
        );
    }
    for line in &logs {
        for key in line.as_object().unwrap().keys() {
            assert!(
                logging::KEYS.contains(&key.as_str()) || key == "step",
                "{key} is not in logging::KEYS"
            );
        }
    }

    let outside = logs
        .iter()
        .find(|l| l["message"] == "outside any invocation")
        .unwrap();
    assert!(outside.get("function_request_id").is_none());
    assert!(outside.get("correlation_id").is_none());

    // Metrics: one ColdStart blob, then one blob per invocation, also the failed one.
    let blobs = lines(&metric_out);
    assert_eq!(
        blobs
            .iter()
            .filter(|b| b.get("ColdStart").is_some())
            .count(),
        1
    );
    let handled_blobs: Vec<&Value> = blobs
        .iter()
        .filter(|b| b.get("Handled").is_some())
        .collect();
    assert_eq!(handled_blobs.len(), 2);
    assert!(handled_blobs.iter().all(|b| b["Handled"] == 1.0));
}

#[test]
fn log_event_writes_the_event_first() {
    let inner = service_fn(|_: LambdaInvocation| async {
        tracing::info!("handled");
        Ok::<(), lambda_runtime::Error>(())
    });
    let logs = log_lines_of_one_invocation(&[("POWERTOOLS_LOGGER_LOG_EVENT", "true")], inner);
    assert_eq!(logs[0]["message"], "Lambda event");
    assert_eq!(logs[0]["event"], r#"{"Records":[]}"#);
    assert_eq!(logs[0]["function_request_id"], "req-one");
    assert_eq!(logs[1]["message"], "handled");
}

#[test]
fn a_sampled_invocation_writes_debug_lines_directly() {
    let inner = service_fn(|_: LambdaInvocation| async {
        tracing::debug!("details");
        Ok::<(), lambda_runtime::Error>(())
    });
    let logs = log_lines_of_one_invocation(&[("POWERTOOLS_LOGGER_SAMPLE_RATE", "1")], inner);
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["level"], "DEBUG");
    assert_eq!(logs[0]["sampling_rate"], 1.0);
}

/// The DEBUG buffer keeps the application's DEBUG lines; dependencies' DEBUG events (the
/// AWS SDK logs several per call) are stopped where they are made, unless the level is
/// DEBUG outright.
#[test]
fn the_debug_buffer_holds_the_application_not_its_dependencies() {
    let run = |vars: &[(&str, &str)]| {
        let (sink, out) = Sink::buffer();
        let mut logging = LogSettings::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        });
        logging.sink = sink;
        let settings = Settings {
            metrics: None,
            logging: logging.clone(),
            tracing: None,
            timeout_guard: None,
        };
        let subscriber = tracing_subscriber::registry().with(logging::layer(&logging));
        let inner = service_fn(|_: LambdaInvocation| async {
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "dependency detail");
            tracing::debug!("application detail");
            tracing::error!("failed");
            Ok::<(), lambda_runtime::Error>(())
        });
        support::invoke_once(subscriber, settings, inner, invocation("req", None));
        lines(&out)
            .iter()
            .map(|l| l["message"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(&[]), ["application detail", "failed"]);
    assert_eq!(
        run(&[("POWERTOOLS_LOG_LEVEL", "DEBUG")]),
        ["dependency detail", "application detail", "failed"]
    );
}

/// An SQS record of queue `q` with this id and body.
fn sqs_record(message_id: &str, body: &str) -> Value {
    serde_json::json!({
        "messageId": message_id,
        "receiptHandle": "r",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:1:q",
        "awsRegion": "eu-west-1",
    })
}

/// Each record of a batch has its own correlation id. In `[A completes, B's body does
/// not parse]`, B's failure line must not name A's order (it did: one slot per
/// invocation), and a batch-level line after the records names none.
#[test]
fn a_failure_line_carries_its_own_records_id_or_none() {
    let inner = service_fn(|_: LambdaInvocation| async {
        let event = serde_json::json!({"Records": [
            sqs_record("a", r#"{"order_id":"order-A"}"#),
            sqs_record("b", "not json"),
            sqs_record("c", r#"{"order_id":"order-C","fail":true}"#),
        ]});
        let raw = serde_json::value::RawValue::from_string(event.to_string()).unwrap();
        let idempotency = &support::disabled_idempotency();
        let response = middleware::batch::process_sqs(&raw, |message| async move {
            let order: Value = serde_json::from_str(message.body.as_deref().unwrap_or_default())
                .map_err(|e| format!("body does not parse: {e}"))?;
            let id = order["order_id"].as_str().unwrap_or_default().to_owned();
            logging::set_correlation_id(id.as_str());
            if order["fail"] == true {
                return Err("refused".to_owned());
            }
            idempotency
                .run(&id, None, || async {
                    tracing::warn!("a write was throttled; retried");
                    tracing::info!("order completed");
                    Ok::<(), String>(())
                })
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(response.batch_item_failures.len(), 2);
        tracing::info!("batch done");
        Ok::<(), lambda_runtime::Error>(())
    });
    let logs = log_lines_of_one_invocation(&[], inner);
    let line = |message: &str, id: Option<&str>| {
        logs.iter()
            .find(|l| l["message"] == message && id.is_none_or(|id| l["message_id"] == id))
            .unwrap_or_else(|| panic!("no line {message:?} in {logs:#?}"))
    };
    let a = line("a write was throttled; retried", None);
    assert_eq!(a["correlation_id"], "order-A");
    // A record's warnings name the record and, inside idempotent work, its key ...
    assert_eq!(a["record_id"], "a");
    assert_eq!(a["idempotency_key"], "IDEMPOTENCY#orders#order-A");
    // ... its successes only the order.
    let completed = line("order completed", None);
    assert_eq!(completed["correlation_id"], "order-A");
    for key in ["record_id", "idempotency_key"] {
        assert!(completed.get(key).is_none(), "{completed}");
    }
    let b = line("SQS record failed", Some("b"));
    assert!(b.get("correlation_id").is_none(), "{b}");
    assert_eq!(b["record_id"], "b");
    let c = line("SQS record failed", Some("c"));
    assert_eq!(c["correlation_id"], "order-C");
    assert_eq!(c["record_id"], "c");
    assert!(c.get("idempotency_key").is_none(), "{c}");
    let done = line("batch done", None);
    for key in ["correlation_id", "record_id", "idempotency_key"] {
        assert!(done.get(key).is_none(), "{done}");
    }
}
