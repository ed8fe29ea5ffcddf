//! Powertools-style utilities for AWS Lambda functions written in Rust.
//!
//! This crate knows nothing about the functions that use it: it turns Lambda events
//! into per-record work and per-record results back into the partial-batch responses
//! Lambda understands, writes structured logs and CloudWatch metrics, and keeps the
//! per-invocation state they need.
//!
//! # Layout
//! - [`context`]: the facts of the invocation in progress and its per-record slot (a
//!   leaf: every other module may read it, it reads none).
//! - [`invocation`]: the invocation-level layer ([`invocation::PowertoolsLayer`]); it
//!   makes each invocation's context, log context and metrics current. Logging and
//!   metrics own their per-invocation state and depend on [`context`] only, so the
//!   module graph has no circle.
//! - [`logging`]: JSON log lines with the Powertools keys, per-invocation sampling and
//!   a DEBUG buffer written out when an error is logged.
//! - [`metrics`]: metrics declared once and written in the Embedded Metric Format.
//! - [`batch`]: per-record processing of SQS and DynamoDB-stream batches.
//! - [`idempotency`]: run work once per key, records in DynamoDB.
//! - [`xray`]: X-Ray subsegments through OpenTelemetry, trace headers in and out.
//! - [`timeout`]: an invocation given up shortly before its deadline, its telemetry
//!   written out first.
//! - [`sink`]: where lines go.
//! - [`clock`]: the wall clock, read one way.
//!
//! The crate's README has the parity table with Powertools and the write count per
//! order of the idempotency layer.
#![warn(missing_docs)]

pub mod batch;
pub mod clock;
pub mod context;
pub mod idempotency;
pub mod invocation;
pub mod logging;
pub mod metrics;
pub mod sink;
pub mod stream_image;
pub mod timeout;
pub mod xray;
