//! How an event source's polling is going: every failed poll is counted and logged, a
//! streak of failures is escalated, and the summaries (`demo`, `chaos`, `load`) print
//! any source whose polls kept failing, so a stalled source is never silent.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Consecutive failures after which a source is reported as failing (not flaky).
pub const KEPT_FAILING: u64 = 5;

/// Poll outcomes of one event source.
#[derive(Debug, Default)]
pub struct PollHealth {
    /// Polls that succeeded.
    pub polls: AtomicU64,
    /// Polls that failed.
    pub failures: AtomicU64,
    /// Failures since the last success.
    pub streak: AtomicU64,
    /// The longest streak seen.
    pub longest_streak: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl PollHealth {
    /// Records a successful poll; logs a recovery after a streak.
    pub fn succeeded(&self, source: &str) {
        self.polls.fetch_add(1, Ordering::Relaxed);
        let streak = self.streak.swap(0, Ordering::Relaxed);
        if streak >= KEPT_FAILING {
            tracing::warn!(source, failures = streak, "polling recovered");
        }
    }

    /// Records a failed poll and logs it: a warning for the first of a streak, an error
    /// once the streak reaches [`KEPT_FAILING`] and every [`KEPT_FAILING`] after.
    pub fn failed(&self, source: &str, error: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let streak = self.streak.fetch_add(1, Ordering::Relaxed) + 1;
        self.longest_streak.fetch_max(streak, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_owned());
        }
        if streak == 1 {
            tracing::warn!(source, error, "poll failed; retrying");
        } else if streak.is_multiple_of(KEPT_FAILING) {
            tracing::error!(source, error, failures = streak, "polling keeps failing");
        }
    }

    /// The last error seen, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Whether some streak of failures reached [`KEPT_FAILING`].
    pub fn kept_failing(&self) -> bool {
        self.longest_streak.load(Ordering::Relaxed) >= KEPT_FAILING
    }

    /// One line for a summary: `name: N polls, M failed (longest streak S; last: ...)`.
    pub fn summary(&self, source: &str) -> String {
        let failures = self.failures.load(Ordering::Relaxed);
        let mut line = format!(
            "{source}: {} polls, {failures} failed",
            self.polls.load(Ordering::Relaxed) + failures
        );
        if failures > 0 {
            line.push_str(&format!(
                " (longest streak {}; last: {})",
                self.longest_streak.load(Ordering::Relaxed),
                self.last_error().unwrap_or_default()
            ));
        }
        line
    }
}

/// Summary lines (from `Stack::polling`), those of a source that kept failing flagged.
pub fn flagged(lines: &[(String, bool)]) -> Vec<String> {
    lines
        .iter()
        .map(|(line, kept_failing)| {
            if *kept_failing {
                format!("{line}   <- KEPT FAILING")
            } else {
                line.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streak_is_counted_and_reported_until_a_success_ends_it() {
        let health = PollHealth::default();
        for _ in 0..KEPT_FAILING {
            health.failed("s", "connection refused");
        }
        assert!(health.kept_failing());
        health.succeeded("s");
        assert_eq!(health.streak.load(Ordering::Relaxed), 0);
        assert_eq!(
            health.summary("s"),
            format!(
                "s: {} polls, {KEPT_FAILING} failed (longest streak {KEPT_FAILING}; last: connection refused)",
                KEPT_FAILING + 1
            )
        );
        let flaky = PollHealth::default();
        flaky.failed("s", "reset");
        flaky.succeeded("s");
        assert!(!flaky.kept_failing());
    }
}
