//! `local`: runs ecommerce-api on this machine: `up`, `demo`, `down`.
#![allow(clippy::print_stdout, reason = "a command-line tool reports on stdout")]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use local::chaos::{self, ChaosOptions};
use local::demo::{self, DemoOptions};
use local::faults::FaultPlan;
use local::load::{self, LoadOptions};
use local::resources::Overrides;
use local::stack::{Observability, Stack, StackOptions};

#[derive(Parser)]
#[command(
    about = "Run ecommerce-api locally: moto, the real function binaries, event sources and an API gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the stack and keep it running until Ctrl-C or `local down`.
    Up {
        /// Gateway port on 127.0.0.1.
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// The API key clients must send as x-api-key.
        #[arg(long, default_value = "local-api-key")]
        api_key: String,
        /// Use the binaries already in target/debug.
        #[arg(long)]
        no_build: bool,
        /// The local CloudWatch plane's clock runs this many times faster than real
        /// time (60: a five-minute period passes in five seconds).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// The dashboard page's port on 127.0.0.1.
        #[arg(long, default_value_t = 3001)]
        dashboard_port: u16,
    },
    /// Start the stack, simulate users placing orders, follow every order, print a summary, stop.
    Demo {
        /// Simulated users (one order each).
        #[arg(long, default_value_t = 50)]
        users: usize,
        /// Users acting at the same time.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Share of users who also send duplicate order requests (same key), at once
        /// and after.
        #[arg(long, default_value_t = 0.2)]
        duplicates: f64,
        /// Seed of the users' choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Gateway port (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Seconds to wait for the pipeline.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Use the binaries already in target/debug.
        #[arg(long)]
        no_build: bool,
    },
    /// Break the system on purpose (faults on AWS calls, killed processes, duplicate
    /// requests, redeliveries) while orders flow, then check that every order completed
    /// exactly once or failed with its reason; exits non-zero if not.
    Chaos {
        /// Orders to place (one user each).
        #[arg(long, default_value_t = 2000)]
        orders: usize,
        /// Clients at the same time.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Share of the functions' AWS calls that get a fault.
        #[arg(long, default_value_t = 0.08)]
        fault_rate: f64,
        /// Function processes to kill with SIGKILL (at least one per function).
        #[arg(long, default_value_t = 8)]
        kills: usize,
        /// Share of clients that send duplicate order requests.
        #[arg(long, default_value_t = 0.2)]
        duplicates: f64,
        /// The order queue's visibility timeout in seconds (short: redeliveries happen).
        #[arg(long, default_value_t = 3)]
        visibility_timeout: u32,
        /// Seed of the faults, the clients and the kills.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Orders written straight into the table that can never complete: each must
        /// be set aside or dead-lettered with its reason.
        #[arg(long, default_value_t = 4)]
        poison: usize,
        /// Seconds without progress after which the orders still in flight are lost.
        #[arg(long, default_value_t = 90)]
        patience: u64,
        /// Use the binaries already in target/debug.
        #[arg(long)]
        no_build: bool,
    },
    /// A steady stream of orders (a new shopper every 1/RATE s) for SECONDS, then
    /// the throughput achieved, the placed-to-processed latency and the audit;
    /// exits non-zero if an order was lost or the stack did not keep up.
    Load {
        /// New orders per second.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Seconds the orders arrive.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Share of the functions' AWS calls that get a fault (0: none).
        #[arg(long, default_value_t = 0.0)]
        fault_rate: f64,
        /// Seed of the shoppers (and faults).
        #[arg(long, default_value_t = 3)]
        seed: u64,
        /// Use the binaries already in target/debug.
        #[arg(long)]
        no_build: bool,
    },
    /// Rust against Python + Powertools, side by side (run through `scripts/bench`,
    /// which installs and builds what this needs): writes bench/results/ and prints
    /// the table.
    Bench {
        /// A few samples only, to prove the command works (CI); not figures to quote.
        #[arg(long)]
        quick: bool,
        /// Where the table, JSON and chart go.
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
    },
    /// Rehearse every alarm: inject each failure the pipeline can suffer under steady
    /// traffic and a burst, expect the alarm its runbook names, run the runbook's
    /// commands, expect OK (`local drill` for all, `local drill NAME...` for some).
    Drill {
        /// Drills to run (default: all; with --quick, the quick set).
        names: Vec<String>,
        /// The quick set (together they fire every alarm), steady traffic only.
        #[arg(long)]
        quick: bool,
        /// The plane's clock runs this many times faster than real time.
        #[arg(long, default_value_t = 60.0)]
        time_scale: f64,
        /// New orders per real second of steady traffic.
        #[arg(long, default_value_t = 3.0)]
        rate: f64,
        /// Orders in a burst.
        #[arg(long, default_value_t = 30)]
        burst: usize,
        /// Also check the dashboard in headless Chromium (needs `scripts/tools browser`).
        #[arg(long)]
        browser: bool,
        /// Where the table, JSON and screenshots go.
        #[arg(long, default_value = ".local/drill")]
        out: PathBuf,
        /// Seed of the traffic.
        #[arg(long, default_value_t = 5)]
        seed: u64,
        /// Use the binaries already in target/debug.
        #[arg(long)]
        no_build: bool,
    },
    /// Stop a stack started with `local up`.
    Down,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn build(workspace: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    // The whole workspace, so features unify as in `cargo test --workspace` and the
    // test build's artifacts are reused.
    println!("local: building the function binaries (cargo build --workspace --bins)");
    let status = std::process::Command::new(cargo)
        .args(["build", "--workspace", "--bins", "--locked"])
        .current_dir(workspace)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build failed: {status}"))
    }
}

fn pid_file(options: &StackOptions) -> PathBuf {
    options.state_dir.join("stack.pid")
}

async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

async fn up(
    mut options: StackOptions,
    port: u16,
    api_key: String,
    observability: Observability,
) -> Result<(), String> {
    options.api_port = port;
    options.api_key = api_key;
    options.observability = Some(observability);
    let pid_file = pid_file(&options);
    let lambda_env = options.state_dir.join("lambda.env");
    local::logging::init(&options.state_dir.join("logs"))?;
    let stack = Stack::start(options).await.map_err(|e| e.to_string())?;
    std::fs::write(&pid_file, std::process::id().to_string()).map_err(|e| e.to_string())?;
    // For `cargo lambda watch`: the functions it runs then reach this stack's emulator,
    // table and queue. Through CARGO_LAMBDA_WATCH.ENV_FILE, not --env-file: cargo-lambda
    // 1.9 re-reads Cargo.toml's [package.metadata.lambda.env] before each start of a
    // function, without the command line's flags, and those defaults would win.
    let variables = stack.lambda_environment().map_err(|e| e.to_string())?;
    let text: String = variables
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect();
    std::fs::write(&lambda_env, text).map_err(|e| format!("{}: {e}", lambda_env.display()))?;
    println!("local: stack is up");
    println!(
        "  API        {}   (header x-api-key: {})",
        stack.api_url(),
        stack.api_key()
    );
    println!("  table      {}", stack.resources().table_name);
    for (id, queue) in &stack.resources().queues {
        println!("  queue      {id}: {}", queue.url);
    }
    println!("  logs       {}/<function>.log", stack.logs().display());
    if let Some(url) = stack.dashboard_url() {
        println!(
            "  dashboard  {url}   (alarm states as JSON: {url}alarms; time x{})",
            observability.time_scale
        );
        println!(
            "  alarms     notifications in {}",
            stack.logs().join("alarm-topic.log").display()
        );
    }
    println!(
        "  functions  env CARGO_LAMBDA_WATCH.ENV_FILE={} cargo lambda watch",
        lambda_env.display()
    );
    println!(
        "  try        curl -s -X POST -H 'x-api-key: {}' {}/loadProducts",
        stack.api_key(),
        stack.api_url()
    );
    println!("local: Ctrl-C or `cargo run -p local -- down` stops it");
    wait_for_signal().await;
    println!("local: stopping");
    stack.stop().await;
    let _ = std::fs::remove_file(&pid_file);
    println!("local: stopped");
    Ok(())
}

async fn run_demo(
    mut options: StackOptions,
    demo_options: DemoOptions,
    port: u16,
) -> Result<bool, String> {
    let users = demo_options.users;
    options.api_port = port;
    // Deliberate local deviations, so a poison message is redriven in seconds:
    options.overrides = Overrides {
        visibility_timeout_seconds: Some(2),
    };
    options.stream_retry_delay = Duration::from_millis(500);
    options.state_dir = options.state_dir.join("demo");
    local::logging::init(&options.state_dir.join("logs"))?;
    println!("local demo: starting moto, the three functions, their event sources and the gateway");
    let stack = Stack::start(options).await.map_err(|e| e.to_string())?;
    println!(
        "local demo: {users} users placing orders through {}",
        stack.api_url()
    );
    let outcome = tokio::select! {
        report = demo::run(&stack, &demo_options) => Some(report),
        () = wait_for_signal() => None,
    };
    stack.stop().await;
    match outcome {
        None => Err("interrupted; the stack is stopped".to_owned()),
        Some(Err(e)) => Err(e),
        Some(Ok(report)) => {
            println!("{report}");
            if report.all_accounted_for() {
                println!("local demo: every order is accounted for");
                Ok(true)
            } else {
                println!(
                    "local demo: {} orders unaccounted for: {:?}",
                    report.unaccounted.len(),
                    report.unaccounted
                );
                Ok(false)
            }
        }
    }
}

/// Starts the stack, runs `work` on it (until Ctrl-C), and stops the stack either way.
async fn with_stack<T>(
    options: StackOptions,
    work: impl AsyncFnOnce(&Stack) -> Result<T, String>,
) -> Result<T, String> {
    let stack = Stack::start(options).await.map_err(|e| e.to_string())?;
    let outcome = tokio::select! {
        outcome = work(&stack) => Some(outcome),
        () = wait_for_signal() => None,
    };
    stack.stop().await;
    outcome.unwrap_or_else(|| Err("interrupted; the stack is stopped".to_owned()))
}

#[allow(clippy::too_many_arguments)]
async fn run_chaos(
    mut options: StackOptions,
    chaos: ChaosOptions,
    fault_rate: f64,
    visibility_timeout: u32,
) -> Result<bool, String> {
    options.api_port = 0;
    options.overrides = Overrides {
        visibility_timeout_seconds: Some(visibility_timeout),
    };
    options.stream_retry_delay = Duration::from_millis(300);
    options.faults = FaultPlan {
        rate: fault_rate.clamp(0.0, 1.0),
        seed: chaos.seed,
        ..FaultPlan::NONE
    };
    options.state_dir = options.state_dir.join("chaos");
    local::logging::init(&options.state_dir.join("logs"))?;
    println!(
        "local chaos: {} orders, faults on {:.0} % of the functions' AWS calls, {} kills, visibility timeout {visibility_timeout} s, seed {}",
        chaos.orders,
        fault_rate * 100.0,
        chaos.kills,
        chaos.seed
    );
    let report = with_stack(options, async |stack: &Stack| {
        chaos::run(stack, &chaos).await
    })
    .await?;
    println!("{report}");
    if report.holds() {
        println!("local chaos: every order completed exactly once or failed with its reason");
        Ok(true)
    } else {
        println!("local chaos: INVARIANTS FAILED");
        Ok(false)
    }
}

async fn run_load(
    mut options: StackOptions,
    load: LoadOptions,
    fault_rate: f64,
) -> Result<bool, String> {
    options.api_port = 0;
    options.faults = FaultPlan {
        rate: fault_rate.clamp(0.0, 1.0),
        seed: load.seed,
        ..FaultPlan::NONE
    };
    options.state_dir = options.state_dir.join("load");
    local::logging::init(&options.state_dir.join("logs"))?;
    println!(
        "local load: {:.1} orders/s for {} s (faults on {:.0} % of the functions' AWS calls)",
        load.rate,
        load.duration.as_secs(),
        fault_rate * 100.0
    );
    let report = with_stack(options, async |stack: &Stack| load::run(stack, &load).await).await?;
    println!("{report}");
    Ok(report.sustained())
}

async fn run_bench(
    workspace: &Path,
    options: &StackOptions,
    quick: bool,
    out: &Path,
) -> Result<bool, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    let bench_options = local::bench::BenchOptions {
        quick,
        workspace: workspace.to_path_buf(),
        rust_binaries: target.join("release"),
        python: workspace.join(".venv-bench/bin/python"),
        moto_server: options.moto_server.clone(),
        state_dir: options.state_dir.join("bench"),
        seed: 1,
    };
    let prices_path = workspace.join("bench/prices.json");
    let prices: local::bench::report::Prices = serde_json::from_str(
        &std::fs::read_to_string(&prices_path)
            .map_err(|e| format!("{}: {e}", prices_path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", prices_path.display()))?;
    local::logging::init(&bench_options.state_dir.join("logs"))?;
    println!(
        "local bench: {} run, release builds, the emulator on loopback",
        if quick { "a quick" } else { "a full" }
    );
    let context = local::bench::context(&bench_options);
    let mut results = local::bench::run(bench_options).await?;
    results.context = context;
    let hot_path: Option<f64> = std::fs::read_to_string(out.join("hot_path.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v["stream_per_record_vs_borrowed_parse"].as_f64());
    let targets = results.targets(&prices, hot_path);
    let table = results.table(&prices);
    let mut report = format!("{table}\n");
    report.push_str(&results.pipeline_table(&prices));
    report.push('\n');
    report.push_str(&results.end_to_end_table(&prices));
    report.push_str(&format!(
        "\nPrices read {} ({}), {}.\n\n",
        prices.read_on, prices.region, prices.source
    ));
    report.push_str("| target | measured | |\n|---|---:|---|\n");
    for target in &targets {
        report.push_str(&format!(
            "| {} | {} | {} |\n",
            target.goal,
            target.measured,
            if target.met { "met" } else { "missed" }
        ));
    }
    report.push_str(&format!("\nCPU quota: {}.\n\n", results.quota));
    for (key, value) in &results.context {
        report.push_str(&format!("- {key}: {value}\n"));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let write = |name: &str, text: &str| {
        std::fs::write(out.join(name), text)
            .map_err(|e| format!("{}: {e}", out.join(name).display()))
    };
    write("results.md", &report)?;
    write(
        "results.json",
        &serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?,
    )?;
    write("chart.svg", &results.chart())?;
    println!("{report}");
    println!(
        "local bench: wrote {}/results.md, results.json and chart.svg",
        out.display()
    );
    Ok(true)
}

/// The order queue's visibility timeout in drills, in real seconds.
const DRILL_VISIBILITY_TIMEOUT: u64 = 12;

async fn run_drill(
    workspace: &Path,
    mut options: StackOptions,
    drill_options: local::drill::DrillOptions,
    time_scale: f64,
    out: &Path,
) -> Result<bool, String> {
    options.api_port = 0;
    options.observability = Some(Observability {
        time_scale,
        dashboard_port: 0,
    });
    // Deliberate local deviations: a failed message returns after 12 s (the template's
    // 60 s is six times the function's timeout; 12 s still outlives an invocation), and a
    // failed stream batch is retried after half a second.
    options.overrides = Overrides {
        visibility_timeout_seconds: Some(DRILL_VISIBILITY_TIMEOUT as u32),
    };
    options.stream_retry_delay = Duration::from_millis(500);
    options.state_dir = options.state_dir.join("drill");
    local::logging::init_with(
        &options.state_dir.join("logs"),
        tracing_subscriber::filter::LevelFilter::ERROR,
    )?;
    let names: Vec<&str> = local::drill::select(&drill_options.only, drill_options.quick)?
        .iter()
        .map(|d| d.name)
        .collect();
    println!(
        "local drill: {} at {time_scale}x simulated time, {} orders/s steady traffic: {}",
        if drill_options.quick {
            "the quick set"
        } else {
            "every drill"
        },
        drill_options.rate,
        names.join(", ")
    );
    let report = with_stack(options, async |stack: &Stack| {
        if let Some(url) = stack.dashboard_url() {
            println!("local drill: dashboard at {url} (alarm states at {url}alarms)");
        }
        local::drill::run(stack, &drill_options).await
    })
    .await?;
    println!("{report}");
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(
        out.join("drills.md"),
        format!("{}\n{report}", report.summary()),
    )
    .map_err(|e| format!("{}: {e}", out.join("drills.md").display()))?;
    std::fs::write(
        out.join("drills.json"),
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", out.join("drills.json").display()))?;
    let _ = workspace;
    if report.holds() {
        println!("local drill: every failure reached its alarm, and every runbook cleared it");
        Ok(true)
    } else {
        println!("local drill: DRILLS FAILED (see above)");
        Ok(false)
    }
}

fn down(options: &StackOptions) -> Result<(), String> {
    let pid_file = pid_file(options);
    let Ok(pid) = std::fs::read_to_string(&pid_file) else {
        println!("local: no stack is running (no {})", pid_file.display());
        return Ok(());
    };
    let pid = pid.trim().to_owned();
    let kill = |args: &[&str]| {
        std::process::Command::new("kill")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !kill(&["-TERM", &pid]) {
        let _ = std::fs::remove_file(&pid_file);
        println!("local: the stack (pid {pid}) was not running");
        return Ok(());
    }
    for _ in 0..150 {
        if !kill(&["-0", &pid]) {
            println!("local: stopped");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("the stack (pid {pid}) did not stop within 15 s"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let workspace = workspace();
    let options = match StackOptions::for_workspace(&workspace) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("local: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Up {
            port,
            api_key,
            no_build,
            time_scale,
            dashboard_port,
        } => match if no_build { Ok(()) } else { build(&workspace) } {
            Ok(()) => {
                let observability = Observability {
                    time_scale: time_scale.max(1.0),
                    dashboard_port,
                };
                up(options, port, api_key, observability)
                    .await
                    .map(|()| true)
            }
            Err(e) => Err(e),
        },
        Command::Demo {
            users,
            concurrency,
            duplicates,
            seed,
            port,
            timeout,
            no_build,
        } => match if no_build { Ok(()) } else { build(&workspace) } {
            Ok(()) => {
                let demo = DemoOptions {
                    users,
                    concurrency,
                    duplicate_share: duplicates.clamp(0.0, 1.0),
                    seed,
                    timeout: Duration::from_secs(timeout),
                    progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                };
                run_demo(options, demo, port).await
            }
            Err(e) => Err(e),
        },
        Command::Chaos {
            orders,
            concurrency,
            fault_rate,
            kills,
            duplicates,
            visibility_timeout,
            seed,
            poison,
            patience,
            no_build,
        } => match if no_build { Ok(()) } else { build(&workspace) } {
            Ok(()) => {
                let chaos = ChaosOptions {
                    orders,
                    concurrency,
                    duplicate_share: duplicates.clamp(0.0, 1.0),
                    kills,
                    seed,
                    poison,
                    patience: Duration::from_secs(patience),
                    progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                };
                run_chaos(options, chaos, fault_rate, visibility_timeout).await
            }
            Err(e) => Err(e),
        },
        Command::Load {
            rate,
            seconds,
            fault_rate,
            seed,
            no_build,
        } => match if no_build { Ok(()) } else { build(&workspace) } {
            Ok(()) => {
                let load = LoadOptions {
                    rate: rate.max(0.1),
                    duration: Duration::from_secs(seconds.max(1)),
                    seed,
                    ..LoadOptions::default()
                };
                run_load(options, load, fault_rate).await
            }
            Err(e) => Err(e),
        },
        Command::Bench { quick, out } => {
            let out = if out.is_absolute() {
                out
            } else {
                workspace.join(out)
            };
            run_bench(&workspace, &options, quick, &out).await
        }
        Command::Drill {
            names,
            quick,
            time_scale,
            rate,
            burst,
            browser,
            out,
            seed,
            no_build,
        } => match if no_build { Ok(()) } else { build(&workspace) } {
            Ok(()) => {
                let out = if out.is_absolute() {
                    out
                } else {
                    workspace.join(out)
                };
                let drill = local::drill::DrillOptions {
                    only: names,
                    quick,
                    rate,
                    burst,
                    ordersctl: options.binaries.join("ordersctl"),
                    runbooks: workspace.join("alarms/runbooks"),
                    settle: Duration::from_secs(DRILL_VISIBILITY_TIMEOUT + 2),
                    browser: browser.then(|| local::drill::BrowserCheck {
                        python: workspace.join(".venv-browser/bin/python"),
                        script: workspace.join("local/browser/check_dashboard.py"),
                        out: out.join("screenshots"),
                    }),
                    seed,
                };
                run_drill(&workspace, options, drill, time_scale.max(1.0), &out).await
            }
            Err(e) => Err(e),
        },
        Command::Down => down(&options).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("local: {e}");
            ExitCode::FAILURE
        }
    }
}
