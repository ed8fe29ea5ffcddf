//! AWS SDK configuration, built once per process.
//!
//! TLS is rustls with the `ring` provider: it compiles faster than the default aws-lc
//! stack and avoids aws-lc's CPU-jitter entropy cost at start-up. `AWS_ENDPOINT_URL`
//! (honoured by `aws-config`) points every client at a local emulator.

use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// A configuration loader with the HTTPS client described in the module docs; tools
/// and tests add an endpoint, region or credentials before loading.
pub fn config_loader() -> ConfigLoader {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client)
}

/// Loads the shared SDK configuration (region, credentials, endpoint) from the
/// environment.
pub async fn sdk_config() -> SdkConfig {
    config_loader().load().await
}
