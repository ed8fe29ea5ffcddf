//! A corpus of bad inputs, each answered as documented:
//!
//! - more than 150 malformed API requests, sent as raw HTTP through the local gateway
//!   to the real `orders-api` binary: each gets its documented status and the JSON
//!   error shape (the API's `{"error","message"}`, or API Gateway's `{"message"}` for
//!   what the gateway itself refuses), and none a 5xx;
//! - more than 50 malformed SQS messages and stream records handed to the real
//!   handlers against the emulator: each yields exactly one item failure, never a
//!   failed batch or a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use ecommerce_api::pipeline::forward::forward_orders;
use serde_json::{Value, json};
use support::{TestEnv, raw, stream_event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "corpus-key";

/// Who answers: the API (`{"error": CODE, ...}`) or the gateway (`{"message": ...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Api(&'static str),
    Gateway,
    /// A success, so the corpus also shows the good neighbour of a bad input passes.
    Ok,
}

struct Case {
    name: String,
    request: Vec<u8>,
    status: u16,
    shape: Shape,
}

/// A raw HTTP/1.1 request; `key` adds `x-api-key`.
fn http(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8], key: bool) -> Vec<u8> {
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    if key {
        head.push_str(&format!("x-api-key: {KEY}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn json_post(target: &str, body: &str) -> Vec<u8> {
    http(
        "POST",
        target,
        &[("content-type", "application/json")],
        body.as_bytes(),
        true,
    )
}

fn case(name: impl Into<String>, request: Vec<u8>, status: u16, shape: Shape) -> Case {
    Case {
        name: name.into(),
        request,
        status,
        shape,
    }
}

const ROUTES: [(&str, &str); 9] = [
    ("POST", "/loadProducts"),
    ("GET", "/products"),
    ("GET", "/products/desk-oak-140"),
    ("POST", "/cart/corpus-user"),
    ("GET", "/cart/corpus-user"),
    ("DELETE", "/cart/corpus-user/desk-oak-140"),
    ("POST", "/order"),
    ("GET", "/orders/0b7c7d1e-2b0f-4f55-9a77-6d1c2f1b6a11"),
    ("GET", "/users/corpus-user/orders"),
];

fn corpus() -> Vec<Case> {
    use Shape::{Api, Gateway, Ok};
    let mut cases = Vec::new();

    // Authentication: every route, four ways of not having the key.
    for (method, path) in ROUTES {
        for (how, header) in [
            ("no key", None),
            ("wrong key", Some("not-the-key")),
            ("empty key", Some("")),
            ("key in another case", Some("CORPUS-KEY")),
        ] {
            let headers: Vec<(&str, &str)> =
                header.map(|h| vec![("x-api-key", h)]).unwrap_or_default();
            cases.push(case(
                format!("{how}: {method} {path}"),
                http(method, path, &headers, b"", false),
                403,
                Gateway,
            ));
        }
    }

    // Paths and methods no route serves: API Gateway's 403.
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/cart"),
        ("GET", "/cart/a/b/c"),
        ("GET", "/products/x/y"),
        ("POST", "/order/x"),
        ("GET", "/orders"),
        ("GET", "/users/a"),
        ("GET", "/users/a/orders/b"),
        ("PUT", "/order"),
        ("PATCH", "/cart/a"),
        ("DELETE", "/order"),
        ("GET", "/order"),
        ("POST", "/products"),
        ("PROPFIND", "/products"),
        ("OPTIONS", "/order"),
        ("TRACE", "/products"),
        ("DELETE", "/cart/a"),
        ("GET", "/loadproducts"),
        ("GET", "/PRODUCTS"),
        ("GET", "/product"),
    ] {
        cases.push(case(
            format!("no route: {method} {path}"),
            http(method, path, &[], b"", true),
            403,
            Gateway,
        ));
    }

    // Bodies that are not JSON.
    for (name, body) in [
        ("empty", ""),
        ("truncated", r#"{"product_id":"desk-oak-140","quantity":"#),
        (
            "trailing comma",
            r#"{"product_id":"desk-oak-140","quantity":1,}"#,
        ),
        (
            "single quotes",
            "{'product_id':'desk-oak-140','quantity':1}",
        ),
        ("bare word", "desk"),
        ("NaN", r#"{"product_id":"desk-oak-140","quantity":NaN}"#),
        (
            "comment",
            r#"{"product_id":"desk-oak-140", /* c */ "quantity":1}"#,
        ),
        ("two objects", r#"{"a":1}{"b":2}"#),
        ("unclosed string", r#"{"product_id":"desk"#),
        (
            "control character",
            "{\"product_id\":\"de\u{1}sk\",\"quantity\":1}",
        ),
        (
            "unquoted key",
            r#"{product_id:"desk-oak-140","quantity":1}"#,
        ),
        ("only whitespace", "   \n\t "),
        (
            "leading garbage",
            r#"x{"product_id":"desk-oak-140","quantity":1}"#,
        ),
        ("bad escape", r#"{"product_id":"\q","quantity":1}"#),
        (
            "hex number",
            r#"{"product_id":"desk-oak-140","quantity":0x1}"#,
        ),
    ] {
        cases.push(case(
            format!("malformed JSON ({name}): add to cart"),
            json_post("/cart/corpus-user", body),
            400,
            Api("MALFORMED_JSON"),
        ));
    }
    for (name, body) in [
        ("empty", ""),
        ("truncated", r#"{"user_id":"#),
        ("trailing comma", r#"{"user_id":"corpus-user",}"#),
        ("array bracket", r#"["user_id"]]"#),
    ] {
        cases.push(case(
            format!("malformed JSON ({name}): place order"),
            json_post("/order", body),
            400,
            Api("MALFORMED_JSON"),
        ));
    }
    cases.push(case(
        "body not UTF-8",
        http(
            "POST",
            "/cart/corpus-user",
            &[("content-type", "application/json")],
            &[0xff, 0xfe, b'{', b'}'],
            true,
        ),
        400,
        Api("MALFORMED_JSON"),
    ));

    // JSON of the wrong shape or types.
    for (name, body) in [
        ("null", "null"),
        ("array", "[]"),
        ("string", r#""desk""#),
        ("number", "7"),
        ("empty object", "{}"),
        ("missing quantity", r#"{"product_id":"desk-oak-140"}"#),
        ("missing product", r#"{"quantity":1}"#),
        (
            "quantity as string",
            r#"{"product_id":"desk-oak-140","quantity":"2"}"#,
        ),
        (
            "quantity fractional",
            r#"{"product_id":"desk-oak-140","quantity":1.5}"#,
        ),
        (
            "quantity null",
            r#"{"product_id":"desk-oak-140","quantity":null}"#,
        ),
        (
            "quantity bool",
            r#"{"product_id":"desk-oak-140","quantity":true}"#,
        ),
        (
            "quantity huge",
            r#"{"product_id":"desk-oak-140","quantity":1e30}"#,
        ),
        (
            "quantity beyond i64",
            r#"{"product_id":"desk-oak-140","quantity":99999999999999999999}"#,
        ),
        ("product as number", r#"{"product_id":42,"quantity":1}"#),
        (
            "product as array",
            r#"{"product_id":["desk-oak-140"],"quantity":1}"#,
        ),
        (
            "product as object",
            r#"{"product_id":{"id":"x"},"quantity":1}"#,
        ),
        ("product null", r#"{"product_id":null,"quantity":1}"#),
        (
            "quantity as array",
            r#"{"product_id":"desk-oak-140","quantity":[1]}"#,
        ),
    ] {
        cases.push(case(
            format!("wrong shape ({name}): add to cart"),
            json_post("/cart/corpus-user", body),
            400,
            Api("INVALID_BODY"),
        ));
    }
    for (name, body) in [
        ("null", "null"),
        ("empty object", "{}"),
        ("user as number", r#"{"user_id":7}"#),
        ("user null", r#"{"user_id":null}"#),
        ("user as list", r#"{"user_id":["corpus-user"]}"#),
    ] {
        cases.push(case(
            format!("wrong shape ({name}): place order"),
            json_post("/order", body),
            400,
            Api("INVALID_BODY"),
        ));
    }

    // Values out of range.
    for quantity in ["0", "-1", "100", "1000", "-9223372036854775808"] {
        cases.push(case(
            format!("quantity {quantity}"),
            json_post(
                "/cart/corpus-user",
                &format!(r#"{{"product_id":"desk-oak-140","quantity":{quantity}}}"#),
            ),
            422,
            Api("QUANTITY_OUT_OF_RANGE"),
        ));
    }
    cases.push(case(
        "quantity 99 (the largest allowed) replaces the line's quantity",
        json_post(
            "/cart/corpus-user",
            r#"{"product_id":"desk-oak-140","quantity":99}"#,
        ),
        200,
        Ok,
    ));
    cases.push(case(
        "unknown product",
        json_post(
            "/cart/corpus-user",
            r#"{"product_id":"no-such-product","quantity":1}"#,
        ),
        404,
        Api("PRODUCT_NOT_FOUND"),
    ));

    // Identifiers that break their rules, in the body and in the path.
    let long = "a".repeat(65);
    for (name, product) in [
        ("empty", ""),
        ("65 characters", long.as_str()),
        ("a space", "desk oak"),
        ("a slash", "desk/oak"),
        ("a dot", "desk.oak"),
        ("unicode", "bureau-ch\u{e9}ne"),
        ("an emoji", "desk-\u{1f600}"),
        ("a NUL", "desk\u{0}"),
        ("a quote", "desk\"oak"),
        ("percent", "desk%20oak"),
    ] {
        cases.push(case(
            format!("product id with {name}"),
            json_post(
                "/cart/corpus-user",
                &json!({ "product_id": product, "quantity": 1 }).to_string(),
            ),
            400,
            Api("VALIDATION_FAILED"),
        ));
    }
    for (name, user) in [
        ("65 characters", long.as_str()),
        ("a space", "corpus user"),
        ("unicode", "\u{e9}lodie"),
        ("a dot", "corpus.user"),
        ("an at sign", "corpus@user"),
        ("empty", ""),
    ] {
        cases.push(case(
            format!("user id in the body with {name}"),
            json_post("/order", &json!({ "user_id": user }).to_string()),
            400,
            Api("VALIDATION_FAILED"),
        ));
    }
    for (name, path) in [
        ("65 characters", format!("/cart/{long}")),
        ("a percent-encoded space", "/cart/corpus%20user".to_owned()),
        ("a percent-encoded slash", "/cart/corpus%2Fuser".to_owned()),
        ("percent-encoded unicode", "/cart/%C3%A9lodie".to_owned()),
        ("an invalid escape", "/cart/corpus%ZZ".to_owned()),
        ("a lone percent", "/cart/corpus%".to_owned()),
        ("a dot", "/cart/corpus.user".to_owned()),
        ("dot-dot", "/cart/..".to_owned()),
        ("an encoded NUL", "/cart/corpus%00".to_owned()),
        ("a tilde", "/cart/~corpus".to_owned()),
        ("a plus", "/cart/corpus+user".to_owned()),
        ("a comma", "/cart/a,b".to_owned()),
    ] {
        cases.push(case(
            format!("user id in the path with {name}"),
            http("GET", &path, &[], b"", true),
            400,
            Api("VALIDATION_FAILED"),
        ));
    }
    for (name, path) in [
        ("a number", "/orders/123"),
        ("a word", "/orders/latest"),
        (
            "a UUID without hyphens",
            "/orders/0b7c7d1e2b0f4f559a776d1c2f1b6a11",
        ),
        (
            "a UUID with braces",
            "/orders/%7B0b7c7d1e-2b0f-4f55-9a77-6d1c2f1b6a11%7D",
        ),
        (
            "a UUID too short",
            "/orders/0b7c7d1e-2b0f-4f55-9a77-6d1c2f1b6a1",
        ),
        (
            "a UUID with a non-hex digit",
            "/orders/0b7c7d1e-2b0f-4f55-9a77-6d1c2f1b6a1g",
        ),
        ("an encoded NUL", "/orders/%00"),
        ("unicode", "/orders/%C3%A9"),
    ] {
        cases.push(case(
            format!("order id that is {name}"),
            http("GET", path, &[], b"", true),
            400,
            Api("VALIDATION_FAILED"),
        ));
    }
    for (name, path) in [
        ("a space", "/products/desk%20oak"),
        ("unicode", "/products/%E2%9C%93"),
        ("66 characters", &format!("/products/{long}a")),
    ] {
        cases.push(case(
            format!("product id in the path with {name}"),
            http("GET", path, &[], b"", true),
            400,
            Api("VALIDATION_FAILED"),
        ));
    }
    cases.push(case(
        "order that does not exist",
        http(
            "GET",
            "/orders/0b7c7d1e-2b0f-4f55-9a77-6d1c2f1b6a11",
            &[],
            b"",
            true,
        ),
        404,
        Api("ORDER_NOT_FOUND"),
    ));
    cases.push(case(
        "cart line that does not exist",
        http("DELETE", "/cart/corpus-user/lamp-led-arc", &[], b"", true),
        404,
        Api("CART_LINE_NOT_FOUND"),
    ));

    // Sizes.
    let padding = "x".repeat(17 * 1024);
    cases.push(case(
        "body over 16 KiB",
        json_post(
            "/cart/corpus-user",
            &format!(r#"{{"product_id":"desk-oak-140","quantity":1,"pad":"{padding}"}}"#),
        ),
        413,
        Api("PAYLOAD_TOO_LARGE"),
    ));
    cases.push(case(
        "order body over 16 KiB",
        json_post(
            "/order",
            &format!(r#"{{"user_id":"corpus-user","pad":"{padding}"}}"#),
        ),
        413,
        Api("PAYLOAD_TOO_LARGE"),
    ));
    cases.push(case(
        "body over API Gateway's 10 MiB",
        json_post("/order", &"x".repeat(10 * 1024 * 1024 + 1)),
        413,
        Gateway,
    ));

    // Headers.
    for (name, media) in [
        ("text/plain", "text/plain"),
        ("application/xml", "application/xml"),
        ("form encoded", "application/x-www-form-urlencoded"),
        ("json with a typo", "application/jsonx"),
        ("multipart", "multipart/form-data; boundary=x"),
    ] {
        cases.push(case(
            format!("content-type {name}"),
            http(
                "POST",
                "/cart/corpus-user",
                &[("content-type", media)],
                br#"{"product_id":"desk-oak-140","quantity":1}"#,
                true,
            ),
            415,
            Api("UNSUPPORTED_MEDIA_TYPE"),
        ));
    }
    cases.push(case(
        "content-type with a charset",
        http(
            "POST",
            "/cart/corpus-user",
            &[("content-type", "application/json; charset=utf-8")],
            br#"{"product_id":"desk-oak-140","quantity":2}"#,
            true,
        ),
        200,
        Ok,
    ));
    let long_key = "k".repeat(65);
    for (name, key) in [
        ("empty", ""),
        ("65 characters", long_key.as_str()),
        ("a space", "my key"),
        ("a tab", "my\tkey"),
        ("non-ASCII", "cl\u{e9}"),
    ] {
        cases.push(case(
            format!("Idempotency-Key {name}"),
            http(
                "POST",
                "/order",
                &[
                    ("content-type", "application/json"),
                    ("idempotency-key", key),
                ],
                br#"{"user_id":"corpus-user"}"#,
                true,
            ),
            400,
            Api("INVALID_HEADER"),
        ));
    }

    // Query strings.
    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "limit=1.5",
        "limit=",
        "limit=%FF",
        "limit=1e2",
        "cursor=garbage",
        "cursor=",
        "cursor=%ZZ",
        "limit=5&cursor=1700000000000%23not-a-uuid",
    ] {
        cases.push(case(
            format!("query {query}"),
            http(
                "GET",
                &format!("/users/corpus-user/orders?{query}"),
                &[],
                b"",
                true,
            ),
            400,
            Api("INVALID_QUERY"),
        ));
    }
    cases.push(case(
        "unknown query parameters are ignored",
        http(
            "GET",
            "/users/corpus-user/orders?limit=5&colour=blue",
            &[],
            b"",
            true,
        ),
        200,
        Ok,
    ));

    // Bytes the HTTP layer accepts in a path reach the API, which refuses the id.
    for (name, request) in [
        (
            "a raw quote",
            b"GET /cart/\"a\" HTTP/1.1\r\nx-api-key: corpus-key\r\nconnection: close\r\n\r\n"
                .to_vec(),
        ),
        (
            "a raw brace",
            b"GET /cart/{a} HTTP/1.1\r\nx-api-key: corpus-key\r\nconnection: close\r\n\r\n"
                .to_vec(),
        ),
        (
            "raw UTF-8",
            "GET /cart/\u{e9} HTTP/1.1\r\nx-api-key: corpus-key\r\nconnection: close\r\n\r\n"
                .as_bytes()
                .to_vec(),
        ),
    ] {
        cases.push(case(
            format!("user id in the path with {name}"),
            request,
            400,
            Api("VALIDATION_FAILED"),
        ));
    }
    // What the HTTP layer itself cannot parse: still a JSON answer.
    for (name, request) in [
        (
            "a raw < in the path",
            b"GET /cart/<script> HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        ),
        (
            "a raw space in the path",
            b"GET /cart/a b HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        ),
        (
            "a method with a symbol",
            b"G@T /products HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        ),
        (
            "an unknown version",
            b"GET /products HTTP/9.9\r\nhost: x\r\n\r\n".to_vec(),
        ),
        (
            "a header without a colon",
            b"GET /products HTTP/1.1\r\nhost x\r\n\r\n".to_vec(),
        ),
        (
            "a space in a header name",
            b"GET /products HTTP/1.1\r\nx api key: 1\r\n\r\n".to_vec(),
        ),
        (
            "a NUL in a header value",
            b"GET /products HTTP/1.1\r\nx-api-key: a\x00b\r\n\r\n".to_vec(),
        ),
        (
            "two content lengths",
            b"POST /order HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nxx".to_vec(),
        ),
        (
            "a negative content length",
            b"POST /order HTTP/1.1\r\ncontent-length: -1\r\n\r\n".to_vec(),
        ),
    ] {
        cases.push(case(format!("unparseable: {name}"), request, 400, Gateway));
    }
    let mut many_headers = b"GET /products HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..200 {
        many_headers.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    many_headers.extend_from_slice(b"\r\n");
    cases.push(case("unparseable: 200 headers", many_headers, 431, Gateway));
    cases
}

/// Sends raw bytes and reads the whole answer (every request closes its connection).
async fn send(address: &str, request: &[u8]) -> (u16, String, Value) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // A server may answer and close before reading a large body: that is an answer.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        head.to_owned(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_request_gets_its_documented_status_and_a_json_error() {
    let (stack, state) = support::start_stack(KEY, |_| {}).await;
    let address = stack.api_url().trim_start_matches("http://").to_owned();
    let (status, _, _) = send(&address, &http("POST", "/loadProducts", &[], b"", true)).await;
    assert_eq!(status, 200);
    // A cart with one line, so the cart-line routes have something to refuse around.
    let (status, _, _) = send(
        &address,
        &json_post(
            "/cart/corpus-user",
            r#"{"product_id":"desk-oak-140","quantity":1}"#,
        ),
    )
    .await;
    assert_eq!(status, 201);

    let cases = corpus();
    let bad = cases.iter().filter(|c| c.shape != Shape::Ok).count();
    assert!(bad >= 150, "the corpus holds {bad} bad requests");
    eprintln!(
        "{bad} malformed requests, {} good neighbours",
        cases.len() - bad
    );
    let mut wrong = Vec::new();
    for case in &cases {
        let (status, head, body) = send(&address, &case.request).await;
        let shape_ok = match case.shape {
            Shape::Ok => true,
            Shape::Api(code) => {
                body["error"] == code && body["message"].as_str().is_some_and(|m| !m.is_empty())
            }
            Shape::Gateway => body["message"].as_str().is_some_and(|m| !m.is_empty()),
        };
        let json = head
            .to_ascii_lowercase()
            .contains("content-type: application/json");
        if status != case.status || !shape_ok || (case.shape != Shape::Ok && !json) || status >= 500
        {
            wrong.push(format!(
                "{}: expected {} {:?}, got {status} {body}",
                case.name, case.status, case.shape
            ));
        }
    }
    stack.stop().await;
    let _ = std::fs::remove_dir_all(state);
    assert!(
        wrong.is_empty(),
        "{} of {} answered otherwise:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

/// Bodies a queue message might carry that are not an order message.
fn bad_message_bodies() -> Vec<String> {
    let good = json!({
        "version": 1,
        "order_id": "0b7c7d1e-2b0f-4f55-9a77-6d1c2f1b6a11",
        "user_id": "alice",
        "lines": [{"product_id": "desk-oak-140", "quantity": 1}],
    });
    let with = |path: &[&str], value: Value| {
        let mut body = good.clone();
        let mut target = &mut body;
        for key in &path[..path.len() - 1] {
            target = &mut target[*key];
        }
        target[path[path.len() - 1]] = value;
        body.to_string()
    };
    let without = |key: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(key);
        body.to_string()
    };
    let mut bodies = vec![
        String::new(),
        " ".to_owned(),
        "null".to_owned(),
        "[]".to_owned(),
        "{}".to_owned(),
        "42".to_owned(),
        "\"order\"".to_owned(),
        "{".to_owned(),
        "not json".to_owned(),
        "{\"version\":1,}".to_owned(),
        good.to_string()[..20].to_owned(),
        "\u{feff}{}".to_owned(),
        "<order/>".to_owned(),
        without("version"),
        without("order_id"),
        without("user_id"),
        without("lines"),
        with(&["version"], json!(2)),
        with(&["version"], json!(0)),
        with(&["version"], json!("1")),
        with(&["version"], json!(-1)),
        with(&["version"], json!(1.5)),
        with(&["version"], json!(70000)),
        with(&["order_id"], json!("not-a-uuid")),
        with(&["order_id"], json!(12)),
        with(&["order_id"], json!(null)),
        with(&["order_id"], json!("")),
        with(&["order_id"], json!("0b7c7d1e2b0f4f559a776d1c2f1b6a11")),
        with(&["user_id"], json!("")),
        with(&["user_id"], json!("a b")),
        with(&["user_id"], json!("a".repeat(65))),
        with(&["user_id"], json!(7)),
        with(&["user_id"], json!("\u{e9}lodie")),
        with(&["lines"], json!([])),
        with(&["lines"], json!("desk")),
        with(&["lines"], json!({})),
        with(&["lines"], json!([null])),
        with(&["lines"], json!([{}])),
        with(&["lines"], json!([{"product_id": "desk-oak-140"}])),
        with(&["lines"], json!([{"quantity": 1}])),
        with(
            &["lines"],
            json!([{"product_id": "desk oak", "quantity": 1}]),
        ),
        with(
            &["lines"],
            json!([{"product_id": "desk-oak-140", "quantity": 0}]),
        ),
        with(
            &["lines"],
            json!([{"product_id": "desk-oak-140", "quantity": -3}]),
        ),
        with(
            &["lines"],
            json!([{"product_id": "desk-oak-140", "quantity": 100}]),
        ),
        with(
            &["lines"],
            json!([{"product_id": "desk-oak-140", "quantity": "1"}]),
        ),
        with(
            &["lines"],
            json!([{"product_id": "desk-oak-140", "quantity": 1.5}]),
        ),
        with(&["lines"], json!([{"product_id": 5, "quantity": 1}])),
        with(
            &["lines"],
            json!(
                (0..30)
                    .map(|i| json!({"product_id": format!("p{i}"), "quantity": 1}))
                    .collect::<Vec<_>>()
            ),
        ),
        with(
            &["lines"],
            json!([{"product_id": "desk-oak-140", "quantity": 1}, {"product_id": "desk-oak-140", "quantity": 2}]),
        ),
    ];
    // Well-formed messages for an order that is not in the table, or not like this.
    bodies.push(with(
        &["order_id"],
        json!("9f1c0e2a-8b5d-4c3e-a1f2-3d4e5f6a7b8c"),
    ));
    bodies.push(with(&["order_id"], json!(uuid::Uuid::new_v4().to_string())));
    bodies
}

/// A real order, placed and completed: its message, redelivered, succeeds (replayed).
async fn completed_order_message(env: &TestEnv) -> String {
    use ecommerce_api::api::{ApiRequest, Method};
    let load = env
        .api
        .handle(ApiRequest::new(Method::Post, "/loadProducts"))
        .await;
    assert_eq!(load.status, 200);
    let add = env
        .api
        .handle(
            ApiRequest::new(Method::Post, "/cart/neighbour")
                .json(r#"{"product_id":"desk-oak-140","quantity":1}"#),
        )
        .await;
    assert_eq!(add.status, 201);
    let placed = env
        .api
        .handle(ApiRequest::new(Method::Post, "/order").json(r#"{"user_id":"neighbour"}"#))
        .await;
    assert_eq!(placed.status, 201);
    let records = env.stream_reader().next_records().await;
    forward_orders(&env.queue, &stream_event(&records))
        .await
        .unwrap();
    let messages = env.receive(&env.queue_url, None).await;
    assert_eq!(messages.len(), 1);
    let response = env
        .completer
        .complete_orders(&env.sqs_event(&messages))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    messages[0].body.clone().unwrap()
}

#[tokio::test]
async fn every_malformed_queue_message_fails_alone() {
    let env = TestEnv::new().await;
    let good = completed_order_message(&env).await;
    let bodies = bad_message_bodies();
    assert!(bodies.len() >= 50, "{} bodies", bodies.len());
    eprintln!("{} malformed queue messages", bodies.len());
    let mut wrong = Vec::new();
    for body in &bodies {
        // Good neighbours on either side of the bad one.
        let event = json!({ "Records": [
            sqs_record("before", &good),
            sqs_record("bad", body),
            sqs_record("after", &good),
        ]});
        match env.completer.complete_orders(&raw(&event)).await {
            Ok(response) => {
                let failed: Vec<&str> = response
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.as_str())
                    .collect();
                if failed != ["bad"] {
                    wrong.push(format!("{body:?}: failures {failed:?}"));
                }
            }
            Err(e) => wrong.push(format!("{body:?}: the batch failed: {e}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn sqs_record(id: &str, body: &str) -> Value {
    json!({
        "messageId": id,
        "receiptHandle": "h",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:000000000000:orders",
        "awsRegion": "eu-west-1",
    })
}

/// New images of an order INSERT that cannot be read as an order, and whole records
/// that are not stream records.
fn bad_stream_records() -> Vec<Value> {
    let image = json!({
        "PK": {"S": "ORDER#0b7c7d1e-2b0f-4f55-9a77-6d1c2f1b6a11"},
        "SK": {"S": "ORDER"},
        "entity": {"S": "ORDER"},
        "order_status": {"S": "ORDERED"},
        "order_id": {"S": "0b7c7d1e-2b0f-4f55-9a77-6d1c2f1b6a11"},
        "user_id": {"S": "alice"},
        "placed_at": {"S": "2026-11-29T10:00:00Z"},
        "total_minor": {"N": "100"},
        "currency": {"S": "USD"},
        "lines": {"L": [{"M": {
            "product_id": {"S": "desk-oak-140"},
            "name": {"S": "Desk"},
            "quantity": {"N": "1"},
            "unit_price_minor": {"N": "100"},
            "line_total_minor": {"N": "100"},
            "line_status": {"S": "PENDING"},
        }}]},
    });
    let record = |image: Value| {
        json!({
            "eventID": "e",
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "eu-west-1",
            "dynamodb": {"Keys": {}, "NewImage": image, "SequenceNumber": "BAD", "SizeBytes": 1, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "eventSourceARN": "arn:aws:dynamodb:eu-west-1:000000000000:table/t/stream/x",
        })
    };
    let with = |key: &str, value: Value| {
        let mut image = image.clone();
        image[key] = value;
        record(image)
    };
    let without = |key: &str| {
        let mut image = image.clone();
        image.as_object_mut().unwrap().remove(key);
        record(image)
    };
    let line_with = |key: &str, value: Value| {
        let mut image = image.clone();
        image["lines"]["L"][0]["M"][key] = value;
        record(image)
    };
    let mut records = vec![
        without("order_id"),
        without("user_id"),
        without("lines"),
        without("placed_at"),
        without("total_minor"),
        with("order_id", json!({"S": "not-a-uuid"})),
        with("order_id", json!({"N": "5"})),
        with("user_id", json!({"S": "a b"})),
        with("user_id", json!({"S": ""})),
        with("user_id", json!({"S": "a".repeat(65)})),
        with("user_id", json!({"NULL": true})),
        with("lines", json!({"L": []})),
        with("lines", json!({"S": "not a list"})),
        with("lines", json!({"M": {}})),
        with("lines", json!({"L": [{"S": "x"}]})),
        with("lines", json!({"L": [{"M": {}}]})),
        with("total_minor", json!({"S": "100"})),
        with("total_minor", json!({"N": "not a number"})),
        with("total_minor", json!({"N": "1e400"})),
        with("placed_at", json!({"N": "5"})),
        with("currency", json!({"N": "1"})),
        line_with("quantity", json!({"N": "0"})),
        line_with("quantity", json!({"N": "-1"})),
        line_with("quantity", json!({"N": "1.5"})),
        line_with("quantity", json!({"S": "1"})),
        line_with("quantity", json!({"N": "99999999999999999999"})),
        line_with("product_id", json!({"S": "desk oak"})),
        line_with("product_id", json!({"N": "1"})),
        line_with("unit_price_minor", json!({"S": "x"})),
        line_with("line_status", json!({"S": "LOST"})),
        with("lines", json!({"BOOL": true})),
    ];
    // Records whose change is not shaped like a stream change at all.
    for dynamodb in [
        json!({"SequenceNumber": "BAD", "NewImage": "not a map"}),
        json!({"SequenceNumber": "BAD", "NewImage": {"entity": "ORDER"}}),
        json!({"SequenceNumber": "BAD", "NewImage": {"entity": {"Q": "x"}}}),
        json!({"SequenceNumber": "BAD", "NewImage": [1, 2]}),
        json!({"SequenceNumber": "BAD", "Keys": "x", "NewImage": {}}),
        json!({"SequenceNumber": "BAD", "SizeBytes": "big"}),
        json!({"SequenceNumber": "BAD", "ApproximateCreationDateTime": "yesterday"}),
        json!({"SequenceNumber": "BAD", "NewImage": {"entity": {"S": "ORDER"}, "order_status": {"S": "ORDERED"}}}),
    ] {
        records.push(json!({"eventID": "e", "eventName": "INSERT", "dynamodb": dynamodb}));
    }
    for event_name in [json!(7), json!(null), json!(["INSERT"])] {
        let mut r = with("currency", json!({"S": "USD"}));
        r["eventName"] = event_name;
        records.push(r);
    }
    for field in ["eventSource", "awsRegion", "eventID"] {
        let mut r = without("order_id");
        r[field] = json!({"nested": true});
        records.push(r);
    }
    let mut deep = json!({"S": "x"});
    for _ in 0..60 {
        deep = json!({"M": {"a": deep}});
    }
    records.push(with("lines", deep));
    records.push(with("order_id", json!({"S": "\u{0}"})));
    records.push(with("user_id", json!({"S": "\u{1f600}"})));
    records.push(with("order_id", json!({"B": "AAAA"})));
    records.push(with(
        "lines",
        json!({"L": [{"M": {"product_id": {"S": "desk-oak-140"}}}]}),
    ));
    records
}

#[tokio::test]
async fn every_malformed_stream_record_is_the_one_failure_of_its_batch() {
    let env = TestEnv::new().await;
    let records = bad_stream_records();
    assert!(records.len() >= 50, "{} records", records.len());
    eprintln!("{} malformed stream records", records.len());
    let skipped = |sequence: &str| {
        json!({
            "eventID": "s",
            "eventName": "MODIFY",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "eu-west-1",
            "dynamodb": {"Keys": {}, "NewImage": {"entity": {"S": "CART_LINE"}}, "SequenceNumber": sequence, "SizeBytes": 1, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "eventSourceARN": "arn:aws:dynamodb:eu-west-1:000000000000:table/t/stream/x",
        })
    };
    let mut wrong = Vec::new();
    for (i, bad) in records.into_iter().enumerate() {
        let event = stream_event(&[skipped("100"), bad.clone(), skipped("300")]);
        match forward_orders(&env.queue, &event).await {
            Ok(response) => {
                let failed: Vec<String> = response
                    .batch_item_failures
                    .iter()
                    .filter_map(|f| f.item_identifier.clone())
                    .collect();
                if failed != ["BAD"] {
                    wrong.push(format!("record {i} {bad}: failures {failed:?}"));
                }
            }
            Err(e) => wrong.push(format!("record {i} {bad}: the batch failed: {e}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Nothing was forwarded for any of them.
    assert!(env.receive(&env.queue_url, None).await.is_empty());
}
