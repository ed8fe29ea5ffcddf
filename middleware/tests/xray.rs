//! X-Ray output, received as UDP datagrams on a local socket standing in for the daemon.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::UdpSocket;
use std::time::Duration;

use lambda_runtime::LambdaInvocation;
use middleware::invocation::{Settings, Tracing};
use middleware::logging::{self, LogSettings};
use middleware::metrics::Sink;
use middleware::xray::{self, TracingConfig};
use serde_json::Value;
use serde_json::value::RawValue;
use support::{invocation, invoke_once};
use tower::service_fn;
use tracing_subscriber::layer::SubscriberExt;

const LAMBDA_PARENT: &str = "53995c3f42cd8ad8";
const PRODUCER_PARENT: &str = "1111222233334444";

/// An X-Ray trace id of now: X-Ray refuses trace ids whose time is far in the past.
fn trace_id(suffix: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!("1-{now:08x}-{suffix}")
}

/// Runs one traced invocation of `handler` (under the invocation layer, Lambda's
/// trace `lambda_trace`) and returns the documents the daemon received.
fn traced<S>(lambda_trace: &str, handler: S) -> Vec<Value>
where
    S: tower::Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let daemon = UdpSocket::bind("127.0.0.1:0").unwrap();
    daemon
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let config = TracingConfig {
        disabled: false,
        daemon: daemon.local_addr().unwrap(),
        service: "orders".into(),
    };
    let (span_layer, provider) = xray::layer(&config).unwrap();
    let mut log_settings = LogSettings::from_lookup(|_| None);
    log_settings.sink = Sink::buffer().0;
    let subscriber = tracing_subscriber::registry()
        .with(logging::layer(&log_settings))
        .with(span_layer);
    let tracing = Tracing {
        service: "orders".into(),
        provider: None,
    };
    let settings = Settings {
        metrics: None,
        logging: log_settings,
        tracing: Some(tracing),
        timeout_guard: None,
    };
    let header = format!("Root={lambda_trace};Parent={LAMBDA_PARENT};Sampled=1");
    invoke_once(
        subscriber,
        settings,
        handler,
        invocation("req-1", Some(&header)),
    );
    drop(provider);

    let mut documents = Vec::new();
    let mut buffer = [0u8; 65_536];
    while let Ok(size) = daemon.recv(&mut buffer) {
        let datagram = std::str::from_utf8(&buffer[..size]).unwrap();
        let (header, body) = datagram
            .split_once('\n')
            .expect("a header line, then the document");
        assert_eq!(
            serde_json::from_str::<Value>(header).unwrap(),
            serde_json::json!({"format": "json", "version": 1})
        );
        documents.push(serde_json::from_str::<Value>(body).unwrap());
    }
    documents
}

fn named<'a>(documents: &'a [Value], name: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {documents:#?}"))
}

#[test]
fn subsegments_reach_the_daemon_with_their_trace_parents_and_annotations() {
    let lambda_trace = trace_id("1c2b3d4e5f60718293a4b5c6");
    let producer_trace = trace_id("aaaaaaaaaaaaaaaaaaaaaaaa");
    let header = format!("Root={producer_trace};Parent={PRODUCER_PARENT};Sampled=1");
    let handler = service_fn(move |_: LambdaInvocation| {
        let header = header.clone();
        async move {
            // A dependency's own INFO span (lambda_runtime opens one per invocation).
            tracing::info_span!(target: "lambda_runtime::layers::trace", "Lambda runtime invoke")
                .in_scope(|| {});
            let event = RawValue::from_string(format!(
            r#"{{"Records":[{{"messageId":"m1","body":"x","attributes":{{"AWSTraceHeader":"{header}"}}}}]}}"#
        ))
        .unwrap();
            middleware::batch::process_sqs(&event, |_| async {
                logging::set_correlation_id("order-9");
                tracing::info_span!("store call").in_scope(|| {
                    // The shape of an AWS SDK operation span: DEBUG, with `rpc.system`.
                    tracing::debug_span!("DynamoDB.TransactWriteItems", "rpc.system" = "aws-api")
                        .in_scope(|| {});
                    tracing::debug_span!("serialization").in_scope(|| {});
                });
                Ok::<(), String>(())
            })
            .await
            .unwrap();
            Ok::<(), lambda_runtime::Error>(())
        }
    });
    let documents = traced(&lambda_trace, handler);
    let named = |name: &str| named(&documents, name);

    let handler = named("## handler");
    assert_eq!(handler["type"], "subsegment");
    assert_eq!(handler["trace_id"], lambda_trace.as_str());
    assert_eq!(
        handler["parent_id"], LAMBDA_PARENT,
        "a child of Lambda's own segment"
    );
    assert_eq!(handler["annotations"]["ColdStart"], true);
    assert_eq!(handler["annotations"]["Service"], "orders");
    assert_eq!(handler["annotations"]["FunctionName"], "orders");

    let record = named("## record");
    assert_eq!(
        record["trace_id"],
        producer_trace.as_str(),
        "the consumer's record joins the producer's trace"
    );
    assert_eq!(record["parent_id"], PRODUCER_PARENT);
    assert_eq!(record["annotations"]["correlation_id"], "order-9");

    let call = named("store call");
    assert_eq!(call["trace_id"], producer_trace.as_str());
    assert_eq!(call["parent_id"], record["id"], "nested under the record");
    assert!(call["end_time"].as_f64().unwrap() >= call["start_time"].as_f64().unwrap());
    let sdk = named("DynamoDB.TransactWriteItems");
    assert_eq!(
        sdk["parent_id"], call["id"],
        "an SDK call is a subsegment of the span that made it"
    );
    assert!(
        documents.iter().all(|d| d["name"] != "serialization"),
        "the SDK's internal spans stay out"
    );
    assert!(
        documents
            .iter()
            .all(|d| d["name"] != "Lambda runtime invoke"),
        "dependencies' own spans stay out"
    );
}

/// A typed handler under the capture layer: an SQS batch whose second record fails.
fn batch_handler(
    capture: xray::Capture,
    fail_invocation: bool,
) -> tower::util::BoxService<LambdaInvocation, (), lambda_runtime::Error> {
    tower::util::BoxService::new(service_fn(move |_: LambdaInvocation| async move {
        use tower::ServiceExt as _;
        let typed = tower::ServiceBuilder::new()
            .layer(xray::CaptureLayer::new(capture))
            .service(service_fn(move |event: Box<RawValue>| async move {
                if fail_invocation {
                    return Err("the event is not a batch".to_owned());
                }
                let idempotency = &support::disabled_idempotency();
                middleware::batch::process_sqs(&event, |message| async move {
                    let body = message.body.unwrap_or_default();
                    if body == "bad" {
                        return Err("refused".to_owned());
                    }
                    idempotency
                        .run(&body, None, || async { Ok::<(), String>(()) })
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())
            }));
        let event = RawValue::from_string(
            r#"{"Records":[{"messageId":"m1","body":"order-1"},{"messageId":"m2","body":"bad"}]}"#
                .to_owned(),
        )
        .unwrap();
        // The handler's own error is the runtime's to report; the invocation goes on.
        let _ = typed.oneshot(event).await;
        Ok::<(), lambda_runtime::Error>(())
    }))
}

#[test]
fn the_handlers_response_and_batch_outcome_are_on_its_subsegment_and_the_key_on_the_record() {
    let everything = xray::Capture::from_lookup(|_| None);
    assert_eq!(
        everything,
        xray::Capture {
            response: true,
            error: true
        },
        "on by default, as in Powertools"
    );
    let documents = traced(
        &trace_id("2c2b3d4e5f60718293a4b5c6"),
        batch_handler(everything, false),
    );
    let handler = named(&documents, "## handler");
    assert_eq!(handler["annotations"]["batch_records"], 2);
    assert_eq!(handler["annotations"]["batch_failures"], 1);
    let response: Value =
        serde_json::from_str(handler["metadata"]["response"].as_str().unwrap()).unwrap();
    assert_eq!(
        response,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "m2"}]})
    );
    assert!(handler.get("fault").is_none_or(|f| f == false), "{handler}");
    let first = documents
        .iter()
        .find(|d| d["name"] == "## record" && d["annotations"]["idempotency_key"].is_string())
        .unwrap_or_else(|| panic!("no record with its key in {documents:#?}"));
    assert_eq!(
        first["annotations"]["idempotency_key"],
        "IDEMPOTENCY#orders#order-1"
    );

    // Off, nothing is captured; the annotations stay.
    let off = xray::Capture::from_lookup(|name| {
        name.starts_with("POWERTOOLS_TRACER_CAPTURE_")
            .then(|| "false".to_owned())
    });
    let documents = traced(
        &trace_id("3c2b3d4e5f60718293a4b5c6"),
        batch_handler(off, false),
    );
    let handler = named(&documents, "## handler");
    assert!(handler["metadata"].get("response").is_none(), "{handler}");
    assert_eq!(handler["annotations"]["batch_failures"], 1);
}

#[test]
fn a_handlers_error_is_captured_and_its_subsegment_marked_failed() {
    let documents = traced(
        &trace_id("4c2b3d4e5f60718293a4b5c6"),
        batch_handler(xray::Capture::from_lookup(|_| None), true),
    );
    let handler = named(&documents, "## handler");
    assert_eq!(handler["metadata"]["error"], "the event is not a batch");
    assert_eq!(handler["fault"], true, "{handler}");
    assert!(handler["metadata"].get("response").is_none(), "{handler}");
}
