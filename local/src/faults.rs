//! A fault-injecting proxy between a function and the emulator.
//!
//! Each function reaches the emulator through its own proxy (its `AWS_ENDPOINT_URL`),
//! which counts every AWS call by operation and, on a seeded share of them, injects a
//! fault in the exact shape AWS answers with, so the real SDK's retry and error paths
//! run:
//!
//! | fault | applies to | what the client sees |
//! |---|---|---|
//! | `ProvisionedThroughputExceeded` | DynamoDB | 400 `ProvisionedThroughputExceededException` (SDK retries) |
//! | `Throttling` | DynamoDB, SQS | 400 `ThrottlingException` / SQS `RequestThrottled` (SDK retries) |
//! | `InternalServerError` | DynamoDB | 500 `InternalServerError` (SDK retries) |
//! | `TransactionConflict` | `TransactWriteItems` | 400 `TransactionCanceledException`, one reason `TransactionConflict` |
//! | `PartialBatch` | `SendMessageBatch` | 200 with some entries in `Failed` (those were not sent) |
//! | `Http500`, `Http503` | any | a bare 5xx (SDK retries) |
//! | `ResetBeforeApplied` | any | the connection closes; the request never reached the emulator |
//! | `ResetAfterApplied` | any | the emulator applied the request, then the connection closes: an error for a write that happened |
//! | `Latency` | any | the answer comes late, sometimes after the SDK's attempt timeout |
//!
//! With a fault rate of 0 the proxy only counts calls (AWS requests per order, as they
//! arrive) and keeps the function's connection alive, as AWS does (the emulator closes
//! every connection).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::capacity::{self, TableShape, WriteOutcome, Written};
use crate::cloudwatch::Plane;
use crate::cloudwatch::store::MetricId;
use crate::http::{self, Body};

/// Largest request the proxy reads (SQS batches are at most 1 MiB).
const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// How many calls get which faults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultPlan {
    /// Share of calls that get a fault (0 to 1).
    pub rate: f64,
    /// Seed of the choices.
    pub seed: u64,
    /// Shortest added latency.
    pub min_latency: Duration,
    /// Longest added latency.
    pub max_latency: Duration,
    /// Inject only this fault (where it applies); every applicable fault when `None`.
    pub only: Option<Fault>,
}

impl FaultPlan {
    /// Counting and keep-alive only.
    pub const NONE: Self = Self {
        rate: 0.0,
        seed: 0,
        min_latency: Duration::from_millis(50),
        max_latency: Duration::from_secs(3),
        only: None,
    };
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self::NONE
    }
}

/// A fault the proxy injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// DynamoDB `ProvisionedThroughputExceededException`.
    ProvisionedThroughputExceeded,
    /// DynamoDB `ThrottlingException`, SQS `RequestThrottled`.
    Throttling,
    /// DynamoDB `InternalServerError`.
    InternalServerError,
    /// `TransactWriteItems` cancelled with a `TransactionConflict` reason.
    TransactionConflict,
    /// `SendMessageBatch` with some entries not sent and listed in `Failed`.
    PartialBatch,
    /// A bare HTTP 500.
    Http500,
    /// A bare HTTP 503.
    Http503,
    /// The connection closes before the request reaches the emulator.
    ResetBeforeApplied,
    /// The connection closes after the emulator applied the request.
    ResetAfterApplied,
    /// The answer is delayed.
    Latency,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Self; 10] = [
        Self::ProvisionedThroughputExceeded,
        Self::Throttling,
        Self::InternalServerError,
        Self::TransactionConflict,
        Self::PartialBatch,
        Self::Http500,
        Self::Http503,
        Self::ResetBeforeApplied,
        Self::ResetAfterApplied,
        Self::Latency,
    ];

    /// The faults that fit a call.
    pub fn applicable(service: Service, operation: &str) -> Vec<Self> {
        let mut faults = vec![
            Self::Http500,
            Self::Http503,
            Self::ResetBeforeApplied,
            Self::ResetAfterApplied,
            Self::Latency,
        ];
        match service {
            Service::DynamoDb => {
                faults.extend([
                    Self::ProvisionedThroughputExceeded,
                    Self::Throttling,
                    Self::InternalServerError,
                ]);
                if operation == "TransactWriteItems" {
                    faults.push(Self::TransactionConflict);
                }
            }
            Service::Sqs => {
                faults.push(Self::Throttling);
                if operation == "SendMessageBatch" {
                    faults.push(Self::PartialBatch);
                }
            }
            Service::DynamoDbStreams | Service::Other => {}
        }
        faults
    }
}

/// The AWS service a call is for, from its `X-Amz-Target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `DynamoDB_20120810.*`
    DynamoDb,
    /// `DynamoDBStreams_20120810.*`
    DynamoDbStreams,
    /// `AmazonSQS.*`
    Sqs,
    /// Anything else (passed through, counted).
    Other,
}

impl Service {
    /// Service and operation from an `X-Amz-Target` header value.
    pub fn from_target(target: &str) -> (Self, &str) {
        let (prefix, operation) = target.split_once('.').unwrap_or((target, ""));
        let service = match prefix {
            "DynamoDB_20120810" => Self::DynamoDb,
            "DynamoDBStreams_20120810" => Self::DynamoDbStreams,
            "AmazonSQS" => Self::Sqs,
            _ => Self::Other,
        };
        (service, operation)
    }

    fn name(self) -> &'static str {
        match self {
            Self::DynamoDb => "DynamoDB",
            Self::DynamoDbStreams => "DynamoDBStreams",
            Self::Sqs => "SQS",
            Self::Other => "other",
        }
    }
}

/// What one proxy saw.
#[derive(Debug, Default)]
pub struct ProxyStats {
    calls: Mutex<BTreeMap<String, u64>>,
    faults: Mutex<BTreeMap<Fault, u64>>,
    dynamodb_writes: AtomicU64,
    dynamodb_table_write_units: AtomicU64,
    dynamodb_index_write_units: AtomicU64,
}

impl ProxyStats {
    /// Calls by `Service.Operation`.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// All calls.
    pub fn total_calls(&self) -> u64 {
        self.calls().values().sum()
    }

    /// Injected faults by kind.
    pub fn faults(&self) -> BTreeMap<Fault, u64> {
        self.faults.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// All injected faults.
    pub fn total_faults(&self) -> u64 {
        self.faults().values().sum()
    }

    /// DynamoDB write requests (`PutItem`, `UpdateItem`, `DeleteItem`,
    /// `TransactWriteItems`, `BatchWriteItem`).
    pub fn dynamodb_writes(&self) -> u64 {
        self.dynamodb_writes.load(Ordering::Relaxed)
    }

    /// DynamoDB write request units the calls consumed, base tables and indexes, by
    /// DynamoDB's documented rules ([`capacity::write_cost`]) from the item images the
    /// emulator reports. Counted once a table shape is attached
    /// ([`ProxyHandle::attach`]).
    pub fn dynamodb_write_units(&self) -> u64 {
        self.dynamodb_table_write_units() + self.dynamodb_index_write_units()
    }

    /// The base tables' share of [`Self::dynamodb_write_units`].
    pub fn dynamodb_table_write_units(&self) -> u64 {
        self.dynamodb_table_write_units.load(Ordering::Relaxed)
    }

    /// The global secondary indexes' share of [`Self::dynamodb_write_units`].
    pub fn dynamodb_index_write_units(&self) -> u64 {
        self.dynamodb_index_write_units.load(Ordering::Relaxed)
    }

    fn consumed(&self, cost: &capacity::WriteCost) {
        self.dynamodb_table_write_units
            .fetch_add(cost.tables.values().sum(), Ordering::Relaxed);
        self.dynamodb_index_write_units
            .fetch_add(cost.indexes.values().sum(), Ordering::Relaxed);
    }

    fn count(&self, service: Service, operation: &str) {
        if let Ok(mut calls) = self.calls.lock() {
            *calls
                .entry(format!("{}.{operation}", service.name()))
                .or_default() += 1;
        }
        let write = matches!(
            operation,
            "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem"
        );
        if service == Service::DynamoDb && write {
            self.dynamodb_writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn injected(&self, fault: Fault) {
        if let Ok(mut faults) = self.faults.lock() {
            *faults.entry(fault).or_default() += 1;
        }
    }
}

struct Proxy {
    upstream: String,
    plan: Arc<Mutex<FaultPlan>>,
    rng: Mutex<fastrand::Rng>,
    client: Client<HttpConnector, Full<Bytes>>,
    stats: Arc<ProxyStats>,
    telemetry: Arc<std::sync::OnceLock<ProxyTelemetry>>,
}

/// What a proxy needs to count capacity units: each table's key and indexes (by table
/// name) to count index writes, and the plane its `AWS/DynamoDB` metrics go to, if any.
#[derive(Debug, Clone)]
pub struct ProxyTelemetry {
    /// The plane (`None`: the units are counted in [`ProxyStats`] only).
    pub plane: Option<Arc<Plane>>,
    /// Table shapes by table name.
    pub tables: BTreeMap<String, TableShape>,
}

/// A running proxy.
#[derive(Debug, Clone)]
pub struct ProxyHandle {
    /// Where clients connect (`http://127.0.0.1:port`).
    pub endpoint: String,
    /// What it saw.
    pub stats: Arc<ProxyStats>,
    plan: Arc<Mutex<FaultPlan>>,
    telemetry: Arc<std::sync::OnceLock<ProxyTelemetry>>,
}

impl ProxyHandle {
    /// Changes the faults injected from now on (a drill's failure, and its end).
    pub fn set_plan(&self, plan: FaultPlan) {
        if let Ok(mut current) = self.plan.lock() {
            *current = plan;
        }
    }

    /// The faults injected now.
    pub fn plan(&self) -> FaultPlan {
        self.plan.lock().map(|p| *p).unwrap_or_default()
    }

    /// Counts capacity units by `telemetry`'s table shapes, and reports `AWS/DynamoDB`
    /// metrics to its plane, from now on.
    pub fn attach(&self, telemetry: ProxyTelemetry) {
        let _ = self.telemetry.set(telemetry);
    }
}

/// Starts a proxy to `upstream` on a free loopback port.
///
/// # Errors
/// If no port can be bound.
pub async fn start(
    upstream: &str,
    plan: FaultPlan,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<ProxyHandle> {
    let (listener, address): (_, SocketAddr) = http::bind(0).await?;
    let stats = Arc::new(ProxyStats::default());
    let shared_plan = Arc::new(Mutex::new(plan));
    let telemetry = Arc::new(std::sync::OnceLock::new());
    let proxy = Arc::new(Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        plan: Arc::clone(&shared_plan),
        rng: Mutex::new(fastrand::Rng::with_seed(plan.seed)),
        client: Client::builder(TokioExecutor::new()).build_http(),
        stats: Arc::clone(&stats),
        telemetry: Arc::clone(&telemetry),
    });
    tokio::spawn(http::serve_or_drop(
        listener,
        move |request| handle(Arc::clone(&proxy), request),
        shutdown,
    ));
    Ok(ProxyHandle {
        endpoint: format!("http://{address}"),
        stats,
        plan: shared_plan,
        telemetry,
    })
}

impl Proxy {
    fn plan(&self) -> FaultPlan {
        self.plan.lock().map(|p| *p).unwrap_or_default()
    }

    fn choose(&self, service: Service, operation: &str) -> Option<(Fault, fastrand::Rng)> {
        let plan = self.plan();
        if plan.rate <= 0.0 {
            return None;
        }
        let mut rng = self.rng.lock().ok()?;
        // A child generator for the fault's own choices, drawn in arrival order.
        let child = fastrand::Rng::with_seed(rng.u64(..));
        if rng.f64() >= plan.rate {
            return None;
        }
        let mut faults = Fault::applicable(service, operation);
        if let Some(only) = plan.only {
            faults.retain(|fault| *fault == only);
        }
        if faults.is_empty() {
            return None;
        }
        Some((faults[rng.usize(..faults.len())], child))
    }

    async fn forward(
        &self,
        parts: &hyper::http::request::Parts,
        body: Bytes,
    ) -> Result<(hyper::http::response::Parts, Bytes), String> {
        // For the capacity counting: the operation, and the request (a cheap clone of
        // the shared bytes).
        let target = target_of(&parts.headers);
        let request_body = body.clone();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", hyper::http::uri::PathAndQuery::as_str);
        let mut request = Request::builder()
            .method(parts.method.clone())
            .uri(format!("{}{path}", self.upstream));
        for (name, value) in &parts.headers {
            if !hop_by_hop(name.as_str()) {
                request = request.header(name, value);
            }
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("emulator: {e}"))?;
        let (mut parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("emulator body: {e}"))?
            .to_bytes();
        let images = parts.headers.remove(ITEM_IMAGES_HEADER);
        if let Some(telemetry) = self.telemetry.get() {
            record_dynamodb(
                telemetry,
                &self.stats,
                &target,
                &request_body,
                &parts,
                &body,
                images.as_ref(),
            );
        }
        Ok((parts, body))
    }
}

/// The emulator's header with the images of the items a write touched
/// (`local/src/moto_serve.py`).
const ITEM_IMAGES_HEADER: &str = "x-local-item-images";

/// A request's `X-Amz-Target` (empty when it has none).
fn target_of(headers: &hyper::HeaderMap) -> String {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `AWS/DynamoDB` metrics of one call that reached the emulator: consumed write units
/// (table and indexes) from the item images, consumed read units from the items read,
/// and refused conditional writes.
fn record_dynamodb(
    telemetry: &ProxyTelemetry,
    stats: &ProxyStats,
    target: &str,
    request: &[u8],
    parts: &hyper::http::response::Parts,
    body: &[u8],
    images: Option<&hyper::header::HeaderValue>,
) {
    let (service, operation) = Service::from_target(target);
    if service != Service::DynamoDb {
        return;
    }
    let plane = telemetry.plane.as_deref();
    let put = |id: MetricId, value: f64| {
        if let Some(plane) = plane {
            plane.put(id, value);
        }
    };
    let metric = |name: &str, table: &str, index: Option<&str>| {
        let mut dimensions = vec![("TableName", table)];
        if let Some(index) = index {
            dimensions.push(("GlobalSecondaryIndexName", index));
        }
        MetricId::new("AWS/DynamoDB", name, dimensions)
    };
    let error_type = parts
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|b| b["__type"].as_str().map(str::to_owned))
        })
        .unwrap_or_default();
    if let Some(images) = images.and_then(|v| v.to_str().ok()) {
        let written: Vec<Written> = serde_json::from_str::<Value>(images)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|entry| Written {
                operation: entry["operation"].as_str().unwrap_or_default().to_owned(),
                table: entry["table"].as_str().unwrap_or_default().to_owned(),
                before: entry["before"].as_object().cloned(),
                after: entry["after"].as_object().cloned(),
            })
            .collect();
        let outcome = if parts.status.is_success() {
            Some(WriteOutcome::Applied)
        } else if error_type.contains("ConditionalCheckFailed")
            || error_type.contains("TransactionCanceled")
        {
            Some(WriteOutcome::Refused)
        } else {
            None
        };
        if let Some(outcome) = outcome {
            let cost = capacity::write_cost(
                &written,
                operation == "TransactWriteItems",
                outcome,
                &|table| telemetry.tables.get(table).cloned(),
            );
            stats.consumed(&cost);
            for (table, units) in &cost.tables {
                put(
                    metric("ConsumedWriteCapacityUnits", table, None),
                    *units as f64,
                );
            }
            for ((table, index), units) in &cost.indexes {
                put(
                    metric("ConsumedWriteCapacityUnits", table, Some(index)),
                    *units as f64,
                );
            }
        }
        if error_type.contains("ConditionalCheckFailed") && operation != "TransactWriteItems" {
            for item in &written {
                put(
                    metric("ConditionalCheckFailedRequests", &item.table, None),
                    1.0,
                );
            }
        }
        return;
    }
    if !parts.status.is_success() {
        return;
    }
    let (Ok(request), Ok(response)) = (
        serde_json::from_slice::<Value>(request),
        serde_json::from_slice::<Value>(body),
    ) else {
        return;
    };
    let item_size = |v: &Value| v.as_object().map_or(0, capacity::item_size);
    let consistent = request["ConsistentRead"].as_bool().unwrap_or(false);
    let table = request["TableName"].as_str().unwrap_or_default();
    let reads: Vec<(String, Option<String>, f64)> = match operation {
        "GetItem" => vec![(
            table.to_owned(),
            None,
            capacity::read_units(item_size(&response["Item"]), consistent),
        )],
        "Query" | "Scan" => {
            let total: usize = response["Items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(item_size)
                .sum();
            let index = request["IndexName"].as_str().map(str::to_owned);
            // An index is read eventually consistent.
            let consistent = consistent && index.is_none();
            vec![(
                table.to_owned(),
                index,
                capacity::read_units(total, consistent),
            )]
        }
        "BatchGetItem" => response["Responses"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(table, items)| {
                let consistent = request["RequestItems"][table]["ConsistentRead"]
                    .as_bool()
                    .unwrap_or(false);
                items.as_array().into_iter().flatten().map(move |item| {
                    (
                        table.clone(),
                        None,
                        capacity::read_units(item_size(item), consistent),
                    )
                })
            })
            .collect(),
        "TransactGetItems" => request["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .zip(response["Responses"].as_array().into_iter().flatten())
            .map(|(asked, got)| {
                let table = asked["Get"]["TableName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                (
                    table,
                    None,
                    2.0 * capacity::read_units(item_size(&got["Item"]), true),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    for (table, index, units) in reads {
        put(
            metric("ConsumedReadCapacityUnits", &table, index.as_deref()),
            units,
        );
    }
}

fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "upgrade"
    )
}

fn respond(parts: hyper::http::response::Parts, body: Bytes) -> Response<Body> {
    let mut response = http::response(parts.status.as_u16(), body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name.as_str()) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

/// An AWS JSON-protocol error answer.
fn aws_error(
    status: u16,
    error_type: &str,
    body: &Value,
    query_error: Option<&str>,
) -> Response<Body> {
    let mut response = http::response(status, body.to_string());
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = hyper::header::HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("content-type", "application/x-amz-json-1.0");
    set("x-amzn-errortype", error_type);
    set("x-amzn-requestid", &uuid::Uuid::new_v4().to_string());
    if let Some(query_error) = query_error {
        set("x-amzn-query-error", query_error);
    }
    response
}

const INJECTED: &str = "injected by the local fault proxy";

fn error_answer(
    fault: Fault,
    service: Service,
    request: &[u8],
    rng: &mut fastrand::Rng,
) -> Response<Body> {
    let dynamodb = |name: &str| format!("com.amazonaws.dynamodb.v20120810#{name}");
    match (fault, service) {
        (Fault::ProvisionedThroughputExceeded, _) => {
            let kind = dynamodb("ProvisionedThroughputExceededException");
            aws_error(
                400,
                &kind,
                &json!({ "__type": kind, "message": format!("The level of configured provisioned throughput for the table was exceeded ({INJECTED})") }),
                None,
            )
        }
        (Fault::Throttling, Service::Sqs) => {
            let kind = "com.amazonaws.sqs#RequestThrottled";
            aws_error(
                400,
                kind,
                &json!({ "__type": kind, "message": format!("Rate exceeded ({INJECTED})") }),
                Some("RequestThrottled;Sender"),
            )
        }
        (Fault::Throttling, _) => {
            let kind = "com.amazon.coral.availability#ThrottlingException";
            aws_error(
                400,
                kind,
                &json!({ "__type": kind, "message": format!("Rate of requests exceeds the allowed throughput ({INJECTED})") }),
                None,
            )
        }
        (Fault::InternalServerError, _) => {
            let kind = dynamodb("InternalServerError");
            aws_error(
                500,
                &kind,
                &json!({ "__type": kind, "message": format!("Internal server error ({INJECTED})") }),
                None,
            )
        }
        (Fault::TransactionConflict, _) => {
            let items = serde_json::from_slice::<Value>(request)
                .ok()
                .and_then(|r| r["TransactItems"].as_array().map(Vec::len))
                .unwrap_or(1)
                .max(1);
            let conflicting = rng.usize(..items);
            let reasons: Vec<Value> = (0..items)
                .map(|i| {
                    if i == conflicting {
                        json!({ "Code": "TransactionConflict", "Message": "Transaction is ongoing for the item" })
                    } else {
                        json!({ "Code": "None" })
                    }
                })
                .collect();
            let codes: Vec<&str> = (0..items)
                .map(|i| {
                    if i == conflicting {
                        "TransactionConflict"
                    } else {
                        "None"
                    }
                })
                .collect();
            let kind = dynamodb("TransactionCanceledException");
            aws_error(
                400,
                &kind,
                &json!({
                    "__type": kind,
                    "Message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")),
                    "CancellationReasons": reasons,
                }),
                None,
            )
        }
        (Fault::Http500, _) => aws_error(
            500,
            "InternalFailure",
            &json!({ "__type": "InternalFailure", "message": INJECTED }),
            None,
        ),
        _ => aws_error(
            503,
            "ServiceUnavailable",
            &json!({ "__type": "ServiceUnavailable", "message": INJECTED }),
            None,
        ),
    }
}

/// `SendMessageBatch` with some entries failed: those are taken out of the request
/// (so they are really not sent) and listed in the answer's `Failed`.
async fn partial_batch(
    proxy: &Proxy,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    rng: &mut fastrand::Rng,
) -> Option<Response<Body>> {
    let mut request: Value = serde_json::from_slice(body).ok()?;
    let entries = request["Entries"].as_array()?.clone();
    if entries.is_empty() {
        return None;
    }
    let mut failing: Vec<bool> = entries.iter().map(|_| rng.bool()).collect();
    if !failing.contains(&true) {
        let one = rng.usize(..failing.len());
        failing[one] = true;
    }
    let (failed, kept): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .zip(&failing)
        .partition(|(_, failing)| **failing);
    let failed: Vec<Value> = failed
        .into_iter()
        .map(|(entry, _)| {
            json!({ "Id": entry["Id"], "SenderFault": false, "Code": "InternalError", "Message": INJECTED })
        })
        .collect();
    let mut answer = if kept.is_empty() {
        json!({ "Successful": [] })
    } else {
        request["Entries"] = Value::Array(kept.into_iter().map(|(entry, _)| entry).collect());
        let (response, body) = proxy
            .forward(parts, Bytes::from(request.to_string()))
            .await
            .ok()?;
        if !response.status.is_success() {
            return Some(respond(response, body));
        }
        serde_json::from_slice(&body).ok()?
    };
    let mut all_failed = answer["Failed"].as_array().cloned().unwrap_or_default();
    all_failed.extend(failed);
    answer["Failed"] = Value::Array(all_failed);
    let mut response = http::response(200, answer.to_string());
    if let Ok(value) = hyper::header::HeaderValue::from_str("application/x-amz-json-1.0") {
        response.headers_mut().insert("content-type", value);
    }
    Some(response)
}

async fn handle(proxy: Arc<Proxy>, request: Request<Incoming>) -> Option<Response<Body>> {
    let (parts, body) = match http::read_body(request, MAX_REQUEST).await {
        Ok(read) => read,
        Err(e) => return Some(http::response(413, json!({ "message": e }).to_string())),
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (service, operation) = Service::from_target(&target);
    proxy.stats.count(service, operation);
    let chosen = proxy.choose(service, operation);
    if let Some((fault, _)) = &chosen {
        proxy.stats.injected(*fault);
        tracing::debug!(?fault, %target, "injecting a fault");
    }
    let pass = |answer: Result<(hyper::http::response::Parts, Bytes), String>| match answer {
        Ok((parts, body)) => Some(respond(parts, body)),
        Err(e) => Some(aws_error(502, "BadGateway", &json!({ "message": e }), None)),
    };
    match chosen {
        None => pass(proxy.forward(&parts, body).await),
        Some((Fault::ResetBeforeApplied, _)) => None,
        Some((Fault::ResetAfterApplied, _)) => {
            let _ = proxy.forward(&parts, body).await;
            None
        }
        Some((Fault::Latency, mut rng)) => {
            let plan = proxy.plan();
            let least = plan.min_latency.as_millis() as u64;
            let most = (plan.max_latency.as_millis() as u64).max(least);
            tokio::time::sleep(Duration::from_millis(rng.u64(least..=most))).await;
            pass(proxy.forward(&parts, body).await)
        }
        Some((Fault::PartialBatch, mut rng)) => {
            match partial_batch(&proxy, &parts, &body, &mut rng).await {
                Some(answer) => Some(answer),
                None => pass(proxy.forward(&parts, body).await),
            }
        }
        Some((fault, mut rng)) => Some(error_answer(fault, service, &body, &mut rng)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_the_service_and_operation() {
        assert_eq!(
            Service::from_target("DynamoDB_20120810.TransactWriteItems"),
            (Service::DynamoDb, "TransactWriteItems")
        );
        assert_eq!(
            Service::from_target("AmazonSQS.SendMessageBatch"),
            (Service::Sqs, "SendMessageBatch")
        );
        assert_eq!(Service::from_target("").0, Service::Other);
    }

    #[test]
    fn faults_fit_their_calls() {
        let sqs = Fault::applicable(Service::Sqs, "SendMessageBatch");
        assert!(sqs.contains(&Fault::PartialBatch) && sqs.contains(&Fault::Throttling));
        assert!(!sqs.contains(&Fault::TransactionConflict));
        let put = Fault::applicable(Service::DynamoDb, "PutItem");
        assert!(!put.contains(&Fault::TransactionConflict));
        assert!(
            Fault::applicable(Service::DynamoDb, "TransactWriteItems")
                .contains(&Fault::TransactionConflict)
        );
        // Every fault applies somewhere.
        let everywhere: Vec<Fault> = [
            Fault::applicable(Service::DynamoDb, "TransactWriteItems"),
            Fault::applicable(Service::Sqs, "SendMessageBatch"),
        ]
        .concat();
        assert!(Fault::ALL.iter().all(|f| everywhere.contains(f)));
    }
}
