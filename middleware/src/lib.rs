//! Powertools-style utilities for AWS Lambda functions written in Rust.
//!
//! This crate knows nothing about the functions that use it: it turns Lambda events
//! into per-record work and per-record results back into the partial-batch responses
//! Lambda understands, and it sets up structured logging.
//!
//! # Layout
//! - [`batch`]: per-record processing of SQS and DynamoDB-stream batches. Each record is
//!   parsed on its own, so one malformed record fails alone instead of failing the batch.
//! - [`logging`]: a JSON log subscriber configured the way Lambda and Powertools are
//!   (`AWS_LAMBDA_LOG_LEVEL` > `POWERTOOLS_LOG_LEVEL` > `INFO`).
#![warn(missing_docs)]

pub mod batch;
pub mod logging;
