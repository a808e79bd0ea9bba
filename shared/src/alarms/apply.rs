//! Carrying out decisions: each remediation goes through the code path the reconcilers use
//! (the ScaledObject renderer, the cold-storage reconcile, the cluster sync), plus
//! Secrets Manager's `RotateSecret`.

use serde_json::{Value, json};

use super::overrides::read_replica_override;
use super::{Context, Error};
use crate::cluster::apply::{ApplyOutcome, apply_object};
use crate::cluster::render::scaling::render_scaled_object_with;
use crate::spec::PlatformSpec;
use crate::state::StateStore;

/// Applies the collectors' ScaledObject with the replica overrides in force (all policies),
/// annotated with why; no write when the cluster already holds it.
pub async fn apply_collector_scaling(ctx: &Context, spec: &PlatformSpec) -> crate::Result<Value> {
    let store = StateStore::for_spec(ctx.s3.clone(), spec);
    let replicas = read_replica_override(&store, spec).await?;
    let client = ctx.kube.client(spec, &ctx.sdk).await?;
    let object = render_scaled_object_with(spec, replicas.as_ref());
    let outcome = apply_object(&client, &spec.cluster.field_manager, &object, false).await?;
    let (min, max) = (
        &object.body["spec"]["minReplicaCount"],
        &object.body["spec"]["maxReplicaCount"],
    );
    if matches!(
        outcome,
        ApplyOutcome::Created | ApplyOutcome::Updated { .. }
    ) {
        crate::telemetry::changes_applied(1, false);
    }
    match &outcome {
        ApplyOutcome::Updated { changes } => {
            for change in changes {
                tracing::info!(object = %object.id(), field = %change.path,
                    before = %crate::diff::plain(&change.before),
                    after = %crate::diff::plain(&change.after), "remediation applied");
            }
        }
        ApplyOutcome::Conflict { message } => {
            tracing::warn!(object = %object.id(), conflict = %message, "replica bounds owned by another manager; left alone");
        }
        other => {
            tracing::info!(object = %object.id(), outcome = other.name(), %min, %max, "collector scaling converged")
        }
    }
    Ok(json!({
        "object": object.id(),
        "outcome": outcome.name(),
        "minReplicaCount": min,
        "maxReplicaCount": max,
        "why": replicas.map(|r| r.why),
    }))
}

/// Runs the cold-storage reconcile (bucket posture and TTLs, hot-days overrides in force).
pub async fn reconcile_cold_storage(ctx: &Context, now: jiff::Timestamp) -> crate::Result<Value> {
    crate::cold_storage::reconcile_now(&ctx.cold_storage, super::FUNCTION, now).await
}

/// Runs the whole cluster sync, as sync-cluster's schedule would.
pub async fn reconcile_cluster(ctx: &Context, spec: &PlatformSpec) -> crate::Result<Value> {
    let report =
        crate::cluster::reconcile_on(&ctx.secrets, &ctx.kube, &ctx.sdk, &ctx.s3, spec, false)
            .await?;
    if let Some(failure) = report.failure() {
        return Err(failure.into());
    }
    crate::telemetry::changes_applied(report.changes(), false);
    Ok(crate::cluster::sync::report_json(&report))
}

/// Starts a rotation of the app secret with its configured rotation function, unless one
/// is already in progress (a version other than AWSCURRENT carries AWSPENDING).
pub async fn rotate_app_secret(ctx: &Context, spec: &PlatformSpec) -> Result<Value, Error> {
    let secret = &spec.database.app_secret_name;
    let failed = |detail: String| Error::SecretsManager {
        secret: secret.clone(),
        detail,
    };
    let described = ctx
        .secrets
        .describe_secret()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| failed(crate::aws::error_text(&e)))?;
    let stages = described.version_ids_to_stages();
    let current = stages
        .into_iter()
        .flatten()
        .find(|(_, s)| s.iter().any(|s| s == "AWSCURRENT"))
        .map(|(v, _)| v.clone());
    if let Some((pending, _)) = stages
        .into_iter()
        .flatten()
        .find(|(_, s)| s.iter().any(|s| s == "AWSPENDING") && !s.iter().any(|s| s == "AWSCURRENT"))
    {
        tracing::info!(secret, pending_version = %pending, "rotation already in progress; not starting another");
        return Ok(
            json!({ "secret": secret, "rotation": "in progress", "pending_version": pending }),
        );
    }
    // Without a rotation function Secrets Manager has nothing to call (moto would even
    // move AWSCURRENT to an empty version): refuse instead.
    if described.rotation_lambda_arn().is_none() {
        return Err(Error::RotationNotConfigured {
            secret: secret.clone(),
        });
    }
    // The configured function and rules passed back as they are: a RotateSecret without
    // them is the same to Secrets Manager, but moto then rotates to an empty value.
    let started = ctx
        .secrets
        .rotate_secret()
        .secret_id(secret)
        .set_rotation_lambda_arn(described.rotation_lambda_arn().map(str::to_string))
        .set_rotation_rules(described.rotation_rules().cloned())
        .send()
        .await
        .map_err(|e| failed(crate::aws::error_text(&e)))?;
    let version = started.version_id().unwrap_or_default().to_string();
    crate::telemetry::changes_applied(1, false);
    tracing::info!(secret, before = current.as_deref().unwrap_or("(none)"), after = %version, "rotation started");
    Ok(
        json!({ "secret": secret, "rotation": "started", "before": current, "pending_version": version }),
    )
}
