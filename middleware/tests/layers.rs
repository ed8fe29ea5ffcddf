//! Each invocation-level layer alone, over `service_fn`, with `ServiceBuilder`: the
//! context layer (cold start, the facts), the metrics layer (cold-start blob, flush on
//! success, failure and cancellation) and the logging layer (event logging, lines that
//! carry the context).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::{Arc, Mutex};

use lambda_runtime::LambdaInvocation;
use middleware::context::{self, ContextLayer};
use middleware::logging::{LogSettings, LoggingLayer, PowertoolsLogLayer};
use middleware::metrics::{self, Metric, MetricsConfig, MetricsLayer, Sink, Unit};
use support::{invocation, lines};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tracing_subscriber::layer::SubscriberExt;

static SEEN: Metric = Metric::new("Seen", Unit::Count);

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn the_context_layer_makes_the_facts_current_and_only_the_first_invocation_is_cold() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let mut service = ServiceBuilder::new()
        .layer(ContextLayer::new())
        .service(service_fn(move |_: LambdaInvocation| {
            let record = Arc::clone(&record);
            async move {
                let facts = context::with_current(|c| {
                    (c.request_id.clone(), c.cold_start, c.function_name.clone())
                });
                record.lock().unwrap().push(facts.unwrap());
                Ok::<(), lambda_runtime::Error>(())
            }
        }));
    block_on(async {
        for id in ["a", "b"] {
            service
                .ready()
                .await
                .unwrap()
                .call(invocation(id, None))
                .await
                .unwrap();
        }
    });
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("a".to_owned(), true, "orders".to_owned()),
            ("b".to_owned(), false, "orders".to_owned())
        ]
    );
    assert_eq!(context::with_current(|c| c.deadline_ms), None);
}

#[test]
fn the_metrics_layer_writes_the_cold_start_and_flushes_even_a_failed_or_cancelled_invocation() {
    let (sink, out) = Sink::buffer();
    let config = Arc::new(MetricsConfig {
        namespace: "Shop".into(),
        service: "orders".into(),
        disabled: false,
        function_name: None,
        default_dimensions: Vec::new(),
        sink,
    });
    let mut service = ServiceBuilder::new()
        .layer(ContextLayer::new())
        .layer(MetricsLayer::new(config))
        .service(service_fn(|invocation: LambdaInvocation| async move {
            metrics::add(&SEEN, 1.0);
            match invocation.context.request_id.as_str() {
                "fails" => Err::<(), lambda_runtime::Error>("failed".into()),
                "hangs" => std::future::pending().await,
                _ => Ok(()),
            }
        }));
    block_on(async {
        service
            .ready()
            .await
            .unwrap()
            .call(invocation("ok", None))
            .await
            .unwrap();
        let failed = service
            .ready()
            .await
            .unwrap()
            .call(invocation("fails", None))
            .await;
        assert!(failed.is_err());
        let hanging = service
            .ready()
            .await
            .unwrap()
            .call(invocation("hangs", None));
        let cancelled = tokio::time::timeout(std::time::Duration::from_millis(10), hanging).await;
        assert!(cancelled.is_err());
    });
    let blobs = lines(&out);
    assert_eq!(blobs[0]["ColdStart"], 1.0, "{blobs:#?}");
    let seen: Vec<_> = blobs.iter().filter(|b| b.get("Seen").is_some()).collect();
    assert_eq!(seen.len(), 3, "one flush per invocation: {blobs:#?}");
    // Outside the layer nothing is recorded, and nothing fails.
    metrics::add(&SEEN, 1.0);
    assert_eq!(lines(&out).len(), blobs.len());
}

#[test]
fn the_logging_layer_logs_the_event_and_its_lines_carry_the_context() {
    let (sink, out) = Sink::buffer();
    let mut settings = LogSettings::from_lookup(|name| {
        (name == "POWERTOOLS_LOGGER_LOG_EVENT").then(|| "true".to_owned())
    });
    settings.sink = sink;
    let subscriber = tracing_subscriber::registry().with(PowertoolsLogLayer::new(settings.clone()));
    let service = ServiceBuilder::new()
        .layer(ContextLayer::new())
        .layer(LoggingLayer::new(settings))
        .service(service_fn(|_: LambdaInvocation| async {
            tracing::info!("handled");
            Ok::<(), lambda_runtime::Error>(())
        }));
    tracing::subscriber::with_default(subscriber, || {
        block_on(service.oneshot(invocation("req-7", None))).unwrap();
    });
    let logs = lines(&out);
    assert_eq!(logs[0]["message"], "Lambda event");
    assert_eq!(logs[1]["message"], "handled");
    assert!(
        logs.iter().all(|l| l["function_request_id"] == "req-7"),
        "{logs:#?}"
    );
}
