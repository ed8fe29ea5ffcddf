//! Creates the template's table and queues in the emulator.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::template::{QueueSpec, StackSpec, TableSpec};

/// A failed AWS call while creating resources.
#[derive(Debug, thiserror::Error)]
#[error("creating {what}: {message}")]
pub struct ResourceError {
    what: String,
    message: String,
}

fn fail(what: impl Into<String>) -> impl FnOnce(String) -> ResourceError {
    let what = what.into();
    move |message| ResourceError { what, message }
}

fn sdk_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()
}

/// A queue as created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    /// Queue name.
    pub name: String,
    /// Queue URL.
    pub url: String,
    /// Queue ARN.
    pub arn: String,
}

/// The created resources, by logical id.
#[derive(Debug, Clone)]
pub struct Resources {
    /// The table's logical id.
    pub table_logical_id: String,
    /// The table's name.
    pub table_name: String,
    /// The table's ARN.
    pub table_arn: String,
    /// The table's stream ARN.
    pub stream_arn: Option<String>,
    /// Queues by logical id.
    pub queues: BTreeMap<String, QueueRef>,
}

impl Resources {
    /// A queue by logical id.
    pub fn queue(&self, logical_id: &str) -> Option<&QueueRef> {
        self.queues.get(logical_id)
    }
}

/// Local deviations from the template, each one deliberate and visible.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Visibility timeout for every queue, in seconds. The template's value (six times
    /// the consumer's timeout) is right for AWS; a demo or test that waits for a poison
    /// message to be redriven three times can shorten it.
    pub visibility_timeout_seconds: Option<u32>,
}

/// Creates the table and queues of `spec`, named `{prefix}-{LogicalId}`.
///
/// # Errors
/// [`ResourceError`] naming the resource and the emulator's answer.
pub async fn create(
    sdk: &SdkConfig,
    spec: &StackSpec,
    prefix: &str,
    overrides: &Overrides,
) -> Result<Resources, ResourceError> {
    let (table_name, table_arn, stream_arn) = create_table(sdk, &spec.table, prefix).await?;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut queues = BTreeMap::new();
    // Dead-letter queues first: a queue's redrive policy needs its target's ARN.
    let mut pending: Vec<&QueueSpec> = spec.queues.iter().collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for queue in pending {
            match &queue.redrive {
                Some((dlq, _)) if !queues.contains_key(dlq) => rest.push(queue),
                _ => {
                    let created = create_queue(&sqs, queue, prefix, &queues, overrides).await?;
                    queues.insert(queue.logical_id.clone(), created);
                }
            }
        }
        if rest.len() == before {
            let names: Vec<_> = rest.iter().map(|q| q.logical_id.as_str()).collect();
            return Err(fail("queues")(format!(
                "redrive targets missing or circular for {names:?}"
            )));
        }
        pending = rest;
    }
    Ok(Resources {
        table_logical_id: spec.table.logical_id.clone(),
        table_name,
        table_arn,
        stream_arn,
        queues,
    })
}

async fn create_table(
    sdk: &SdkConfig,
    table: &TableSpec,
    prefix: &str,
) -> Result<(String, String, Option<String>), ResourceError> {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let name = format!("{prefix}-{}", table.logical_id);
    let what = format!("table {name}");
    let keys = |schema: &[(String, String)]| -> Result<Vec<KeySchemaElement>, String> {
        schema
            .iter()
            .map(|(attribute, kind)| {
                KeySchemaElement::builder()
                    .attribute_name(attribute)
                    .key_type(KeyType::from(kind.as_str()))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .collect()
    };
    let mut request = client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(keys(&table.key_schema).map_err(fail(&what))?));
    for (attribute, kind) in &table.attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
                .map_err(|e| fail(&what)(e.to_string()))?,
        );
    }
    for index in &table.indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(keys(&index.key_schema).map_err(fail(&what))?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(index.projection.as_str()))
                        .set_non_key_attributes(
                            (!index.non_key_attributes.is_empty())
                                .then(|| index.non_key_attributes.clone()),
                        )
                        .build(),
                )
                .build()
                .map_err(|e| fail(&what)(e.to_string()))?,
        );
    }
    if let Some(view) = &table.stream_view_type {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .map_err(|e| fail(&what)(e.to_string()))?,
        );
    }
    let description = request
        .send()
        .await
        .map_err(|e| fail(&what)(sdk_error(e)))?
        .table_description
        .ok_or_else(|| fail(&what)("no table description in the answer".to_owned()))?;
    if let Some(attribute) = &table.ttl_attribute {
        client
            .update_time_to_live()
            .table_name(&name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(attribute)
                    .build()
                    .map_err(|e| fail(&what)(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| fail(&what)(sdk_error(e)))?;
    }
    Ok((
        name,
        description.table_arn.unwrap_or_default(),
        description.latest_stream_arn,
    ))
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    queue: &QueueSpec,
    prefix: &str,
    created: &BTreeMap<String, QueueRef>,
    overrides: &Overrides,
) -> Result<QueueRef, ResourceError> {
    let fifo = queue
        .attributes
        .get("FifoQueue")
        .is_some_and(|v| v == "true");
    let name = format!(
        "{prefix}-{}{}",
        queue.logical_id,
        if fifo { ".fifo" } else { "" }
    );
    let what = format!("queue {name}");
    let mut request = client.create_queue().queue_name(&name);
    for (attribute, value) in &queue.attributes {
        let value = match (attribute.as_str(), overrides.visibility_timeout_seconds) {
            ("VisibilityTimeout", Some(seconds)) => seconds.to_string(),
            _ => value.clone(),
        };
        request = request.attributes(QueueAttributeName::from(attribute.as_str()), value);
    }
    if let (Some(seconds), false) = (
        overrides.visibility_timeout_seconds,
        queue.attributes.contains_key("VisibilityTimeout"),
    ) {
        request = request.attributes(QueueAttributeName::VisibilityTimeout, seconds.to_string());
    }
    if let Some((dlq, max_receive_count)) = &queue.redrive {
        let target = created
            .get(dlq)
            .ok_or_else(|| fail(&what)(format!("dead-letter queue {dlq} missing")))?;
        let policy = serde_json::json!({ "deadLetterTargetArn": target.arn, "maxReceiveCount": max_receive_count });
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let url = request
        .send()
        .await
        .map_err(|e| fail(&what)(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()))?
        .queue_url
        .unwrap_or_default();
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| fail(&what)(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .unwrap_or_default();
    Ok(QueueRef { name, url, arn })
}

/// Connecting to the emulator (loopback: only a dead emulator takes long).
pub const EMULATOR_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// One call to the emulator: its slowest answers (a long-polling receive of 1 s, a
/// table scan under load) take a few seconds at most.
pub const EMULATOR_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// A call with its retries.
pub const EMULATOR_OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// SDK configuration for the emulator at `endpoint`, with fixed test credentials, the
/// timeouts above and three attempts per call: the local stack's event sources and
/// tools, and the tests' own clients.
pub async fn emulator_sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client)
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "local",
        ))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(EMULATOR_CONNECT_TIMEOUT)
                .operation_attempt_timeout(EMULATOR_ATTEMPT_TIMEOUT)
                .operation_timeout(EMULATOR_OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}
