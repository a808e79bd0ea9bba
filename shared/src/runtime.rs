//! Process start-up shared by every function's `main`.

pub use crate::telemetry::run;

/// Installs the process-wide TLS provider (ring), the Lambda log subscriber (JSON when
/// `AWS_LAMBDA_LOG_FORMAT=JSON`, level from `AWS_LAMBDA_LOG_LEVEL`) and `function`'s
/// telemetry (see [`crate::telemetry`]).
pub fn init(function: &'static str) -> crate::telemetry::Telemetry {
    install_crypto();
    crate::telemetry::Telemetry::install(function)
}

/// Makes ring the process-wide rustls provider (PostgreSQL, the SigNoz API, kube).
/// Installing twice (tests) is harmless.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
