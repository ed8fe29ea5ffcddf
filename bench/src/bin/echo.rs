//! The floor of `scripts/bench`: an empty handler on `lambda_runtime`, nothing else.
//! What every Rust function pays per invocation before it does any work.

use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
use serde_json::value::RawValue;

// mimalloc rather than the system allocator: a stream batch's per-record work is
// allocation-heavy, and it costs a quarter less CPU with it (bench/benches/hot_path.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let handler =
        service_fn(|_: LambdaEvent<Box<RawValue>>| async { Ok::<_, Error>(serde_json::json!({})) });
    Runtime::new(handler).run().await
}
