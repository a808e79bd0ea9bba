//! AWS SDK set-up shared by every function: one HTTP client on ring-backed rustls.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Attempts per AWS call, the first included: rides out a burst of throttling
/// (SlowDown, ThrottlingException) and 5xx answers without exhausting the token bucket.
pub const MAX_ATTEMPTS: u32 = 5;

/// Standard retry mode: exponential backoff with full jitter, starting at 200 ms and
/// capped at 5 s, so a throttled call spreads out yet fits a 60 s Lambda budget.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(5))
}

/// Bounds of one AWS call: a stuck attempt is abandoned (and retried) after 10 s, the
/// whole call with its retries after 25 s, well inside the shortest function timeout (60 s).
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(25))
        .build()
}

/// Loads the SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` for moto locally), with [`retry_config`] and [`timeout_config`].
/// Call once, in `main`.
pub async fn sdk_config() -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await
}

/// An S3 client; path-style addressing when a custom endpoint (moto) is configured.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style = config.endpoint_url().is_some();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build(),
    )
}

/// A one-line description of an SDK error: the service's code and message, or the
/// transport failure. Never includes request payloads, so no secret can leak through it.
pub fn error_text<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                _ => e.to_string(),
            }
        }
        SdkError::TimeoutError(_) => "request timed out".into(),
        SdkError::DispatchFailure(f) if f.is_io() => "network error (connection failed)".into(),
        SdkError::DispatchFailure(f) if f.is_timeout() => "network timeout".into(),
        other => aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
    }
}

/// The service error code, when the error is one.
pub fn error_code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    err.as_service_error().and_then(|e| e.code())
}
