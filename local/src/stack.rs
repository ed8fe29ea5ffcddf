//! The local stack: emulator, resources, functions, event sources and gateway, built
//! from `template.yaml` and stopped as one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cloudwatch::definitions::{self, Names};
use crate::cloudwatch::{Plane, PlaneOptions, page};
use crate::faults::{self, FaultPlan, ProxyHandle, ProxyTelemetry};
use crate::filter::Pattern;
use crate::function::{Function, FunctionConfig};
use crate::gateway::{self, GatewayConfig};
use crate::moto::{self, Moto};
use crate::resources::{self, Overrides, Resources};
use crate::sqs_source::{self, SqsSourceConfig, SqsSourceStats};
use crate::stream_source::{self, StreamSourceConfig, StreamSourceStats};
use crate::template::{StackSpec, Value};

/// Why the stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The template could not be read.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    /// The emulator could not start.
    #[error(transparent)]
    Moto(#[from] moto::MotoError),
    /// A resource could not be created.
    #[error(transparent)]
    Resource(#[from] resources::ResourceError),
    /// Something the template names is missing or cannot be resolved.
    #[error("{0}")]
    Config(String),
    /// A port or file could not be opened.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How to run the stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The SAM template.
    pub template: PathBuf,
    /// Where the functions' binaries are (`<binaries>/<Binary>`).
    pub binaries: PathBuf,
    /// `moto_server`.
    pub moto_server: PathBuf,
    /// Where logs go (`<state>/logs/<function>.log`, `<state>/logs/moto.log`).
    pub state_dir: PathBuf,
    /// Gateway port on 127.0.0.1 (0 for any free port).
    pub api_port: u16,
    /// The API key clients must send.
    pub api_key: String,
    /// Prefix of resource names.
    pub prefix: String,
    /// Region reported to functions and in events.
    pub region: String,
    /// Deliberate local deviations from the template.
    pub overrides: Overrides,
    /// Pause before a stream batch is retried.
    pub stream_retry_delay: Duration,
    /// Faults injected between the functions and the emulator.
    pub faults: FaultPlan,
    /// Processes of each function behind the API (Lambda scales these with the load).
    pub api_concurrency: usize,
    /// The local CloudWatch plane (metrics, alarms, dashboard page), if wanted.
    pub observability: Option<Observability>,
}

/// How the local CloudWatch plane runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observability {
    /// How many times faster than real time its clock runs. The event sources' own
    /// waits (the stream mapping's batching window) follow it.
    pub time_scale: f64,
    /// The dashboard page's port on 127.0.0.1 (0 for any free port).
    pub dashboard_port: u16,
}

impl StackOptions {
    /// Defaults for a workspace: template at its root, debug binaries, `.local/` state.
    ///
    /// # Errors
    /// If `moto_server` is not installed.
    pub fn for_workspace(workspace: &Path) -> Result<Self, moto::MotoError> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace.join("target"), PathBuf::from);
        Ok(Self {
            template: workspace.join("template.yaml"),
            binaries: target.join("debug"),
            moto_server: moto::locate(workspace)?,
            state_dir: workspace.join(".local"),
            api_port: 3000,
            api_key: "local-api-key".to_owned(),
            prefix: "ecommerce".to_owned(),
            region: "eu-west-1".to_owned(),
            overrides: Overrides::default(),
            stream_retry_delay: Duration::from_secs(1),
            faults: FaultPlan::NONE,
            api_concurrency: 4,
            observability: None,
        })
    }
}

/// Counters of the event sources.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Per stream mapping, by function logical id.
    pub streams: BTreeMap<String, Arc<StreamSourceStats>>,
    /// Per SQS mapping, by function logical id.
    pub queues: BTreeMap<String, Arc<SqsSourceStats>>,
}

/// A running stack.
#[derive(Debug)]
pub struct Stack {
    spec: StackSpec,
    resources: Resources,
    sdk: aws_config::SdkConfig,
    functions: BTreeMap<String, Function>,
    proxies: BTreeMap<String, ProxyHandle>,
    sources: SourceStats,
    api_url: String,
    api_key: String,
    logs: PathBuf,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    moto: Option<Moto>,
    plane: Option<Arc<Plane>>,
    dashboard_url: Option<String>,
    /// Each event source mapping's on/off switch, by function logical id.
    mappings: BTreeMap<String, Arc<std::sync::atomic::AtomicBool>>,
}

pub(crate) fn resolve(
    value: &Value,
    spec: &StackSpec,
    resources: &Resources,
) -> Result<String, StackError> {
    let missing = |what: String| StackError::Config(format!("template: cannot resolve {what}"));
    match value {
        Value::Literal(text) => Ok(text.clone()),
        Value::Ref(id) if *id == resources.table_logical_id => Ok(resources.table_name.clone()),
        Value::Ref(id) => resources
            .queue(id)
            .map(|q| q.url.clone())
            .or_else(|| spec.parameters.get(id).cloned())
            .ok_or_else(|| missing(format!("!Ref {id}"))),
        Value::GetAtt(id, attribute) => {
            if *id == resources.table_logical_id {
                match attribute.as_str() {
                    "Arn" => return Ok(resources.table_arn.clone()),
                    "StreamArn" => {
                        return resources
                            .stream_arn
                            .clone()
                            .ok_or_else(|| missing(format!("{id}.StreamArn")));
                    }
                    _ => {}
                }
            }
            let queue = resources
                .queue(id)
                .ok_or_else(|| missing(format!("!GetAtt {id}.{attribute}")))?;
            match attribute.as_str() {
                "Arn" => Ok(queue.arn.clone()),
                "QueueName" => Ok(queue.name.clone()),
                "QueueUrl" => Ok(queue.url.clone()),
                _ => Err(missing(format!("!GetAtt {id}.{attribute}"))),
            }
        }
    }
}

/// The table's key and indexes, for counting its write units.
pub fn table_shape(spec: &StackSpec) -> crate::capacity::TableShape {
    use crate::capacity::{IndexShape, Projection, TableShape};
    TableShape {
        keys: spec
            .table
            .key_schema
            .iter()
            .map(|(name, _)| name.clone())
            .collect(),
        indexes: spec
            .table
            .indexes
            .iter()
            .map(|index| IndexShape {
                name: index.name.clone(),
                keys: index
                    .key_schema
                    .iter()
                    .map(|(name, _)| name.clone())
                    .collect(),
                projection: match index.projection.as_str() {
                    "ALL" => Projection::All,
                    "INCLUDE" => {
                        Projection::Include(index.non_key_attributes.iter().cloned().collect())
                    }
                    _ => Projection::KeysOnly,
                },
            })
            .collect(),
    }
}

/// Pollers (and consumer processes) of a queue mapping: its MaximumConcurrency, at
/// least Lambda's floor of 2; without one, 5 (Lambda's pollers start at five).
fn queue_concurrency(maximum: Option<u32>) -> usize {
    maximum.map_or(5, |m| m.max(2) as usize)
}

impl Stack {
    /// Starts everything the template describes.
    ///
    /// # Errors
    /// [`StackError`] naming what failed; whatever had started is stopped again.
    pub async fn start(options: StackOptions) -> Result<Self, StackError> {
        let spec = StackSpec::from_file(&options.template)?;
        let logs = options.state_dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let moto = Moto::start(&options.moto_server, &logs.join("moto.log"))?;
        let sdk = resources::emulator_sdk_config(moto.endpoint(), &options.region).await;
        let resources = resources::create(&sdk, &spec, &options.prefix, &options.overrides).await?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut stack = Self {
            spec,
            resources,
            sdk,
            functions: BTreeMap::new(),
            proxies: BTreeMap::new(),
            sources: SourceStats::default(),
            api_url: String::new(),
            api_key: options.api_key.clone(),
            logs,
            shutdown,
            tasks: Vec::new(),
            moto: Some(moto),
            plane: None,
            dashboard_url: None,
            mappings: BTreeMap::new(),
        };
        if let Err(e) = stack.start_parts(&options, shutdown_rx).await {
            stack.stop().await;
            return Err(e);
        }
        Ok(stack)
    }

    async fn start_parts(
        &mut self,
        options: &StackOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), StackError> {
        let endpoint = self
            .moto
            .as_ref()
            .map(|m| m.endpoint().to_owned())
            .unwrap_or_default();
        let daemon = crate::xray::start(self.logs.join("xray.log"), shutdown.clone()).await?;
        let template: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(&options.template)?)
                .map_err(|e| StackError::Config(format!("template: {e}")))?;
        let names = self.names(&template, options);
        let api =
            definitions::api(&template, &names).map_err(|e| StackError::Config(e.to_string()))?;
        let access_log = api.access_log.as_ref().map(|(group, format)| {
            (
                group.clone(),
                format.clone(),
                self.logs.join("api-access.log"),
            )
        });
        if let Some((_, format, _)) = &access_log {
            let unsupported = gateway::unsupported_access_log_variables(format);
            if !unsupported.is_empty() {
                return Err(StackError::Config(format!(
                    "the API's access log format uses $context variables the local gateway does not fill: {unsupported:?}"
                )));
            }
        }
        let time_scale = options.observability.map_or(1.0, |o| o.time_scale.max(1.0));
        if let Some(observability) = options.observability {
            let directory = options.template.parent().unwrap_or_else(|| Path::new("."));
            let alarms = definitions::alarms(&template, &names)
                .map_err(|e| StackError::Config(e.to_string()))?;
            let dashboards = definitions::dashboards(&template, directory, &names)
                .map_err(|e| StackError::Config(e.to_string()))?;
            let plane = Plane::new(
                &PlaneOptions {
                    time_scale: observability.time_scale,
                    topic_log: self.logs.join("alarm-topic.log"),
                    region: options.region.clone(),
                },
                alarms,
                dashboards,
            );
            if let Some((group, _, file)) = &access_log {
                std::fs::File::create(file)?;
                plane.watch_log(
                    file.clone(),
                    group.clone(),
                    "local".to_owned(),
                    shutdown.clone(),
                );
            }
            plane.run_alarms(shutdown.clone());
            plane.sample_queues(
                format!("{endpoint}/moto-api/local/sqs-stats"),
                shutdown.clone(),
            );
            let address = page::serve(
                Arc::clone(&plane),
                observability.dashboard_port,
                shutdown.clone(),
            )
            .await?;
            self.dashboard_url = Some(format!("http://{address}/"));
            self.plane = Some(plane);
        }
        for (index, function) in self.spec.functions.iter().enumerate() {
            let binary = options.binaries.join(&function.binary);
            if !binary.exists() {
                return Err(StackError::Config(format!(
                    "{} not built at {} (cargo build --bins builds it)",
                    function.binary,
                    binary.display()
                )));
            }
            let mut environment = BTreeMap::new();
            for (name, value) in &function.environment {
                environment.insert(name.clone(), resolve(value, &self.spec, &self.resources)?);
            }
            // Each function reaches the emulator through its own proxy: calls counted,
            // connections kept alive, faults injected as planned.
            let plan = FaultPlan {
                seed: options.faults.seed.wrapping_add(index as u64),
                ..options.faults
            };
            let proxy = faults::start(&endpoint, plan, shutdown.clone()).await?;
            if let Some(plane) = &self.plane {
                proxy.attach(ProxyTelemetry {
                    plane: Some(Arc::clone(plane)),
                    tables: BTreeMap::from([(
                        self.resources.table_name.clone(),
                        table_shape(&self.spec),
                    )]),
                });
            }
            environment.insert("AWS_ENDPOINT_URL".to_owned(), proxy.endpoint.clone());
            self.proxies.insert(function.binary.clone(), proxy);
            environment.insert("AWS_XRAY_DAEMON_ADDRESS".to_owned(), daemon.to_string());
            environment.insert("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned());
            environment.insert("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned());
            if let Some(level) = &function.log_level {
                environment.insert("AWS_LAMBDA_LOG_LEVEL".to_owned(), level.clone());
            }
            if let Some(format) = &function.log_format {
                environment.insert("AWS_LAMBDA_LOG_FORMAT".to_owned(), format.clone());
            }
            // As many processes as Lambda would run at once: the API's functions scale
            // (bounded here), a queue consumer up to its mapping's MaximumConcurrency,
            // a stream consumer one per shard (the emulator has one).
            let serves_api = self
                .spec
                .routes
                .iter()
                .any(|r| r.function == function.logical_id);
            let queue_concurrency = self
                .spec
                .sqs_mappings
                .iter()
                .filter(|m| m.function == function.logical_id)
                .map(|m| queue_concurrency(m.maximum_concurrency))
                .max();
            let concurrency = if serves_api {
                options.api_concurrency.max(1)
            } else {
                queue_concurrency.unwrap_or(1)
            };
            let config = FunctionConfig {
                concurrency,
                name: function.binary.clone(),
                binary,
                timeout: Duration::from_secs(function.timeout_seconds),
                memory_mb: function.memory_mb,
                region: options.region.clone(),
                environment,
                log_file: self.logs.join(format!("{}.log", function.binary)),
            };
            let log_file = config.log_file.clone();
            let started = Function::start(config, shutdown.clone()).await?;
            if let Some(plane) = &self.plane {
                started.attach_plane(Arc::clone(plane));
                plane.watch_log(
                    log_file,
                    format!("/aws/lambda/{}", started.name()),
                    format!("local/[$LATEST]{}", started.name()),
                    shutdown.clone(),
                );
            }
            self.functions.insert(function.logical_id.clone(), started);
        }

        for mapping in &self.spec.stream_mappings {
            let function = self.function_by_id(&mapping.function)?;
            let stream_arn = self.resources.stream_arn.clone().ok_or_else(|| {
                StackError::Config(format!("table {} has no stream", mapping.table))
            })?;
            let filters = mapping
                .filters
                .iter()
                .map(|f| Pattern::new(f.clone()).map_err(|e| StackError::Config(e.to_string())))
                .collect::<Result<_, _>>()?;
            let on_failure =
                match &mapping.on_failure_queue {
                    Some(id) => Some(self.resources.queue(id).cloned().ok_or_else(|| {
                        StackError::Config(format!("on-failure queue {id} missing"))
                    })?),
                    None => None,
                };
            let enabled = Arc::new(std::sync::atomic::AtomicBool::new(true));
            self.mappings
                .insert(mapping.function.clone(), Arc::clone(&enabled));
            let config = StreamSourceConfig {
                stream_arn,
                region: options.region.clone(),
                batch_size: mapping.batch_size,
                // The window is a wait of the mapping's: it passes on the plane's clock.
                batching_window: Duration::from_secs(mapping.batching_window_seconds)
                    .div_f64(time_scale),
                bisect_on_error: mapping.bisect_on_error,
                maximum_retry_attempts: mapping.maximum_retry_attempts,
                report_batch_item_failures: mapping.report_batch_item_failures,
                filters,
                on_failure,
                retry_delay: options.stream_retry_delay,
                enabled,
                plane: self.plane.clone(),
            };
            let stats = Arc::new(StreamSourceStats::default());
            self.sources
                .streams
                .insert(mapping.function.clone(), Arc::clone(&stats));
            self.tasks.push(tokio::spawn(stream_source::run(
                config,
                self.sdk.clone(),
                function,
                stats,
                shutdown.clone(),
            )));
        }

        for mapping in &self.spec.sqs_mappings {
            let function = self.function_by_id(&mapping.function)?;
            let queue = self
                .resources
                .queue(&mapping.queue)
                .cloned()
                .ok_or_else(|| StackError::Config(format!("queue {} missing", mapping.queue)))?;
            let enabled = Arc::new(std::sync::atomic::AtomicBool::new(true));
            self.mappings
                .insert(mapping.function.clone(), Arc::clone(&enabled));
            let config = SqsSourceConfig {
                queue,
                region: options.region.clone(),
                batch_size: mapping.batch_size,
                report_batch_item_failures: mapping.report_batch_item_failures,
                concurrency: queue_concurrency(mapping.maximum_concurrency),
                enabled,
            };
            let stats = Arc::new(SqsSourceStats::default());
            self.sources
                .queues
                .insert(mapping.function.clone(), Arc::clone(&stats));
            self.tasks.push(tokio::spawn(sqs_source::run(
                config,
                self.sdk.clone(),
                function,
                stats,
                shutdown.clone(),
            )));
        }

        let stage = self
            .spec
            .parameters
            .get("Stage")
            .cloned()
            .unwrap_or_else(|| "local".to_owned());
        let telemetry = self.plane.as_ref().map(|plane| gateway::GatewayTelemetry {
            plane: Arc::clone(plane),
            api_name: api.name.clone(),
            access_log: access_log
                .as_ref()
                .map(|(_, format, file)| (file.clone(), format.clone())),
        });
        let gateway = GatewayConfig {
            port: options.api_port,
            api_key: options.api_key.clone(),
            stage,
            routes: self.spec.routes.clone(),
            telemetry,
        };
        let functions: HashMap<String, Function> = self
            .functions
            .iter()
            .map(|(id, f)| (id.clone(), f.clone()))
            .collect();
        let address = gateway::start(gateway, functions, shutdown).await?;
        self.api_url = format!("http://{address}");
        Ok(())
    }

    /// What `!Ref` and `!GetAtt` give for each resource of the template, locally: the
    /// names the stack created (`{prefix}-{LogicalId}` where it chose them), the
    /// functions' names, the parameters' defaults and the pseudo parameters.
    fn names(&self, template: &serde_norway::Value, options: &StackOptions) -> Names {
        let mut names = Names::default();
        let prefix = &options.prefix;
        let region = &options.region;
        let account = "000000000000";
        for (pseudo, value) in [
            ("AWS::StackName", prefix.clone()),
            ("AWS::Region", region.clone()),
            ("AWS::AccountId", account.to_owned()),
            ("AWS::Partition", "aws".to_owned()),
            ("AWS::URLSuffix", "amazonaws.com".to_owned()),
        ] {
            names.reference(pseudo, value);
        }
        for (name, value) in &self.spec.parameters {
            names.reference(name, value.clone());
        }
        let resources = template
            .get("Resources")
            .and_then(serde_norway::Value::as_mapping)
            .cloned()
            .unwrap_or_default();
        let mut log_groups = Vec::new();
        for (id, resource) in &resources {
            let Some(id) = id.as_str() else { continue };
            let kind = resource
                .get("Type")
                .and_then(serde_norway::Value::as_str)
                .unwrap_or_default();
            let generic = format!("{prefix}-{id}");
            match kind {
                "AWS::DynamoDB::Table" => {
                    names.reference(id, self.resources.table_name.clone());
                    names.attribute(id, "Arn", self.resources.table_arn.clone());
                    if let Some(stream) = &self.resources.stream_arn {
                        names.attribute(id, "StreamArn", stream.clone());
                    }
                }
                "AWS::SQS::Queue" => {
                    if let Some(queue) = self.resources.queue(id) {
                        names.reference(id, queue.url.clone());
                        names.attribute(id, "Arn", queue.arn.clone());
                        names.attribute(id, "QueueName", queue.name.clone());
                        names.attribute(id, "QueueUrl", queue.url.clone());
                    }
                }
                "AWS::Serverless::Function" => {
                    if let Some(function) = self.spec.function(id) {
                        names.reference(id, function.binary.clone());
                        names.attribute(
                            id,
                            "Arn",
                            format!(
                                "arn:aws:lambda:{region}:{account}:function:{}",
                                function.binary
                            ),
                        );
                    }
                }
                "AWS::CloudWatch::Alarm" | "AWS::CloudWatch::CompositeAlarm" => {
                    names.reference(id, generic.clone());
                    names.attribute(
                        id,
                        "Arn",
                        format!("arn:aws:cloudwatch:{region}:{account}:alarm:{generic}"),
                    );
                }
                "AWS::SNS::Topic" => {
                    let arn = format!("arn:aws:sns:{region}:{account}:{generic}");
                    names.reference(id, arn.clone());
                    names.attribute(id, "TopicArn", arn);
                    names.attribute(id, "TopicName", generic);
                }
                "AWS::Logs::LogGroup" => log_groups.push((id.to_owned(), resource.clone())),
                _ => {
                    names.reference(id, generic.clone());
                    names.attribute(
                        id,
                        "Arn",
                        format!("arn:aws:local:{region}:{account}:{generic}"),
                    );
                }
            }
        }
        // Log groups name themselves after other resources.
        for (id, resource) in log_groups {
            let name = resource
                .get("Properties")
                .and_then(|p| p.get("LogGroupName"))
                .and_then(|v| names.resolve(v, &id).ok())
                .unwrap_or_else(|| format!("/local/{prefix}-{id}"));
            names.attribute(
                id.as_str(),
                "Arn",
                format!("arn:aws:logs:{region}:{account}:log-group:{name}:*"),
            );
            names.reference(&id, name);
        }
        names
    }

    /// The local CloudWatch plane, if the stack runs one.
    pub fn plane(&self) -> Option<&Arc<Plane>> {
        self.plane.as_ref()
    }

    /// The dashboard page's URL, if the stack runs the plane.
    pub fn dashboard_url(&self) -> Option<&str> {
        self.dashboard_url.as_deref()
    }

    /// Turns the event source mapping of a function (logical id) on or off, as
    /// `aws lambda update-event-source-mapping --enabled/--no-enabled` does. `false` if
    /// the function has no mapping.
    pub fn set_mapping_enabled(&self, function: &str, enabled: bool) -> bool {
        self.mappings.get(function).is_some_and(|switch| {
            switch.store(enabled, std::sync::atomic::Ordering::Relaxed);
            true
        })
    }

    fn function_by_id(&self, id: &str) -> Result<Function, StackError> {
        self.functions
            .get(id)
            .cloned()
            .ok_or_else(|| StackError::Config(format!("function {id} missing")))
    }

    /// The gateway's base URL.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The API key.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The created resources.
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// The template as read.
    pub fn spec(&self) -> &StackSpec {
        &self.spec
    }

    /// SDK configuration pointing at the emulator.
    pub fn sdk(&self) -> &aws_config::SdkConfig {
        &self.sdk
    }

    /// The functions by logical id.
    pub fn functions(&self) -> &BTreeMap<String, Function> {
        &self.functions
    }

    /// A function by its binary name (`orders-api`, ...).
    pub fn function(&self, binary: &str) -> Option<&Function> {
        self.functions.values().find(|f| f.name() == binary)
    }

    /// The proxy between each function (by binary name) and the emulator.
    pub fn proxies(&self) -> &BTreeMap<String, ProxyHandle> {
        &self.proxies
    }

    /// The variables that point a function run outside the stack (by `cargo lambda
    /// watch`) at this stack: every function's template variables, resolved, and the
    /// emulator's endpoint with its credentials and region.
    ///
    /// # Errors
    /// [`StackError::Config`] if a template variable cannot be resolved.
    pub fn lambda_environment(&self) -> Result<BTreeMap<String, String>, StackError> {
        let mut environment = BTreeMap::new();
        for function in &self.spec.functions {
            for (name, value) in &function.environment {
                environment.insert(name.clone(), resolve(value, &self.spec, &self.resources)?);
            }
        }
        if let Some(endpoint) = self.emulator_endpoint() {
            environment.insert("AWS_ENDPOINT_URL".to_owned(), endpoint.to_owned());
        }
        if let Some(region) = self.sdk.region() {
            environment.insert("AWS_REGION".to_owned(), region.to_string());
        }
        environment.insert("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned());
        environment.insert("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned());
        Ok(environment)
    }

    /// The emulator's own endpoint (not through a proxy).
    pub fn emulator_endpoint(&self) -> Option<&str> {
        self.moto.as_ref().map(Moto::endpoint)
    }

    /// The event sources' counters.
    pub fn sources(&self) -> &SourceStats {
        &self.sources
    }

    /// One summary line per event source about its polling, and whether that source's
    /// polls ever kept failing (see [`crate::polling`]).
    pub fn polling(&self) -> Vec<(String, bool)> {
        let streams = self.sources.streams.iter().map(|(id, stats)| {
            (
                stats.polling.summary(&format!("stream -> {id}")),
                stats.polling.kept_failing(),
            )
        });
        let queues = self.sources.queues.iter().map(|(id, stats)| {
            (
                stats.polling.summary(&format!("queue -> {id}")),
                stats.polling.kept_failing(),
            )
        });
        streams.chain(queues).collect()
    }

    /// The segment documents the functions sent to the local X-Ray daemon.
    pub fn xray_log(&self) -> PathBuf {
        self.logs.join("xray.log")
    }

    /// Where the logs are.
    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// Stops everything and waits until every process has exited.
    pub async fn stop(mut self) {
        self.shutdown.send_replace(true);
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        for function in self.functions.values() {
            function.stopped().await;
        }
        drop(self.moto.take());
    }
}
