//! A local stand-in for the X-Ray daemon: receives the functions' segment documents
//! over UDP (`AWS_XRAY_DAEMON_ADDRESS`) and writes one document per line to a file a
//! person (or a test) can read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Starts the daemon on a free loopback port; returns its address.
///
/// # Errors
/// If the socket cannot be bound or the file created.
pub async fn start(
    path: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let socket = UdpSocket::bind(("127.0.0.1", 0)).await?;
    let address = socket.local_addr()?;
    let mut file = std::fs::File::create(&path)?;
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 65_536];
        loop {
            tokio::select! {
                received = socket.recv(&mut buffer) => {
                    let Ok(size) = received else { continue };
                    // `{"format":"json","version":1}\n{document}`
                    let text = String::from_utf8_lossy(&buffer[..size]);
                    if let Some((_, document)) = text.split_once('\n') {
                        let _ = writeln!(file, "{}", document.trim());
                    }
                }
                () = crate::http::stopped(&mut shutdown) => return,
            }
        }
    });
    Ok(address)
}

/// What the documents in a daemon file add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Segment documents received.
    pub documents: usize,
    /// Distinct traces.
    pub traces: usize,
    /// Traces with documents from more than one function (`FunctionName` annotation).
    pub traces_across_functions: usize,
}

/// Reads a daemon file.
pub fn summarize(path: &Path) -> Summary {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut functions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut documents = 0;
    for document in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        documents += 1;
        let Some(trace) = document["trace_id"].as_str() else {
            continue;
        };
        let entry = functions.entry(trace.to_owned()).or_default();
        if let Some(function) = document["annotations"]["FunctionName"].as_str() {
            entry.insert(function.to_owned());
        }
    }
    Summary {
        documents,
        traces: functions.len(),
        traces_across_functions: functions.values().filter(|f| f.len() > 1).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_counted_across_functions() {
        let path = std::env::temp_dir().join(format!("xray-{}.log", uuid::Uuid::new_v4()));
        let doc = |trace: &str, function: &str| {
            format!(r#"{{"trace_id":"{trace}","annotations":{{"FunctionName":"{function}"}}}}"#)
        };
        let lines = [
            doc("t1", "producer"),
            doc("t1", "consumer"),
            doc("t2", "producer"),
            r#"{"trace_id":"t2"}"#.to_owned(),
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        assert_eq!(
            summarize(&path),
            Summary {
                documents: 4,
                traces: 2,
                traces_across_functions: 1
            }
        );
        std::fs::remove_file(path).unwrap();
    }
}
