//! Drills: each failure the pipeline can suffer, injected into the running stack,
//! with the alarm its runbook names expected to fire, the runbook's commands run as
//! written, and the alarm expected to clear.
//!
//! A drill, under steady traffic or a burst followed by quiet:
//!
//! 1. waits until every alarm is `OK`;
//! 2. injects its failure (a bad deploy, a crash loop, throttling, a hung or failing
//!    dependency, a stopped event source mapping, a slow function, a poison order);
//! 3. waits for each alarm it expects to reach `ALARM`, and checks that it did so
//!    within that alarm's own evaluation window after the failure first showed in its
//!    metric (simulated time);
//! 4. undoes the failure as the runbook's fix says (rolls the deploy back, restores
//!    concurrency, re-enables the mapping) and runs the runbook's `ordersctl` commands,
//!    each of which must appear in the runbook as written;
//! 5. waits until every alarm is `OK` again.
//!
//! At the end every order the traffic placed must have completed, and every alarm of
//! the template must have fired in some drill. A failure that reaches no alarm is a
//! finding, reported as such.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::client::ApiClient;
use crate::cloudwatch::Plane;
use crate::cloudwatch::alarm::AlarmState;
use crate::faults::{Fault, FaultPlan};
use crate::function::FunctionFault;
use crate::shoppers::{self, Patience, Workload};
use crate::stack::Stack;

/// How a drill's traffic flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Variant {
    /// Orders keep arriving at the steady rate throughout.
    Steady,
    /// A burst of orders when the failure starts, then none until it is fixed.
    Burst,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Steady => "steady",
            Self::Burst => "burst, then quiet",
        })
    }
}

/// What a drill breaks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Injection {
    /// A deploy whose configuration lacks a variable: the function cannot start.
    BadConfig {
        /// The function (logical id).
        function: &'static str,
        /// The variable the deploy left out.
        variable: &'static str,
    },
    /// The function's process dies on every invocation.
    Crash(&'static str),
    /// Lambda throttles every invocation of the function.
    Throttle(&'static str),
    /// Every invocation of the function takes this much longer.
    Slow(&'static str, Duration),
    /// Every AWS call of the function (by binary name) gets this fault.
    Dependency {
        /// The function's binary.
        binary: &'static str,
        /// The fault.
        fault: Fault,
        /// For a latency fault, how long each call is held.
        held: Duration,
    },
    /// The function's event source mapping is disabled.
    MappingOff(&'static str),
    /// Orders that can never complete are written straight into the table.
    Poison(usize),
}

/// One drill.
#[derive(Debug, Clone, PartialEq)]
pub struct Drill {
    /// Its name (`local drill NAME`).
    pub name: &'static str,
    /// The failure mode, in words.
    pub failure: &'static str,
    /// What is injected.
    pub injection: Injection,
    /// The runbook an operator follows (`alarms/runbooks/NAME.md`).
    pub runbook: &'static str,
    /// The alarms (logical ids) that must fire.
    pub expect: &'static [&'static str],
    /// The part of the fix that is not an `ordersctl` command, in words.
    pub undo: &'static str,
    /// The runbook's `ordersctl` commands, run in order (`<order_id>`,
    /// `<message_id>` filled from the commands before).
    pub commands: &'static [&'static str],
    /// Part of the quick set that CI runs (together they fire every alarm).
    pub quick: bool,
}

const API: &str = "OrdersApiFunction";
const FORWARDER: &str = "ProcessCartProductsFunction";
const COMPLETER: &str = "UpdateCartProductsFunction";
const PIPELINE: &str = "PipelineUnhealthyAlarm";

/// Every drill, in the order they run.
pub const DRILLS: &[Drill] = &[
    Drill {
        name: "completer-crash",
        failure: "update-cart-products crash-looping (dies on every invocation)",
        injection: Injection::Crash(COMPLETER),
        runbook: "FunctionErrors",
        expect: &[
            "FunctionErrorsAlarm",
            "DeadLetterQueueNotEmptyAlarm",
            PIPELINE,
        ],
        undo: "roll back the deploy",
        commands: &["ordersctl dlq redrive --all"],
        quick: true,
    },
    Drill {
        name: "throttling",
        failure: "update-cart-products throttled (reserved concurrency 0)",
        injection: Injection::Throttle(COMPLETER),
        runbook: "FunctionThrottles",
        expect: &["FunctionThrottlesAlarm"],
        undo: "raise the function's reserved concurrency",
        commands: &["ordersctl dlq redrive --all"],
        quick: false,
    },
    Drill {
        name: "forwarder-throttled",
        failure: "process-cart-products throttled (reserved concurrency 0)",
        injection: Injection::Throttle(FORWARDER),
        runbook: "StreamIteratorAge",
        expect: &["FunctionThrottlesAlarm", "StreamIteratorAgeAlarm", PIPELINE],
        undo: "raise the function's reserved concurrency",
        commands: &[],
        quick: true,
    },
    Drill {
        name: "queue-stopped",
        failure: "the queue stage stops consuming (its event source mapping disabled)",
        injection: Injection::MappingOff(COMPLETER),
        runbook: "OldestMessageAge",
        expect: &["OldestMessageAgeAlarm", "OrdersStallingAlarm", PIPELINE],
        undo: "re-enable the SQS event source mapping",
        commands: &[],
        quick: true,
    },
    Drill {
        name: "api-5xx",
        failure: "the API's table calls fail (500 from DynamoDB after the SDK's retries)",
        injection: Injection::Dependency {
            binary: "orders-api",
            fault: Fault::InternalServerError,
            held: Duration::ZERO,
        },
        runbook: "Api5xx",
        expect: &["Api5xxAlarm"],
        undo: "the table recovers",
        commands: &[],
        quick: true,
    },
    Drill {
        name: "api-down",
        failure: "orders-api cannot start (a deploy without TABLE_NAME)",
        injection: Injection::BadConfig {
            function: API,
            variable: "TABLE_NAME",
        },
        runbook: "Api5xx",
        expect: &["FunctionErrorsAlarm", "Api5xxAlarm"],
        undo: "roll back the deploy",
        commands: &[],
        quick: false,
    },
    Drill {
        name: "api-crash",
        failure: "orders-api crash-looping",
        injection: Injection::Crash(API),
        runbook: "FunctionErrors",
        expect: &["FunctionErrorsAlarm", "Api5xxAlarm"],
        undo: "roll back the deploy",
        commands: &[],
        quick: false,
    },
    Drill {
        name: "forwarder-down",
        failure: "process-cart-products cannot start (a deploy without QUEUE_URL)",
        injection: Injection::BadConfig {
            function: FORWARDER,
            variable: "QUEUE_URL",
        },
        runbook: "FunctionErrors",
        expect: &["FunctionErrorsAlarm", PIPELINE],
        undo: "roll back the deploy",
        commands: &[
            "ordersctl stream-failures list",
            "ordersctl resend <order_id>...",
            "ordersctl stream-failures clear <message_id>",
        ],
        quick: false,
    },
    Drill {
        name: "forwarder-crash",
        failure: "process-cart-products crash-looping",
        injection: Injection::Crash(FORWARDER),
        runbook: "DeadLetterQueueNotEmpty",
        expect: &[
            "FunctionErrorsAlarm",
            "DeadLetterQueueNotEmptyAlarm",
            PIPELINE,
        ],
        undo: "roll back the deploy",
        commands: &[
            "ordersctl stream-failures list",
            "ordersctl resend <order_id>...",
            "ordersctl stream-failures clear <message_id>",
        ],
        quick: false,
    },
    Drill {
        name: "completer-down",
        failure: "update-cart-products cannot start (a deploy without TABLE_NAME)",
        injection: Injection::BadConfig {
            function: COMPLETER,
            variable: "TABLE_NAME",
        },
        runbook: "FunctionErrors",
        expect: &[
            "FunctionErrorsAlarm",
            "DeadLetterQueueNotEmptyAlarm",
            PIPELINE,
        ],
        undo: "roll back the deploy",
        commands: &["ordersctl dlq redrive --all"],
        quick: false,
    },
    Drill {
        name: "timeouts",
        failure: "update-cart-products' table calls hang past its timeout",
        injection: Injection::Dependency {
            binary: "update-cart-products",
            fault: Fault::Latency,
            held: Duration::from_secs(12),
        },
        runbook: "DeadLetterQueueNotEmpty",
        expect: &["DeadLetterQueueNotEmptyAlarm", PIPELINE],
        undo: "the dependency recovers",
        commands: &["ordersctl dlq redrive --all"],
        quick: false,
    },
    Drill {
        name: "poison-order",
        failure: "orders that can never complete (one unreadable, one whose lines do not match)",
        injection: Injection::Poison(2),
        runbook: "DeadLetterQueueNotEmpty",
        expect: &["DeadLetterQueueNotEmptyAlarm", PIPELINE],
        undo: "nothing to undo: the orders themselves are broken",
        commands: &[
            "ordersctl dlq list",
            "ordersctl dlq discard --only <message_id>...",
            "ordersctl stream-failures list",
            "ordersctl stream-failures clear <message_id>",
        ],
        quick: true,
    },
    Drill {
        name: "stream-stopped",
        failure: "the stream stage stops consuming (its event source mapping disabled)",
        injection: Injection::MappingOff(FORWARDER),
        runbook: "OrdersStalling",
        expect: &["OrdersStallingAlarm", PIPELINE],
        undo: "re-enable the stream event source mapping",
        commands: &[],
        quick: false,
    },
    Drill {
        name: "slow-consumer",
        failure: "update-cart-products slow (9 s more per invocation)",
        injection: Injection::Slow(COMPLETER, Duration::from_secs(9)),
        runbook: "OldestMessageAge",
        expect: &["OldestMessageAgeAlarm"],
        undo: "roll back the slow deploy",
        commands: &[],
        quick: false,
    },
];

/// Where the browser check runs.
#[derive(Debug, Clone)]
pub struct BrowserCheck {
    /// The Python with Playwright (`.venv-browser/bin/python`).
    pub python: PathBuf,
    /// `local/browser/check_dashboard.py`.
    pub script: PathBuf,
    /// Where screenshots go.
    pub out: PathBuf,
}

/// How to run the drills.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Drill names to run (empty: all, or the quick set).
    pub only: Vec<String>,
    /// The quick set, steady traffic only.
    pub quick: bool,
    /// New orders per real second of steady traffic.
    pub rate: f64,
    /// Orders in a burst.
    pub burst: usize,
    /// The `ordersctl` binary.
    pub ordersctl: PathBuf,
    /// The runbooks' directory.
    pub runbooks: PathBuf,
    /// Check the dashboard in a browser during the drills.
    pub browser: Option<BrowserCheck>,
    /// Seed of the traffic.
    pub seed: u64,
    /// How long a failed message takes to come back (the queue's visibility timeout,
    /// as the stack runs it): after undoing a failure the drill waits this long, so
    /// messages still in flight have landed, before it runs the runbook's commands; and
    /// after every alarm is OK it waits this long again and checks that they stay OK.
    pub settle: Duration,
}

/// An alarm's part in a drill.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmTiming {
    /// The alarm (logical id).
    pub alarm: String,
    /// Simulated seconds from the injection to `ALARM` (`None`: it did not fire).
    pub to_alarm_s: Option<i64>,
    /// Simulated seconds from its metric's first breaching period to `ALARM`.
    pub detection_s: Option<i64>,
    /// The most that detection may take: the alarm's evaluation window (its periods
    /// times `EvaluationPeriods`), one evaluation cycle and the settling delay.
    pub window_s: Option<i64>,
    /// Expected by the drill.
    pub expected: bool,
}

/// One drill's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct DrillRow {
    /// The drill.
    pub name: String,
    /// The failure.
    pub failure: String,
    /// How traffic flowed.
    pub variant: Variant,
    /// Every alarm that fired, and every expected one.
    pub alarms: Vec<AlarmTiming>,
    /// The fix: the undo and the runbook commands.
    pub fix: Vec<String>,
    /// Simulated seconds from the end of the fix to every alarm `OK`.
    pub to_ok_s: Option<i64>,
    /// Why the drill failed, if it did.
    pub problems: Vec<String>,
}

/// Every drill's outcome, and what they add up to.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// The rows, in order.
    pub rows: Vec<DrillRow>,
    /// Alarms of the template that fired in no drill.
    pub never_fired: Vec<String>,
    /// Orders the traffic placed, and how many completed.
    pub orders: (usize, usize),
    /// Orders not completed at the end.
    pub unfinished: Vec<String>,
    /// Screenshots taken by the browser check.
    pub screenshots: Vec<String>,
    /// Browser checks that failed.
    pub browser_problems: Vec<String>,
    /// The plane's clock speed.
    pub time_scale: f64,
    /// Whether a whole set ran (all drills or the quick set), which must fire every
    /// alarm.
    pub whole_set: bool,
}

fn seconds(s: Option<i64>) -> String {
    s.map_or_else(|| "—".to_owned(), |s| format!("{}:{:02}", s / 60, s % 60))
}

impl DrillReport {
    /// One line per drill, its traffic shapes side by side: the failure, the alarms
    /// its runbook names with their time to ALARM, the fix, and the time to OK.
    pub fn summary(&self) -> String {
        let mut out = String::from(
            "| failure (`local drill NAME`) | alarms its runbook names: time to ALARM (steady / burst) | fix: runbook commands | time to OK (steady / burst) |\n|---|---|---|---:|\n",
        );
        let mut names: Vec<&str> = Vec::new();
        for row in &self.rows {
            if !names.contains(&row.name.as_str()) {
                names.push(&row.name);
            }
        }
        for name in names {
            let rows: Vec<&DrillRow> = self.rows.iter().filter(|r| r.name == name).collect();
            let Some(first) = rows.first() else { continue };
            let both = |value: &dyn Fn(&DrillRow) -> String| {
                rows.iter()
                    .map(|r| value(r))
                    .collect::<Vec<_>>()
                    .join(" / ")
            };
            let alarms: Vec<String> = first
                .alarms
                .iter()
                .filter(|a| a.expected)
                .map(|a| {
                    let times = both(&|r: &DrillRow| {
                        seconds(
                            r.alarms
                                .iter()
                                .find(|x| x.alarm == a.alarm)
                                .and_then(|x| x.to_alarm_s),
                        )
                    });
                    format!("{} {times}", a.alarm.trim_end_matches("Alarm"))
                })
                .collect();
            let commands: Vec<&str> = first
                .fix
                .iter()
                .filter(|f| f.starts_with('`'))
                .map(|f| f.split(" (").next().unwrap_or(f))
                .collect();
            let fix = if commands.is_empty() {
                first.fix.first().cloned().unwrap_or_default()
            } else {
                format!(
                    "{}; {}",
                    first.fix.first().cloned().unwrap_or_default(),
                    commands.join(", ")
                )
            };
            let verdict = if rows.iter().all(|r| r.problems.is_empty()) {
                ""
            } else {
                " FAILED"
            };
            out.push_str(&format!(
                "| {} (`{name}`) | {} | {fix} | {}{verdict} |\n",
                first.failure,
                alarms.join("<br>"),
                both(&|r: &DrillRow| seconds(r.to_ok_s)),
            ));
        }
        out
    }

    /// Whether every drill held, every alarm fired, and every order completed.
    pub fn holds(&self) -> bool {
        self.rows.iter().all(|r| r.problems.is_empty())
            && self.never_fired.is_empty()
            && self.unfinished.is_empty()
            && self.browser_problems.is_empty()
    }
}

impl fmt::Display for DrillReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Times are simulated (the plane's clock ran {}x real time), as m:ss. \"detected\" is from the first breaching period of the alarm's metric to ALARM, within the alarm's window (its periods x EvaluationPeriods, one evaluation cycle and the 20 s settling delay).\n",
            self.time_scale
        )?;
        writeln!(
            f,
            "| failure | traffic | alarm: time to ALARM (detected / window) | fix: runbook | time to OK | |"
        )?;
        writeln!(f, "|---|---|---|---|---:|---|")?;
        for row in &self.rows {
            let alarms: Vec<String> = row
                .alarms
                .iter()
                .map(|a| match a.to_alarm_s {
                    Some(s) => format!(
                        "{}{}: {} ({} / {})",
                        a.alarm.trim_end_matches("Alarm"),
                        if a.expected { "" } else { " (also)" },
                        seconds(Some(s)),
                        seconds(a.detection_s),
                        seconds(a.window_s)
                    ),
                    None => format!("{}: did not fire", a.alarm.trim_end_matches("Alarm")),
                })
                .collect();
            writeln!(
                f,
                "| {} (`{}`) | {} | {} | {} | {} | {} |",
                row.failure,
                row.name,
                row.variant,
                alarms.join("<br>"),
                row.fix.join("; "),
                seconds(row.to_ok_s),
                if row.problems.is_empty() {
                    "ok".to_owned()
                } else {
                    format!("FAILED: {}", row.problems.join("; "))
                }
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "orders       {} placed by the traffic, {} completed{}",
            self.orders.0,
            self.orders.1,
            if self.unfinished.is_empty() {
                String::new()
            } else {
                format!("; NOT completed: {}", self.unfinished.join(", "))
            }
        )?;
        if !self.whole_set {
            writeln!(
                f,
                "alarms       (some drills only: not every alarm is expected to fire)"
            )?;
        } else if self.never_fired.is_empty() {
            writeln!(
                f,
                "alarms       every alarm of the template fired in a drill"
            )?;
        } else {
            writeln!(
                f,
                "alarms       NEVER FIRED: {}",
                self.never_fired.join(", ")
            )?;
        }
        for shot in &self.screenshots {
            writeln!(f, "screenshot   {shot}")?;
        }
        for problem in &self.browser_problems {
            writeln!(f, "browser      FAILED: {problem}")?;
        }
        Ok(())
    }
}

/// Orders arriving at a steady rate, paused and resumed by the drills.
struct Traffic {
    paused: watch::Sender<bool>,
    placed: Arc<Mutex<BTreeSet<String>>>,
}

fn start_traffic(
    api: Arc<ApiClient>,
    products: Vec<String>,
    rate: f64,
    seed: u64,
    mut shutdown: watch::Receiver<bool>,
) -> Traffic {
    let (paused, paused_rx) = watch::channel(false);
    let placed = Arc::new(Mutex::new(BTreeSet::new()));
    let record = Arc::clone(&placed);
    tokio::spawn(async move {
        let every = Duration::from_secs_f64(1.0 / rate.max(0.1));
        let permits = Arc::new(tokio::sync::Semaphore::new(32));
        let mut n: u64 = 0;
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = crate::http::stopped(&mut shutdown) => return,
            }
            if *paused_rx.borrow() {
                continue;
            }
            // Open loop: an arrival that finds every client busy is not sent.
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                continue;
            };
            n += 1;
            // A fifth of the shoppers send their order request twice (the API answers
            // with the same order); every tenth removes a line that is not in its
            // cart first (a 404, and a refused conditional delete).
            let workload = Workload {
                user_prefix: format!("steady-{seed}-{n}"),
                duplicate_share: 0.2,
                seed: seed.wrapping_add(n),
            };
            let Some(plan) = workload.plans(1, &products).pop() else {
                continue;
            };
            let (api, record) = (Arc::clone(&api), Arc::clone(&record));
            let remove_missing = n.is_multiple_of(10);
            tokio::spawn(async move {
                if remove_missing && let Some((product, _)) = plan.lines.first() {
                    let _ = api
                        .call(
                            "DELETE",
                            &format!("/cart/{}/{product}", plan.user),
                            None,
                            None,
                        )
                        .await;
                }
                let shopped = shoppers::shop(api, plan, Patience::default()).await;
                if let (Some(id), Ok(mut placed)) = (shopped.order_id, record.lock()) {
                    placed.insert(id);
                }
                drop(permit);
            });
        }
    });
    Traffic { paused, placed }
}

/// The drills to run, by name or set.
///
/// # Errors
/// A message naming an unknown drill.
pub fn select(only: &[String], quick: bool) -> Result<Vec<&'static Drill>, String> {
    if only.is_empty() {
        return Ok(DRILLS.iter().filter(|d| d.quick || !quick).collect());
    }
    only.iter()
        .map(|name| {
            DRILLS.iter().find(|d| d.name == name).ok_or_else(|| {
                let names: Vec<&str> = DRILLS.iter().map(|d| d.name).collect();
                format!("no drill named {name}; drills: {}", names.join(", "))
            })
        })
        .collect()
}

/// Checks that every command a drill runs appears in its runbook as written (as
/// inline code), so the drill runs what an operator reads.
///
/// # Errors
/// A message naming the runbook and the command.
pub fn check_runbooks(drills: &[&Drill], runbooks: &std::path::Path) -> Result<(), String> {
    for drill in drills {
        let path = runbooks.join(format!("{}.md", drill.runbook));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("drill {}: {}: {e}", drill.name, path.display()))?;
        for command in drill.commands {
            if !text.contains(&format!("`{command}`")) {
                return Err(format!(
                    "drill {}: the runbook {} does not name `{command}`",
                    drill.name,
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

struct Run<'a> {
    stack: &'a Stack,
    plane: &'a Arc<Plane>,
    options: &'a DrillOptions,
    api: Arc<ApiClient>,
    products: Vec<String>,
    names: BTreeMap<String, String>,
    fired: BTreeSet<String>,
    screenshots: Vec<String>,
    browser_problems: Vec<String>,
    bursts: u64,
    poisoned: std::sync::atomic::AtomicU64,
}

impl Run<'_> {
    fn now(&self) -> i64 {
        self.plane.clock().now_ms()
    }

    fn name(&self, logical_id: &str) -> String {
        self.names
            .get(logical_id)
            .cloned()
            .unwrap_or_else(|| logical_id.to_owned())
    }

    fn states(&self) -> BTreeMap<String, AlarmState> {
        self.plane
            .alarms()
            .views()
            .into_iter()
            .map(|v| (v.logical_id, v.state))
            .collect()
    }

    /// Waits until every alarm is OK; the alarms that are not, if it times out.
    async fn all_ok(&self, limit: Duration) -> Result<(), Vec<String>> {
        let started = Instant::now();
        loop {
            let not_ok: Vec<String> = self
                .states()
                .into_iter()
                .filter(|(_, s)| *s != AlarmState::Ok)
                .map(|(a, s)| format!("{a} {s}"))
                .collect();
            if not_ok.is_empty() {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(not_ok);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn function(&self, logical_id: &str) -> Result<&crate::function::Function, String> {
        self.stack
            .functions()
            .get(logical_id)
            .ok_or_else(|| format!("the stack has no function {logical_id}"))
    }

    async fn inject(&self, injection: Injection) -> Result<(), String> {
        match injection {
            Injection::BadConfig { function, variable } => {
                let f = self.function(function)?;
                f.override_environment(variable, None);
                f.restart();
            }
            Injection::Crash(function) => self
                .function(function)?
                .set_fault(Some(FunctionFault::CrashOnInvoke)),
            Injection::Throttle(function) => self
                .function(function)?
                .set_fault(Some(FunctionFault::Throttled)),
            Injection::Slow(function, by) => self
                .function(function)?
                .set_fault(Some(FunctionFault::Slow(by))),
            Injection::Dependency {
                binary,
                fault,
                held,
            } => {
                let proxy = self
                    .stack
                    .proxies()
                    .get(binary)
                    .ok_or_else(|| format!("no proxy for {binary}"))?;
                proxy.set_plan(FaultPlan {
                    rate: 1.0,
                    only: Some(fault),
                    min_latency: held,
                    max_latency: held,
                    ..proxy.plan()
                });
            }
            Injection::MappingOff(function) => {
                if !self.stack.set_mapping_enabled(function, false) {
                    return Err(format!("{function} has no event source mapping"));
                }
            }
            Injection::Poison(count) => {
                // New orders each time (a new seed): the same ids again would be
                // updates, which the stream filter drops.
                let seed = 9_000
                    + self
                        .poisoned
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                crate::chaos::poison(self.stack, count, seed).await?;
            }
        }
        Ok(())
    }

    async fn undo(&self, injection: Injection) -> Result<(), String> {
        match injection {
            Injection::BadConfig { function, .. } => {
                let f = self.function(function)?;
                f.clear_environment_overrides();
                f.restart();
            }
            Injection::Crash(function)
            | Injection::Throttle(function)
            | Injection::Slow(function, _) => {
                self.function(function)?.set_fault(None);
            }
            Injection::Dependency { binary, .. } => {
                if let Some(proxy) = self.stack.proxies().get(binary) {
                    proxy.set_plan(FaultPlan {
                        rate: 0.0,
                        only: None,
                        ..proxy.plan()
                    });
                }
            }
            Injection::MappingOff(function) => {
                self.stack.set_mapping_enabled(function, true);
            }
            Injection::Poison(_) => {}
        }
        Ok(())
    }

    /// Runs `ordersctl` with the stack's names, as an operator with the stack's
    /// outputs exported would.
    async fn ordersctl(&self, args: &[String]) -> Result<serde_json::Value, String> {
        let resources = self.stack.resources();
        let url = |id: &str| {
            resources
                .queue(id)
                .map(|q| q.url.clone())
                .unwrap_or_default()
        };
        let output = tokio::process::Command::new(&self.options.ordersctl)
            .args(args)
            .env(
                "AWS_ENDPOINT_URL",
                self.stack.emulator_endpoint().unwrap_or_default(),
            )
            .env(
                "AWS_REGION",
                self.stack
                    .sdk()
                    .region()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            )
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("TABLE_NAME", &resources.table_name)
            .env("DLQ_URL", url("OrdersDeadLetterQueue"))
            .env("QUEUE_URL", url("OrdersQueue"))
            .env("STREAM_FAILURE_QUEUE_URL", url("StreamFailureQueue"))
            .output()
            .await
            .map_err(|e| format!("cannot run ordersctl: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "ordersctl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("ordersctl {}: {e}", args.join(" ")))
    }

    /// Runs the runbook's commands; the commands as run, for the table.
    async fn runbook(&self, drill: &Drill) -> Result<Vec<String>, String> {
        let mut ran = Vec::new();
        let mut order_ids: Vec<String> = Vec::new();
        let mut message_ids: Vec<String> = Vec::new();
        for template in drill.commands {
            let words: Vec<&str> = template.split_whitespace().skip(1).collect();
            let needs = |placeholder: &str| words.iter().any(|w| w.starts_with(placeholder));
            let fill: &[String] = if needs("<order_id>") {
                &order_ids
            } else if needs("<message_id>") {
                &message_ids
            } else {
                &[]
            };
            if (needs("<order_id>") || needs("<message_id>")) && fill.is_empty() {
                ran.push(format!("`{template}` (nothing to do)"));
                continue;
            }
            let mut args: Vec<String> = Vec::new();
            for word in &words {
                if word.starts_with('<') {
                    args.extend(fill.iter().cloned());
                } else {
                    args.push((*word).to_owned());
                }
            }
            let output = self.ordersctl(&args).await?;
            ran.push(format!("`{template}`"));
            // What the listing commands found, for the commands after them.
            if template.starts_with("ordersctl stream-failures list") {
                message_ids.clear();
                order_ids.clear();
                for failure in output.as_array().into_iter().flatten() {
                    if let Some(id) = failure["message_id"].as_str() {
                        message_ids.push(id.to_owned());
                    }
                    for order in failure["orders"]["Ok"].as_array().into_iter().flatten() {
                        if order["status_now"] == "ORDERED"
                            && let Some(id) = order["order_id"].as_str()
                        {
                            order_ids.push(id.to_owned());
                        }
                    }
                }
            } else if template.starts_with("ordersctl dlq list") {
                message_ids = output
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["message_id"].as_str().map(str::to_owned))
                    .collect();
            }
        }
        Ok(ran)
    }

    async fn browser(&mut self, name: &str, expect: &[(String, AlarmState)], require_data: bool) {
        let Some(check) = &self.options.browser else {
            return;
        };
        let Some(url) = self.stack.dashboard_url() else {
            return;
        };
        let mut command = tokio::process::Command::new(&check.python);
        command
            .arg(&check.script)
            .args(["--url", url, "--name", name, "--timeout", "60"])
            .arg("--out")
            .arg(&check.out);
        if require_data {
            // The whole drill run, so every widget has had its data.
            command.args(["--require-data", "--range", "86400"]);
        }
        for (alarm, state) in expect {
            command.args(["--expect", &format!("{alarm}={state}")]);
        }
        match command.output().await {
            Ok(output) => {
                let summary: serde_json::Value =
                    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
                if let Some(shot) = summary["screenshot"].as_str() {
                    self.screenshots.push(shot.to_owned());
                }
                if !output.status.success() {
                    self.browser_problems.push(format!(
                        "{name}: {}{}",
                        String::from_utf8_lossy(&output.stdout).trim(),
                        String::from_utf8_lossy(&output.stderr).trim()
                    ));
                }
            }
            Err(e) => self.browser_problems.push(format!(
                "{name}: cannot run {}: {e}",
                check.python.display()
            )),
        }
    }

    async fn drill(
        &mut self,
        drill: &Drill,
        variant: Variant,
        traffic: &Traffic,
        first: bool,
    ) -> DrillRow {
        let mut row = DrillRow {
            name: drill.name.to_owned(),
            failure: drill.failure.to_owned(),
            variant,
            alarms: Vec::new(),
            fix: Vec::new(),
            to_ok_s: None,
            problems: Vec::new(),
        };
        traffic.paused.send_replace(false);
        if let Err(not_ok) = self.all_ok(Duration::from_secs(180)).await {
            row.problems.push(format!(
                "alarms not OK before the drill: {}",
                not_ok.join(", ")
            ));
            return row;
        }
        let before = self.states();
        let injected_at = self.now();
        if let Err(e) = self.inject(drill.injection).await {
            row.problems.push(e);
            return row;
        }
        // The burst's shoppers run beside the drill: a failing API keeps them
        // retrying for a while, and the alarms are watched meanwhile.
        let burst = if variant == Variant::Burst {
            traffic.paused.send_replace(true);
            self.bursts += 1;
            let workload = Workload {
                user_prefix: format!("burst-{}-{}", self.options.seed, self.bursts),
                duplicate_share: 0.0,
                seed: self.options.seed + self.bursts,
            };
            let plans = workload.plans(self.options.burst, &self.products);
            let api = Arc::clone(&self.api);
            let placed = Arc::clone(&traffic.placed);
            Some(tokio::spawn(async move {
                let shopped = shoppers::shop_all(api, plans, 8, Patience::default()).await;
                if let Ok(mut placed) = placed.lock() {
                    placed.extend(shopped.into_iter().filter_map(|s| s.order_id));
                }
            }))
        } else {
            None
        };
        // Wait for every expected alarm (and note the others that fire).
        let limit = Instant::now() + Duration::from_secs(240);
        let mut fired_at: BTreeMap<String, i64> = BTreeMap::new();
        loop {
            for (alarm, state) in self.states() {
                if state == AlarmState::Alarm && !fired_at.contains_key(&alarm) {
                    fired_at.insert(alarm, self.now());
                }
            }
            let waiting = drill.expect.iter().any(|a| !fired_at.contains_key(*a));
            if !waiting || Instant::now() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if first {
            let expect: Vec<(String, AlarmState)> = drill
                .expect
                .iter()
                .filter(|a| fired_at.contains_key(**a))
                .map(|a| (self.name(a), AlarmState::Alarm))
                .collect();
            self.browser(&format!("{}-alarm", drill.name), &expect, false)
                .await;
        }
        let mut alarms: BTreeSet<&str> = drill.expect.iter().copied().collect();
        alarms.extend(fired_at.keys().map(String::as_str));
        for alarm in alarms {
            let at = fired_at.get(alarm).copied();
            let breach = at.and_then(|at| {
                self.plane.alarms().first_breach(
                    &self.name(alarm),
                    self.plane.metrics(),
                    injected_at,
                    at,
                )
            });
            let expected = drill.expect.contains(&alarm);
            let window_s =
                breach.map(|(_, period, n)| (period * n as i64 + 60_000 + 20_000) / 1000);
            let detection_s = breach.zip(at).map(|((start, period, _), at)| {
                // A period is visible once it is complete.
                (at - (start + period).max(injected_at)).max(0) / 1000
            });
            if let (Some(detection), Some(window)) = (detection_s, window_s)
                && detection > window
            {
                row.problems.push(format!("{alarm} took {detection} s after its metric breached, over its window of {window} s"));
            }
            if expected && at.is_none() {
                row.problems.push(format!("{alarm} did not fire"));
            }
            if at.is_some() && before.get(alarm) == Some(&AlarmState::Ok) {
                self.fired.insert(alarm.to_owned());
            }
            row.alarms.push(AlarmTiming {
                alarm: alarm.to_owned(),
                to_alarm_s: at.map(|at| (at - injected_at) / 1000),
                detection_s,
                window_s,
                expected,
            });
        }
        if let Some(burst) = burst {
            let _ = burst.await;
        }
        // The fix: undo as the runbook says, then its commands.
        if let Err(e) = self.undo(drill.injection).await {
            row.problems.push(e);
        }
        row.fix.push(drill.undo.to_owned());
        traffic.paused.send_replace(false);
        let fixed_at = self.now();
        // Messages that failed before the fix come back, or reach the DLQ, within a
        // visibility timeout: the runbook's commands run once they have landed, and
        // again while an alarm still fires, as an operator would.
        if !drill.commands.is_empty() {
            tokio::time::sleep(self.options.settle).await;
        }
        const PASSES: usize = 6;
        for pass in 1..=PASSES {
            if !drill.commands.is_empty() {
                match self.runbook(drill).await {
                    Ok(ran) if pass == 1 => row.fix.extend(ran),
                    Ok(_) => row
                        .fix
                        .push("(the commands again: the alarm still fired)".to_owned()),
                    Err(e) => {
                        row.problems.push(e);
                        break;
                    }
                }
            }
            // With commands to run again, a pass waits half a minute for OK; a drill
            // without them waits for its alarms to clear on their own.
            let wait = if drill.commands.is_empty() {
                Duration::from_secs(240)
            } else {
                Duration::from_secs(30)
            };
            let stable = match self.all_ok(wait).await {
                Ok(()) => {
                    let ok_at = self.now();
                    // Stays OK for a visibility timeout: nothing is still on its way.
                    tokio::time::sleep(self.options.settle).await;
                    self.all_ok(Duration::ZERO).await.map(|()| ok_at)
                }
                Err(not_ok) => Err(not_ok),
            };
            match stable {
                Ok(ok_at) => {
                    row.to_ok_s = Some((ok_at - fixed_at) / 1000);
                    break;
                }
                Err(not_ok) if pass == PASSES || drill.commands.is_empty() => {
                    row.problems.push(format!(
                        "alarms not OK after the fix: {}",
                        not_ok.join(", ")
                    ));
                    break;
                }
                Err(_) => {}
            }
        }
        if first {
            let expect: Vec<(String, AlarmState)> = drill
                .expect
                .iter()
                .map(|a| (self.name(a), AlarmState::Ok))
                .collect();
            self.browser(&format!("{}-ok", drill.name), &expect, false)
                .await;
        }
        row
    }
}

/// Runs the drills against a stack started with the CloudWatch plane.
///
/// # Errors
/// A message if the stack has no plane, a drill is unknown, a runbook does not name a
/// drill's command, or the catalogue cannot be loaded.
pub async fn run(stack: &Stack, options: &DrillOptions) -> Result<DrillReport, String> {
    let plane = stack
        .plane()
        .ok_or("the stack was started without the CloudWatch plane")?;
    let drills = select(&options.only, options.quick)?;
    check_runbooks(&drills, &options.runbooks)?;
    let api = Arc::new(ApiClient::new(
        stack.api_url(),
        Some(stack.api_key().to_owned()),
    ));
    let products = shoppers::load_catalogue(&api).await?;
    let (stop, stop_rx) = watch::channel(false);
    let traffic = start_traffic(
        Arc::clone(&api),
        products.clone(),
        options.rate,
        options.seed,
        stop_rx,
    );
    let mut run = Run {
        stack,
        plane,
        options,
        api,
        products,
        names: plane.alarms().names(),
        fired: BTreeSet::new(),
        screenshots: Vec::new(),
        browser_problems: Vec::new(),
        bursts: 0,
        poisoned: std::sync::atomic::AtomicU64::new(0),
    };
    let variants: &[Variant] = if options.quick {
        &[Variant::Steady]
    } else {
        &[Variant::Steady, Variant::Burst]
    };
    let mut rows = Vec::new();
    for (i, drill) in drills.iter().enumerate() {
        for variant in variants {
            let row = run
                .drill(
                    drill,
                    *variant,
                    &traffic,
                    i == 0 && *variant == Variant::Steady,
                )
                .await;
            let verdict = if row.problems.is_empty() {
                "ok".to_owned()
            } else {
                row.problems.join("; ")
            };
            tracing::info!(drill = drill.name, %variant, %verdict, "drill done");
            let fired: Vec<String> = row
                .alarms
                .iter()
                .filter_map(|a| {
                    Some(format!(
                        "{} {}",
                        a.alarm.trim_end_matches("Alarm"),
                        seconds(Some(a.to_alarm_s?))
                    ))
                })
                .collect();
            eprintln!(
                "local drill: {} ({variant}): {}; OK {} after the fix: {verdict}",
                drill.name,
                fired.join(", "),
                seconds(row.to_ok_s)
            );
            rows.push(row);
        }
    }
    // Every order the traffic placed completes once the last fix is in.
    traffic.paused.send_replace(true);
    let placed: Vec<String> = traffic
        .placed
        .lock()
        .map(|p| p.iter().cloned().collect())
        .unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    let unfinished = loop {
        let states = crate::audit::orders(stack).await?;
        let unfinished: Vec<String> = placed
            .iter()
            .filter(|id| states.get(*id).is_none_or(|s| s.status != "PROCESSED"))
            .cloned()
            .collect();
        if unfinished.is_empty() || Instant::now() > deadline {
            break unfinished;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    run.browser("dashboard", &[], true).await;
    stop.send_replace(true);
    let never_fired: Vec<String> = plane
        .alarms()
        .views()
        .into_iter()
        .map(|v| v.logical_id)
        .filter(|a| !run.fired.contains(a))
        .collect();
    Ok(DrillReport {
        rows,
        // Only a run of a whole set has to fire every alarm.
        never_fired: if options.only.is_empty() {
            never_fired
        } else {
            Vec::new()
        },
        orders: (placed.len(), placed.len() - unfinished.len()),
        unfinished,
        screenshots: run.screenshots,
        browser_problems: run.browser_problems,
        time_scale: plane.clock().scale(),
        whole_set: options.only.is_empty(),
    })
}
