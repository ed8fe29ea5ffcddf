//! `ordersctl`: operator commands for ecommerce-api, against AWS or the local stack
//! (`AWS_ENDPOINT_URL` or `--endpoint-url`). Results are JSON on stdout.
#![allow(clippy::print_stdout, reason = "a command-line tool reports on stdout")]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ecommerce_api::domain::OrderId;
use ecommerce_api::order_queue::SqsOrderQueue;
use ecommerce_api::store::Store;
use ecommerce_api::{aws, ops};

#[derive(Parser)]
#[command(
    about = "Operate ecommerce-api: dead letters, redrive, stream failures, resend, order journeys, idempotency records"
)]
struct Cli {
    /// Endpoint override (e.g. the local stack's emulator); AWS_ENDPOINT_URL works too.
    #[arg(long, global = true)]
    endpoint_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The dead-letter queue of the order queue.
    Dlq {
        /// Dead-letter queue URL (stack output OrdersDeadLetterQueueUrl).
        #[arg(long, env = "DLQ_URL")]
        dlq_url: String,
        #[command(subcommand)]
        action: DlqAction,
    },
    /// An order's records, status history and idempotency record.
    Order {
        /// Table name (stack output TableName).
        #[arg(long, env = "TABLE_NAME")]
        table: String,
        /// The order id.
        order_id: String,
    },
    /// Stream batches Lambda set aside after its retries (the on-failure queue).
    StreamFailures {
        /// On-failure queue URL (stack output StreamFailureQueueUrl).
        #[arg(long, env = "STREAM_FAILURE_QUEUE_URL")]
        queue_url: String,
        #[command(subcommand)]
        action: StreamFailureAction,
    },
    /// Send ORDERED orders' messages to the order queue again (safe to repeat).
    Resend {
        /// Table name (stack output TableName).
        #[arg(long, env = "TABLE_NAME")]
        table: String,
        /// Order queue URL (stack output OrdersQueueUrl).
        #[arg(long, env = "QUEUE_URL")]
        queue_url: String,
        /// The order ids.
        #[arg(required = true, num_args = 1..)]
        order_ids: Vec<String>,
    },
    /// Delete a stale idempotency record (an INPROGRESS one whose lease has ended).
    ClearIdempotency {
        /// Table name (stack output TableName).
        #[arg(long, env = "TABLE_NAME")]
        table: String,
        /// The function whose record it is.
        #[arg(long, default_value = ecommerce_api::pipeline::complete::IDEMPOTENCY_PREFIX)]
        function: String,
        /// Delete even a live or completed record (the next delivery runs again).
        #[arg(long)]
        force: bool,
        /// The record's key (the order id).
        key: String,
    },
}

#[derive(Subcommand)]
enum StreamFailureAction {
    /// List the records with the orders in each range and their status now (they stay).
    List {
        /// Table name (stack output TableName), to show each order's status.
        #[arg(long, env = "TABLE_NAME")]
        table: String,
        /// Most records to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Delete handled records by message id.
    Clear {
        /// The records' message ids.
        #[arg(required = true, num_args = 1..)]
        message_ids: Vec<String>,
    },
}

#[derive(Subcommand)]
enum DlqAction {
    /// List and decode the messages (they stay in the queue).
    List {
        /// Most messages to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Move messages back to the order queue, all or those selected by message or order id.
    Redrive {
        /// Order queue URL (stack output OrdersQueueUrl).
        #[arg(long, env = "QUEUE_URL")]
        queue_url: String,
        /// Move every message.
        #[arg(long, conflicts_with = "only")]
        all: bool,
        /// Move only these message ids or order ids.
        #[arg(long, num_args = 1.., required_unless_present = "all")]
        only: Vec<String>,
    },
    /// Delete messages that can never succeed as they are (a body that does not
    /// decode, an order item that is broken), selected by message or order id.
    Discard {
        /// Delete these message ids or order ids.
        #[arg(long, num_args = 1.., required = true)]
        only: Vec<String>,
    },
}

async fn run(cli: Cli) -> Result<serde_json::Value, String> {
    let mut loader = aws::config_loader(aws::CallBudget::OPERATOR);
    if let Some(endpoint) = &cli.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    let sdk = loader.load().await;
    match cli.command {
        Command::Dlq { dlq_url, action } => {
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            match action {
                DlqAction::List { limit } => ops::list_dead_letters(&sqs, &dlq_url, limit)
                    .await
                    .map(|l| json(&l)),
                DlqAction::Redrive {
                    queue_url,
                    all,
                    only,
                } => {
                    let only = if all { Vec::new() } else { only };
                    ops::redrive(&sqs, &dlq_url, &queue_url, &only)
                        .await
                        .map(|r| json(&r))
                }
                DlqAction::Discard { only } => {
                    ops::discard(&sqs, &dlq_url, &only).await.map(|d| json(&d))
                }
            }
        }
        Command::Order { table, order_id } => {
            let id = OrderId::parse(&order_id).map_err(|e| e.to_string())?;
            ops::journey(&aws_sdk_dynamodb::Client::new(&sdk), &table, &id)
                .await
                .map(|j| json(&j))
        }
        Command::StreamFailures { queue_url, action } => {
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            match action {
                StreamFailureAction::List { table, limit } => {
                    let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), &table);
                    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
                    ops::list_stream_failures(&sqs, &streams, &store, &queue_url, limit)
                        .await
                        .map(|l| json(&l))
                }
                StreamFailureAction::Clear { message_ids } => {
                    ops::clear_stream_failures(&sqs, &queue_url, &message_ids)
                        .await
                        .map(|r| json(&r))
                }
            }
        }
        Command::Resend {
            table,
            queue_url,
            order_ids,
        } => {
            let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), &table);
            let queue = SqsOrderQueue::new(aws_sdk_sqs::Client::new(&sdk), &queue_url);
            let mut results = serde_json::Map::new();
            for raw in order_ids {
                let id = OrderId::parse(&raw).map_err(|e| e.to_string())?;
                let resent = ops::resend(&store, &queue, &id)
                    .await
                    .map_err(|e| e.to_string())?;
                results.insert(raw, json(&resent));
            }
            Ok(serde_json::Value::Object(results))
        }
        Command::ClearIdempotency {
            table,
            function,
            force,
            key,
        } => ops::clear_idempotency(
            &aws_sdk_dynamodb::Client::new(&sdk),
            &table,
            &function,
            &key,
            force,
        )
        .await
        .map(|c| json(&c)),
    }
    .map_err(|e| e.to_string())
}

/// A result as JSON for printing.
fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(value) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ordersctl: {e}");
            ExitCode::FAILURE
        }
    }
}
