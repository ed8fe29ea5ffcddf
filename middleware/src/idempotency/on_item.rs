//! Idempotency whose record lives on the business item: the second mode of
//! [`super::Idempotency`].
//!
//! When the work is one conditional `UpdateItem` on one item (an order moving from
//! `ORDERED` to `PROCESSED`), a separate record costs a write of its own, or a
//! transaction at twice the price. This mode keeps the record's attributes on the item
//! the work updates, and commits them with the work's own write:
//!
//! | attribute | meaning |
//! |---|---|
//! | [`attr::KEY`] | `<prefix>#<key>`: which function's key the record is |
//! | [`attr::STATUS`] | `INPROGRESS` (a lease is held) or `COMPLETED` |
//! | [`attr::EXPIRATION`] | epoch seconds after which the record no longer answers repeats; not the table's TTL attribute, so the item itself is never deleted |
//! | [`attr::LEASE`] | end of an `INPROGRESS` lease, epoch milliseconds |
//! | [`attr::VALIDATION`] | the payload's hash ([`super::payload_hash`]) |
//! | [`attr::DATA`] | the stored result (JSON) |
//!
//! # How a key is run
//! - [`super::Idempotency::run_on_item`]: the work plans an [`ItemWrite`] (its key,
//!   condition and update clauses) without doing it; the mode adds its attributes and
//!   its own condition (no live record) and sends one `UpdateItem` with
//!   `ReturnValuesOnConditionCheckFailure = ALL_OLD`. When the condition fails, the
//!   stored item comes back with the refusal, so a repeat is told apart with no read:
//!   a live `COMPLETED` record replays its result (after checking the payload hash), a
//!   live lease answers [`super::Outcome::InFlight`], and anything else is the work's
//!   own condition refusing: [`ItemOutcome::Refused`] carries the item as stored (empty
//!   if there is none) for the caller to read. A first execution costs one write; a
//!   repeat one failed conditional write, billed as one.
//! - [`super::Idempotency::run_on_item_leased`], for work with effects outside the item
//!   (a payment call before the write): one `UpdateItem` first takes a lease on the
//!   item (`INPROGRESS` until the invocation's deadline), the work runs with the item
//!   as it was, and the commit's condition requires the same lease. A failed work
//!   releases the lease. Two writes, as in the separate-record mode.
//!
//! One item carries one record: two functions that both keep their record on the same
//! item would overwrite each other's; give the second one the separate-record mode.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{COMPLETED, INPROGRESS, Idempotency, IdempotencyError, Outcome, n, now, s};

/// The record's attributes on the business item, spelled here only.
pub mod attr {
    /// `<prefix>#<key>`.
    pub const KEY: &str = "idem_key";
    /// `INPROGRESS` or `COMPLETED`.
    pub const STATUS: &str = "idem_status";
    /// When the record stops answering repeats, epoch seconds.
    pub const EXPIRATION: &str = "idem_expiration";
    /// End of an `INPROGRESS` lease, epoch milliseconds.
    pub const LEASE: &str = "idem_lease";
    /// The payload's hash.
    pub const VALIDATION: &str = "idem_validation";
    /// The stored result (JSON).
    pub const DATA: &str = "idem_data";
    /// Every attribute, for removing a record.
    pub const ALL: [&str; 6] = [KEY, STATUS, EXPIRATION, LEASE, VALIDATION, DATA];
}

type Item = HashMap<String, AttributeValue>;

/// The item holds no live record: none, an expired one, or a lease that has ended
/// (its holder died). Needs `:idem_now`, `:idem_now_ms` and `:idem_inprogress`.
const NO_LIVE_RECORD: &str = "attribute_not_exists(#idem_status) OR #idem_expiration < :idem_now OR (#idem_status = :idem_inprogress AND #idem_lease < :idem_now_ms)";

/// The work's own conditional `UpdateItem`, planned but not sent. Placeholders the
/// mode adds start with `#idem_` and `:idem_`; the work's must not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemWrite {
    /// The item's primary key.
    pub key: Item,
    /// The work's condition (`None`: the item must exist, nothing more).
    pub condition: Option<String>,
    /// `SET` actions, without the keyword (`#status = :processed`).
    pub set: Vec<String>,
    /// `ADD` actions (`completions :one`).
    pub add: Vec<String>,
    /// `REMOVE` actions.
    pub remove: Vec<String>,
    /// Expression attribute names.
    pub names: HashMap<String, String>,
    /// Expression attribute values.
    pub values: Item,
}

impl ItemWrite {
    /// The update expression of the clauses.
    pub fn update_expression(&self) -> String {
        let mut clauses = Vec::new();
        for (keyword, actions) in [
            ("SET", &self.set),
            ("ADD", &self.add),
            ("REMOVE", &self.remove),
        ] {
            if !actions.is_empty() {
                clauses.push(format!("{keyword} {}", actions.join(", ")));
            }
        }
        clauses.join(" ")
    }
}

/// What running a key on its item did.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome<R> {
    /// Executed now, replayed from the item's live record, or in flight elsewhere.
    Done(Outcome<R>),
    /// The work's own condition refused the write: the item as stored (empty when
    /// there is no item), read from the refusal itself.
    Refused(Item),
}

fn name(placeholder: &str, attribute: &str) -> (String, String) {
    (placeholder.to_owned(), attribute.to_owned())
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn number(item: &Item, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// Why an `UpdateItem` was refused, if it was a failed condition: the stored item.
fn refused<R: std::fmt::Debug>(error: &SdkError<UpdateItemError, R>) -> Option<Item> {
    match error.as_service_error()? {
        UpdateItemError::ConditionalCheckFailedException(failed) => {
            Some(failed.item.clone().unwrap_or_default())
        }
        _ => None,
    }
}

impl Idempotency {
    /// The record `prefix#key` as the items of this mode name it.
    fn item_record_id(&self, key: &str) -> String {
        format!("{}#{key}", self.config.key_prefix)
    }

    /// What a stored item's record means for a new run of `key`: replayed, in flight,
    /// or nothing live (`None`: the work's own condition decides).
    fn live_on_item<R: DeserializeOwned, E>(
        &self,
        key: &str,
        validation: Option<&str>,
        item: &Item,
    ) -> Option<Result<Outcome<R>, IdempotencyError<E>>> {
        let record_id = self.item_record_id(key);
        if text(item, attr::KEY) != Some(record_id.as_str()) {
            return None;
        }
        let now = now();
        match text(item, attr::STATUS) {
            Some(COMPLETED) if number(item, attr::EXPIRATION).unwrap_or(0) >= now.as_secs() => {
                if validation.is_some() && text(item, attr::VALIDATION) != validation {
                    return Some(Err(IdempotencyError::PayloadMismatch {
                        key: key.to_owned(),
                    }));
                }
                let data = text(item, attr::DATA).unwrap_or("null");
                Some(
                    serde_json::from_str(data)
                        .map(Outcome::Replayed)
                        .map_err(IdempotencyError::from),
                )
            }
            Some(INPROGRESS)
                if number(item, attr::LEASE).unwrap_or(0) >= now.as_millis() as u64 =>
            {
                Some(Ok(Outcome::InFlight {
                    lease_expires_ms: number(item, attr::LEASE).unwrap_or(0),
                }))
            }
            _ => None,
        }
    }

    /// Adds the `COMPLETED` record to `write`, guarded by `guard` (no live record, or
    /// the caller's own lease).
    fn commit_on_item(
        &self,
        key: &str,
        validation: Option<&str>,
        data: &str,
        mut write: ItemWrite,
        guard: &str,
    ) -> ItemWrite {
        write.set.extend(
            [
                "#idem_key = :idem_key",
                "#idem_status = :idem_completed",
                "#idem_expiration = :idem_expiration",
                "#idem_data = :idem_data",
            ]
            .map(str::to_owned),
        );
        write.remove.push("#idem_lease".to_owned());
        write.names.extend([
            name("#idem_key", attr::KEY),
            name("#idem_status", attr::STATUS),
            name("#idem_expiration", attr::EXPIRATION),
            name("#idem_data", attr::DATA),
            name("#idem_lease", attr::LEASE),
        ]);
        write.values.extend([
            (":idem_key".to_owned(), s(self.item_record_id(key))),
            (":idem_completed".to_owned(), s(COMPLETED)),
            (
                ":idem_expiration".to_owned(),
                n((now() + self.config.expires_after).as_secs()),
            ),
            (":idem_data".to_owned(), s(data)),
        ]);
        if let Some(validation) = validation {
            write
                .set
                .push("#idem_validation = :idem_validation".to_owned());
            write
                .names
                .extend([name("#idem_validation", attr::VALIDATION)]);
            write
                .values
                .insert(":idem_validation".to_owned(), s(validation));
        }
        write.condition = Some(match write.condition.take() {
            Some(own) => format!("({own}) AND ({guard})"),
            None => guard.to_owned(),
        });
        write
    }

    /// Sends `write` as one `UpdateItem` that needs the item to exist: the item as it
    /// was before (`ALL_OLD`, when `return_old`), or the stored item that refused it.
    async fn send_item_write<E>(
        &self,
        write: ItemWrite,
        return_old: bool,
    ) -> Result<Result<Item, Item>, IdempotencyError<E>> {
        let exists = "attribute_exists(#idem_pk)";
        let condition = match &write.condition {
            Some(condition) => format!("{exists} AND ({condition})"),
            None => exists.to_owned(),
        };
        let expression = write.update_expression();
        let sent = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(write.key))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(write.names))
            .expression_attribute_names("#idem_pk", &self.config.key_attribute)
            .set_expression_attribute_values((!write.values.is_empty()).then_some(write.values))
            .return_values(if return_old {
                ReturnValue::AllOld
            } else {
                ReturnValue::None
            })
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(output) => Ok(Ok(output.attributes.unwrap_or_default())),
            Err(error) => match refused(&error) {
                Some(item) => Ok(Err(item)),
                None => Err(IdempotencyError::Store(
                    DisplayErrorContext(&error).to_string(),
                )),
            },
        }
    }

    /// Runs work that is one conditional `UpdateItem` on one item, once for `key`, in
    /// that one write: `work` answers its result and its planned [`ItemWrite`], and the
    /// record is committed on the item with it (see [the mode](self)).
    ///
    /// With `POWERTOOLS_IDEMPOTENCY_DISABLED`, the write is sent without the record.
    ///
    /// # Errors
    /// [`IdempotencyError`]: the work's own error, a payload mismatch, or a store
    /// failure.
    pub async fn run_on_item<R, E, F, Fut>(
        &self,
        key: &str,
        validation: Option<&str>,
        work: F,
    ) -> Result<ItemOutcome<R>, IdempotencyError<E>>
    where
        R: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(R, ItemWrite), E>>,
    {
        crate::logging::set_idempotency_key(&self.item_record_id(key));
        let (result, write) = work().await.map_err(IdempotencyError::Work)?;
        let write = if self.config.disabled {
            write
        } else {
            let data = serde_json::to_string(&result)?;
            let mut write = self.commit_on_item(key, validation, &data, write, NO_LIVE_RECORD);
            let now = now();
            write.values.extend([
                (":idem_now".to_owned(), n(now.as_secs())),
                (":idem_now_ms".to_owned(), n(now.as_millis())),
                (":idem_inprogress".to_owned(), s(INPROGRESS)),
            ]);
            write
        };
        match self.send_item_write(write, false).await? {
            Ok(_) => Ok(ItemOutcome::Done(Outcome::Executed(result))),
            Err(stored) => Ok(if self.config.disabled {
                ItemOutcome::Refused(stored)
            } else {
                match self.live_on_item(key, validation, &stored) {
                    Some(done) => ItemOutcome::Done(done?),
                    None => ItemOutcome::Refused(stored),
                }
            }),
        }
    }

    /// Runs work with effects outside the item, once for `key`: a lease on the item
    /// first (one conditional `UpdateItem`, until the invocation's deadline), then
    /// `work` with the item as it was before the lease, then its [`ItemWrite`]
    /// committed only while the lease is still this run's. A failed work releases the
    /// lease; a run that dies leaves it to expire, and the next delivery takes it over.
    ///
    /// # Errors
    /// [`IdempotencyError`]: the work's own error, a payload mismatch, a lease lost to
    /// another run ([`IdempotencyError::Store`] naming it), or a store failure.
    pub async fn run_on_item_leased<R, E, F, Fut>(
        &self,
        item_key: Item,
        key: &str,
        validation: Option<&str>,
        work: F,
    ) -> Result<ItemOutcome<R>, IdempotencyError<E>>
    where
        R: Serialize + DeserializeOwned,
        F: FnOnce(Item) -> Fut,
        Fut: Future<Output = Result<(R, ItemWrite), E>>,
    {
        crate::logging::set_idempotency_key(&self.item_record_id(key));
        let now = now();
        let lease = Self::lease_end_ms();
        let mut take = ItemWrite {
            key: item_key.clone(),
            condition: Some(NO_LIVE_RECORD.to_owned()),
            set: [
                "#idem_key = :idem_key",
                "#idem_status = :idem_inprogress",
                "#idem_lease = :idem_lease",
            ]
            .map(str::to_owned)
            .to_vec(),
            names: HashMap::from([
                name("#idem_key", attr::KEY),
                name("#idem_status", attr::STATUS),
                name("#idem_expiration", attr::EXPIRATION),
                name("#idem_lease", attr::LEASE),
            ]),
            values: HashMap::from([
                (":idem_key".to_owned(), s(self.item_record_id(key))),
                (":idem_inprogress".to_owned(), s(INPROGRESS)),
                (":idem_lease".to_owned(), n(lease)),
                (":idem_now".to_owned(), n(now.as_secs())),
                (":idem_now_ms".to_owned(), n(now.as_millis())),
            ]),
            ..ItemWrite::default()
        };
        if let Some(validation) = validation {
            take.set
                .push("#idem_validation = :idem_validation".to_owned());
            take.names
                .extend([name("#idem_validation", attr::VALIDATION)]);
            take.values
                .insert(":idem_validation".to_owned(), s(validation));
        }
        let before = match self.send_item_write(take, true).await? {
            Ok(before) => before,
            Err(stored) => {
                return Ok(match self.live_on_item(key, validation, &stored) {
                    Some(done) => ItemOutcome::Done(done?),
                    None => ItemOutcome::Refused(stored),
                });
            }
        };
        let (result, write) = match work(before).await {
            Ok(planned) => planned,
            Err(error) => {
                self.release_lease(&item_key, lease).await;
                return Err(IdempotencyError::Work(error));
            }
        };
        let data = serde_json::to_string(&result)?;
        let mut write = self.commit_on_item(
            key,
            validation,
            &data,
            write,
            "#idem_status = :idem_inprogress AND #idem_lease = :idem_lease",
        );
        write.values.extend([
            (":idem_inprogress".to_owned(), s(INPROGRESS)),
            (":idem_lease".to_owned(), n(lease)),
        ]);
        match self.send_item_write(write, false).await? {
            Ok(_) => Ok(ItemOutcome::Done(Outcome::Executed(result))),
            Err(stored) => {
                let ours = text(&stored, attr::STATUS) == Some(INPROGRESS)
                    && number(&stored, attr::LEASE) == Some(lease);
                if ours {
                    // The work's own condition refused: give the lease back.
                    self.release_lease(&item_key, lease).await;
                    Ok(ItemOutcome::Refused(stored))
                } else {
                    Err(IdempotencyError::Store(format!(
                        "the lease on {key} ended before the work committed (another run took it over); the work's effects outside the item may have happened twice"
                    )))
                }
            }
        }
    }

    async fn release_lease(&self, item_key: &Item, lease: u64) {
        let released = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(item_key.clone()))
            .update_expression("REMOVE #idem_status, #idem_lease, #idem_key, #idem_validation")
            .condition_expression("#idem_status = :idem_inprogress AND #idem_lease = :idem_lease")
            .expression_attribute_names("#idem_status", attr::STATUS)
            .expression_attribute_names("#idem_lease", attr::LEASE)
            .expression_attribute_names("#idem_key", attr::KEY)
            .expression_attribute_names("#idem_validation", attr::VALIDATION)
            .expression_attribute_values(":idem_inprogress", s(INPROGRESS))
            .expression_attribute_values(":idem_lease", n(lease))
            .send()
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %DisplayErrorContext(&e), "could not release the lease on the item; it frees itself at the lease's end");
        }
    }

    /// Removes the record from an item: an `INPROGRESS` one whose lease has ended, or,
    /// with `force`, any record (the next delivery then meets the work's own condition
    /// alone). The item itself is kept.
    ///
    /// # Errors
    /// A message if the table cannot be written.
    pub async fn clear_stale_on_item(
        &self,
        item_key: Item,
        force: bool,
    ) -> Result<super::Cleared, String> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(item_key))
            .update_expression(format!(
                "REMOVE {}",
                (0..attr::ALL.len())
                    .map(|i| format!("#a{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .expression_attribute_names("#idem_status", attr::STATUS)
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (i, attribute) in attr::ALL.iter().enumerate() {
            request = request.expression_attribute_names(format!("#a{i}"), *attribute);
        }
        request = if force {
            request.condition_expression("attribute_exists(#idem_status)")
        } else {
            request
                .condition_expression("#idem_status = :inprogress AND #idem_lease < :now")
                .expression_attribute_names("#idem_lease", attr::LEASE)
                .expression_attribute_values(":inprogress", s(INPROGRESS))
                .expression_attribute_values(":now", n(crate::clock::epoch_ms()))
        };
        match request.send().await {
            Ok(_) => Ok(super::Cleared::Deleted),
            Err(error) => match refused(&error) {
                Some(item) => Ok(match text(&item, attr::STATUS) {
                    None => super::Cleared::Absent,
                    Some(status) => super::Cleared::Kept(status.to_owned()),
                }),
                None => Err(format!(
                    "removing the record from the item: {}",
                    DisplayErrorContext(&error)
                )),
            },
        }
    }
}

/// The on-item form of [`super::IdempotencyLayer`]: the inner service *plans* its
/// conditional `UpdateItem` without sending it, answering its result and the
/// [`ItemWrite`]; the layer adds the record's attributes and sends the one write
/// ([`Idempotency::run_on_item`]). The service answers [`ItemOutcome`].
#[derive(Debug, Clone)]
pub struct ItemIdempotencyLayer<K>(super::IdempotencyLayer<K>);

impl<K> ItemIdempotencyLayer<K> {
    /// Records kept on the items by `idempotency`, keys made by `key`.
    pub fn new(idempotency: std::sync::Arc<Idempotency>, key: K) -> Self {
        Self(super::IdempotencyLayer::new(idempotency, key))
    }
}

impl<S, K: Clone> tower::Layer<S> for ItemIdempotencyLayer<K> {
    type Service = ItemIdempotent<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        ItemIdempotent(self.0.layer(inner))
    }
}

/// The service [`ItemIdempotencyLayer`] builds.
#[derive(Debug, Clone)]
pub struct ItemIdempotent<S, K>(super::Idempotent<S, K>);

impl<S, K> ItemIdempotent<S, K> {
    /// The inner service (the planner).
    pub fn get_ref(&self) -> &S {
        self.0.get_ref()
    }
}

impl<S, K, Req, R> tower::Service<Req> for ItemIdempotent<S, K>
where
    K: Fn(&Req) -> super::RequestKey,
    S: tower::Service<Req, Response = (R, ItemWrite)> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    R: Serialize + DeserializeOwned + Send + 'static,
    Req: Send + 'static,
{
    type Response = ItemOutcome<R>;
    type Error = IdempotencyError<S::Error>;
    type Future = super::Boxed<Result<ItemOutcome<R>, IdempotencyError<S::Error>>>;

    /// Always ready: each request readies its own clone of the planner.
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        use tower::ServiceExt as _;
        let super::Idempotent {
            inner,
            idempotency,
            key,
        } = &self.0;
        let super::RequestKey { key, validation } = key(&request);
        let (idempotency, inner) = (std::sync::Arc::clone(idempotency), inner.clone());
        Box::pin(async move {
            idempotency
                .run_on_item(&key, validation.as_deref(), || inner.oneshot(request))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_join_into_one_update_expression() {
        let write = ItemWrite {
            set: vec!["a = :a".into(), "b = :b".into()],
            add: vec!["c :one".into()],
            remove: vec!["d".into()],
            ..ItemWrite::default()
        };
        assert_eq!(
            write.update_expression(),
            "SET a = :a, b = :b ADD c :one REMOVE d"
        );
        assert_eq!(ItemWrite::default().update_expression(), "");
    }
}
