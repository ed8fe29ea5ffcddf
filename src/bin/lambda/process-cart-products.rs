//! `process-cart-products`: forwards new orders from the table's stream to the queue.

use ecommerce_api::order_queue::SqsOrderQueue;
use ecommerce_api::pipeline::forward;
use ecommerce_api::{aws, config};
use lambda_runtime::{Error, Runtime};

// mimalloc rather than the system allocator: a stream batch's per-record work is
// allocation-heavy, and it costs a quarter less CPU with it (bench/benches/hot_path.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let powertools = middleware::invocation::init_from_env()?;
    let queue_url = config::required(config::QUEUE_URL)?;
    let sdk = aws::sdk_config().await;
    let queue = SqsOrderQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url);
    // The batch response (which record the stream resumes at) as `## handler` metadata.
    let service = tower::ServiceBuilder::new()
        .layer(middleware::xray::CaptureLayer::from_env())
        .service(forward::service(queue));
    Runtime::new(service).layer(powertools).run().await
}
