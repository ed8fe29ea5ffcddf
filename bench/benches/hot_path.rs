//! The per-record work of each pipeline function, in process, against the floor of
//! touching the same bytes:
//!
//! - stream function: a 100-record stream batch (JSON) to order messages (JSON bytes),
//!   through `forward_orders` with a queue that serialises and drops, against
//!   `serde_json` into `IgnoredAny` (the bytes read, nothing kept) and a borrowed parse
//!   (`&str` sequence numbers, `&RawValue` images);
//! - queue function: a message body (JSON) to its conditional write, against the same
//!   two floors.
//!
//! `cargo bench -p bench --bench hot_path` prints criterion's figures and writes the
//! ratios to `bench/results/hot_path.json`, which `scripts/bench` reports against the
//! target (the stream function at most 3x the borrowed parse).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput};
use ecommerce_api::clock::Timestamp;
use ecommerce_api::message::OrderMessage;
use ecommerce_api::order_queue::{OrderQueue, SendFailure};
use ecommerce_api::pipeline::forward::forward_orders;
use ecommerce_api::store::Store;
use local::bench::events::{BenchOrder, Design, stream_event};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

// The functions' allocator (see src/bin/lambda/).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RECORDS: usize = 100;

/// Serialises each message as the SQS queue would be sent it, and drops it.
struct DropQueue;

impl OrderQueue for DropQueue {
    async fn send_batch(&self, messages: &[OrderMessage]) -> Result<Vec<SendFailure>, String> {
        for message in messages {
            black_box(message.to_json().map_err(|e| e.to_string())?);
        }
        Ok(Vec::new())
    }
}

#[derive(Deserialize)]
struct BorrowedBatch<'a> {
    #[serde(borrow, rename = "Records")]
    records: Vec<BorrowedRecord<'a>>,
}

#[derive(Deserialize)]
struct BorrowedRecord<'a> {
    #[serde(rename = "eventName")]
    event_name: &'a str,
    #[serde(borrow)]
    dynamodb: BorrowedChange<'a>,
}

#[derive(Deserialize)]
struct BorrowedChange<'a> {
    #[serde(rename = "SequenceNumber")]
    sequence_number: &'a str,
    #[serde(borrow, rename = "NewImage")]
    new_image: &'a RawValue,
}

#[derive(Deserialize)]
struct BorrowedMessage<'a> {
    order_id: &'a str,
    user_id: &'a str,
    #[serde(borrow)]
    lines: &'a RawValue,
}

fn mean_ns(out: &Path, group: &str, name: &str) -> Option<f64> {
    let text =
        std::fs::read_to_string(out.join(group).join(name).join("new/estimates.json")).ok()?;
    let estimates: serde_json::Value = serde_json::from_str(&text).ok()?;
    estimates["mean"]["point_estimate"].as_f64()
}

fn main() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    let out = target.join("criterion");
    let mut criterion = Criterion::default()
        .output_directory(&out)
        .configure_from_args();

    let orders: Vec<BenchOrder> = (0..RECORDS as u64)
        .map(|i| BenchOrder::generate(7, i))
        .collect();
    let stream = stream_event(
        &orders,
        Design::OneItem,
        1_000_000,
        "arn:aws:dynamodb:eu-west-1:1:table/t/stream/s",
    );
    let event = RawValue::from_string(stream.clone()).unwrap();
    // One runtime for every iteration, as one process serves every invocation.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut group = criterion.benchmark_group("stream");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("forward", |b| {
        b.iter(|| {
            runtime
                .block_on(forward_orders(&DropQueue, black_box(&event)))
                .unwrap()
        });
    });
    group.bench_function("touch", |b| {
        b.iter(|| serde_json::from_str::<IgnoredAny>(black_box(&stream)).unwrap());
    });
    group.bench_function("borrowed", |b| {
        b.iter(|| {
            let batch: BorrowedBatch<'_> = serde_json::from_str(black_box(&stream)).unwrap();
            black_box(
                batch
                    .records
                    .iter()
                    .filter(|r| {
                        r.event_name == "INSERT"
                            && !r.dynamodb.sequence_number.is_empty()
                            && !r.dynamodb.new_image.get().is_empty()
                    })
                    .count(),
            )
        });
    });
    group.finish();

    let body = orders[0].message();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
        .build();
    let store = Store::new(aws_sdk_dynamodb::Client::from_conf(config), "table");
    let now = Timestamp::now();
    let mut group = criterion.benchmark_group("queue");
    group.throughput(Throughput::Elements(1));
    group.bench_function("plan", |b| {
        b.iter(|| {
            let message = OrderMessage::from_json(black_box(&body)).unwrap();
            black_box(store.completion_write(&message, &now))
        });
    });
    group.bench_function("touch", |b| {
        b.iter(|| serde_json::from_str::<IgnoredAny>(black_box(&body)).unwrap());
    });
    group.bench_function("borrowed", |b| {
        b.iter(|| {
            let message: BorrowedMessage<'_> = serde_json::from_str(black_box(&body)).unwrap();
            black_box((message.order_id, message.user_id, message.lines.get().len()))
        });
    });
    group.finish();
    criterion.final_summary();

    let ratio =
        |group: &str, a: &str, b: &str| Some(mean_ns(&out, group, a)? / mean_ns(&out, group, b)?);
    let per_record =
        |group: &str, name: &str, n: f64| mean_ns(&out, group, name).map(|ns| ns / n / 1000.0);
    let summary = serde_json::json!({
        "stream_per_record_us": per_record("stream", "forward", RECORDS as f64),
        "stream_touch_per_record_us": per_record("stream", "touch", RECORDS as f64),
        "stream_borrowed_per_record_us": per_record("stream", "borrowed", RECORDS as f64),
        "stream_per_record_vs_borrowed_parse": ratio("stream", "forward", "borrowed"),
        "stream_per_record_vs_touch": ratio("stream", "forward", "touch"),
        "queue_per_message_us": per_record("queue", "plan", 1.0),
        "queue_per_message_vs_borrowed_parse": ratio("queue", "plan", "borrowed"),
        "queue_per_message_vs_touch": ratio("queue", "plan", "touch"),
    });
    let results = workspace.join("bench/results");
    let _ = std::fs::create_dir_all(&results);
    let _ = std::fs::write(results.join("hot_path.json"), format!("{summary:#}\n"));
    println!("hot path: {summary:#}");
}
