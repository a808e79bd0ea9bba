//! The `sync-cluster` function's path: decode, render the desired objects from the spec,
//! server-side apply them, prune what we made and no longer want, restart what changed.

pub mod access;
pub mod apply;
pub mod delivery;
pub mod objects;
pub mod observe;
pub mod permissions;
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
    /// A Kubernetes API call failed (retry may help for 5xx, 429 and 409).
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// RBAC refused a call: the function's group lacks a rule (retry does not help).
    #[error(
        "forbidden: {user} cannot {verb} {resource}{named} in {scope}: apply the RBAC rendered from this spec (`signoz-control rbac`)"
    )]
    Forbidden {
        user: String,
        verb: String,
        /// `group/plural` (`keda.sh/scaledobjects`), or the plural of a core kind.
        resource: String,
        named: String,
        scope: String,
    },
    /// The kind's CRD is not installed: the server answers a plain-text 404 (retry does not help).
    #[error("the API server does not serve {kind} ({api_version}): install the CRD {crd}")]
    KindNotServed {
        kind: String,
        api_version: String,
        crd: String,
    },
    /// The object's namespace does not exist; the functions never create namespaces.
    #[error(
        "namespace {namespace} does not exist (needed by {object}): create it, then apply the RBAC"
    )]
    NamespaceMissing { namespace: String, object: String },
    /// The server refused the object's content: a field not in the CRD's schema or a wrong
    /// type (HTTP 500 from server-side apply), or a schema rule (HTTP 422).
    #[error("the API server rejected {object}: {detail}")]
    Rejected { object: String, detail: String },
    /// Some objects of a reconcile failed; every other object was still applied.
    #[error("{} cluster object(s) failed: {}", failures.len(), failures.join("; "))]
    Incomplete {
        failures: Vec<String>,
        retryable: bool,
    },
    /// A delivery object someone else created cannot take our values as it is (retry does
    /// not help until its owner changes it).
    #[error("{object}: not adopted: {reason}")]
    AdoptionRefused { object: String, reason: String },
    /// A release rename or a switch of delivery method the spec does not allow.
    #[error(
        "delivery change refused: {from} -> {to} would uninstall or re-create SigNoz (its ClickHouse data included); to mean it, set {allow}"
    )]
    DestructiveDelivery {
        from: String,
        to: String,
        allow: String,
    },
    /// The object belongs to another platform on this cluster (same names, same manager).
    #[error(
        "{object} belongs to platform {platform}: left alone (give this platform other names or namespaces)"
    )]
    OtherPlatform { object: String, platform: String },
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
    /// The state store (the delivery record) could not be read or written.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// Secrets Manager failed while reading the DSN (retry may help).
    #[error("reading the DSN from Secrets Manager secret {secret}: {detail}")]
    SecretsManager { secret: String, detail: String },
}

/// One Kubernetes API call, to name it when it fails.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub verb: &'static str,
    pub resource: &'a kube::api::ApiResource,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

impl Call<'_> {
    /// `Kind/namespace/name` (or `Kind/namespace` for a list).
    pub fn id(&self) -> String {
        let mut id = format!("{}/{}", self.resource.kind, self.namespace.unwrap_or(""));
        if let Some(name) = self.name {
            id.push('/');
            id.push_str(name);
        }
        id
    }

    /// What the server's answer means for this call: RBAC, a missing CRD or namespace, a
    /// rejected field, or a plain API error.
    pub fn failed(&self, source: kube::Error) -> Error {
        let kube::Error::Api(status) = &source else {
            return Error::kube(format!("{} {}", self.verb, self.id()), source);
        };
        let resource = if self.resource.group.is_empty() {
            self.resource.plural.clone()
        } else {
            format!("{}/{}", self.resource.group, self.resource.plural)
        };
        match status.code {
            403 => {
                // `User "u" cannot patch resource "scaledobjects" in API group "keda.sh" in the namespace "p"`
                let quoted = |after: &str| {
                    let rest = &status.message[status.message.find(after)? + after.len()..];
                    rest.split('"').next().map(str::to_string)
                };
                let verb = status
                    .message
                    .split(" cannot ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                    .unwrap_or(self.verb);
                let resource = match (quoted("resource \""), quoted("API group \"")) {
                    (Some(plural), Some(group)) if !group.is_empty() => format!("{group}/{plural}"),
                    (Some(plural), _) => plural,
                    _ => resource,
                };
                let namespace = quoted("the namespace \"").or(self.namespace.map(str::to_string));
                Error::Forbidden {
                    user: quoted("User \"").unwrap_or_else(|| "this identity".into()),
                    verb: verb.to_string(),
                    resource,
                    named: self.name.map(|n| format!(" {n:?}")).unwrap_or_default(),
                    scope: namespace
                        .map(|ns| format!("namespace {ns}"))
                        .unwrap_or_else(|| "the cluster scope".into()),
                }
            }
            // A JSON Status says what is missing; a bare `404 page not found` is a path the
            // server does not serve: the kind's CRD is not installed.
            404 if status.reason != "NotFound" => Error::KindNotServed {
                kind: self.resource.kind.clone(),
                api_version: self.resource.api_version.clone(),
                crd: format!("{}.{}", self.resource.plural, self.resource.group),
            },
            404 if status
                .details
                .as_ref()
                .is_some_and(|d| d.kind == "namespaces") =>
            {
                Error::NamespaceMissing {
                    namespace: self.namespace.unwrap_or_default().to_string(),
                    object: self.id(),
                }
            }
            422 => Error::Rejected {
                object: self.id(),
                detail: status.message.clone(),
            },
            500 if status
                .message
                .contains("failed to create typed patch object") =>
            {
                Error::Rejected {
                    object: self.id(),
                    // `... (ns/name; group/version, Kind=K): .spec.x: field not declared in schema`
                    detail: status
                        .message
                        .split_once("): ")
                        .map_or(status.message.as_str(), |(_, field)| field)
                        .to_string(),
                }
            }
            _ => Error::kube(format!("{} {}", self.verb, self.id()), source),
        }
    }
}

impl Error {
    fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source,
        }
    }

    /// Whether the control plane refused the change as unsafe (a destructive delivery,
    /// an object of another platform or owner): the `refusals` counter.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Error::DestructiveDelivery { .. }
                | Error::AdoptionRefused { .. }
                | Error::OtherPlatform { .. }
        )
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
            Error::Incomplete { retryable, .. } => *retryable,
            Error::State(e) => !matches!(e, crate::state::StateError::Corrupt { .. }),
            Error::Kubeconfig { .. }
            | Error::Token { .. }
            | Error::Forbidden { .. }
            | Error::KindNotServed { .. }
            | Error::NamespaceMissing { .. }
            | Error::Rejected { .. }
            | Error::Conflict { .. }
            | Error::AdoptionRefused { .. }
            | Error::DestructiveDelivery { .. }
            | Error::OtherPlatform { .. }
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
    /// The cluster (`KUBECONFIG`, else EKS with a token per invocation), kept warm.
    pub kube: access::ClusterClient,
}

impl Context {
    /// Builds the context from the environment (`PLATFORM_SPEC`, AWS settings, `KUBECONFIG`).
    pub async fn from_env() -> crate::Result<Self> {
        let sdk = crate::aws::sdk_config().await?;
        Ok(Context {
            s3: crate::aws::s3_client(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            spec_location: SpecLocation::from_env()?,
            kube: access::ClusterClient::from_env(),
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
    let report = reconcile_spec(ctx, &spec, dry_run).await?;
    let scheduled = trigger.kind() == TriggerKind::Schedule;
    if !dry_run {
        crate::telemetry::changes_applied(report.changes(), scheduled);
    }
    crate::telemetry::refused(report.refusals());
    if scheduled && !report.in_sync() {
        tracing::warn!(
            changes = report.changes(),
            restarted = report.restarted.len(),
            failed = report.failed.len(),
            "cluster drifted from the spec"
        );
    }
    if let Some(failure) = report.failure() {
        return Err(failure.into());
    }
    Ok(json!({
        "function": FUNCTION,
        "trigger": trigger.kind().to_string(),
        "in_sync": report.in_sync(),
        "report": sync::report_json(&report),
    }))
}

/// One reconcile of `spec` the way the function runs it (see [`reconcile_on`]).
pub async fn reconcile_spec(
    ctx: &Context,
    spec: &PlatformSpec,
    dry_run: bool,
) -> crate::Result<sync::SyncReport> {
    reconcile_on(&ctx.secrets, &ctx.kube, &ctx.sdk, &ctx.s3, spec, dry_run).await
}

/// One reconcile of `spec` as the functions run it: the DSN from Secrets Manager, the
/// cluster's client and the state store's records, read at once (none needs another),
/// then the sync. Objects that failed are in the report, not an error
/// (`signoz-control plan` shows them; [`handle`] fails on them).
pub async fn reconcile_on(
    secrets: &aws_sdk_secretsmanager::Client,
    kube: &access::ClusterClient,
    sdk: &aws_config::SdkConfig,
    s3: &aws_sdk_s3::Client,
    spec: &PlatformSpec,
    dry_run: bool,
) -> crate::Result<sync::SyncReport> {
    let store = crate::state::StateStore::for_spec(s3.clone(), spec);
    let (dsn, client, records) = tokio::try_join!(
        async { Ok::<_, crate::Error>(read_dsn(secrets, spec).await?) },
        async { Ok::<_, crate::Error>(kube.client(spec, sdk).await?) },
        sync::read_records(&store, spec),
    )?;
    sync::reconcile_report(&client, &store, spec, dsn.as_ref(), records, dry_run).await
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
    let authority = secret::VersionAuthority {
        secrets: secrets.clone(),
        secret_id: name.clone(),
        moved_after_first_read: false,
    };
    crate::credentials::dsn::handoff(&secret, &spec.database, version, Some(authority))
        .map(Some)
        .map_err(|e| failed(e.to_string()))
}

#[cfg(test)]
mod tests;
