//! `ordersctl`: operator commands for ecommerce-api, against AWS or the local stack
//! (`AWS_ENDPOINT_URL` or `--endpoint-url`). Results are JSON on stdout.
#![allow(clippy::print_stdout, reason = "a command-line tool reports on stdout")]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ecommerce_api::domain::OrderId;
use ecommerce_api::{aws, ops};

#[derive(Parser)]
#[command(
    about = "Operate ecommerce-api: dead-letter queue, redrive, order journeys, idempotency records"
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
    /// Delete a stale idempotency record (an INPROGRESS one whose lease has ended).
    ClearIdempotency {
        /// Table name (stack output TableName).
        #[arg(long, env = "TABLE_NAME")]
        table: String,
        /// The function whose record it is.
        #[arg(long, default_value = "update-cart-products")]
        function: String,
        /// Delete even a live or completed record (the next delivery runs again).
        #[arg(long)]
        force: bool,
        /// The record's key (the order id).
        key: String,
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
}

async fn run(cli: Cli) -> Result<serde_json::Value, String> {
    let mut loader = aws::config_loader();
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
            }
        }
        Command::Order { table, order_id } => {
            let id = OrderId::parse(&order_id).map_err(|e| e.to_string())?;
            ops::journey(&aws_sdk_dynamodb::Client::new(&sdk), &table, &id)
                .await
                .map(|j| json(&j))
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
