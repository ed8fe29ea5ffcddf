//! The invocation layer's cost per invocation, in process: `PowertoolsLayer` (as
//! `init_from_env` builds it from the environment) around an empty service, against
//! the empty service alone. Run it under `valgrind --tool=callgrind` (build with
//! `--profile profiling`) with two `CALLS` values for instructions per invocation.
//!
//! ```text
//! POWERTOOLS_METRICS_NAMESPACE=probe POWERTOOLS_SERVICE_NAME=probe CALLS=20000 \
//!   cargo run --release -p bench --example layer_cost
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use lambda_runtime::LambdaInvocation;
use tower::{Layer, Service, ServiceExt, service_fn};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn invocation(i: u64) -> LambdaInvocation {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "lambda-runtime-deadline-ms",
        "4102444800000".parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:eu-west-1:1:function:probe".parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        "Root=1-6748d7a0-1c2b3d4e5f60718293a4b5c6;Parent=53995c3f42cd8ad8;Sampled=1"
            .parse()
            .unwrap(),
    );
    let config = lambda_runtime::Config {
        function_name: "probe".into(),
        memory: 128,
        ..Default::default()
    };
    let context =
        lambda_runtime::Context::new(&format!("req-{i}"), Arc::new(config), &headers).unwrap();
    let (parts, ()) = http::Response::new(()).into_parts();
    LambdaInvocation {
        parts,
        body: bytes::Bytes::from_static(b"{}"),
        context,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let calls: u64 = std::env::var("CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let bare = std::env::var_os("BARE").is_some();
    let empty = service_fn(|_: LambdaInvocation| async { Ok::<(), lambda_runtime::Error>(()) });
    let mut service = if bare {
        tower::util::Either::Right(empty)
    } else {
        tower::util::Either::Left(
            middleware::invocation::init_from_env()
                .unwrap()
                .layer(empty),
        )
    };
    let start = Instant::now();
    for i in 0..calls {
        service
            .ready()
            .await
            .unwrap()
            .call(invocation(i))
            .await
            .unwrap();
    }
    eprintln!(
        "{} {calls} invocations: {:.2} µs each",
        if bare { "bare" } else { "layered" },
        start.elapsed().as_secs_f64() * 1e6 / calls as f64
    );
}
