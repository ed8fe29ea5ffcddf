//! The plane's one clock: simulated time that runs `scale` times faster than real
//! time, starting at the wall-clock time the plane started.
//!
//! Every datapoint, log event, alarm evaluation and period boundary of the plane is on
//! this clock. At scale 1 it is the wall clock; at `--time-scale 60` a five-minute
//! period passes in five real seconds. The stack's processes still run in real time,
//! so a real instant maps to simulated time through one linear map
//! ([`SimClock::at_real`]), and so does a real wait ([`SimClock::sim_duration`]).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Simulated time: `origin + elapsed real time x scale`.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    origin: Instant,
    /// Wall-clock epoch ms at `origin`; also simulated time at `origin`.
    origin_ms: i64,
    scale: f64,
}

impl SimClock {
    /// A clock that starts now, at the wall-clock time, and runs `scale` times faster
    /// (at least 1).
    pub fn new(scale: f64) -> Self {
        Self {
            origin: Instant::now(),
            origin_ms: wall_ms(),
            scale: if scale.is_finite() {
                scale.max(1.0)
            } else {
                1.0
            },
        }
    }

    /// How many times faster than real time it runs.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Simulated epoch milliseconds now.
    pub fn now_ms(&self) -> i64 {
        self.origin_ms + scaled(self.origin.elapsed(), self.scale)
    }

    /// The simulated time of a real wall-clock instant (epoch ms).
    pub fn at_real(&self, real_ms: i64) -> i64 {
        self.origin_ms + ((real_ms - self.origin_ms) as f64 * self.scale).round() as i64
    }

    /// A real duration as simulated time passes it (an age, a wait).
    pub fn sim_duration(&self, real: Duration) -> Duration {
        real.mul_f64(self.scale)
    }

    /// How long in real time a simulated duration takes.
    pub fn real_duration(&self, sim: Duration) -> Duration {
        sim.div_f64(self.scale)
    }
}

fn scaled(real: Duration, scale: f64) -> i64 {
    (real.as_secs_f64() * 1000.0 * scale).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_instants_and_waits_map_linearly() {
        let clock = SimClock::new(60.0);
        let start = clock.origin_ms;
        assert_eq!(clock.at_real(start), start);
        assert_eq!(clock.at_real(start + 1_000), start + 60_000);
        assert_eq!(
            clock.sim_duration(Duration::from_secs(5)),
            Duration::from_secs(300)
        );
        assert_eq!(
            clock.real_duration(Duration::from_secs(300)),
            Duration::from_secs(5)
        );
        assert!(clock.now_ms() >= start);
    }

    #[test]
    fn a_scale_below_one_or_not_a_number_is_real_time() {
        assert_eq!(SimClock::new(0.2).scale(), 1.0);
        assert_eq!(SimClock::new(f64::NAN).scale(), 1.0);
    }
}
