//! Starts and stops `moto_server`, the local AWS emulator.
//!
//! moto runs under a small shell that waits on its standard input. When the owner of
//! [`Moto`] ends, however it ends, the pipe closes and the shell stops the server, so
//! no emulator outlives the process that started it.

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

/// A running emulator.
#[derive(Debug)]
pub struct Moto {
    endpoint: String,
    guard: Child,
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
        let guard = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 & pid=$!; cat >/dev/null; kill "$pid" 2>/dev/null; wait "$pid""#)
            .arg(binary)
            .arg(port.to_string())
            .arg(log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        let moto = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            guard,
        };
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
        // Closing the shell's stdin makes it stop moto and exit.
        drop(self.guard.stdin.take());
        let _ = self.guard.wait();
    }
}
