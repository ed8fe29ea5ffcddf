//! Conversion between API Gateway (through `lambda_http`) and [`ApiRequest`] /
//! [`ApiResponse`].

use lambda_http::{Body, Request, RequestExt, Response};

use super::{ApiError, ApiRequest, ApiResponse, Method, OrdersApi};

/// `orders-api` as one value: API Gateway's request adapted in (`map_request`), the
/// API's answer adapted out (`map_response`), and in between [`handle_in_time`].
pub fn service(
    api: OrdersApi,
) -> impl tower::Service<
    Request,
    Response = Response<Body>,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone {
    tower::ServiceBuilder::new()
        .map_request(to_api_request)
        .map_response(to_lambda_response)
        .service(tower::service_fn(move |request: ApiRequest| {
            let api = api.clone();
            async move { Ok(handle_in_time(&api, request).await) }
        }))
}

/// Serves one request. A request still running shortly before the invocation's
/// deadline (a table call that hangs) is given up and answered `503 TIMEOUT`, a JSON
/// error the client can retry with the same `Idempotency-Key`, instead of API
/// Gateway's bare 504 when Lambda kills the invocation.
pub async fn handle_in_time(api: &OrdersApi, request: ApiRequest) -> ApiResponse {
    let path = request.path.clone();
    match middleware::batch::before_deadline(api.handle(request)).await {
        Ok(response) => response,
        Err(out_of_time) => {
            tracing::error!(%path, reason = %out_of_time, "request did not finish in time");
            ApiResponse::from(
                ApiError::new(
                    503,
                    "TIMEOUT",
                    "the request did not finish in time; nothing is lost by retrying it (with the same Idempotency-Key for POST /order)",
                )
                .retry_after(1),
            )
        }
    }
}

/// Turns an API Gateway request into an [`ApiRequest`].
///
/// The path is API Gateway's resource path without the stage (`/cart/alice`, not
/// `/prod/cart/alice`), so routes do not depend on the stage name.
pub fn to_api_request(request: Request) -> ApiRequest {
    let raw_path = request.raw_http_path();
    let path = if raw_path.is_empty() {
        request.uri().path().to_owned()
    } else {
        raw_path.to_owned()
    };
    let query = request
        .query_string_parameters_ref()
        .map(|params| {
            params
                .iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    // Every header is kept, even one that is not visible ASCII: dropping it would turn
    // an invalid `Idempotency-Key` into no key at all, and a retry into a second order.
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let method = Method::parse(request.method().as_str());
    let body = match request.into_body() {
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    ApiRequest {
        method,
        path,
        query,
        headers,
        body,
    }
}

/// Turns an [`ApiResponse`] into the response `lambda_http` sends back.
pub fn to_lambda_response(response: ApiResponse) -> Response<Body> {
    let mut builder = Response::builder().status(response.status);
    if !response.body.is_empty() {
        builder = builder.header("content-type", "application/json");
    }
    for (name, value) in &response.headers {
        builder = builder.header(*name, value.as_str());
    }
    let body = if response.body.is_empty() {
        Body::Empty
    } else {
        Body::Text(response.body)
    };
    builder.body(body).unwrap_or_else(|_| {
        // Only an invalid header value can fail here; ours are ASCII we built.
        let mut fallback = Response::new(Body::Empty);
        *fallback.status_mut() = lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rest_proxy_event_becomes_a_stage_free_request() {
        let request = lambda_http::request::from_str(include_str!(
            "../../tests/fixtures/apigw-rest-request.json"
        ))
        .unwrap();
        let api = to_api_request(request);
        assert_eq!(api.method, Method::Post);
        assert_eq!(api.path, "/cart/alice");
        assert_eq!(
            api.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
        let body: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
        assert_eq!(body["quantity"], 2);
    }

    #[test]
    fn responses_keep_status_headers_and_body() {
        let response = to_lambda_response(ApiResponse {
            status: 201,
            headers: vec![("location", "/orders/x".to_owned())],
            body: "{}".to_owned(),
        });
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["location"], "/orders/x");
        assert_eq!(response.headers()["content-type"], "application/json");
        let empty = to_lambda_response(ApiResponse {
            status: 204,
            headers: vec![],
            body: String::new(),
        });
        assert!(empty.headers().get("content-type").is_none());
    }
}
