//! A Lambda function run locally: the real `bootstrap` binary as a child process,
//! served by a local implementation of the Lambda Runtime API.
//!
//! The Runtime API is the interface every custom runtime (`lambda_runtime`,
//! `awslambdaric`) speaks:
//!
//! | request | meaning |
//! |---|---|
//! | `GET /2018-06-01/runtime/invocation/next` | wait for the next event |
//! | `POST /2018-06-01/runtime/invocation/{id}/response` | the function's result |
//! | `POST /2018-06-01/runtime/invocation/{id}/error` | the function failed |
//! | `POST /2018-06-01/runtime/init/error` | start-up failed |
//!
//! The event comes with the headers `Lambda-Runtime-Aws-Request-Id`,
//! `-Deadline-Ms`, `-Invoked-Function-Arn` and `-Trace-Id`, and with
//! `Content-Type: application/json` (which some runtimes require).
//!
//! As on Lambda: an invocation that outlives the function's timeout kills the process;
//! a process that exits is started again, and the invocation it held fails; the
//! environment is the one Lambda sets plus the template's variables.
//!
//! A function runs `concurrency` processes (Lambda's execution environments), each
//! with its own Runtime API: they take events from one queue, and a crash or timeout
//! fails only the invocation its own process held.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::cloudwatch::Plane;
use crate::cloudwatch::store::MetricId;
use crate::http::{self, Body};

const PREFIX: &str = "/2018-06-01/runtime";
/// Largest response a function may return (Lambda's synchronous limit).
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function returned this payload.
    Response(Bytes),
    /// The function reported an error.
    FunctionError {
        /// `errorType`.
        error_type: String,
        /// The error body.
        body: String,
    },
    /// The process exited while it held the invocation.
    Crashed(String),
    /// The invocation outlived the function's timeout; the process was restarted.
    TimedOut,
    /// Lambda refused the invocation for lack of concurrency (the function's
    /// concurrency is set to 0): it never reached a process.
    Throttled,
}

impl Outcome {
    /// The response payload, if the function succeeded.
    pub fn response(&self) -> Option<&Bytes> {
        match self {
            Self::Response(body) => Some(body),
            _ => None,
        }
    }
}

/// Counters of one function, readable while it runs.
#[derive(Debug, Default)]
pub struct FunctionStats {
    /// Invocations started.
    pub invocations: AtomicU64,
    /// Invocations that did not return a response (error, crash or timeout).
    pub errors: AtomicU64,
    /// Process starts after the first (crashes and timeouts).
    pub restarts: AtomicU64,
    /// Batch-item failures the function reported (counted by the event sources).
    pub batch_item_failures: AtomicU64,
    /// Each process's init: from its start to its first `GET /next`.
    init: Mutex<Vec<Duration>>,
}

impl FunctionStats {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Each process's init so far (start to first `GET /next`), in start order.
    pub fn init_durations(&self) -> Vec<Duration> {
        self.init.lock().map(|i| i.clone()).unwrap_or_default()
    }
}

/// What a function needs to run.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// Function name (also the log file's name).
    pub name: String,
    /// The `bootstrap` executable.
    pub binary: PathBuf,
    /// Timeout.
    pub timeout: Duration,
    /// Memory size in MB, as reported to the function.
    pub memory_mb: u64,
    /// Region.
    pub region: String,
    /// Environment variables besides those Lambda sets.
    pub environment: BTreeMap<String, String>,
    /// File that receives the process's stdout and stderr.
    pub log_file: PathBuf,
    /// Processes serving invocations at once (at least one).
    pub concurrency: usize,
}

struct Pending {
    id: String,
    payload: Bytes,
    /// Tells the caller which execution environment took the event.
    started: oneshot::Sender<usize>,
    reply: oneshot::Sender<Outcome>,
}

/// One execution environment: a process and its Runtime API.
#[derive(Default)]
struct Worker {
    pid: AtomicU32,
    /// Whether the current process has asked for an event (it got past init).
    served_next: AtomicBool,
    /// When the current process was started.
    spawned: Mutex<Option<Instant>>,
    /// The current process's init (start to first `GET /next`), until its first
    /// invocation's report takes it.
    init: Mutex<Option<Duration>>,
    /// Why the next kill happens, if not a timeout.
    kill_reason: Mutex<Option<String>>,
    kill: Notify,
}

struct Shared {
    config: FunctionConfig,
    arn: String,
    queue_rx: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    /// Invocations handed to a process, with the worker that holds each.
    in_flight: Mutex<HashMap<String, (usize, oneshot::Sender<Outcome>)>>,
    workers: Vec<Worker>,
    running: AtomicUsize,
    exited: watch::Sender<bool>,
    stats: FunctionStats,
    init_errors: Mutex<Vec<String>>,
    /// The CloudWatch plane the function reports `AWS/Lambda` metrics and Lambda's
    /// `platform.report` records to, when there is one.
    plane: std::sync::OnceLock<Arc<Plane>>,
    /// Invocations running now.
    running_now: AtomicUsize,
    /// Injected failures (drills): see [`Function::set_fault`].
    fault: Mutex<Option<FunctionFault>>,
    /// Variables that replace (`Some`) or remove (`None`) the configured ones, for the
    /// processes started from now on.
    environment_overrides: Mutex<BTreeMap<String, Option<String>>>,
}

/// A failure injected into a function, as a drill does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionFault {
    /// Lambda throttles every invocation (reserved concurrency 0).
    Throttled,
    /// The process dies (SIGKILL) as soon as it takes an event: a crash.
    CrashOnInvoke,
    /// Every invocation takes this much longer (the host holds the function's answer,
    /// up to just before its timeout): a slow function, as its event source sees it.
    Slow(Duration),
}

impl Shared {
    fn take(&self, id: &str) -> Option<(usize, oneshot::Sender<Outcome>)> {
        self.in_flight.lock().ok()?.remove(id)
    }

    /// Fails the invocations `worker`'s process held.
    fn fail_in_flight(&self, worker: usize, outcome: &Outcome) {
        let held: Vec<_> = match self.in_flight.lock() {
            Ok(mut map) => {
                let ids: Vec<String> = map
                    .iter()
                    .filter(|(_, (holder, _))| *holder == worker)
                    .map(|(id, _)| id.clone())
                    .collect();
                ids.iter().filter_map(|id| map.remove(id)).collect()
            }
            Err(_) => return,
        };
        for (_, reply) in held {
            let _ = reply.send(outcome.clone());
        }
    }
}

/// A running function. Cloning gives another handle to the same function.
#[derive(Clone)]
pub struct Function {
    shared: Arc<Shared>,
    queue_tx: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.shared.config.name)
            .finish_non_exhaustive()
    }
}

impl Function {
    /// Starts the Runtime API on a free loopback port and the process under
    /// supervision. Both stop when `shutdown` turns true.
    ///
    /// # Errors
    /// If the port cannot be bound or the log file cannot be opened.
    pub async fn start(
        config: FunctionConfig,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        let (queue_tx, queue_rx) = mpsc::channel(1024);
        // A new stack starts a new log; restarts of the process within it append.
        std::fs::File::create(&config.log_file)?;
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&config.log_file)?;
        let workers = config.concurrency.max(1);
        let shared = Arc::new(Shared {
            arn: format!(
                "arn:aws:lambda:{}:000000000000:function:{}",
                config.region, config.name
            ),
            config,
            queue_rx: tokio::sync::Mutex::new(queue_rx),
            in_flight: Mutex::new(HashMap::new()),
            workers: (0..workers).map(|_| Worker::default()).collect(),
            running: AtomicUsize::new(workers),
            exited: watch::channel(false).0,
            stats: FunctionStats::default(),
            init_errors: Mutex::new(Vec::new()),
            plane: std::sync::OnceLock::new(),
            running_now: AtomicUsize::new(0),
            fault: Mutex::new(None),
            environment_overrides: Mutex::new(BTreeMap::new()),
        });
        for worker in 0..workers {
            let supervised = Arc::clone(&shared);
            let log = log.try_clone()?;
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                supervise(Arc::clone(&supervised), worker, log, shutdown).await;
                if supervised.running.fetch_sub(1, Ordering::AcqRel) == 1 {
                    supervised.exited.send_replace(true);
                }
            });
        }
        Ok(Self { shared, queue_tx })
    }

    /// The process id of the first worker's process (0 while none runs).
    pub fn pid(&self) -> u32 {
        self.pids().first().copied().unwrap_or(0)
    }

    /// The process id of each worker (0 where none runs right now).
    pub fn pids(&self) -> Vec<u32> {
        self.shared
            .workers
            .iter()
            .map(|w| w.pid.load(Ordering::Relaxed))
            .collect()
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// The function's ARN.
    pub fn arn(&self) -> &str {
        &self.shared.arn
    }

    /// Resolves once the process has been stopped for good (after shutdown).
    pub async fn stopped(&self) {
        let mut exited = self.shared.exited.subscribe();
        http::stopped(&mut exited).await;
    }

    /// Its counters.
    pub fn stats(&self) -> &FunctionStats {
        &self.shared.stats
    }

    /// The init errors the function reported.
    pub fn init_errors(&self) -> Vec<String> {
        self.shared
            .init_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// Where its output goes.
    pub fn log_file(&self) -> &Path {
        &self.shared.config.log_file
    }

    /// Reports `AWS/Lambda` metrics and writes Lambda's `platform.report` records to
    /// `plane` from now on.
    pub fn attach_plane(&self, plane: Arc<Plane>) {
        let _ = self.shared.plane.set(plane);
    }

    /// Injects a failure (`None` ends it).
    pub fn set_fault(&self, fault: Option<FunctionFault>) {
        if let Ok(mut current) = self.shared.fault.lock() {
            *current = fault;
        }
    }

    /// The injected failure, if any.
    pub fn fault(&self) -> Option<FunctionFault> {
        self.shared.fault.lock().ok().and_then(|f| *f)
    }

    /// Replaces (`Some`) or removes (`None`) an environment variable for the processes
    /// started from now on, as a deploy of a new configuration does; [`Self::restart`]
    /// applies it at once.
    pub fn override_environment(&self, name: &str, value: Option<&str>) {
        if let Ok(mut overrides) = self.shared.environment_overrides.lock() {
            overrides.insert(name.to_owned(), value.map(str::to_owned));
        }
    }

    /// Drops every environment override.
    pub fn clear_environment_overrides(&self) {
        if let Ok(mut overrides) = self.shared.environment_overrides.lock() {
            overrides.clear();
        }
    }

    /// Stops every process; each starts again (a new execution environment, as after
    /// a deploy). An invocation a process held fails.
    pub fn restart(&self) {
        for worker in &self.shared.workers {
            if worker.pid.load(Ordering::Relaxed) != 0 {
                if let Ok(mut reason) = worker.kill_reason.lock() {
                    *reason = Some("restarted (a new configuration)".to_owned());
                }
                worker.kill.notify_one();
            }
        }
    }

    fn metric(&self, name: &str) -> MetricId {
        MetricId::new("AWS/Lambda", name, [("FunctionName", self.name())])
    }

    /// Invokes the function with `payload` and waits for the outcome. Waiting for the
    /// process to pick the event up does not count towards the timeout.
    pub async fn invoke(&self, payload: impl Into<Bytes>) -> Outcome {
        let plane = self.shared.plane.get();
        if self.fault() == Some(FunctionFault::Throttled) {
            if let Some(plane) = plane {
                plane.put(self.metric("Throttles"), 1.0);
            }
            return Outcome::Throttled;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let (started_tx, started_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        let pending = Pending {
            id: id.clone(),
            payload: payload.into(),
            started: started_tx,
            reply: reply_tx,
        };
        if self.queue_tx.send(pending).await.is_err() {
            return self.count(Outcome::Crashed("the function is shutting down".to_owned()));
        }
        let Ok(worker) = started_rx.await else {
            return self.count(Outcome::Crashed("the function is shutting down".to_owned()));
        };
        let began = Instant::now();
        let concurrent = self.shared.running_now.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(plane) = plane {
            plane.put(self.metric("ConcurrentExecutions"), concurrent as f64);
        }
        self.shared
            .stats
            .invocations
            .fetch_add(1, Ordering::Relaxed);
        // A little grace over the timeout: the deadline is the function's to honour.
        let limit = self.shared.config.timeout + Duration::from_millis(500);
        let outcome = match tokio::time::timeout(limit, reply_rx).await {
            Ok(Ok(outcome)) => {
                if let Some(FunctionFault::Slow(by)) = self.fault() {
                    let most = self
                        .shared
                        .config
                        .timeout
                        .saturating_sub(began.elapsed() + Duration::from_millis(100));
                    tokio::time::sleep(by.min(most)).await;
                }
                outcome
            }
            Ok(Err(_)) => Outcome::Crashed("the runtime dropped the invocation".to_owned()),
            Err(_) => {
                if let Some((worker, _)) = self.shared.take(&id)
                    && let Some(worker) = self.shared.workers.get(worker)
                {
                    worker.kill.notify_one();
                }
                Outcome::TimedOut
            }
        };
        self.shared.running_now.fetch_sub(1, Ordering::Relaxed);
        if let Some(plane) = plane {
            self.report(plane, worker, &id, began.elapsed(), &outcome);
        }
        self.count(outcome)
    }

    /// The `AWS/Lambda` metrics of one invocation, and Lambda's `platform.report`
    /// record in the function's log.
    fn report(
        &self,
        plane: &Plane,
        worker: usize,
        request_id: &str,
        took: Duration,
        outcome: &Outcome,
    ) {
        let failed = outcome.response().is_none();
        let duration_ms = took.as_secs_f64() * 1000.0;
        plane.put(self.metric("Invocations"), 1.0);
        plane.put(self.metric("Errors"), if failed { 1.0 } else { 0.0 });
        plane.put(self.metric("Throttles"), 0.0);
        plane.put(self.metric("Duration"), duration_ms);
        let init = self
            .shared
            .workers
            .get(worker)
            .and_then(|w| w.init.lock().ok().and_then(|mut i| i.take()));
        let pid = self
            .shared
            .workers
            .get(worker)
            .map_or(0, |w| w.pid.load(Ordering::Relaxed));
        let max_memory_mb = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kb| kb.div_ceil(1024));
        let status = match outcome {
            Outcome::Response(_) => "success",
            Outcome::TimedOut => "timeout",
            Outcome::FunctionError { .. } => "error",
            Outcome::Crashed(_) | Outcome::Throttled => "failure",
        };
        let mut metrics = serde_json::json!({
            "durationMs": (duration_ms * 100.0).round() / 100.0,
            "billedDurationMs": duration_ms.ceil() as u64,
            "memorySizeMB": self.shared.config.memory_mb,
            "maxMemoryUsedMB": max_memory_mb,
        });
        if let Some(init) = init {
            metrics["initDurationMs"] =
                serde_json::json!((init.as_secs_f64() * 100_000.0).round() / 100.0);
        }
        let line = serde_json::json!({
            "time": crate::now_rfc3339(),
            "type": "platform.report",
            "record": { "requestId": request_id, "metrics": metrics, "status": status },
        });
        let written = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.shared.config.log_file)
            .and_then(|mut file| {
                use std::io::Write;
                file.write_all(format!("{line}\n").as_bytes())
            });
        if let Err(e) = written {
            tracing::warn!(function = %self.name(), error = %e, "cannot write the platform.report record");
        }
    }

    fn count(&self, outcome: Outcome) -> Outcome {
        if outcome.response().is_none() {
            self.shared.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }
}

fn trace_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{now:08x}-{};Parent={};Sampled=1",
        &random[..24],
        &random[16..32]
    )
}

async fn runtime_api(
    shared: Arc<Shared>,
    worker: usize,
    request: Request<Incoming>,
) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let Some(route) = path.strip_prefix(PREFIX) else {
        return http::response(404, r#"{"errorMessage":"unknown path"}"#);
    };
    match (request.method().clone(), route) {
        (Method::GET, "/invocation/next") => next(&shared, worker).await,
        (Method::POST, "/init/error") => {
            let body = http::read_body(request, MAX_PAYLOAD)
                .await
                .map(|(_, b)| b)
                .unwrap_or_default();
            let message = String::from_utf8_lossy(&body).into_owned();
            if let Ok(mut errors) = shared.init_errors.lock() {
                errors.push(message);
            }
            http::response(202, r#"{"status":"OK"}"#)
        }
        (Method::POST, route) => {
            let Some((id, kind)) = route
                .strip_prefix("/invocation/")
                .and_then(|r| r.split_once('/'))
            else {
                return http::response(404, r#"{"errorMessage":"unknown path"}"#);
            };
            let id = id.to_owned();
            let error_type = request
                .headers()
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = match http::read_body(request, MAX_PAYLOAD).await {
                Ok((_, body)) => body,
                Err(e) => return http::response(413, format!(r#"{{"errorMessage":"{e}"}}"#)),
            };
            let outcome = match kind {
                "response" => Outcome::Response(body),
                "error" => {
                    let text = String::from_utf8_lossy(&body).into_owned();
                    let error_type = error_type
                        .or_else(|| {
                            serde_json::from_str::<serde_json::Value>(&text).ok()?["errorType"]
                                .as_str()
                                .map(str::to_owned)
                        })
                        .unwrap_or_else(|| "Unhandled".to_owned());
                    Outcome::FunctionError {
                        error_type,
                        body: text,
                    }
                }
                _ => return http::response(404, r#"{"errorMessage":"unknown path"}"#),
            };
            match shared.take(&id) {
                Some((_, reply)) => {
                    let _ = reply.send(outcome);
                    http::response(202, r#"{"status":"OK"}"#)
                }
                None => http::response(400, r#"{"errorMessage":"unknown or finished request id"}"#),
            }
        }
        _ => http::response(405, r#"{"errorMessage":"method not allowed"}"#),
    }
}

async fn next(shared: &Shared, worker: usize) -> Response<Body> {
    if let Some(worker) = shared.workers.get(worker)
        && !worker.served_next.swap(true, Ordering::Relaxed)
        && let Some(spawned) = worker.spawned.lock().ok().and_then(|mut s| s.take())
        && let Ok(mut init) = shared.stats.init.lock()
    {
        init.push(spawned.elapsed());
        if let Ok(mut first) = worker.init.lock() {
            *first = Some(spawned.elapsed());
        }
    }
    let pending = {
        let mut queue = shared.queue_rx.lock().await;
        queue.recv().await
    };
    let Some(pending) = pending else {
        return http::response(503, r#"{"errorMessage":"shutting down"}"#);
    };
    // Recorded before answering: if the process dies from here on, the supervisor
    // fails this invocation instead of losing it.
    if let Ok(mut map) = shared.in_flight.lock() {
        map.insert(pending.id.clone(), (worker, pending.reply));
    }
    let _ = pending.started.send(worker);
    if shared.fault.lock().ok().and_then(|f| *f) == Some(FunctionFault::CrashOnInvoke)
        && let Some(held) = shared.workers.get(worker)
    {
        if let Ok(mut reason) = held.kill_reason.lock() {
            *reason = Some("the process crashed (SIGKILL)".to_owned());
        }
        held.kill.notify_one();
    }
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(shared.config.timeout)
        .as_millis();
    let mut response = http::response(200, pending.payload);
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("content-type", "application/json".to_owned());
    set("lambda-runtime-aws-request-id", pending.id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set("lambda-runtime-invoked-function-arn", shared.arn.clone());
    set("lambda-runtime-trace-id", trace_id());
    response
}

async fn supervise(
    shared: Arc<Shared>,
    index: usize,
    log: std::fs::File,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let Some(worker) = shared.workers.get(index) else {
        return;
    };
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let stopping = *shutdown.borrow();
        if stopping {
            return;
        }
        if !first {
            shared.stats.restarts.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        // Each process gets its own Runtime API listener, closed when it exits, so a
        // request left open by a dead process can never take the next event.
        let (listener, address) = match http::bind(0).await {
            Ok(bound) => bound,
            Err(e) => {
                tracing::error!(function = %config.name, error = %e, "cannot bind the Runtime API");
                return;
            }
        };
        let (generation, generation_rx) = watch::channel(false);
        let api = Arc::clone(&shared);
        tokio::spawn(http::serve(
            listener,
            move |request| runtime_api(Arc::clone(&api), index, request),
            generation_rx,
        ));
        worker.served_next.store(false, Ordering::Relaxed);

        let (Ok(out), Ok(err)) = (log.try_clone(), log.try_clone()) else {
            tracing::error!(function = %config.name, "cannot share the log file with the process");
            return;
        };
        let started = Instant::now();
        if let Ok(mut spawned) = worker.spawned.lock() {
            *spawned = Some(started);
        }
        let overrides = shared
            .environment_overrides
            .lock()
            .map(|o| o.clone())
            .unwrap_or_default();
        let spawned = process_command(config, &overrides, &address.to_string())
            .stdout(out)
            .stderr(err)
            .spawn();
        let reason = match spawned {
            Err(e) => {
                tracing::error!(function = %config.name, binary = %config.binary.display(), error = %e, "cannot start the function");
                format!("cannot start: {e}")
            }
            Ok(mut child) => {
                worker.pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
                let reason = tokio::select! {
                    status = child.wait() => {
                        let reason = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                        tracing::warn!(function = %config.name, %reason, "function process exited; starting it again");
                        format!("process exited: {reason}")
                    }
                    () = worker.kill.notified() => {
                        let _ = child.kill().await;
                        let why = worker.kill_reason.lock().ok().and_then(|mut r| r.take());
                        match why {
                            Some(why) => {
                                tracing::warn!(function = %config.name, reason = %why, "function process stopped; starting it again");
                                why
                            }
                            None => {
                                tracing::warn!(function = %config.name, "invocation timed out; process restarted");
                                "timed out".to_owned()
                            }
                        }
                    }
                    () = http::stopped(&mut shutdown) => {
                        let _ = child.kill().await;
                        "shutting down".to_owned()
                    }
                };
                worker.pid.store(0, Ordering::Relaxed);
                reason
            }
        };
        generation.send_replace(true);
        shared.fail_in_flight(index, &Outcome::Crashed(reason.clone()));
        if !worker.served_next.load(Ordering::Relaxed) && !*shutdown.borrow() {
            // Init failed: as on Lambda, the invocation waiting for this start fails.
            let init_error = shared
                .init_errors
                .lock()
                .ok()
                .and_then(|e| e.last().cloned());
            if let Ok(mut queue) = shared.queue_rx.try_lock()
                && let Ok(pending) = queue.try_recv()
            {
                let _ = pending.started.send(index);
                let message = init_error.unwrap_or(reason);
                let _ = pending
                    .reply
                    .send(Outcome::Crashed(format!("init failed: {message}")));
            }
        }
        // A process that keeps dying right away is retried less and less often.
        backoff = if started.elapsed() > Duration::from_secs(10) {
            Duration::from_millis(100)
        } else {
            (backoff * 2).min(Duration::from_secs(5))
        };
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = http::stopped(&mut shutdown) => return,
        }
    }
}

fn process_command(
    config: &FunctionConfig,
    overrides: &BTreeMap<String, Option<String>>,
    runtime_api: &str,
) -> tokio::process::Command {
    let mut environment = config.environment.clone();
    for (name, value) in overrides {
        match value {
            Some(value) => environment.insert(name.clone(), value.clone()),
            None => environment.remove(name),
        };
    }
    let stream_name = format!("local/[$LATEST]{}", uuid::Uuid::new_v4().simple());
    let mut command = tokio::process::Command::new(&config.binary);
    command
        .env_clear()
        .envs(
            std::env::var_os("PATH").map(|p| ("PATH".to_owned(), p.to_string_lossy().into_owned())),
        )
        .envs(&environment)
        .env("AWS_LAMBDA_FUNCTION_NAME", &config.name)
        .env(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            config.memory_mb.to_string(),
        )
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", config.name),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", stream_name)
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("AWS_REGION", &config.region)
        .env("AWS_DEFAULT_REGION", &config.region)
        .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
        .env("_HANDLER", "bootstrap")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}
