//! Simulated shoppers: the workload of `demo`, `chaos` and `load`.
//!
//! A shopper fills a cart with one to three products and places one order with an
//! `Idempotency-Key`, behaving like a careful client: a request that fails in transit
//! or with a 5xx is sent again with the same key, so an order whose answer was lost is
//! found, not placed twice. Some shoppers also send duplicates on purpose, at the same
//! time as the first request and after it; every answer must name the same order.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::ApiClient;

/// What one shopper will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopperPlan {
    /// The user id.
    pub user: String,
    /// Products and quantities to put in the cart.
    pub lines: Vec<(String, u32)>,
    /// The `Idempotency-Key` of the order request.
    pub key: String,
    /// Extra copies of the order request sent at the same time as the first.
    pub concurrent_duplicates: u32,
    /// Extra copies sent one after another once the order is placed.
    pub sequential_duplicates: u32,
}

/// How to generate shoppers.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Prefix of the user ids (`{prefix}-{n}`), so runs do not share carts.
    pub user_prefix: String,
    /// Share of shoppers that send duplicate order requests (0 to 1).
    pub duplicate_share: f64,
    /// Seed of the choices (products, quantities, duplicates).
    pub seed: u64,
}

impl Workload {
    /// `count` shoppers, the same for the same seed and catalogue.
    pub fn plans(&self, count: usize, products: &[String]) -> Vec<ShopperPlan> {
        let mut rng = fastrand::Rng::with_seed(self.seed);
        (0..count)
            .map(|n| {
                let mut lines: Vec<(String, u32)> = Vec::new();
                for _ in 0..rng.usize(1..=3) {
                    if products.is_empty() {
                        break;
                    }
                    let product = products[rng.usize(..products.len())].clone();
                    if lines.iter().all(|(p, _)| *p != product) {
                        lines.push((product, rng.u32(1..=3)));
                    }
                }
                let duplicates = rng.f64() < self.duplicate_share;
                ShopperPlan {
                    user: format!("{}-{n:05}", self.user_prefix),
                    lines,
                    key: format!("order-{n}"),
                    concurrent_duplicates: u32::from(duplicates) * rng.u32(1..=2),
                    sequential_duplicates: u32::from(duplicates) * rng.u32(1..=2),
                }
            })
            .collect()
    }
}

/// How patient a shopper is with failing requests.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Attempts per request (the first included).
    pub attempts: u32,
    /// Pause before the first retry; doubled each time.
    pub backoff: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Self {
            attempts: 8,
            backoff: Duration::from_millis(200),
        }
    }
}

/// What happened to one shopper.
#[derive(Debug, Clone, Default)]
pub struct Shopped {
    /// The user id.
    pub user: String,
    /// The order the API acknowledged, if any request got an answer with one.
    pub order_id: Option<String>,
    /// Why the shopper gave up, if it did.
    pub error: Option<String>,
    /// Duplicate order requests sent.
    pub duplicates_sent: u32,
    /// Duplicates answered with the same order as the first request.
    pub duplicates_absorbed: u32,
    /// Answers naming a different order than the others (must never happen).
    pub diverged: Vec<String>,
    /// Requests sent again after a failure in transit or a 5xx.
    pub retries: u32,
}

/// Sends `method path` until it gets a non-5xx answer or the attempts run out.
/// Returns the last answer and the retries made.
async fn patiently(
    api: &ApiClient,
    patience: Patience,
    method: &str,
    path: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> (Result<(u16, Value), String>, u32) {
    let mut retries = 0;
    let mut pause = patience.backoff;
    loop {
        let answer = api.call(method, path, body, key).await;
        let retry = match &answer {
            Ok((status, _)) => *status >= 500 || *status == 429,
            Err(_) => true,
        };
        if !retry || retries + 1 >= patience.attempts {
            return (answer, retries);
        }
        retries += 1;
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Runs one shopper's plan against the API.
pub async fn shop(api: Arc<ApiClient>, plan: ShopperPlan, patience: Patience) -> Shopped {
    let mut shopped = Shopped {
        user: plan.user.clone(),
        ..Shopped::default()
    };
    let cart = format!("/cart/{}", plan.user);
    for (product, quantity) in &plan.lines {
        let body = json!({ "product_id": product, "quantity": quantity });
        let (answer, retries) = patiently(&api, patience, "POST", &cart, Some(&body), None).await;
        shopped.retries += retries;
        match answer {
            Ok((200 | 201, _)) => {}
            Ok((status, body)) => {
                shopped.error = Some(format!("add to cart answered {status}: {body}"));
                return shopped;
            }
            Err(e) => {
                shopped.error = Some(format!("add to cart: {e}"));
                return shopped;
            }
        }
    }

    let body = json!({ "user_id": plan.user });
    let order = |api: Arc<ApiClient>| {
        let (body, key) = (body.clone(), plan.key.clone());
        async move { patiently(&api, patience, "POST", "/order", Some(&body), Some(&key)).await }
    };
    let first_wave: Vec<_> = (0..=plan.concurrent_duplicates)
        .map(|_| tokio::spawn(order(Arc::clone(&api))))
        .collect();
    let mut answers = Vec::new();
    for request in first_wave {
        answers.push(match request.await {
            Ok(answer) => answer,
            Err(e) => (Err(e.to_string()), 0),
        });
    }
    for _ in 0..plan.sequential_duplicates {
        answers.push(order(Arc::clone(&api)).await);
    }
    shopped.duplicates_sent = plan.concurrent_duplicates + plan.sequential_duplicates;

    let mut ids: Vec<Option<String>> = Vec::new();
    for (answer, retries) in answers {
        shopped.retries += retries;
        match answer {
            Ok((200 | 201, order)) => ids.push(order["order_id"].as_str().map(str::to_owned)),
            Ok((status, body)) => {
                shopped.error = Some(format!("place order answered {status}: {body}"));
                ids.push(None);
            }
            Err(e) => {
                shopped.error = Some(format!("place order: {e}"));
                ids.push(None);
            }
        }
    }
    shopped.order_id = ids.iter().flatten().next().cloned();
    if let Some(id) = &shopped.order_id {
        for other in ids.iter().flatten().filter(|other| *other != id) {
            shopped.diverged.push(other.clone());
        }
        let same = ids.iter().flatten().filter(|other| *other == id).count() as u32;
        shopped.duplicates_absorbed = same.saturating_sub(1);
    }
    shopped
}

/// What a crowd of shoppers did, summed up.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// The orders the API acknowledged.
    pub acknowledged: std::collections::BTreeSet<String>,
    /// Shoppers without an acknowledged order: `user: why`.
    pub gave_up: Vec<String>,
    /// Requests sent again after a failure.
    pub retries: u32,
    /// Duplicate order requests sent.
    pub duplicates_sent: u32,
    /// Duplicates answered with the same order as the first request.
    pub duplicates_absorbed: u32,
    /// Answers naming another order (must be none).
    pub diverged: Vec<String>,
}

impl Tally {
    /// Adds one shopper's outcome.
    pub fn add(&mut self, shopper: Shopped) {
        self.retries += shopper.retries;
        self.duplicates_sent += shopper.duplicates_sent;
        self.duplicates_absorbed += shopper.duplicates_absorbed;
        self.diverged.extend(shopper.diverged);
        match shopper.order_id {
            Some(id) => {
                self.acknowledged.insert(id);
            }
            None => self.gave_up.push(format!(
                "{}: {}",
                shopper.user,
                shopper.error.unwrap_or_default()
            )),
        }
    }

    /// The tally of `shoppers`.
    pub fn of(shoppers: impl IntoIterator<Item = Shopped>) -> Self {
        let mut tally = Self::default();
        for shopper in shoppers {
            tally.add(shopper);
        }
        tally
    }
}

/// Runs every plan, `concurrency` shoppers at a time; results in plan order.
pub async fn shop_all(
    api: Arc<ApiClient>,
    plans: Vec<ShopperPlan>,
    concurrency: usize,
    patience: Patience,
) -> Vec<Shopped> {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let running: Vec<_> = plans
        .into_iter()
        .map(|plan| {
            let (api, permits) = (Arc::clone(&api), Arc::clone(&permits));
            let user = plan.user.clone();
            let task = tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                shop(api, plan, patience).await
            });
            (user, task)
        })
        .collect();
    let mut shopped = Vec::with_capacity(running.len());
    for (user, task) in running {
        shopped.push(task.await.unwrap_or_else(|e| Shopped {
            user,
            error: Some(format!("shopper task failed: {e}")),
            ..Shopped::default()
        }));
    }
    shopped
}

/// The catalogue's product ids, after loading it.
///
/// # Errors
/// A message if the API cannot load or list the catalogue.
pub async fn load_catalogue(api: &ApiClient) -> Result<Vec<String>, String> {
    let (answer, _) = patiently(
        api,
        Patience::default(),
        "POST",
        "/loadProducts",
        None,
        None,
    )
    .await;
    match answer? {
        (200, _) => {}
        (status, body) => return Err(format!("POST /loadProducts answered {status}: {body}")),
    }
    let (answer, _) = patiently(api, Patience::default(), "GET", "/products", None, None).await;
    let (_, catalogue) = answer?;
    let products: Vec<String> = catalogue["products"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| p["product_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if products.is_empty() {
        return Err("the catalogue is empty after POST /loadProducts".to_owned());
    }
    Ok(products)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_reproducible_from_the_seed_and_duplicate_as_asked() {
        let products: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
        let workload = |seed| Workload {
            user_prefix: "u".to_owned(),
            duplicate_share: 0.5,
            seed,
        };
        let plans = workload(7).plans(400, &products);
        assert_eq!(plans, workload(7).plans(400, &products));
        assert_ne!(plans, workload(8).plans(400, &products));
        let duplicating = plans
            .iter()
            .filter(|p| p.concurrent_duplicates > 0 && p.sequential_duplicates > 0)
            .count();
        assert!((150..250).contains(&duplicating), "{duplicating}");
        for plan in &plans {
            assert!((1..=3).contains(&plan.lines.len()), "{plan:?}");
            let mut ids: Vec<_> = plan.lines.iter().map(|(p, _)| p).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), plan.lines.len());
        }
        let none = Workload {
            duplicate_share: 0.0,
            ..workload(7)
        };
        assert!(
            none.plans(100, &products)
                .iter()
                .all(|p| p.concurrent_duplicates + p.sequential_duplicates == 0)
        );
    }
}
