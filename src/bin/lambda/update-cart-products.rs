//! `update-cart-products`: completes the order named by each queue message.

use ecommerce_api::pipeline::complete::complete_orders;
use ecommerce_api::store::Store;
use ecommerce_api::{aws, config};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use middleware::logging::{self, LogConfig};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    logging::init(&LogConfig::from_env())?;
    let table = config::required(config::TABLE_NAME)?;
    let sdk = aws::sdk_config().await;
    let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), table);

    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let store = store.clone();
        async move { complete_orders(&store, &event.payload).await }
    }))
    .await
}
