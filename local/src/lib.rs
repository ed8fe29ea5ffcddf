//! The whole system on one machine, with the same binaries that deploy.
#![warn(missing_docs)]

pub mod audit;
pub mod bench;
pub mod capacity;
pub mod chaos;
pub mod client;
pub mod cloudwatch;
pub mod demo;
pub mod drill;
pub mod faults;
pub mod filter;
pub mod function;
pub mod gateway;
pub mod http;
pub mod load;
pub mod logging;
pub mod moto;
pub mod polling;
pub mod resources;
pub mod shoppers;
pub mod sqs_source;
pub mod stack;
pub mod stream_source;
pub mod template;
pub mod xray;

/// The current time in RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    aws_smithy_types::DateTime::from(std::time::SystemTime::now())
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}
