//! Operator tasks behind `ordersctl`: inspect and redrive the dead-letter queue, read
//! the stream batches Lambda set aside and resend their orders, follow an order's
//! journey, clear a stale idempotency record. They work against AWS and
//! against the local stack alike (the SDK honours `AWS_ENDPOINT_URL`).
//!
//! One module per task: [`dead_letters`], [`stream_failures`] and [`mod@resend`],
//! [`mod@journey`], [`idempotency`]; `queue` holds the queue reads the first two share.

use aws_sdk_sqs::error::DisplayErrorContext;

pub mod dead_letters;
pub mod idempotency;
pub mod journey;
mod queue;
pub mod resend;
pub mod stream_failures;

pub use dead_letters::{DeadLetter, Discarded, Redrive, discard, list_dead_letters, redrive};
pub use idempotency::{Cleared, clear_idempotency, records};
pub use journey::{Journey, journey};
pub use resend::{Resent, resend};
pub use stream_failures::{
    StreamBatch, StreamFailure, StreamedOrder, clear_stream_failures, list_stream_failures,
};

/// An operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OpsError(String);

fn sqs_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
) -> impl FnOnce(aws_sdk_sqs::error::SdkError<E, R>) -> OpsError + '_ {
    move |e| OpsError(format!("{what}: {}", DisplayErrorContext(&e)))
}
