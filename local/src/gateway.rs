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
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let matched = state.config.routes.iter().find_map(|route| {
        (route.method == method || route.method == "ANY")
            .then(|| match_route(&route.path, &path).map(|parameters| (route, parameters)))
            .flatten()
    });
    let Some((route, path_parameters)) = matched else {
        return gateway_error(
            403,
            "Missing Authentication Token",
            "MissingAuthenticationTokenException",
        );
    };
    let api_key = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if route.api_key_required && api_key.as_deref() != Some(state.config.api_key.as_str()) {
        return gateway_error(403, "Forbidden", "ForbiddenException");
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
        &state,
        route,
        &parts,
        &path,
        query.as_deref(),
        &path_parameters,
        api_key,
        &body,
    );
    match function.invoke(event.to_string()).await {
        Outcome::Response(payload) => proxy_response(&payload).unwrap_or_else(|| {
            gateway_error(502, "Internal server error", "InternalServerErrorException")
        }),
        Outcome::TimedOut => gateway_error(504, "Endpoint request timed out", "IntegrationTimeout"),
        Outcome::FunctionError { .. } | Outcome::Crashed(_) => {
            gateway_error(502, "Internal server error", "InternalServerErrorException")
        }
    }
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
