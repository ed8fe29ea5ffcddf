//! AWS SDK configuration, built once per process.
//!
//! TLS is rustls with the `ring` provider: it compiles faster than the default aws-lc
//! stack and avoids aws-lc's CPU-jitter entropy cost at start-up. `AWS_ENDPOINT_URL`
//! (honoured by `aws-config`) points every client at a local emulator.
//!
//! Every call has a timeout, sized to its caller ([`CallBudget`]): a connection that
//! never answers costs an attempt, the SDK retries it (with throttling, 5xx and
//! transient network errors) with jittered backoff, and the whole operation has a
//! ceiling. Inside a Lambda invocation the middleware also gives up a record's work
//! shortly before the invocation's deadline (`middleware::batch::before_deadline`), so
//! a slow call fails its record in time to be reported, never the whole batch.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// Timeouts and retries of one kind of caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallBudget {
    /// Establishing a connection.
    pub connect: Duration,
    /// One attempt, from sending the request to reading the whole response.
    pub attempt: Duration,
    /// The whole operation, every attempt and backoff included.
    pub operation: Duration,
    /// Attempts, the first included.
    pub attempts: u32,
    /// Upper bound of the first retry's (jittered) backoff; it doubles per retry.
    pub initial_backoff: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
}

impl CallBudget {
    /// The Lambda functions (template timeout 10 s; DynamoDB and SQS answer in
    /// milliseconds): three attempts of at most 2 s within 6 s, so a record whose calls
    /// keep failing is reported well inside the invocation.
    pub const FUNCTION: Self = Self {
        connect: Duration::from_secs(1),
        attempt: Duration::from_secs(2),
        operation: Duration::from_secs(6),
        attempts: 3,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
    };

    /// `ordersctl`: a person is waiting, but a redrive may move many messages.
    pub const OPERATOR: Self = Self {
        connect: Duration::from_secs(3),
        attempt: Duration::from_secs(10),
        operation: Duration::from_secs(30),
        attempts: 4,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(5),
    };

    fn timeouts(self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }

    fn retries(self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.attempts)
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }
}

/// A configuration loader with the HTTPS client described in the module docs and the
/// caller's timeouts and retries; tools and tests add an endpoint, region or
/// credentials before loading.
pub fn config_loader(budget: CallBudget) -> ConfigLoader {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .timeout_config(budget.timeouts())
        .retry_config(budget.retries())
}

/// Loads a function's SDK configuration (region, credentials, endpoint) from the
/// environment, with [`CallBudget::FUNCTION`].
///
/// Lambda hands a function its credentials in environment variables; reading them
/// straight from there skips building the default chain's other providers (an STS
/// client for web identity, SSO, IMDS), which cost a noticeable part of init. Where
/// they are not set, the default chain applies.
pub async fn sdk_config() -> SdkConfig {
    let loader = config_loader(CallBudget::FUNCTION);
    let loader = if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        )
    } else {
        loader
    };
    loader.load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_call_fits_its_budget_inside_the_invocation() {
        let budget = CallBudget::FUNCTION;
        let template = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
        let spec = local::template::StackSpec::from_file(std::path::Path::new(template)).unwrap();
        for function in &spec.functions {
            // A retry fits in the operation, and the operation leaves the invocation
            // time to report the record and flush its telemetry.
            let timeout = Duration::from_secs(function.timeout_seconds);
            assert!(budget.operation >= budget.attempt * 2);
            assert!(
                budget.operation + Duration::from_secs(2) <= timeout,
                "{}: {timeout:?}",
                function.logical_id
            );
        }
        let config = config_loader(budget)
            .region(aws_config::Region::new("eu-west-1"))
            .test_credentials()
            .load();
        let config = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(config);
        let timeouts = config.timeout_config().unwrap();
        assert_eq!(timeouts.connect_timeout(), Some(budget.connect));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(budget.attempt));
        assert_eq!(timeouts.operation_timeout(), Some(budget.operation));
        assert_eq!(
            config.retry_config().unwrap().max_attempts(),
            budget.attempts
        );
    }
}
