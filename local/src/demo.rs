//! `local demo`: simulated users placing orders through the local gateway, followed
//! until every order is processed or dead-lettered, then a summary.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::ApiClient;
use crate::function::FunctionStats;
use crate::shoppers::{self, Patience, Tally, Workload};
use crate::stack::Stack;

/// What the demo does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulated users; each places one order.
    pub users: usize,
    /// Users acting at the same time.
    pub concurrency: usize,
    /// Share of users who also send duplicate order requests (same key), at the same
    /// time as the first and after it.
    pub duplicate_share: f64,
    /// Seed of the users' choices.
    pub seed: u64,
    /// How long to wait for the pipeline before giving up.
    pub timeout: Duration,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            users: 50,
            concurrency: 16,
            duplicate_share: 0.2,
            seed: 1,
            timeout: Duration::from_secs(120),
            progress: true,
        }
    }
}

/// A function's share of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionLine {
    /// Binary name.
    pub name: String,
    /// Invocations.
    pub invocations: u64,
    /// Invocations without a response.
    pub errors: u64,
    /// Batch-item failures reported.
    pub batch_item_failures: u64,
    /// Process restarts.
    pub restarts: u64,
}

/// The outcome of a demo run.
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    /// Orders the API accepted.
    pub placed: usize,
    /// Orders the API refused (should be none).
    pub rejected: Vec<String>,
    /// Duplicate order requests sent, and how many answered with the same order.
    pub duplicates: (u32, u32),
    /// Duplicate requests that answered with a different order (must be none).
    pub diverged: Vec<String>,
    /// Orders that reached PROCESSED.
    pub completed: usize,
    /// Orders whose message is in the dead-letter queue.
    pub dead_lettered: usize,
    /// Orders neither completed nor dead-lettered when the wait ended.
    pub unaccounted: Vec<String>,
    /// placed_at → processed_at, sorted, in ms.
    pub latencies_ms: Vec<i64>,
    /// Per function.
    pub functions: Vec<FunctionLine>,
    /// EMF metrics found in the logs: (function, metric) → sum.
    pub metrics: BTreeMap<(String, String), f64>,
    /// What the local X-Ray daemon received.
    pub xray: crate::xray::Summary,
    /// Each event source's polling, and whether its polls kept failing.
    pub polling: Vec<(String, bool)>,
    /// Time spent placing orders.
    pub placing: Duration,
    /// Whole run.
    pub elapsed: Duration,
    /// Where the logs are.
    pub logs: String,
}

impl DemoReport {
    /// Every order completed or dead-lettered, none refused, every duplicate request
    /// answered with its order.
    pub fn all_accounted_for(&self) -> bool {
        self.unaccounted.is_empty()
            && self.rejected.is_empty()
            && self.diverged.is_empty()
            && self.duplicates.0 == self.duplicates.1
            && self.placed > 0
    }

    fn percentile(&self, p: f64) -> Option<i64> {
        crate::audit::percentile(&self.latencies_ms, p)
    }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v} ms"));
        writeln!(
            f,
            "orders placed        {:>6}   (in {:.1} s)",
            self.placed,
            self.placing.as_secs_f64()
        )?;
        writeln!(
            f,
            "duplicate requests   {:>6}   ({} answered with the same order)",
            self.duplicates.0, self.duplicates.1
        )?;
        if !self.diverged.is_empty() {
            writeln!(f, "DIVERGED ANSWERS     {:?}", self.diverged)?;
        }
        writeln!(f, "orders completed     {:>6}", self.completed)?;
        writeln!(f, "orders dead-lettered {:>6}", self.dead_lettered)?;
        writeln!(f, "orders unaccounted   {:>6}", self.unaccounted.len())?;
        if !self.rejected.is_empty() {
            writeln!(
                f,
                "orders refused       {:>6}   {:?}",
                self.rejected.len(),
                self.rejected
            )?;
        }
        writeln!(
            f,
            "end-to-end latency   p50 {}   p95 {}   (placed_at -> processed_at)",
            ms(self.percentile(50.0)),
            ms(self.percentile(95.0))
        )?;
        writeln!(
            f,
            "{:<24}{:>12}{:>8}{:>22}{:>10}",
            "function", "invocations", "errors", "batch item failures", "restarts"
        )?;
        for line in &self.functions {
            writeln!(
                f,
                "{:<24}{:>12}{:>8}{:>22}{:>10}",
                line.name, line.invocations, line.errors, line.batch_item_failures, line.restarts
            )?;
        }
        if self.metrics.is_empty() {
            writeln!(f, "EMF metrics          none found in the functions' logs")?;
        } else {
            writeln!(f, "EMF metrics (sums)")?;
            for ((function, metric), sum) in &self.metrics {
                writeln!(f, "  {function:<22}{metric:<28}{sum:>10}")?;
            }
        }
        writeln!(f, "event sources")?;
        for line in crate::polling::flagged(&self.polling) {
            writeln!(f, "  {line}")?;
        }
        writeln!(
            f,
            "X-Ray                {} subsegments in {} traces; {} traces cross functions",
            self.xray.documents, self.xray.traces, self.xray.traces_across_functions
        )?;
        writeln!(f, "logs                 {}", self.logs)?;
        write!(
            f,
            "run time             {:.1} s",
            self.elapsed.as_secs_f64()
        )
    }
}

/// Runs the demo against a started stack.
///
/// # Errors
/// A message if the API cannot be reached or the catalogue cannot be loaded.
pub async fn run(stack: &Stack, options: &DemoOptions) -> Result<DemoReport, String> {
    let started = Instant::now();
    let api = Arc::new(ApiClient::new(
        stack.api_url(),
        Some(stack.api_key().to_owned()),
    ));
    let products = shoppers::load_catalogue(&api).await?;
    let mut report = DemoReport {
        // Relative to where the command runs, when it is below it.
        logs: std::env::current_dir()
            .ok()
            .and_then(|here| stack.logs().strip_prefix(here).ok().map(Path::to_path_buf))
            .unwrap_or_else(|| stack.logs().to_path_buf())
            .display()
            .to_string(),
        ..DemoReport::default()
    };
    let workload = Workload {
        user_prefix: "demo-user".to_owned(),
        duplicate_share: options.duplicate_share,
        seed: options.seed,
    };
    let plans = workload.plans(options.users, &products);
    let shopped = shoppers::shop_all(
        Arc::clone(&api),
        plans,
        options.concurrency,
        Patience::default(),
    )
    .await;
    let tally = Tally::of(shopped);
    report.duplicates = (tally.duplicates_sent, tally.duplicates_absorbed);
    report.diverged = tally.diverged;
    report.rejected = tally.gave_up;
    let placed: Vec<String> = tally.acknowledged.into_iter().collect();
    report.placed = placed.len();
    report.placing = started.elapsed();

    // Follow every order until it is PROCESSED or its message is dead-lettered.
    let dlq = stack
        .spec()
        .queues
        .iter()
        .find_map(|q| q.redrive.as_ref().map(|(dlq, _)| dlq.clone()))
        .and_then(|id| stack.resources().queue(&id).cloned());
    let mut pending: HashSet<String> = placed.iter().cloned().collect();
    let mut dead: HashSet<String> = HashSet::new();
    let deadline = Instant::now() + options.timeout;
    while !pending.is_empty() && Instant::now() < deadline {
        for id in pending.clone() {
            let (status, order) = api
                .call("GET", &format!("/orders/{id}"), None, None)
                .await?;
            if status == 200 && order["order_status"] == "PROCESSED" {
                if let (Some(placed_at), Some(processed_at)) = (
                    order["placed_at"].as_str().and_then(crate::audit::millis),
                    order["processed_at"]
                        .as_str()
                        .and_then(crate::audit::millis),
                ) {
                    report.latencies_ms.push(processed_at - placed_at);
                }
                report.completed += 1;
                pending.remove(&id);
            }
        }
        if let Some(dlq) = &dlq {
            for id in dead_lettered(stack.sdk(), &dlq.url).await {
                if pending.remove(&id) {
                    dead.insert(id);
                }
            }
        }
        if options.progress {
            draw_progress(report.completed + dead.len(), report.placed);
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    if options.progress {
        draw_progress(report.completed + dead.len(), report.placed);
        eprintln!();
    }
    report.dead_lettered = dead.len();
    report.unaccounted = pending.into_iter().collect();
    report.latencies_ms.sort_unstable();
    report.functions = stack
        .functions()
        .values()
        .map(|f| {
            let stats = f.stats();
            FunctionLine {
                name: f.name().to_owned(),
                invocations: FunctionStats::get(&stats.invocations),
                errors: FunctionStats::get(&stats.errors),
                batch_item_failures: FunctionStats::get(&stats.batch_item_failures),
                restarts: FunctionStats::get(&stats.restarts),
            }
        })
        .collect();
    for function in stack.functions().values() {
        for (metric, sum) in emf_sums(function.log_file()) {
            report
                .metrics
                .insert((function.name().to_owned(), metric), sum);
        }
    }
    report.xray = crate::xray::summarize(&stack.xray_log());
    report.polling = stack.polling();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Order ids of the messages in a dead-letter queue (peeked: they stay there).
async fn dead_lettered(sdk: &aws_config::SdkConfig, url: &str) -> Vec<String> {
    crate::audit::peek_queue(sdk, url, 0)
        .await
        .into_iter()
        .filter_map(|(_, order_id, _)| order_id)
        .collect()
}

fn draw_progress(done: usize, total: usize) {
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(0).min(width);
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\r[{}{}] {done}/{total} orders accounted for",
        "#".repeat(filled),
        " ".repeat(width - filled)
    );
    let _ = err.flush();
}

/// Sums of every EMF metric in a log file, by metric name.
pub fn emf_sums(log: &Path) -> HashMap<String, f64> {
    let mut sums = HashMap::new();
    let Ok(text) = std::fs::read_to_string(log) else {
        return sums;
    };
    for line in text.lines() {
        let Ok(blob) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(directives) = blob["_aws"]["CloudWatchMetrics"].as_array() else {
            continue;
        };
        for metric in directives
            .iter()
            .filter_map(|d| d["Metrics"].as_array())
            .flatten()
        {
            let Some(name) = metric["Name"].as_str() else {
                continue;
            };
            let value: f64 = match &blob[name] {
                Value::Array(values) => values.iter().filter_map(Value::as_f64).sum(),
                other => other.as_f64().unwrap_or(0.0),
            };
            *sums.entry(name.to_owned()).or_insert(0.0) += value;
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_are_summed_by_metric() {
        let dir = std::env::temp_dir().join(format!("emf-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("f.log");
        let blob = |v: &str| {
            format!(
                r#"{{"_aws":{{"Timestamp":1,"CloudWatchMetrics":[{{"Namespace":"N","Dimensions":[["service"]],"Metrics":[{{"Name":"OrdersCompleted","Unit":"Count"}}]}}]}},"service":"s","OrdersCompleted":{v}}}"#
            )
        };
        std::fs::write(
            &log,
            format!(
                "{}\nnot json\n{{\"level\":\"INFO\"}}\n{}\n",
                blob("2"),
                blob("[1,1]")
            ),
        )
        .unwrap();
        assert_eq!(emf_sums(&log).get("OrdersCompleted"), Some(&4.0));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let report = DemoReport {
            latencies_ms: (1..=100).collect(),
            ..DemoReport::default()
        };
        assert_eq!(report.percentile(50.0), Some(50));
        assert_eq!(report.percentile(95.0), Some(95));
        assert_eq!(DemoReport::default().percentile(50.0), None);
    }
}
