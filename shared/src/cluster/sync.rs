//! One reconcile of the cluster: apply what the spec renders, release and prune what it no
//! longer wants, restart what changed (once per change).

use kube::api::{ListParams, Patch, PatchParams};
use serde::Serialize;
use serde_json::Value;

use std::collections::BTreeMap;

use kube::api::DeleteParams;

use super::apply::{
    ApplyOutcome, FieldChange, api_for, apply_over_live, apply_returning_live,
    conflicting_managers, created_by_us, prune_objects, read_live,
};
use super::delivery::{
    DeliveryPlan, DeliveryRecord, adopt, destination_clash, plan_delivery, refusal,
};
use super::objects::{DesiredObject, content_hash};
use super::permissions::{prune_scopes, release_scopes};
use super::render::instrumentation::{
    INSTRUMENTED_LABEL, first_container, render_workload_optin, workload_fields,
};
use super::render::render_owned_objects;
use super::render::scaling::render_scaled_object_with;
use super::restart::{RESTARTED_FOR_ANNOTATION, restart_for, workload_id};
use super::secret::{data_changed, render_database_secret};
use super::{Call, Error};
use crate::alarms::overrides::ReplicaOverride;
use crate::spec::{PlatformSpec, WorkloadRef};

/// Pod-template annotation holding the instrumentation a workload last restarted for.
pub const INSTRUMENTATION_RESTART_ANNOTATION: &str = "signoz-control-plane/instrumentation-hash";

/// The DSN to hand to the cluster and the Secrets Manager version it came from.
#[derive(Debug, Clone)]
pub struct DsnSource {
    pub dsn: String,
    /// Version id of AWSCURRENT: the rotation uses the same `credentials-version-<id>`
    /// restart reason, so a rotation followed by a reconcile restarts once.
    pub version_id: String,
}

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
    /// Destructive delivery changes: refused, or (allowed by `cluster.delivery.replaces`) done.
    pub destructive: Vec<String>,
    /// What another owner must fix (an adopted Application that resets the replicas, say).
    pub warnings: Vec<String>,
    /// What SigNoz is now delivered with, for the state's record; `None` when it was not
    /// applied this run.
    #[serde(skip)]
    pub delivered: Option<DeliveryRecord>,
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
    /// The field managers the server named.
    pub managers: Vec<String>,
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
                let managers = conflicting_managers(message);
                tracing::warn!(object = %id, managers = ?managers, conflict = %message, "field owned by another manager; left alone");
                self.conflicts.push(ConflictReport {
                    object: id,
                    managers,
                    message: message.clone(),
                });
            }
        }
    }
}

/// What a reconcile works from besides the spec and the cluster.
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncInputs<'a> {
    /// An alarm policy's replica override in force (see `alarms`).
    pub replicas: Option<&'a ReplicaOverride>,
    /// The DSN to hand over; `None` when unknown (the Secret is then not written).
    pub dsn: Option<&'a DsnSource>,
    /// What SigNoz was delivered with last (the state's record): a rename or a switch of
    /// method is seen against it.
    pub delivered: Option<&'a DeliveryRecord>,
    pub dry_run: bool,
}

/// A whole reconcile as the functions run it: the alarm overrides in force (respond-to-alarms
/// reverts them) and the delivery record from the state store, the sync, then the record
/// of what SigNoz is now delivered with. Fails at the end when any object failed.
pub async fn reconcile(
    client: &kube::Client,
    store: &crate::state::StateStore,
    spec: &PlatformSpec,
    dsn: Option<&DsnSource>,
    dry_run: bool,
) -> crate::Result<SyncReport> {
    let (replicas, recorded) = tokio::try_join!(
        async {
            crate::alarms::overrides::read_replica_override(store, spec)
                .await
                .map_err(crate::Error::from)
        },
        async {
            store
                .load::<DeliveryRecord>(super::delivery::DELIVERY_STATE_KEY)
                .await
                .map_err(|e| crate::Error::from(Error::from(e)))
        },
    )?;
    let (recorded, version) = recorded;
    let inputs = SyncInputs {
        replicas: replicas.as_ref(),
        dsn,
        delivered: recorded.as_ref(),
        dry_run,
    };
    let report = sync_cluster_with(client, spec, inputs).await?;
    if !dry_run
        && let Some(delivered) = &report.delivered
        && recorded.as_ref() != Some(delivered)
    {
        store
            .save(super::delivery::DELIVERY_STATE_KEY, delivered, &version)
            .await
            .map_err(Error::from)?;
        tracing::info!(before = ?recorded, after = ?delivered, "recorded what SigNoz is delivered with");
    }
    if let Some(failure) = report.failure() {
        // Every other object was reconciled; the invocation still fails so it is retried
        // and alarmed on.
        tracing::error!(report = %report_json(&report), "cluster reconcile incomplete");
        return Err(failure.into());
    }
    Ok(report)
}

/// Reconciles the cluster with the spec. `dsn` is `None` when the DSN is unknown (the
/// Secret is then not written).
pub async fn sync_cluster(
    client: &kube::Client,
    spec: &PlatformSpec,
    dsn: Option<&DsnSource>,
    dry_run: bool,
) -> Result<SyncReport, Error> {
    let inputs = SyncInputs {
        dsn,
        dry_run,
        ..Default::default()
    };
    sync_cluster_with(client, spec, inputs).await
}

/// [`sync_cluster`] with every input. One object that fails does not stop the others: its
/// error is in `report.failed` (see [`SyncReport::failure`]); only a spec that cannot
/// render fails the whole call.
pub async fn sync_cluster_with(
    client: &kube::Client,
    spec: &PlatformSpec,
    inputs: SyncInputs<'_>,
) -> Result<SyncReport, Error> {
    let SyncInputs {
        replicas,
        dsn,
        dry_run,
        ..
    } = inputs;
    let manager = &spec.cluster.field_manager;
    let platform = &spec.platform.name;
    let mut report = SyncReport {
        dry_run,
        ..Default::default()
    };

    // The DSN Secret first: SigNoz's credentials reach the cluster even when another
    // object (a CRD not installed, say) fails.
    let mut owned: Vec<DesiredObject> = dsn
        .map(|source| render_database_secret(spec, &source.dsn))
        .into_iter()
        .collect();
    for object in render_owned_objects(spec)? {
        owned.push(match object.resource.kind.as_str() {
            "ScaledObject" if replicas.is_some() => render_scaled_object_with(spec, replicas),
            _ => object,
        });
    }
    // A release rename or a switch of delivery method changes what everything is named
    // after: unless the spec allows it, nothing of this spec is applied.
    let signoz = super::render::delivery::signoz_delivery(spec);
    let mut signoz_live = match read_live(client, &signoz).await {
        Ok(live) => Some(live),
        Err(error) => {
            report.fail(signoz.id(), error);
            None
        }
    };
    // Without a record, only a live object of ours tells what we delivered before (one
    // someone else manages is adopted, or refused, on its own terms).
    let live_json = signoz_live
        .as_ref()
        .and_then(|l| l.as_ref())
        .filter(|l| created_by_us(l))
        .map(|l| serde_json::to_value(l).unwrap_or_default());
    let wanted = DeliveryRecord::wanted(spec);
    let replacement = match plan_delivery(spec, inputs.delivered, live_json.as_ref()) {
        DeliveryPlan::Apply => None,
        DeliveryPlan::Replace { from } => {
            report.destructive.push(format!(
                "replaces {} (release {}) with {} (release {}), as cluster.delivery.replaces allows",
                from.object, from.release, wanted.object, wanted.release
            ));
            Some(from)
        }
        DeliveryPlan::Refuse { from } => {
            report.destructive.push(format!(
                "refused: {} (release {}) -> {} (release {})",
                from.object, from.release, wanted.object, wanted.release
            ));
            report.fail(signoz.id(), refusal(spec, &from));
            return Ok(report);
        }
    };

    let mut dsn_handed_off = None;
    // The Instrumentation as the server holds it after our apply: what pods get injected
    // with, so what workloads restart for. `None` when it did not land.
    let mut instrumentation_live = None;
    for object in &owned {
        let applied = match object.resource.kind.as_str() {
            "Application" | "HelmRelease" => {
                let is_signoz = object.id() == signoz.id();
                let live = if is_signoz {
                    match signoz_live.take() {
                        Some(live) => live,
                        // Its read failed: reported above.
                        None => continue,
                    }
                } else {
                    match read_live(client, object).await {
                        Ok(live) => live,
                        Err(error) => {
                            report.fail(object.id(), error);
                            continue;
                        }
                    }
                };
                let applied = apply_delivery(client, spec, object, live, &mut report).await;
                if is_signoz && applied.is_ok() {
                    report.delivered = Some(wanted.clone());
                }
                applied.map(|outcome| (outcome, None))
            }
            _ => apply_returning_live(client, manager, object, dry_run).await,
        };
        match applied {
            Ok((outcome, live)) => {
                match object.resource.kind.as_str() {
                    "Secret" => dsn_handed_off = Some(data_changed(&outcome)),
                    "Instrumentation" if !matches!(outcome, ApplyOutcome::Conflict { .. }) => {
                        instrumentation_live = live.map(|l| l["spec"].clone());
                    }
                    _ => {}
                }
                report.record(object, &outcome);
            }
            Err(error) => report.fail(object.id(), error),
        }
    }
    if let Some(from) = replacement
        && report.delivered.is_some()
    {
        remove_replaced_delivery(client, spec, &from, &mut report).await;
    }

    // Restarts, per workload: every cause of this reconcile in one rollout.
    let mut restarts: BTreeMap<String, (WorkloadRef, Vec<(&'static str, String)>)> =
        BTreeMap::new();
    let mut restart =
        |spec: &PlatformSpec, workload: WorkloadRef, key: &'static str, reason: String| {
            restarts
                .entry(workload_id(spec, &workload))
                .or_insert_with(|| (workload, Vec::new()))
                .1
                .push((key, reason));
        };

    // Opt-in fields on the listed workloads, and the restart fingerprint of each: the live
    // Instrumentation plus that workload's own fields, so only affected ones restart, and
    // none while the Instrumentation did not land (a conflict, say).
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
        if let Some(instrumentation) = &instrumentation_live
            && !matches!(
                outcome,
                ApplyOutcome::Missing | ApplyOutcome::Conflict { .. }
            )
        {
            let reason = format!(
                "instrumentation-{}",
                content_hash(&serde_json::json!([instrumentation, object.body]))
            );
            restart(
                spec,
                workload_ref(&object),
                INSTRUMENTATION_RESTART_ANNOTATION,
                reason,
            );
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
            let reason = "instrumentation-removed".to_string();
            restart(
                spec,
                workload_ref(&release),
                INSTRUMENTATION_RESTART_ANNOTATION,
                reason,
            );
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

    // Onto the DSN only once the Secret holding it was applied.
    if let (Some(source), Some(data_changed)) = (dsn, dsn_handed_off) {
        let reason = format!("credentials-version-{}", source.version_id);
        for workload in crate::spec::chart::dsn_readers(spec) {
            restart(spec, workload, RESTARTED_FOR_ANNOTATION, reason.clone());
        }
        if data_changed {
            tracing::info!(data_changed, "database secret hand-off");
        }
    }
    for (id, (workload, reasons)) in restarts {
        match restart_for(client, spec, &workload, &reasons, false, dry_run).await {
            Ok(true) => report.restarted.push(id),
            Ok(false) => {}
            Err(error) => report.fail(id, error),
        }
    }
    Ok(report)
}

/// Applies one delivery object: one someone else created only as far as adopting it
/// allows, one of ours never with its destination named twice.
async fn apply_delivery(
    client: &kube::Client,
    spec: &PlatformSpec,
    object: &DesiredObject,
    live: Option<kube::api::DynamicObject>,
    report: &mut SyncReport,
) -> Result<ApplyOutcome, Error> {
    let manager = &spec.cluster.field_manager;
    let json = live
        .as_ref()
        .map(|l| serde_json::to_value(l).unwrap_or_default());
    match (live, json) {
        (Some(live), Some(json)) if !created_by_us(&live) => {
            let adoption = adopt(object, &json)?;
            for warning in adoption.warnings {
                tracing::warn!(object = %object.id(), warning = %warning, "adopted delivery object");
                report.warnings.push(format!("{}: {warning}", object.id()));
            }
            let Some(body) = adoption.body else {
                return Ok(ApplyOutcome::Unchanged);
            };
            let values_only = DesiredObject {
                body,
                owned: false,
                ..object.clone()
            };
            apply_over_live(client, manager, &values_only, Some(live), report.dry_run).await
        }
        (live, json) => {
            if let Some(clash) = json.and_then(|j| destination_clash(object, &j)) {
                return Err(clash);
            }
            apply_over_live(client, manager, object, live, report.dry_run).await
        }
    }
}

/// Deletes the delivery object a replacement allowed (after the new one was applied).
async fn remove_replaced_delivery(
    client: &kube::Client,
    spec: &PlatformSpec,
    from: &DeliveryRecord,
    report: &mut SyncReport,
) {
    let wanted = DeliveryRecord::wanted(spec);
    if from.object == wanted.object {
        return; // A release rename in the same Application: nothing else to delete.
    }
    let Some((kind_resource, namespace, name)) = super::delivery::delivery_object(&from.object)
    else {
        return;
    };
    if !report.dry_run {
        let deleted = api_for(client, &kind_resource, Some(namespace))
            .delete(name, &DeleteParams::default())
            .await;
        match deleted {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(source) => {
                let call = Call {
                    verb: "delete",
                    resource: &kind_resource,
                    namespace: Some(namespace),
                    name: Some(name),
                };
                report.fail(from.object.clone(), call.failed(source));
                return;
            }
        }
    }
    tracing::warn!(object = %from.object, before = "present", after = "deleted", dry_run = report.dry_run, "deleted the delivery cluster.delivery.replaces names");
    report.pruned.push(from.object.clone());
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
