//! The alarms, dashboard and API settings as `sam deploy` ships them, read from
//! `template.yaml` (and the dashboard's nested template) with every intrinsic
//! resolved to the local stack's names.
//!
//! Intrinsics: `!Ref`, `!GetAtt`, `!Sub` (both forms), `!Join`, and their long forms.
//! Any other intrinsic, or a property the plane does not implement (an anomaly band,
//! `ExtendedStatistic` with a form it cannot compute), is an error that names it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::Value as Yaml;

use super::alarm::{Comparison, Rule, TreatMissingData};
use super::composite::AlarmRule;
use super::math::Expr;
use super::store::{MetricId, Statistic};

/// A definition the plane cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {reason}")]
pub struct DefinitionError {
    /// Where: the resource, property or file.
    pub at: String,
    /// What is wrong.
    pub reason: String,
}

fn error(at: impl Into<String>, reason: impl Into<String>) -> DefinitionError {
    DefinitionError {
        at: at.into(),
        reason: reason.into(),
    }
}

fn get<'a>(value: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    value.as_mapping()?.get(key)
}

fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What `!Ref` and `!GetAtt` give for each logical id, and the pseudo parameters.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// `!Ref id`.
    pub references: BTreeMap<String, String>,
    /// `!GetAtt id.attribute`.
    pub attributes: BTreeMap<(String, String), String>,
}

impl Names {
    /// Adds a name.
    pub fn reference(&mut self, id: &str, value: impl Into<String>) {
        self.references.insert(id.to_owned(), value.into());
    }

    /// Adds an attribute.
    pub fn attribute(&mut self, id: &str, attribute: &str, value: impl Into<String>) {
        self.attributes
            .insert((id.to_owned(), attribute.to_owned()), value.into());
    }

    /// Resolves a property value to text.
    ///
    /// # Errors
    /// [`DefinitionError`] for an unknown name or an intrinsic the plane does not read.
    pub fn resolve(&self, value: &Yaml, at: &str) -> Result<String, DefinitionError> {
        let (tag, inner) = match value {
            Yaml::Tagged(tagged) => (
                tagged.tag.to_string().trim_start_matches('!').to_owned(),
                &tagged.value,
            ),
            Yaml::Mapping(map) if map.len() == 1 => {
                let Some((key, inner)) = map.iter().next() else {
                    return Err(error(at, "an empty mapping where a value is needed"));
                };
                let key = scalar(key).unwrap_or_default();
                match key.strip_prefix("Fn::") {
                    Some(function) => (function.to_owned(), inner),
                    None if key == "Ref" => ("Ref".to_owned(), inner),
                    None => {
                        return Err(error(at, format!("{{{key}: ...}} where a value is needed")));
                    }
                }
            }
            other => {
                return scalar(other)
                    .ok_or_else(|| error(at, format!("{other:?} where a value is needed")));
            }
        };
        match tag.as_str() {
            "Ref" => {
                let id = scalar(inner).unwrap_or_default();
                self.references.get(&id).cloned().ok_or_else(|| {
                    error(at, format!("!Ref {id} names nothing the local stack has"))
                })
            }
            "GetAtt" => {
                let path = match inner {
                    Yaml::Sequence(parts) => parts
                        .iter()
                        .filter_map(scalar)
                        .collect::<Vec<_>>()
                        .join("."),
                    other => scalar(other).unwrap_or_default(),
                };
                self.get_att(&path, at)
            }
            "Sub" => match inner {
                Yaml::Sequence(parts) => {
                    let text = parts.first().and_then(scalar).unwrap_or_default();
                    let mut local = self.clone();
                    if let Some(Yaml::Mapping(vars)) = parts.get(1) {
                        for (name, value) in vars {
                            let name = scalar(name).unwrap_or_default();
                            let value = self.resolve(value, at)?;
                            local.reference(&name, value);
                        }
                    }
                    local.substitute(&text, at)
                }
                other => self.substitute(&scalar(other).unwrap_or_default(), at),
            },
            "Join" => {
                let Some([separator, Yaml::Sequence(items)]) =
                    inner.as_sequence().map(Vec::as_slice)
                else {
                    return Err(error(at, "!Join needs [separator, [values]]"));
                };
                let separator = scalar(separator).unwrap_or_default();
                let items = items
                    .iter()
                    .map(|item| self.resolve(item, at))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(items.join(&separator))
            }
            other => Err(error(
                at,
                format!("the intrinsic !{other} is not implemented by the local plane"),
            )),
        }
    }

    fn get_att(&self, path: &str, at: &str) -> Result<String, DefinitionError> {
        let (id, attribute) = path
            .split_once('.')
            .ok_or_else(|| error(at, format!("!GetAtt {path} has no attribute")))?;
        self.attributes
            .get(&(id.to_owned(), attribute.to_owned()))
            .cloned()
            .ok_or_else(|| {
                error(
                    at,
                    format!("!GetAtt {path} names nothing the local stack has"),
                )
            })
    }

    /// `!Sub`: `${Name}` is a `!Ref`, `${Id.Attribute}` a `!GetAtt`, `${!Text}` the
    /// literal `${Text}`.
    fn substitute(&self, text: &str, at: &str) -> Result<String, DefinitionError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| error(at, "an unterminated ${ in !Sub"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if name.contains('.') && !self.references.contains_key(name) {
                out.push_str(&self.get_att(name, at)?);
            } else {
                out.push_str(self.references.get(name).ok_or_else(|| {
                    error(at, format!("${{{name}}} names nothing the local stack has"))
                })?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Where a query's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum QuerySource {
    /// A metric's statistic per period.
    Metric {
        /// The metric.
        metric: MetricId,
        /// Period in seconds.
        period_s: i64,
        /// The statistic.
        statistic: Statistic,
    },
    /// A metric-math expression over the other queries.
    Expression {
        /// As written.
        text: String,
        /// Parsed.
        expr: Expr,
    },
}

/// One entry of an alarm's `Metrics`, or its single metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    /// `Id`.
    pub id: String,
    /// `ReturnData`: the series the alarm compares.
    pub return_data: bool,
    /// `Label`.
    pub label: Option<String>,
    /// The values.
    pub source: QuerySource,
}

/// A metric alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricAlarm {
    /// Its queries (one for a single-metric alarm).
    pub queries: Vec<MetricQuery>,
    /// The period every query uses, in seconds.
    pub period_s: i64,
    /// Threshold, comparison, M of N, missing data.
    pub rule: Rule,
}

/// What kind of alarm.
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmKind {
    /// `AWS::CloudWatch::Alarm`.
    Metric(MetricAlarm),
    /// `AWS::CloudWatch::CompositeAlarm`.
    Composite {
        /// As written, resolved.
        text: String,
        /// Parsed.
        rule: AlarmRule,
    },
}

/// An alarm as the template defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmDefinition {
    /// Logical id.
    pub logical_id: String,
    /// Its name (CloudFormation's generated name, locally `{prefix}-{LogicalId}`).
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// `AlarmDescription`.
    pub description: String,
    /// The rule.
    pub kind: AlarmKind,
    /// Topics notified on ALARM, OK and INSUFFICIENT_DATA.
    pub actions: BTreeMap<String, Vec<String>>,
}

/// The alarms of `template`, in the template's order.
///
/// # Errors
/// [`DefinitionError`] for anything the plane cannot evaluate as CloudWatch would.
pub fn alarms(template: &Yaml, names: &Names) -> Result<Vec<AlarmDefinition>, DefinitionError> {
    let resources = get(template, "Resources")
        .and_then(Yaml::as_mapping)
        .ok_or_else(|| error("template", "no Resources"))?;
    let mut alarms = Vec::new();
    for (id, resource) in resources {
        let id = scalar(id).unwrap_or_default();
        let kind = get(resource, "Type").and_then(scalar).unwrap_or_default();
        let props = get(resource, "Properties").unwrap_or(&Yaml::Null);
        let at = |property: &str| format!("{id}.{property}");
        let text = |property: &str| -> Result<Option<String>, DefinitionError> {
            get(props, property)
                .map(|v| names.resolve(v, &at(property)))
                .transpose()
        };
        let kind = match kind.as_str() {
            "AWS::CloudWatch::Alarm" => AlarmKind::Metric(metric_alarm(&id, props, names)?),
            "AWS::CloudWatch::CompositeAlarm" => {
                let rule_text =
                    text("AlarmRule")?.ok_or_else(|| error(at("AlarmRule"), "missing"))?;
                let rule = AlarmRule::parse(&rule_text)
                    .map_err(|e| error(at("AlarmRule"), e.to_string()))?;
                AlarmKind::Composite {
                    text: rule_text,
                    rule,
                }
            }
            _ => continue,
        };
        let mut actions = BTreeMap::new();
        for (property, state) in [
            ("AlarmActions", "ALARM"),
            ("OKActions", "OK"),
            ("InsufficientDataActions", "INSUFFICIENT_DATA"),
        ] {
            let topics = get(props, property)
                .and_then(Yaml::as_sequence)
                .into_iter()
                .flatten()
                .map(|v| names.resolve(v, &at(property)))
                .collect::<Result<Vec<_>, _>>()?;
            actions.insert(state.to_owned(), topics);
        }
        alarms.push(AlarmDefinition {
            name: names
                .references
                .get(&id)
                .cloned()
                .ok_or_else(|| error(&id, "the local stack gave this alarm no name"))?,
            arn: names
                .attributes
                .get(&(id.clone(), "Arn".to_owned()))
                .cloned()
                .unwrap_or_default(),
            description: text("AlarmDescription")?.unwrap_or_default(),
            logical_id: id,
            kind,
            actions,
        });
    }
    Ok(alarms)
}

fn metric_stat(
    at: &str,
    metric: &Yaml,
    period: Option<&Yaml>,
    statistic: Option<&Yaml>,
    names: &Names,
) -> Result<QuerySource, DefinitionError> {
    let namespace = get(metric, "Namespace")
        .map(|v| names.resolve(v, at))
        .transpose()?
        .ok_or_else(|| error(at, "no Namespace"))?;
    let name = get(metric, "MetricName")
        .map(|v| names.resolve(v, at))
        .transpose()?
        .ok_or_else(|| error(at, "no MetricName"))?;
    let mut dimensions = BTreeMap::new();
    for dimension in get(metric, "Dimensions")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
    {
        let key = get(dimension, "Name")
            .map(|v| names.resolve(v, at))
            .transpose()?
            .ok_or_else(|| error(at, "a dimension without Name"))?;
        let value = get(dimension, "Value")
            .map(|v| names.resolve(v, at))
            .transpose()?
            .ok_or_else(|| error(at, "a dimension without Value"))?;
        dimensions.insert(key, value);
    }
    let period_s: i64 = period
        .map(|v| names.resolve(v, at))
        .transpose()?
        .ok_or_else(|| error(at, "no Period"))?
        .parse()
        .map_err(|_| error(at, "Period is not a number"))?;
    if period_s < 60 || period_s % 60 != 0 {
        return Err(error(
            at,
            format!("a Period of {period_s} s (high-resolution alarms are not implemented)"),
        ));
    }
    let statistic: Statistic = statistic
        .map(|v| names.resolve(v, at))
        .transpose()?
        .ok_or_else(|| error(at, "no statistic"))?
        .parse()
        .map_err(|e: super::store::UnsupportedStatistic| error(at, e.to_string()))?;
    Ok(QuerySource::Metric {
        metric: MetricId {
            namespace,
            name,
            dimensions,
        },
        period_s,
        statistic,
    })
}

fn metric_alarm(id: &str, props: &Yaml, names: &Names) -> Result<MetricAlarm, DefinitionError> {
    let at = |property: &str| format!("{id}.{property}");
    let text = |property: &str| -> Result<Option<String>, DefinitionError> {
        get(props, property)
            .map(|v| names.resolve(v, &at(property)))
            .transpose()
    };
    for unsupported in ["ThresholdMetricId", "EvaluateLowSampleCountPercentile"] {
        if get(props, unsupported).is_some() {
            return Err(error(at(unsupported), "not implemented by the local plane"));
        }
    }
    let queries = match get(props, "Metrics").and_then(Yaml::as_sequence) {
        Some(entries) => entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let at = format!("{id}.Metrics[{i}]");
                let query_id = get(entry, "Id")
                    .and_then(scalar)
                    .ok_or_else(|| error(&at, "no Id"))?;
                let source = match (get(entry, "Expression"), get(entry, "MetricStat")) {
                    (Some(expression), None) => {
                        let text = names.resolve(expression, &at)?;
                        let expr = Expr::parse(&text).map_err(|e| error(&at, e.to_string()))?;
                        QuerySource::Expression { text, expr }
                    }
                    (None, Some(stat)) => metric_stat(
                        &at,
                        get(stat, "Metric").unwrap_or(&Yaml::Null),
                        get(stat, "Period"),
                        get(stat, "Stat"),
                        names,
                    )?,
                    _ => return Err(error(&at, "needs exactly one of Expression and MetricStat")),
                };
                Ok(MetricQuery {
                    id: query_id,
                    return_data: get(entry, "ReturnData")
                        .and_then(Yaml::as_bool)
                        .unwrap_or(true),
                    label: get(entry, "Label").and_then(scalar),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => {
            let statistic = get(props, "Statistic").or_else(|| get(props, "ExtendedStatistic"));
            vec![MetricQuery {
                id: "m1".to_owned(),
                return_data: true,
                label: None,
                source: metric_stat(id, props, get(props, "Period"), statistic, names)?,
            }]
        }
    };
    let returned = queries.iter().filter(|q| q.return_data).count();
    if returned != 1 {
        return Err(error(
            at("Metrics"),
            format!("{returned} entries have ReturnData true; an alarm needs exactly one"),
        ));
    }
    let periods: Vec<i64> = queries
        .iter()
        .filter_map(|q| match q.source {
            QuerySource::Metric { period_s, .. } => Some(period_s),
            QuerySource::Expression { .. } => None,
        })
        .collect();
    let period_s = *periods
        .first()
        .ok_or_else(|| error(at("Metrics"), "no metric to evaluate"))?;
    if periods.iter().any(|p| *p != period_s) {
        return Err(error(
            at("Metrics"),
            "every metric of a math alarm must use the same period",
        ));
    }
    let number = |property: &str| -> Result<Option<f64>, DefinitionError> {
        text(property)?
            .map(|t| {
                t.parse()
                    .map_err(|_| error(at(property), format!("{t:?} is not a number")))
            })
            .transpose()
    };
    let evaluation_periods = number("EvaluationPeriods")?
        .ok_or_else(|| error(at("EvaluationPeriods"), "missing"))?
        as usize;
    let rule = Rule {
        threshold: number("Threshold")?.ok_or_else(|| error(at("Threshold"), "missing"))?,
        comparison: text("ComparisonOperator")?
            .ok_or_else(|| error(at("ComparisonOperator"), "missing"))?
            .parse::<Comparison>()
            .map_err(|e| error(at("ComparisonOperator"), e.to_string()))?,
        evaluation_periods,
        datapoints_to_alarm: number("DatapointsToAlarm")?
            .map_or(evaluation_periods, |m| m as usize),
        treat_missing_data: text("TreatMissingData")?
            .as_deref()
            .unwrap_or("missing")
            .parse::<TreatMissingData>()
            .map_err(|e| error(at("TreatMissingData"), e.to_string()))?,
    };
    Ok(MetricAlarm {
        queries,
        period_s,
        rule,
    })
}

/// A dashboard the template deploys: its name and body (JSON, resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardDefinition {
    /// Logical id (in the nested template when it is one).
    pub logical_id: String,
    /// `DashboardName`, resolved.
    pub name: String,
    /// `DashboardBody`, resolved and parsed.
    pub body: serde_json::Value,
}

/// The dashboards the template deploys, its own and those of nested stacks whose
/// `Location` is a file beside it.
///
/// # Errors
/// [`DefinitionError`] if one cannot be read or resolved.
pub fn dashboards(
    template: &Yaml,
    directory: &Path,
    names: &Names,
) -> Result<Vec<DashboardDefinition>, DefinitionError> {
    let resources = get(template, "Resources")
        .and_then(Yaml::as_mapping)
        .ok_or_else(|| error("template", "no Resources"))?;
    let mut found = Vec::new();
    for (id, resource) in resources {
        let id = scalar(id).unwrap_or_default();
        let props = get(resource, "Properties").unwrap_or(&Yaml::Null);
        match get(resource, "Type").and_then(scalar).as_deref() {
            Some("AWS::CloudWatch::Dashboard") => {
                let at = format!("{id}.DashboardBody");
                let body = names.resolve(
                    get(props, "DashboardBody").ok_or_else(|| error(&at, "missing"))?,
                    &at,
                )?;
                found.push(DashboardDefinition {
                    name: get(props, "DashboardName")
                        .map(|v| names.resolve(v, &format!("{id}.DashboardName")))
                        .transpose()?
                        .unwrap_or_else(|| id.clone()),
                    body: serde_json::from_str(&body)
                        .map_err(|e| error(&at, format!("not JSON once resolved: {e}")))?,
                    logical_id: id,
                });
            }
            Some("AWS::Serverless::Application" | "AWS::CloudFormation::Stack") => {
                let Some(location) = get(props, "Location")
                    .or_else(|| get(props, "TemplateURL"))
                    .and_then(scalar)
                else {
                    continue;
                };
                let path = directory.join(&location);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| error(&id, format!("{}: {e}", path.display())))?;
                let nested: Yaml =
                    serde_norway::from_str(&text).map_err(|e| error(&location, e.to_string()))?;
                let mut inner = Names::default();
                for pseudo in [
                    "AWS::Region",
                    "AWS::AccountId",
                    "AWS::Partition",
                    "AWS::URLSuffix",
                ] {
                    if let Some(value) = names.references.get(pseudo) {
                        inner.reference(pseudo, value.clone());
                    }
                }
                inner.reference("AWS::StackName", format!("{id}-nested"));
                for (name, value) in get(props, "Parameters")
                    .and_then(Yaml::as_mapping)
                    .into_iter()
                    .flatten()
                {
                    let name = scalar(name).unwrap_or_default();
                    let value = names.resolve(value, &format!("{id}.Parameters.{name}"))?;
                    inner.reference(&name, value);
                }
                found.extend(dashboards(
                    &nested,
                    path.parent().unwrap_or(directory),
                    &inner,
                )?);
            }
            _ => {}
        }
    }
    Ok(found)
}

/// What the local gateway reports itself as, from the template's `AWS::Serverless::Api`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// `Name`: the `ApiName` dimension of `AWS/ApiGateway` metrics.
    pub name: String,
    /// `StageName`: the `Stage` dimension.
    pub stage: String,
    /// The access log's group and `Format`, if the stage writes one.
    pub access_log: Option<(String, String)>,
}

/// The API's settings (the template's one `AWS::Serverless::Api`).
///
/// # Errors
/// [`DefinitionError`] if there is not exactly one, or a value does not resolve.
pub fn api(template: &Yaml, names: &Names) -> Result<ApiSettings, DefinitionError> {
    let apis: Vec<_> = get(template, "Resources")
        .and_then(Yaml::as_mapping)
        .into_iter()
        .flatten()
        .filter(|(_, r)| get(r, "Type").and_then(scalar).as_deref() == Some("AWS::Serverless::Api"))
        .collect();
    let [(id, api)] = apis.as_slice() else {
        return Err(error(
            "template",
            format!("expected one AWS::Serverless::Api, found {}", apis.len()),
        ));
    };
    let id = scalar(id).unwrap_or_default();
    let props = get(api, "Properties").unwrap_or(&Yaml::Null);
    let text = |property: &str| {
        get(props, property)
            .map(|v| names.resolve(v, &format!("{id}.{property}")))
            .transpose()
    };
    let access_log = match get(props, "AccessLogSetting") {
        None => None,
        Some(setting) => {
            let at = format!("{id}.AccessLogSetting");
            let destination = get(setting, "DestinationArn")
                .map(|v| names.resolve(v, &at))
                .transpose()?
                .ok_or_else(|| error(&at, "no DestinationArn"))?;
            // arn:aws:logs:region:account:log-group:NAME
            let group = destination
                .split_once(":log-group:")
                .map(|(_, g)| g.trim_end_matches(":*").to_owned())
                .ok_or_else(|| error(&at, format!("{destination} is not a log group ARN")))?;
            let format = get(setting, "Format")
                .and_then(scalar)
                .ok_or_else(|| error(&at, "no Format"))?;
            Some((group, format))
        }
    };
    Ok(ApiSettings {
        name: text("Name")?.unwrap_or_else(|| id.clone()),
        stage: text("StageName")?.ok_or_else(|| error(&id, "no StageName"))?,
        access_log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        let mut names = Names::default();
        names.reference("AWS::StackName", "ecommerce");
        names.reference("AWS::Region", "eu-west-1");
        names.reference("Fn", "orders-api");
        names.attribute("Q", "QueueName", "ecommerce-Q");
        names.attribute(
            "A",
            "Arn",
            "arn:aws:cloudwatch:eu-west-1:000000000000:alarm:ecommerce-A",
        );
        names
    }

    fn yaml(text: &str) -> Yaml {
        serde_norway::from_str(text).unwrap()
    }

    #[test]
    fn intrinsics_resolve_to_local_names() {
        let names = names();
        let cases = [
            ("!Ref Fn", "orders-api"),
            ("!GetAtt Q.QueueName", "ecommerce-Q"),
            ("{ 'Fn::GetAtt': [Q, QueueName] }", "ecommerce-Q"),
            (
                "!Sub \"${AWS::StackName}-${Fn} ${Q.QueueName} ${!Literal}\"",
                "ecommerce-orders-api ecommerce-Q ${Literal}",
            ),
            ("!Sub ['${X}!', { X: !Ref Fn }]", "orders-api!"),
            (
                "!Join ['\",\"', [!GetAtt A.Arn, !Ref Fn]]",
                "arn:aws:cloudwatch:eu-west-1:000000000000:alarm:ecommerce-A\",\"orders-api",
            ),
            ("60", "60"),
        ];
        for (text, want) in cases {
            assert_eq!(names.resolve(&yaml(text), "t").unwrap(), want, "{text}");
        }
        for (text, named) in [
            ("!Ref Nothing", "Nothing"),
            ("!GetAtt Q.Arn", "Q.Arn"),
            ("!Select [0, [a]]", "!Select"),
            ("!Sub '${Missing}'", "Missing"),
        ] {
            let err = names.resolve(&yaml(text), "t").unwrap_err().to_string();
            assert!(err.contains(named), "{text}: {err}");
        }
    }

    #[test]
    fn alarms_with_what_the_plane_cannot_evaluate_are_refused() {
        let mut names = names();
        names.reference("Bad", "ecommerce-Bad");
        for (props, named) in [
            (
                "{ Namespace: N, MetricName: M, Statistic: tm90, Period: 60, EvaluationPeriods: 1, Threshold: 1, ComparisonOperator: GreaterThanThreshold }",
                "tm90",
            ),
            (
                "{ Namespace: N, MetricName: M, Statistic: Sum, Period: 10, EvaluationPeriods: 1, Threshold: 1, ComparisonOperator: GreaterThanThreshold }",
                "high-resolution",
            ),
            (
                "{ Namespace: N, MetricName: M, Statistic: Sum, Period: 60, EvaluationPeriods: 1, Threshold: 1, ComparisonOperator: LessThanLowerThreshold }",
                "LessThanLowerThreshold",
            ),
            (
                "{ Metrics: [{ Id: e, Expression: 'RATE(m)' }, { Id: m, ReturnData: false, MetricStat: { Metric: { Namespace: N, MetricName: M }, Period: 60, Stat: Sum } }], EvaluationPeriods: 1, Threshold: 1, ComparisonOperator: GreaterThanThreshold }",
                "RATE()",
            ),
            (
                "{ Metrics: [{ Id: e, Expression: 'a + b' }, { Id: a, ReturnData: false, MetricStat: { Metric: { Namespace: N, MetricName: M }, Period: 60, Stat: Sum } }, { Id: b, ReturnData: false, MetricStat: { Metric: { Namespace: N, MetricName: M }, Period: 300, Stat: Sum } }], EvaluationPeriods: 1, Threshold: 1, ComparisonOperator: GreaterThanThreshold }",
                "same period",
            ),
        ] {
            let template = yaml(&format!(
                "Resources: {{ Bad: {{ Type: AWS::CloudWatch::Alarm, Properties: {props} }} }}"
            ));
            let err = alarms(&template, &names).unwrap_err().to_string();
            assert!(err.contains(named), "{err}");
        }
    }
}
