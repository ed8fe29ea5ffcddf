//! The local CloudWatch plane on the running stack: every alarm and widget that
//! `sam deploy` ships reads metrics the local stack produces, with the dimensions and
//! names CloudWatch would have; the alarms evaluate; the dashboard page draws from
//! local data. (The drills, `local drill`, break things on purpose; CI runs them.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use local::client::ApiClient;
use local::cloudwatch::alarm::AlarmState;
use local::cloudwatch::store::{MetricId, Statistic};
use local::resources::Overrides;
use local::stack::Observability;

const KEY: &str = "plane-key";

async fn get(url: &str) -> (u16, String, Option<String>) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client.get(url.parse().unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let state = response
        .headers()
        .get("x-widget-state")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plane_produces_every_metric_the_template_reads_evaluates_every_alarm_and_draws_the_dashboard()
 {
    let (stack, state) = support::start_stack(KEY, |options| {
        options.overrides = Overrides {
            visibility_timeout_seconds: Some(2),
        };
        options.observability = Some(Observability {
            time_scale: 60.0,
            dashboard_port: 0,
        });
    })
    .await;
    let plane = stack.plane().unwrap().clone();
    assert!(
        plane.not_produced().is_empty(),
        "the alarms and dashboard read metrics the local stack does not produce: {:?}",
        plane.not_produced()
    );

    // A few orders through the gateway, one request refused for its key.
    let api = ApiClient::new(stack.api_url(), Some(KEY.to_owned()));
    let products = local::shoppers::load_catalogue(&api).await.unwrap();
    let plans = local::shoppers::Workload {
        user_prefix: "plane".to_owned(),
        duplicate_share: 0.5,
        seed: 4,
    }
    .plans(5, &products);
    let shopped = local::shoppers::shop_all(
        api.clone().into(),
        plans,
        5,
        local::shoppers::Patience::default(),
    )
    .await;
    let placed: Vec<String> = shopped.iter().filter_map(|s| s.order_id.clone()).collect();
    assert_eq!(placed.len(), 5, "{shopped:?}");
    let forbidden = ApiClient::new(stack.api_url(), Some("wrong".to_owned()));
    assert_eq!(
        forbidden
            .call("GET", "/products", None, None)
            .await
            .unwrap()
            .0,
        403
    );
    let started = Instant::now();
    loop {
        let orders = local::audit::orders(&stack).await.unwrap();
        if placed
            .iter()
            .all(|id| orders.get(id).is_some_and(|o| o.status == "PROCESSED"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "orders not processed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Two simulated minutes more: the queues are sampled, the alarms evaluated again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Every alarm evaluated, and OK: nothing is wrong.
    let started = Instant::now();
    loop {
        let views = plane.alarms().views();
        assert_eq!(views.len(), 8);
        if views.iter().all(|v| v.state == AlarmState::Ok) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "alarms: {:?}",
            views
                .iter()
                .map(|v| (&v.logical_id, v.state, &v.reason))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The AWS metrics, under the names and dimensions CloudWatch uses for this stack.
    let now = plane.clock().now_ms();
    let sum = |metric: MetricId| -> f64 {
        plane
            .metrics()
            .aggregate(
                &metric,
                Statistic::Sum,
                60_000,
                now - 3_600_000,
                now + 60_000,
            )
            .values()
            .sum()
    };
    let function = |name: &str, function: &str| {
        MetricId::new("AWS/Lambda", name, [("FunctionName", function)])
    };
    for binary in [
        "orders-api",
        "process-cart-products",
        "update-cart-products",
    ] {
        assert!(sum(function("Invocations", binary)) >= 1.0, "{binary}");
        assert_eq!(sum(function("Errors", binary)), 0.0, "{binary}");
    }
    assert!(
        plane
            .metrics()
            .has(&function("IteratorAge", "process-cart-products"))
    );
    let api_metric = |name: &str| {
        MetricId::new(
            "AWS/ApiGateway",
            name,
            [("ApiName", "ecommerce"), ("Stage", "prod")],
        )
    };
    assert!(sum(api_metric("Count")) >= 15.0);
    assert_eq!(
        sum(api_metric("4XXError")),
        1.0,
        "the request with the wrong key"
    );
    assert!(plane.metrics().has(&api_metric("IntegrationLatency")));
    let table = stack.resources().table_name.clone();
    let dynamodb = |name: &str, index: Option<&str>| {
        let mut dimensions = vec![("TableName", table.as_str())];
        dimensions.extend(index.map(|i| ("GlobalSecondaryIndexName", i)));
        MetricId::new("AWS/DynamoDB", name, dimensions)
    };
    assert!(sum(dynamodb("ConsumedWriteCapacityUnits", None)) >= 5.0 * 2.0);
    // GSI1 projects ALL: every order header written is also an index write.
    assert!(sum(dynamodb("ConsumedWriteCapacityUnits", Some("GSI1"))) >= 5.0);
    assert!(sum(dynamodb("ConsumedReadCapacityUnits", None)) > 0.0);
    let queue = stack.resources().queue("OrdersQueue").unwrap().name.clone();
    let sqs = |name: &str| MetricId::new("AWS/SQS", name, [("QueueName", queue.as_str())]);
    assert!(
        plane
            .metrics()
            .has(&sqs("ApproximateNumberOfMessagesVisible"))
    );
    assert!(plane.metrics().has(&sqs("ApproximateAgeOfOldestMessage")));
    assert!(sum(sqs("NumberOfMessagesSent")) >= 5.0);
    assert!(sum(sqs("NumberOfMessagesDeleted")) >= 5.0);
    // The functions' own EMF metrics, per their dimension sets.
    let app = |name: &str| MetricId::new("EcommerceApi", name, [("service", "ecommerce-api")]);
    assert_eq!(sum(app("OrdersPlaced")), 5.0);
    assert_eq!(sum(app("OrdersCompleted")), 5.0);
    assert!(sum(app("OrderRequestsReplayed")) >= 1.0);

    // The page: every widget draws; none errors or reads what is not produced.
    let url = stack.dashboard_url().unwrap().to_owned();
    let (status, page, _) = get(&url).await;
    assert_eq!(status, 200);
    let widgets = page.matches("class=\"widget\"").count();
    assert_eq!(widgets, 28);
    let mut states = Vec::new();
    for index in 0..widgets {
        let (status, html, state) = get(&format!("{url}widget/{index}?range=3600")).await;
        assert_eq!(status, 200);
        states.push((index, state.clone().unwrap(), html));
    }
    for (index, state, html) in &states {
        assert!(
            state == "data" || state == "empty",
            "widget {index} is {state}: {html}"
        );
    }
    let drawn = |title: &str| {
        states
            .iter()
            .find(|(_, _, html)| html.contains(title))
            .map(|(_, state, _)| state.as_str())
    };
    assert_eq!(drawn("Requests and errors"), Some("data"));
    assert_eq!(drawn("Table capacity consumed"), Some("data"));
    assert_eq!(drawn("Stream iterator age"), Some("data"));
    // Lambda's REPORT records, through the Logs Insights subset.
    assert_eq!(drawn("from Lambda&#39;s REPORT records"), Some("data"));
    assert_eq!(drawn("Alarms"), Some("data"));
    let (_, alarms, _) = get(&format!("{url}alarms")).await;
    let alarms: serde_json::Value = serde_json::from_str(&alarms).unwrap();
    assert_eq!(alarms["alarms"].as_array().unwrap().len(), 8);

    // The access log: one JSON line per request, in the template's format.
    let access = std::fs::read_to_string(state.join("logs/api-access.log")).unwrap();
    let lines: Vec<serde_json::Value> = access
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 15);
    assert!(
        lines
            .iter()
            .any(|l| l["status"] == "403" && l["error"] == "Forbidden")
    );
    assert!(lines.iter().any(|l| l["resourcePath"] == "/cart/{user_id}"));
    stack.stop().await;
}
