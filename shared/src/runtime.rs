//! Process start-up shared by every function's `main`.

/// Installs the process-wide TLS provider (ring) and the Lambda log subscriber
/// (JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`, level from `AWS_LAMBDA_LOG_LEVEL`).
pub fn init() {
    install_crypto();
    lambda_runtime::tracing::init_default_subscriber();
}

/// Makes ring the process-wide rustls provider (PostgreSQL, the SigNoz API, kube).
/// Installing twice (tests) is harmless.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
