//! How one metric alarm decides its state from its datapoints: CloudWatch's rules
//! for `EvaluationPeriods` (N), `DatapointsToAlarm` (M) and `TreatMissingData`, as the
//! user guide states them ("Evaluating an alarm", "How alarm state is evaluated when
//! data is missing"), checked against every row of the guide's two tables.
//!
//! The alarm reads an *evaluation range* of more periods than N (the guide's tables
//! use five for N = 3; the plane reads N + 2). Then:
//!
//! - at least N datapoints exist in the range: the most recent N of them decide (the
//!   treatment of missing data is not used), ALARM if at least M breach;
//! - none exists: `missing` gives INSUFFICIENT_DATA, `ignore` keeps the state,
//!   `breaching` ALARM, `notBreaching` OK;
//! - some exist, fewer than N: the missing ones are filled, as few as possible, with
//!   the treatment. `breaching` and `notBreaching` count them as breaching or not.
//!   `missing` and `ignore` count only real datapoints: ALARM if at least M breach,
//!   OK if a real datapoint does not breach; otherwise (only breaching datapoints,
//!   fewer than M) `ignore` keeps the state and `missing` gives INSUFFICIENT_DATA,
//!   unless the last N periods are all empty, where CloudWatch goes on evaluating the
//!   last datapoints it had (the guide's row `X - - - -`: ALARM).
//!
//! The last rule is the plane's reading of the guide's examples, not a sentence of
//! the guide; the tests below hold it to every example row.

use std::fmt;

/// An alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    /// Within the threshold.
    Ok,
    /// Outside it.
    Alarm,
    /// Just started, or not enough data to decide.
    InsufficientData,
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        })
    }
}

/// `TreatMissingData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreatMissingData {
    /// `missing` (the default).
    Missing,
    /// `ignore`: keep the current state.
    Ignore,
    /// `breaching`.
    Breaching,
    /// `notBreaching`.
    NotBreaching,
}

/// A value the plane does not implement, named as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not implemented by the local plane")]
pub struct Unsupported {
    /// The property.
    pub what: &'static str,
    /// Its value.
    pub value: String,
}

impl std::str::FromStr for TreatMissingData {
    type Err = Unsupported;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "missing" => Ok(Self::Missing),
            "ignore" => Ok(Self::Ignore),
            "breaching" => Ok(Self::Breaching),
            "notBreaching" => Ok(Self::NotBreaching),
            other => Err(Unsupported {
                what: "TreatMissingData",
                value: other.to_owned(),
            }),
        }
    }
}

/// `ComparisonOperator` (the static-threshold ones; anomaly-detection bands are not
/// implemented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `>`.
    GreaterThanThreshold,
    /// `>=`.
    GreaterThanOrEqualToThreshold,
    /// `<`.
    LessThanThreshold,
    /// `<=`.
    LessThanOrEqualToThreshold,
}

impl std::str::FromStr for Comparison {
    type Err = Unsupported;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "GreaterThanThreshold" => Ok(Self::GreaterThanThreshold),
            "GreaterThanOrEqualToThreshold" => Ok(Self::GreaterThanOrEqualToThreshold),
            "LessThanThreshold" => Ok(Self::LessThanThreshold),
            "LessThanOrEqualToThreshold" => Ok(Self::LessThanOrEqualToThreshold),
            other => Err(Unsupported {
                what: "ComparisonOperator",
                value: other.to_owned(),
            }),
        }
    }
}

impl Comparison {
    /// Whether `value` breaches `threshold`.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::GreaterThanThreshold => value > threshold,
            Self::GreaterThanOrEqualToThreshold => value >= threshold,
            Self::LessThanThreshold => value < threshold,
            Self::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    /// The operator as a symbol, for reasons.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::GreaterThanThreshold => ">",
            Self::GreaterThanOrEqualToThreshold => ">=",
            Self::LessThanThreshold => "<",
            Self::LessThanOrEqualToThreshold => "<=",
        }
    }
}

/// The rule an alarm applies to its datapoints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// The threshold.
    pub threshold: f64,
    /// How a datapoint is compared with it.
    pub comparison: Comparison,
    /// N.
    pub evaluation_periods: usize,
    /// M.
    pub datapoints_to_alarm: usize,
    /// What a missing datapoint counts as.
    pub treat_missing_data: TreatMissingData,
}

impl Rule {
    /// How many periods the alarm reads: N + 2.
    pub fn evaluation_range(&self) -> usize {
        self.evaluation_periods + 2
    }

    /// The state `range` leads to (its datapoints oldest first, `None` for a missing
    /// one); `None` keeps the current state. With the reason, as CloudWatch writes one.
    pub fn decide(&self, range: &[Option<f64>]) -> (Option<AlarmState>, String) {
        let n = self.evaluation_periods.max(1);
        let m = self.datapoints_to_alarm.clamp(1, n);
        let existing: Vec<f64> = range.iter().flatten().copied().collect();
        let breaches = |values: &[f64]| {
            values
                .iter()
                .filter(|v| self.comparison.breaches(**v, self.threshold))
                .count()
        };
        let shown = |values: &[f64]| {
            values
                .iter()
                .map(|v| format!("{v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let threshold = format!("{} {}", self.comparison.symbol(), self.threshold);
        if existing.len() >= n {
            let recent = &existing[existing.len() - n..];
            let breaching = breaches(recent);
            let state = if breaching >= m {
                AlarmState::Alarm
            } else {
                AlarmState::Ok
            };
            return (
                Some(state),
                format!(
                    "{breaching} of the last {n} datapoints [{}] {threshold} (needs {m})",
                    shown(recent)
                ),
            );
        }
        let filled = n - existing.len();
        if existing.is_empty() {
            let state = match self.treat_missing_data {
                TreatMissingData::Missing => Some(AlarmState::InsufficientData),
                TreatMissingData::Ignore => None,
                TreatMissingData::Breaching => Some(AlarmState::Alarm),
                TreatMissingData::NotBreaching => Some(AlarmState::Ok),
            };
            return (
                state,
                format!("no datapoint in the last {} periods", range.len()),
            );
        }
        let breaching = breaches(&existing);
        let reason = format!(
            "{breaching} of {} datapoints [{}] {threshold}, {filled} missing treated as {:?} (needs {m} of {n})",
            existing.len(),
            shown(&existing),
            self.treat_missing_data
        );
        let state = match self.treat_missing_data {
            TreatMissingData::Breaching if breaching + filled >= m => Some(AlarmState::Alarm),
            TreatMissingData::Breaching | TreatMissingData::NotBreaching => {
                Some(if breaching >= m {
                    AlarmState::Alarm
                } else {
                    AlarmState::Ok
                })
            }
            TreatMissingData::Missing | TreatMissingData::Ignore => {
                if breaching >= m {
                    Some(AlarmState::Alarm)
                } else if breaching < existing.len() {
                    Some(AlarmState::Ok)
                } else if self.treat_missing_data == TreatMissingData::Ignore {
                    None
                } else if range.iter().rev().take(n).all(Option::is_none) {
                    Some(AlarmState::Alarm)
                } else {
                    Some(AlarmState::InsufficientData)
                }
            }
        };
        (state, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of the guide: `0` a datapoint within the threshold, `X` one breaching
    /// it, `-` a missing one, oldest first.
    fn points(row: &str) -> Vec<Option<f64>> {
        row.split_whitespace()
            .map(|p| match p {
                "0" => Some(0.0),
                "X" => Some(5.0),
                _ => None,
            })
            .collect()
    }

    fn rule(m: usize, n: usize, treat: TreatMissingData) -> Rule {
        Rule {
            threshold: 1.0,
            comparison: Comparison::GreaterThanThreshold,
            evaluation_periods: n,
            datapoints_to_alarm: m,
            treat_missing_data: treat,
        }
    }

    const OK: Option<AlarmState> = Some(AlarmState::Ok);
    const ALARM: Option<AlarmState> = Some(AlarmState::Alarm);
    const INSUFFICIENT: Option<AlarmState> = Some(AlarmState::InsufficientData);
    const RETAIN: Option<AlarmState> = None;

    /// Each row: datapoints, then the state for MISSING, IGNORE, BREACHING and
    /// NOT BREACHING, as the guide's tables give them.
    fn check(m: usize, n: usize, rows: &[(&str, [Option<AlarmState>; 4])]) {
        use TreatMissingData::*;
        for (row, expected) in rows {
            let range = points(row);
            assert_eq!(range.len(), rule(m, n, Missing).evaluation_range());
            for (treat, want) in [Missing, Ignore, Breaching, NotBreaching]
                .into_iter()
                .zip(expected)
            {
                let (got, reason) = rule(m, n, treat).decide(&range);
                assert_eq!(got, *want, "{m} of {n}, {row}, {treat:?}: {reason}");
            }
        }
    }

    #[test]
    fn the_guides_table_for_three_of_three() {
        check(
            3,
            3,
            &[
                ("0 - X - X", [OK, OK, OK, OK]),
                ("0 - - - -", [OK, OK, OK, OK]),
                ("- - - - -", [INSUFFICIENT, RETAIN, ALARM, OK]),
                ("0 X X - X", [ALARM, ALARM, ALARM, ALARM]),
                ("- - - - X", [INSUFFICIENT, RETAIN, ALARM, OK]),
                ("X - - - -", [ALARM, RETAIN, ALARM, OK]),
            ],
        );
    }

    #[test]
    fn the_guides_table_for_two_of_three() {
        check(
            2,
            3,
            &[
                ("0 - X - X", [ALARM, ALARM, ALARM, ALARM]),
                ("0 0 X 0 X", [ALARM, ALARM, ALARM, ALARM]),
                ("0 - X - -", [OK, OK, ALARM, OK]),
                ("- - - - 0", [OK, OK, ALARM, OK]),
                ("- - - - X", [INSUFFICIENT, RETAIN, ALARM, OK]),
            ],
        );
    }

    #[test]
    fn the_guides_figure_three_of_three_over_time() {
        // Threshold 3; the alarm fires in periods three to five, clears at six, and a
        // single breach at nine does not fire it.
        let rule = Rule {
            threshold: 3.0,
            ..rule(3, 3, TreatMissingData::Missing)
        };
        let values = [1.0, 2.0, 4.0, 5.0, 4.0, 2.0, 1.0, 1.0, 4.0, 2.0];
        let states: Vec<_> = (3..=values.len())
            .map(|end| {
                let range: Vec<_> = values[end.saturating_sub(5)..end]
                    .iter()
                    .map(|v| Some(*v))
                    .collect();
                rule.decide(&range).0
            })
            .collect();
        assert_eq!(
            states,
            [OK, OK, ALARM, OK, OK, OK, OK, OK],
            "periods 3..=10"
        );
    }

    #[test]
    fn comparisons_and_properties_parse_and_others_fail_loudly() {
        assert!(Comparison::GreaterThanOrEqualToThreshold.breaches(1.0, 1.0));
        assert!(!Comparison::GreaterThanThreshold.breaches(1.0, 1.0));
        assert!(Comparison::LessThanThreshold.breaches(0.5, 1.0));
        assert!(Comparison::LessThanOrEqualToThreshold.breaches(1.0, 1.0));
        let err = "LessThanLowerOrGreaterThanUpperThreshold"
            .parse::<Comparison>()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("LessThanLowerOrGreaterThanUpperThreshold")
        );
        assert!("notbreaching".parse::<TreatMissingData>().is_err());
    }
}
