//! The same empty handler as `echo`, under the functions' `PowertoolsLayer` (logging,
//! metrics, X-Ray, as configured by the environment): the layer's fixed cost per
//! invocation is this binary's cost less `echo`'s.

use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
use serde_json::value::RawValue;

// mimalloc rather than the system allocator: a stream batch's per-record work is
// allocation-heavy, and it costs a quarter less CPU with it (bench/benches/hot_path.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let powertools = middleware::invocation::init_from_env()?;
    let handler =
        service_fn(|_: LambdaEvent<Box<RawValue>>| async { Ok::<_, Error>(serde_json::json!({})) });
    Runtime::new(handler).layer(powertools).run().await
}
