//! A function that overruns its deadline when its event asks, under the functions'
//! `PowertoolsLayer`: the timeout guard's fixture (`bench/tests/timeout_guard.rs`).
//!
//! Event: `{"order": "order-7", "sleep_ms": 60000, "error_first": true}`. The handler
//! sets the order as its correlation id, records one `OrdersSeen` metric, logs a DEBUG
//! line (and, with `error_first`, an ERROR line and a DEBUG line after it), then sleeps
//! inside a `## work` span.

use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
use middleware::metrics::{self, Metric, Unit};
use serde::Deserialize;
use tracing::Instrument as _;

static ORDERS_SEEN: Metric = Metric::new("OrdersSeen", Unit::Count);

#[derive(Deserialize)]
struct Overrun {
    #[serde(default)]
    order: Option<String>,
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    error_first: bool,
}

async fn handler(event: LambdaEvent<Overrun>) -> Result<serde_json::Value, Error> {
    let event = event.payload;
    if let Some(order) = &event.order {
        middleware::logging::set_correlation_id(order.as_str());
    }
    metrics::add(&ORDERS_SEEN, 1.0);
    tracing::debug!("before the error");
    if event.error_first {
        tracing::error!("a dependency failed; carrying on");
        tracing::debug!("after the error: starting the slow part");
    }
    tokio::time::sleep(Duration::from_millis(event.sleep_ms))
        .instrument(tracing::info_span!("## work"))
        .await;
    Ok(serde_json::json!({ "slept_ms": event.sleep_ms }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let powertools = middleware::invocation::init_from_env()?;
    let handler = tower::ServiceBuilder::new()
        .layer(middleware::xray::CaptureLayer::from_env())
        .service(service_fn(handler));
    Runtime::new(handler).layer(powertools).run().await
}
