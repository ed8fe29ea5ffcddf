//! `update-cart-products`: completes the order named by each queue message.

use ecommerce_api::pipeline::complete::{self, Completer};
use ecommerce_api::store::Store;
use ecommerce_api::{aws, config};
use lambda_runtime::{Error, Runtime};
use middleware::idempotency::{Idempotency, IdempotencyConfig};

// mimalloc rather than the system allocator: a stream batch's per-record work is
// allocation-heavy, and it costs a quarter less CPU with it (bench/benches/hot_path.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let powertools = middleware::invocation::init_from_env()?;
    let table = config::required(config::TABLE_NAME)?;
    let sdk = aws::sdk_config().await;
    let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), &table);
    let var = |name: &str| std::env::var(name).ok();
    let records = IdempotencyConfig::single_table(&table, complete::IDEMPOTENCY_PREFIX, var);
    let idempotency = Idempotency::new(store.client().clone(), records);
    // The batch response (the failed message ids) as `## handler` metadata.
    let service = tower::ServiceBuilder::new()
        .layer(middleware::xray::CaptureLayer::from_env())
        .service(Completer::new(store, idempotency).service());
    Runtime::new(service).layer(powertools).run().await
}
