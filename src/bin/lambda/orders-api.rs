//! `orders-api`: the HTTP API behind API Gateway.

use std::convert::Infallible;

use ecommerce_api::api::OrdersApi;
use ecommerce_api::api::lambda::{to_api_request, to_lambda_response};
use ecommerce_api::store::Store;
use ecommerce_api::{aws, config};
use lambda_http::{Error, service_fn};
use middleware::logging::{self, LogConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    logging::init(&LogConfig::from_env())?;
    let table = config::required(config::TABLE_NAME)?;
    let sdk = aws::sdk_config().await;
    let api = OrdersApi::new(Store::new(aws_sdk_dynamodb::Client::new(&sdk), table));

    lambda_http::run(service_fn(move |request| {
        let api = api.clone();
        async move {
            Ok::<_, Infallible>(to_lambda_response(
                api.handle(to_api_request(request)).await,
            ))
        }
    }))
    .await
}
