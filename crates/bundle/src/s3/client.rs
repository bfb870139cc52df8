//! The S3 client: the SDK's default credential and region chains, our timeouts and retries,
//! and rustls on ring (the SDK's default TLS stack needs aws-lc, slow to build).

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::Region;
use aws_smithy_http_client::tls;

use super::S3Options;

/// Builds a client from the default chains and `options`. A custom endpoint (`--s3-endpoint`
/// or `AWS_ENDPOINT_URL`) is addressed path-style, as S3-compatible servers expect.
pub async fn build(options: &S3Options) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        .operation_attempt_timeout(options.operation_timeout)
        .operation_timeout(options.operation_timeout * (options.retries + 1))
        .build();
    let retry = RetryConfig::standard()
        .with_max_attempts(options.retries + 1)
        .with_initial_backoff(std::time::Duration::from_millis(100));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts)
        .retry_config(retry);
    if let Some(endpoint) = &options.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let shared = loader.load().await;
    let custom = options.endpoint.is_some() || shared.endpoint_url().is_some();
    let mut config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(custom);
    if shared.region().is_none() {
        // A local server needs no real region, but the SDK refuses to sign without one.
        config = config.region(Region::new("us-east-1"));
    }
    let config = config.build();
    Client::from_conf(config)
}

/// Where `client` sends requests, for error messages: the custom endpoint, or AWS's S3 in the
/// client's region.
pub(crate) fn target(client: &Client, options: &S3Options) -> String {
    let region = client
        .config()
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "(no region)".to_owned());
    match options
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
    {
        Some(endpoint) => format!("endpoint {endpoint} (region {region})"),
        None => {
            format!("AWS S3 in region {region} (set --s3-endpoint for an S3-compatible server)")
        }
    }
}
