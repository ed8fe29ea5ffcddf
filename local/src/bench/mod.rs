//! `local bench`: the Rust pipeline functions against the same functions in Python with
//! Powertools, side by side, on one machine, in one run.
//!
//! Both sides run under the same local Lambda Runtime API ([`crate::function`]), with
//! the same environment from `template.yaml`, against the same emulator, each function
//! reaching it through its own keep-alive proxy ([`crate::faults`], no faults) that
//! counts the AWS requests and DynamoDB write units as they arrive. Only the function
//! process is measured, never the emulator:
//!
//! - init: process start to its first `GET /next`, over several cold starts, and the
//!   first invocation after each;
//! - warm: CPU per invocation (the process's threads' scheduler time) and wall time, at
//!   batch 1, 10 and 100 for the stream function and 1 and 10 for the queue function,
//!   in interleaved blocks (Rust, Python, then Python, Rust, ...) so machine noise falls
//!   on both; every queue-function invocation completes orders seeded for it alone;
//! - the floors: an empty handler on each runtime, without and with the Powertools
//!   utilities;
//! - peak RSS (`VmHWM`), log and EMF bytes per order, AWS requests, write requests and
//!   write units per order;
//! - where the machine allows (root, cgroups), wall time per invocation under a CPU
//!   quota of a 128 MB function's share of a vCPU (128/1769), applied after init.
//!
//! The figures go to `bench/results/` (table, JSON, SVG chart) and stdout.

pub mod events;
pub mod probe;
pub mod report;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use self::events::{BenchOrder, Design, seed, sqs_event, stream_event};
use self::report::{Results, Role, SCENARIOS, Warm};
use crate::faults::{self, FaultPlan, ProxyHandle};
use crate::function::{Function, FunctionConfig, Outcome};
use crate::moto::Moto;
use crate::resources::{self, Overrides, Resources};
use crate::template::StackSpec;

const REGION: &str = "eu-west-1";

/// What the bench runs.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Few samples, to prove the command works (CI); not figures to quote.
    pub quick: bool,
    /// The workspace (template, `bench/python`).
    pub workspace: PathBuf,
    /// Where the release binaries are.
    pub rust_binaries: PathBuf,
    /// The bench virtual environment's Python.
    pub python: PathBuf,
    /// `moto_server`.
    pub moto_server: PathBuf,
    /// Where logs go.
    pub state_dir: PathBuf,
    /// Seed of the orders.
    pub seed: u64,
}

/// The implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// The workspace's Rust binaries (the one-item design).
    Rust,
    /// `bench/python` under awslambdaric: the workshop's design, as a team following it
    /// would build it with Powertools.
    Python,
    /// `bench/python` on the one-item design, with Powertools' own idempotency records.
    PythonOneItem,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::PythonOneItem => "python-one-item",
        }
    }

    /// How this side's table stores an order.
    pub fn design(self) -> Design {
        match self {
            Self::Python => Design::Workshop,
            Self::Rust | Self::PythonOneItem => Design::OneItem,
        }
    }
}

/// How many samples.
#[derive(Debug, Clone, Copy)]
struct Counts {
    cold_starts: usize,
    warmup: usize,
    rounds: usize,
    /// Invocations per scenario and side, by batch size.
    invocations: fn(usize) -> usize,
    floor_invocations: usize,
    quota_invocations: usize,
}

const FULL: Counts = Counts {
    cold_starts: 10,
    warmup: 5,
    rounds: 10,
    invocations: |batch| if batch >= 100 { 30 } else { 100 },
    floor_invocations: 200,
    quota_invocations: 6,
};

const QUICK: Counts = Counts {
    cold_starts: 2,
    warmup: 1,
    rounds: 2,
    invocations: |_| 2,
    floor_invocations: 4,
    quota_invocations: 2,
};

/// A function under measurement.
struct Subject {
    design: Design,
    function: Function,
    proxy: ProxyHandle,
    log: PathBuf,
    stop: watch::Sender<bool>,
}

impl Subject {
    fn pid(&self) -> u32 {
        self.function.pid()
    }

    async fn stop(self) {
        // Under a profiler, end the process gently first so the profile is written
        // (the Runtime API's stop is a SIGKILL).
        if std::env::var_os("BENCH_RUST_WRAPPER").is_some() && self.pid() != 0 {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .status()
                .await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        self.stop.send_replace(true);
        self.function.stopped().await;
    }
}

struct Bench {
    options: BenchOptions,
    counts: Counts,
    moto: Moto,
    sdk: aws_config::SdkConfig,
    spec: StackSpec,
    resources: Resources,
    daemon: SocketAddr,
    logs: PathBuf,
    shutdown: watch::Sender<bool>,
    next_order: u64,
    next_sequence: u64,
}

fn binary_name(role: Role) -> &'static str {
    match role {
        Role::Forwarder => "process-cart-products",
        Role::Consumer => "update-cart-products",
        Role::Echo => "echo",
        Role::EchoPowertools => "echo-powertools",
    }
}

fn python_handler(role: Role, side: Impl) -> &'static str {
    match role {
        Role::Forwarder => "forwarder.handler",
        Role::Consumer if side == Impl::PythonOneItem => "consumer_one_item.handler",
        Role::Consumer => "consumer.handler",
        Role::Echo => "echo.handler",
        Role::EchoPowertools => "echo_powertools.handler",
    }
}

impl Bench {
    /// The template's environment of the function `role` stands for.
    fn template_environment(&self, role: Role) -> Result<BTreeMap<String, String>, String> {
        let logical = match role {
            Role::Consumer => "UpdateCartProductsFunction",
            _ => "ProcessCartProductsFunction",
        };
        let function = self
            .spec
            .function(logical)
            .ok_or_else(|| format!("template.yaml has no {logical}"))?;
        let mut environment = BTreeMap::new();
        for (name, value) in &function.environment {
            let value = crate::stack::resolve(value, &self.spec, &self.resources)
                .map_err(|e| e.to_string())?;
            environment.insert(name.clone(), value);
        }
        environment.insert(
            "AWS_LAMBDA_LOG_LEVEL".to_owned(),
            function
                .log_level
                .clone()
                .unwrap_or_else(|| "INFO".to_owned()),
        );
        environment.insert(
            "AWS_LAMBDA_LOG_FORMAT".to_owned(),
            function
                .log_format
                .clone()
                .unwrap_or_else(|| "JSON".to_owned()),
        );
        Ok(environment)
    }

    async fn start(&self, side: Impl, role: Role, tag: &str) -> Result<Subject, String> {
        let proxy = faults::start(
            self.moto.endpoint(),
            FaultPlan::NONE,
            self.shutdown.subscribe(),
        )
        .await
        .map_err(|e| e.to_string())?;
        // Write units by DynamoDB's rules, index writes by this side's projection.
        proxy.attach(faults::ProxyTelemetry {
            plane: None,
            tables: BTreeMap::from([(
                self.resources.table_name.clone(),
                table_shape(&self.spec, side.design()),
            )]),
        });
        let mut environment = self.template_environment(role)?;
        environment.insert("AWS_ENDPOINT_URL".to_owned(), proxy.endpoint.clone());
        environment.insert(
            "AWS_XRAY_DAEMON_ADDRESS".to_owned(),
            self.daemon.to_string(),
        );
        environment.insert("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned());
        environment.insert("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned());
        let python_dir = self.options.workspace.join("bench/python");
        let binary = match side {
            // A profiler can wrap the Rust binaries: BENCH_RUST_WRAPPER names a script
            // run with the binary's path as its first argument.
            Impl::Rust => match std::env::var_os("BENCH_RUST_WRAPPER") {
                Some(wrapper) => {
                    environment.insert(
                        "BENCH_RUST_BINARY".to_owned(),
                        self.options
                            .rust_binaries
                            .join(binary_name(role))
                            .display()
                            .to_string(),
                    );
                    PathBuf::from(wrapper)
                }
                None => self.options.rust_binaries.join(binary_name(role)),
            },
            Impl::Python | Impl::PythonOneItem => {
                environment.insert(
                    "BENCH_PYTHON".to_owned(),
                    self.options.python.display().to_string(),
                );
                environment.insert(
                    "BENCH_HANDLER".to_owned(),
                    python_handler(role, side).to_owned(),
                );
                // The X-Ray SDK knows it is in Lambda by this variable.
                environment.insert(
                    "LAMBDA_TASK_ROOT".to_owned(),
                    python_dir.display().to_string(),
                );
                python_dir.join("bootstrap")
            }
        };
        if !binary.exists() {
            return Err(format!(
                "{} not found (scripts/bench builds it)",
                binary.display()
            ));
        }
        let name = binary_name(role).to_owned();
        let log = self
            .logs
            .join(format!("{}-{}-{tag}.log", side.name(), binary_name(role)));
        let config = FunctionConfig {
            name,
            binary,
            timeout: Duration::from_secs(60),
            memory_mb: 256,
            region: REGION.to_owned(),
            environment,
            log_file: log.clone(),
            concurrency: 1,
        };
        let (stop, stop_rx) = watch::channel(false);
        let function = Function::start(config, stop_rx)
            .await
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        while function.stats().init_durations().is_empty() {
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "{} {} did not ask for an event within 60 s; see {}",
                    side.name(),
                    binary_name(role),
                    log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(Subject {
            design: side.design(),
            function,
            proxy,
            log,
            stop,
        })
    }

    fn orders(&mut self, count: usize) -> Vec<BenchOrder> {
        let orders = (0..count as u64)
            .map(|i| BenchOrder::generate(self.options.seed, self.next_order + i))
            .collect();
        self.next_order += count as u64;
        orders
    }

    fn stream_event(&mut self, orders: &[BenchOrder], design: Design) -> String {
        let arn = self.resources.stream_arn.clone().unwrap_or_default();
        let event = stream_event(orders, design, self.next_sequence, &arn);
        self.next_sequence += orders.len() as u64;
        event
    }

    fn queue_arn(&self) -> String {
        self.resources
            .queue("OrdersQueue")
            .map(|q| q.arn.clone())
            .unwrap_or_default()
    }

    async fn purge_queue(&self) {
        if let Some(queue) = self.resources.queue("OrdersQueue") {
            let _ = aws_sdk_sqs::Client::new(&self.sdk)
                .purge_queue()
                .queue_url(&queue.url)
                .send()
                .await;
        }
    }

    /// `count` events for `role` at `batch`, for a side of `design`: one reused stream
    /// event, or a fresh SQS event per invocation whose orders are seeded in the table.
    async fn events(
        &mut self,
        role: Role,
        batch: usize,
        count: usize,
        design: Design,
    ) -> Result<Vec<String>, String> {
        match role {
            Role::Forwarder => {
                let orders = self.orders(batch);
                Ok(vec![self.stream_event(&orders, design); count])
            }
            Role::Consumer => {
                let orders = self.orders(batch * count);
                seed(
                    &aws_sdk_dynamodb::Client::new(&self.sdk),
                    &self.resources.table_name,
                    &orders,
                    design,
                )
                .await?;
                let arn = self.queue_arn();
                Ok(orders
                    .chunks(batch)
                    .map(|chunk| sqs_event(chunk, &arn))
                    .collect())
            }
            Role::Echo | Role::EchoPowertools => Ok(vec!["{}".to_owned(); count]),
        }
    }
}

/// One invocation, which must succeed with no failed record.
async fn invoke(subject: &Subject, event: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let outcome = subject.function.invoke(event.to_owned()).await;
    let took = started.elapsed();
    match &outcome {
        Outcome::Response(body) => {
            let response: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let failures = response["batchItemFailures"].as_array().map_or(0, Vec::len);
            if failures > 0 {
                return Err(format!(
                    "{} reported failed records: {response}; see {}",
                    subject.function.name(),
                    subject.log.display()
                ));
            }
            Ok(took)
        }
        other => Err(format!(
            "{} failed: {other:?}; see {}",
            subject.function.name(),
            subject.log.display()
        )),
    }
}

/// What a block of invocations cost, read around it.
#[derive(Debug, Default, Clone)]
struct Tally {
    cpu_ns: u64,
    walls: Vec<Duration>,
    invocations: usize,
    requests: u64,
    writes: u64,
    write_units: u64,
    index_write_units: u64,
    log_bytes: u64,
    emf_bytes: u64,
}

async fn block(subject: &Subject, events: &[String], tally: &mut Tally) -> Result<(), String> {
    let pid = subject.pid();
    let log_before = std::fs::metadata(&subject.log).map_or(0, |m| m.len());
    let (calls, writes, units, index_units) = (
        subject.proxy.stats.total_calls(),
        subject.proxy.stats.dynamodb_writes(),
        subject.proxy.stats.dynamodb_write_units(),
        subject.proxy.stats.dynamodb_index_write_units(),
    );
    let cpu_before = probe::cpu_ns(pid).ok_or("the function process is gone")?;
    for event in events {
        tally.walls.push(invoke(subject, event).await?);
    }
    // Work a runtime finishes after answering (flushing) belongs to this block.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cpu_after = probe::cpu_ns(pid).ok_or("the function process is gone")?;
    if subject.pid() != pid {
        return Err(format!(
            "{} restarted during a block",
            subject.function.name()
        ));
    }
    tally.cpu_ns += cpu_after.saturating_sub(cpu_before);
    tally.invocations += events.len();
    tally.requests += subject.proxy.stats.total_calls() - calls;
    tally.writes += subject.proxy.stats.dynamodb_writes() - writes;
    tally.write_units += subject.proxy.stats.dynamodb_write_units() - units;
    tally.index_write_units += subject.proxy.stats.dynamodb_index_write_units() - index_units;
    let written = std::fs::read(&subject.log).unwrap_or_default();
    let appended = written.get(log_before as usize..).unwrap_or_default();
    for line in appended.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let bytes = line.len() as u64 + 1;
        if line.windows(6).any(|w| w == b"\"_aws\"") {
            tally.emf_bytes += bytes;
        } else {
            tally.log_bytes += bytes;
        }
    }
    Ok(())
}

fn warm_figures(tally: &Tally, batch: usize) -> Warm {
    let records = (tally.invocations * batch).max(1) as f64;
    let mut walls: Vec<f64> = tally
        .walls
        .iter()
        .map(|w| w.as_secs_f64() * 1000.0)
        .collect();
    walls.sort_by(f64::total_cmp);
    Warm {
        invocations: tally.invocations,
        batch,
        cpu_us: tally.cpu_ns as f64 / 1000.0 / tally.invocations.max(1) as f64,
        wall_ms: walls.get(walls.len() / 2).copied().unwrap_or(f64::NAN),
        requests_per_record: tally.requests as f64 / records,
        writes_per_record: tally.writes as f64 / records,
        write_units_per_record: tally.write_units as f64 / records,
        index_write_units_per_record: tally.index_write_units as f64 / records,
        log_bytes_per_record: tally.log_bytes as f64 / records,
        emf_bytes_per_record: tally.emf_bytes as f64 / records,
    }
}

/// Runs `invocations` of `role` at `batch` on every side in interleaved blocks (each
/// round in a rotated order, so machine noise falls on every side).
async fn interleaved(
    bench: &mut Bench,
    subjects: &[&Subject],
    role: Role,
    batch: usize,
    invocations: usize,
    warmup: usize,
) -> Result<Vec<Tally>, String> {
    let mut events = Vec::with_capacity(subjects.len());
    for subject in subjects {
        events.push(
            bench
                .events(role, batch, invocations + warmup, subject.design)
                .await?,
        );
    }
    for (side, subject) in subjects.iter().enumerate() {
        let warm: Vec<String> = events[side].drain(..warmup).collect();
        block(subject, &warm, &mut Tally::default()).await?;
    }
    let rounds = bench.counts.rounds.min(invocations).max(1);
    let per_round = invocations.div_ceil(rounds);
    let mut tallies = vec![Tally::default(); subjects.len()];
    for round in 0..rounds {
        for turn in 0..subjects.len() {
            let side = (turn + round) % subjects.len();
            let start = (round * per_round).min(events[side].len());
            let end = ((round + 1) * per_round).min(events[side].len());
            block(
                subjects[side],
                &events[side][start..end],
                &mut tallies[side],
            )
            .await?;
        }
    }
    if role == Role::Forwarder {
        bench.purge_queue().await;
    }
    Ok(tallies)
}

/// The table's shape as `design` has it: the template's, or the workshop's `GSI1`
/// projecting `ALL`.
fn table_shape(spec: &StackSpec, design: Design) -> crate::capacity::TableShape {
    let mut shape = crate::stack::table_shape(spec);
    if design == Design::Workshop {
        for index in &mut shape.indexes {
            index.projection = crate::capacity::Projection::All;
        }
    }
    shape
}

/// Runs the whole bench.
///
/// # Errors
/// A message naming what failed (a function that would not start or failed a record
/// aborts the run: figures of failing work would mean nothing).
pub async fn run(options: BenchOptions) -> Result<Results, String> {
    let counts = if options.quick { QUICK } else { FULL };
    let logs = options.state_dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let moto =
        Moto::start(&options.moto_server, &logs.join("moto.log")).map_err(|e| e.to_string())?;
    let sdk = resources::emulator_sdk_config(moto.endpoint(), REGION).await;
    let spec = StackSpec::from_file(&options.workspace.join("template.yaml"))
        .map_err(|e| e.to_string())?;
    let created = resources::create(&sdk, &spec, "bench", &Overrides::default())
        .await
        .map_err(|e| e.to_string())?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let daemon = crate::xray::start(logs.join("xray.log"), shutdown_rx)
        .await
        .map_err(|e| e.to_string())?;
    let mut bench = Bench {
        options,
        counts,
        moto,
        sdk,
        spec,
        resources: created,
        daemon,
        logs,
        shutdown,
        next_order: 0,
        next_sequence: 1_000_000,
    };
    let outcome = measure(&mut bench).await;
    bench.shutdown.send_replace(true);
    outcome
}

async fn measure(bench: &mut Bench) -> Result<Results, String> {
    let mut results = Results {
        quick: bench.options.quick,
        ..Results::default()
    };
    let sides = [Impl::Rust, Impl::Python];
    let counts = bench.counts;

    // Cold starts, alternating sides, half of each function.
    for i in 0..counts.cold_starts {
        let role = if i % 2 == 0 {
            Role::Forwarder
        } else {
            Role::Consumer
        };
        let order = if i % 4 < 2 {
            sides
        } else {
            [Impl::Python, Impl::Rust]
        };
        for side in order {
            let subject = bench.start(side, role, &format!("cold{i}")).await?;
            let init = subject.function.stats().init_durations()[0];
            let event = bench.events(role, 1, 1, side.design()).await?.remove(0);
            let first = invoke(&subject, &event).await?;
            let figures = results.side_mut(side);
            figures.init_ms.push(init.as_secs_f64() * 1000.0);
            figures
                .first_invocation_ms
                .push(first.as_secs_f64() * 1000.0);
            subject.stop().await;
        }
        eprint!("\rbench: cold start {}/{}   ", i + 1, counts.cold_starts);
    }
    eprintln!();
    bench.purge_queue().await;

    // The floors.
    for role in [Role::Echo, Role::EchoPowertools] {
        let rust = bench.start(Impl::Rust, role, "warm").await?;
        let python = bench.start(Impl::Python, role, "warm").await?;
        let tallies = interleaved(
            bench,
            &[&rust, &python],
            role,
            1,
            counts.floor_invocations,
            counts.warmup,
        )
        .await?;
        let (r, p) = (&tallies[0], &tallies[1]);
        let per_invocation = |t: &Tally| t.cpu_ns as f64 / 1000.0 / t.invocations.max(1) as f64;
        match role {
            Role::Echo => {
                results.rust.floor_cpu_us = per_invocation(r);
                results.python.floor_cpu_us = per_invocation(p);
            }
            _ => {
                results.rust.floor_powertools_cpu_us = per_invocation(r);
                results.python.floor_powertools_cpu_us = per_invocation(p);
            }
        }
        rust.stop().await;
        python.stop().await;
        eprintln!("bench: {} done", role.label(1));
    }

    // The pipeline functions, warm, on every side.
    const SIDES: [Impl; 3] = [Impl::Rust, Impl::Python, Impl::PythonOneItem];
    let mut warm: BTreeMap<Role, Vec<Subject>> = BTreeMap::new();
    for role in [Role::Forwarder, Role::Consumer] {
        let mut subjects = Vec::new();
        for side in SIDES {
            subjects.push(bench.start(side, role, "warm").await?);
        }
        warm.insert(role, subjects);
    }
    for (role, batch) in SCENARIOS {
        let subjects: Vec<&Subject> = warm[&role].iter().collect();
        let invocations = (counts.invocations)(batch);
        let tallies =
            interleaved(bench, &subjects, role, batch, invocations, counts.warmup).await?;
        for (side, tally) in SIDES.into_iter().zip(&tallies) {
            results
                .side_mut(side)
                .warm
                .insert(role.label(batch), warm_figures(tally, batch));
        }
        eprintln!("bench: {} done", role.label(batch));
    }
    for (index, side) in SIDES.into_iter().enumerate() {
        results.side_mut(side).peak_rss_mib = warm
            .values()
            .filter_map(|subjects| probe::peak_rss_kib(subjects[index].pid()))
            .max()
            .map_or(f64::NAN, |kib| kib as f64 / 1024.0);
    }

    // Under the CPU share of a 128 MB function, after init.
    let quota_name = format!("ecommerce-bench-{}", std::process::id());
    results.quota = match probe::CpuQuota::new(&quota_name, 128.0 / 1769.0) {
        Err(why) => format!("not applied: {why}"),
        Ok(quota) => {
            let mut applied = Ok(());
            for subjects in warm.values() {
                for subject in subjects {
                    applied = applied.and(quota.add(subject.pid()));
                }
            }
            match applied {
                Err(why) => format!("not applied: {why}"),
                Ok(()) => {
                    for (role, batch) in [(Role::Forwarder, 100), (Role::Consumer, 10)] {
                        let subjects: Vec<&Subject> = warm[&role].iter().collect();
                        let tallies =
                            interleaved(bench, &subjects, role, batch, counts.quota_invocations, 1)
                                .await?;
                        for (side, tally) in SIDES.into_iter().zip(&tallies) {
                            results
                                .side_mut(side)
                                .quota_wall_ms
                                .insert(role.label(batch), warm_figures(tally, batch).wall_ms);
                        }
                    }
                    format!(
                        "applied (cgroup v{}): 128/1769 of one core, after init",
                        quota.version()
                    )
                }
            }
        }
    };
    for subjects in warm.into_values() {
        for subject in subjects {
            subject.stop().await;
        }
    }
    // Filling the cart and placing, by the calculator over the items each design
    // writes, averaged over a thousand of the run's orders.
    let sample: Vec<BenchOrder> = (0..1000)
        .map(|i| BenchOrder::generate(bench.options.seed, i))
        .collect();
    for side in SIDES {
        let shape = table_shape(&bench.spec, side.design());
        let table = bench.resources.table_name.clone();
        let (mut cart, mut placing, mut lines) = (0, 0, 0);
        for order in &sample {
            let (c, p) = order.placing_units(side.design(), &table, &shape);
            cart += c;
            placing += p;
            lines += order.lines.len();
        }
        let figures = results.side_mut(side);
        figures.cart_write_units_per_order = cart as f64 / sample.len() as f64;
        figures.placing_write_units_per_order = placing as f64 / sample.len() as f64;
        figures.lines_per_order = lines as f64 / sample.len() as f64;
    }
    Ok(results)
}

/// Versions and machine facts for the report (no paths).
pub fn context(options: &BenchOptions) -> BTreeMap<String, String> {
    let run = |program: &Path, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let requirements =
        std::fs::read_to_string(options.workspace.join("bench/python/requirements.txt"))
            .unwrap_or_default();
    let pinned = |name: &str| {
        requirements
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}==")).map(str::to_owned))
            .unwrap_or_default()
    };
    BTreeMap::from([
        ("machine".to_owned(), format!("{cores} cores, {cpu}")),
        ("kernel".to_owned(), run(Path::new("uname"), &["-r"])),
        ("rustc".to_owned(), run(Path::new("rustc"), &["--version"])),
        ("python".to_owned(), run(&options.python, &["--version"])),
        (
            "aws-lambda-powertools".to_owned(),
            pinned("aws_lambda_powertools"),
        ),
        ("awslambdaric".to_owned(), pinned("awslambdaric")),
        ("boto3".to_owned(), pinned("boto3")),
        (
            "mode".to_owned(),
            if options.quick {
                "quick (too few samples to quote)".to_owned()
            } else {
                "full".to_owned()
            },
        ),
        ("date".to_owned(), crate::now_rfc3339()),
    ])
}
