//! ecommerce-api: an event-driven ordering service on AWS Lambda.
//!
//! An order API writes orders to one DynamoDB table; the table's stream feeds
//! `process-cart-products`, which puts one message per new order on an SQS queue;
//! `update-cart-products` consumes the queue and completes each order exactly once.
//!
//! # Layout
//! - [`domain`]: products, cart lines, orders, ids, quantities, money, pricing.
//! - [`keys`]: the single-table layout; every key format lives here.
//! - [`store`]: every DynamoDB read and write, conditional where it must be.
//! - [`message`]: the one versioned SQS message type both pipeline functions use.
//! - [`order_queue`]: the queue of order messages (SQS), beside the store.
//! - [`metrics`]: the metrics the service writes, declared once.
//! - [`api`]: the HTTP API (`orders-api`).
//! - [`pipeline`]: the stream and queue functions.
//! - [`ops`]: operator tasks behind `ordersctl`, a module per task (DLQ, stream
//!   failures, resend, order journey, idempotency records).
//! - [`config`] and [`aws`]: what a binary needs at start-up.
//!
//! Logging, batch processing and (later) tracing, metrics and idempotency come from the
//! `middleware` crate, which knows nothing about orders.

pub mod api;
pub mod aws;
pub mod clock;
pub mod config;
pub mod domain;
pub mod keys;
pub mod message;
pub mod metrics;
pub mod ops;
pub mod order_queue;
pub mod pipeline;
pub mod store;
