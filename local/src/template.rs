//! Reads `template.yaml`: the table, queues, functions, event source mappings and API
//! routes the local stack builds, so local runs and deployments cannot drift apart.
//!
//! Only what the local stack needs is modelled. Intrinsics stay symbolic
//! ([`Value::Ref`], [`Value::GetAtt`]) and are resolved by the stack against the
//! resources it created; a construct the reader does not understand is an error that
//! names it, never a silent default.

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::Value as Yaml;

/// Why the template could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// The template lacks something the stack needs, or uses a form it cannot read.
    #[error("template: {0}")]
    Unsupported(String),
}

fn unsupported(message: impl Into<String>) -> TemplateError {
    TemplateError::Unsupported(message.into())
}

/// A property value: a literal or an intrinsic function to resolve later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A plain string (numbers and booleans are kept as their text).
    Literal(String),
    /// `!Ref LogicalId` (a resource or a parameter).
    Ref(String),
    /// `!GetAtt LogicalId.Attribute`.
    GetAtt(String, String),
}

/// The DynamoDB table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Logical id in the template.
    pub logical_id: String,
    /// Attribute definitions: name and type (`S`, `N`, `B`).
    pub attributes: Vec<(String, String)>,
    /// Primary key: names with `HASH` / `RANGE`.
    pub key_schema: Vec<(String, String)>,
    /// Global secondary indexes.
    pub indexes: Vec<IndexSpec>,
    /// `StreamSpecification.StreamViewType`, if the table has a stream.
    pub stream_view_type: Option<String>,
    /// `TimeToLiveSpecification.AttributeName`, if TTL is enabled.
    pub ttl_attribute: Option<String>,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// Index name.
    pub name: String,
    /// Key names with `HASH` / `RANGE`.
    pub key_schema: Vec<(String, String)>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection: String,
    /// The attributes an `INCLUDE` projection adds.
    pub non_key_attributes: Vec<String>,
}

/// An SQS queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Logical id in the template.
    pub logical_id: String,
    /// Queue attributes by their API names (`VisibilityTimeout`, ...), literal values.
    pub attributes: BTreeMap<String, String>,
    /// Dead-letter queue (logical id) and `maxReceiveCount`.
    pub redrive: Option<(String, u32)>,
}

/// A Lambda function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Logical id in the template.
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    /// Timeout in seconds.
    pub timeout_seconds: u64,
    /// Memory in MB.
    pub memory_mb: u64,
    /// Environment variables (globals merged, the function's own win).
    pub environment: BTreeMap<String, Value>,
    /// `LoggingConfig.ApplicationLogLevel`, resolved from parameter defaults.
    pub log_level: Option<String>,
    /// `LoggingConfig.LogFormat`.
    pub log_format: Option<String>,
}

/// A DynamoDB-stream event source mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMappingSpec {
    /// The function it invokes.
    pub function: String,
    /// The table whose stream it reads.
    pub table: String,
    /// Most records per invocation.
    pub batch_size: usize,
    /// Longest wait to fill a batch, in seconds.
    pub batching_window_seconds: u64,
    /// Split a failing batch in two before retrying.
    pub bisect_on_error: bool,
    /// Retries before a record goes to the on-failure destination.
    pub maximum_retry_attempts: u32,
    /// `ReportBatchItemFailures` is on.
    pub report_batch_item_failures: bool,
    /// Filter patterns (a record passes if any matches).
    pub filters: Vec<serde_json::Value>,
    /// On-failure destination queue (logical id).
    pub on_failure_queue: Option<String>,
}

/// An SQS event source mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsMappingSpec {
    /// The function it invokes.
    pub function: String,
    /// The queue it reads (logical id).
    pub queue: String,
    /// Most messages per invocation (at most 10 per receive).
    pub batch_size: usize,
    /// `ReportBatchItemFailures` is on.
    pub report_batch_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`: most invocations at once (Lambda's floor
    /// is 2; without the setting it scales to the account's limit).
    pub maximum_concurrency: Option<u32>,
}

/// An API route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The function it invokes.
    pub function: String,
    /// Resource path, e.g. `/cart/{user_id}`.
    pub path: String,
    /// HTTP method.
    pub method: String,
    /// Whether the method requires an API key.
    pub api_key_required: bool,
}

/// Everything the local stack builds.
#[derive(Debug, Clone, PartialEq)]
pub struct StackSpec {
    /// The table.
    pub table: TableSpec,
    /// The queues.
    pub queues: Vec<QueueSpec>,
    /// The functions.
    pub functions: Vec<FunctionSpec>,
    /// Stream mappings.
    pub stream_mappings: Vec<StreamMappingSpec>,
    /// SQS mappings.
    pub sqs_mappings: Vec<SqsMappingSpec>,
    /// API routes.
    pub routes: Vec<RouteSpec>,
    /// Parameter defaults.
    pub parameters: BTreeMap<String, String>,
}

impl StackSpec {
    /// Reads a template file.
    ///
    /// # Errors
    /// [`TemplateError`] naming the problem.
    pub fn from_file(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Reads a template.
    ///
    /// # Errors
    /// [`TemplateError`] naming the problem.
    pub fn from_yaml(text: &str) -> Result<Self, TemplateError> {
        let doc: Yaml = serde_norway::from_str(text)?;
        Reader::new(&doc)?.stack()
    }

    /// A function by logical id.
    pub fn function(&self, logical_id: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }

    /// A queue by logical id.
    pub fn queue(&self, logical_id: &str) -> Option<&QueueSpec> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }
}

struct Reader<'a> {
    resources: &'a serde_norway::Mapping,
    globals: Option<&'a Yaml>,
    parameters: BTreeMap<String, String>,
}

fn get<'a>(value: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    value.as_mapping()?.get(key)
}

fn text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn intrinsic(value: &Yaml) -> Result<Value, TemplateError> {
    let get_att = |target: &str| {
        target
            .split_once('.')
            .map(|(id, attribute)| Value::GetAtt(id.to_owned(), attribute.to_owned()))
            .ok_or_else(|| unsupported(format!("GetAtt {target} has no attribute")))
    };
    match value {
        Yaml::Tagged(tagged) => {
            let inner = text(&tagged.value);
            match (tagged.tag.to_string().as_str(), inner) {
                ("!Ref", Some(target)) => Ok(Value::Ref(target)),
                ("!GetAtt", Some(target)) => get_att(&target),
                (tag, _) => Err(unsupported(format!(
                    "intrinsic {tag} is not supported here"
                ))),
            }
        }
        Yaml::Mapping(map) if map.len() == 1 => {
            if let Some(target) = map.get("Ref").and_then(text) {
                Ok(Value::Ref(target))
            } else if let Some(Yaml::Sequence(parts)) = map.get("Fn::GetAtt") {
                let parts: Vec<String> = parts.iter().filter_map(text).collect();
                get_att(&parts.join("."))
            } else {
                Err(unsupported(format!(
                    "value {value:?} is not supported here"
                )))
            }
        }
        other => text(other)
            .map(Value::Literal)
            .ok_or_else(|| unsupported(format!("value {other:?} is not a string"))),
    }
}

fn key_schema(value: Option<&Yaml>, what: &str) -> Result<Vec<(String, String)>, TemplateError> {
    value
        .and_then(Yaml::as_sequence)
        .ok_or_else(|| unsupported(format!("{what} has no KeySchema")))?
        .iter()
        .map(|k| {
            match (
                get(k, "AttributeName").and_then(text),
                get(k, "KeyType").and_then(text),
            ) {
                (Some(name), Some(kind)) => Ok((name, kind)),
                _ => Err(unsupported(format!("{what}: malformed KeySchema entry"))),
            }
        })
        .collect()
}

impl<'a> Reader<'a> {
    fn new(doc: &'a Yaml) -> Result<Self, TemplateError> {
        let resources = get(doc, "Resources")
            .and_then(Yaml::as_mapping)
            .ok_or_else(|| unsupported("no Resources section"))?;
        let parameters = get(doc, "Parameters")
            .and_then(Yaml::as_mapping)
            .map(|params| {
                params
                    .iter()
                    .filter_map(|(name, p)| Some((text(name)?, text(get(p, "Default")?)?)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            resources,
            globals: get(doc, "Globals").and_then(|g| get(g, "Function")),
            parameters,
        })
    }

    fn of_type(&self, kind: &str) -> Vec<(String, &'a Yaml)> {
        self.resources
            .iter()
            .filter(|(_, r)| get(r, "Type").and_then(text).as_deref() == Some(kind))
            .filter_map(|(id, r)| Some((text(id)?, r)))
            .collect()
    }

    /// A function property, falling back to `Globals.Function`.
    fn function_property(&self, function: &'a Yaml, name: &str) -> Option<&'a Yaml> {
        get(function, "Properties")
            .and_then(|p| get(p, name))
            .or_else(|| self.globals.and_then(|g| get(g, name)))
    }

    /// A literal, or a `!Ref` to a parameter, as text.
    fn parameter_text(&self, value: &Yaml) -> Result<String, TemplateError> {
        match intrinsic(value)? {
            Value::Literal(s) => Ok(s),
            Value::Ref(name) => self.parameters.get(&name).cloned().ok_or_else(|| {
                unsupported(format!("Ref {name} is not a parameter with a default"))
            }),
            Value::GetAtt(id, attribute) => Err(unsupported(format!(
                "GetAtt {id}.{attribute} where a literal is needed"
            ))),
        }
    }

    fn stack(&self) -> Result<StackSpec, TemplateError> {
        let tables = self.of_type("AWS::DynamoDB::Table");
        let [(table_id, table)] = tables.as_slice() else {
            return Err(unsupported(format!(
                "expected one AWS::DynamoDB::Table, found {}",
                tables.len()
            )));
        };
        let table = self.table(table_id, table)?;
        let queues = self
            .of_type("AWS::SQS::Queue")
            .into_iter()
            .map(|(id, q)| self.queue(&id, q))
            .collect::<Result<_, _>>()?;
        let mut spec = StackSpec {
            table,
            queues,
            functions: Vec::new(),
            stream_mappings: Vec::new(),
            sqs_mappings: Vec::new(),
            routes: Vec::new(),
            parameters: self.parameters.clone(),
        };
        let api_key_default = self.of_type("AWS::Serverless::Api").iter().any(|(_, api)| {
            get(api, "Properties")
                .and_then(|p| get(p, "Auth"))
                .and_then(|a| get(a, "ApiKeyRequired"))
                .and_then(Yaml::as_bool)
                == Some(true)
        });
        for (id, function) in self.of_type("AWS::Serverless::Function") {
            spec.functions.push(self.function(&id, function)?);
            let events = get(function, "Properties")
                .and_then(|p| get(p, "Events"))
                .and_then(Yaml::as_mapping);
            for (event_id, event) in events.into_iter().flatten() {
                let kind = get(event, "Type").and_then(text).unwrap_or_default();
                let props = get(event, "Properties").unwrap_or(&Yaml::Null);
                let event_id = text(event_id).unwrap_or_default();
                match kind.as_str() {
                    "DynamoDB" => spec
                        .stream_mappings
                        .push(self.stream_mapping(&id, &event_id, props)?),
                    "SQS" => spec
                        .sqs_mappings
                        .push(self.sqs_mapping(&id, &event_id, props)?),
                    "Api" => spec.routes.push(RouteSpec {
                        function: id.clone(),
                        path: get(props, "Path")
                            .and_then(text)
                            .ok_or_else(|| unsupported(format!("{event_id}: no Path")))?,
                        method: get(props, "Method")
                            .and_then(text)
                            .unwrap_or_default()
                            .to_ascii_uppercase(),
                        api_key_required: get(props, "Auth")
                            .and_then(|a| get(a, "ApiKeyRequired"))
                            .and_then(Yaml::as_bool)
                            .unwrap_or(api_key_default),
                    }),
                    other => {
                        return Err(unsupported(format!(
                            "{id}.{event_id}: event type {other} is not supported"
                        )));
                    }
                }
            }
        }
        Ok(spec)
    }

    fn table(&self, id: &str, table: &Yaml) -> Result<TableSpec, TemplateError> {
        let props = get(table, "Properties")
            .ok_or_else(|| unsupported(format!("{id} has no Properties")))?;
        // Properties with no local effect; anything else unknown is refused, so a new
        // table feature cannot be silently missing from local runs.
        const NO_LOCAL_EFFECT: [&str; 6] = [
            "BillingMode",
            "PointInTimeRecoverySpecification",
            "SSESpecification",
            "Tags",
            "DeletionProtectionEnabled",
            "ContributorInsightsSpecification",
        ];
        const MODELLED: [&str; 5] = [
            "AttributeDefinitions",
            "KeySchema",
            "GlobalSecondaryIndexes",
            "StreamSpecification",
            "TimeToLiveSpecification",
        ];
        for name in props
            .as_mapping()
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| text(k))
        {
            if !NO_LOCAL_EFFECT.contains(&name.as_str()) && !MODELLED.contains(&name.as_str()) {
                return Err(unsupported(format!(
                    "{id}: table property {name} is not modelled by the local stack"
                )));
            }
        }
        let attributes = get(props, "AttributeDefinitions")
            .and_then(Yaml::as_sequence)
            .ok_or_else(|| unsupported(format!("{id} has no AttributeDefinitions")))?
            .iter()
            .map(|a| {
                match (
                    get(a, "AttributeName").and_then(text),
                    get(a, "AttributeType").and_then(text),
                ) {
                    (Some(name), Some(kind)) => Ok((name, kind)),
                    _ => Err(unsupported(format!(
                        "{id}: malformed AttributeDefinitions entry"
                    ))),
                }
            })
            .collect::<Result<_, _>>()?;
        let indexes = get(props, "GlobalSecondaryIndexes")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
            .map(|index| {
                let name = get(index, "IndexName")
                    .and_then(text)
                    .ok_or_else(|| unsupported(format!("{id}: index without IndexName")))?;
                Ok(IndexSpec {
                    key_schema: key_schema(get(index, "KeySchema"), &name)?,
                    projection: get(index, "Projection")
                        .and_then(|p| get(p, "ProjectionType"))
                        .and_then(text)
                        .unwrap_or_else(|| "KEYS_ONLY".to_owned()),
                    non_key_attributes: get(index, "Projection")
                        .and_then(|p| get(p, "NonKeyAttributes"))
                        .and_then(Yaml::as_sequence)
                        .into_iter()
                        .flatten()
                        .filter_map(text)
                        .collect(),
                    name,
                })
            })
            .collect::<Result<_, TemplateError>>()?;
        let ttl = get(props, "TimeToLiveSpecification");
        Ok(TableSpec {
            logical_id: id.to_owned(),
            attributes,
            key_schema: key_schema(get(props, "KeySchema"), id)?,
            indexes,
            stream_view_type: get(props, "StreamSpecification")
                .and_then(|s| get(s, "StreamViewType"))
                .and_then(text),
            ttl_attribute: ttl
                .filter(|t| get(t, "Enabled").and_then(Yaml::as_bool) == Some(true))
                .and_then(|t| get(t, "AttributeName"))
                .and_then(text),
        })
    }

    fn queue(&self, id: &str, queue: &Yaml) -> Result<QueueSpec, TemplateError> {
        let mut attributes = BTreeMap::new();
        let mut redrive = None;
        for (name, value) in get(queue, "Properties")
            .and_then(Yaml::as_mapping)
            .into_iter()
            .flatten()
        {
            let name = text(name).unwrap_or_default();
            match name.as_str() {
                "RedrivePolicy" => {
                    let target = get(value, "deadLetterTargetArn")
                        .map(intrinsic)
                        .transpose()?;
                    let count = get(value, "maxReceiveCount")
                        .and_then(text)
                        .and_then(|c| c.parse().ok());
                    match (target, count) {
                        (Some(Value::GetAtt(dlq, attribute)), Some(count))
                            if attribute == "Arn" =>
                        {
                            redrive = Some((dlq, count));
                        }
                        _ => {
                            return Err(unsupported(format!(
                                "{id}: RedrivePolicy needs deadLetterTargetArn: !GetAtt <queue>.Arn and maxReceiveCount"
                            )));
                        }
                    }
                }
                // Encryption has no local equivalent; the emulator stores messages in memory.
                "SqsManagedSseEnabled"
                | "KmsMasterKeyId"
                | "KmsDataKeyReusePeriodSeconds"
                | "Tags"
                | "QueueName" => {}
                _ => {
                    attributes.insert(name, self.parameter_text(value)?);
                }
            }
        }
        Ok(QueueSpec {
            logical_id: id.to_owned(),
            attributes,
            redrive,
        })
    }

    fn function(&self, id: &str, function: &'a Yaml) -> Result<FunctionSpec, TemplateError> {
        let binary = get(function, "Metadata")
            .and_then(|m| get(m, "BuildProperties"))
            .and_then(|b| get(b, "Binary"))
            .and_then(text)
            .ok_or_else(|| {
                unsupported(format!(
                    "{id}: Metadata.BuildProperties.Binary names no binary"
                ))
            })?;
        let number = |name: &str, default: u64| -> Result<u64, TemplateError> {
            match self.function_property(function, name) {
                None => Ok(default),
                Some(v) => self
                    .parameter_text(v)?
                    .parse()
                    .map_err(|_| unsupported(format!("{id}: {name} is not a number"))),
            }
        };
        let mut environment = BTreeMap::new();
        let own = get(function, "Properties").and_then(|p| get(p, "Environment"));
        for source in [self.globals.and_then(|g| get(g, "Environment")), own]
            .into_iter()
            .flatten()
        {
            for (name, value) in get(source, "Variables")
                .and_then(Yaml::as_mapping)
                .into_iter()
                .flatten()
            {
                environment.insert(text(name).unwrap_or_default(), intrinsic(value)?);
            }
        }
        let logging = self.function_property(function, "LoggingConfig");
        let logging_text = |name: &str| -> Result<Option<String>, TemplateError> {
            logging
                .and_then(|l| get(l, name))
                .map(|v| self.parameter_text(v))
                .transpose()
        };
        Ok(FunctionSpec {
            logical_id: id.to_owned(),
            binary,
            timeout_seconds: number("Timeout", 3)?,
            memory_mb: number("MemorySize", 128)?,
            environment,
            log_level: logging_text("ApplicationLogLevel")?,
            log_format: logging_text("LogFormat")?,
        })
    }

    fn stream_mapping(
        &self,
        function: &str,
        event: &str,
        props: &Yaml,
    ) -> Result<StreamMappingSpec, TemplateError> {
        let table = match get(props, "Stream").map(intrinsic).transpose()? {
            Some(Value::GetAtt(table, attribute)) if attribute == "StreamArn" => table,
            _ => {
                return Err(unsupported(format!(
                    "{function}.{event}: Stream must be !GetAtt <table>.StreamArn"
                )));
            }
        };
        let filters = get(props, "FilterCriteria")
            .and_then(|f| get(f, "Filters"))
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
            .map(|f| {
                let pattern = get(f, "Pattern").and_then(text).ok_or_else(|| {
                    unsupported(format!("{function}.{event}: filter without Pattern"))
                })?;
                serde_json::from_str(&pattern).map_err(|e| {
                    unsupported(format!(
                        "{function}.{event}: filter pattern is not JSON: {e}"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let on_failure_queue = match get(props, "DestinationConfig")
            .and_then(|d| get(d, "OnFailure"))
            .and_then(|o| get(o, "Destination"))
            .map(intrinsic)
            .transpose()?
        {
            None => None,
            Some(Value::GetAtt(queue, attribute)) if attribute == "Arn" => Some(queue),
            Some(other) => {
                return Err(unsupported(format!(
                    "{function}.{event}: on-failure destination {other:?} must be !GetAtt <queue>.Arn"
                )));
            }
        };
        Ok(StreamMappingSpec {
            function: function.to_owned(),
            table,
            batch_size: self.number(props, "BatchSize", 100)?,
            batching_window_seconds: self.number(props, "MaximumBatchingWindowInSeconds", 0)?,
            bisect_on_error: get(props, "BisectBatchOnFunctionError")
                .and_then(Yaml::as_bool)
                .unwrap_or(false),
            // Lambda's default is -1: retry until the record expires.
            maximum_retry_attempts: self.number(props, "MaximumRetryAttempts", 10_000)?,
            report_batch_item_failures: reports_item_failures(props),
            filters,
            on_failure_queue,
        })
    }

    fn sqs_mapping(
        &self,
        function: &str,
        event: &str,
        props: &Yaml,
    ) -> Result<SqsMappingSpec, TemplateError> {
        let queue = match get(props, "Queue").map(intrinsic).transpose()? {
            Some(Value::GetAtt(queue, attribute)) if attribute == "Arn" => queue,
            _ => {
                return Err(unsupported(format!(
                    "{function}.{event}: Queue must be !GetAtt <queue>.Arn"
                )));
            }
        };
        Ok(SqsMappingSpec {
            function: function.to_owned(),
            queue,
            batch_size: self.number(props, "BatchSize", 10)?,
            report_batch_item_failures: reports_item_failures(props),
            maximum_concurrency: match get(props, "ScalingConfig") {
                Some(scaling) if get(scaling, "MaximumConcurrency").is_some() => {
                    Some(self.number(scaling, "MaximumConcurrency", 2)?)
                }
                _ => None,
            },
        })
    }

    fn number<T: std::str::FromStr>(
        &self,
        props: &Yaml,
        name: &str,
        default: T,
    ) -> Result<T, TemplateError> {
        match get(props, name) {
            None => Ok(default),
            Some(v) => self
                .parameter_text(v)?
                .parse()
                .map_err(|_| unsupported(format!("{name} is not a number"))),
        }
    }
}

fn reports_item_failures(props: &Yaml) -> bool {
    get(props, "FunctionResponseTypes")
        .and_then(Yaml::as_sequence)
        .is_some_and(|types| {
            types
                .iter()
                .any(|t| text(t).as_deref() == Some("ReportBatchItemFailures"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_template() -> StackSpec {
        StackSpec::from_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
            .unwrap()
    }

    #[test]
    fn reads_the_projects_template() {
        let spec = project_template();
        assert_eq!(
            spec.table.stream_view_type.as_deref(),
            Some("NEW_AND_OLD_IMAGES")
        );
        assert_eq!(spec.table.indexes.len(), 1);
        assert_eq!(spec.functions.len(), 3);
        assert_eq!(spec.stream_mappings.len(), 1);
        assert_eq!(spec.sqs_mappings.len(), 1);
        assert!(spec.routes.len() >= 9);
        assert!(spec.routes.iter().all(|r| r.api_key_required));
        let api = spec
            .functions
            .iter()
            .find(|f| f.binary == "orders-api")
            .unwrap();
        assert_eq!(
            api.environment.get("TABLE_NAME"),
            Some(&Value::Ref("OrdersTable".into()))
        );
        assert_eq!(api.log_level.as_deref(), Some("INFO"));
    }

    #[test]
    fn the_queue_outlives_six_consumer_timeouts() {
        let spec = project_template();
        for mapping in &spec.sqs_mappings {
            let timeout = spec.function(&mapping.function).unwrap().timeout_seconds;
            let visibility: u64 =
                spec.queue(&mapping.queue).unwrap().attributes["VisibilityTimeout"]
                    .parse()
                    .unwrap();
            assert!(visibility >= 6 * timeout, "{visibility} < 6 x {timeout}");
            assert!(mapping.report_batch_item_failures);
        }
        for mapping in &spec.stream_mappings {
            assert!(mapping.report_batch_item_failures);
            assert!(mapping.on_failure_queue.is_some());
        }
    }

    #[test]
    fn unsupported_forms_are_named() {
        let err = StackSpec::from_yaml("Resources: {}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected one AWS::DynamoDB::Table"), "{err}");
        let yaml = r#"
Resources:
  T: { Type: AWS::DynamoDB::Table, Properties: { AttributeDefinitions: [], KeySchema: [] } }
  F:
    Type: AWS::Serverless::Function
    Properties: { Environment: { Variables: { X: !Sub "${T}" } } }
    Metadata: { BuildProperties: { Binary: b } }
"#;
        let err = StackSpec::from_yaml(yaml).unwrap_err().to_string();
        assert!(err.contains("!Sub"), "{err}");
        let lsi = "Resources:\n  T: { Type: AWS::DynamoDB::Table, Properties: { LocalSecondaryIndexes: [] } }\n";
        let err = StackSpec::from_yaml(lsi).unwrap_err().to_string();
        assert!(
            err.contains("LocalSecondaryIndexes is not modelled"),
            "{err}"
        );
    }
}
