//! The wall clock, read one way: time since the Unix epoch, and its RFC 3339 form.
//!
//! Log timestamps, EMF timestamps, idempotency expiries and leases, and invocation
//! deadlines (which Lambda gives in epoch milliseconds) all read it here.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use middleware::clock;
//!
//! assert_eq!(
//!     clock::rfc3339_millis(Duration::from_millis(1_700_000_000_123)),
//!     "2023-11-14T22:13:20.123Z"
//! );
//! assert!(clock::epoch_ms() > 1_700_000_000_000);
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch (zero if the clock reads earlier).
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch, as Lambda's deadlines and EMF count them.
pub fn epoch_ms() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}

/// RFC 3339, UTC, with milliseconds (`2023-11-14T22:13:20.123Z`), without a date
/// library.
pub fn rfc3339_millis(since_epoch: Duration) -> String {
    let secs = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates_across_leap_years_and_centuries() {
        let at = |ms: u64| rfc3339_millis(Duration::from_millis(ms));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        assert_eq!(at(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn the_now_readings_agree() {
        let (ms, since) = (epoch_ms(), since_epoch());
        assert!(since.as_millis().abs_diff(u128::from(ms)) < 1_000);
    }
}
