//! `local chaos`: orders through the gateway while the system is broken on purpose,
//! then the promise checked from the outside ([`crate::audit`]).
//!
//! Breaking it: every function's AWS calls go through a proxy that injects faults on a
//! share of them ([`crate::faults`]); function processes are killed with `SIGKILL` at
//! random moments (every function at least once); the order queue's visibility timeout
//! is short, so redeliveries happen; shoppers send duplicate order requests, at once
//! and after, and re-send requests that fail. The run fails (non-zero exit) when an
//! order is lost, applied twice, or failed without a reason.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::audit::{self, Audit};
use crate::client::ApiClient;
use crate::faults::Fault;
use crate::function::FunctionStats;
use crate::shoppers::{self, Patience, Tally, Workload};
use crate::stack::Stack;

/// What a chaos run does (the stack's faults and visibility timeout are set when it
/// starts: see `local chaos`).
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Orders to place (one user each).
    pub orders: usize,
    /// Shoppers at the same time.
    pub concurrency: usize,
    /// Share of shoppers that send duplicate order requests.
    pub duplicate_share: f64,
    /// Function processes to kill (at least one per function).
    pub kills: usize,
    /// Seed of the shoppers and the kills.
    pub seed: u64,
    /// Orders written straight into the table that can never complete (half cannot be
    /// read, half name a line that does not exist): they must be set aside or
    /// dead-lettered, each with its reason.
    pub poison: usize,
    /// How long the orders may make no progress before the rest count as lost.
    pub patience: Duration,
    /// Draw progress on stderr.
    pub progress: bool,
}

impl Default for ChaosOptions {
    fn default() -> Self {
        Self {
            orders: 2000,
            concurrency: 16,
            duplicate_share: 0.2,
            kills: 8,
            seed: 7,
            poison: 4,
            patience: Duration::from_secs(90),
            progress: false,
        }
    }
}

/// The outcome of a chaos run.
#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    /// Orders asked for.
    pub orders: usize,
    /// Shoppers at once.
    pub concurrency: usize,
    /// Orders the API acknowledged.
    pub acknowledged: usize,
    /// Orders that cannot complete, written straight into the table.
    pub poisoned: usize,
    /// Shoppers who gave up without an acknowledged order, with why.
    pub gave_up: Vec<String>,
    /// Requests clients sent again after a failure.
    pub client_retries: u32,
    /// Duplicate order requests sent, and answered with the same order.
    pub duplicates: (u32, u32),
    /// Duplicate requests answered with another order (must be none).
    pub diverged: Vec<String>,
    /// AWS calls the functions made.
    pub calls: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<Fault, u64>,
    /// Processes killed, by function.
    pub kills: BTreeMap<String, u64>,
    /// Process restarts, by function (kills, crashes and timeouts).
    pub restarts: BTreeMap<String, u64>,
    /// Messages the queue delivered (redeliveries included) and failed deliveries.
    pub deliveries: (u64, u64),
    /// Stream batches retried and records set aside.
    pub stream_retries: (u64, u64),
    /// Each event source's polling, and whether it kept failing.
    pub polling: Vec<(String, bool)>,
    /// The verdict.
    pub audit: Audit,
    /// Time placing orders.
    pub placing: Duration,
    /// Whole run.
    pub elapsed: Duration,
}

impl ChaosReport {
    /// All faults injected.
    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }

    /// All kills.
    pub fn total_kills(&self) -> u64 {
        self.kills.values().sum()
    }

    /// The promise held: nothing lost, nothing applied twice, every failure with its
    /// reason, every duplicate request answered with its order.
    pub fn holds(&self) -> bool {
        self.audit.holds() && self.diverged.is_empty()
    }
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let share = |part: u64, whole: u64| {
            if whole == 0 {
                0.0
            } else {
                100.0 * part as f64 / whole as f64
            }
        };
        let a = &self.audit;
        writeln!(
            f,
            "chaos: {} orders from {} clients",
            self.orders, self.concurrency
        )?;
        writeln!(
            f,
            "faults        {} of {} AWS calls ({:.1} %): {}",
            self.total_faults(),
            self.calls,
            share(self.total_faults(), self.calls),
            self.faults
                .iter()
                .map(|(fault, n)| format!("{fault:?} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(
            f,
            "kills         {} (kill -9): {}",
            self.total_kills(),
            self.kills
                .iter()
                .map(|(function, n)| format!("{function} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(
            f,
            "redelivery    {} messages delivered, {} deliveries failed; {} stream batches retried",
            self.deliveries.0, self.deliveries.1, self.stream_retries.0
        )?;
        writeln!(
            f,
            "clients       {} requests re-sent after a failure; {} gave up",
            self.client_retries,
            self.gave_up.len()
        )?;
        writeln!(f)?;
        writeln!(f, "| invariant | orders | |")?;
        writeln!(f, "|---|---:|---|")?;
        writeln!(
            f,
            "| placed (acknowledged by the API) | {} | |",
            self.acknowledged
        )?;
        writeln!(
            f,
            "| poisoned (written to the table, can never complete) | {} | |",
            self.poisoned
        )?;
        writeln!(f, "| in the table | {} | |", a.orders)?;
        writeln!(f, "| completed exactly once | {} | |", a.completed_once)?;
        writeln!(
            f,
            "| dead-lettered, with reason | {} | |",
            a.dead_lettered.len()
        )?;
        writeln!(
            f,
            "| set aside from the stream, with reason | {} | |",
            a.set_aside.len()
        )?;
        let must = |n: usize| {
            if n == 0 {
                "must be 0: ok"
            } else {
                "must be 0: FAILED"
            }
        };
        let lost = a.lost.len() + a.acknowledged_missing.len();
        writeln!(f, "| lost | {lost} | {} |", must(lost))?;
        let twice = a.applied_twice.len() + a.placed_twice.len() + a.inconsistent.len();
        writeln!(f, "| applied twice | {twice} | {} |", must(twice))?;
        writeln!(
            f,
            "| duplicate requests absorbed | {} of {} | {} |",
            self.duplicates.1,
            self.duplicates.0,
            must(self.diverged.len()).replace("must be 0", "other orders")
        )?;
        for (id, reason) in &a.dead_lettered {
            writeln!(f, "dead-lettered {id}: {reason}")?;
        }
        for (id, reason) in &a.set_aside {
            writeln!(f, "set aside     {id}: {reason}")?;
        }
        for id in a.lost.iter().chain(&a.acknowledged_missing) {
            writeln!(f, "LOST          {id}")?;
        }
        for id in a.applied_twice.iter().chain(&a.inconsistent) {
            writeln!(f, "APPLIED TWICE {id}")?;
        }
        for user in &a.placed_twice {
            writeln!(f, "PLACED TWICE  user {user}")?;
        }
        for id in &self.diverged {
            writeln!(f, "DIVERGED      {id}")?;
        }
        for reason in self.gave_up.iter().take(5) {
            writeln!(f, "gave up       {reason}")?;
        }
        let ms = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v} ms"));
        writeln!(
            f,
            "latency       p50 {}  p95 {}  p99 {}  (placed -> processed)",
            ms(a.percentile(50.0)),
            ms(a.percentile(95.0)),
            ms(a.percentile(99.0))
        )?;
        for line in crate::polling::flagged(&self.polling) {
            writeln!(f, "polling       {line}")?;
        }
        write!(
            f,
            "time          {:.1} s placing, {:.1} s in all",
            self.placing.as_secs_f64(),
            self.elapsed.as_secs_f64()
        )
    }
}

/// Kills function processes until `kills` are done or `stop` turns true: every
/// function once first (in a seeded order), then at random, 0.5 to 2.5 s apart.
async fn killer(
    stack: &Stack,
    kills: usize,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) -> BTreeMap<String, u64> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x6b69_6c6c);
    let mut names: Vec<String> = stack
        .functions()
        .values()
        .map(|f| f.name().to_owned())
        .collect();
    rng.shuffle(&mut names);
    let mut done: BTreeMap<String, u64> = BTreeMap::new();
    let mut attempts = 0;
    while done.values().sum::<u64>() < kills as u64 && attempts < kills * 20 {
        attempts += 1;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(rng.u64(500..2500))) => {}
            () = crate::http::stopped(&mut stop) => break,
        }
        let index = done.values().sum::<u64>() as usize;
        let name = names
            .get(index)
            .cloned()
            .unwrap_or_else(|| names[rng.usize(..names.len())].clone());
        let Some(function) = stack.function(&name) else {
            continue;
        };
        let running: Vec<u32> = function
            .pids()
            .into_iter()
            .filter(|pid| *pid != 0)
            .collect();
        if running.is_empty() {
            continue; // restarting right now
        }
        let pid = running[rng.usize(..running.len())];
        let killed = tokio::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .await
            .is_ok_and(|s| s.success());
        if killed {
            tracing::warn!(function = %name, pid, "chaos: killed the function process");
            *done.entry(name).or_default() += 1;
        }
    }
    done
}

/// Writes `count` orders that can never complete straight into the table: every
/// other one cannot be read (the stream function fails it until the mapping sets it
/// aside), the rest claim two lines and hold one (the consumer's conditional write
/// refuses it as not matching its message until the message is dead-lettered).
/// Returns their ids.
pub async fn poison(stack: &Stack, count: usize, seed: u64) -> Result<Vec<String>, String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let client = aws_sdk_dynamodb::Client::new(stack.sdk());
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: i64| AttributeValue::N(v.to_string());
    let mut ids = Vec::new();
    for i in 0..count {
        let id = uuid::Uuid::from_u64_pair(seed, i as u64).to_string();
        let user = format!("poison-{seed}-{i}");
        let line = AttributeValue::M(
            [
                ("product_id", s("desk-oak-140")),
                ("name", s("Oak standing desk")),
                ("quantity", n(1)),
                ("unit_price_minor", n(54_900)),
                ("line_total_minor", n(54_900)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        );
        let lines = if i % 2 == 0 {
            s("not a list of lines")
        } else {
            AttributeValue::L(vec![line])
        };
        client
            .put_item()
            .table_name(&stack.resources().table_name)
            .item("PK", s(&format!("ORDER#{id}")))
            .item("SK", s("ORDER"))
            .item("entity", s("ORDER"))
            .item("order_id", s(&id))
            .item("user_id", s(&user))
            .item("order_status", s("ORDERED"))
            .item("lines", lines)
            .item("line_count", n(2))
            .item("total_minor", n(54_900))
            .item("currency", s("USD"))
            .item("placed_at", s(&crate::now_rfc3339()))
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
        ids.push(id);
    }
    Ok(ids)
}

/// Runs the chaos workload against a started stack (started with faults and a short
/// visibility timeout) and audits the outcome.
///
/// # Errors
/// A message if the catalogue cannot be loaded or the table read.
pub async fn run(stack: &Stack, options: &ChaosOptions) -> Result<ChaosReport, String> {
    let started = Instant::now();
    let api = Arc::new(ApiClient::new(
        stack.api_url(),
        Some(stack.api_key().to_owned()),
    ));
    let products = shoppers::load_catalogue(&api).await?;
    let (stop_killing, stop_rx) = watch::channel(false);
    let kills = {
        let (kills, seed) = (options.kills, options.seed);
        // The killer borrows the stack; it runs alongside the shoppers on this task.
        async move { killer(stack, kills, seed, stop_rx).await }
    };
    let workload = Workload {
        user_prefix: format!("chaos-{}", options.seed),
        duplicate_share: options.duplicate_share,
        seed: options.seed,
    };
    let plans = workload.plans(options.orders, &products);
    let poisoned = poison(stack, options.poison, options.seed).await?;
    let shopping = async {
        let shopped = shoppers::shop_all(
            Arc::clone(&api),
            plans,
            options.concurrency,
            Patience::default(),
        )
        .await;
        (shopped, started.elapsed())
    };
    let (kills, (shopped, placing)) = tokio::join!(kills, shopping);
    drop(stop_killing);

    let mut report = ChaosReport {
        orders: options.orders,
        concurrency: options.concurrency,
        placing,
        kills,
        ..ChaosReport::default()
    };
    report.poisoned = poisoned.len();
    let tally = Tally::of(shopped);
    report.client_retries = tally.retries;
    report.duplicates = (tally.duplicates_sent, tally.duplicates_absorbed);
    report.diverged = tally.diverged;
    report.gave_up = tally.gave_up;
    report.acknowledged = tally.acknowledged.len();
    let mut acknowledged = tally.acknowledged;
    acknowledged.extend(poisoned);

    let progress = options.progress;
    report.audit = audit::settle(stack, &acknowledged, true, options.patience, |audit| {
        if progress {
            eprint!(
                "\rchaos: {}/{} orders settled, {} in flight   ",
                audit.settled(),
                audit.orders,
                audit.in_flight.len()
            );
        }
    })
    .await?;
    if progress {
        eprintln!();
    }

    for proxy in stack.proxies().values() {
        report.calls += proxy.stats.total_calls();
        for (fault, n) in proxy.stats.faults() {
            *report.faults.entry(fault).or_default() += n;
        }
    }
    for function in stack.functions().values() {
        report.restarts.insert(
            function.name().to_owned(),
            FunctionStats::get(&function.stats().restarts),
        );
    }
    for stats in stack.sources().queues.values() {
        report.deliveries.0 += FunctionStats::get(&stats.received);
        report.deliveries.1 += FunctionStats::get(&stats.failed);
    }
    for stats in stack.sources().streams.values() {
        report.stream_retries.0 += FunctionStats::get(&stats.retries);
        report.stream_retries.1 += FunctionStats::get(&stats.records_set_aside);
    }
    report.polling = stack.polling();
    report.elapsed = started.elapsed();
    Ok(report)
}
