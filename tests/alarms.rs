//! The alarms in `template.yaml` name metrics that exist, and each has its runbook.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn template() -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(workspace().join("template.yaml")).unwrap())
        .unwrap()
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
        _ => return None,
    };
    names.contains(&name).then_some(dimensions)
}

fn text(value: &Value) -> Option<&str> {
    value.as_str()
}

/// (namespace, metric, dimension names, service dimension value) of every metric an alarm names.
fn alarm_metrics(alarm: &Value) -> Vec<(String, String, Vec<String>, Option<String>)> {
    let dimensions = |metric: &Value| -> (Vec<String>, Option<String>) {
        let list = metric["Dimensions"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        let names = list
            .iter()
            .filter_map(|d| text(&d["Name"]).map(str::to_owned))
            .collect();
        let service = list
            .iter()
            .find(|d| d["Name"] == "service")
            .and_then(|d| text(&d["Value"]).map(str::to_owned));
        (names, service)
    };
    let props = &alarm["Properties"];
    if let Some(name) = text(&props["MetricName"]) {
        let (names, service) = dimensions(props);
        return vec![(
            text(&props["Namespace"]).unwrap().to_owned(),
            name.to_owned(),
            names,
            service,
        )];
    }
    props["Metrics"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|query| {
            let metric = &query["MetricStat"]["Metric"];
            let (names, service) = dimensions(metric);
            Some((
                text(&metric["Namespace"])?.to_owned(),
                text(&metric["MetricName"])?.to_owned(),
                names,
                service,
            ))
        })
        .collect()
}

#[test]
fn every_alarm_names_a_metric_the_code_or_aws_emits() {
    let template = template();
    let env = &template["Globals"]["Function"]["Environment"]["Variables"];
    let namespace = text(&env["POWERTOOLS_METRICS_NAMESPACE"]).unwrap();
    let service = text(&env["POWERTOOLS_SERVICE_NAME"]).unwrap();
    let catalogue: BTreeSet<&str> = ecommerce_api::metrics::CATALOGUE
        .iter()
        .map(|m| m.name)
        .collect();
    let mut checked = 0;
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"] != "AWS::CloudWatch::Alarm" {
            continue;
        }
        let metrics = alarm_metrics(resource);
        assert!(!metrics.is_empty(), "{id:?} names no metric");
        for (ns, name, dimensions, service_value) in metrics {
            if ns == namespace {
                let known = catalogue.contains(name.as_str())
                    || name == middleware::metrics::COLD_START.name;
                assert!(known, "{id:?}: {ns}/{name} is not in src/metrics.rs");
                let allowed: &[&str] = if name == "ColdStart" {
                    &["function_name", "service"]
                } else {
                    &["service"]
                };
                assert!(
                    dimensions.iter().all(|d| allowed.contains(&d.as_str())),
                    "{id:?}: {name} has dimensions {dimensions:?}"
                );
                assert_eq!(
                    service_value.as_deref(),
                    Some(service),
                    "{id:?}: the service dimension must be the functions' service"
                );
            } else {
                let allowed = aws_metric(&ns, &name)
                    .unwrap_or_else(|| panic!("{id:?}: AWS does not publish {ns}/{name}"));
                assert!(
                    dimensions.iter().all(|d| allowed.contains(&d.as_str())),
                    "{id:?}: {ns}/{name} has dimensions {dimensions:?}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} metrics checked");
}

#[test]
fn every_alarm_links_a_runbook_that_names_its_command() {
    let template = template();
    let index = std::fs::read_to_string(workspace().join("alarms/README.md")).unwrap();
    let mut alarms = 0;
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        let kind = text(&resource["Type"]).unwrap_or_default();
        if kind != "AWS::CloudWatch::Alarm" && kind != "AWS::CloudWatch::CompositeAlarm" {
            continue;
        }
        alarms += 1;
        let id = text(id).unwrap();
        let description = text(&resource["Properties"]["AlarmDescription"]).unwrap_or_default();
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
    assert_eq!(alarms, 8);
}
