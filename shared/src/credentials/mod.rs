//! The `rotate-credentials` function's path: rotate SigNoz's RDS PostgreSQL credentials
//! (Secrets Manager's four steps), provision the database and its secret, check the
//! instance's posture, and hand the DSN to the cluster.
//!
//! - [`rotation`]: the four steps; token checks and decisions are pure.
//! - [`access`]: the owner/login role planner (pure).
//! - [`postgres`]: TLS connections, SCRAM verifiers, role DDL, the probe.
//! - [`secret_store`]: Secrets Manager. [`posture`]: RDS checks. [`provision`].
//! - [`deadline`]: every database attempt and the master-login retries fit in the
//!   invocation's remaining time, or end with the retryable [`Error::DeadlineNear`].
//!
//! The server is verified against the spec's `database.tls.ca_file`, else the file in
//! `$RDS_CA_BUNDLE`, else the Amazon RDS root CAs shipped in the binary
//! (`rds-global-bundle.pem`). The same bundle is handed to SigNoz with the DSN, whose
//! `sslrootcert` names where the pod mounts it: see [`dsn`].

pub mod access;
mod carried;
pub mod deadline;
pub mod dsn;
pub mod postgres;
pub mod posture;
pub mod provision;
pub mod rotation;
pub mod secret_store;
pub mod values;

use aws_config::SdkConfig;
use serde_json::{Value, json};

use crate::events::{ControlAction, Trigger, TriggerKind, decode_for};
use crate::spec::{PlatformSpec, SpecLocation, last_loaded, load_spec};

pub use deadline::Deadline;
pub use postgres::{PgTls, Timeouts};
pub use provision::{ProvisionOutcome, provision_database};
pub use rotation::{StepOutcome, StepReads, read_step, run_rotation_step, run_rotation_step_after};
pub use secret_store::SecretStore;

/// Name of the Lambda function this module serves.
pub const FUNCTION: &str = "rotate-credentials";
/// The triggers `rotate-credentials` handles.
pub const HANDLES: &[TriggerKind] = &[
    TriggerKind::Rotation,
    TriggerKind::RdsInstance,
    TriggerKind::Control,
];
/// Environment variable with this function's ARN, given to `RotateSecret` at provisioning.
pub const ROTATION_LAMBDA_ARN_ENV: &str = "ROTATION_LAMBDA_ARN";

/// Errors of this function's path; [`Error::retryable`] says whether trying again helps.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The secret does not exist (retry does not help).
    #[error("secret {secret} does not exist")]
    SecretNotFound { secret: String },
    /// Rotation is not enabled on the secret (retry does not help).
    #[error("rotation is not enabled on secret {secret}")]
    RotationDisabled { secret: String },
    /// The token is not a version of the secret (retry does not help).
    #[error("token {token} is not a version of secret {secret}")]
    UnknownToken { secret: String, token: String },
    /// The version is neither AWSCURRENT nor AWSPENDING (retry does not help).
    #[error("version {token} of secret {secret} is not AWSPENDING")]
    NotPending { secret: String, token: String },
    /// A secret's value is not what we expect; `reason` names the field, never a value.
    #[error("secret {secret} is malformed: {reason}")]
    MalformedSecret { secret: String, reason: String },
    /// A Secrets Manager call failed (retry may help).
    #[error("Secrets Manager {op} failed: {reason}")]
    SecretsManager { op: &'static str, reason: String },
    /// The operating system gave no random bytes for a new password.
    #[error("the system's random number generator failed")]
    Random,
    /// An RDS call failed (retry may help).
    #[error("RDS {op} failed: {reason}")]
    Rds { op: &'static str, reason: String },
    /// The server refused the password (SQLSTATE 28P01); retry helps only once the
    /// secret or the database changes.
    #[error("authentication failed for database user {user}")]
    Authentication { user: String },
    /// The server could not be reached or the connection broke (retry may help).
    #[error("database network error: {reason}")]
    Network { reason: String },
    /// TLS was refused or the server could not be verified (retry does not help).
    #[error("database TLS error: {reason}")]
    Tls { reason: String },
    /// The CA bundle to verify the server with is missing or invalid.
    #[error("CA bundle {path}: {reason}")]
    CaBundle { path: String, reason: String },
    /// The server rejected a statement.
    #[error("database error {sqlstate}: {reason}")]
    Database { sqlstate: String, reason: String },
    /// The pending credentials cannot do SigNoz's work.
    #[error("credentials of {user} cannot do SigNoz's work: {reason}")]
    ProbeFailed { user: String, reason: String },
    /// The request or a secret asks for something outside what the spec allows (another
    /// secret, user, host or database; a privileged or the master role). Retry does not help.
    #[error("refused: {reason}")]
    Refused { reason: String },
    /// The user whose password setSecret would change is still in use; `check` names
    /// what saw it (`pg_stat_activity`, `cluster Secret`). Retry helps once it is not.
    #[error("user {user} is still in use ({check}): {detail}")]
    InUse {
        user: String,
        check: &'static str,
        detail: String,
    },
    /// The instance's posture has findings and the spec enforces it (retry does not help).
    #[error("posture of RDS instance {instance} fails (database.posture.enforce): {}", findings.join("; "))]
    PostureFindings {
        instance: String,
        findings: Vec<String>,
    },
    /// The RDS instance named by the spec does not exist (yet).
    #[error("RDS instance {instance} not found")]
    InstanceNotFound { instance: String },
    /// Too little of the invocation's time is left for the next database attempt; a
    /// retried step gets a fresh budget (retry helps).
    #[error("not enough time left for {op}: {remaining_ms} ms")]
    DeadlineNear { op: &'static str, remaining_ms: u64 },
    /// Configuration the function needs is missing.
    #[error("configuration: {0}")]
    Config(String),
    /// Handing the DSN to the cluster failed.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::Error),
}

impl Error {
    /// Whether the same invocation may succeed if tried again.
    pub fn retryable(&self) -> bool {
        match self {
            Error::SecretsManager { .. }
            | Error::Rds { .. }
            | Error::Network { .. }
            | Error::InUse { .. }
            | Error::DeadlineNear { .. } => true,
            Error::Database { sqlstate, .. } => {
                // Serialisation failures, deadlocks, lock and statement timeouts, shutdown.
                matches!(
                    sqlstate.as_str(),
                    "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P03"
                )
            }
            Error::Cluster(e) => e.retryable(),
            _ => false,
        }
    }
}

/// How finishSecret reaches the cluster.
#[derive(Clone)]
pub enum ClusterAccess {
    /// `KUBECONFIG` if set, else EKS from the spec; one client kept warm per process.
    FromSpec(std::sync::Arc<crate::cluster::access::ClusterClient>),
    /// A given client (tests: the function's own identity on the stack's API server).
    Client(kube::Client),
    /// No hand-off (a database-only local run); logged as a warning.
    Disabled,
}

/// Clients and configuration built once per process, in `main`.
pub struct Context {
    pub sdk: SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub secrets: SecretStore,
    /// Built on first use: only provisioning reads RDS, never a rotation step.
    pub rds: std::sync::OnceLock<aws_sdk_rds::Client>,
    /// Where the spec is read from on each invocation.
    pub spec_location: Option<SpecLocation>,
    pub cluster: ClusterAccess,
    pub timeouts: Timeouts,
    /// This function's ARN, for `RotateSecret` at provisioning.
    pub rotation_lambda_arn: Option<String>,
}

impl Context {
    /// A context over `sdk`, reaching the cluster from the spec.
    pub fn new(sdk: SdkConfig) -> Self {
        Context {
            s3: crate::aws::s3_client(&sdk),
            secrets: SecretStore::new(aws_sdk_secretsmanager::Client::new(&sdk)),
            rds: std::sync::OnceLock::new(),
            sdk,
            spec_location: None,
            cluster: ClusterAccess::FromSpec(std::sync::Arc::new(
                crate::cluster::access::ClusterClient::from_env(),
            )),
            timeouts: Timeouts::default(),
            rotation_lambda_arn: std::env::var(ROTATION_LAMBDA_ARN_ENV)
                .ok()
                .filter(|v| !v.is_empty()),
        }
    }

    /// Builds the context from the environment (`PLATFORM_SPEC`, `ROTATION_LAMBDA_ARN`).
    pub async fn from_env() -> crate::Result<Self> {
        let mut ctx = Context::new(crate::aws::sdk_config().await?);
        ctx.spec_location = Some(SpecLocation::from_env()?);
        Ok(ctx)
    }

    /// The RDS client.
    pub fn rds(&self) -> &aws_sdk_rds::Client {
        self.rds.get_or_init(|| aws_sdk_rds::Client::new(&self.sdk))
    }

    /// The TLS set-up for the spec's database, its attempts cut to fit `deadline`.
    pub fn tls(&self, spec: &PlatformSpec, deadline: Deadline) -> Result<PgTls, Error> {
        Ok(PgTls::from_spec(&spec.database.tls, self.timeouts)?.until(deadline))
    }

    fn spec_location(&self) -> crate::Result<SpecLocation> {
        Ok(match &self.spec_location {
            Some(l) => l.clone(),
            None => SpecLocation::from_env()?,
        })
    }

    async fn spec(&self) -> crate::Result<PlatformSpec> {
        Ok(load_spec(&self.spec_location()?, &self.s3).await?.spec)
    }
}

/// Handles one invocation: a rotation step, an RDS instance event or a provision request,
/// finishing before `deadline` (from `lambda_runtime::Context::deadline()`).
pub async fn handle(ctx: &Context, payload: Value, deadline: Deadline) -> crate::Result<Value> {
    let trigger = decode_for(FUNCTION, HANDLES, payload)?;
    match trigger {
        Trigger::Rotation(request) => {
            // Warm, and the request is of the app secret of the spec last loaded: the
            // step's first reads go out while the spec is asked for again (a conditional
            // GET), and the step checks the request against the spec it acts on.
            let expected = ctx
                .spec_location()
                .ok()
                .and_then(|l| last_loaded(&l))
                .filter(|spec| {
                    rotation::check_secret_is_the_apps(&spec.database, &request.secret_id).is_ok()
                });
            // Cold, the reads that need no spec (the secret's versions and values) go out
            // beside the spec's; the step checks the request against the spec before it
            // uses any of them.
            let started = std::time::Instant::now();
            let (spec, reads) = tokio::join!(
                ctx.spec(),
                read_step(ctx, &request, expected.as_ref(), deadline)
            );
            let outcome = run_rotation_step_after(ctx, &spec?, &request, reads, deadline).await;
            crate::telemetry::rotation_step(&request.step.to_string(), started.elapsed());
            let outcome = outcome?;
            crate::telemetry::changes_applied(changes_in(request.step, &outcome.actions), false);
            Ok(serde_json::to_value(outcome).expect("outcomes serialise"))
        }
        Trigger::RdsInstance(event) if event.calls_for_provisioning() => {
            let spec = ctx.spec().await?;
            if event.instance_identifier != spec.database.instance_identifier {
                return Ok(skipped(&format!(
                    "instance {} is not SigNoz's ({})",
                    event.instance_identifier, spec.database.instance_identifier
                )));
            }
            let outcome = provision_database(ctx, &spec, false, deadline).await?;
            crate::telemetry::changes_applied(changes_in(None, &outcome.actions), false);
            Ok(outcome.to_json())
        }
        Trigger::Control(request) if request.action == ControlAction::ProvisionDatabase => {
            let spec = ctx.spec().await?;
            let outcome = provision_database(ctx, &spec, request.dry_run, deadline).await?;
            if !request.dry_run {
                crate::telemetry::changes_applied(changes_in(None, &outcome.actions), false);
            }
            Ok(outcome.to_json())
        }
        other => Ok(skipped(&format!(
            "{} needs no credentials work",
            other.kind()
        ))),
    }
}

/// How many of a step's reported actions changed something: testSecret only checks, and
/// a step words what it found already done with "already", what it left with "left
/// alone" or "disabled".
fn changes_in(step: impl Into<Option<crate::events::RotationStep>>, actions: &[String]) -> usize {
    if step.into() == Some(crate::events::RotationStep::TestSecret) {
        return 0;
    }
    actions
        .iter()
        .filter(|a| {
            !["already", "left alone", "disabled"]
                .iter()
                .any(|w| a.contains(w))
        })
        .count()
}

fn skipped(reason: &str) -> Value {
    tracing::info!(reason, "nothing to do");
    json!({ "function": FUNCTION, "skipped": reason })
}

#[cfg(test)]
mod tests;
