//! The bench's figures, the table and chart it writes, the cost model and the targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The scenarios measured warm: function and batch size.
pub const SCENARIOS: [(Role, usize); 5] = [
    (Role::Forwarder, 1),
    (Role::Forwarder, 10),
    (Role::Forwarder, 100),
    (Role::Consumer, 1),
    (Role::Consumer, 10),
];

/// A function of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// `process-cart-products`: stream batch in, `SendMessageBatch` out.
    Forwarder,
    /// `update-cart-products`: SQS batch in, a transaction per order.
    Consumer,
    /// An empty handler on the bare runtime.
    Echo,
    /// The empty handler with the Powertools utilities.
    EchoPowertools,
}

impl Role {
    /// The scenario's label.
    pub fn label(self, batch: usize) -> String {
        match self {
            Self::Forwarder => format!("stream function, batch {batch}"),
            Self::Consumer => format!("queue function, batch {batch}"),
            Self::Echo => "empty handler".to_owned(),
            Self::EchoPowertools => "empty handler with the Powertools utilities".to_owned(),
        }
    }
}

/// What one warm scenario measured on one side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Warm {
    /// Invocations measured.
    pub invocations: usize,
    /// Records per invocation.
    pub batch: usize,
    /// CPU per invocation, µs (mean over the measured blocks).
    pub cpu_us: f64,
    /// Wall time per invocation, median, ms.
    pub wall_ms: f64,
    /// AWS requests the function made, per record.
    pub requests_per_record: f64,
    /// DynamoDB write requests per record.
    pub writes_per_record: f64,
    /// DynamoDB write request units per record, index writes included, by
    /// DynamoDB's rules (`local/src/capacity.rs`).
    pub write_units_per_record: f64,
    /// The index writes' share of `write_units_per_record`.
    #[serde(default)]
    pub index_write_units_per_record: f64,
    /// Bytes of log lines per record (EMF blobs apart).
    pub log_bytes_per_record: f64,
    /// Bytes of EMF metric blobs per record.
    pub emf_bytes_per_record: f64,
}

impl Warm {
    /// CPU per record, µs.
    pub fn cpu_per_record_us(&self) -> f64 {
        self.cpu_us / self.batch.max(1) as f64
    }
}

/// Everything measured on one side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// Init (process start to first `GET /next`) of each cold start, ms.
    pub init_ms: Vec<f64>,
    /// The first invocation after each cold start, ms.
    pub first_invocation_ms: Vec<f64>,
    /// Warm scenarios, by label.
    pub warm: BTreeMap<String, Warm>,
    /// Wall time per invocation under the CPU quota of a 128 MB function, by label, ms.
    pub quota_wall_ms: BTreeMap<String, f64>,
    /// The floors: CPU per invocation of the empty handler, without and with the
    /// Powertools utilities, µs.
    pub floor_cpu_us: f64,
    /// See `floor_cpu_us`.
    pub floor_powertools_cpu_us: f64,
    /// Peak resident memory of the pipeline functions, MiB (the larger).
    pub peak_rss_mib: f64,
    /// Write units of filling the cart, per order (`orders-api`; by the calculator over
    /// the items this side's design writes).
    #[serde(default)]
    pub cart_write_units_per_order: f64,
    /// Write units of placing an order (its transaction, index writes included).
    #[serde(default)]
    pub placing_write_units_per_order: f64,
    /// Lines per order of the bench's orders (cart requests per order).
    #[serde(default)]
    pub lines_per_order: f64,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

impl Side {
    /// Median init, ms.
    pub fn init_median_ms(&self) -> f64 {
        median(&self.init_ms)
    }

    /// Median first invocation after a cold start, ms.
    pub fn first_invocation_median_ms(&self) -> f64 {
        median(&self.first_invocation_ms)
    }

    fn warm(&self, role: Role, batch: usize) -> Option<&Warm> {
        self.warm.get(&role.label(batch))
    }

    /// CPU per AWS call at batch 1: the stream function's invocation (one
    /// `SendMessageBatch`) less the empty handler with the utilities, ms.
    pub fn cpu_per_call_ms(&self) -> f64 {
        self.warm(Role::Forwarder, 1).map_or(f64::NAN, |w| {
            (w.cpu_us - self.floor_powertools_cpu_us) / 1000.0 / w.requests_per_record.max(1.0)
        })
    }

    /// Per order through the pipeline (the stream function at batch 100, the queue
    /// function at batch 10): (requests, write requests, write units, log bytes, EMF
    /// bytes).
    pub fn per_order(&self) -> (f64, f64, f64, f64, f64) {
        let parts = [
            self.warm(Role::Forwarder, 100),
            self.warm(Role::Consumer, 10),
        ];
        let sum = |f: fn(&Warm) -> f64| parts.iter().flatten().map(|w| f(w)).sum::<f64>();
        (
            sum(|w| w.requests_per_record),
            sum(|w| w.writes_per_record),
            sum(|w| w.write_units_per_record),
            sum(|w| w.log_bytes_per_record),
            sum(|w| w.emf_bytes_per_record),
        )
    }
}

/// The memory sizes and architectures the cost is given for.
pub const CONFIGURATIONS: [(f64, &str); 4] = [
    (128.0, "arm64"),
    (256.0, "arm64"),
    (128.0, "x86_64"),
    (256.0, "x86_64"),
];

/// Prices the cost model uses, with the date they were read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    /// When and where the prices were read.
    pub read_on: String,
    /// The region they are for.
    pub region: String,
    /// Lambda, per GB-second, by architecture.
    pub lambda_gb_second: BTreeMap<String, f64>,
    /// Lambda, per million requests.
    pub lambda_requests_per_million: f64,
    /// DynamoDB on-demand, per million write request units.
    pub dynamodb_write_units_per_million: f64,
    /// SQS standard, per million requests.
    pub sqs_requests_per_million: f64,
    /// CloudWatch Logs ingestion, per GB.
    pub logs_ingestion_per_gb: f64,
    /// API Gateway REST API, per million requests (first tier).
    #[serde(default)]
    pub api_gateway_rest_requests_per_million: f64,
    /// The time a function waits for one AWS call in its region, for the billed-duration
    /// model (the emulator's latency is nothing like AWS's, so it is not used).
    pub aws_call_latency_ms: f64,
    /// Where they come from.
    pub source: String,
}

/// The cost of a million orders through the two pipeline functions, in dollars, by
/// line item, at `memory_mb` on `arch`.
pub fn cost_per_million(
    side: &Side,
    prices: &Prices,
    memory_mb: f64,
    arch: &str,
) -> BTreeMap<&'static str, f64> {
    let mut cost = BTreeMap::new();
    let gb_second = prices
        .lambda_gb_second
        .get(arch)
        .copied()
        .unwrap_or(f64::NAN);
    let mut compute = 0.0;
    let mut invocations = 0.0;
    for (role, batch) in [(Role::Forwarder, 100), (Role::Consumer, 10)] {
        let Some(warm) = side.warm(role, batch) else {
            continue;
        };
        // Billed time at `memory_mb`: the AWS calls' waiting (at a typical in-region
        // latency) plus the CPU time stretched to the memory's share of a vCPU
        // (1769 MB = one vCPU).
        let cpu_ms = warm.cpu_us / 1000.0;
        let waiting_ms = warm.requests_per_record * batch as f64 * prices.aws_call_latency_ms;
        let billed_ms = waiting_ms + cpu_ms * (1769.0 / memory_mb).max(1.0);
        let per_order_invocations = 1.0 / batch as f64;
        compute += billed_ms / 1000.0 * (memory_mb / 1024.0) * gb_second * per_order_invocations;
        invocations += per_order_invocations;
    }
    let (requests, _, write_units, log_bytes, emf_bytes) = side.per_order();
    let million = 1_000_000.0;
    cost.insert("Lambda compute", compute * million);
    cost.insert(
        "Lambda requests",
        invocations * prices.lambda_requests_per_million,
    );
    cost.insert(
        "DynamoDB writes",
        write_units * prices.dynamodb_write_units_per_million,
    );
    // The stream function's SQS calls; the queue function makes none of its own.
    let sqs = side
        .warm(Role::Forwarder, 100)
        .map_or(0.0, |w| w.requests_per_record);
    cost.insert("SQS requests", sqs * prices.sqs_requests_per_million);
    let _ = requests;
    cost.insert(
        "CloudWatch Logs",
        (log_bytes + emf_bytes) * million / 1e9 * prices.logs_ingestion_per_gb,
    );
    cost
}

/// One target of issue 10, checked against a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What is aimed at.
    pub goal: String,
    /// What the run measured.
    pub measured: String,
    /// Whether it was met.
    pub met: bool,
}

/// Everything a run produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The Rust functions.
    pub rust: Side,
    /// The Python + Powertools functions on the workshop's design.
    pub python: Side,
    /// The Python + Powertools functions on the one-item design (the pipeline only:
    /// no cold starts, no floors).
    #[serde(default)]
    pub python_one_item: Side,
    /// The machine, versions and settings.
    pub context: BTreeMap<String, String>,
    /// What happened with the CPU quota.
    pub quota: String,
    /// Whether this was a `--quick` run (too few samples to quote).
    pub quick: bool,
}

fn ratio(rust: f64, python: f64) -> String {
    if rust > 0.0 && python.is_finite() && rust.is_finite() {
        format!("{:.1}x", python / rust)
    } else {
        "-".to_owned()
    }
}

fn fmt(value: f64, unit: &str) -> String {
    if !value.is_finite() {
        return "-".to_owned();
    }
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.digits$} {unit}")
}

/// Bytes of Lambda's own log lines per invocation in the JSON log format
/// (`platform.start` and `platform.report`, as the template's `LoggingConfig` has
/// them): the records' shape with a request id and typical values, measured here
/// rather than guessed.
pub fn platform_bytes_per_invocation() -> f64 {
    let request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678";
    let start = serde_json::json!({
        "time": "2026-12-07T10:00:00.000Z",
        "type": "platform.start",
        "record": { "requestId": request_id, "version": "$LATEST",
            "tracing": { "spanId": "3f2c1a0b9e8d7c6b", "type": "X-Amzn-Trace-Id", "value": "Root=1-67891234-abcdef0123456789abcdef01;Parent=3f2c1a0b9e8d7c6b;Sampled=1" } },
    });
    let report = serde_json::json!({
        "time": "2026-12-07T10:00:00.025Z",
        "type": "platform.report",
        "record": { "requestId": request_id,
            "metrics": { "durationMs": 24.51, "billedDurationMs": 25, "memorySizeMB": 256, "maxMemoryUsedMB": 18 },
            "tracing": { "spanId": "3f2c1a0b9e8d7c6b", "type": "X-Amzn-Trace-Id", "value": "Root=1-67891234-abcdef0123456789abcdef01;Parent=3f2c1a0b9e8d7c6b;Sampled=1" },
            "status": "success" },
    });
    (start.to_string().len() + report.to_string().len() + 2) as f64
}

/// The cost of a million orders end to end, by line item, at `memory_mb` on `arch`:
/// API Gateway and `orders-api`'s requests (a cart request per line, then placing),
/// the cart's and placing's write units, the pipeline's write units (measured), the
/// pipeline functions' requests and compute (measured), SQS (the stream function's
/// sends, measured; the queue mapping's receives and deletes, one each per batch of
/// 10), and CloudWatch Logs (the functions' lines, measured, and Lambda's platform
/// lines). `orders-api`'s compute is not in the bench (there is no Python API to
/// measure against) and is left out of every column alike.
pub fn end_to_end(side: &Side, prices: &Prices, memory_mb: f64, arch: &str) -> Vec<(String, f64)> {
    let pipeline = cost_per_million(side, prices, memory_mb, arch);
    let api_requests = side.lines_per_order + 1.0;
    let write_price = prices.dynamodb_write_units_per_million;
    let (_, _, write_units, log_bytes, emf_bytes) = side.per_order();
    let invocations_per_order = 1.0 / 100.0 + 1.0 / 10.0;
    let platform_bytes = invocations_per_order * platform_bytes_per_invocation();
    let sqs_sends = side
        .warm(Role::Forwarder, 100)
        .map_or(0.0, |w| w.requests_per_record);
    let sqs_receives_and_deletes = 2.0 / 10.0;
    vec![
        (
            "API Gateway (REST) requests".to_owned(),
            api_requests * prices.api_gateway_rest_requests_per_million,
        ),
        (
            "orders-api requests (compute not measured)".to_owned(),
            api_requests * prices.lambda_requests_per_million,
        ),
        (
            "DynamoDB: filling the cart".to_owned(),
            side.cart_write_units_per_order * write_price,
        ),
        (
            "DynamoDB: placing the order".to_owned(),
            side.placing_write_units_per_order * write_price,
        ),
        (
            "DynamoDB: the pipeline, index writes included".to_owned(),
            write_units * write_price,
        ),
        (
            "pipeline Lambda requests".to_owned(),
            pipeline.get("Lambda requests").copied().unwrap_or(f64::NAN),
        ),
        (
            format!("pipeline Lambda compute, {memory_mb} MB {arch}"),
            pipeline.get("Lambda compute").copied().unwrap_or(f64::NAN),
        ),
        (
            "SQS send, receive and delete".to_owned(),
            (sqs_sends + sqs_receives_and_deletes) * prices.sqs_requests_per_million,
        ),
        (
            "CloudWatch Logs, platform lines included".to_owned(),
            (log_bytes + emf_bytes + platform_bytes) * 1_000_000.0 / 1e9
                * prices.logs_ingestion_per_gb,
        ),
    ]
}

impl Results {
    /// One side's figures.
    pub fn side_mut(&mut self, side: super::Impl) -> &mut Side {
        match side {
            super::Impl::Rust => &mut self.rust,
            super::Impl::Python => &mut self.python,
            super::Impl::PythonOneItem => &mut self.python_one_item,
        }
    }

    fn sides(&self) -> [(&'static str, &Side); 3] {
        [
            ("Rust, one item", &self.rust),
            ("Python + Powertools, workshop design", &self.python),
            ("Python + Powertools, one item", &self.python_one_item),
        ]
    }

    /// The pipeline, three columns: what the design saves (the two Python columns) and
    /// what the language saves (the one-item columns).
    pub fn pipeline_table(&self, prices: &Prices) -> String {
        let sides = self.sides();
        let mut out = format!(
            "| per order through the pipeline | {} | {} | {} |\n|---|---:|---:|---:|\n",
            sides[0].0, sides[1].0, sides[2].0
        );
        type Figure = Box<dyn Fn(&Side) -> (f64, &'static str)>;
        let rows: Vec<(&str, Figure)> = vec![
            (
                "CPU per record, stream function, batch 100",
                Box::new(|s: &Side| {
                    (
                        s.warm(Role::Forwarder, 100)
                            .map_or(f64::NAN, Warm::cpu_per_record_us),
                        "µs",
                    )
                }),
            ),
            (
                "CPU per record, queue function, batch 10",
                Box::new(|s: &Side| {
                    (
                        s.warm(Role::Consumer, 10)
                            .map_or(f64::NAN, Warm::cpu_per_record_us),
                        "µs",
                    )
                }),
            ),
            ("AWS requests", Box::new(|s: &Side| (s.per_order().0, ""))),
            (
                "DynamoDB write requests",
                Box::new(|s: &Side| (s.per_order().1, "")),
            ),
            (
                "DynamoDB write units, index writes included",
                Box::new(|s: &Side| (s.per_order().2, "")),
            ),
            (
                "of which index writes",
                Box::new(|s: &Side| {
                    let index = [s.warm(Role::Forwarder, 100), s.warm(Role::Consumer, 10)]
                        .iter()
                        .flatten()
                        .map(|w| w.index_write_units_per_record)
                        .sum::<f64>();
                    (index, "")
                }),
            ),
            (
                "log and EMF bytes (INFO)",
                Box::new(|s: &Side| {
                    let (_, _, _, log, emf) = s.per_order();
                    (log + emf, "B")
                }),
            ),
            (
                "before the pipeline (`orders-api`): write units filling the cart",
                Box::new(|s: &Side| (s.cart_write_units_per_order, "")),
            ),
            (
                "before the pipeline (`orders-api`): write units placing the order",
                Box::new(|s: &Side| (s.placing_write_units_per_order, "")),
            ),
        ];
        for (name, figure) in &rows {
            let cells: Vec<String> = sides
                .iter()
                .map(|(_, side)| {
                    let (value, unit) = figure(side);
                    fmt(value, unit)
                })
                .collect();
            let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
        }
        for (memory, arch) in CONFIGURATIONS {
            let cells: Vec<String> = sides
                .iter()
                .map(|(_, side)| {
                    let total: f64 = cost_per_million(side, prices, memory, arch).values().sum();
                    format!("${total:.2}")
                })
                .collect();
            let _ = writeln!(
                out,
                "| pipeline cost per million orders, {memory} MB {arch} | {} |",
                cells.join(" | ")
            );
        }
        out
    }

    /// Per million orders end to end, itemised, three columns, with a total per
    /// memory size and architecture.
    pub fn end_to_end_table(&self, prices: &Prices) -> String {
        let sides = self.sides();
        let mut out = format!(
            "| per million orders, end to end | {} | {} | {} |\n|---|---:|---:|---:|\n",
            sides[0].0, sides[1].0, sides[2].0
        );
        let items: Vec<Vec<(String, f64)>> = sides
            .iter()
            .map(|(_, side)| end_to_end(side, prices, 256.0, "arm64"))
            .collect();
        for (row, (name, _)) in items[0].iter().enumerate() {
            let cells: Vec<String> = items.iter().map(|i| format!("${:.2}", i[row].1)).collect();
            let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
        }
        for (memory, arch) in CONFIGURATIONS {
            let cells: Vec<String> = sides
                .iter()
                .map(|(_, side)| {
                    let total: f64 = end_to_end(side, prices, memory, arch)
                        .iter()
                        .map(|(_, cost)| cost)
                        .sum();
                    format!("**${total:.2}**")
                })
                .collect();
            let _ = writeln!(out, "| total, {memory} MB {arch} | {} |", cells.join(" | "));
        }
        out
    }

    /// The table: metric | Rust | Python + Powertools | ratio.
    pub fn table(&self, prices: &Prices) -> String {
        let (r, p) = (&self.rust, &self.python);
        let mut rows: Vec<(String, f64, f64, &str)> = vec![
            (
                "init (process start to first `GET /next`), median".to_owned(),
                r.init_median_ms(),
                p.init_median_ms(),
                "ms",
            ),
            (
                "first invocation after a cold start, median".to_owned(),
                r.first_invocation_median_ms(),
                p.first_invocation_median_ms(),
                "ms",
            ),
        ];
        for (role, batch) in SCENARIOS {
            let label = role.label(batch);
            let (Some(rw), Some(pw)) = (r.warm.get(&label), p.warm.get(&label)) else {
                continue;
            };
            rows.push((
                format!("CPU per record, {label}"),
                rw.cpu_per_record_us(),
                pw.cpu_per_record_us(),
                "µs",
            ));
        }
        for (role, batch) in SCENARIOS {
            let label = role.label(batch);
            let (Some(rw), Some(pw)) = (r.warm.get(&label), p.warm.get(&label)) else {
                continue;
            };
            rows.push((
                format!("wall per invocation, {label}, median"),
                rw.wall_ms,
                pw.wall_ms,
                "ms",
            ));
        }
        for (label, rust_ms) in &r.quota_wall_ms {
            if let Some(python_ms) = p.quota_wall_ms.get(label) {
                rows.push((
                    format!("wall per invocation at a 128 MB CPU share, {label}"),
                    *rust_ms,
                    *python_ms,
                    "ms",
                ));
            }
        }
        rows.push((
            "CPU per invocation, empty handler (runtime only)".to_owned(),
            r.floor_cpu_us,
            p.floor_cpu_us,
            "µs",
        ));
        rows.push((
            "CPU per invocation, empty handler with the Powertools utilities".to_owned(),
            r.floor_powertools_cpu_us,
            p.floor_powertools_cpu_us,
            "µs",
        ));
        rows.push((
            "CPU per AWS call (stream function at batch 1 less the line above)".to_owned(),
            r.cpu_per_call_ms(),
            p.cpu_per_call_ms(),
            "ms",
        ));
        rows.push((
            "peak RSS (VmHWM)".to_owned(),
            r.peak_rss_mib,
            p.peak_rss_mib,
            "MiB",
        ));
        let (rr, rw, ru, rl, re) = r.per_order();
        let (pr, pw, pu, pl, pe) = p.per_order();
        rows.push(("log bytes per order (INFO)".to_owned(), rl, pl, "B"));
        rows.push(("EMF metric bytes per order".to_owned(), re, pe, "B"));
        rows.push(("AWS requests per order".to_owned(), rr, pr, ""));
        // Placing an order is one transaction by orders-api on both sides.
        rows.push((
            "DynamoDB write requests per order (placing included)".to_owned(),
            rw + 1.0,
            pw + 1.0,
            "",
        ));
        rows.push((
            "DynamoDB write units per order (pipeline)".to_owned(),
            ru,
            pu,
            "",
        ));
        for (memory, arch) in CONFIGURATIONS {
            let total = |side: &Side| {
                cost_per_million(side, prices, memory, arch)
                    .values()
                    .sum::<f64>()
            };
            rows.push((
                format!("cost per million orders, {memory} MB {arch}"),
                total(r),
                total(p),
                "$",
            ));
        }
        let mut out =
            String::from("| metric | Rust | Python + Powertools | ratio |\n|---|---:|---:|---:|\n");
        for (name, rust, python, unit) in rows {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} |",
                fmt(rust, unit),
                fmt(python, unit),
                ratio(rust, python)
            );
        }
        out
    }

    /// Issue 10's and issue 18's targets against this run.
    pub fn targets(&self, prices: &Prices, stream_in_process_vs_floor: Option<f64>) -> Vec<Target> {
        let (r, p) = (&self.rust, &self.python);
        let per_record = |side: &Side, role: Role| {
            side.warm(role, 100)
                .or(side.warm(role, 10))
                .map_or(f64::NAN, Warm::cpu_per_record_us)
        };
        let (_, rw, _, rl, _) = r.per_order();
        let (_, pw, _, pl, _) = p.per_order();
        let cost = |side: &Side| {
            cost_per_million(side, prices, 256.0, "arm64")
                .values()
                .sum::<f64>()
        };
        let mut targets = vec![
            Target {
                goal: "init at least 20x faster".to_owned(),
                measured: ratio(r.init_median_ms(), p.init_median_ms()),
                met: p.init_median_ms() >= 20.0 * r.init_median_ms(),
            },
            Target {
                goal: "CPU per record at least 10x lower, stream function, batch 100".to_owned(),
                measured: ratio(per_record(r, Role::Forwarder), per_record(p, Role::Forwarder)),
                met: per_record(p, Role::Forwarder) >= 10.0 * per_record(r, Role::Forwarder),
            },
            Target {
                goal: "CPU per record at least 10x lower, queue function (batch 10, its largest)".to_owned(),
                measured: ratio(per_record(r, Role::Consumer), per_record(p, Role::Consumer)),
                met: per_record(p, Role::Consumer) >= 10.0 * per_record(r, Role::Consumer),
            },
            Target {
                goal: "the Powertools layer's fixed cost at most 1.5x the empty lambda_runtime handler".to_owned(),
                measured: format!("{:.2}x", r.floor_powertools_cpu_us / r.floor_cpu_us),
                met: r.floor_powertools_cpu_us <= 1.5 * r.floor_cpu_us,
            },
            Target {
                goal: "CPU per AWS call at most 0.3 ms (batch 1, against the empty handler)".to_owned(),
                measured: fmt(r.cpu_per_call_ms(), "ms"),
                met: r.cpu_per_call_ms() <= 0.3,
            },
            Target {
                goal: "peak RSS at most a quarter of Python's".to_owned(),
                measured: format!("{:.0} %", 100.0 * r.peak_rss_mib / p.peak_rss_mib),
                met: r.peak_rss_mib * 4.0 <= p.peak_rss_mib,
            },
            Target {
                goal: "log bytes per order at most half of Python's".to_owned(),
                measured: format!("{:.0} %", 100.0 * rl / pl),
                met: rl * 2.0 <= pl,
            },
            Target {
                goal: "DynamoDB write requests per order at most 60 % of the Powertools design".to_owned(),
                measured: format!("{:.0} %", 100.0 * (rw + 1.0) / (pw + 1.0)),
                met: (rw + 1.0) <= 0.6 * (pw + 1.0),
            },
            Target {
                goal: "cost per million orders at most half of Python's (256 MB arm64)".to_owned(),
                measured: format!("{:.0} %", 100.0 * cost(r) / cost(p)),
                met: cost(r) * 2.0 <= cost(p),
            },
        ];
        let (_, _, units, _, _) = r.per_order();
        let one_item = &self.python_one_item;
        targets.push(Target {
            goal: "pipeline DynamoDB write units per order at most 2, index writes included"
                .to_owned(),
            measured: fmt(units, ""),
            met: units <= 2.0,
        });
        targets.push(Target {
            goal: "pipeline cost per million orders at most a quarter of the workshop design's in Python (256 MB arm64)".to_owned(),
            measured: format!("{:.0} %", 100.0 * cost(r) / cost(p)),
            met: cost(r) * 4.0 <= cost(p),
        });
        targets.push(Target {
            goal: "pipeline cost per million orders below Python + Powertools on the one-item design (256 MB arm64)".to_owned(),
            measured: format!("{:.0} %", 100.0 * cost(r) / cost(one_item)),
            met: cost(r) < cost(one_item),
        });
        if let Some(ratio) = stream_in_process_vs_floor {
            targets.push(Target {
                goal: "stream function's in-process cost per record at most 3x the borrowed-parse floor".to_owned(),
                measured: format!("{ratio:.1}x"),
                met: ratio <= 3.0,
            });
        }
        targets
    }

    /// A chart of per-record CPU by scenario, init and peak memory, as SVG.
    pub fn chart(&self) -> String {
        let (r, p) = (&self.rust, &self.python);
        let mut bars: Vec<(String, f64, f64, &str)> = Vec::new();
        for (role, batch) in SCENARIOS {
            let label = role.label(batch);
            if let (Some(rw), Some(pw)) = (r.warm.get(&label), p.warm.get(&label)) {
                bars.push((
                    label.replace(" function, batch ", " x"),
                    rw.cpu_per_record_us(),
                    pw.cpu_per_record_us(),
                    "µs/record",
                ));
            }
        }
        bars.push((
            "init".to_owned(),
            r.init_median_ms(),
            p.init_median_ms(),
            "ms",
        ));
        bars.push(("peak RSS".to_owned(), r.peak_rss_mib, p.peak_rss_mib, "MiB"));
        let (width, row) = (760.0, 46.0);
        let height = 70.0 + row * bars.len() as f64;
        let mut svg = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="15">Rust vs Python + Powertools (shorter is better; each row to its own scale)</text><rect x="10" y="32" width="12" height="12" fill="#d9541e"/><text x="28" y="43">Rust</text><rect x="80" y="32" width="12" height="12" fill="#3572a5"/><text x="98" y="43">Python + Powertools</text>"##
        );
        for (i, (label, rust, python, unit)) in bars.iter().enumerate() {
            let y = 60.0 + row * i as f64;
            let most = rust.max(*python).max(f64::MIN_POSITIVE);
            let scale = |v: f64| {
                if v.is_finite() {
                    (v / most * 420.0).max(1.0)
                } else {
                    0.0
                }
            };
            let _ = write!(
                svg,
                r##"<text x="10" y="{}">{label}</text><rect x="200" y="{}" width="{:.1}" height="16" fill="#d9541e"/><text x="{:.1}" y="{}">{}</text><rect x="200" y="{}" width="{:.1}" height="16" fill="#3572a5"/><text x="{:.1}" y="{}">{} ({})</text>"##,
                y + 16.0,
                y,
                scale(*rust),
                205.0 + scale(*rust),
                y + 13.0,
                fmt(*rust, unit),
                y + 18.0,
                scale(*python),
                205.0 + scale(*python),
                y + 31.0,
                fmt(*python, unit),
                ratio(*rust, *python),
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices() -> Prices {
        Prices {
            read_on: "2026-11-29".to_owned(),
            region: "us-east-1".to_owned(),
            lambda_gb_second: BTreeMap::from([
                ("arm64".to_owned(), 0.000_013_333_4),
                ("x86_64".to_owned(), 0.000_016_666_7),
            ]),
            lambda_requests_per_million: 0.2,
            dynamodb_write_units_per_million: 0.625,
            sqs_requests_per_million: 0.4,
            logs_ingestion_per_gb: 0.5,
            api_gateway_rest_requests_per_million: 3.5,
            aws_call_latency_ms: 5.0,
            source: "test".to_owned(),
        }
    }

    fn side(cpu_us: f64, units: f64) -> Side {
        let warm = |batch: usize| Warm {
            invocations: 10,
            batch,
            cpu_us: cpu_us * batch as f64,
            wall_ms: cpu_us * batch as f64 / 1000.0 + 5.0,
            requests_per_record: 0.1,
            writes_per_record: units / 2.0,
            write_units_per_record: units,
            index_write_units_per_record: 1.0,
            log_bytes_per_record: 300.0,
            emf_bytes_per_record: 50.0,
        };
        Side {
            init_ms: vec![10.0, 12.0, 11.0],
            first_invocation_ms: vec![3.0],
            warm: SCENARIOS
                .iter()
                .map(|(role, batch)| (role.label(*batch), warm(*batch)))
                .collect(),
            quota_wall_ms: BTreeMap::new(),
            floor_cpu_us: 50.0,
            floor_powertools_cpu_us: 60.0,
            peak_rss_mib: 12.0,
            cart_write_units_per_order: 2.0,
            placing_write_units_per_order: 7.0,
            lines_per_order: 2.0,
        }
    }

    #[test]
    fn medians_ratios_and_costs_follow_the_measurements() {
        let rust = side(20.0, 6.0);
        assert!((rust.init_median_ms() - 11.0).abs() < 1e-9);
        let cheap = cost_per_million(&rust, &prices(), 256.0, "arm64");
        let dear = cost_per_million(&side(200.0, 12.0), &prices(), 256.0, "arm64");
        // Ten times the CPU, the same waiting per AWS call: more billed time, though
        // not ten times (waiting is not stretched by the memory's CPU share).
        let compute = dear["Lambda compute"] / cheap["Lambda compute"];
        assert!((2.0..10.0).contains(&compute), "{compute}");
        assert!((dear["DynamoDB writes"] - 2.0 * cheap["DynamoDB writes"]).abs() < 1e-9);
        // 128 MB stretches CPU more than 256 MB does.
        let small = cost_per_million(&rust, &prices(), 128.0, "arm64");
        assert!(small["Lambda compute"] > 0.0);
        let results = Results {
            rust,
            python: side(200.0, 12.0),
            ..Results::default()
        };
        let table = results.table(&prices());
        assert!(
            table.contains(
                "| CPU per record, stream function, batch 100 | 20.0 µs | 200 µs | 10.0x |"
            ),
            "{table}"
        );
        let targets = results.targets(&prices(), Some(2.0));
        assert!(
            targets
                .iter()
                .find(|t| t
                    .goal
                    .starts_with("CPU per record at least 10x lower, stream"))
                .is_some_and(|t| t.met)
        );
        assert!(
            targets
                .iter()
                .find(|t| t.goal.starts_with("init"))
                .is_some_and(|t| !t.met)
        );
        assert!(results.chart().starts_with("<svg"));
    }

    #[test]
    fn the_end_to_end_cost_itemises_every_service_and_adds_up() {
        let side = side(20.0, 2.0);
        let items = end_to_end(&side, &prices(), 256.0, "arm64");
        let item = |name: &str| {
            items
                .iter()
                .find(|(n, _)| n.starts_with(name))
                .map(|(_, cost)| *cost)
                .unwrap()
        };
        // Two cart requests and the order: three API Gateway requests per order.
        assert!((item("API Gateway") - 3.0 * 3.5).abs() < 1e-9);
        assert!((item("DynamoDB: placing") - 7.0 * 0.625).abs() < 1e-9);
        assert!((item("DynamoDB: filling") - 2.0 * 0.625).abs() < 1e-9);
        let pipeline_units = side.per_order().2;
        assert!((item("DynamoDB: the pipeline") - pipeline_units * 0.625).abs() < 1e-9);
        // Platform lines are counted on top of the functions' own.
        assert!(platform_bytes_per_invocation() > 300.0);
        let results = Results {
            rust: side.clone(),
            python: self::side(200.0, 9.0),
            python_one_item: self::side(150.0, 4.0),
            ..Results::default()
        };
        let table = results.end_to_end_table(&prices());
        assert_eq!(table.lines().count(), 2 + items.len() + 4, "{table}");
        let pipeline = results.pipeline_table(&prices());
        assert!(
            pipeline.contains(
                "| DynamoDB write units, index writes included | 4.00  | 18.0  | 8.00  |"
            ),
            "{pipeline}"
        );
        let targets = results.targets(&prices(), None);
        let met = |goal: &str| {
            targets
                .iter()
                .find(|t| t.goal.starts_with(goal))
                .map(|t| t.met)
        };
        assert_eq!(
            met("pipeline DynamoDB write units per order at most 2"),
            Some(false)
        );
        assert_eq!(met("pipeline cost per million orders below"), Some(true));
    }
}
