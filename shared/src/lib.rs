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
pub mod diff;
pub mod events;
pub mod runtime;
pub mod spec;
pub mod state;
pub mod telemetry;

#[cfg(test)]
mod proptests;

/// Every error a function can return. Nothing has been written when a decode or spec
/// error is returned.
#[derive(thiserror::Error)]
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

/// The error's kind and message, as the Lambda runtime logs it: never Rust's derived
/// form of the error tree (`Spec(Invalid([Problem { .. }]))`).
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {self}", self.kind())
    }
}

impl Error {
    /// Whether the same invocation may succeed if tried again.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Decode(_) | Error::Config(_) => false,
            Error::Spec(e) => matches!(e, spec::SpecError::Unreadable { .. }),
            Error::Credentials(e) => e.retryable(),
            Error::ColdStorage(e) => e.retryable(),
            Error::Cluster(e) => e.retryable(),
            Error::Alarms(e) => e.retryable(),
        }
    }

    /// How many changes this error refused as unsafe or invalid (the `refusals` counter).
    pub fn refusals(&self) -> usize {
        match self {
            Error::Spec(spec::SpecError::Invalid(_)) => 1,
            Error::ColdStorage(cold_storage::Error::Unsafe { reasons, .. }) => reasons.len(),
            Error::Cluster(e) | Error::Credentials(credentials::Error::Cluster(e)) => {
                usize::from(e.is_refusal())
            }
            Error::Credentials(
                credentials::Error::Refused { .. } | credentials::Error::PostureFindings { .. },
            ) => 1,
            _ => 0,
        }
    }
}

#[cfg(test)]
#[test]
fn an_error_is_logged_as_its_kind_and_message_never_as_its_tree() {
    let error = Error::Spec(spec::SpecError::Invalid(vec![spec::Problem {
        path: "retention.logs.hot_days".into(),
        message: "must be less than total_days (30), got 45".into(),
    }]));
    // What lambda_runtime logs for a failed invocation (`error!("{error:?}")`).
    assert_eq!(
        format!("{error:?}"),
        "SpecError: invalid platform spec (1 problem):\n  - retention.logs.hot_days: must be less than total_days (30), got 45"
    );
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(error: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.kind().into(),
            error_message: error.to_string(),
        }
    }
}
