//! Idempotency: run a piece of work once per key, and answer repeats with the stored
//! result, with the records in DynamoDB.
//!
//! The record has the Powertools shape: `id` (here the table's partition key),
//! `expiration` (epoch seconds, the table's TTL attribute), `in_progress_expiration`
//! (epoch milliseconds: the lease), `status` (`INPROGRESS` or `COMPLETED`; an expired
//! record counts as absent), `data` (the stored result, as JSON) and `validation` (a
//! SHA-256 of the payload fields that must match).
//!
//! # How a key is run ([`Idempotency::run`])
//! 1. The local cache (if on) answers a completed key without a call, after checking
//!    the payload hash: the fast path validates too.
//! 2. One conditional `PutItem` takes the lock: it succeeds if there is no record, the
//!    record expired, or an `INPROGRESS` record's lease ran out (its holder died or timed
//!    out). On failure `ReturnValuesOnConditionCheckFailure = ALL_OLD` returns the record,
//!    so there is never a second read, and never read-then-write.
//! 3. The lease ends at the invocation's deadline. Outside an invocation it is
//!    [`DEFAULT_LEASE`]; it is never "zero meaning none".
//! 4. Success: one `UpdateItem` marks the record `COMPLETED` with the result (any JSON,
//!    `null`, `false` and `[]` included, all replayed). Failure: one `DeleteItem`
//!    releases the key, so a retry runs again.
//!
//! The outcome is typed: [`Outcome::Executed`], [`Outcome::Replayed`] or
//! [`Outcome::InFlight`] (another invocation holds the lease; the batch layer reports
//! the record as failed so it comes back later).
//!
//! # Cost per key
//! First execution: 2 writes (lock, complete), like Powertools; a failed execution: 2
//! (lock, release); a repeat: 1 conditional write that fails (billed as a write) or none
//! from the local cache. [`Idempotency::run_in_transaction`] brings a first execution
//! to **one** write request when the work is itself a DynamoDB transaction: the
//! `COMPLETED` record joins the work's own `TransactWriteItems`, so the record exists if
//! and only if the work happened. No lease is needed then: the transaction is atomic
//! and two concurrent runs cannot both commit.
//!
//! [`on_item`] is a third way, for work that is one conditional `UpdateItem` on one
//! item: the record's attributes live on that item and commit with the work's own
//! write, one unit where the transaction costs two per item.
//!
//! `POWERTOOLS_IDEMPOTENCY_DISABLED=true` runs the work every time.
//!
//! # Example
//! ```no_run
//! use middleware::idempotency::{Idempotency, IdempotencyConfig, Outcome, payload_hash};
//!
//! # async fn example(client: aws_sdk_dynamodb::Client, body: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let config = IdempotencyConfig::single_table("orders", "charge-card", |name| std::env::var(name).ok());
//! let idempotency = Idempotency::new(client, config);
//! let outcome = idempotency
//!     .run("order-42", Some(&payload_hash(body.as_bytes())), || async {
//!         Ok::<_, std::io::Error>(String::from("charged")) // the work, at most once per key
//!     })
//!     .await?;
//! match outcome {
//!     Outcome::Executed(_) | Outcome::Replayed(_) => {}              // done: report success
//!     Outcome::InFlight { .. } => return Err("retry later".into()),  // report the record as failed
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod on_item;
pub use on_item::{ItemIdempotencyLayer, ItemOutcome, ItemWrite};

/// The lease outside an invocation (where there is no deadline to bind it to).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Where and how records are kept.
#[derive(Debug, Clone)]
pub struct IdempotencyConfig {
    /// The table.
    pub table: String,
    /// Partition key attribute (Powertools: `id`).
    pub key_attribute: String,
    /// Sort key attribute and the constant value records use, for a single-table design.
    pub sort_key: Option<(String, String)>,
    /// Prefix of every key (e.g. the function's name), so functions sharing a table
    /// never share keys.
    pub key_prefix: String,
    /// How long a completed record answers repeats.
    pub expires_after: Duration,
    /// Completed records kept in memory (0: no local cache).
    pub local_cache_size: usize,
    /// Run the work every time.
    pub disabled: bool,
}

impl IdempotencyConfig {
    /// The id of the record for `key`: `IDEMPOTENCY#<prefix>#<key>`, as log lines and
    /// traces name it (`idempotency_key`).
    pub fn record_id(&self, key: &str) -> String {
        format!("IDEMPOTENCY#{}#{key}", self.key_prefix)
    }

    /// The key of the record for `key`: `IDEMPOTENCY#<prefix>#<key>` in the key
    /// attribute, and the constant sort key in a single-table design.
    pub fn record_key(&self, key: &str) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([(self.key_attribute.clone(), s(self.record_id(key)))]);
        if let Some((attribute, value)) = &self.sort_key {
            item.insert(attribute.clone(), s(value.clone()));
        }
        item
    }

    /// Records in `table` under `PK`/`SK` with the given prefix, one hour of replay,
    /// no local cache, and `POWERTOOLS_IDEMPOTENCY_DISABLED` read through `var`.
    pub fn single_table(
        table: impl Into<String>,
        key_prefix: impl Into<String>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Self {
        Self {
            table: table.into(),
            key_attribute: "PK".to_owned(),
            sort_key: Some(("SK".to_owned(), "IDEMPOTENCY".to_owned())),
            key_prefix: key_prefix.into(),
            expires_after: Duration::from_secs(3600),
            local_cache_size: 0,
            disabled: var("POWERTOOLS_IDEMPOTENCY_DISABLED")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }
    }
}

/// What running a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<R> {
    /// The work ran now.
    Executed(R),
    /// The work had run; this is its stored result.
    Replayed(R),
    /// Another invocation holds the key until this time (epoch ms).
    InFlight {
        /// End of the holder's lease.
        lease_expires_ms: u64,
    },
}

impl<R> Outcome<R> {
    /// The outcome as a batch record's result: executed or replayed is done (`Ok`); in
    /// flight is an error, so the batch reports the record and it is retried once the
    /// holder has finished.
    ///
    /// # Errors
    /// [`InFlight`] when another invocation holds the key.
    pub fn settle(self) -> Result<R, InFlight> {
        match self {
            Self::Executed(result) | Self::Replayed(result) => Ok(result),
            Self::InFlight { lease_expires_ms } => Err(InFlight { lease_expires_ms }),
        }
    }
}

/// Another invocation holds the key; retry the record later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("another invocation holds this key until {lease_expires_ms} (epoch ms); retry later")]
pub struct InFlight {
    /// End of the holder's lease.
    pub lease_expires_ms: u64,
}

/// Why a key could not be run.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError<E> {
    /// The work failed (the key was released).
    #[error("{0}")]
    Work(E),
    /// The key was used before with a different payload.
    #[error("idempotency key {key} was used with a different payload")]
    PayloadMismatch {
        /// The key.
        key: String,
    },
    /// The store could not be read or written.
    #[error("idempotency store: {0}")]
    Store(String),
    /// The transaction kept being cancelled for a transient reason (another
    /// transaction on one of its items, throttling): retry later.
    #[error("transaction cancelled {attempts} times for a transient reason ({}); retry later", .codes.join(", "))]
    Conflict {
        /// The cancellation code of each item, from the last attempt.
        codes: Vec<String>,
        /// Attempts made.
        attempts: u32,
    },
    /// The result could not be stored or read back.
    #[error("idempotency record data: {0}")]
    Data(#[from] serde_json::Error),
}

/// Cancellation codes that say nothing about the items' conditions: the same
/// transaction may succeed when tried again (DynamoDB documents `TransactionConflict`
/// as retryable; throttling of one item cancels the whole transaction too).
pub const TRANSIENT_CANCELLATIONS: [&str; 3] = [
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
];

/// Attempts at a transaction cancelled only for transient reasons, the first included.
pub const TRANSACTION_ATTEMPTS: u32 = 3;

/// Whether a cancellation is transient: some item was cancelled for a transient reason
/// and no item failed its condition (a failed condition is an answer, not a hiccup).
pub fn is_transient_cancellation(reasons: &[CancellationReason]) -> bool {
    let code = |r: &CancellationReason| r.code().unwrap_or("None").to_owned();
    reasons
        .iter()
        .any(|r| TRANSIENT_CANCELLATIONS.contains(&code(r).as_str()))
        && !reasons.iter().any(failed_condition)
}

/// Whether a cancelled transaction's item failed its condition. The SDK types a single
/// write's `ConditionalCheckFailedException`, but a transaction's per-item reasons are
/// codes: this is the one place that spells the code.
pub fn failed_condition(reason: &CancellationReason) -> bool {
    reason.code() == Some("ConditionalCheckFailed")
}

/// The per-item reasons of a transaction its own conditions cancelled; a transient
/// cancellation that outlived its retries, or any other failure, is an error.
fn cancellation_reasons<E, R>(
    error: &SdkError<TransactWriteItemsError, R>,
    attempts: u32,
) -> Result<Vec<CancellationReason>, IdempotencyError<E>>
where
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e))
            if is_transient_cancellation(e.cancellation_reasons()) =>
        {
            Err(IdempotencyError::Conflict {
                codes: e
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None").to_owned())
                    .collect(),
                attempts,
            })
        }
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
            Ok(e.cancellation_reasons().to_vec())
        }
        _ => Err(IdempotencyError::Store(
            DisplayErrorContext(error).to_string(),
        )),
    }
}

/// The result of [`transact`]: the last answer, and how many attempts it took.
pub type Transacted = (
    Result<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput,
        SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
    >,
    u32,
);

/// Sends one `TransactWriteItems`, and sends it again (up to [`TRANSACTION_ATTEMPTS`]
/// in all, after [`transaction_backoff`]) while it is cancelled only for transient
/// reasons ([`is_transient_cancellation`]). The SDK retries throttling and network
/// errors itself; a cancelled transaction is an answer to it, so this is the retry
/// DynamoDB asks for on `TransactionConflict`.
pub async fn transact(
    client: &aws_sdk_dynamodb::Client,
    items: &[TransactWriteItem],
) -> Transacted {
    let mut attempt = 1;
    loop {
        let sent = client
            .transact_write_items()
            .set_transact_items(Some(items.to_vec()))
            .send()
            .await;
        let transient = matches!(
            sent.as_ref().map_err(|e| e.as_service_error()),
            Err(Some(TransactWriteItemsError::TransactionCanceledException(e)))
                if is_transient_cancellation(e.cancellation_reasons())
        );
        if !transient || attempt >= TRANSACTION_ATTEMPTS {
            return (sent, attempt);
        }
        tokio::time::sleep(transaction_backoff(attempt)).await;
        attempt += 1;
    }
}

/// A short, jittered pause before trying a transiently cancelled transaction again.
pub fn transaction_backoff(attempt: u32) -> Duration {
    let jitter = u64::from(crate::clock::since_epoch().subsec_nanos()) % 50;
    Duration::from_millis(25 * u64::from(attempt.max(1)) + jitter)
}

/// A SHA-256, hex-encoded: the `validation` of a payload.
pub fn payload_hash(payload: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(payload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, Clone)]
struct Completed {
    data: String,
    validation: Option<String>,
    expiration: u64,
}

/// Runs work once per key. Cheap to share: clone the client, keep one per process.
#[derive(Debug)]
pub struct Idempotency {
    client: aws_sdk_dynamodb::Client,
    config: IdempotencyConfig,
    cache: Mutex<(HashMap<String, Completed>, VecDeque<String>)>,
}

fn now() -> Duration {
    crate::clock::since_epoch()
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The record's schema: its attribute names and statuses, spelled here only. The key is
/// [`IdempotencyConfig::record_key`].
pub mod record {
    /// `INPROGRESS` or `COMPLETED` (an expired record counts as absent).
    pub const STATUS: &str = "status";
    /// When the record stops answering repeats, epoch seconds (the table's TTL).
    pub const EXPIRATION: &str = "expiration";
    /// The end of an `INPROGRESS` record's lease, epoch milliseconds.
    pub const LEASE: &str = "in_progress_expiration";
    /// The hash of the payload that made the record.
    pub const VALIDATION: &str = "validation";
    /// A completed record's stored result (JSON).
    pub const DATA: &str = "data";
    /// Status of a record whose work is running (or whose holder died).
    pub const INPROGRESS: &str = "INPROGRESS";
    /// Status of a record whose work is done.
    pub const COMPLETED: &str = "COMPLETED";
}

use record::{COMPLETED, INPROGRESS};

/// What clearing a record did ([`Idempotency::clear_stale`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Cleared {
    /// The record was deleted.
    Deleted,
    /// There was no record.
    Absent,
    /// The record is live (`COMPLETED`, or `INPROGRESS` with its lease running) and was
    /// kept; this is its status. Forcing deletes it anyway.
    Kept(String),
}

impl Idempotency {
    /// A runner over `client` with `config`.
    pub fn new(client: aws_sdk_dynamodb::Client, config: IdempotencyConfig) -> Self {
        Self {
            client,
            config,
            cache: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &IdempotencyConfig {
        &self.config
    }

    fn record_key(&self, key: &str) -> HashMap<String, AttributeValue> {
        self.config.record_key(key)
    }

    /// Deletes a stale record: an `INPROGRESS` one whose lease has ended (its holder
    /// died), or, with `force`, any record (the next delivery then runs the work
    /// again). The delete is conditional, so a record that changes meanwhile is not
    /// removed by mistake.
    ///
    /// # Errors
    /// A message if the table cannot be read or written.
    pub async fn clear_stale(&self, key: &str, force: bool) -> Result<Cleared, String> {
        use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
        use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
        let mut request = self
            .client
            .delete_item()
            .table_name(&self.config.table)
            .set_key(Some(self.record_key(key)))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if !force {
            request = request
                .condition_expression("#status = :inprogress AND #lease < :now")
                .expression_attribute_names("#status", record::STATUS)
                .expression_attribute_names("#lease", record::LEASE)
                .expression_attribute_values(":inprogress", s(INPROGRESS))
                .expression_attribute_values(":now", n(crate::clock::epoch_ms()));
        }
        match request.send().await {
            Ok(output) if output.attributes.as_ref().is_some_and(|a| !a.is_empty()) => {
                Ok(Cleared::Deleted)
            }
            Ok(_) => Ok(Cleared::Absent),
            Err(SdkError::ServiceError(e)) => match e.err() {
                DeleteItemError::ConditionalCheckFailedException(failed) => {
                    Ok(match &failed.item {
                        None => Cleared::Absent,
                        Some(item) => Cleared::Kept(
                            item.get(record::STATUS)
                                .and_then(|v| v.as_s().ok())
                                .cloned()
                                .unwrap_or_default(),
                        ),
                    })
                }
                _ => Err(format!(
                    "deleting the record: {}",
                    DisplayErrorContext(&SdkError::ServiceError(e))
                )),
            },
            Err(e) => Err(format!("deleting the record: {}", DisplayErrorContext(&e))),
        }
    }

    /// The lease's end: the invocation's deadline, or [`DEFAULT_LEASE`] from now.
    fn lease_end_ms() -> u64 {
        crate::context::with_current(|context| context.deadline_ms)
            .filter(|deadline| *deadline > 0)
            .unwrap_or_else(|| (now() + DEFAULT_LEASE).as_millis() as u64)
    }

    /// The local cache's answer for a completed key: its result, or a payload
    /// mismatch (the fast path validates too). `None` when the cache cannot answer.
    fn replay_from_cache<R: DeserializeOwned, E>(
        &self,
        key: &str,
        validation: Option<&str>,
    ) -> Option<Result<Outcome<R>, IdempotencyError<E>>> {
        let cache = self.cache.lock().ok()?;
        let hit = cache
            .0
            .get(key)
            .filter(|hit| hit.expiration > now().as_secs())?;
        if validation.is_some() && hit.validation.as_deref() != validation {
            return Some(Err(IdempotencyError::PayloadMismatch {
                key: key.to_owned(),
            }));
        }
        Some(
            serde_json::from_str(&hit.data)
                .map(Outcome::Replayed)
                .map_err(IdempotencyError::from),
        )
    }

    fn remember(&self, key: &str, completed: Completed) {
        if self.config.local_cache_size == 0 {
            return;
        }
        if let Ok(mut cache) = self.cache.lock() {
            let (map, order) = &mut *cache;
            if map.insert(key.to_owned(), completed).is_none() {
                order.push_back(key.to_owned());
            }
            while order.len() > self.config.local_cache_size {
                if let Some(oldest) = order.pop_front() {
                    map.remove(&oldest);
                }
            }
        }
    }

    /// What an existing record means for a new run of its key.
    fn existing<R: DeserializeOwned, E>(
        &self,
        key: &str,
        validation: Option<&str>,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Outcome<R>, IdempotencyError<E>> {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let number = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let stored_validation = text(record::VALIDATION);
        if validation.is_some() && stored_validation.as_deref() != validation {
            return Err(IdempotencyError::PayloadMismatch {
                key: key.to_owned(),
            });
        }
        match text(record::STATUS).as_deref() {
            Some(COMPLETED) => {
                let data = text(record::DATA).unwrap_or_else(|| "null".to_owned());
                let replayed = serde_json::from_str(&data)?;
                let expiration = number(record::EXPIRATION).unwrap_or(0);
                self.remember(
                    key,
                    Completed {
                        data,
                        validation: stored_validation,
                        expiration,
                    },
                );
                Ok(Outcome::Replayed(replayed))
            }
            _ => Ok(Outcome::InFlight {
                lease_expires_ms: number(record::LEASE).unwrap_or(0),
            }),
        }
    }

    /// Runs `work` once for `key` (see the module docs). `validation` is the hash of
    /// the payload fields that must match on a repeat ([`payload_hash`]).
    ///
    /// # Errors
    /// [`IdempotencyError`]: the work's own error (the key is released), a payload
    /// mismatch, or a store failure.
    pub async fn run<R, E, F, Fut>(
        &self,
        key: &str,
        validation: Option<&str>,
        work: F,
    ) -> Result<Outcome<R>, IdempotencyError<E>>
    where
        R: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        crate::logging::set_idempotency_key(&self.config.record_id(key));
        if self.config.disabled {
            return work()
                .await
                .map(Outcome::Executed)
                .map_err(IdempotencyError::Work);
        }
        if let Some(replayed) = self.replay_from_cache(key, validation) {
            return replayed;
        }
        let now = now();
        let mut item = self.record_key(key);
        item.insert(record::STATUS.to_owned(), s(INPROGRESS));
        item.insert(
            record::EXPIRATION.to_owned(),
            n((now + self.config.expires_after).as_secs()),
        );
        item.insert(record::LEASE.to_owned(), n(Self::lease_end_ms()));
        if let Some(validation) = validation {
            item.insert(record::VALIDATION.to_owned(), s(validation));
        }
        let locked = self
            .client
            .put_item()
            .table_name(&self.config.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#id) OR #exp < :now OR (#status = :inprogress AND #lease < :now_ms)")
            .expression_attribute_names("#id", &self.config.key_attribute)
            .expression_attribute_names("#exp", record::EXPIRATION)
            .expression_attribute_names("#status", record::STATUS)
            .expression_attribute_names("#lease", record::LEASE)
            .expression_attribute_values(":now", n(now.as_secs()))
            .expression_attribute_values(":now_ms", n(now.as_millis()))
            .expression_attribute_values(":inprogress", s(INPROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match locked {
            Ok(_) => {}
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                let old = match e.err() {
                    PutItemError::ConditionalCheckFailedException(c) => {
                        c.item.clone().unwrap_or_default()
                    }
                    _ => HashMap::new(),
                };
                return self.existing(key, validation, &old);
            }
            Err(e) => return Err(IdempotencyError::Store(DisplayErrorContext(&e).to_string())),
        }

        match work().await {
            Ok(result) => {
                let data = serde_json::to_string(&result)?;
                let expiration = (now + self.config.expires_after).as_secs();
                self.client
                    .update_item()
                    .table_name(&self.config.table)
                    .set_key(Some(self.record_key(key)))
                    .update_expression(
                        "SET #status = :completed, #data = :data, #exp = :exp REMOVE #lease",
                    )
                    .expression_attribute_names("#status", record::STATUS)
                    .expression_attribute_names("#data", record::DATA)
                    .expression_attribute_names("#exp", record::EXPIRATION)
                    .expression_attribute_names("#lease", record::LEASE)
                    .expression_attribute_values(":completed", s(COMPLETED))
                    .expression_attribute_values(":data", s(data.clone()))
                    .expression_attribute_values(":exp", n(expiration))
                    .send()
                    .await
                    .map_err(|e| IdempotencyError::Store(DisplayErrorContext(&e).to_string()))?;
                self.remember(
                    key,
                    Completed {
                        data,
                        validation: validation.map(str::to_owned),
                        expiration,
                    },
                );
                Ok(Outcome::Executed(result))
            }
            Err(error) => {
                // Release the key so a retry runs the work again; if this fails the lease
                // still ends at the deadline.
                let released = self
                    .client
                    .delete_item()
                    .table_name(&self.config.table)
                    .set_key(Some(self.record_key(key)))
                    .send()
                    .await;
                if let Err(e) = released {
                    tracing::warn!(key, error = %DisplayErrorContext(&e), "could not release the idempotency key; it frees itself at the lease's end");
                }
                Err(IdempotencyError::Work(error))
            }
        }
    }

    /// Runs work that is one DynamoDB transaction, once for `key`, in one write request:
    /// `work` returns its result and its transaction items, and the `COMPLETED` record is
    /// committed in the same `TransactWriteItems`.
    ///
    /// If the transaction is cancelled because the record exists, the stored result is
    /// replayed. If it is cancelled for one of the work's own conditions,
    /// [`TransactionOutcome::Cancelled`] carries the cancellation reasons of the work's
    /// items (in order) for the caller to interpret.
    ///
    /// # Errors
    /// [`IdempotencyError`]: the work's own error, a payload mismatch, or a store failure.
    pub async fn run_in_transaction<R, E, F, Fut>(
        &self,
        key: &str,
        validation: Option<&str>,
        work: F,
    ) -> Result<TransactionOutcome<R>, IdempotencyError<E>>
    where
        R: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(R, Vec<TransactWriteItem>), E>>,
    {
        crate::logging::set_idempotency_key(&self.config.record_id(key));
        if !self.config.disabled
            && let Some(replayed) = self.replay_from_cache(key, validation)
        {
            return replayed.map(TransactionOutcome::Done);
        }
        let (result, mut items) = work().await.map_err(IdempotencyError::Work)?;
        let data = serde_json::to_string(&result)?;
        let now = now();
        let expiration = (now + self.config.expires_after).as_secs();
        let work_items = items.len();
        if !self.config.disabled {
            let mut record = self.record_key(key);
            record.insert(record::STATUS.to_owned(), s(COMPLETED));
            record.insert(record::DATA.to_owned(), s(data.clone()));
            record.insert(record::EXPIRATION.to_owned(), n(expiration));
            if let Some(validation) = validation {
                record.insert(record::VALIDATION.to_owned(), s(validation));
            }
            let put = Put::builder()
                .table_name(&self.config.table)
                .set_item(Some(record))
                .condition_expression("attribute_not_exists(#id) OR #exp < :now")
                .expression_attribute_names("#id", &self.config.key_attribute)
                .expression_attribute_names("#exp", record::EXPIRATION)
                .expression_attribute_values(":now", n(now.as_secs()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|e| IdempotencyError::Store(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let (sent, attempt) = transact(&self.client, &items).await;
        match sent {
            Ok(_) => {
                if !self.config.disabled {
                    self.remember(
                        key,
                        Completed {
                            data,
                            validation: validation.map(str::to_owned),
                            expiration,
                        },
                    );
                }
                Ok(TransactionOutcome::Done(Outcome::Executed(result)))
            }
            Err(error) => {
                let reasons = cancellation_reasons(&error, attempt)?;
                let record_reason = reasons.get(work_items).filter(|_| !self.config.disabled);
                if let Some(reason) = record_reason
                    && failed_condition(reason)
                {
                    let old = reason.item().cloned().unwrap_or_default();
                    return self
                        .existing(key, validation, &old)
                        .map(TransactionOutcome::Done);
                }
                let codes = reasons
                    .iter()
                    .take(work_items)
                    .map(|r| r.code().unwrap_or("None").to_owned())
                    .collect();
                Ok(TransactionOutcome::Cancelled(codes))
            }
        }
    }
}

/// What [`Idempotency::run_in_transaction`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionOutcome<R> {
    /// Executed or replayed.
    Done(Outcome<R>),
    /// The work's own conditions cancelled the transaction: the cancellation code of
    /// each of the work's items (`None`, `ConditionalCheckFailed`, ...).
    Cancelled(Vec<String>),
}

/// The key a request runs under, and the hash of its payload (a repeat with the same key
/// and another payload is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    /// The idempotency key (an order id).
    pub key: String,
    /// The payload's hash ([`payload_hash`]), if repeats are to be validated.
    pub validation: Option<String>,
}

/// Runs the inner service once per key, as Powertools' `idempotent_function` does:
/// lock (an `INPROGRESS` record), run, complete (the result stored, replayed to
/// repeats). `key` names each request's key, like tower-http's `MakeRequestId`. The
/// service answers [`Outcome`]: executed, replayed or in flight.
///
/// # Example
/// ```no_run
/// use std::sync::Arc;
/// use middleware::idempotency::{Idempotency, IdempotencyLayer, RequestKey};
/// use tower::{ServiceBuilder, service_fn};
///
/// # fn build(idempotency: Idempotency) {
/// let service = ServiceBuilder::new()
///     .layer(IdempotencyLayer::new(Arc::new(idempotency), |order: &String| RequestKey {
///         key: order.clone(),
///         validation: None,
///     }))
///     .service(service_fn(|order: String| async move { Ok::<_, String>(order.len()) }));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct IdempotencyLayer<K> {
    idempotency: Arc<Idempotency>,
    key: K,
}

impl<K> IdempotencyLayer<K> {
    /// Records kept by `idempotency`, keys made by `key`.
    pub fn new(idempotency: Arc<Idempotency>, key: K) -> Self {
        Self { idempotency, key }
    }
}

impl<S, K: Clone> tower::Layer<S> for IdempotencyLayer<K> {
    type Service = Idempotent<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotent {
            inner,
            idempotency: Arc::clone(&self.idempotency),
            key: self.key.clone(),
        }
    }
}

/// The transactional form of [`IdempotencyLayer`]: the inner service *plans* its
/// conditional writes without doing them, answering its result and the
/// `TransactWriteItem`s that make it; the layer appends its `COMPLETED` record and
/// commits both in one `TransactWriteItems`, so a completed key costs one write
/// request. The service answers [`TransactionOutcome`]: done (executed, replayed, in
/// flight) or cancelled by the plan's own conditions.
#[derive(Debug, Clone)]
pub struct TransactionalIdempotencyLayer<K>(IdempotencyLayer<K>);

impl<K> TransactionalIdempotencyLayer<K> {
    /// Records kept by `idempotency`, keys made by `key`.
    pub fn new(idempotency: Arc<Idempotency>, key: K) -> Self {
        Self(IdempotencyLayer::new(idempotency, key))
    }
}

impl<S, K: Clone> tower::Layer<S> for TransactionalIdempotencyLayer<K> {
    type Service = TransactionalIdempotent<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        TransactionalIdempotent(self.0.layer(inner))
    }
}

/// The service [`IdempotencyLayer`] builds.
#[derive(Debug, Clone)]
pub struct Idempotent<S, K> {
    inner: S,
    idempotency: Arc<Idempotency>,
    key: K,
}

impl<S, K> Idempotent<S, K> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

type Boxed<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, K, Req, R> tower::Service<Req> for Idempotent<S, K>
where
    K: Fn(&Req) -> RequestKey,
    S: tower::Service<Req, Response = R> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    R: Serialize + DeserializeOwned + Send + 'static,
    Req: Send + 'static,
{
    type Response = Outcome<R>;
    type Error = IdempotencyError<S::Error>;
    type Future = Boxed<Result<Outcome<R>, IdempotencyError<S::Error>>>;

    /// Always ready: each request readies its own clone of the inner service.
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        use tower::ServiceExt as _;
        let RequestKey { key, validation } = (self.key)(&request);
        let (idempotency, inner) = (Arc::clone(&self.idempotency), self.inner.clone());
        Box::pin(async move {
            idempotency
                .run(&key, validation.as_deref(), || inner.oneshot(request))
                .await
        })
    }
}

impl<K> TransactionalIdempotencyLayer<K> {
    /// The layer the configuration asks for, decided once, at construction: this one,
    /// or, with `POWERTOOLS_IDEMPOTENCY_DISABLED`, a [`PlainTransactionLayer`] that
    /// commits the plan and keeps no record.
    pub fn from_config(
        idempotency: Arc<Idempotency>,
        key: K,
    ) -> tower::util::Either<Self, PlainTransactionLayer> {
        if idempotency.config.disabled {
            tower::util::Either::Right(PlainTransactionLayer {
                client: idempotency.client.clone(),
            })
        } else {
            tower::util::Either::Left(Self::new(idempotency, key))
        }
    }
}

/// Commits the inner service's planned writes in one `TransactWriteItems`, with no
/// idempotency record: what [`TransactionalIdempotencyLayer::from_config`] builds when
/// idempotency is disabled. Answers the same [`TransactionOutcome`]s (never replayed
/// or in flight).
#[derive(Debug, Clone)]
pub struct PlainTransactionLayer {
    client: aws_sdk_dynamodb::Client,
}

impl PlainTransactionLayer {
    /// Transactions sent with `client`.
    pub fn new(client: aws_sdk_dynamodb::Client) -> Self {
        Self { client }
    }
}

impl<S> tower::Layer<S> for PlainTransactionLayer {
    type Service = PlainTransaction<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PlainTransaction {
            inner,
            client: self.client.clone(),
        }
    }
}

/// The service [`PlainTransactionLayer`] builds.
#[derive(Debug, Clone)]
pub struct PlainTransaction<S> {
    inner: S,
    client: aws_sdk_dynamodb::Client,
}

impl<S, Req, R> tower::Service<Req> for PlainTransaction<S>
where
    S: tower::Service<Req, Response = (R, Vec<TransactWriteItem>)> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    R: Send + 'static,
    Req: Send + 'static,
{
    type Response = TransactionOutcome<R>;
    type Error = IdempotencyError<S::Error>;
    type Future = Boxed<Result<TransactionOutcome<R>, IdempotencyError<S::Error>>>;

    /// Always ready: each request readies its own clone of the planner.
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        use tower::ServiceExt as _;
        let (client, inner) = (self.client.clone(), self.inner.clone());
        Box::pin(async move {
            let (result, items) = inner
                .oneshot(request)
                .await
                .map_err(IdempotencyError::Work)?;
            let (sent, attempts) = transact(&client, &items).await;
            match sent {
                Ok(_) => Ok(TransactionOutcome::Done(Outcome::Executed(result))),
                Err(error) => Ok(TransactionOutcome::Cancelled(
                    cancellation_reasons(&error, attempts)?
                        .iter()
                        .map(|r| r.code().unwrap_or("None").to_owned())
                        .collect(),
                )),
            }
        })
    }
}

/// The service [`TransactionalIdempotencyLayer`] builds: the inner service answers
/// `(result, planned writes)`.
#[derive(Debug, Clone)]
pub struct TransactionalIdempotent<S, K>(Idempotent<S, K>);

impl<S, K> TransactionalIdempotent<S, K> {
    /// The inner service (the planner).
    pub fn get_ref(&self) -> &S {
        self.0.get_ref()
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.0.into_inner()
    }
}

impl<S, K, Req, R> tower::Service<Req> for TransactionalIdempotent<S, K>
where
    K: Fn(&Req) -> RequestKey,
    S: tower::Service<Req, Response = (R, Vec<TransactWriteItem>)> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    R: Serialize + DeserializeOwned + Send + 'static,
    Req: Send + 'static,
{
    type Response = TransactionOutcome<R>;
    type Error = IdempotencyError<S::Error>;
    type Future = Boxed<Result<TransactionOutcome<R>, IdempotencyError<S::Error>>>;

    /// Always ready: each request readies its own clone of the planner.
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        use tower::ServiceExt as _;
        let Idempotent {
            inner,
            idempotency,
            key,
        } = &self.0;
        let RequestKey { key, validation } = key(&request);
        let (idempotency, inner) = (Arc::clone(idempotency), inner.clone());
        Box::pin(async move {
            idempotency
                .run_in_transaction(&key, validation.as_deref(), || inner.oneshot(request))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_settle_as_batch_results() {
        assert_eq!(Outcome::Executed(1).settle(), Ok(1));
        assert_eq!(Outcome::Replayed(2).settle(), Ok(2));
        assert_eq!(
            Outcome::<u8>::InFlight {
                lease_expires_ms: 9
            }
            .settle(),
            Err(InFlight {
                lease_expires_ms: 9
            })
        );
    }

    #[test]
    fn payload_hashes_are_sha256_hex() {
        assert_eq!(
            payload_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_lease_outside_an_invocation_is_never_zero() {
        let lease = Idempotency::lease_end_ms();
        let now = now().as_millis() as u64;
        assert!(lease > now && lease <= now + DEFAULT_LEASE.as_millis() as u64 + 1_000);
    }
}
