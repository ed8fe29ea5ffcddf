//! `process-cart-products`: forwards new orders from the table's stream to the queue.

use ecommerce_api::pipeline::forward::{SqsOrderQueue, forward_orders};
use ecommerce_api::{aws, config};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use middleware::logging::{self, LogConfig};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    logging::init(&LogConfig::from_env())?;
    let queue_url = config::required(config::QUEUE_URL)?;
    let sdk = aws::sdk_config().await;
    let queue = SqsOrderQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url);

    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let queue = queue.clone();
        async move { forward_orders(&queue, &event.payload).await }
    }))
    .await
}
