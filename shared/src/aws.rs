//! How every AWS SDK client (DynamoDB, the Management API, Lambda) is built: over the
//! same TLS stack as the OpenRouter client ([`crate::tls`]), not the SDK's default
//! HTTPS client, which brings a second crypto library.

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

pub use aws_sdk_dynamodb::config::SharedHttpClient;

/// The HTTPS client to give an SDK config; it loads the system's trusted roots when an
/// SDK client first uses it.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Region, credentials and endpoint overrides from the environment (on Lambda, the
/// function's role), with [`http_client`].
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        .load()
        .await
}
