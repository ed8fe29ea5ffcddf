//! A small HTTP client for the local gateway (the demo and the end-to-end tests).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Calls the API at a base URL, sending an API key when it has one.
#[derive(Debug, Clone)]
pub struct ApiClient {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    key: Option<String>,
}

impl ApiClient {
    /// A client for `base` (e.g. `http://127.0.0.1:3000`).
    pub fn new(base: impl Into<String>, key: Option<String>) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.into(),
            key,
        }
    }

    /// Sends a request; returns the status and the body parsed as JSON (`Null` if it
    /// is empty or not JSON).
    ///
    /// # Errors
    /// A message if the request cannot be sent or the body read.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Value), String> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.header("x-api-key", key);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(body.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body).map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}
