//! Shared helpers of the middleware's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use lambda_runtime::{Context, LambdaInvocation};
use middleware::invocation::{PowertoolsLayer, Settings};
use middleware::logging::{LogSettings, PowertoolsLogLayer};
use middleware::metrics::Sink;
use serde_json::Value;
use tower::{Layer, Service, ServiceExt};
use tracing_subscriber::layer::SubscriberExt;

/// A real `LambdaInvocation` for function `orders`, optionally traced.
pub fn invocation(request_id: &str, trace_header: Option<&str>) -> LambdaInvocation {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "lambda-runtime-deadline-ms",
        "4102444800000".parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:eu-west-1:1:function:orders"
            .parse()
            .unwrap(),
    );
    if let Some(header) = trace_header {
        headers.insert("lambda-runtime-trace-id", header.parse().unwrap());
    }
    let config = lambda_runtime::Config {
        function_name: "orders".into(),
        memory: 256,
        ..Default::default()
    };
    let context = Context::new(request_id, Arc::new(config), &headers).unwrap();
    let (parts, ()) = http::Response::new(()).into_parts();
    LambdaInvocation {
        parts,
        body: bytes::Bytes::from_static(b"{\"Records\":[]}"),
        context,
    }
}

/// The JSON lines written to a buffer sink.
pub fn lines(buffer: &Arc<Mutex<Vec<u8>>>) -> Vec<Value> {
    String::from_utf8(buffer.lock().unwrap().clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Runs one invocation of `inner` through the invocation layer with log settings read
/// from `vars`, and returns the log lines it wrote.
pub fn log_lines_of_one_invocation<S>(vars: &[(&str, &str)], inner: S) -> Vec<Value>
where
    S: Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error> + Send + 'static,
    S::Future: Send + 'static,
{
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
    let subscriber = tracing_subscriber::registry().with(PowertoolsLogLayer::new(logging));
    invoke_once(subscriber, settings, inner, invocation("req-one", None));
    lines(&out)
}

/// Runs one invocation of `inner` through the invocation layer, with `subscriber` as
/// the only subscriber for the duration.
pub fn invoke_once<Sub, S>(
    subscriber: Sub,
    settings: Settings,
    inner: S,
    invocation: LambdaInvocation,
) where
    Sub: tracing::Subscriber + Send + Sync + 'static,
    S: Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error> + Send + 'static,
    S::Future: Send + 'static,
{
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime
            .block_on(
                PowertoolsLayer::new(settings)
                    .layer(inner)
                    .oneshot(invocation),
            )
            .unwrap();
    });
}

/// Idempotency that is turned off (`POWERTOOLS_IDEMPOTENCY_DISABLED`): the work runs
/// every time and no AWS call is made, but the key is still set on the record's lines
/// and span. Records are prefixed `orders`.
#[allow(dead_code, reason = "not every test binary uses it")]
pub fn disabled_idempotency() -> middleware::idempotency::Idempotency {
    middleware::idempotency::Idempotency::new(
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version_latest()
                .build(),
        ),
        middleware::idempotency::IdempotencyConfig::single_table("t", "orders", |_| {
            Some("true".to_owned())
        }),
    )
}
