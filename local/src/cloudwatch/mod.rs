//! A local CloudWatch plane: the metrics, logs, alarms and dashboard that `sam deploy`
//! ships, computed on this machine from what the local stack does.
//!
//! Nothing here knows about orders. The plane reads the alarm and dashboard
//! definitions from the template ([`definitions`]), keeps every datapoint
//! ([`store`]) and log event ([`logs`]) on one simulated clock ([`clock`]), evaluates
//! the alarms every simulated minute ([`alarms`], with [`alarm`], [`math`] and
//! [`composite`]) and serves the dashboard as a page ([`page`]).
//!
//! # Where the data comes from
//!
//! | namespace | metrics | produced by |
//! |---|---|---|
//! | the functions' own (EMF) | whatever the functions write | their log lines ([`emf`]), tailed from each function's log |
//! | `AWS/Lambda` | `Invocations`, `Errors`, `Throttles`, `Duration`, `ConcurrentExecutions` | the local Runtime API host, per invocation |
//! | `AWS/Lambda` | `IteratorAge` | the stream event source, per invocation |
//! | `AWS/SQS` | the approximate counts, `ApproximateAgeOfOldestMessage`, sent/received/deleted | sampled from the emulator every simulated minute |
//! | `AWS/ApiGateway` | `Count`, `4XXError`, `5XXError`, `Latency`, `IntegrationLatency` | the local gateway, per request |
//! | `AWS/DynamoDB` | consumed read and write units, `ConditionalCheckFailedRequests` | the proxy between each function and the emulator ([`crate::capacity`]) |
//!
//! A metric of an AWS namespace that none of these produce is listed by name
//! ([`Plane::not_produced`]) on the page, on the widget and on the alarm that reads it.
//!
//! # Time
//!
//! One simulated clock drives the plane. Waiting times the plane measures (the age of
//! a queue's oldest message, a stream's iterator age) are measured on it, so at
//! `--time-scale 60` a message that waited five real seconds is five minutes old.
//! Durations of work (`Duration`, `Latency`) are reported as measured.
pub mod alarm;
pub mod alarms;
pub mod clock;
pub mod composite;
pub mod definitions;
pub mod emf;
pub mod insights;
pub mod logs;
pub mod math;
pub mod page;
pub mod store;

/// Simulated epoch ms in RFC 3339 (UTC), as CloudWatch writes times.
pub fn rfc3339(at_ms: i64) -> String {
    aws_smithy_types::DateTime::from_millis(at_ms)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::polling::PollHealth;
use alarms::AlarmSet;
use clock::SimClock;
use definitions::DashboardDefinition;
use insights::LogEvent;
use logs::LogStore;
use store::{MetricId, MetricStore};

/// The AWS metrics the local stack produces, by namespace.
pub const PRODUCED: &[(&str, &[&str])] = &[
    (
        "AWS/Lambda",
        &[
            "Invocations",
            "Errors",
            "Throttles",
            "Duration",
            "ConcurrentExecutions",
            "IteratorAge",
        ],
    ),
    (
        "AWS/SQS",
        &[
            "ApproximateNumberOfMessagesVisible",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
            "ApproximateAgeOfOldestMessage",
            "NumberOfMessagesSent",
            "NumberOfMessagesReceived",
            "NumberOfMessagesDeleted",
        ],
    ),
    (
        "AWS/ApiGateway",
        &[
            "Count",
            "4XXError",
            "5XXError",
            "Latency",
            "IntegrationLatency",
        ],
    ),
    (
        "AWS/DynamoDB",
        &[
            "ConsumedReadCapacityUnits",
            "ConsumedWriteCapacityUnits",
            "ConditionalCheckFailedRequests",
        ],
    ),
];

/// Whether the local stack produces `metric`: any metric of the functions' own
/// namespaces (they write what they write), and the AWS metrics of [`PRODUCED`].
pub fn produced(metric: &MetricId) -> bool {
    if !metric.namespace.starts_with("AWS/") {
        return true;
    }
    PRODUCED
        .iter()
        .any(|(ns, names)| *ns == metric.namespace && names.contains(&metric.name.as_str()))
}

/// How the plane runs.
#[derive(Debug, Clone)]
pub struct PlaneOptions {
    /// How many times faster than real time the simulated clock runs.
    pub time_scale: f64,
    /// Where alarm notifications are written (the local alarm topic).
    pub topic_log: PathBuf,
    /// The region, for alarm notifications and widgets.
    pub region: String,
}

/// The plane's loops and how they are going: each failure is counted and logged, and
/// the page shows them.
#[derive(Debug, Default)]
pub struct PlaneHealth {
    /// Reading log files.
    pub logs: PollHealth,
    /// Sampling the emulator's queues.
    pub queues: PollHealth,
    /// EMF blobs that could not be read.
    pub emf: PollHealth,
}

/// The running plane.
#[derive(Debug)]
pub struct Plane {
    clock: SimClock,
    metrics: MetricStore,
    logs: LogStore,
    alarms: AlarmSet,
    dashboards: Vec<DashboardDefinition>,
    region: String,
    /// How its loops are going.
    pub health: PlaneHealth,
}

/// The sim-time retention of datapoints and events: a day, as a dashboard reads it.
const RETENTION_MS: i64 = 24 * 3_600_000;

impl Plane {
    /// A plane over the template's alarms and dashboards.
    pub fn new(
        options: &PlaneOptions,
        alarm_definitions: Vec<definitions::AlarmDefinition>,
        dashboards: Vec<DashboardDefinition>,
    ) -> Arc<Self> {
        let clock = SimClock::new(options.time_scale);
        let alarms = AlarmSet::new(
            alarm_definitions,
            &produced,
            Some(options.topic_log.clone()),
            &options.region,
            clock.now_ms(),
        );
        Arc::new(Self {
            clock,
            metrics: MetricStore::new(RETENTION_MS),
            logs: LogStore::new(200_000),
            alarms,
            dashboards,
            region: options.region.clone(),
            health: PlaneHealth::default(),
        })
    }

    /// The simulated clock.
    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    /// The datapoints.
    pub fn metrics(&self) -> &MetricStore {
        &self.metrics
    }

    /// The log events.
    pub fn logs(&self) -> &LogStore {
        &self.logs
    }

    /// The alarms.
    pub fn alarms(&self) -> &AlarmSet {
        &self.alarms
    }

    /// The dashboards.
    pub fn dashboards(&self) -> &[DashboardDefinition] {
        &self.dashboards
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Records a value now.
    pub fn put(&self, metric: MetricId, value: f64) {
        self.metrics.put(metric, self.clock.now_ms(), value);
    }

    /// Records a value at a real wall-clock time (epoch ms).
    pub fn put_at_real(&self, metric: MetricId, real_ms: i64, value: f64) {
        self.metrics.put(metric, self.clock.at_real(real_ms), value);
    }

    /// The AWS metrics the alarms and dashboards read that the local stack does not
    /// produce, by name.
    pub fn not_produced(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .alarms
            .views()
            .into_iter()
            .flat_map(|a| a.not_produced)
            .collect();
        for dashboard in &self.dashboards {
            names.extend(
                page::widget_metrics(&dashboard.body)
                    .into_iter()
                    .filter(|m| !produced(m))
                    .map(|m| m.to_string()),
            );
        }
        names.sort();
        names.dedup();
        names
    }

    /// Adds one line written to `group` now.
    pub fn ingest_line(&self, group: &str, stream: &str, line: &str) {
        let json: Option<serde_json::Value> = line
            .trim_start()
            .starts_with('{')
            .then(|| serde_json::from_str(line).ok())
            .flatten();
        if let Some(blob) = &json {
            match emf::datapoints(blob) {
                Ok(Some(points)) => {
                    for point in points {
                        self.put_at_real(point.metric, point.at_ms, point.value);
                    }
                    self.health.emf.succeeded("EMF");
                }
                Ok(None) => {}
                Err(e) => self.health.emf.failed(&format!("EMF in {group}"), &e),
            }
        }
        self.logs.push(LogEvent {
            timestamp_ms: self.clock.now_ms(),
            group: group.to_owned(),
            stream: stream.to_owned(),
            message: line.to_owned(),
            json,
        });
    }

    /// Follows a log file from its current end: each new line becomes an event of
    /// `group` (and its EMF blobs datapoints), until `shutdown`.
    pub fn watch_log(
        self: &Arc<Self>,
        path: PathBuf,
        group: String,
        stream: String,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let plane = Arc::clone(self);
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let source = format!("log {}", path.display());
            let mut offset = 0u64;
            let mut partial = Vec::new();
            loop {
                match tokio::fs::File::open(&path).await {
                    Ok(mut file) => {
                        let length = file.metadata().await.map(|m| m.len()).unwrap_or(0);
                        if length < offset {
                            // The file was started again (a new stack): read it anew.
                            offset = 0;
                            partial.clear();
                        }
                        let mut chunk = Vec::new();
                        let read = async {
                            file.seek(std::io::SeekFrom::Start(offset)).await?;
                            file.read_to_end(&mut chunk).await
                        };
                        match read.await {
                            Ok(n) => {
                                offset += n as u64;
                                partial.extend_from_slice(&chunk);
                                while let Some(end) = partial.iter().position(|b| *b == b'\n') {
                                    let line: Vec<u8> = partial.drain(..=end).collect();
                                    let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                                    if !text.trim().is_empty() {
                                        plane.ingest_line(&group, &stream, &text);
                                    }
                                }
                                plane.health.logs.succeeded(&source);
                            }
                            Err(e) => plane.health.logs.failed(&source, &e.to_string()),
                        }
                    }
                    // Not written yet.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => plane.health.logs.failed(&source, &e.to_string()),
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    () = crate::http::stopped(&mut shutdown) => return,
                }
            }
        });
    }

    /// Evaluates the alarms every simulated minute, a little after the minute turns
    /// (20 simulated seconds, at least half a real second) so the minute's data is in,
    /// until `shutdown`. Each state change is logged.
    pub fn run_alarms(self: &Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let plane = Arc::clone(self);
        tokio::spawn(async move {
            let minute = 60_000;
            let settle = (20_000.0_f64).max(500.0 * plane.clock.scale()) as i64;
            let mut next = store::period_start(plane.clock.now_ms(), minute) + minute + settle;
            loop {
                let wait_sim = (next - plane.clock.now_ms()).max(0);
                let wait = plane
                    .clock
                    .real_duration(Duration::from_millis(wait_sim as u64));
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = crate::http::stopped(&mut shutdown) => return,
                }
                let now = plane.clock.now_ms();
                for (name, change) in plane.alarms.evaluate(&plane.metrics, now) {
                    tracing::info!(alarm = %name, from = %change.from, to = %change.to, reason = %change.reason, "alarm state changed");
                }
                next += minute;
                // Fell behind (a busy machine): skip to the next minute rather than
                // evaluating in a burst.
                if next < plane.clock.now_ms() {
                    next = store::period_start(plane.clock.now_ms(), minute) + minute + settle;
                }
            }
        });
    }

    /// Samples the emulator's queues every simulated minute for `AWS/SQS`, from
    /// `stats_url` (the emulator's `/moto-api/local/sqs-stats`), until `shutdown`.
    pub fn sample_queues(self: &Arc<Self>, stats_url: String, mut shutdown: watch::Receiver<bool>) {
        let plane = Arc::clone(self);
        tokio::spawn(async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Empty<bytes::Bytes>>();
            let mut last: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
            let minute = 60_000;
            loop {
                let sample = async {
                    let uri: hyper::Uri = stats_url
                        .parse()
                        .map_err(|e: hyper::http::uri::InvalidUri| e.to_string())?;
                    let response = tokio::time::timeout(Duration::from_secs(5), client.get(uri))
                        .await
                        .map_err(|_| "no answer in 5 s".to_owned())?
                        .map_err(|e| e.to_string())?;
                    let body = http_body_util::BodyExt::collect(response.into_body())
                        .await
                        .map_err(|e| e.to_string())?
                        .to_bytes();
                    serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| e.to_string())
                };
                match sample.await {
                    Ok(stats) => {
                        plane.record_queues(&stats, &mut last);
                        plane.health.queues.succeeded("queue sampler");
                    }
                    Err(e) => plane.health.queues.failed("queue sampler", &e),
                }
                let now = plane.clock.now_ms();
                let next = store::period_start(now, minute) + minute + 1_000;
                let wait = plane
                    .clock
                    .real_duration(Duration::from_millis((next - now).max(0) as u64));
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = crate::http::stopped(&mut shutdown) => return,
                }
            }
        });
    }

    fn record_queues(
        &self,
        stats: &serde_json::Value,
        last: &mut BTreeMap<String, (f64, f64, f64)>,
    ) {
        let real_now = stats["now_ms"]
            .as_f64()
            .unwrap_or_else(|| clock::wall_ms() as f64);
        for queue in stats["queues"].as_array().into_iter().flatten() {
            let Some(name) = queue["name"].as_str() else {
                continue;
            };
            let metric = |metric: &str| MetricId::new("AWS/SQS", metric, [("QueueName", name)]);
            let number = |key: &str| queue[key].as_f64().unwrap_or(0.0);
            for (metric_name, key) in [
                ("ApproximateNumberOfMessagesVisible", "visible"),
                ("ApproximateNumberOfMessagesNotVisible", "not_visible"),
                ("ApproximateNumberOfMessagesDelayed", "delayed"),
            ] {
                self.put(metric(metric_name), number(key));
            }
            // The oldest message's age on the plane's clock.
            let age_s = queue["oldest_sent_ms"].as_f64().map_or(0.0, |sent| {
                self.clock
                    .sim_duration(Duration::from_millis((real_now - sent).max(0.0) as u64))
                    .as_secs_f64()
                    .floor()
            });
            self.put(metric("ApproximateAgeOfOldestMessage"), age_s);
            let counters = (number("sent"), number("received"), number("deleted"));
            let (sent, received, deleted) = last.get(name).copied().unwrap_or((0.0, 0.0, 0.0));
            self.put(metric("NumberOfMessagesSent"), (counters.0 - sent).max(0.0));
            self.put(
                metric("NumberOfMessagesReceived"),
                (counters.1 - received).max(0.0),
            );
            self.put(
                metric("NumberOfMessagesDeleted"),
                (counters.2 - deleted).max(0.0),
            );
            last.insert(name.to_owned(), counters);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane() -> Arc<Plane> {
        let template: serde_norway::Value = serde_norway::from_str(
            r#"
Resources:
  Dlq:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/Lambda
      MetricName: DeadLetterErrors
      Dimensions: [{ Name: FunctionName, Value: f }]
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
"#,
        )
        .unwrap();
        let mut names = definitions::Names::default();
        names.reference("Dlq", "local-Dlq");
        let alarms = definitions::alarms(&template, &names).unwrap();
        let body = serde_json::json!({"widgets": [
            {"type": "metric", "properties": {"title": "dead letters", "stat": "Sum", "period": 60, "metrics": [
                ["AWS/Lambda", "DeadLetterErrors", "FunctionName", "f"]
            ]}},
            {"type": "metric", "properties": {"title": "mixed", "stat": "Sum", "period": 60, "metrics": [
                ["AWS/Lambda", "Errors", "FunctionName", "f"],
                ["AWS/Lambda", "DeadLetterErrors", "FunctionName", "f"]
            ]}},
            {"type": "alarm", "properties": {"title": "alarms", "alarms": ["local-Dlq"]}}
        ]});
        let dashboards = vec![DashboardDefinition {
            logical_id: "D".into(),
            name: "d".into(),
            body,
        }];
        let options = PlaneOptions {
            time_scale: 1.0,
            topic_log: std::env::temp_dir().join("unused-topic.log"),
            region: "eu-west-1".into(),
        };
        Plane::new(&options, alarms, dashboards)
    }

    #[test]
    fn a_metric_the_stack_does_not_produce_is_named_on_the_page_its_widget_and_its_alarm() {
        let plane = plane();
        assert_eq!(
            plane.not_produced(),
            ["AWS/Lambda DeadLetterErrors FunctionName=f"]
        );
        let widgets = page::widgets(&plane.dashboards()[0].body);
        let (state, html) = page::render(&plane, &widgets[0], 600);
        assert_eq!(state, page::Drawn::NotProduced);
        assert!(
            html.contains("Not produced by the local stack: AWS/Lambda DeadLetterErrors"),
            "{html}"
        );
        // A widget with one produced line draws it and still names the other.
        plane.put(
            MetricId::new("AWS/Lambda", "Errors", [("FunctionName", "f")]),
            1.0,
        );
        let (state, html) = page::render(&plane, &widgets[1], 600);
        assert_eq!(state, page::Drawn::Data);
        assert!(html.contains("Not produced by the local stack"), "{html}");
        let (_, alarms) = page::render(&plane, &widgets[2], 600);
        assert!(
            alarms.contains(
                "reads what the local stack does not produce: AWS/Lambda DeadLetterErrors"
            ),
            "{alarms}"
        );
        assert!(page::page(&plane).contains("not produced locally: AWS/Lambda DeadLetterErrors"));
    }

    #[test]
    fn lines_become_events_and_emf_blobs_datapoints() {
        let plane = plane();
        plane.ingest_line(
            "/aws/lambda/f",
            "s",
            r#"{"_aws":{"Timestamp":1000,"CloudWatchMetrics":[{"Namespace":"App","Dimensions":[["service"]],"Metrics":[{"Name":"Done"}]}]},"service":"x","Done":2}"#,
        );
        plane.ingest_line("/aws/lambda/f", "s", "not json");
        plane.ingest_line("/aws/lambda/f", "s", r#"{"_aws":{"Timestamp":1}}"#);
        let done = MetricId::new("App", "Done", [("service", "x")]);
        let at = plane.clock().at_real(1000);
        assert_eq!(
            plane
                .metrics()
                .aggregate(
                    &done,
                    store::Statistic::Sum,
                    60_000,
                    at - 60_000,
                    at + 60_000
                )
                .values()
                .sum::<f64>(),
            2.0
        );
        assert_eq!(
            plane
                .logs()
                .events(&["/aws/lambda/f".into()], 0, i64::MAX)
                .len(),
            3
        );
        // The broken blob is counted and named, not dropped silently.
        assert_eq!(
            plane
                .health
                .emf
                .failures
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
