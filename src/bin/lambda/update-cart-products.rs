//! `update-cart-products`: completes the order named by each queue message.

use ecommerce_api::pipeline::complete::complete_orders;
use ecommerce_api::store::Store;
use ecommerce_api::{aws, config};
use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let powertools = middleware::invocation::init_from_env()?;
    let table = config::required(config::TABLE_NAME)?;
    let sdk = aws::sdk_config().await;
    let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), table);

    let handler = service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let store = store.clone();
        async move { complete_orders(&store, &event.payload).await }
    });
    Runtime::new(handler).layer(powertools).run().await
}
