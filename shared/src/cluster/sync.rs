//! One reconcile of the cluster: apply what the spec renders, release and prune what it no
//! longer wants, restart what changed (once per change).

use kube::api::{ListParams, Patch, PatchParams};
use serde::Serialize;
use serde_json::Value;

use super::apply::{
    ApplyOutcome, FieldChange, api_for, apply_object, apply_over_live, prune_objects, read_live,
};
use super::objects::{DesiredObject, content_hash};
use super::permissions::{prune_scopes, release_scopes};
use super::render::instrumentation::{
    INSTRUMENTED_LABEL, first_container, render_workload_optin, workload_fields,
};
use super::render::render_owned_objects;
use super::render::scaling::render_scaled_object_with;
use super::restart::{RESTARTED_FOR_ANNOTATION, RestartMode, restart_with, workload_id};
use super::secret::{HandoffOutcome, apply_database_secret};
use super::{Call, Error};
use crate::alarms::overrides::ReplicaOverride;
use crate::spec::{PlatformSpec, WorkloadRef};

/// Pod-template annotation holding the instrumentation a workload last restarted for.
pub const INSTRUMENTATION_RESTART_ANNOTATION: &str = "signoz-control-plane/instrumentation-hash";

pub use super::secret::DsnSource;

/// What one reconcile did (or, dry run, would do).
#[derive(Debug, Default, Serialize)]
pub struct SyncReport {
    pub dry_run: bool,
    pub created: Vec<String>,
    pub updated: Vec<UpdatedObject>,
    pub unchanged: Vec<String>,
    pub missing_workloads: Vec<String>,
    pub released_workloads: Vec<String>,
    pub pruned: Vec<String>,
    pub conflicts: Vec<ConflictReport>,
    pub restarted: Vec<String>,
    /// Objects whose call failed; every other object was still reconciled.
    pub failed: Vec<FailedObject>,
}

/// An object (or a list scope, `Kind/namespace`) whose API call failed, and why.
#[derive(Debug, Serialize)]
pub struct FailedObject {
    pub object: String,
    pub error: String,
    pub retryable: bool,
}

/// An object that differed from the spec, and where.
#[derive(Debug, Serialize)]
pub struct UpdatedObject {
    pub object: String,
    pub changes: Vec<FieldChange>,
}

/// A field another manager owns; we left it alone.
#[derive(Debug, Serialize)]
pub struct ConflictReport {
    pub object: String,
    pub message: String,
}

impl SyncReport {
    /// Whether the cluster already matched the spec.
    pub fn in_sync(&self) -> bool {
        self.created.is_empty()
            && self.updated.is_empty()
            && self.pruned.is_empty()
            && self.released_workloads.is_empty()
            && self.conflicts.is_empty()
            && self.restarted.is_empty()
            && self.failed.is_empty()
    }

    /// The error of the whole reconcile when any object failed (after all were tried).
    pub fn failure(&self) -> Option<Error> {
        (!self.failed.is_empty()).then(|| Error::Incomplete {
            failures: self
                .failed
                .iter()
                .map(|f| format!("{}: {}", f.object, f.error))
                .collect(),
            retryable: self.failed.iter().any(|f| f.retryable),
        })
    }

    fn fail(&mut self, object: String, error: Error) {
        tracing::error!(object = %object, error = %error, retryable = error.retryable(), "cluster object failed");
        self.failed.push(FailedObject {
            object,
            retryable: error.retryable(),
            error: error.to_string(),
        });
    }

    fn record(&mut self, object: &DesiredObject, outcome: &ApplyOutcome) {
        let id = object.id();
        match outcome {
            ApplyOutcome::Created => {
                tracing::info!(object = %id, before = "absent", after = "created", dry_run = self.dry_run, "applied object");
                self.created.push(id);
            }
            ApplyOutcome::Updated { changes } => {
                // Secret values arrive here already redacted by apply_object.
                for change in changes {
                    tracing::info!(object = %id, field = %change.path, before = %change.before,
                        after = %change.after, dry_run = self.dry_run, "applied object change");
                }
                self.updated.push(UpdatedObject {
                    object: id,
                    changes: changes.clone(),
                });
            }
            ApplyOutcome::Unchanged => self.unchanged.push(id),
            ApplyOutcome::Missing => {
                tracing::warn!(workload = %id, "workload to instrument does not exist");
                self.missing_workloads.push(id);
            }
            ApplyOutcome::Conflict { message } => {
                tracing::warn!(object = %id, conflict = %message, "field owned by another manager; left alone");
                self.conflicts.push(ConflictReport {
                    object: id,
                    message: message.clone(),
                });
            }
        }
    }
}

/// Reconciles the cluster with the spec. `dsn` is `None` when the DSN is unknown (the
/// Secret is then not written).
pub async fn sync_cluster(
    client: &kube::Client,
    spec: &PlatformSpec,
    dsn: Option<&DsnSource>,
    dry_run: bool,
) -> Result<SyncReport, Error> {
    sync_cluster_with(client, spec, None, dsn, dry_run).await
}

/// [`sync_cluster`] keeping an alarm policy's replica override in force (see `alarms`).
/// One object that fails does not stop the others: its error is in `report.failed`
/// (see [`SyncReport::failure`]); only a spec that cannot render fails the whole call.
pub async fn sync_cluster_with(
    client: &kube::Client,
    spec: &PlatformSpec,
    replicas: Option<&ReplicaOverride>,
    dsn: Option<&DsnSource>,
    dry_run: bool,
) -> Result<SyncReport, Error> {
    let manager = &spec.cluster.field_manager;
    let platform = &spec.platform.name;
    let mut report = SyncReport {
        dry_run,
        ..Default::default()
    };

    // The DSN Secret first: SigNoz's credentials reach the cluster even when another
    // object (a CRD not installed, say) fails. Its guard never puts an older version
    // over the one a rotation handed off (nor restarts onto it).
    let mut dsn_handed_off = None;
    if let Some(source) = dsn {
        let object = super::secret::render_database_secret(spec, source);
        match apply_database_secret(client, spec, source, dry_run).await {
            Ok(HandoffOutcome::Applied(outcome)) => {
                dsn_handed_off = Some(super::secret::data_changed(&outcome));
                report.record(&object, &outcome);
            }
            Ok(HandoffOutcome::Stale { .. }) => report.unchanged.push(object.id()),
            Err(error) => report.fail(object.id(), error),
        }
    }
    let mut owned: Vec<DesiredObject> = Vec::new();
    for object in render_owned_objects(spec)? {
        owned.push(match object.resource.kind.as_str() {
            "ScaledObject" if replicas.is_some() => render_scaled_object_with(spec, replicas),
            _ => object,
        });
    }
    for object in &owned {
        match apply_object(client, manager, object, dry_run).await {
            Ok(outcome) => report.record(object, &outcome),
            Err(error) => report.fail(object.id(), error),
        }
    }

    // Opt-in fields on the listed workloads, and the restart fingerprint of each: the
    // Instrumentation spec plus that workload's own fields, so only affected ones restart.
    let instrumentation_hash = owned
        .iter()
        .find(|o| o.resource.kind == "Instrumentation")
        .map(|o| content_hash(&o.body["spec"]))
        .unwrap_or_default();
    let mut restart_plan: Vec<(WorkloadRef, String)> = Vec::new();
    let mut wanted = Vec::new();
    for workload in &spec.instrumentation.workloads {
        let probe = render_workload_optin(spec, workload, None)?;
        wanted.push(probe.id());
        let (object, outcome) = match opt_in_workload(client, spec, workload, dry_run).await {
            Ok(done) => done,
            Err(error) => {
                report.fail(probe.id(), error);
                continue;
            }
        };
        report.record(&object, &outcome);
        if !matches!(
            outcome,
            ApplyOutcome::Missing | ApplyOutcome::Conflict { .. }
        ) {
            let reason = format!(
                "instrumentation-{}",
                content_hash(&serde_json::json!([instrumentation_hash, object.body]))
            );
            restart_plan.push((workload_ref(&object), reason));
        }
    }

    // Workloads we opted in earlier and the spec no longer lists: give our fields back.
    for (resource, namespace) in release_scopes(spec) {
        let selector = format!("{INSTRUMENTED_LABEL}={platform}");
        let listed = api_for(client, &resource, Some(&namespace))
            .list_metadata(&ListParams::default().labels(&selector))
            .await;
        let listed = match listed {
            Ok(list) => list,
            Err(source) => {
                let call = Call {
                    verb: "list",
                    resource: &resource,
                    namespace: Some(&namespace),
                    name: None,
                };
                report.fail(call.id(), call.failed(source));
                continue;
            }
        };
        for live in listed.items {
            let name = live.metadata.name.clone().unwrap_or_default();
            let release = workload_fields(spec, &resource.kind, &namespace, &name, None)?;
            if wanted.contains(&release.id()) {
                continue;
            }
            if !dry_run {
                let applied = api_for(client, &resource, Some(&namespace))
                    .patch(
                        &name,
                        &PatchParams::apply(manager).validation_strict(),
                        &Patch::Apply(&release.body),
                    )
                    .await;
                if let Err(source) = applied {
                    report.fail(release.id(), release.call("patch").failed(source));
                    continue;
                }
            }
            tracing::info!(workload = %release.id(), before = "instrumented", after = "released", dry_run, "removed our instrumentation fields");
            report.released_workloads.push(release.id());
            restart_plan.push((workload_ref(&release), "instrumentation-removed".into()));
        }
    }

    // Prune our objects the spec no longer wants, per kind and namespace we place them in.
    for (resource, namespace) in prune_scopes(spec)? {
        let keep: Vec<&str> = owned
            .iter()
            .filter(|o| {
                o.resource.kind == resource.kind && o.namespace.as_deref() == Some(&namespace)
            })
            .map(|o| o.name.as_str())
            .collect();
        match prune_objects(client, platform, &resource, &namespace, &keep, dry_run).await {
            Ok(pruned) => report.pruned.extend(pruned),
            Err(error) => report.fail(format!("{}/{namespace}", resource.kind), error),
        }
    }

    for (workload, reason) in restart_plan {
        let mode = RestartMode::OncePer(INSTRUMENTATION_RESTART_ANNOTATION);
        let one = std::slice::from_ref(&workload);
        match restart_with(client, spec, one, &reason, mode, dry_run).await {
            Ok(restarted) => report.restarted.extend(restarted),
            Err(error) => report.fail(workload_id(spec, &workload), error),
        }
    }
    // Restart onto the DSN only once the Secret holding it was applied.
    if let (Some(source), Some(data_changed)) = (dsn, dsn_handed_off) {
        let reason = format!("credentials-version-{}", source.version_id);
        let mode = RestartMode::OncePer(RESTARTED_FOR_ANNOTATION);
        for workload in &spec.database.restart {
            let one = std::slice::from_ref(workload);
            match restart_with(client, spec, one, &reason, mode, dry_run).await {
                Ok(restarted) => {
                    if data_changed || !restarted.is_empty() {
                        tracing::info!(data_changed, restarted = ?restarted, "database secret hand-off");
                    }
                    report.restarted.extend(restarted);
                }
                Err(error) => report.fail(workload_id(spec, workload), error),
            }
        }
    }
    Ok(report)
}

/// Applies our opt-in fields to one workload we instrument (never creating it).
async fn opt_in_workload(
    client: &kube::Client,
    spec: &PlatformSpec,
    workload: &crate::spec::InstrumentedWorkload,
    dry_run: bool,
) -> Result<(DesiredObject, ApplyOutcome), Error> {
    let probe = render_workload_optin(spec, workload, None)?;
    let live = read_live(client, &probe).await?;
    let container = live
        .as_ref()
        .and_then(|l| first_container(&l.data))
        .map(str::to_string);
    let object = render_workload_optin(spec, workload, container.as_deref())?;
    let outcome =
        apply_over_live(client, &spec.cluster.field_manager, &object, live, dry_run).await?;
    Ok((object, outcome))
}

fn workload_ref(object: &DesiredObject) -> WorkloadRef {
    WorkloadRef {
        kind: object.resource.kind.clone(),
        name: object.name.clone(),
        namespace: object.namespace.clone(),
    }
}

/// The report as the handler's JSON answer.
pub fn report_json(report: &SyncReport) -> Value {
    serde_json::to_value(report).unwrap_or(Value::Null)
}
