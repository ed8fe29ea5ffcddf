//! `orders-api`: the HTTP API behind API Gateway.
//!
//! | route | success |
//! |---|---|
//! | `POST /loadProducts` | 200 `{"loaded": 20}` |
//! | `GET /products` | 200 `{"products": [...]}` |
//! | `GET /products/{product_id}` | 200 product |
//! | `POST /cart/{user_id}` `{product_id, quantity}` | 201 new line, 200 quantity replaced |
//! | `GET /cart/{user_id}` | 200 `{"user_id", "lines": [...]}` |
//! | `DELETE /cart/{user_id}/{product_id}` | 204 |
//! | `POST /order` `{user_id}` (+ `Idempotency-Key`) | 201 order, 200 on a replayed key |
//! | `GET /orders/{order_id}` | 200 order |
//! | `GET /users/{user_id}/orders?limit=&cursor=` | 200 `{"orders": [...], "next_cursor"}` |
//!
//! Every failure is one JSON shape with a real status ([`ApiError`]). Handlers take an
//! [`ApiRequest`], which is plain data, so they are tested without Lambda; [`lambda`]
//! converts API Gateway events to and from it.

pub mod error;
pub mod lambda;

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::json;

pub use error::ApiError;

use crate::clock::Timestamp;
use crate::domain::{
    self, CartLine, IdempotencyKey, LineStatus, MAX_CART_LINES, Order, OrderId, OrderStatus,
    PricingError, ProductId, Quantity, UserId,
};
use crate::keys;
use crate::store::{CreateOrderError, Store};

/// Largest accepted request body, in bytes. Every valid body is far smaller.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Default page size of `GET /users/{user_id}/orders`.
pub const DEFAULT_PAGE_SIZE: i32 = 20;
/// Largest page size of `GET /users/{user_id}/orders`.
pub const MAX_PAGE_SIZE: i32 = 100;
/// The request header that makes `POST /order` idempotent.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// An HTTP method the API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// DELETE
    Delete,
    /// Anything else (always 405).
    #[default]
    Other,
}

impl Method {
    /// Parses a method name.
    pub fn parse(name: &str) -> Self {
        match name {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "DELETE" => Self::Delete,
            _ => Self::Other,
        }
    }
}

/// A request, as plain data.
#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    /// Method.
    pub method: Method,
    /// Path without the stage, e.g. `/cart/alice`.
    pub path: String,
    /// Query-string parameters (first value of each).
    pub query: HashMap<String, String>,
    /// Headers, names lower-cased.
    pub headers: HashMap<String, String>,
    /// The body bytes (decoded from base64 if API Gateway encoded them).
    pub body: Vec<u8>,
}

impl ApiRequest {
    /// A request with a method and path.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            ..Self::default()
        }
    }

    /// Adds a JSON body.
    #[must_use]
    pub fn json(mut self, body: impl Into<String>) -> Self {
        self.body = body.into().into_bytes();
        self.headers
            .insert("content-type".into(), "application/json".into());
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.insert(name.to_ascii_lowercase(), value.into());
        self
    }

    /// Adds a query parameter.
    #[must_use]
    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.insert(name.to_owned(), value.into());
        self
    }
}

/// A response, as plain data.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// Extra headers (`content-type: application/json` is implied when there is a body).
    pub headers: Vec<(&'static str, String)>,
    /// JSON body; empty for 204.
    pub body: String,
}

impl ApiResponse {
    fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The body parsed as JSON (`Null` when empty), for tests and tools.
    pub fn json_body(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl From<ApiError> for ApiResponse {
    fn from(error: ApiError) -> Self {
        let mut response = Self {
            status: error.status,
            headers: Vec::new(),
            body: error.body(),
        };
        if error.status == 405
            && let Some(allow) = error.details.as_ref().and_then(|d| d["allow"].as_str())
        {
            response.headers.push(("allow", allow.to_owned()));
        }
        if let Some(seconds) = error.retry_after_seconds {
            response.headers.push(("retry-after", seconds.to_string()));
        }
        response
    }
}

enum Route<'a> {
    LoadProducts,
    Products,
    Product(&'a str),
    Cart(&'a str),
    CartLine(&'a str, &'a str),
    PlaceOrder,
    Order(&'a str),
    UserOrders(&'a str),
}

impl<'a> Route<'a> {
    fn parse(path: &'a str) -> Option<Self> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        Some(match segments.as_slice() {
            ["loadProducts"] => Self::LoadProducts,
            ["products"] => Self::Products,
            ["products", id] => Self::Product(id),
            ["cart", user] => Self::Cart(user),
            ["cart", user, product] => Self::CartLine(user, product),
            ["order"] => Self::PlaceOrder,
            ["orders", id] => Self::Order(id),
            ["users", user, "orders"] => Self::UserOrders(user),
            _ => return None,
        })
    }

    fn allowed(&self) -> &'static str {
        match self {
            Self::LoadProducts | Self::PlaceOrder => "POST",
            Self::Products | Self::Product(_) | Self::Order(_) | Self::UserOrders(_) => "GET",
            Self::Cart(_) => "GET, POST",
            Self::CartLine(..) => "DELETE",
        }
    }
}

#[derive(Deserialize)]
struct AddToCart {
    product_id: String,
    quantity: i64,
}

#[derive(Deserialize)]
struct PlaceOrder {
    user_id: String,
}

fn user_id(value: &str) -> Result<UserId, ApiError> {
    UserId::parse(value).map_err(|e| ApiError::invalid("user_id", e))
}

fn product_id(value: &str) -> Result<ProductId, ApiError> {
    ProductId::parse(value).map_err(|e| ApiError::invalid("product_id", e))
}

fn order_id(value: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(value).map_err(|e| ApiError::invalid("order_id", e))
}

fn product_not_found(id: &ProductId) -> ApiError {
    ApiError::not_found("PRODUCT_NOT_FOUND", format!("product {id} does not exist"))
}

/// Checks the body's size and media type, then parses it.
fn parse_body<T: serde::de::DeserializeOwned>(request: &ApiRequest) -> Result<T, ApiError> {
    if let Some(media) = request.headers.get("content-type") {
        let essence = media.split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                format!("content-type must be application/json, got {essence}"),
            ));
        }
    }
    if request.body.is_empty() {
        return Err(ApiError::new(
            400,
            "MALFORMED_JSON",
            "request body is empty; a JSON object is required",
        ));
    }
    // Syntax first: a body that is not one JSON value is MALFORMED_JSON even when its
    // first value already has the wrong shape (`{"a":1}{"b":2}`).
    serde_json::from_slice::<serde::de::IgnoredAny>(&request.body)?;
    Ok(serde_json::from_slice(&request.body)?)
}

/// The API over a [`Store`].
#[derive(Debug, Clone)]
pub struct OrdersApi {
    store: Store,
}

impl OrdersApi {
    /// An API over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Serves one request. Never fails: every error becomes its response.
    pub async fn handle(&self, request: ApiRequest) -> ApiResponse {
        let response = match self.route(&request).await {
            Ok(response) => response,
            Err(error) => ApiResponse::from(error),
        };
        let level_is_error = response.status >= 500;
        if level_is_error {
            tracing::error!(path = %request.path, status = response.status, "request failed");
        } else {
            tracing::info!(path = %request.path, status = response.status, "request served");
        }
        response
    }

    async fn route(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let route = Route::parse(&request.path).ok_or_else(|| {
            ApiError::not_found("ROUTE_NOT_FOUND", format!("no route for {}", request.path))
        })?;
        if request.body.len() > MAX_BODY_BYTES {
            return Err(ApiError::new(
                413,
                "PAYLOAD_TOO_LARGE",
                format!(
                    "request body is {} bytes; the limit is {MAX_BODY_BYTES}",
                    request.body.len()
                ),
            ));
        }
        match (request.method, route) {
            (Method::Post, Route::LoadProducts) => self.load_products().await,
            (Method::Get, Route::Products) => self.list_products().await,
            (Method::Get, Route::Product(id)) => self.get_product(id).await,
            (Method::Post, Route::Cart(user)) => self.add_to_cart(user, request).await,
            (Method::Get, Route::Cart(user)) => self.get_cart(user).await,
            (Method::Delete, Route::CartLine(user, product)) => {
                self.remove_from_cart(user, product).await
            }
            (Method::Post, Route::PlaceOrder) => self.place_order(request).await,
            (Method::Get, Route::Order(id)) => self.get_order(id).await,
            (Method::Get, Route::UserOrders(user)) => self.user_orders(user, request).await,
            (_, route) => Err(ApiError::new(
                405,
                "METHOD_NOT_ALLOWED",
                format!("{} allows {}", request.path, route.allowed()),
            )
            .with_details(json!({ "allow": route.allowed() }))),
        }
    }

    async fn load_products(&self) -> Result<ApiResponse, ApiError> {
        let catalogue = domain::bundled_catalogue().map_err(|e| ApiError::internal(&e))?;
        let loaded = self.store.put_products(&catalogue).await?;
        Ok(ApiResponse::json(200, &json!({ "loaded": loaded })))
    }

    async fn list_products(&self) -> Result<ApiResponse, ApiError> {
        let products = self.store.list_products().await?;
        Ok(ApiResponse::json(200, &json!({ "products": products })))
    }

    async fn get_product(&self, id: &str) -> Result<ApiResponse, ApiError> {
        let id = product_id(id)?;
        let product = self
            .store
            .get_product(&id)
            .await?
            .ok_or_else(|| product_not_found(&id))?;
        Ok(ApiResponse::json(200, &json!(product)))
    }

    async fn add_to_cart(&self, user: &str, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let user = user_id(user)?;
        let body: AddToCart = parse_body(request)?;
        let product = product_id(&body.product_id)?;
        let quantity = Quantity::new(body.quantity).map_err(|e| {
            ApiError::new(422, "QUANTITY_OUT_OF_RANGE", e.to_string())
                .with_details(json!({ "field": "quantity", "min": domain::MIN_QUANTITY, "max": domain::MAX_QUANTITY }))
        })?;
        let found = self
            .store
            .get_product(&product)
            .await?
            .ok_or_else(|| product_not_found(&product))?;
        let cart = self.store.cart(&user).await?.lines;
        if cart.len() >= MAX_CART_LINES && !cart.iter().any(|l| l.product_id == product) {
            return Err(ApiError::new(
                422,
                "CART_FULL",
                format!("a cart holds at most {MAX_CART_LINES} lines"),
            ));
        }
        let line = CartLine {
            product_id: product,
            quantity,
            unit_price_minor: found.unit_price_minor,
            currency: found.currency,
            updated_at: Timestamp::now().rfc3339,
            line_status: LineStatus::Pending,
        };
        let created = self.store.put_cart_line(&user, &line).await?;
        let mut body = json!(line);
        body["user_id"] = json!(user);
        Ok(ApiResponse::json(if created { 201 } else { 200 }, &body))
    }

    async fn get_cart(&self, user: &str) -> Result<ApiResponse, ApiError> {
        let user = user_id(user)?;
        let lines = self.store.cart(&user).await?.lines;
        Ok(ApiResponse::json(
            200,
            &json!({ "user_id": user, "lines": lines }),
        ))
    }

    async fn remove_from_cart(&self, user: &str, product: &str) -> Result<ApiResponse, ApiError> {
        let user = user_id(user)?;
        let product = product_id(product)?;
        if self.store.delete_cart_line(&user, &product).await? {
            Ok(ApiResponse {
                status: 204,
                headers: Vec::new(),
                body: String::new(),
            })
        } else {
            Err(ApiError::not_found(
                "CART_LINE_NOT_FOUND",
                format!("product {product} is not in the cart of {user}"),
            ))
        }
    }

    async fn place_order(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let body: PlaceOrder = parse_body(request)?;
        let user = user_id(&body.user_id)?;
        let key = request
            .headers
            .get(IDEMPOTENCY_KEY_HEADER)
            .map(|value| {
                IdempotencyKey::parse(value).map_err(|reason| {
                    ApiError::new(400, "INVALID_HEADER", reason)
                        .with_details(json!({ "header": "Idempotency-Key" }))
                })
            })
            .transpose()?;
        let id = key.as_ref().map_or_else(OrderId::random, |key| {
            OrderId::for_idempotency_key(&user, key)
        });
        if key.is_some()
            && let Some(order) = self.store.get_order(&id).await?
        {
            return Ok(replayed(&order));
        }

        let cart = self.store.cart(&user).await?;
        if cart.lines.is_empty() {
            // A concurrent request with this key may have just ordered the cart.
            if key.is_some()
                && let Some(order) = self.store.get_order(&id).await?
            {
                return Ok(replayed(&order));
            }
            return Err(ApiError::new(
                409,
                "CART_EMPTY",
                format!("the cart of {user} is empty"),
            ));
        }
        if cart.lines.len() > MAX_CART_LINES {
            return Err(ApiError::new(
                422,
                "CART_FULL",
                format!(
                    "an order holds at most {MAX_CART_LINES} lines; the cart has {}",
                    cart.lines.len()
                ),
            ));
        }
        let ids: Vec<ProductId> = cart
            .lines
            .iter()
            .map(|line| line.product_id.clone())
            .collect();
        let catalogue = self.store.get_products(&ids).await?;
        let (lines, total_minor, currency) =
            domain::price_lines(&cart.lines, &catalogue).map_err(|e| match e {
                PricingError::UnknownProduct(id) => ApiError::new(
                    409,
                    "PRODUCT_UNAVAILABLE",
                    format!("product {id} is no longer sold; remove it from the cart"),
                )
                .with_details(json!({ "product_id": id })),
                other => ApiError::internal(&other),
            })?;
        let now = Timestamp::now();
        let order = Order {
            order_id: id,
            user_id: user,
            order_status: OrderStatus::Ordered,
            lines,
            total_minor,
            currency,
            placed_at: now.rfc3339,
            processed_at: None,
        };
        match self.store.create_order(&order, &cart, now.epoch_ms).await {
            Ok(()) => {
                middleware::logging::set_correlation_id(order.order_id.to_string());
                middleware::metrics::add(&crate::metrics::ORDERS_PLACED, 1.0);
                tracing::info!(correlation_id = %order.order_id, total_minor, "order placed");
                Ok(ApiResponse::json(201, &json!(order))
                    .with_header("location", format!("/orders/{}", order.order_id)))
            }
            // A concurrent request with the same key won the race: answer with its order.
            Err(CreateOrderError::OrderExists) => match self.store.get_order(&id).await? {
                Some(existing) => Ok(replayed(&existing)),
                None => Err(ApiError::new(
                    409,
                    "CART_CHANGED",
                    "the order could not be placed; retry",
                )),
            },
            Err(CreateOrderError::CartChanged) => match key {
                // The change may be a concurrent request with this key ordering the cart.
                Some(_) => match self.store.get_order(&id).await? {
                    Some(existing) => Ok(replayed(&existing)),
                    None => Err(cart_changed()),
                },
                None => Err(cart_changed()),
            },
            Err(conflict @ CreateOrderError::Conflict { .. }) => {
                tracing::warn!(reason = %conflict, "order not placed: transient conflict");
                Err(ApiError::new(
                    503,
                    "TRANSACTION_CONFLICT",
                    "the order could not be placed now because of a concurrent change; nothing was ordered, retry (with the same Idempotency-Key)",
                )
                .retry_after(1))
            }
            Err(CreateOrderError::Store(e)) => Err(e.into()),
        }
    }

    async fn get_order(&self, id: &str) -> Result<ApiResponse, ApiError> {
        let id = order_id(id)?;
        let order = self.store.get_order(&id).await?.ok_or_else(|| {
            ApiError::not_found("ORDER_NOT_FOUND", format!("order {id} does not exist"))
        })?;
        Ok(ApiResponse::json(200, &json!(order)))
    }

    async fn user_orders(&self, user: &str, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let user = user_id(user)?;
        let limit = match request.query.get("limit") {
            None => DEFAULT_PAGE_SIZE,
            Some(raw) => raw
                .parse::<i32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| {
                    ApiError::new(
                        400,
                        "INVALID_QUERY",
                        format!("limit must be an integer from 1 to {MAX_PAGE_SIZE}"),
                    )
                    .with_details(json!({ "parameter": "limit" }))
                })?,
        };
        let after = request
            .query
            .get("cursor")
            .map(|raw| {
                keys::parse_user_order_sort_key(raw).ok_or_else(|| {
                    ApiError::new(400, "INVALID_QUERY", "cursor is not one this API returned")
                        .with_details(json!({ "parameter": "cursor" }))
                })
            })
            .transpose()?;
        let page = self.store.orders_of_user(&user, limit, after).await?;
        Ok(ApiResponse::json(
            200,
            &json!({ "user_id": user, "orders": page.orders, "next_cursor": page.next_cursor }),
        ))
    }
}

fn cart_changed() -> ApiError {
    ApiError::new(
        409,
        "CART_CHANGED",
        "the cart changed while the order was being placed; nothing was ordered, retry",
    )
}

fn replayed(order: &Order) -> ApiResponse {
    middleware::metrics::add(&crate::metrics::ORDER_REQUESTS_REPLAYED, 1.0);
    ApiResponse::json(200, &json!(order))
        .with_header("idempotent-replayed", "true")
        .with_header("location", format!("/orders/{}", order.order_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    /// An API whose store points at a closed port: these tests cover what is decided
    /// before the table is touched, and a test that reached the table would get a 500.
    fn api() -> OrdersApi {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::for_tests())
            .build();
        OrdersApi::new(Store::new(aws_sdk_dynamodb::Client::from_conf(config), "t"))
    }

    fn run<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn call(request: ApiRequest) -> (u16, serde_json::Value, ApiResponse) {
        let response = run(api().handle(request));
        (response.status, response.json_body(), response.clone())
    }

    #[test]
    fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
        let (status, body, _) = call(ApiRequest::new(Method::Get, "/nope"));
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("ROUTE_NOT_FOUND"))
        );
        let (status, body, response) = call(ApiRequest::new(Method::Delete, "/cart/alice"));
        assert_eq!(
            (status, body["error"].as_str()),
            (405, Some("METHOD_NOT_ALLOWED"))
        );
        assert!(
            response
                .headers
                .contains(&("allow", "GET, POST".to_owned()))
        );
        let (status, _, _) = call(ApiRequest::new(Method::Other, "/products"));
        assert_eq!(status, 405);
    }

    #[test]
    fn malformed_json_is_400_naming_the_problem() {
        let (status, body, _) =
            call(ApiRequest::new(Method::Post, "/cart/alice").json("{\"product_id\":"));
        assert_eq!(status, 400);
        assert_eq!(body["error"], "MALFORMED_JSON");
        assert!(
            body["message"].as_str().unwrap().contains("line 1"),
            "{body}"
        );

        let (status, body, _) =
            call(ApiRequest::new(Method::Post, "/cart/alice").json(r#"{"product_id":"p"}"#));
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("INVALID_BODY"))
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("missing field `quantity`"),
            "{body}"
        );

        let (status, body, _) = call(ApiRequest::new(Method::Post, "/order"));
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("MALFORMED_JSON"))
        );
    }

    #[test]
    fn quantity_out_of_range_is_422_before_any_read() {
        for quantity in [0_i64, -3, 100, 1_000_000_000_000] {
            let (status, body, _) = call(ApiRequest::new(Method::Post, "/cart/alice").json(
                format!(r#"{{"product_id":"desk-oak-140","quantity":{quantity}}}"#),
            ));
            assert_eq!(status, 422, "{quantity}: {body}");
            assert_eq!(body["error"], "QUANTITY_OUT_OF_RANGE");
            assert_eq!(body["details"]["max"], 99);
        }
    }

    #[test]
    fn oversized_bodies_are_413() {
        let big = format!(
            r#"{{"product_id":"{}","quantity":1}}"#,
            "x".repeat(MAX_BODY_BYTES)
        );
        let (status, body, _) = call(ApiRequest::new(Method::Post, "/cart/alice").json(big));
        assert_eq!(
            (status, body["error"].as_str()),
            (413, Some("PAYLOAD_TOO_LARGE"))
        );
    }

    #[test]
    fn other_media_types_are_415() {
        let request = ApiRequest::new(Method::Post, "/order")
            .json(r#"{"user_id":"alice"}"#)
            .header("content-type", "text/plain");
        assert_eq!(call(request).0, 415);
        let request = ApiRequest::new(Method::Post, "/order")
            .json("{")
            .header("content-type", "application/json; charset=utf-8");
        assert_eq!(call(request).0, 400);
    }

    #[test]
    fn ids_are_checked_for_length_and_characters() {
        let long = "u".repeat(65);
        for (request, field) in [
            (
                ApiRequest::new(Method::Get, format!("/cart/{long}")),
                "user_id",
            ),
            (ApiRequest::new(Method::Get, "/cart/al%20ice"), "user_id"),
            (ApiRequest::new(Method::Get, "/products/a.b"), "product_id"),
            (
                ApiRequest::new(Method::Get, "/orders/not-a-uuid"),
                "order_id",
            ),
            (
                ApiRequest::new(Method::Delete, "/cart/alice/x$y"),
                "product_id",
            ),
            (
                ApiRequest::new(Method::Post, "/cart/alice")
                    .json(r#"{"product_id":"a b","quantity":1}"#),
                "product_id",
            ),
            (
                ApiRequest::new(Method::Post, "/order").json(r#"{"user_id":""}"#),
                "user_id",
            ),
        ] {
            let (status, body, _) = call(request);
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"], "VALIDATION_FAILED");
            assert_eq!(body["details"]["field"], field);
        }
    }

    #[test]
    fn bad_idempotency_keys_and_query_parameters_are_400() {
        let request = ApiRequest::new(Method::Post, "/order")
            .json(r#"{"user_id":"alice"}"#)
            .header("Idempotency-Key", "k".repeat(65));
        let (status, body, _) = call(request);
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("INVALID_HEADER"))
        );

        for (name, value) in [
            ("limit", "0"),
            ("limit", "101"),
            ("limit", "ten"),
            ("cursor", "zzz"),
        ] {
            let (status, body, _) =
                call(ApiRequest::new(Method::Get, "/users/alice/orders").query(name, value));
            assert_eq!(
                (status, body["details"]["parameter"].as_str()),
                (400, Some(name)),
                "{value}"
            );
        }
    }

    #[test]
    fn store_failures_are_500_without_internals() {
        let (status, body, _) = call(ApiRequest::new(Method::Get, "/products/desk-oak-140"));
        assert_eq!(status, 500);
        assert_eq!(body["error"], "INTERNAL");
        assert!(
            !body["message"].as_str().unwrap().contains("127.0.0.1"),
            "{body}"
        );
    }
}
