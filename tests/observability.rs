//! What operators look at names only what exists. Every metric an alarm or a dashboard
//! widget names (namespace, name, dimensions and the resource each dimension points at)
//! is one the code's catalogue (`src/metrics.rs`) or AWS emits; every Logs Insights
//! widget reads log groups the stack creates and fields those logs carry; every alarm
//! has a runbook. No linter looks inside `DashboardBody`, so this test does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value as Json;
use serde_norway::Value;

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(workspace().join(path)).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `(tag without '!', value)` of an intrinsic such as `!Ref X`.
fn intrinsic(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_owned(),
            &t.value,
        )),
        _ => None,
    }
}

fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id.as_str().unwrap(), r))
        .collect()
}

/// Metrics AWS publishes that alarms and dashboards may use, with their dimensions.
fn aws_metric(namespace: &str, name: &str) -> Option<&'static [&'static str]> {
    let (names, dimensions): (&[&str], &'static [&'static str]) = match namespace {
        "AWS/SQS" => (
            &[
                "ApproximateNumberOfMessagesVisible",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateAgeOfOldestMessage",
                "NumberOfMessagesSent",
                "NumberOfMessagesReceived",
                "NumberOfMessagesDeleted",
            ],
            &["QueueName"],
        ),
        "AWS/Lambda" => (
            &[
                "Invocations",
                "Errors",
                "Throttles",
                "Duration",
                "ConcurrentExecutions",
                "IteratorAge",
            ],
            &["FunctionName"],
        ),
        "AWS/ApiGateway" => (
            &[
                "Count",
                "4XXError",
                "5XXError",
                "Latency",
                "IntegrationLatency",
            ],
            &["ApiName", "Stage"],
        ),
        "AWS/DynamoDB" => (
            &[
                "ConsumedReadCapacityUnits",
                "ConsumedWriteCapacityUnits",
                "ConditionalCheckFailedRequests",
            ],
            &["TableName"],
        ),
        _ => return None,
    };
    names.contains(&name).then_some(dimensions)
}

/// A metric as CloudWatch identifies it; each dimension's value as the root template
/// spells it (`!Ref OrdersQueue`, a literal, ...).
#[derive(Debug)]
struct MetricRef {
    namespace: String,
    name: String,
    dimensions: BTreeMap<String, Value>,
}

/// The root template and what the code says metrics look like.
struct Stack {
    root: Value,
    namespace: String,
    service: String,
    catalogue: BTreeSet<&'static str>,
    /// The metrics the pipeline functions write, also per function.
    by_function: BTreeSet<&'static str>,
    /// The functions' metrics settings, read from the template's environment by the
    /// code's own reader (namespace, default dimensions, the cold start's name).
    metrics: middleware::metrics::MetricsConfig,
}

impl Stack {
    fn load() -> Self {
        let root = yaml("template.yaml");
        let env = &root["Globals"]["Function"]["Environment"]["Variables"];
        let metrics = middleware::metrics::MetricsConfig::from_lookup(|name| {
            env[name].as_str().map(str::to_owned)
        })
        .unwrap();
        Self {
            metrics,
            by_function: ecommerce_api::metrics::BY_FUNCTION
                .iter()
                .map(|m| m.name)
                .collect(),
            namespace: env["POWERTOOLS_METRICS_NAMESPACE"]
                .as_str()
                .unwrap()
                .to_owned(),
            service: env["POWERTOOLS_SERVICE_NAME"].as_str().unwrap().to_owned(),
            catalogue: ecommerce_api::metrics::CATALOGUE
                .iter()
                .map(|m| m.name)
                .collect(),
            root,
        }
    }

    fn resource_type(&self, id: &str) -> Option<&str> {
        self.root["Resources"][id]["Type"].as_str()
    }

    /// `Ok` if `value` is `!Ref <id>` of a resource of `kind`.
    fn refers_to(&self, value: &Value, kind: &str) -> Result<(), String> {
        match intrinsic(value) {
            Some((tag, Value::String(id)))
                if tag == "Ref" && self.resource_type(id) == Some(kind) =>
            {
                Ok(())
            }
            _ => Err(format!("{value:?} is not a Ref to an {kind}")),
        }
    }

    fn the_api(&self) -> &Value {
        let apis = resources_of_type(&self.root, "AWS::Serverless::Api");
        assert_eq!(apis.len(), 1);
        &apis[0].1["Properties"]
    }

    /// Checks that a dimension's value names the resource the dimension is about.
    fn dimension_value(&self, key: &str, value: &Value) -> Result<(), String> {
        match key {
            // POWERTOOLS_METRICS_FUNCTION_NAME, when set, names every function the same.
            "function_name" if self.metrics.function_name.is_some() => (value.as_str()
                == self.metrics.function_name.as_deref())
            .then_some(())
            .ok_or_else(|| format!("{value:?} is not POWERTOOLS_METRICS_FUNCTION_NAME")),
            "FunctionName" | "function_name" => self.refers_to(value, "AWS::Serverless::Function"),
            "TableName" => self.refers_to(value, "AWS::DynamoDB::Table"),
            "QueueName" => match intrinsic(value) {
                Some((tag, Value::String(path))) if tag == "GetAtt" => {
                    let (id, attribute) = path.split_once('.').unwrap_or((path, ""));
                    (attribute == "QueueName" && self.resource_type(id) == Some("AWS::SQS::Queue"))
                        .then_some(())
                        .ok_or_else(|| format!("{path} is not a queue's QueueName"))
                }
                _ => Err(format!("{value:?} is not !GetAtt <queue>.QueueName")),
            },
            "ApiName" => (value == &self.the_api()["Name"])
                .then_some(())
                .ok_or_else(|| format!("{value:?} is not the API's Name")),
            "Stage" => (value == &self.the_api()["StageName"])
                .then_some(())
                .ok_or_else(|| format!("{value:?} is not the API's StageName")),
            "service" => (value.as_str() == Some(self.service.as_str()))
                .then_some(())
                .ok_or_else(|| format!("{value:?} is not the functions' service {}", self.service)),
            other => Err(format!("no metric here has a dimension {other}")),
        }
    }

    /// Panics, naming `at`, unless the code or AWS emits exactly this metric.
    fn check(&self, at: &str, metric: &MetricRef) {
        let MetricRef {
            namespace,
            name,
            dimensions,
        } = metric;
        let keys: BTreeSet<&str> = dimensions.keys().map(String::as_str).collect();
        // The dimension sets the code writes this metric under: CloudWatch matches the
        // exact set, so a subset or a superset shows no data.
        let written: Vec<BTreeSet<&str>> = if *namespace == self.namespace {
            let defaults = self
                .metrics
                .default_dimensions
                .iter()
                .map(|(n, _)| n.as_str());
            if name == middleware::metrics::COLD_START.name {
                vec![
                    ["function_name", "service"]
                        .into_iter()
                        .chain(defaults)
                        .collect(),
                ]
            } else {
                assert!(
                    self.catalogue.contains(name.as_str()),
                    "{at}: {namespace}/{name} is not in src/metrics.rs"
                );
                let by_function = self.by_function.contains(name.as_str());
                ecommerce_api::metrics::DIMENSION_SETS
                    .iter()
                    .filter(|set| by_function || !set.contains(&"function_name"))
                    .map(|set| set.iter().copied().chain(defaults.clone()).collect())
                    .collect()
            }
        } else {
            vec![
                aws_metric(namespace, name)
                    .unwrap_or_else(|| panic!("{at}: AWS does not publish {namespace}/{name}"))
                    .iter()
                    .copied()
                    .collect(),
            ]
        };
        assert!(
            written.contains(&keys),
            "{at}: {namespace}/{name} dimensions {keys:?}, written as {written:?}"
        );
        for (key, value) in dimensions {
            if let Err(e) = self.dimension_value(key, value) {
                panic!("{at}: {namespace}/{name} {key}: {e}");
            }
        }
    }
}

// ------------------------------------------------------------------ alarms

fn alarm_dimensions(metric: &Value) -> BTreeMap<String, Value> {
    metric["Dimensions"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|d| (d["Name"].as_str().unwrap().to_owned(), d["Value"].clone()))
        .collect()
}

fn alarm_metrics(alarm: &Value) -> Vec<MetricRef> {
    let props = &alarm["Properties"];
    if let Some(name) = props["MetricName"].as_str() {
        return vec![MetricRef {
            namespace: props["Namespace"].as_str().unwrap().to_owned(),
            name: name.to_owned(),
            dimensions: alarm_dimensions(props),
        }];
    }
    props["Metrics"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|query| {
            let metric = &query["MetricStat"]["Metric"];
            Some(MetricRef {
                namespace: metric["Namespace"].as_str()?.to_owned(),
                name: metric["MetricName"].as_str()?.to_owned(),
                dimensions: alarm_dimensions(metric),
            })
        })
        .collect()
}

#[test]
fn every_alarm_names_a_metric_the_code_or_aws_emits() {
    let stack = Stack::load();
    let mut checked = 0;
    for (id, alarm) in resources_of_type(&stack.root, "AWS::CloudWatch::Alarm") {
        let metrics = alarm_metrics(alarm);
        assert!(!metrics.is_empty(), "{id} names no metric");
        for metric in &metrics {
            stack.check(id, metric);
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} metrics checked");
}

#[test]
fn every_alarm_links_a_runbook_that_names_its_command() {
    let stack = Stack::load();
    let index = std::fs::read_to_string(workspace().join("alarms/README.md")).unwrap();
    let mut alarms = resources_of_type(&stack.root, "AWS::CloudWatch::Alarm");
    alarms.extend(resources_of_type(
        &stack.root,
        "AWS::CloudWatch::CompositeAlarm",
    ));
    for (id, alarm) in &alarms {
        let description = alarm["Properties"]["AlarmDescription"]
            .as_str()
            .unwrap_or_default();
        let path = description
            .split("Runbook: ")
            .nth(1)
            .unwrap_or_else(|| panic!("{id} links no runbook"))
            .trim();
        let runbook = std::fs::read_to_string(workspace().join(path))
            .unwrap_or_else(|e| panic!("{id}: {path}: {e}"));
        for section in [
            "**What it means.**",
            "**Confirm.**",
            "**Fix.**",
            "**Redrive.**",
        ] {
            assert!(runbook.contains(section), "{path} lacks {section}");
        }
        assert!(
            runbook.contains("ordersctl "),
            "{path} names no ordersctl command"
        );
        assert!(index.contains(id), "alarms/README.md does not list {id}");
    }
    assert_eq!(alarms.len(), 8);
}

// ------------------------------------------------------------------ dashboards

/// A dashboard body with each `${Name}` of its `!Sub` resolved to what the root
/// template passes for it.
struct Dashboard {
    file: String,
    body: Json,
    /// Parameter name → the root template's value for it.
    passed: BTreeMap<String, Value>,
}

const OPEN: char = '«';
const CLOSE: char = '»';

impl Dashboard {
    /// Every dashboard the root template deploys (nested stacks under `dashboards/`).
    fn all(stack: &Stack) -> Vec<Self> {
        let mut dashboards = Vec::new();
        for (id, app) in resources_of_type(&stack.root, "AWS::Serverless::Application") {
            let file = app["Properties"]["Location"].as_str().unwrap().to_owned();
            assert!(file.starts_with("dashboards/"), "{id}: {file}");
            let nested = yaml(&file);
            let passed: BTreeMap<String, Value> = app["Properties"]["Parameters"]
                .as_mapping()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
                .collect();
            let declared: BTreeSet<&str> = nested["Parameters"]
                .as_mapping()
                .unwrap()
                .keys()
                .map(|k| k.as_str().unwrap())
                .collect();
            assert_eq!(
                passed.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                declared,
                "{id}: the root passes exactly the parameters {file} declares"
            );
            for (dash_id, dashboard) in resources_of_type(&nested, "AWS::CloudWatch::Dashboard") {
                let (tag, text) = intrinsic(&dashboard["Properties"]["DashboardBody"])
                    .unwrap_or_else(|| panic!("{file} {dash_id}: body is not a !Sub"));
                assert_eq!(tag, "Sub");
                let text = text.as_str().unwrap();
                let marked = mark_substitutions(text, &declared)
                    .unwrap_or_else(|e| panic!("{file} {dash_id}: {e}"));
                let body: Json = serde_json::from_str(&marked)
                    .unwrap_or_else(|e| panic!("{file} {dash_id}: body is not JSON: {e}"));
                dashboards.push(Self {
                    file: format!("{file} {dash_id}"),
                    body,
                    passed: passed.clone(),
                });
            }
        }
        assert!(!dashboards.is_empty(), "the template deploys no dashboard");
        dashboards
    }

    fn widgets(&self) -> &[Json] {
        self.body["widgets"].as_array().unwrap()
    }

    /// The root template's value for a marked `«Parameter»`, or the literal itself.
    fn resolve(&self, at: &str, text: &str) -> Value {
        match text.strip_prefix(OPEN).and_then(|t| t.strip_suffix(CLOSE)) {
            Some(name) => self
                .passed
                .get(name)
                .cloned()
                .unwrap_or_else(|| panic!("{at}: ${{{name}}} is not a parameter")),
            None => {
                assert!(
                    !text.contains(OPEN),
                    "{at}: {text} mixes text and a parameter"
                );
                Value::String(text.to_owned())
            }
        }
    }

    fn metrics(&self, at: &str, widget: &Json) -> Vec<MetricRef> {
        let mut out = Vec::new();
        for entry in widget["properties"]["metrics"].as_array().unwrap() {
            let items = entry.as_array().unwrap();
            let texts: Vec<&str> = items.iter().filter_map(Json::as_str).collect();
            if texts.is_empty() {
                continue; // a metric-math expression: its inputs are checked on their own
            }
            assert!(
                !texts.contains(&"."),
                "{at}: write metrics in full, not with the '.' shorthand"
            );
            assert!(
                texts.len() >= 2 && texts.len().is_multiple_of(2),
                "{at}: {entry}"
            );
            out.push(MetricRef {
                namespace: texts[0].to_owned(),
                name: texts[1].to_owned(),
                dimensions: texts[2..]
                    .chunks(2)
                    .map(|kv| (kv[0].to_owned(), self.resolve(at, kv[1])))
                    .collect(),
            });
        }
        out
    }
}

/// Replaces each `${Name}` with `«Name»`, checking that `Name` is declared or a pseudo
/// parameter. `${!Literal}` stays literal, as in `!Sub`.
fn mark_substitutions(text: &str, declared: &BTreeSet<&str>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("an unclosed ${")?;
        let name = &after[..end];
        if let Some(literal) = name.strip_prefix('!') {
            out.push_str("${");
            out.push_str(literal);
            out.push('}');
        } else if name.starts_with("AWS::") || declared.contains(name) {
            out.push(OPEN);
            out.push_str(name);
            out.push(CLOSE);
        } else {
            return Err(format!("${{{name}}} is neither a parameter nor AWS::*"));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[test]
fn every_dashboard_metric_is_one_the_code_or_aws_emits_and_all_of_them_are_shown() {
    let stack = Stack::load();
    let mut shown = BTreeSet::new();
    for dashboard in Dashboard::all(&stack) {
        for widget in dashboard.widgets() {
            if widget["type"] != "metric" {
                continue;
            }
            let at = format!(
                "{}: widget {}",
                dashboard.file, widget["properties"]["title"]
            );
            assert_eq!(widget["properties"]["region"], "«AWS::Region»", "{at}");
            let metrics = dashboard.metrics(&at, widget);
            assert!(!metrics.is_empty(), "{at} shows no metric");
            for metric in metrics {
                stack.check(&at, &metric);
                shown.insert(metric.name);
            }
        }
    }
    // Every metric the code writes is on a dashboard, and so is each AWS metric the
    // issue asks operators to watch.
    let mut wanted: BTreeSet<String> = stack.catalogue.iter().map(|n| n.to_string()).collect();
    wanted.insert(middleware::metrics::COLD_START.name.to_owned());
    for aws in [
        "Count",
        "4XXError",
        "5XXError",
        "Latency",
        "IteratorAge",
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "Invocations",
        "Errors",
        "Throttles",
        "Duration",
        "ConcurrentExecutions",
    ] {
        wanted.insert(aws.to_owned());
    }
    let missing: Vec<_> = wanted.difference(&shown).collect();
    assert!(missing.is_empty(), "no widget shows {missing:?}");
}

#[test]
fn dashboard_widgets_fit_the_grid_without_overlapping() {
    let stack = Stack::load();
    for dashboard in Dashboard::all(&stack) {
        let mut taken = BTreeSet::new();
        for widget in dashboard.widgets() {
            let at = format!("{}: widget {}", dashboard.file, widget["properties"]);
            let n = |key: &str| {
                widget[key]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{at}: no {key}"))
            };
            let (x, y, width, height) = (n("x"), n("y"), n("width"), n("height"));
            assert!(width >= 1 && height >= 1 && x + width <= 24, "{at}");
            for cell in (x..x + width).flat_map(|cx| (y..y + height).map(move |cy| (cx, cy))) {
                assert!(
                    taken.insert(cell),
                    "{at} overlaps another widget at {cell:?}"
                );
            }
        }
    }
}

#[test]
fn the_alarm_widget_shows_every_alarm() {
    let stack = Stack::load();
    let mut alarms: BTreeSet<&str> = resources_of_type(&stack.root, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    alarms.extend(
        resources_of_type(&stack.root, "AWS::CloudWatch::CompositeAlarm")
            .into_iter()
            .map(|(id, _)| id),
    );
    let mut widgets = 0;
    for dashboard in Dashboard::all(&stack) {
        for widget in dashboard.widgets().iter().filter(|w| w["type"] == "alarm") {
            widgets += 1;
            let list = widget["properties"]["alarms"].as_array().unwrap();
            assert_eq!(list.len(), 1, "one parameter joined into the list");
            let joined = dashboard.resolve("alarm widget", list[0].as_str().unwrap());
            let (tag, args) = intrinsic(&joined).unwrap();
            assert_eq!(tag, "Join");
            assert_eq!(args[0], Value::String("\",\"".into()));
            let named: BTreeSet<&str> = args[1]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|arn| {
                    let (tag, path) = intrinsic(arn).unwrap();
                    assert_eq!(tag, "GetAtt");
                    path.as_str().unwrap().strip_suffix(".Arn").unwrap()
                })
                .collect();
            assert_eq!(named, alarms, "the alarm widget lists every alarm");
        }
    }
    assert_eq!(widgets, 1);
}

/// Identifiers a Logs Insights query reads (fields), leaving out commands, keywords,
/// functions, aliases, numbers and quoted text.
fn query_fields(query: &str) -> BTreeSet<String> {
    const WORDS: [&str; 14] = [
        "fields", "filter", "stats", "sort", "limit", "by", "as", "and", "or", "not", "desc",
        "asc", "in", "like",
    ];
    let mut tokens = Vec::new();
    for command in query.split('|').map(str::trim) {
        if command.starts_with("SOURCE ") {
            continue;
        }
        let mut chars = command.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\'' || c == '"' {
                for (_, d) in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
            } else if c.is_alphabetic() || c == '@' || c == '_' {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' || d == '.' {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let is_call = command[end..].trim_start().starts_with('(');
                tokens.push((command[i..end].to_owned(), is_call));
            }
        }
    }
    let aliases: BTreeSet<String> = tokens
        .windows(2)
        .filter(|w| w[0].0 == "as")
        .map(|w| w[1].0.clone())
        .collect();
    tokens
        .into_iter()
        .filter(|(t, is_call)| !is_call && !WORDS.contains(&t.as_str()) && !aliases.contains(t))
        .map(|(t, _)| t)
        .collect()
}

#[test]
fn query_fields_are_the_fields_a_query_reads() {
    let fields = query_fields(
        "SOURCE '/x' | fields @timestamp, message | filter level = 'ERROR' and ispresent(correlation_id) \
         | stats count(*) as errors, latest(message) as last by correlation_id | sort errors desc | limit 5",
    );
    let expected: BTreeSet<String> = ["@timestamp", "message", "level", "correlation_id"]
        .map(String::from)
        .into();
    assert_eq!(fields, expected);
}

#[test]
fn every_logs_insights_widget_reads_the_stacks_log_groups_and_fields_they_carry() {
    let stack = Stack::load();
    let api = stack.the_api();
    let access_format: Json =
        serde_json::from_str(api["AccessLogSetting"]["Format"].as_str().unwrap())
            .expect("the access log format is one JSON object");
    let access_fields: BTreeSet<&str> = access_format
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let (tag, destination) = intrinsic(&api["AccessLogSetting"]["DestinationArn"]).unwrap();
    assert_eq!(tag, "GetAtt");
    let access_group = destination.as_str().unwrap().strip_suffix(".Arn").unwrap();
    assert_eq!(
        stack.resource_type(access_group),
        Some("AWS::Logs::LogGroup")
    );

    let mut widgets = 0;
    for dashboard in Dashboard::all(&stack) {
        for widget in dashboard.widgets().iter().filter(|w| w["type"] == "log") {
            widgets += 1;
            let at = format!(
                "{}: widget {}",
                dashboard.file, widget["properties"]["title"]
            );
            assert_eq!(widget["properties"]["region"], "«AWS::Region»", "{at}");
            let query = widget["properties"]["query"].as_str().unwrap();
            let mut function_logs = false;
            let mut access_logs = false;
            for source in query.split("SOURCE '").skip(1) {
                let group = source.split('\'').next().unwrap();
                if let Some(function) = group.strip_prefix("/aws/lambda/") {
                    let value = dashboard.resolve(&at, function);
                    stack
                        .refers_to(&value, "AWS::Serverless::Function")
                        .unwrap_or_else(|e| panic!("{at}: {e}"));
                    function_logs = true;
                } else {
                    let value = dashboard.resolve(&at, group);
                    stack
                        .refers_to(&value, "AWS::Logs::LogGroup")
                        .unwrap_or_else(|e| panic!("{at}: {e}"));
                    assert_eq!(value, resolve_ref(access_group), "{at}: {group}");
                    access_logs = true;
                }
            }
            assert!(
                function_logs != access_logs,
                "{at}: reads one kind of log group (functions or API access)"
            );
            // Lambda's own records are read only where the query picks them out.
            let reads_reports = function_logs && query.contains("filter type = 'platform.report'");
            for field in query_fields(query) {
                let known = field.starts_with('@')
                    || if function_logs {
                        middleware::logging::KEYS.contains(&field.as_str())
                            || (reads_reports && PLATFORM_REPORT_FIELDS.contains(&field.as_str()))
                    } else {
                        access_fields.contains(field.as_str())
                    };
                assert!(known, "{at}: no log line carries the field {field}");
            }
        }
    }
    assert!(widgets >= 2, "only {widgets} Logs Insights widgets");
}

/// The fields of Lambda's own `platform.report` record in the JSON log format: one per
/// invocation, at INFO, with `initDurationMs` on a cold start only (AWS Lambda
/// Developer Guide, "Telemetry API `Event` schema reference" / JSON system logs).
const PLATFORM_REPORT_FIELDS: [&str; 8] = [
    "type",
    "record.requestId",
    "record.status",
    "record.metrics.durationMs",
    "record.metrics.billedDurationMs",
    "record.metrics.memorySizeMB",
    "record.metrics.maxMemoryUsedMB",
    "record.metrics.initDurationMs",
];

/// Every function's `SystemLogLevel` (its own, else the Globals').
fn system_log_levels(stack: &Stack) -> Vec<(String, String)> {
    let global = &stack.root["Globals"]["Function"]["LoggingConfig"]["SystemLogLevel"];
    resources_of_type(&stack.root, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, function)| {
            let own = &function["Properties"]["LoggingConfig"]["SystemLogLevel"];
            let level = own.as_str().or(global.as_str()).unwrap_or("INFO");
            (id.to_owned(), level.to_owned())
        })
        .collect()
}

#[test]
fn lambdas_report_records_are_kept_for_the_dashboard() {
    let stack = Stack::load();
    let report_widgets = Dashboard::all(&stack)
        .iter()
        .flat_map(|d| d.widgets().to_vec())
        .filter(|w| {
            w["properties"]["query"]
                .as_str()
                .is_some_and(|q| q.contains("filter type = 'platform.report'"))
        })
        .count();
    assert_eq!(report_widgets, 1, "one widget reads the REPORT records");
    let levels = system_log_levels(&stack);
    assert_eq!(levels.len(), 3);
    for (function, level) in levels {
        // platform.report is written at INFO: WARN or ERROR drops it.
        assert!(
            ["INFO", "DEBUG"].contains(&level.as_str()),
            "{function}: SystemLogLevel {level} drops Lambda's REPORT records"
        );
    }
}

fn resolve_ref(id: &str) -> Value {
    serde_norway::from_str(&format!("!Ref {id}")).unwrap()
}
