//! The Kubernetes Secret SigNoz reads its PostgreSQL DSN from, and the CA bundle the
//! DSN's `sslrootcert` names. Both writers (rotate-credentials' finishSecret and
//! sync-cluster) go through [`apply_database_secret`], whose version guard keeps the
//! hand-off from going backwards.

use base64::Engine;
use serde_json::{Value, json};

use super::Error;
use super::apply::{ApplyOutcome, apply_over_live, read_live};
use super::objects::{DesiredObject, owner_labels, secret_resource};
use crate::spec::PlatformSpec;

/// Environment key telling SigNoz to use PostgreSQL for its metadata store.
pub const SQLSTORE_PROVIDER_KEY: &str = "SIGNOZ_SQLSTORE_PROVIDER";
/// Annotation naming the Secrets Manager version (of the app secret) the DSN comes from.
pub const CREDENTIALS_VERSION_ANNOTATION: &str = "signoz-control-plane/credentials-version";
/// Writes retried when another writer changed the Secret between our read and our write.
const GUARDED_WRITE_ATTEMPTS: usize = 3;

/// What is handed to the cluster: the DSN, the CA bundle it trusts, and the app secret's
/// version they come from.
#[derive(Debug, Clone)]
pub struct DsnSource {
    pub dsn: String,
    /// PEM bundle stored under `kubernetes_secret.ca_key`, mounted where the DSN's
    /// `sslrootcert` points.
    pub ca_bundle: String,
    /// Version id of AWSCURRENT: the rotation uses the same `credentials-version-<id>`
    /// restart reason, so a rotation followed by a reconcile restarts once.
    pub version_id: String,
    /// Where to confirm that `version_id` is still AWSCURRENT before replacing another
    /// version in the Secret; `None` when the caller is that authority itself.
    pub authority: Option<VersionAuthority>,
}

/// The app secret in Secrets Manager, asked which version is AWSCURRENT.
#[derive(Debug, Clone)]
pub struct VersionAuthority {
    pub secrets: aws_sdk_secretsmanager::Client,
    pub secret_id: String,
    /// The caller moved AWSCURRENT to the version itself after the Secret was first
    /// read (finishSecret): a decision on that read needs no asking, a re-read's does.
    pub moved_after_first_read: bool,
}

impl VersionAuthority {
    /// The version id carrying AWSCURRENT now.
    pub async fn current_version(&self) -> Result<Option<String>, Error> {
        let answer = self
            .secrets
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .map_err(|e| Error::SecretsManager {
                secret: self.secret_id.clone(),
                detail: crate::aws::error_text(&e),
            })?;
        Ok(answer.version_id().map(str::to_string))
    }
}

/// What handing the DSN over did.
#[derive(Debug, Clone, PartialEq)]
pub enum HandoffOutcome {
    /// The Secret holds our version now (created, updated or already so).
    Applied(ApplyOutcome),
    /// The Secret holds another version and ours is no longer AWSCURRENT: nothing was
    /// written, and nothing may restart onto our DSN.
    Stale { live_version: String },
}

impl HandoffOutcome {
    /// Whether the Secret's data changed.
    pub fn data_changed(&self) -> bool {
        match self {
            HandoffOutcome::Applied(outcome) => data_changed(outcome),
            HandoffOutcome::Stale { .. } => false,
        }
    }
}

/// The desired DSN Secret (pure). Values are base64 in `data`, never `stringData`, so
/// server-side apply ownership and the comparison with the live object are exact.
pub fn render_database_secret(spec: &PlatformSpec, source: &DsnSource) -> DesiredObject {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secret = &spec.database.kubernetes_secret;
    let namespace = spec.cluster.namespace.clone();
    let mut data = serde_json::Map::new();
    data.insert(secret.dsn_key.clone(), b64(&source.dsn).into());
    data.insert(SQLSTORE_PROVIDER_KEY.into(), b64("postgres").into());
    data.insert(secret.ca_key.clone(), b64(&source.ca_bundle).into());
    DesiredObject {
        resource: secret_resource(),
        namespace: Some(namespace.clone()),
        name: secret.name.clone(),
        body: json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": secret.name,
                "namespace": namespace,
                "labels": owner_labels(&spec.platform.name),
                "annotations": { CREDENTIALS_VERSION_ANNOTATION: source.version_id },
            },
            "type": "Opaque",
            "data": data,
        }),
        owned: true,
    }
}

/// What the cluster's Secret says now, without its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveHandoff {
    /// [`CREDENTIALS_VERSION_ANNOTATION`].
    pub version_id: Option<String>,
    /// The database user its DSN names.
    pub user: Option<String>,
}

/// Reads the DSN Secret: the version it was written for and the user its DSN names
/// (`None` when there is no Secret).
pub async fn read_database_secret(
    client: &kube::Client,
    spec: &PlatformSpec,
) -> Result<Option<LiveHandoff>, Error> {
    let Some(live) = read_database_secret_object(client, spec).await? else {
        return Ok(None);
    };
    Ok(Some(live_handoff(&live.data, &live.metadata, spec)))
}

/// The DSN Secret as the API server has it, for [`apply_database_secret_over`].
pub async fn read_database_secret_object(
    client: &kube::Client,
    spec: &PlatformSpec,
) -> Result<Option<kube::api::DynamicObject>, Error> {
    read_live(
        client,
        &render_database_secret(spec, &DsnSource::placeholder()),
    )
    .await
}

fn live_handoff(
    data: &Value,
    metadata: &kube::api::ObjectMeta,
    spec: &PlatformSpec,
) -> LiveHandoff {
    let user = data
        .pointer(&format!(
            "/data/{}",
            spec.database
                .kubernetes_secret
                .dsn_key
                .replace('~', "~0")
                .replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|dsn| url::Url::parse(&dsn).ok())
        .map(|url| crate::credentials::dsn::decode_userinfo(url.username()));
    LiveHandoff {
        version_id: metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CREDENTIALS_VERSION_ANNOTATION))
            .cloned(),
        user,
    }
}

impl DsnSource {
    /// A source with no values, to name the Secret (reads, RBAC).
    pub fn placeholder() -> Self {
        DsnSource {
            dsn: String::new(),
            ca_bundle: String::new(),
            version_id: String::new(),
            authority: None,
        }
    }
}

/// Server-side applies the DSN Secret (`spec.database.kubernetes_secret`: the DSN, the
/// CA bundle and `SIGNOZ_SQLSTORE_PROVIDER=postgres`), guarded so it never goes back:
/// when the Secret holds another version, ours must still be AWSCURRENT (asked of
/// `source.authority`), and the write carries the `resourceVersion` read, so a writer
/// that changed the Secret in between makes us read and decide again.
pub async fn apply_database_secret(
    client: &kube::Client,
    spec: &PlatformSpec,
    source: &DsnSource,
    dry_run: bool,
) -> Result<HandoffOutcome, Error> {
    let live = read_live(client, &render_database_secret(spec, source)).await?;
    apply_database_secret_over(client, spec, source, live, dry_run).await
}

/// [`apply_database_secret`] when the Secret was already read; a retry reads it again.
pub async fn apply_database_secret_over(
    client: &kube::Client,
    spec: &PlatformSpec,
    source: &DsnSource,
    first_read: Option<kube::api::DynamicObject>,
    dry_run: bool,
) -> Result<HandoffOutcome, Error> {
    let desired = render_database_secret(spec, source);
    let mut first_read = Some(first_read);
    for attempt in 0..GUARDED_WRITE_ATTEMPTS {
        let live = match first_read.take() {
            Some(live) => live,
            None => read_live(client, &desired).await?,
        };
        let mut guarded = desired.clone();
        if let Some(live) = &live {
            let seen = live_handoff(&live.data, &live.metadata, spec);
            if let Some(live_version) = seen.version_id.filter(|v| *v != source.version_id) {
                let current = match &source.authority {
                    Some(authority) if !(attempt == 0 && authority.moved_after_first_read) => {
                        authority.current_version().await?
                    }
                    _ => Some(source.version_id.clone()),
                };
                if current.as_deref() != Some(source.version_id.as_str()) {
                    tracing::warn!(secret = %desired.id(), live_version = %live_version,
                        our_version = %source.version_id, current = current.as_deref().unwrap_or("(none)"),
                        "the Secret holds a newer hand-off than ours: left alone, no restart");
                    return Ok(HandoffOutcome::Stale { live_version });
                }
            }
            if let Some(version) = &live.metadata.resource_version {
                guarded.body["metadata"]["resourceVersion"] = version.clone().into();
            }
        }
        let outcome =
            apply_over_live(client, &spec.cluster.field_manager, &guarded, live, dry_run).await?;
        // Only which keys changed is logged: the values are credentials.
        tracing::info!(secret = %desired.id(), outcome = outcome.name(),
            data_changed = data_changed(&outcome), version = %source.version_id, "applied database secret");
        match outcome {
            ApplyOutcome::Conflict { message } if message.contains("has been modified") => {
                tracing::info!(secret = %desired.id(), "the Secret changed since it was read: deciding again");
            }
            ApplyOutcome::Conflict { message } => {
                return Err(Error::Conflict {
                    object: desired.id(),
                    message,
                });
            }
            other => return Ok(HandoffOutcome::Applied(other)),
        }
    }
    Err(Error::Conflict {
        object: desired.id(),
        message: format!("changed by another writer on each of {GUARDED_WRITE_ATTEMPTS} attempts"),
    })
}

/// Whether applying the Secret changed its data (not just labels or annotations).
pub fn data_changed(outcome: &ApplyOutcome) -> bool {
    match outcome {
        ApplyOutcome::Created => true,
        ApplyOutcome::Updated { changes } => changes.iter().any(|c| c.path.starts_with(".data")),
        ApplyOutcome::Unchanged | ApplyOutcome::Missing | ApplyOutcome::Conflict { .. } => false,
    }
}
