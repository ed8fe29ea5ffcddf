//! The two functions of the order pipeline.
//!
//! - [`forward`]: `process-cart-products`, on the table's stream. Each new ORDERED order
//!   becomes one [`OrderMessage`](crate::message::OrderMessage) on the queue.
//! - [`complete`]: `update-cart-products`, on the queue. Each message completes its
//!   order once; a redelivered message changes nothing and succeeds.

pub mod complete;
pub mod forward;
