//! A local API Gateway (REST API, Lambda proxy integration).
//!
//! Routes and their API-key requirement come from the template. As on API Gateway: a
//! path or method with no route is `403 {"message":"Missing Authentication Token"}`;
//! a missing or wrong `x-api-key` on a route that requires one is
//! `403 {"message":"Forbidden"}`; a function error is `502`, a timeout `504`; a
//! request the HTTP layer cannot parse is `400` (or `414`, `431`) with a JSON message.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::cloudwatch::Plane;
use crate::cloudwatch::store::MetricId;
use crate::function::{Function, Outcome};
use crate::http::{self, Body};
use crate::template::RouteSpec;

/// API Gateway's payload limit.
const MAX_BODY: usize = 10 * 1024 * 1024;

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Port on 127.0.0.1 (0 for any free port).
    pub port: u16,
    /// The key clients send as `x-api-key`.
    pub api_key: String,
    /// Stage name, as it appears in `requestContext`.
    pub stage: String,
    /// Routes, with the function (logical id) each invokes.
    pub routes: Vec<RouteSpec>,
    /// Where the gateway reports `AWS/ApiGateway` metrics and its access log, if
    /// anywhere.
    pub telemetry: Option<GatewayTelemetry>,
}

/// What API Gateway reports about each request: `AWS/ApiGateway` metrics under the
/// API's name and stage, and the stage's access log.
#[derive(Debug, Clone)]
pub struct GatewayTelemetry {
    /// The plane the metrics go to.
    pub plane: Arc<Plane>,
    /// The `ApiName` dimension (the API's `Name`).
    pub api_name: String,
    /// The access log file and the template's `AccessLogSetting.Format`.
    pub access_log: Option<(std::path::PathBuf, String)>,
}

/// The `$context` variables the gateway can fill in an access log format.
pub const ACCESS_LOG_VARIABLES: [&str; 13] = [
    "requestId",
    "xrayTraceId",
    "requestTime",
    "httpMethod",
    "resourcePath",
    "path",
    "status",
    "responseLength",
    "responseLatency",
    "integration.latency",
    "identity.apiKeyId",
    "identity.sourceIp",
    "error.message",
];

/// The `$context` variables of an access log format that the local gateway does not
/// fill, if any: the stack refuses to start with one rather than write it empty.
pub fn unsupported_access_log_variables(format: &str) -> Vec<String> {
    let mut unknown = Vec::new();
    for (i, _) in format.match_indices("$context.") {
        let name: String = format[i + 9..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
            .collect();
        let name = name.trim_end_matches('.').to_owned();
        if !ACCESS_LOG_VARIABLES.contains(&name.as_str()) {
            unknown.push(name);
        }
    }
    unknown
}

/// One access log line: `format` with each `$context` variable replaced by its value
/// (escaped for a JSON string, as the template's format is JSON).
pub fn access_log_line(format: &str, values: &BTreeMap<&str, String>) -> String {
    let mut line = String::with_capacity(format.len());
    let mut rest = format;
    while let Some(i) = rest.find("$context.") {
        line.push_str(&rest[..i]);
        let after = &rest[i + 9..];
        // The longest known variable that starts here.
        let name = ACCESS_LOG_VARIABLES
            .iter()
            .filter(|name| after.starts_with(**name))
            .max_by_key(|name| name.len());
        match name {
            Some(name) => {
                let value = values.get(name).map(String::as_str).unwrap_or("-");
                let escaped = serde_json::to_string(value).unwrap_or_default();
                line.push_str(&escaped[1..escaped.len().saturating_sub(1)]);
                rest = &after[name.len()..];
            }
            None => {
                line.push_str("$context.");
                rest = after;
            }
        }
    }
    line.push_str(rest);
    line
}

/// What the gateway learned about a request, for its metrics and access log.
#[derive(Debug, Default)]
struct Facts {
    resource_path: String,
    integration_ms: Option<f64>,
    api_key_id: Option<String>,
    error: Option<String>,
}

struct State {
    config: GatewayConfig,
    functions: HashMap<String, Function>,
    address: SocketAddr,
}

/// Starts the gateway; returns the address it listens on.
///
/// # Errors
/// If the port cannot be bound.
pub async fn start(
    config: GatewayConfig,
    functions: HashMap<String, Function>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let (listener, address) = http::bind(config.port).await?;
    let state = Arc::new(State {
        config,
        functions,
        address,
    });
    tokio::spawn(http::serve_json(
        listener,
        move |request| handle(Arc::clone(&state), request),
        shutdown,
    ));
    Ok(address)
}

fn gateway_error(status: u16, message: &str, error_type: &str) -> Response<Body> {
    let mut response = http::response(status, json!({ "message": message }).to_string());
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = hyper::header::HeaderValue::from_str(error_type) {
        headers.insert("x-amzn-errortype", value);
    }
    response
}

/// Matches `/cart/{user_id}` against `/cart/alice`.
fn match_route<'a>(pattern: &str, path: &'a str) -> Option<BTreeMap<String, &'a str>> {
    let pattern: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if pattern.len() != segments.len() {
        return None;
    }
    let mut parameters = BTreeMap::new();
    for (p, s) in pattern.iter().zip(&segments) {
        match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !s.is_empty() => {
                parameters.insert(name.to_owned(), *s);
            }
            Some(_) => return None,
            None if p == s => {}
            None => return None,
        }
    }
    Some(parameters)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Body> {
    let Some(telemetry) = state.config.telemetry.clone() else {
        return answer(&state, request, &mut Facts::default()).await;
    };
    let began = std::time::Instant::now();
    let received_at = crate::now_rfc3339();
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let mut facts = Facts::default();
    let response = answer(&state, request, &mut facts).await;
    let latency_ms = began.elapsed().as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    let plane = &telemetry.plane;
    let metric = |name: &str| {
        MetricId::new(
            "AWS/ApiGateway",
            name,
            [
                ("ApiName", telemetry.api_name.as_str()),
                ("Stage", state.config.stage.as_str()),
            ],
        )
    };
    plane.put(metric("Count"), 1.0);
    plane.put(
        metric("4XXError"),
        f64::from(u8::from((400..500).contains(&status))),
    );
    plane.put(metric("5XXError"), f64::from(u8::from(status >= 500)));
    plane.put(metric("Latency"), latency_ms);
    if let Some(integration) = facts.integration_ms {
        plane.put(metric("IntegrationLatency"), integration);
    }
    if let Some((file, format)) = &telemetry.access_log {
        let length = hyper::body::Body::size_hint(response.body())
            .exact()
            .unwrap_or(0);
        let values = BTreeMap::from([
            ("requestId", uuid::Uuid::new_v4().to_string()),
            ("xrayTraceId", "-".to_owned()),
            ("requestTime", received_at),
            ("httpMethod", method),
            (
                "resourcePath",
                if facts.resource_path.is_empty() {
                    "-".to_owned()
                } else {
                    facts.resource_path.clone()
                },
            ),
            ("path", format!("/{}{path}", state.config.stage)),
            ("status", status.to_string()),
            ("responseLength", length.to_string()),
            ("responseLatency", format!("{latency_ms:.0}")),
            (
                "integration.latency",
                facts
                    .integration_ms
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0}")),
            ),
            (
                "identity.apiKeyId",
                facts.api_key_id.clone().unwrap_or_else(|| "-".to_owned()),
            ),
            ("identity.sourceIp", "127.0.0.1".to_owned()),
            (
                "error.message",
                facts.error.clone().unwrap_or_else(|| "-".to_owned()),
            ),
        ]);
        let line = access_log_line(format, &values);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            tracing::warn!(file = %file.display(), error = %e, "cannot write the API access log");
        }
    }
    response
}

async fn answer(state: &State, request: Request<Incoming>, facts: &mut Facts) -> Response<Body> {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let matched = state.config.routes.iter().find_map(|route| {
        (route.method == method || route.method == "ANY")
            .then(|| match_route(&route.path, &path).map(|parameters| (route, parameters)))
            .flatten()
    });
    let Some((route, path_parameters)) = matched else {
        facts.error = Some("Missing Authentication Token".to_owned());
        return gateway_error(
            403,
            "Missing Authentication Token",
            "MissingAuthenticationTokenException",
        );
    };
    facts.resource_path = route.path.clone();
    let api_key = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if route.api_key_required && api_key.as_deref() != Some(state.config.api_key.as_str()) {
        facts.error = Some("Forbidden".to_owned());
        return gateway_error(403, "Forbidden", "ForbiddenException");
    }
    if api_key.is_some() {
        facts.api_key_id = Some("local".to_owned());
    }
    let Some(function) = state.functions.get(&route.function) else {
        return gateway_error(500, "Internal server error", "InternalServerErrorException");
    };
    let query = request.uri().query().map(str::to_owned);
    let (parts, body) = match http::read_body(request, MAX_BODY).await {
        Ok(read) => read,
        Err(_) => return gateway_error(413, "Request Too Long", "RequestTooLongException"),
    };
    let event = proxy_event(
        state,
        route,
        &parts,
        &path,
        query.as_deref(),
        &path_parameters,
        api_key,
        &body,
    );
    let invoked = std::time::Instant::now();
    let outcome = function.invoke(event.to_string()).await;
    facts.integration_ms = Some(invoked.elapsed().as_secs_f64() * 1000.0);
    let (status, message, error_type) = match outcome {
        Outcome::Response(payload) => match proxy_response(&payload) {
            Some(response) => return response,
            None => (502, "Internal server error", "InternalServerErrorException"),
        },
        Outcome::TimedOut => (504, "Endpoint request timed out", "IntegrationTimeout"),
        Outcome::FunctionError { .. } | Outcome::Crashed(_) => {
            (502, "Internal server error", "InternalServerErrorException")
        }
        // API Gateway answers a throttled Lambda integration with a 500.
        Outcome::Throttled => (500, "Internal server error", "InternalServerErrorException"),
    };
    facts.error = Some(message.to_owned());
    gateway_error(status, message, error_type)
}

#[allow(clippy::too_many_arguments)]
fn proxy_event(
    state: &State,
    route: &RouteSpec,
    parts: &hyper::http::request::Parts,
    path: &str,
    query: Option<&str>,
    path_parameters: &BTreeMap<String, &str>,
    api_key: Option<String>,
    body: &Bytes,
) -> Value {
    let mut headers = serde_json::Map::new();
    let mut multi_headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers.insert(name.as_str().to_owned(), json!(value));
        multi_headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(value);
    }
    let mut query_single = serde_json::Map::new();
    let mut query_multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (percent_decode(name), percent_decode(value));
        query_single.insert(name.clone(), json!(value));
        query_multi.entry(name).or_default().push(value);
    }
    let nullable = |map: serde_json::Map<String, Value>| {
        if map.is_empty() {
            Value::Null
        } else {
            Value::Object(map)
        }
    };
    let (body, is_base64) = match std::str::from_utf8(body) {
        Ok(_) if body.is_empty() => (Value::Null, false),
        Ok(text) => (json!(text), false),
        Err(_) => (json!(aws_smithy_types::base64::encode(body)), true),
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let request_id = uuid::Uuid::new_v4().to_string();
    json!({
        "resource": route.path,
        "path": path,
        "httpMethod": parts.method.as_str(),
        "headers": nullable(headers),
        "multiValueHeaders": multi_headers,
        "queryStringParameters": nullable(query_single),
        "multiValueQueryStringParameters": if query_multi.is_empty() { Value::Null } else { json!(query_multi) },
        "pathParameters": if path_parameters.is_empty() { Value::Null } else { json!(path_parameters) },
        "stageVariables": Value::Null,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": route.path,
            "httpMethod": parts.method.as_str(),
            "extendedRequestId": request_id,
            "requestTime": crate::now_rfc3339(),
            "path": format!("/{}{}", state.config.stage, path),
            "accountId": "000000000000",
            "protocol": "HTTP/1.1",
            "stage": state.config.stage,
            "domainPrefix": "localhost",
            "requestTimeEpoch": now_ms,
            "requestId": request_id,
            "identity": {
                "sourceIp": "127.0.0.1",
                "apiKey": api_key,
                "apiKeyId": "local",
                "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok()),
            },
            "domainName": state.address.to_string(),
            "apiId": "local",
        },
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

/// Turns the function's proxy response into HTTP; `None` if it is not one.
fn proxy_response(payload: &[u8]) -> Option<Response<Body>> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    let status = u16::try_from(value.get("statusCode")?.as_u64()?).ok()?;
    let body = match (
        value.get("body").and_then(Value::as_str),
        value.get("isBase64Encoded").and_then(Value::as_bool),
    ) {
        (Some(text), Some(true)) => Bytes::from(aws_smithy_types::base64::decode(text).ok()?),
        (Some(text), _) => Bytes::from(text.to_owned()),
        (None, _) => Bytes::new(),
    };
    let mut response = http::response(status, body);
    let headers = response.headers_mut();
    if let Some(map) = value.get("headers").and_then(Value::as_object) {
        for (name, v) in map {
            if let (Ok(name), Some(Ok(v))) = (
                hyper::header::HeaderName::from_bytes(name.as_bytes()),
                v.as_str().map(hyper::header::HeaderValue::from_str),
            ) {
                headers.insert(name, v);
            }
        }
    }
    if let Some(map) = value.get("multiValueHeaders").and_then(Value::as_object) {
        for (name, values) in map {
            let Ok(name) = hyper::header::HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            headers.remove(&name);
            for v in values
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if let Ok(v) = hyper::header::HeaderValue::from_str(v) {
                    headers.append(name.clone(), v);
                }
            }
        }
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_parameters() {
        let p = match_route("/cart/{user_id}/{product_id}", "/cart/alice/desk").unwrap();
        assert_eq!(p["user_id"], "alice");
        assert_eq!(p["product_id"], "desk");
        assert!(match_route("/cart/{user_id}", "/cart/alice/desk").is_none());
        assert!(match_route("/cart/{user_id}", "/cart/").is_none());
        assert!(match_route("/products", "/products").unwrap().is_empty());
    }

    #[test]
    fn access_log_lines_fill_the_templates_format_and_refuse_unknown_variables() {
        let format = r#"{"requestId":"$context.requestId","status":"$context.status","integrationLatency":"$context.integration.latency","error":"$context.error.message"}"#;
        assert!(unsupported_access_log_variables(format).is_empty());
        let values = BTreeMap::from([
            ("requestId", "r-1".to_owned()),
            ("status", "502".to_owned()),
            ("integration.latency", "12".to_owned()),
            ("error.message", "Internal \"server\" error".to_owned()),
        ]);
        let line: Value = serde_json::from_str(&access_log_line(format, &values)).unwrap();
        assert_eq!(line["status"], "502");
        assert_eq!(line["integrationLatency"], "12");
        assert_eq!(line["error"], "Internal \"server\" error");
        assert_eq!(
            unsupported_access_log_variables("$context.authorizer.claims.sub $context.status"),
            ["authorizer.claims.sub"]
        );
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn proxy_responses_keep_status_headers_and_body() {
        let payload = br#"{"statusCode":201,"headers":{"location":"/orders/1"},"multiValueHeaders":{"content-type":["application/json"]},"body":"{}","isBase64Encoded":false}"#;
        let response = proxy_response(payload).unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["location"], "/orders/1");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert!(proxy_response(b"not json").is_none());
    }
}
