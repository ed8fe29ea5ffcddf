//! CloudWatch embedded metric format: a JSON log line with an `_aws` key becomes
//! datapoints, one per value of each declared metric under each of its dimension sets
//! (the "Specification: Embedded metric format" page of the CloudWatch user guide).

use serde_json::Value as Json;

use super::store::MetricId;

/// One value of an EMF blob, at the blob's own (real) timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    /// The metric, with one of the declared dimension sets.
    pub metric: MetricId,
    /// `_aws.Timestamp`: real epoch ms.
    pub at_ms: i64,
    /// The value.
    pub value: f64,
}

/// The datapoints of `line` if it is an EMF blob: `Ok(None)` for a line that is not
/// one, an error naming what is wrong with a blob CloudWatch would reject.
///
/// # Errors
/// A message for a blob with no timestamp, a dimension that is not a string, or a
/// declared metric without a numeric value.
pub fn datapoints(line: &Json) -> Result<Option<Vec<Datapoint>>, String> {
    let Some(aws) = line.get("_aws") else {
        return Ok(None);
    };
    let at_ms = aws
        .get("Timestamp")
        .and_then(Json::as_i64)
        .ok_or("an EMF blob without a numeric _aws.Timestamp")?;
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Json::as_array)
        .ok_or("an EMF blob without _aws.CloudWatchMetrics")?;
    let mut points = Vec::new();
    for directive in directives {
        let namespace = directive
            .get("Namespace")
            .and_then(Json::as_str)
            .ok_or("an EMF directive without Namespace")?;
        let sets = directive
            .get("Dimensions")
            .and_then(Json::as_array)
            .ok_or("an EMF directive without Dimensions")?;
        let metrics = directive
            .get("Metrics")
            .and_then(Json::as_array)
            .ok_or("an EMF directive without Metrics")?;
        for set in sets {
            let mut dimensions = std::collections::BTreeMap::new();
            for key in set.as_array().ok_or("a dimension set that is not a list")? {
                let key = key
                    .as_str()
                    .ok_or("a dimension name that is not a string")?;
                let value = line
                    .get(key)
                    .and_then(Json::as_str)
                    .ok_or_else(|| format!("dimension {key} has no string value"))?;
                dimensions.insert(key.to_owned(), value.to_owned());
            }
            for metric in metrics {
                let name = metric
                    .get("Name")
                    .and_then(Json::as_str)
                    .ok_or("a metric without Name")?;
                let values: Vec<f64> = match line.get(name) {
                    Some(Json::Array(values)) => values.iter().filter_map(Json::as_f64).collect(),
                    Some(value) => value.as_f64().into_iter().collect(),
                    None => Vec::new(),
                };
                if values.is_empty() {
                    return Err(format!("metric {name} has no numeric value"));
                }
                for value in values {
                    points.push(Datapoint {
                        metric: MetricId {
                            namespace: namespace.to_owned(),
                            name: name.to_owned(),
                            dimensions: dimensions.clone(),
                        },
                        at_ms,
                        value,
                    });
                }
            }
        }
    }
    Ok(Some(points))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_value_under_every_dimension_set() {
        let blob = json!({
            "_aws": {"Timestamp": 1000, "CloudWatchMetrics": [{
                "Namespace": "EcommerceApi",
                "Dimensions": [["service"], ["service", "function_name"]],
                "Metrics": [{"Name": "OrdersCompleted", "Unit": "Count"}, {"Name": "Latency", "Unit": "Milliseconds"}]
            }]},
            "service": "ecommerce-api", "function_name": "update-cart-products",
            "OrdersCompleted": 3.0, "Latency": [1.0, 2.0]
        });
        let points = datapoints(&blob).unwrap().unwrap();
        assert_eq!(points.len(), 6);
        let by_function = MetricId::new(
            "EcommerceApi",
            "OrdersCompleted",
            [
                ("service", "ecommerce-api"),
                ("function_name", "update-cart-products"),
            ],
        );
        assert!(
            points
                .iter()
                .any(|p| p.metric == by_function && p.value == 3.0 && p.at_ms == 1000)
        );
        assert_eq!(
            points.iter().filter(|p| p.metric.name == "Latency").count(),
            4
        );
    }

    #[test]
    fn plain_lines_are_not_blobs_and_broken_blobs_are_named() {
        assert_eq!(datapoints(&json!({"level": "INFO"})).unwrap(), None);
        let no_value = json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "M"}]}]}});
        assert!(datapoints(&no_value).unwrap_err().contains('M'));
        let no_dimension = json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["d"]], "Metrics": [{"Name": "M"}]}]}, "M": 1});
        assert!(datapoints(&no_dimension).unwrap_err().contains('d'));
    }
}
