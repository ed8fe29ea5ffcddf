//! "Every order completes exactly once or lands in a dead-letter queue with the
//! reason", checked from the outside: the table, the queues, the event sources'
//! records and the functions' logs, never the functions' own word.
//!
//! Each order in the table is classified:
//!
//! | class | meaning |
//! |---|---|
//! | completed once | `PROCESSED`, `completions = 1` (its lines are ORDERED with it) |
//! | applied twice | `completions > 1`, or a user with more than one order (one was placed per user) |
//! | inconsistent | `PROCESSED` without its completion count |
//! | dead-lettered | still `ORDERED`, its message in the dead-letter queue, with the reason it failed |
//! | set aside | still `ORDERED`, its stream record on the stream's on-failure queue, with the reason |
//! | lost | still `ORDERED` and neither: nothing will ever complete it |
//!
//! An order the API acknowledged that is not in the table is lost too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde_json::Value;

use crate::stack::Stack;

/// One order as the table holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderState {
    /// Its id.
    pub order_id: String,
    /// Its user.
    pub user_id: String,
    /// `order_status`.
    pub status: String,
    /// How many times the completion applied.
    pub completions: u64,
    /// `placed_at` → `processed_at`, when processed.
    pub latency_ms: Option<i64>,
    /// `placed_at`, in epoch milliseconds.
    pub placed_at_ms: Option<i64>,
}

/// The verdict on a run.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Orders in the table.
    pub orders: usize,
    /// Completed exactly once.
    pub completed_once: usize,
    /// Applied more than once (must be empty).
    pub applied_twice: Vec<String>,
    /// Users with more than one order (must be empty when each placed one).
    pub placed_twice: Vec<String>,
    /// Processed without a consistent record of it (must be empty).
    pub inconsistent: Vec<String>,
    /// Dead-lettered orders, with the reason.
    pub dead_lettered: BTreeMap<String, String>,
    /// Orders whose stream record was set aside, with the reason.
    pub set_aside: BTreeMap<String, String>,
    /// Orders nothing will complete (must be empty).
    pub lost: Vec<String>,
    /// Acknowledged by the API but absent from the table (must be empty).
    pub acknowledged_missing: Vec<String>,
    /// Still in flight (ORDERED, not yet failed for good); lost if it stays so.
    pub in_flight: Vec<String>,
    /// placed → processed latencies of the completed orders, sorted, in ms.
    pub latencies_ms: Vec<i64>,
    /// (placed at, latency) of each completed order, in ms, in placing order.
    pub timeline: Vec<(i64, i64)>,
}

impl Audit {
    /// No order lost, none applied twice, none inconsistent, every failure with a
    /// reason.
    pub fn holds(&self) -> bool {
        self.lost.is_empty()
            && self.acknowledged_missing.is_empty()
            && self.applied_twice.is_empty()
            && self.placed_twice.is_empty()
            && self.inconsistent.is_empty()
            && self.in_flight.is_empty()
            && self
                .dead_lettered
                .values()
                .chain(self.set_aside.values())
                .all(|reason| !reason.is_empty())
    }

    /// Orders accounted for: completed, dead-lettered or set aside.
    pub fn settled(&self) -> usize {
        self.completed_once + self.dead_lettered.len() + self.set_aside.len()
    }

    /// The latency at percentile `p` (nearest rank).
    pub fn percentile(&self, p: f64) -> Option<i64> {
        percentile(&self.latencies_ms, p)
    }
}

/// The value at percentile `p` of sorted values (nearest rank); `None` if empty.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// Epoch milliseconds of an RFC 3339 time.
pub fn millis(rfc3339: &str) -> Option<i64> {
    aws_smithy_types::DateTime::from_str(rfc3339, aws_smithy_types::date_time::Format::DateTime)
        .ok()?
        .to_millis()
        .ok()
}

/// Every order in the table, by id.
///
/// # Errors
/// A message if the table cannot be scanned.
pub async fn orders(stack: &Stack) -> Result<BTreeMap<String, OrderState>, String> {
    let client = aws_sdk_dynamodb::Client::new(stack.sdk());
    let mut orders: BTreeMap<String, OrderState> = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(&stack.resources().table_name)
            .filter_expression("begins_with(PK, :order)")
            .expression_attribute_values(":order", AttributeValue::S("ORDER#".to_owned()))
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
        for item in page.items.unwrap_or_default() {
            let id = text(&item, "PK").trim_start_matches("ORDER#").to_owned();
            let sk = text(&item, "SK");
            if sk == "ORDER" {
                let placed = millis(&text(&item, "placed_at"));
                let processed = millis(&text(&item, "processed_at"));
                orders.insert(
                    id.clone(),
                    OrderState {
                        order_id: id,
                        user_id: text(&item, "user_id"),
                        status: text(&item, "order_status"),
                        completions: item
                            .get("completions")
                            .and_then(|v| v.as_n().ok())
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0),
                        latency_ms: placed.zip(processed).map(|(p, d)| d - p),
                        placed_at_ms: placed,
                    },
                );
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    Ok(orders)
}

/// Messages in a queue, without taking them: (message id, order id, body). Each read
/// hides a message for `visibility` seconds (0: not at all, and a queue of more than a
/// few batches is then only sampled); reading stops at a round with nothing new.
pub async fn peek_queue(
    sdk: &aws_config::SdkConfig,
    url: &str,
    visibility: i32,
) -> Vec<(String, Option<String>, String)> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut seen = BTreeMap::new();
    for _ in 0..200 {
        let Ok(output) = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility)
            .message_attribute_names("All")
            .send()
            .await
        else {
            break;
        };
        let messages = output.messages.unwrap_or_default();
        let before = seen.len();
        for message in messages {
            let body = message.body.clone().unwrap_or_default();
            let order_id = message
                .message_attributes
                .as_ref()
                .and_then(|a| a.get("order_id"))
                .and_then(|v| v.string_value.clone())
                .or_else(|| {
                    serde_json::from_str::<Value>(&body)
                        .ok()
                        .and_then(|b| b["order_id"].as_str().map(str::to_owned))
                });
            seen.insert(
                message.message_id.clone().unwrap_or_default(),
                (order_id, body),
            );
        }
        if seen.len() == before {
            break;
        }
    }
    seen.into_iter()
        .map(|(id, (order, body))| (id, order, body))
        .collect()
}

/// The JSON lines of a function's log.
fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The last reason a function logged for a record, by a field's value
/// (`message_id` for SQS, `sequence_number` for the stream).
fn logged_reasons(lines: &[Value], field: &str) -> HashMap<String, String> {
    let mut reasons = HashMap::new();
    for line in lines {
        if let (Some(key), Some(reason)) = (line[field].as_str(), line["reason"].as_str()) {
            reasons.insert(key.to_owned(), reason.to_owned());
        }
    }
    reasons
}

/// The order id of each order INSERT on the stream, by sequence number.
async fn order_inserts(stack: &Stack) -> Result<BTreeMap<u128, String>, String> {
    let Some(stream_arn) = stack.resources().stream_arn.clone() else {
        return Ok(BTreeMap::new());
    };
    let streams = aws_sdk_dynamodbstreams::Client::new(stack.sdk());
    let shards = streams
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await
        .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())?
        .stream_description
        .and_then(|d| d.shards)
        .unwrap_or_default();
    let mut inserts = BTreeMap::new();
    for shard in shards {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&stream_arn)
            .shard_id(shard.shard_id.unwrap_or_default())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())?
            .shard_iterator;
        while let Some(current) = iterator {
            let output = streams
                .get_records()
                .shard_iterator(current)
                .limit(1000)
                .send()
                .await
                .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())?;
            let records = output.records.unwrap_or_default();
            if records.is_empty() {
                break;
            }
            for record in records {
                let Some(change) = record.dynamodb else {
                    continue;
                };
                let keys = change.keys.unwrap_or_default();
                let pk = match keys.get("PK") {
                    Some(aws_sdk_dynamodbstreams::types::AttributeValue::S(pk)) => pk.clone(),
                    _ => continue,
                };
                let is_header = matches!(keys.get("SK"), Some(aws_sdk_dynamodbstreams::types::AttributeValue::S(sk)) if sk == "ORDER");
                let insert = record.event_name.as_ref().map(|n| n.as_str()) == Some("INSERT");
                if let (true, true, Some(id), Some(sequence)) = (
                    is_header,
                    insert,
                    pk.strip_prefix("ORDER#"),
                    change.sequence_number.and_then(|s| s.parse().ok()),
                ) {
                    inserts.insert(sequence, id.to_owned());
                }
            }
            iterator = output.next_shard_iterator;
        }
    }
    Ok(inserts)
}

/// What the failure queues held, kept across audits: reading a queue hides its
/// messages for a while, so a later audit would not see them again.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Dead-lettered orders and why.
    pub dead_lettered: BTreeMap<String, String>,
    /// Orders whose stream record was set aside, and why.
    pub set_aside: BTreeMap<String, String>,
}

/// Audits the stack now. `acknowledged`: the order ids the API answered with;
/// `one_order_per_user`: each user placed exactly one order; `evidence`: what earlier
/// audits found on the failure queues (added to).
///
/// # Errors
/// A message if the table or stream cannot be read.
pub async fn run(
    stack: &Stack,
    acknowledged: &BTreeSet<String>,
    one_order_per_user: bool,
    evidence: &mut Evidence,
) -> Result<Audit, String> {
    let orders = orders(stack).await?;
    let mut audit = Audit {
        orders: orders.len(),
        ..Audit::default()
    };
    audit.acknowledged_missing = acknowledged
        .iter()
        .filter(|id| !orders.contains_key(*id))
        .cloned()
        .collect();
    if one_order_per_user {
        let mut per_user: BTreeMap<&str, usize> = BTreeMap::new();
        for order in orders.values() {
            *per_user.entry(&order.user_id).or_default() += 1;
        }
        audit.placed_twice = per_user
            .into_iter()
            .filter(|(_, count)| *count > 1)
            .map(|(user, _)| user.to_owned())
            .collect();
    }

    // Why messages and records failed: the functions' words first, else the event
    // source's (a crash or timeout leaves no line in the function's log).
    let consumer_log = log_lines(&stack.logs().join("update-cart-products.log"));
    let forwarder_log = log_lines(&stack.logs().join("process-cart-products.log"));
    let message_reasons = logged_reasons(&consumer_log, "message_id");
    let record_reasons = logged_reasons(&forwarder_log, "sequence_number");
    let queue_stats = stack.sources().queues.values().next().cloned();

    let dead_letter_queue = stack
        .spec()
        .queues
        .iter()
        .find_map(|q| q.redrive.as_ref().map(|(dlq, _)| dlq.clone()))
        .and_then(|id| stack.resources().queue(&id).cloned());
    let dead = &mut evidence.dead_lettered;
    if let Some(dlq) = dead_letter_queue {
        for (message_id, order_id, body) in peek_queue(stack.sdk(), &dlq.url, 60).await {
            let reason = message_reasons
                .get(&message_id)
                .cloned()
                .or_else(|| queue_stats.as_ref()?.failure_reason(&message_id))
                .unwrap_or_default();
            let order_id = order_id.unwrap_or_else(|| format!("(undecodable message: {body})"));
            dead.insert(order_id, reason);
        }
    }
    let aside = &mut evidence.set_aside;
    let on_failure = stack
        .spec()
        .stream_mappings
        .iter()
        .filter_map(|m| m.on_failure_queue.clone())
        .filter_map(|id| stack.resources().queue(&id).cloned())
        .collect::<Vec<_>>();
    if !on_failure.is_empty() {
        let inserts = order_inserts(stack).await?;
        for queue in on_failure {
            for (_, _, body) in peek_queue(stack.sdk(), &queue.url, 60).await {
                let record: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let info = &record["DDBStreamBatchInfo"];
                let bound = |name: &str| info[name].as_str().and_then(|s| s.parse::<u128>().ok());
                let (Some(first), Some(last)) =
                    (bound("startSequenceNumber"), bound("endSequenceNumber"))
                else {
                    continue;
                };
                let condition = record["requestContext"]["condition"].as_str().unwrap_or("");
                let logged = record_reasons.get(&first.to_string()).cloned();
                let function_error = record["responseContext"]["functionError"]
                    .as_str()
                    .map(str::to_owned);
                let reason = format!(
                    "{condition}: {}",
                    logged
                        .or(function_error)
                        .unwrap_or_else(|| "no reason logged".to_owned())
                );
                for (_, order_id) in inserts.range(first..=last) {
                    aside.insert(order_id.clone(), reason.clone());
                }
            }
        }
    }

    for (id, order) in &orders {
        match order.status.as_str() {
            "PROCESSED" if order.completions > 1 => audit.applied_twice.push(id.clone()),
            "PROCESSED" if order.completions == 1 => {
                audit.completed_once += 1;
                audit.latencies_ms.extend(order.latency_ms);
                if let (Some(placed), Some(latency)) = (order.placed_at_ms, order.latency_ms) {
                    audit.timeline.push((placed, latency));
                }
            }
            "PROCESSED" => audit.inconsistent.push(id.clone()),
            _ => {
                if let Some(reason) = dead.get(id) {
                    audit.dead_lettered.insert(id.clone(), reason.clone());
                } else if let Some(reason) = aside.get(id) {
                    audit.set_aside.insert(id.clone(), reason.clone());
                } else {
                    audit.in_flight.push(id.clone());
                }
            }
        }
    }
    audit.latencies_ms.sort_unstable();
    audit.timeline.sort_unstable();
    Ok(audit)
}

/// Audits until every order has settled (none in flight) or `patience` passes without
/// progress; what is still in flight then is lost.
///
/// # Errors
/// A message if the table or stream cannot be read.
pub async fn settle(
    stack: &Stack,
    acknowledged: &BTreeSet<String>,
    one_order_per_user: bool,
    patience: std::time::Duration,
    mut progress: impl FnMut(&Audit),
) -> Result<Audit, String> {
    let mut best = usize::MAX;
    let mut last_progress = std::time::Instant::now();
    let mut evidence = Evidence::default();
    loop {
        let audit = run(stack, acknowledged, one_order_per_user, &mut evidence).await?;
        progress(&audit);
        let waiting = audit.in_flight.len();
        if waiting == 0 {
            return Ok(audit);
        }
        if waiting < best {
            best = waiting;
            last_progress = std::time::Instant::now();
        } else if last_progress.elapsed() > patience {
            let mut audit = audit;
            audit.lost = std::mem::take(&mut audit.in_flight);
            return Ok(audit);
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invariants_fail_on_any_loss_duplicate_or_reasonless_failure() {
        let good = Audit {
            orders: 3,
            completed_once: 2,
            dead_lettered: BTreeMap::from([("a".to_owned(), "malformed".to_owned())]),
            ..Audit::default()
        };
        assert!(good.holds());
        assert_eq!(good.settled(), 3);
        let broken = [
            Audit {
                lost: vec!["x".into()],
                ..good.clone()
            },
            Audit {
                applied_twice: vec!["x".into()],
                ..good.clone()
            },
            Audit {
                placed_twice: vec!["u".into()],
                ..good.clone()
            },
            Audit {
                inconsistent: vec!["x".into()],
                ..good.clone()
            },
            Audit {
                acknowledged_missing: vec!["x".into()],
                ..good.clone()
            },
            Audit {
                in_flight: vec!["x".into()],
                ..good.clone()
            },
            Audit {
                set_aside: BTreeMap::from([("b".to_owned(), String::new())]),
                ..good.clone()
            },
        ];
        for audit in broken {
            assert!(!audit.holds(), "{audit:?}");
        }
    }

    #[test]
    fn reasons_are_the_last_logged_for_each_record() {
        let lines: Vec<Value> = [
            r#"{"message":"SQS record failed","message_id":"m1","reason":"first"}"#,
            r#"{"message":"order completed","message_id":"m2"}"#,
            r#"{"message":"SQS record failed","message_id":"m1","reason":"second"}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let reasons = logged_reasons(&lines, "message_id");
        assert_eq!(reasons.get("m1").map(String::as_str), Some("second"));
        assert!(!reasons.contains_key("m2"));
    }
}
