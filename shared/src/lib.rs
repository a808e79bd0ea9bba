//! The SigNoz control plane's library: the platform spec, event decoding, planners and
//! the AWS / Kubernetes / PostgreSQL adapters every function uses.
//!
//! Each function's whole path lives in one module: [`credentials`], [`cold_storage`],
//! [`cluster`], [`alarms`].

pub mod alarms;
pub mod aws;
pub mod cluster;
pub mod cold_storage;
pub mod credentials;
pub mod events;
pub mod runtime;
pub mod spec;
pub mod state;

#[cfg(test)]
mod proptests;

/// Every error a function can return. Nothing has been written when a decode or spec
/// error is returned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Decode(#[from] events::DecodeError),
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    Credentials(#[from] credentials::Error),
    #[error(transparent)]
    ColdStorage(#[from] cold_storage::Error),
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error(transparent)]
    Alarms(#[from] alarms::Error),
    #[error(transparent)]
    Config(#[from] aws::ConfigError),
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A stable name for the error class, reported as Lambda's `errorType`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Decode(_) => "DecodeError",
            Error::Spec(_) => "SpecError",
            Error::Credentials(_) => "CredentialsError",
            Error::ColdStorage(_) => "ColdStorageError",
            Error::Cluster(_) => "ClusterError",
            Error::Alarms(_) => "AlarmsError",
            Error::Config(_) => "ConfigError",
        }
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(error: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.kind().into(),
            error_message: error.to_string(),
        }
    }
}
