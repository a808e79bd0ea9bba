//! The `sync-cluster` function's path: decode, render the desired objects from the spec,
//! server-side apply them, prune what we made and no longer want, restart what changed.

pub mod access;
pub mod apply;
pub mod objects;
pub mod render;
pub mod restart;
pub mod secret;
pub mod sync;

use serde_json::{Value, json};

use crate::events::{ControlAction, Trigger, TriggerKind, decode_for};
use crate::spec::{PlatformSpec, SpecLocation, load_spec};

pub use access::{connect, eks_token};
pub use restart::restart_workloads;
pub use secret::apply_database_secret;

/// Name of the Lambda function this module serves.
pub const FUNCTION: &str = "sync-cluster";
/// The triggers `sync-cluster` handles.
pub const HANDLES: &[TriggerKind] = &[
    TriggerKind::Schedule,
    TriggerKind::SpecWritten,
    TriggerKind::Control,
];

/// Errors of this function's path; [`Error::retryable`] says whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig is missing, unreadable or invalid (retry does not help).
    #[error("kubeconfig: {detail}")]
    Kubeconfig { detail: String },
    /// EKS `DescribeCluster` failed (retry may help).
    #[error("describing EKS cluster {cluster}: {detail}")]
    DescribeCluster { cluster: String, detail: String },
    /// The IAM token could not be minted (no credentials; retry does not help).
    #[error("minting the EKS token: {detail}")]
    Token { detail: String },
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// Another field manager owns a field we want (retry does not help until it lets go).
    #[error("{object}: field owned by another manager: {message}")]
    Conflict { object: String, message: String },
    /// A workload kind that has no pod template we know how to restart.
    #[error("cannot restart {kind}/{name}: only Deployment, StatefulSet and DaemonSet")]
    UnsupportedWorkload { kind: String, name: String },
    /// The spec renders an object the operator would reject (retry does not help).
    #[error("invalid {object}: {problems:?}")]
    Invalid {
        object: String,
        problems: Vec<String>,
    },
    /// A control request for another function (retry does not help).
    #[error("sync-cluster does not handle the control action {0:?}")]
    UnhandledAction(&'static str),
    /// Secrets Manager failed while reading the DSN (retry may help).
    #[error("reading the DSN from Secrets Manager secret {secret}: {detail}")]
    SecretsManager { secret: String, detail: String },
}

impl Error {
    fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source,
        }
    }

    /// Whether retrying the same invocation can succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Error::DescribeCluster { .. } | Error::SecretsManager { .. } => true,
            Error::Kube { source, .. } => match source {
                kube::Error::Api(status) => {
                    status.code >= 500 || status.code == 429 || status.code == 409
                }
                _ => true,
            },
            Error::Kubeconfig { .. }
            | Error::Token { .. }
            | Error::Conflict { .. }
            | Error::UnsupportedWorkload { .. }
            | Error::Invalid { .. }
            | Error::UnhandledAction(_) => false,
        }
    }
}

/// Clients and configuration built once per process, in `main`.
pub struct Context {
    pub sdk: aws_config::SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    /// Where the spec is read from on each invocation.
    pub spec_location: SpecLocation,
    /// Kubeconfig of a non-EKS cluster (`KUBECONFIG`); `None` reaches EKS with a fresh token.
    pub kubeconfig: Option<std::path::PathBuf>,
}

impl Context {
    /// Builds the context from the environment (`PLATFORM_SPEC`, AWS settings, `KUBECONFIG`).
    pub async fn from_env() -> crate::Result<Self> {
        let sdk = crate::aws::sdk_config().await?;
        Ok(Context {
            s3: crate::aws::s3_client(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            spec_location: SpecLocation::from_env()?,
            kubeconfig: access::kubeconfig_from_env(),
            sdk,
        })
    }
}

/// Handles one invocation: a schedule or a spec write reconciles, a control request
/// reconciles or (dry run) reports the diff object by object.
pub async fn handle(ctx: &Context, payload: Value) -> crate::Result<Value> {
    let trigger = decode_for(FUNCTION, HANDLES, payload)?;
    let dry_run = match &trigger {
        Trigger::Control(request) if request.action == ControlAction::SyncCluster => {
            request.dry_run
        }
        Trigger::Control(request) => {
            return Err(Error::UnhandledAction(request.action.detail_type()).into());
        }
        Trigger::SpecWritten(written) if !is_configured_spec(&ctx.spec_location, written) => {
            tracing::info!(bucket = %written.bucket, key = %written.key, "object is not the platform spec; ignored");
            return Ok(
                json!({ "function": FUNCTION, "ignored": format!("s3://{}/{}", written.bucket, written.key) }),
            );
        }
        _ => false,
    };
    let spec = load_spec(&ctx.spec_location, &ctx.s3).await?.spec;
    let dsn = read_dsn(&ctx.secrets, &spec).await?;
    let client = access::connect_with(&spec, &ctx.sdk, ctx.kubeconfig.as_deref()).await?;
    // Alarm remediations in force stay in force (respond-to-alarms reverts them).
    let store = crate::state::StateStore::for_spec(ctx.s3.clone(), &spec);
    let replicas = crate::alarms::overrides::read_replica_override(&store, &spec).await?;
    let report =
        sync::sync_cluster_with(&client, &spec, replicas.as_ref(), dsn.as_ref(), dry_run).await?;
    if trigger.kind() == TriggerKind::Schedule && !report.in_sync() {
        tracing::warn!(report = %sync::report_json(&report), "cluster drifted from the spec");
    }
    Ok(json!({
        "function": FUNCTION,
        "trigger": trigger.kind().to_string(),
        "in_sync": report.in_sync(),
        "report": sync::report_json(&report),
    }))
}

/// Whether an S3 write is the platform spec this function reads.
pub fn is_configured_spec(location: &SpecLocation, written: &crate::events::ObjectWritten) -> bool {
    match location {
        SpecLocation::S3 { bucket, key } => *bucket == written.bucket && *key == written.key,
        // A local spec: any write is a reason to reconcile.
        SpecLocation::Path(_) => true,
    }
}

/// The DSN from the app secret's AWSCURRENT, or `None` when the secret does not exist yet
/// (provisioning creates it; the Secret is then left as it is).
pub async fn read_dsn(
    secrets: &aws_sdk_secretsmanager::Client,
    spec: &PlatformSpec,
) -> Result<Option<sync::DsnSource>, Error> {
    let name = &spec.database.app_secret_name;
    let failed = |detail: String| Error::SecretsManager {
        secret: name.clone(),
        detail,
    };
    let answer = secrets
        .get_secret_value()
        .secret_id(name)
        .version_stage("AWSCURRENT")
        .send()
        .await;
    let value = match answer {
        Ok(value) => value,
        Err(e) if crate::aws::error_code(&e) == Some("ResourceNotFoundException") => {
            return Ok(None);
        }
        Err(e) => return Err(failed(crate::aws::error_text(&e))),
    };
    let (Some(text), Some(version)) = (value.secret_string(), value.version_id()) else {
        return Ok(None);
    };
    let secret = crate::credentials::values::AppSecret::parse(name, text)
        .map_err(|e| failed(e.to_string()))?;
    Ok(Some(sync::DsnSource {
        dsn: crate::credentials::dsn::signoz_dsn(&secret, spec.database.tls.mode),
        version_id: version.to_string(),
    }))
}

#[cfg(test)]
mod tests;
