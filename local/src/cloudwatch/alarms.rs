//! The template's alarms, running: each metric alarm is evaluated every simulated
//! minute over its evaluation range ([`super::alarm::Rule`]), composites after them;
//! every state change is kept in the alarm's history and, where the alarm has actions
//! for the new state, written to the local topic log as the SNS notification
//! CloudWatch would publish.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;

use super::alarm::AlarmState;
use super::definitions::{AlarmDefinition, AlarmKind, MetricAlarm, QuerySource};
use super::math::{self, Series};
use super::store::{MetricId, MetricStore, period_start};

/// One state change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// Simulated epoch ms.
    pub at_ms: i64,
    /// The state before.
    pub from: AlarmState,
    /// The state after.
    pub to: AlarmState,
    /// Why.
    pub reason: String,
}

/// An alarm's state as scripts and the page see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmView {
    /// The alarm's name.
    pub name: String,
    /// Its logical id in the template.
    pub logical_id: String,
    /// Its ARN.
    pub arn: String,
    /// `metric` or `composite`.
    pub kind: &'static str,
    /// The description (it links the runbook).
    pub description: String,
    /// The current state.
    pub state: AlarmState,
    /// Why it is in that state.
    pub reason: String,
    /// When it last changed (simulated epoch ms).
    pub updated_ms: i64,
    /// Every change, oldest first.
    pub history: Vec<Transition>,
    /// Metrics the alarm reads that the local stack does not produce.
    pub not_produced: Vec<String>,
    /// The value compared with the threshold for each period of the last evaluation,
    /// oldest first (`None` where missing).
    pub last_range: Vec<(i64, Option<f64>)>,
    /// What it evaluates, in words.
    pub condition: String,
}

#[derive(Debug)]
struct Running {
    definition: AlarmDefinition,
    view: AlarmView,
}

/// The alarms and their states.
#[derive(Debug)]
pub struct AlarmSet {
    alarms: Mutex<Vec<Running>>,
    topic_log: Option<PathBuf>,
    region: String,
}

/// Evaluates a metric alarm's queries over `periods`; the returned series.
///
/// # Errors
/// A message if an expression cannot be evaluated.
pub fn returned_series(
    alarm: &MetricAlarm,
    store: &MetricStore,
    periods: &[i64],
) -> Result<Series, String> {
    let period_ms = alarm.period_s * 1000;
    let (Some(&first), Some(&last)) = (periods.first(), periods.last()) else {
        return Ok(Series::new());
    };
    let mut values: HashMap<String, Series> = HashMap::new();
    let mut pending: Vec<_> = alarm.queries.iter().collect();
    // Expressions may read other expressions: evaluate as their inputs become ready.
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for query in pending {
            match &query.source {
                QuerySource::Metric {
                    metric, statistic, ..
                } => {
                    let series =
                        store.aggregate(metric, *statistic, period_ms, first, last + period_ms);
                    values.insert(query.id.clone(), series);
                }
                QuerySource::Expression { text, expr } => {
                    if expr.ids().iter().all(|id| values.contains_key(*id)) {
                        let series = math::evaluate(text, expr, &values, periods)
                            .map_err(|e| e.to_string())?;
                        values.insert(query.id.clone(), series);
                    } else {
                        rest.push(query);
                    }
                }
            }
        }
        if rest.len() == before {
            let ids: Vec<_> = rest.iter().map(|q| q.id.as_str()).collect();
            return Err(format!(
                "expressions {ids:?} read ids that no query defines, or each other"
            ));
        }
        pending = rest;
    }
    let returned = alarm
        .queries
        .iter()
        .find(|q| q.return_data)
        .and_then(|q| values.remove(&q.id))
        .unwrap_or_default();
    Ok(returned)
}

fn condition(definition: &AlarmDefinition) -> String {
    match &definition.kind {
        AlarmKind::Composite { text, .. } => text.clone(),
        AlarmKind::Metric(alarm) => {
            let returned = alarm.queries.iter().find(|q| q.return_data);
            let what = match returned.map(|q| &q.source) {
                Some(QuerySource::Expression { text, .. }) => text.clone(),
                Some(QuerySource::Metric {
                    metric, statistic, ..
                }) => format!("{statistic:?} of {metric}"),
                None => String::new(),
            };
            format!(
                "{what} {} {} for {} of {} periods of {} s (missing data: {:?})",
                alarm.rule.comparison.symbol(),
                alarm.rule.threshold,
                alarm.rule.datapoints_to_alarm,
                alarm.rule.evaluation_periods,
                alarm.period_s,
                alarm.rule.treat_missing_data
            )
        }
    }
}

/// The metrics an alarm reads.
pub fn metrics_of(definition: &AlarmDefinition) -> Vec<&MetricId> {
    match &definition.kind {
        AlarmKind::Composite { .. } => Vec::new(),
        AlarmKind::Metric(alarm) => alarm
            .queries
            .iter()
            .filter_map(|q| match &q.source {
                QuerySource::Metric { metric, .. } => Some(metric),
                QuerySource::Expression { .. } => None,
            })
            .collect(),
    }
}

impl AlarmSet {
    /// The alarms, each INSUFFICIENT_DATA until its first evaluation. `produced` says
    /// whether the local stack produces a metric.
    pub fn new(
        definitions: Vec<AlarmDefinition>,
        produced: &dyn Fn(&MetricId) -> bool,
        topic_log: Option<PathBuf>,
        region: &str,
        now_ms: i64,
    ) -> Self {
        let alarms = definitions
            .into_iter()
            .map(|definition| {
                let not_produced = metrics_of(&definition)
                    .into_iter()
                    .filter(|m| !produced(m))
                    .map(ToString::to_string)
                    .collect();
                let view = AlarmView {
                    name: definition.name.clone(),
                    logical_id: definition.logical_id.clone(),
                    arn: definition.arn.clone(),
                    kind: match definition.kind {
                        AlarmKind::Metric(_) => "metric",
                        AlarmKind::Composite { .. } => "composite",
                    },
                    description: definition.description.clone(),
                    state: AlarmState::InsufficientData,
                    reason: "Unchecked: initial alarm creation".to_owned(),
                    updated_ms: now_ms,
                    history: Vec::new(),
                    not_produced,
                    last_range: Vec::new(),
                    condition: condition(&definition),
                };
                Running { definition, view }
            })
            .collect();
        Self {
            alarms: Mutex::new(alarms),
            topic_log,
            region: region.to_owned(),
        }
    }

    /// Every alarm's state.
    pub fn views(&self) -> Vec<AlarmView> {
        self.alarms
            .lock()
            .map(|a| a.iter().map(|r| r.view.clone()).collect())
            .unwrap_or_default()
    }

    /// An alarm by name, logical id or ARN.
    pub fn view(&self, name: &str) -> Option<AlarmView> {
        self.views()
            .into_iter()
            .find(|v| v.name == name || v.logical_id == name || v.arn == name)
    }

    /// Evaluates every alarm at `now_ms`; the changes, as (alarm name, transition).
    pub fn evaluate(&self, store: &MetricStore, now_ms: i64) -> Vec<(String, Transition)> {
        let Ok(mut alarms) = self.alarms.lock() else {
            return Vec::new();
        };
        let mut changes = Vec::new();
        for running in alarms.iter_mut() {
            let AlarmKind::Metric(alarm) = &running.definition.kind else {
                continue;
            };
            let period_ms = alarm.period_s * 1000;
            // The periods of the evaluation range: the complete ones before now.
            let end = period_start(now_ms, period_ms);
            let count = alarm.rule.evaluation_range() as i64;
            let periods: Vec<i64> = (1..=count).rev().map(|i| end - i * period_ms).collect();
            let (decision, reason) = match returned_series(alarm, store, &periods) {
                Ok(series) => {
                    let range: Vec<Option<f64>> =
                        periods.iter().map(|p| series.get(p).copied()).collect();
                    running.view.last_range = periods.iter().copied().zip(range.clone()).collect();
                    alarm.rule.decide(&range)
                }
                Err(e) => (None, format!("cannot evaluate: {e}")),
            };
            if let Some(state) = decision
                && let Some(t) = transition(&mut running.view, state, reason, now_ms)
            {
                changes.push((running.view.name.clone(), t));
            }
        }
        // Composites read the states just decided.
        let states: HashMap<String, AlarmState> = alarms
            .iter()
            .flat_map(|r| {
                [
                    (r.view.name.clone(), r.view.state),
                    (r.view.arn.clone(), r.view.state),
                ]
            })
            .collect();
        for running in alarms.iter_mut() {
            let AlarmKind::Composite { rule, .. } = &running.definition.kind else {
                continue;
            };
            let holds = rule.holds(&|name| states.get(name).copied());
            let firing: Vec<&str> = rule
                .alarms()
                .into_iter()
                .filter(|name| states.get(*name) == Some(&AlarmState::Alarm))
                .collect();
            let (state, reason) = if holds {
                (
                    AlarmState::Alarm,
                    format!("the rule holds; in ALARM: {}", firing.join(", ")),
                )
            } else {
                (AlarmState::Ok, "the rule does not hold".to_owned())
            };
            if let Some(t) = transition(&mut running.view, state, reason, now_ms) {
                changes.push((running.view.name.clone(), t));
            }
        }
        for (name, transition) in &changes {
            if let Some(running) = alarms.iter().find(|r| &r.view.name == name) {
                self.notify(&running.definition, transition);
            }
        }
        changes
    }

    fn notify(&self, definition: &AlarmDefinition, transition: &Transition) {
        let Some(path) = &self.topic_log else {
            return;
        };
        let topics = definition
            .actions
            .get(&transition.to.to_string())
            .cloned()
            .unwrap_or_default();
        let time = super::rfc3339(transition.at_ms);
        for topic in topics {
            let message = serde_json::json!({
                "AlarmName": definition.name,
                "AlarmDescription": definition.description,
                "AlarmArn": definition.arn,
                "NewStateValue": transition.to,
                "NewStateReason": transition.reason,
                "OldStateValue": transition.from,
                "StateChangeTime": time,
                "Region": self.region,
            });
            let line = serde_json::json!({
                "Type": "Notification",
                "TopicArn": topic,
                "Subject": format!("{}: \"{}\" in {}", transition.to, definition.name, self.region),
                "Message": message.to_string(),
                "Timestamp": time,
            });
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| writeln!(file, "{line}"));
            if let Err(e) = written {
                tracing::error!(path = %path.display(), error = %e, "cannot write the alarm topic log");
            }
        }
    }

    /// The first period in `[from_ms, to_ms)` whose value breaches an alarm's
    /// threshold (its start, simulated ms), with the alarm's period and evaluation
    /// periods: when the failure became visible to the alarm. `None` for a composite,
    /// an unknown alarm, or no breach.
    pub fn first_breach(
        &self,
        name: &str,
        store: &MetricStore,
        from_ms: i64,
        to_ms: i64,
    ) -> Option<(i64, i64, usize)> {
        let alarms = self.alarms.lock().ok()?;
        let running = alarms
            .iter()
            .find(|r| r.view.name == name || r.view.logical_id == name || r.view.arn == name)?;
        let AlarmKind::Metric(alarm) = &running.definition.kind else {
            return None;
        };
        let period_ms = alarm.period_s * 1000;
        let periods: Vec<i64> = (period_start(from_ms, period_ms)..to_ms)
            .step_by(period_ms.max(1) as usize)
            .collect();
        let series = returned_series(alarm, store, &periods).ok()?;
        series
            .iter()
            .find(|(_, v)| alarm.rule.comparison.breaches(**v, alarm.rule.threshold))
            .map(|(start, _)| (*start, period_ms, alarm.rule.evaluation_periods))
    }

    /// The alarms' names by logical id.
    pub fn names(&self) -> BTreeMap<String, String> {
        self.views()
            .into_iter()
            .map(|v| (v.logical_id, v.name))
            .collect()
    }
}

fn transition(
    view: &mut AlarmView,
    state: AlarmState,
    reason: String,
    now_ms: i64,
) -> Option<Transition> {
    if view.state == state {
        view.reason = reason;
        return None;
    }
    let t = Transition {
        at_ms: now_ms,
        from: view.state,
        to: state,
        reason: reason.clone(),
    };
    view.state = state;
    view.reason = reason;
    view.updated_ms = now_ms;
    view.history.push(t.clone());
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudwatch::definitions::{self, Names};

    fn template() -> serde_norway::Value {
        serde_norway::from_str(
            r#"
Resources:
  Dlq:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: dead letters
      Metrics:
        - { Id: a, ReturnData: false, MetricStat: { Metric: { Namespace: AWS/SQS, MetricName: Depth, Dimensions: [{ Name: QueueName, Value: a }] }, Period: 60, Stat: Maximum } }
        - { Id: b, ReturnData: false, MetricStat: { Metric: { Namespace: AWS/SQS, MetricName: Depth, Dimensions: [{ Name: QueueName, Value: b }] }, Period: 60, Stat: Maximum } }
        - { Id: total, Expression: "FILL(a, 0) + FILL(b, 0)" }
      EvaluationPeriods: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
      AlarmActions: [!Ref Topic]
      OKActions: [!Ref Topic]
  Errors:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/Lambda
      MetricName: Errors
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 3
      DatapointsToAlarm: 2
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
  Any:
    Type: AWS::CloudWatch::CompositeAlarm
    Properties:
      AlarmRule: !Sub 'ALARM("${Dlq}") OR ALARM("${Errors}")'
      AlarmActions: [!Ref Topic]
"#,
        )
        .unwrap()
    }

    fn set(topic: Option<PathBuf>) -> AlarmSet {
        let mut names = Names::default();
        for id in ["Dlq", "Errors", "Any"] {
            names.reference(id, format!("local-{id}"));
            names.attribute(id, "Arn", format!("arn:local:{id}"));
        }
        names.reference("Topic", "arn:aws:sns:local:topic");
        let definitions = definitions::alarms(&template(), &names).unwrap();
        let produced = |m: &MetricId| m.name != "Errors";
        AlarmSet::new(definitions, &produced, topic, "eu-west-1", 0)
    }

    const MINUTE: i64 = 60_000;

    #[test]
    fn a_fill_alarm_fires_on_one_period_and_clears_and_notifies_its_topic() {
        let dir = std::env::temp_dir().join(format!("alarms-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let topic = dir.join("topic.log");
        let alarms = set(Some(topic.clone()));
        let store = MetricStore::new(i64::MAX / 4);
        // No data at all: FILL makes zeros, so OK rather than INSUFFICIENT_DATA.
        alarms.evaluate(&store, 10 * MINUTE);
        assert_eq!(alarms.view("Dlq").unwrap().state, AlarmState::Ok);
        store.put(
            MetricId::new("AWS/SQS", "Depth", [("QueueName", "b")]),
            10 * MINUTE + 5,
            1.0,
        );
        // The period is not complete yet: still OK.
        alarms.evaluate(&store, 10 * MINUTE + 30_000);
        assert_eq!(alarms.view("Dlq").unwrap().state, AlarmState::Ok);
        let changes = alarms.evaluate(&store, 11 * MINUTE + 1);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(alarms.view("local-Dlq").unwrap().state, AlarmState::Alarm);
        assert_eq!(
            alarms.view("arn:local:Any").unwrap().state,
            AlarmState::Alarm
        );
        store.put(
            MetricId::new("AWS/SQS", "Depth", [("QueueName", "b")]),
            11 * MINUTE + 5,
            0.0,
        );
        alarms.evaluate(&store, 12 * MINUTE + 1);
        let dlq = alarms.view("Dlq").unwrap();
        assert_eq!(dlq.state, AlarmState::Ok);
        assert_eq!(
            dlq.history.iter().map(|t| t.to).collect::<Vec<_>>(),
            [AlarmState::Ok, AlarmState::Alarm, AlarmState::Ok]
        );
        let log = std::fs::read_to_string(&topic).unwrap();
        let subjects: Vec<String> = log
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["Subject"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        // Dlq's OK, ALARM, OK and the composite's ALARM (it has no OK action).
        assert_eq!(subjects.len(), 4, "{subjects:?}");
        assert!(
            subjects
                .iter()
                .any(|s| s.starts_with("ALARM: \"local-Any\""))
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_single_metric_alarm_with_missing_data_waits_and_names_what_is_not_produced() {
        let alarms = set(None);
        let store = MetricStore::new(i64::MAX / 4);
        alarms.evaluate(&store, 10 * MINUTE);
        let errors = alarms.view("Errors").unwrap();
        assert_eq!(errors.state, AlarmState::InsufficientData);
        assert_eq!(errors.not_produced, ["AWS/Lambda Errors"]);
        let metric = MetricId::new("AWS/Lambda", "Errors", []);
        store.put(metric.clone(), 10 * MINUTE, 1.0);
        store.put(metric.clone(), 11 * MINUTE, 1.0);
        alarms.evaluate(&store, 12 * MINUTE);
        assert_eq!(alarms.view("Errors").unwrap().state, AlarmState::Alarm);
    }
}
