//! Datapoints as CloudWatch keeps them: by namespace, name and exact dimension set,
//! aggregated per period with a statistic.
//!
//! Periods are aligned to the epoch (a 300 s period starts at every multiple of five
//! minutes), as `GetMetricData` aligns them. Every raw value is kept for the plane's
//! retention, so every statistic, percentiles included, is computed from the values
//! themselves.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::RwLock;

/// A metric as CloudWatch identifies it: namespace, name and the exact set of
/// dimensions (a metric with fewer or more dimensions is another metric).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct MetricId {
    /// `AWS/Lambda`, `EcommerceApi`, ...
    pub namespace: String,
    /// `Errors`, `OrdersPlaced`, ...
    pub name: String,
    /// Dimension names and values.
    pub dimensions: BTreeMap<String, String>,
}

impl MetricId {
    /// A metric with the given dimensions.
    pub fn new<'a>(
        namespace: &str,
        name: &str,
        dimensions: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            dimensions: dimensions
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

impl fmt::Display for MetricId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.namespace, self.name)?;
        for (name, value) in &self.dimensions {
            write!(f, " {name}={value}")?;
        }
        Ok(())
    }
}

/// A statistic the plane computes per period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    /// The sum of the values.
    Sum,
    /// Their mean.
    Average,
    /// The largest.
    Maximum,
    /// The smallest.
    Minimum,
    /// How many values there are.
    SampleCount,
    /// A percentile (`p99` is 99.0): the nearest-rank value.
    Percentile(f64),
}

/// A statistic the plane does not implement, named as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "statistic {0:?} is not implemented by the local plane (it computes Sum, Average, Maximum, Minimum, SampleCount and pNN)"
)]
pub struct UnsupportedStatistic(pub String);

impl std::str::FromStr for Statistic {
    type Err = UnsupportedStatistic;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unsupported = || UnsupportedStatistic(text.to_owned());
        match text {
            "Sum" => Ok(Self::Sum),
            "Average" => Ok(Self::Average),
            "Maximum" => Ok(Self::Maximum),
            "Minimum" => Ok(Self::Minimum),
            "SampleCount" => Ok(Self::SampleCount),
            other => {
                let number = other.strip_prefix('p').ok_or_else(unsupported)?;
                // pNN or pNN.NN; not the trimmed-mean or range forms (tm99, p(10:90)).
                if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    return Err(unsupported());
                }
                let percentile: f64 = number.parse().map_err(|_| unsupported())?;
                if percentile > 0.0 && percentile <= 100.0 {
                    Ok(Self::Percentile(percentile))
                } else {
                    Err(unsupported())
                }
            }
        }
    }
}

impl Statistic {
    /// The statistic of `values` (`None` for none).
    pub fn of(self, values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        Some(match self {
            Self::Sum => values.iter().sum(),
            Self::Average => values.iter().sum::<f64>() / n,
            Self::Maximum => values.iter().copied().fold(f64::MIN, f64::max),
            Self::Minimum => values.iter().copied().fold(f64::MAX, f64::min),
            Self::SampleCount => n,
            Self::Percentile(p) => {
                let mut sorted = values.to_vec();
                sorted.sort_by(f64::total_cmp);
                let rank = ((p / 100.0) * n).ceil().max(1.0) as usize;
                sorted[rank.min(sorted.len()) - 1]
            }
        })
    }
}

/// One value at a simulated time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Simulated epoch ms.
    pub at_ms: i64,
    /// The value.
    pub value: f64,
}

/// Where a period starts: the multiple of `period_ms` at or before `at_ms`.
pub fn period_start(at_ms: i64, period_ms: i64) -> i64 {
    at_ms.div_euclid(period_ms.max(1)) * period_ms.max(1)
}

/// Every datapoint the plane has, by metric.
#[derive(Debug)]
pub struct MetricStore {
    series: RwLock<BTreeMap<MetricId, Vec<Sample>>>,
    retention_ms: i64,
}

impl MetricStore {
    /// A store that keeps values for `retention_ms` of simulated time.
    pub fn new(retention_ms: i64) -> Self {
        Self {
            series: RwLock::new(BTreeMap::new()),
            retention_ms,
        }
    }

    /// Records a value.
    pub fn put(&self, metric: MetricId, at_ms: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        let Ok(mut series) = self.series.write() else {
            return;
        };
        let samples = series.entry(metric).or_default();
        // Values arrive nearly in order; keep them sorted for the range reads.
        let position = samples.partition_point(|s| s.at_ms <= at_ms);
        samples.insert(position, Sample { at_ms, value });
        let horizon = at_ms - self.retention_ms;
        if samples.first().is_some_and(|s| s.at_ms < horizon) {
            let keep = samples.partition_point(|s| s.at_ms < horizon);
            samples.drain(..keep);
        }
    }

    /// Every metric that has values.
    pub fn metrics(&self) -> Vec<MetricId> {
        self.series
            .read()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `metric` ever had a value (within retention).
    pub fn has(&self, metric: &MetricId) -> bool {
        self.series.read().is_ok_and(|s| s.contains_key(metric))
    }

    /// The statistic of `metric` for each period in `[start_ms, end_ms)` that has
    /// values, keyed by the period's start.
    pub fn aggregate(
        &self,
        metric: &MetricId,
        statistic: Statistic,
        period_ms: i64,
        start_ms: i64,
        end_ms: i64,
    ) -> BTreeMap<i64, f64> {
        let Ok(series) = self.series.read() else {
            return BTreeMap::new();
        };
        let Some(samples) = series.get(metric) else {
            return BTreeMap::new();
        };
        let first = samples.partition_point(|s| s.at_ms < start_ms);
        let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for sample in samples[first..].iter().take_while(|s| s.at_ms < end_ms) {
            buckets
                .entry(period_start(sample.at_ms, period_ms))
                .or_default()
                .push(sample.value);
        }
        buckets
            .into_iter()
            .filter_map(|(start, values)| Some((start, statistic.of(&values)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_parse_as_cloudwatch_spells_them_and_others_fail_loudly() {
        assert_eq!("Sum".parse::<Statistic>(), Ok(Statistic::Sum));
        assert_eq!("p99".parse::<Statistic>(), Ok(Statistic::Percentile(99.0)));
        assert_eq!(
            "p99.9".parse::<Statistic>(),
            Ok(Statistic::Percentile(99.9))
        );
        for unsupported in [
            "tm99", "IQM", "p(10:90)", "wm99", "p0", "p101", "sum", "TC(1:2)",
        ] {
            let err = unsupported.parse::<Statistic>().unwrap_err();
            assert!(err.to_string().contains(unsupported), "{err}");
        }
    }

    #[test]
    fn each_statistic_of_a_period() {
        let values = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(Statistic::Sum.of(&values), Some(10.0));
        assert_eq!(Statistic::Average.of(&values), Some(2.5));
        assert_eq!(Statistic::Maximum.of(&values), Some(4.0));
        assert_eq!(Statistic::Minimum.of(&values), Some(1.0));
        assert_eq!(Statistic::SampleCount.of(&values), Some(4.0));
        assert_eq!(Statistic::Percentile(50.0).of(&values), Some(2.0));
        assert_eq!(Statistic::Percentile(99.0).of(&values), Some(4.0));
        assert_eq!(Statistic::Sum.of(&[]), None);
        // Nearest rank over 100 values: p99 is the 99th smallest.
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(Statistic::Percentile(99.0).of(&hundred), Some(99.0));
    }

    #[test]
    fn periods_are_aligned_to_the_epoch_and_exact_dimension_sets_are_distinct() {
        let store = MetricStore::new(3_600_000);
        let errors = MetricId::new("AWS/Lambda", "Errors", [("FunctionName", "f")]);
        let bare = MetricId::new("AWS/Lambda", "Errors", []);
        store.put(errors.clone(), 60_000, 1.0);
        store.put(errors.clone(), 119_999, 2.0);
        store.put(errors.clone(), 120_000, 5.0);
        store.put(bare.clone(), 60_000, 7.0);
        let sums = store.aggregate(&errors, Statistic::Sum, 60_000, 0, 180_000);
        assert_eq!(sums, BTreeMap::from([(60_000, 3.0), (120_000, 5.0)]));
        assert_eq!(
            store.aggregate(&bare, Statistic::Sum, 60_000, 0, 180_000),
            BTreeMap::from([(60_000, 7.0)])
        );
        // The end is exclusive.
        assert_eq!(
            store.aggregate(&errors, Statistic::Sum, 60_000, 0, 120_000),
            BTreeMap::from([(60_000, 3.0)])
        );
    }

    #[test]
    fn values_older_than_the_retention_are_dropped() {
        let store = MetricStore::new(1_000);
        let m = MetricId::new("N", "M", []);
        store.put(m.clone(), 0, 1.0);
        store.put(m.clone(), 5_000, 1.0);
        assert_eq!(
            store.aggregate(&m, Statistic::SampleCount, 1_000, 0, 10_000),
            BTreeMap::from([(5_000, 1.0)])
        );
    }
}
