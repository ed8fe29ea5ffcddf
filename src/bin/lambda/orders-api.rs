//! `orders-api`: the HTTP API behind API Gateway.

use ecommerce_api::api::{OrdersApi, lambda};
use ecommerce_api::store::Store;
use ecommerce_api::{aws, config};
use lambda_http::{Adapter, Error};

// mimalloc rather than the system allocator: a stream batch's per-record work is
// allocation-heavy, and it costs a quarter less CPU with it (bench/benches/hot_path.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let powertools = middleware::invocation::init_from_env()?;
    let table = config::required(config::TABLE_NAME)?;
    let sdk = aws::sdk_config().await;
    let api = OrdersApi::new(Store::new(aws_sdk_dynamodb::Client::new(&sdk), table));
    lambda_runtime::Runtime::new(Adapter::from(lambda::service(api)))
        .layer(powertools)
        .run()
        .await
}
