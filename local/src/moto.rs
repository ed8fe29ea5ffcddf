//! Starts and stops `moto_server`, the local AWS emulator.
//!
//! moto runs through `moto_serve.py` (embedded here), which fixes two defects of
//! moto's DynamoDB transactions under concurrent clients before starting moto's own
//! server: a cancelled transaction detached the table's stream from every open
//! iterator and dropped writes made while it ran. The file's docstring has the
//! details; `local/tests/emulator.rs` reproduces both.
//!
//! moto is a direct child: dropping [`Moto`] kills it and waits for it. A small
//! watchdog shell covers the other endings (a panic that aborts, `kill -9`): it waits
//! on a pipe from this process and stops moto when the pipe closes, so no emulator
//! outlives the process that started it.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the emulator could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    /// `moto_server` is not installed where it was looked for.
    #[error(
        "moto_server not found at {0}; run scripts/tools (it installs the pinned tools into .venv) or set MOTO_SERVER"
    )]
    NotInstalled(PathBuf),
    /// The process could not be started.
    #[error("cannot start moto_server: {0}")]
    Spawn(#[from] std::io::Error),
    /// It did not listen in time.
    #[error("moto_server did not listen on port {port} within {seconds} s; its log:\n{log}")]
    NotListening {
        /// The port it was given.
        port: u16,
        /// How long we waited.
        seconds: u64,
        /// What it printed.
        log: String,
    },
}

/// Where `moto_server` is: `$MOTO_SERVER`, else `<workspace>/.venv/bin/moto_server`.
///
/// # Errors
/// [`MotoError::NotInstalled`] if the file does not exist.
pub fn locate(workspace: &Path) -> Result<PathBuf, MotoError> {
    let path = std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join(".venv/bin/moto_server"));
    if path.exists() {
        Ok(path)
    } else {
        Err(MotoError::NotInstalled(path))
    }
}

/// The launcher: patches moto, then runs its server with our arguments.
const SERVE: &str = include_str!("moto_serve.py");

/// The Python that has moto installed: the one beside `moto_server` in its virtual
/// environment, else the interpreter its `#!` line names.
fn interpreter(moto_server: &Path) -> PathBuf {
    for name in ["python3", "python"] {
        let candidate = moto_server.with_file_name(name);
        if candidate.exists() {
            return candidate;
        }
    }
    std::fs::read_to_string(moto_server)
        .ok()
        .and_then(|text| {
            let first = text.lines().next()?.strip_prefix("#!")?.trim().to_owned();
            // `#!/usr/bin/env python3` names the program after env.
            let program = first.split_whitespace().last()?.to_owned();
            Some(PathBuf::from(program))
        })
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// A running emulator.
#[derive(Debug)]
pub struct Moto {
    endpoint: String,
    server: Child,
    watchdog: Option<Child>,
}

impl Moto {
    /// Starts `binary` on a free loopback port, writing its output to `log`, and waits
    /// until it accepts connections.
    ///
    /// # Errors
    /// [`MotoError`] if it cannot be started or does not listen within 30 s.
    pub fn start(binary: &Path, log: &Path) -> Result<Self, MotoError> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let output = std::fs::File::create(log)?;
        let server = Command::new(interpreter(binary))
            .arg("-c")
            .arg(SERVE)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()?;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(r#"cat >/dev/null; kill "$0" 2>/dev/null"#)
            .arg(server.id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn();
        let mut moto = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            server,
            watchdog: None,
        };
        moto.watchdog = Some(watchdog?);
        let limit = Duration::from_secs(30);
        let started = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if started.elapsed() > limit {
                let mut text = String::new();
                let _ = std::fs::File::open(log).and_then(|mut f| f.read_to_string(&mut text));
                return Err(MotoError::NotListening {
                    port,
                    seconds: limit.as_secs(),
                    log: text,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(moto)
    }

    /// The endpoint URL for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        if let Some(mut watchdog) = self.watchdog.take() {
            // Closing its stdin lets the watchdog finish (its kill finds nothing now).
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

/// One emulator for the whole process, started on first use: what a test binary
/// shares between its tests (each test names its own resources). It stops when the
/// process exits, through the watchdog.
///
/// # Errors
/// A message if the emulator cannot be started (the same message on every call).
pub fn shared(workspace: &Path) -> Result<&'static Moto, String> {
    static SHARED: std::sync::OnceLock<Result<Moto, String>> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            let log = std::env::temp_dir().join(format!("moto-{}.log", std::process::id()));
            locate(workspace)
                .and_then(|binary| Moto::start(&binary, &log))
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}
