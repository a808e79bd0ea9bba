//! The Kubernetes Secret SigNoz reads its PostgreSQL DSN from.

use base64::Engine;
use serde_json::json;

use super::Error;
use super::apply::{ApplyOutcome, apply_object};
use super::objects::{DesiredObject, owner_labels, secret_resource};
use crate::spec::PlatformSpec;

/// Environment key telling SigNoz to use PostgreSQL for its metadata store.
pub const SQLSTORE_PROVIDER_KEY: &str = "SIGNOZ_SQLSTORE_PROVIDER";

/// The desired DSN Secret (pure). Values are base64 in `data`, never `stringData`, so
/// server-side apply ownership and the comparison with the live object are exact.
pub fn render_database_secret(spec: &PlatformSpec, dsn: &str) -> DesiredObject {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secret = &spec.database.kubernetes_secret;
    let namespace = spec.cluster.namespace.clone();
    let mut data = serde_json::Map::new();
    data.insert(secret.dsn_key.clone(), b64(dsn).into());
    data.insert(SQLSTORE_PROVIDER_KEY.into(), b64("postgres").into());
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
            },
            "type": "Opaque",
            "data": data,
        }),
        owned: true,
    }
}

/// Server-side applies the Secret `spec.database.kubernetes_secret` with the DSN under its key (plus SIGNOZ_SQLSTORE_PROVIDER=postgres); returns true when the data changed.
pub async fn apply_database_secret(
    client: &kube::Client,
    spec: &PlatformSpec,
    dsn: &str,
) -> Result<bool, Error> {
    let desired = render_database_secret(spec, dsn);
    let outcome = apply_object(client, &spec.cluster.field_manager, &desired, false).await?;
    let changed = data_changed(&outcome);
    // Only which keys changed is logged: the values are credentials.
    tracing::info!(secret = %desired.id(), outcome = ?outcome_summary(&outcome), data_changed = changed, "applied database secret");
    match outcome {
        ApplyOutcome::Conflict { message } => Err(Error::Conflict {
            object: desired.id(),
            message,
        }),
        _ => Ok(changed),
    }
}

/// Whether applying the Secret changed its data (not just labels or annotations).
pub fn data_changed(outcome: &ApplyOutcome) -> bool {
    match outcome {
        ApplyOutcome::Created => true,
        ApplyOutcome::Updated { changes } => changes.iter().any(|c| c.path.starts_with(".data")),
        ApplyOutcome::Unchanged | ApplyOutcome::Missing | ApplyOutcome::Conflict { .. } => false,
    }
}

fn outcome_summary(outcome: &ApplyOutcome) -> &'static str {
    match outcome {
        ApplyOutcome::Created => "created",
        ApplyOutcome::Updated { .. } => "updated",
        ApplyOutcome::Unchanged => "unchanged",
        ApplyOutcome::Missing => "missing",
        ApplyOutcome::Conflict { .. } => "conflict",
    }
}
