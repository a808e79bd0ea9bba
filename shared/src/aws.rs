//! AWS SDK set-up shared by every function: one HTTP client on ring-backed rustls that
//! trusts the CAs of AWS's endpoints, not the whole system store.

use std::path::Path;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
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

/// The root CAs of Amazon Trust Services, which issue the TLS certificate of every AWS
/// service endpoint (public and VPC endpoints alike).
pub const AMAZON_TRUST_SERVICES_PEM: &[u8] = include_bytes!("amazon-trust-services.pem");

/// The AWS SDK setting naming a PEM file of extra CAs to trust: a TLS-inspecting proxy,
/// or a local endpoint (`AWS_ENDPOINT_URL`) with its own certificate.
pub const CA_BUNDLE_ENV: &str = "AWS_CA_BUNDLE";

/// A configuration the SDK cannot be set up with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{CA_BUNDLE_ENV} {path}: {reason}")]
    CaBundle { path: String, reason: String },
    #[error("TLS set-up of the AWS SDK: {0}")]
    Tls(String),
}

/// What the SDK's HTTPS client trusts: [`AMAZON_TRUST_SERVICES_PEM`], plus the PEM
/// certificates of `ca_bundle` when given.
///
/// Not the system store: rustls-native-certs would read and parse every certificate in
/// `/etc/ssl/certs`, and the SDK builds its root store once per client at start-up, which
/// was most of each function's init time (tests/bench/RESULTS.md). Trusting only AWS's CAs
/// is also the narrower trust.
pub fn trust_store(ca_bundle: Option<&Path>) -> Result<TrustStore, ConfigError> {
    let mut store = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_TRUST_SERVICES_PEM);
    if let Some(path) = ca_bundle {
        let bad = |reason: String| ConfigError::CaBundle {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        // The SDK panics on a certificate it cannot parse: check them all here first.
        let count = check_pem_certificates(&pem).map_err(bad)?;
        tracing::info!(path = %path.display(), count, "trusting the CAs of {CA_BUNDLE_ENV} too");
        store.add_pem_certificate(pem);
    }
    Ok(store)
}

/// The number of CA certificates in `pem`, or why one of them is unusable.
fn check_pem_certificates(pem: &[u8]) -> Result<usize, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(|e| format!("certificate {}: not valid PEM ({e})", i + 1))?;
        roots
            .add(cert)
            .map_err(|e| format!("certificate {}: {e}", i + 1))?;
    }
    match roots.len() {
        0 => Err("no PEM certificate in the file".into()),
        n => Ok(n),
    }
}

/// Loads the SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` for moto locally), with [`retry_config`], [`timeout_config`] and
/// the [`trust_store`] (`AWS_CA_BUNDLE` honoured). Call once, in `main`.
pub async fn sdk_config() -> Result<SdkConfig, ConfigError> {
    let ca_bundle = std::env::var_os(CA_BUNDLE_ENV).filter(|v| !v.is_empty());
    sdk_config_trusting(trust_store(ca_bundle.as_deref().map(Path::new))?).await
}

/// [`sdk_config`] with the given trust store.
pub async fn sdk_config_trusting(trust: TrustStore) -> Result<SdkConfig, ConfigError> {
    let tls_context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| ConfigError::Tls(e.to_string()))?;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(tls_context)
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(retry_config())
        .timeout_config(timeout_config());
    // Lambda sets the region and the execution role's credentials in the environment, the
    // first source each default chain tries and the one it would pick. Naming them skips
    // building the rest of the chains at init: an STS client for web identity, an IMDS
    // client, profile providers.
    if ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
    {
        loader = loader.region(aws_config::environment::EnvironmentVariableRegionProvider::new());
    }
    if ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        .iter()
        .all(|v| std::env::var_os(v).is_some())
    {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    Ok(loader.load().await)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_roots_are_amazon_trust_services_five() {
        assert_eq!(check_pem_certificates(AMAZON_TRUST_SERVICES_PEM), Ok(5));
    }

    #[test]
    fn a_bad_ca_bundle_is_refused_with_its_path_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let error = |name: &str, content: Option<&str>| {
            let path = dir.path().join(name);
            if let Some(content) = content {
                std::fs::write(&path, content).unwrap();
            }
            let text = trust_store(Some(&path)).unwrap_err().to_string();
            let prefix = format!("AWS_CA_BUNDLE {}: ", path.display());
            text.strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{text:?} starts with {prefix:?}"))
                .to_string()
        };
        assert!(error("missing.pem", None).starts_with("No such file"));
        assert_eq!(
            error("empty.pem", Some("not a certificate\n")),
            "no PEM certificate in the file"
        );
        let not_a_cert = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        assert!(
            error("junk.pem", Some(not_a_cert)).starts_with("certificate 1: "),
            "a PEM block that is no certificate is named by its position"
        );
        let truncated = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n";
        assert!(error("cut.pem", Some(truncated)).starts_with("certificate 1: not valid PEM"));
    }

    #[test]
    fn a_good_ca_bundle_is_added() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, AMAZON_TRUST_SERVICES_PEM).unwrap();
        assert!(trust_store(Some(&path)).is_ok());
    }
}
