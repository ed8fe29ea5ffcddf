//! Timestamps as the table and the API store them.

use std::time::SystemTime;

use aws_sdk_dynamodb::primitives::{DateTime, DateTimeFormat};

/// An instant, in the two forms the service stores: epoch milliseconds (for sort keys
/// and arithmetic) and RFC 3339 (for people and the API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    /// Milliseconds since the Unix epoch.
    pub epoch_ms: i64,
    /// The same instant in RFC 3339, UTC.
    pub rfc3339: String,
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// Converts a [`SystemTime`].
    pub fn from_system_time(time: SystemTime) -> Self {
        let time = DateTime::from(time);
        let epoch_ms = time.to_millis().unwrap_or(0);
        // Formatting only fails for years outside 0001-9999.
        let rfc3339 = time
            .fmt(DateTimeFormat::DateTime)
            .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"));
        Self { epoch_ms, rfc3339 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_both_forms_of_the_same_instant() {
        let t = Timestamp::from_system_time(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123));
        assert_eq!(t.epoch_ms, 1_700_000_000_123);
        assert_eq!(t.rfc3339, "2023-11-14T22:13:20.123Z");
    }
}
