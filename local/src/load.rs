//! `local load`: a steady, open-loop stream of shoppers (a new one every 1/R seconds,
//! whatever the system does), then the same outside audit as `chaos`: how much the
//! local stack sustains, how long an order takes from placed to processed, and that
//! none was lost on the way.
//!
//! Sustained means the arrivals were all served and the pipeline kept up: the orders
//! placed in the last third of the run took about as long as those in the first. A
//! growing latency is a growing backlog.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::audit::{self, Audit, percentile};
use crate::client::ApiClient;
use crate::shoppers::{self, Patience, Tally, Workload};
use crate::stack::Stack;

/// What a load run does.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// New shoppers (orders) per second.
    pub rate: f64,
    /// How long shoppers arrive.
    pub duration: Duration,
    /// Shoppers in flight at most; an arrival beyond it is counted as not served.
    pub max_in_flight: usize,
    /// Seed of the shoppers' choices.
    pub seed: u64,
    /// How long the orders may make no progress before the rest count as lost.
    pub patience: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            rate: 10.0,
            duration: Duration::from_secs(60),
            max_in_flight: 256,
            seed: 3,
            patience: Duration::from_secs(90),
        }
    }
}

/// The outcome of a load run.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The arrival rate asked for.
    pub offered_rate: f64,
    /// How long shoppers arrived.
    pub duration: Duration,
    /// Shoppers that arrived.
    pub arrivals: usize,
    /// Arrivals dropped because `max_in_flight` shoppers were still busy.
    pub not_served: usize,
    /// The most shoppers in flight at once.
    pub max_in_flight: usize,
    /// Orders the API acknowledged.
    pub acknowledged: usize,
    /// Shoppers without an order, with why.
    pub refused: Vec<String>,
    /// Time from a shopper's arrival to its acknowledged order (cart + order requests),
    /// sorted, in ms.
    pub shopping_ms: Vec<u64>,
    /// From the first arrival to the last acknowledgement.
    pub placing: Duration,
    /// From the first arrival to the last order processed.
    pub processing: Duration,
    /// The audit.
    pub audit: Audit,
}

impl LoadReport {
    /// Orders placed per second.
    pub fn placed_per_second(&self) -> f64 {
        self.acknowledged as f64 / self.placing.as_secs_f64().max(0.001)
    }

    /// Orders processed per second, from the first arrival to the last completion.
    pub fn processed_per_second(&self) -> f64 {
        self.audit.completed_once as f64 / self.processing.as_secs_f64().max(0.001)
    }

    /// Median placed → processed latency of the orders placed in the first and in the
    /// last third of the run, in ms.
    pub fn lag_first_and_last(&self) -> (Option<i64>, Option<i64>) {
        let timeline = &self.audit.timeline;
        let third = timeline.len() / 3;
        let median = |slice: &[(i64, i64)]| {
            let mut latencies: Vec<i64> = slice.iter().map(|(_, l)| *l).collect();
            latencies.sort_unstable();
            percentile(&latencies, 50.0)
        };
        (
            median(&timeline[..third]),
            median(&timeline[timeline.len() - third..]),
        )
    }

    /// Every arrival was served and got its order, the audit holds, and the last
    /// third's orders took at most twice as long as the first third's (plus a second).
    pub fn sustained(&self) -> bool {
        let (first, last) = self.lag_first_and_last();
        let kept_up = match (first, last) {
            (Some(first), Some(last)) => last <= first * 2 + 1000,
            _ => false,
        };
        self.not_served == 0 && self.refused.is_empty() && self.audit.holds() && kept_up
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v} ms"));
        let shopping = |p| ms(percentile(&self.shopping_ms, p).map(|v| v as i64));
        let a = &self.audit;
        writeln!(
            f,
            "load: {:.1} orders/s offered for {} s: {} arrivals, {} not served (all {} clients busy)",
            self.offered_rate,
            self.duration.as_secs(),
            self.arrivals,
            self.not_served,
            self.max_in_flight
        )?;
        writeln!(f, "| measure | value |")?;
        writeln!(f, "|---|---:|")?;
        writeln!(
            f,
            "| orders placed (acknowledged) | {} ({:.1}/s) |",
            self.acknowledged,
            self.placed_per_second()
        )?;
        writeln!(
            f,
            "| orders processed exactly once | {} ({:.1}/s) |",
            a.completed_once,
            self.processed_per_second()
        )?;
        writeln!(
            f,
            "| client: arrival to acknowledged order, p50 / p95 / p99 | {} / {} / {} |",
            shopping(50.0),
            shopping(95.0),
            shopping(99.0)
        )?;
        writeln!(
            f,
            "| pipeline: placed to processed, p50 / p95 / p99 | {} / {} / {} |",
            ms(a.percentile(50.0)),
            ms(a.percentile(95.0)),
            ms(a.percentile(99.0))
        )?;
        let (first, last) = self.lag_first_and_last();
        writeln!(
            f,
            "| pipeline p50, first third / last third of the run | {} / {} |",
            ms(first),
            ms(last)
        )?;
        let lost = a.lost.len() + a.acknowledged_missing.len();
        writeln!(f, "| lost | {lost} |")?;
        writeln!(
            f,
            "| applied twice | {} |",
            a.applied_twice.len() + a.placed_twice.len() + a.inconsistent.len()
        )?;
        writeln!(f, "| refused | {} |", self.refused.len())?;
        for reason in self.refused.iter().take(5) {
            writeln!(f, "refused: {reason}")?;
        }
        write!(
            f,
            "load: {}",
            if self.sustained() {
                "sustained (every arrival served, nothing lost, no backlog growth)"
            } else {
                "NOT sustained at this rate"
            }
        )
    }
}

/// Runs the load against a started stack, then audits.
///
/// # Errors
/// A message if the catalogue cannot be loaded or the table read.
pub async fn run(stack: &Stack, options: &LoadOptions) -> Result<LoadReport, String> {
    let api = Arc::new(ApiClient::new(
        stack.api_url(),
        Some(stack.api_key().to_owned()),
    ));
    let products = shoppers::load_catalogue(&api).await?;
    let total = (options.rate * options.duration.as_secs_f64()).round() as usize;
    let plans = Workload {
        user_prefix: format!("load-{}", options.seed),
        duplicate_share: 0.0,
        seed: options.seed,
    }
    .plans(total, &products);

    let started = Instant::now();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(total);
    let mut not_served = 0;
    let period = Duration::from_secs_f64(1.0 / options.rate.max(0.001));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for plan in plans {
        ticks.tick().await;
        if in_flight.load(Ordering::Relaxed) >= options.max_in_flight {
            not_served += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (api, in_flight) = (Arc::clone(&api), Arc::clone(&in_flight));
        tasks.push(tokio::spawn(async move {
            let arrived = Instant::now();
            let shopped = shoppers::shop(api, plan, Patience::default()).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            (shopped, arrived.elapsed())
        }));
    }
    let mut report = LoadReport {
        offered_rate: options.rate,
        duration: options.duration,
        arrivals: total,
        not_served,
        max_in_flight: options.max_in_flight,
        ..LoadReport::default()
    };
    let mut tally = Tally::default();
    for task in tasks {
        match task.await {
            Ok((shopped, took)) => {
                if shopped.order_id.is_some() {
                    report.shopping_ms.push(took.as_millis() as u64);
                }
                tally.add(shopped);
            }
            Err(e) => tally.gave_up.push(e.to_string()),
        }
    }
    report.placing = started.elapsed();
    report.acknowledged = tally.acknowledged.len();
    report.refused = tally.gave_up;
    let acknowledged = tally.acknowledged;
    report.shopping_ms.sort_unstable();
    report.audit = audit::settle(stack, &acknowledged, true, options.patience, |_| {}).await?;
    let start_ms = started_epoch_ms(started);
    report.processing = report
        .audit
        .timeline
        .iter()
        .map(|(placed, latency)| placed + latency - start_ms)
        .max()
        .map_or(report.placing, |ms| Duration::from_millis(ms.max(0) as u64));
    Ok(report)
}

/// The epoch milliseconds of an `Instant` in the past.
fn started_epoch_ms(started: Instant) -> i64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    now_ms - started.elapsed().as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_backlog_is_not_sustained() {
        let audit = |latencies: Vec<i64>| Audit {
            completed_once: latencies.len(),
            timeline: latencies
                .iter()
                .enumerate()
                .map(|(i, l)| (i as i64, *l))
                .collect(),
            ..Audit::default()
        };
        let steady = LoadReport {
            audit: audit(vec![900, 1000, 1100, 950, 1000, 1200]),
            ..LoadReport::default()
        };
        assert!(steady.sustained());
        let growing = LoadReport {
            audit: audit(vec![900, 1000, 3000, 6000, 9000, 12000]),
            ..LoadReport::default()
        };
        assert!(!growing.sustained());
        let dropped = LoadReport {
            not_served: 1,
            ..steady.clone()
        };
        assert!(!dropped.sustained());
    }
}
