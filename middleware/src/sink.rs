//! Where log lines and metric blobs go: stdout in Lambda, a buffer in tests.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A line-oriented output.
#[derive(Clone, Default)]
pub enum Sink {
    /// Standard output, which Lambda sends to CloudWatch Logs.
    #[default]
    Stdout,
    /// An in-memory buffer.
    Buffer(Arc<Mutex<Vec<u8>>>),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Stdout => "Stdout",
            Self::Buffer(_) => "Buffer",
        })
    }
}

impl Sink {
    /// A sink into a fresh buffer, and the buffer.
    pub fn buffer() -> (Self, Arc<Mutex<Vec<u8>>>) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        (Self::Buffer(Arc::clone(&buffer)), buffer)
    }

    /// Writes one line (a newline is added).
    pub fn write_line(&self, line: &str) {
        match self {
            Self::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            Self::Buffer(buffer) => {
                if let Ok(mut buffer) = buffer.lock() {
                    buffer.extend_from_slice(line.as_bytes());
                    buffer.push(b'\n');
                }
            }
        }
    }
}
