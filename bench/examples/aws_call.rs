//! The CPU one AWS SDK call costs in this process, alone: `SendMessageBatch` with one
//! entry, through the functions' SDK configuration (`ecommerce_api::aws::sdk_config`)
//! and the middleware's subscriber (logs and X-Ray), inside a `## handler` span.
//!
//! Against a running emulator (`local up` prints its endpoint, or start
//! `local/src/moto_serve.py` yourself):
//!
//! ```text
//! AWS_ENDPOINT_URL=http://127.0.0.1:PORT AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID=t \
//! AWS_SECRET_ACCESS_KEY=t POWERTOOLS_METRICS_NAMESPACE=probe CALLS=1000 \
//!   cargo run --release -p bench --example aws_call
//! ```
//!
//! `POWERTOOLS_TRACE_DISABLED=true` leaves X-Ray out; `SLEEP_MS=85` sleeps instead of
//! calling, to see what a wake-up alone costs on this machine. Under
//! `valgrind --tool=callgrind` (build with `--profile profiling`), two runs with
//! different `CALLS` give the instructions per call by difference.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use tracing::Instrument;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Time on CPU of every thread of this process, in ns.
fn cpu_ns() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .map(|task| {
            let text = std::fs::read_to_string(task.unwrap().path().join("schedstat")).unwrap();
            text.split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _powertools = middleware::invocation::init_from_env().unwrap();
    let sdk = ecommerce_api::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = sqs
        .create_queue()
        .queue_name("aws-call-probe")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let calls = setting("CALLS", 300);
    let sleep = Duration::from_millis(setting("SLEEP_MS", 0));
    let body = r#"{"order_id":"6b3f1f0e-4d3b-4c2a-9a57-2f7d1c0e9b11","user_id":"u","products":[{"product_id":"p","quantity":2}]}"#;
    let call = || async {
        let entry = SendMessageBatchRequestEntry::builder()
            .id("0")
            .message_body(body)
            .build()
            .unwrap();
        sqs.send_message_batch()
            .queue_url(&url)
            .entries(entry)
            .send()
            .instrument(tracing::info_span!("## handler"))
            .await
            .unwrap();
    };
    for _ in 0..20 {
        call().await;
    }
    sqs.purge_queue().queue_url(&url).send().await.unwrap();
    let cpu = cpu_ns();
    let wall = Instant::now();
    for _ in 0..calls {
        if sleep.is_zero() {
            call().await;
        } else {
            tokio::time::sleep(sleep).await;
        }
    }
    let cpu = cpu_ns() - cpu;
    eprintln!(
        "{calls} {}: CPU {:.1} µs each, wall {:.2} ms each",
        if sleep.is_zero() { "calls" } else { "sleeps" },
        cpu as f64 / 1000.0 / calls as f64,
        wall.elapsed().as_secs_f64() * 1000.0 / calls as f64
    );
}
