//! The local stack's own log: its warnings and errors (a poll that fails, a function
//! that crashes, a record set aside) go to stderr and, with its progress, to
//! `<state>/logs/local.log`. The functions log to their own files.

use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// Installs the process-wide subscriber: WARN and above to stderr, INFO and above of
/// the local stack (WARN of its dependencies) to `<log_dir>/local.log`.
///
/// # Errors
/// If the log file cannot be created or a subscriber is already installed.
pub fn init(log_dir: &Path) -> Result<(), String> {
    init_with(log_dir, LevelFilter::WARN)
}

/// Like [`init`], with `stderr` the least level written to stderr (drills break things
/// on purpose, so they write only errors there; the file keeps every warning).
///
/// # Errors
/// If the log file cannot be created or a subscriber is already installed.
pub fn init_with(log_dir: &Path, stderr: LevelFilter) -> Result<(), String> {
    std::fs::create_dir_all(log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
    let path = log_dir.join("local.log");
    let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let ours = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("local", LevelFilter::INFO);
    tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_filter(stderr),
        )
        .with(
            fmt::layer()
                .with_writer(Mutex::new(file))
                .with_ansi(false)
                .with_filter(ours),
        )
        .try_init()
        .map_err(|e| e.to_string())
}
