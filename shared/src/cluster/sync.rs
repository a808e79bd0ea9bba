//! One reconcile of the cluster: apply what the spec renders, release and prune what it no
//! longer wants, restart what changed (once per change).

use kube::api::{DynamicObject, Patch, PatchParams};
use serde::Serialize;
use serde_json::Value;

use super::Error;
use super::apply::{
    ApplyOutcome, FieldChange, api_for, apply_over_live, apply_over_live_returning,
    conflicting_managers, created_by_us, prune_object,
};
use super::delivery::{
    DeliveryPlan, DeliveryRecord, adopt, destination_clash, plan_delivery, refusal,
};
use super::objects::{DesiredObject, content_hash};
use super::observe::observe;
use super::permissions::prune_scopes;
use super::render::instrumentation::{
    INSTRUMENTED_LABEL, first_container, render_workload_optin, workload_fields,
};
use super::render::render_owned_objects;
use super::render::scaling::render_scaled_object_with;
use super::restart::{RESTARTED_FOR_ANNOTATION, restart_over, workload_id};
use super::secret::{
    HandoffOutcome, apply_database_secret_over, data_changed, render_database_secret,
};
use crate::alarms::overrides::ReplicaOverride;
use crate::spec::PlatformSpec;

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
    /// Refused as unsafe (a destructive delivery, another owner's object), not broken.
    pub refused: bool,
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

    /// How many writes changed (or, dry run, would change) the cluster: objects created,
    /// updated, pruned, workloads released.
    pub fn changes(&self) -> usize {
        self.created.len() + self.updated.len() + self.pruned.len() + self.released_workloads.len()
    }

    /// How many objects were refused as unsafe (a destructive delivery, another owner's).
    pub fn refusals(&self) -> usize {
        self.failed.iter().filter(|f| f.refused).count()
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
            refused: error.is_refusal(),
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
                    tracing::info!(object = %id, field = %change.path,
                        before = %crate::diff::plain(&change.before),
                        after = %crate::diff::plain(&change.after),
                        dry_run = self.dry_run, "applied object change");
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
                tracing::warn!(object = %id, managers = %managers.join(", "), conflict = %message, "field owned by another manager; left alone");
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

/// What the sync keeps in the state store: the collector replica override in force (an
/// alarm remedy; respond-to-alarms reverts it) and the record of what SigNoz is
/// delivered with (and the version the record's write expects).
pub struct Records {
    replicas: Option<crate::alarms::overrides::ReplicaOverride>,
    delivered: Option<DeliveryRecord>,
    version: crate::state::Version,
}

/// Reads the [`Records`], both at once.
pub async fn read_records(
    store: &crate::state::StateStore,
    spec: &PlatformSpec,
) -> crate::Result<Records> {
    let (replicas, (delivered, version)) = tokio::try_join!(
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
    Ok(Records {
        replicas,
        delivered,
        version,
    })
}

/// Reconciles the cluster with the spec and `records` (the delivery record is written
/// when what SigNoz is delivered with changed); objects that failed are in the report.
pub async fn reconcile_report(
    client: &kube::Client,
    store: &crate::state::StateStore,
    spec: &PlatformSpec,
    dsn: Option<&DsnSource>,
    records: Records,
    dry_run: bool,
) -> crate::Result<SyncReport> {
    let Records {
        replicas,
        delivered: recorded,
        version,
    } = records;
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
        let before = recorded
            .as_ref()
            .map_or_else(|| "(none)".into(), ToString::to_string);
        tracing::info!(before = %before, after = %delivered, "recorded what SigNoz is delivered with");
    }
    if !report.failed.is_empty() {
        // Each failure was logged with its object; every other object was reconciled.
        tracing::error!(
            failed = report.failed.len(),
            refused = report.refusals(),
            "cluster reconcile incomplete"
        );
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
    let mut report = SyncReport {
        dry_run,
        ..Default::default()
    };
    let mut owned: Vec<DesiredObject> = Vec::new();
    for object in render_owned_objects(spec)? {
        owned.push(match object.resource.kind.as_str() {
            "ScaledObject" if replicas.is_some() => render_scaled_object_with(spec, replicas),
            _ => object,
        });
    }
    let secret = dsn.map(|source| render_database_secret(spec, source));
    let probes = spec
        .instrumentation
        .workloads
        .iter()
        .map(|w| render_workload_optin(spec, w, None))
        .collect::<Result<Vec<_>, _>>()?;

    // Read phase: everything at once (see `observe`).
    let desired: Vec<&DesiredObject> = owned.iter().chain(secret.iter()).collect();
    let mut observed = observe(client, spec, &desired).await;

    // A release rename or a switch of delivery method changes what everything is named
    // after: unless the spec allows it, nothing of this spec is applied.
    let signoz = super::render::delivery::signoz_delivery(spec);
    let signoz_live = observed.object(&signoz);
    // Without a record, only a live object of ours tells what we delivered before (one
    // someone else manages is adopted, or refused, on its own terms).
    let live_json = signoz_live
        .as_ref()
        .ok()
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

    // Write phase 1, concurrently: the DSN Secret (its guard never puts an older version
    // over the one a rotation handed off, nor restarts onto it) and every owned object.
    let secret_live = secret.as_ref().map(|s| observed.object(s));
    let mut lives = Vec::new();
    for object in &owned {
        lives.push(if object.id() == signoz.id() {
            signoz_live.as_ref().map(Clone::clone).map_err(|_| ())
        } else {
            observed
                .object(object)
                .map_err(|e| report.fail(object.id(), e))
        });
    }
    if let Err(error) = signoz_live {
        report.fail(signoz.id(), error);
    }
    let handoff = async {
        match (dsn, secret_live) {
            (Some(source), Some(Ok(live))) => {
                Some(apply_database_secret_over(client, spec, source, live, dry_run).await)
            }
            (Some(_), Some(Err(error))) => Some(Err(error)),
            _ => None,
        }
    };
    let applies =
        futures_util::future::join_all(owned.iter().zip(lives).filter_map(|(object, live)| {
            let live = live.ok()?;
            Some(async move {
                let applied = match object.resource.kind.as_str() {
                    "Application" | "HelmRelease" => {
                        apply_delivery(client, spec, object, live, dry_run)
                            .await
                            .map(|(outcome, warnings)| (outcome, None, warnings))
                    }
                    _ => apply_over_live_returning(client, manager, object, live, dry_run)
                        .await
                        .map(|(outcome, live)| (outcome, live, Vec::new())),
                };
                (object, applied)
            })
        }));
    let (handoff, applied) = tokio::join!(handoff, applies);

    let mut dsn_handed_off = false;
    if let (Some(object), Some(handoff)) = (&secret, handoff) {
        match handoff {
            Ok(HandoffOutcome::Applied(outcome)) => {
                dsn_handed_off = true;
                if data_changed(&outcome) {
                    tracing::info!(secret = %object.id(), "database secret hand-off");
                }
                report.record(object, &outcome);
            }
            Ok(HandoffOutcome::Stale { .. }) => report.unchanged.push(object.id()),
            Err(error) => report.fail(object.id(), error),
        }
    }
    // The Instrumentation as the server holds it after our apply: what pods get injected
    // with, so what workloads roll for. `None` when it did not land (a conflict, say).
    let mut instrumentation_live = None;
    for (object, result) in applied {
        match result {
            Ok((outcome, live, warnings)) => {
                if object.resource.kind == "Instrumentation"
                    && !matches!(outcome, ApplyOutcome::Conflict { .. })
                {
                    instrumentation_live = live.map(|l| l["spec"].clone());
                }
                if object.id() == signoz.id() {
                    report.delivered = Some(wanted.clone());
                }
                for warning in warnings {
                    report.warnings.push(format!("{}: {warning}", object.id()));
                }
                report.record(object, &outcome);
            }
            Err(error) => report.fail(object.id(), error),
        }
    }
    for (id, error) in std::mem::take(&mut observed.failures) {
        report.fail(id, error);
    }

    // Write phase 2, concurrently: the workloads' opt-in fields, each with the causes it
    // rolls for in its pod template (the live Instrumentation and its own fields; the DSN
    // version when it reads the Secret), so one change is one rollout and a change that
    // did not land rolls nothing; releases of workloads the spec no longer lists (giving
    // our fields back rolls them too); prunes; the delivery a replacement allows to go.
    let dsn_reason = dsn
        .filter(|_| dsn_handed_off)
        .map(|s| format!("credentials-version-{}", s.version_id));
    let readers = crate::spec::chart::dsn_readers(spec);
    // A workload whose namespace could not be listed is not known to be missing: skipped
    // (its list's failure is reported).
    let readable: Vec<_> = spec
        .instrumentation
        .workloads
        .iter()
        .zip(&probes)
        .filter(|(_, probe)| !observed.unread_workload(&probe.id()))
        .collect();
    let opt_ins = futures_util::future::join_all(readable.iter().map(|(workload, probe)| {
        let live = observed.workloads.get(&probe.id()).cloned();
        let reads_dsn = readers.iter().any(|r| workload_id(spec, r) == probe.id());
        let instrumentation = instrumentation_live.as_ref();
        let dsn_reason = dsn_reason.as_ref().filter(|_| reads_dsn);
        async move {
            let object = optin_with_rollout_causes(
                spec,
                workload,
                live.as_ref(),
                instrumentation,
                dsn_reason,
            )?;
            let outcome = apply_over_live(client, manager, &object, live, dry_run).await?;
            Ok::<_, Error>((object, outcome))
        }
    }));
    let wanted_ids: Vec<String> = probes.iter().map(DesiredObject::id).collect();
    let platform = &spec.platform.name;
    let mut releases = Vec::new();
    for (id, live) in &observed.workloads {
        let labelled = live
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(INSTRUMENTED_LABEL))
            .is_some_and(|p| p == platform);
        if !labelled || wanted_ids.contains(id) {
            continue;
        }
        let (kind, namespace) = (
            live.types.as_ref().map_or("", |t| t.kind.as_str()),
            live.metadata.namespace.as_deref().unwrap_or(""),
        );
        let kind = if kind.is_empty() {
            id.split('/').next().unwrap_or_default()
        } else {
            kind
        };
        releases.push(workload_fields(
            spec,
            kind,
            namespace,
            live.metadata.name.as_deref().unwrap_or(""),
            None,
        )?);
    }
    let released = futures_util::future::join_all(releases.iter().map(|release| async move {
        if !dry_run {
            api_for(client, &release.resource, release.namespace.as_deref())
                .patch(
                    &release.name,
                    &PatchParams::apply(manager).validation_strict(),
                    &Patch::Apply(&release.body),
                )
                .await
                .map_err(|source| release.call("patch").failed(source))?;
        }
        Ok::<_, Error>(())
    }));
    let mut doomed = Vec::new();
    for (resource, namespace) in prune_scopes(spec)? {
        let keep: Vec<&str> = owned
            .iter()
            .filter(|o| {
                o.resource.kind == resource.kind && o.namespace.as_deref() == Some(&namespace)
            })
            .map(|o| o.name.as_str())
            .collect();
        for live in observed
            .labelled
            .get(&(resource.kind.clone(), namespace.clone()))
            .into_iter()
            .flatten()
        {
            let name = live.metadata.name.clone().unwrap_or_default();
            if !keep.contains(&name.as_str()) {
                doomed.push((resource.clone(), namespace.clone(), name));
            }
        }
    }
    let pruned =
        futures_util::future::join_all(doomed.iter().map(|(resource, namespace, name)| {
            prune_object(client, resource, namespace, name, dry_run)
        }));
    let replaced = async {
        match &replacement {
            Some(from) if report.delivered.is_some() => {
                Some(remove_replaced_delivery(client, spec, from, dry_run).await)
            }
            _ => None,
        }
    };
    let (opt_ins, released, pruned, replaced) = tokio::join!(opt_ins, released, pruned, replaced);

    for ((_, probe), result) in readable.iter().zip(opt_ins) {
        match result {
            Ok((object, outcome)) => {
                if matches!(
                    outcome,
                    ApplyOutcome::Created | ApplyOutcome::Updated { .. }
                ) {
                    report.restarted.push(object.id());
                }
                report.record(&object, &outcome);
            }
            Err(error) => report.fail(probe.id(), error),
        }
    }
    for (release, result) in releases.iter().zip(released) {
        match result {
            Ok(()) => {
                tracing::info!(workload = %release.id(), before = "instrumented", after = "released", dry_run, "removed our instrumentation fields");
                report.released_workloads.push(release.id());
                report.restarted.push(release.id());
            }
            Err(error) => report.fail(release.id(), error),
        }
    }
    for ((resource, namespace, name), result) in doomed.iter().zip(pruned) {
        let id = format!("{}/{namespace}/{name}", resource.kind);
        match result {
            Ok(()) => {
                tracing::info!(object = %id, before = "present", after = "deleted", dry_run, "pruned object the spec no longer wants");
                report.pruned.push(id);
            }
            Err(error) => report.fail(id, error),
        }
    }
    match (replacement, replaced) {
        (Some(from), Some(Ok(true))) => report.pruned.push(from.object),
        (Some(from), Some(Err(error))) => report.fail(from.object, error),
        _ => {}
    }

    // Write phase 3: the DSN readers that are not instrumented workloads (SigNoz's
    // StatefulSet) roll onto the new DSN, once per version, once the Secret holds it.
    if let Some(reason) = &dsn_reason {
        let rolls = readers
            .iter()
            .filter(|r| !wanted_ids.contains(&workload_id(spec, r)))
            .map(|workload| {
                let live = observed.workloads.get(&workload_id(spec, workload));
                let reasons = [(RESTARTED_FOR_ANNOTATION, reason.clone())];
                async move {
                    let id = workload_id(spec, workload);
                    (
                        id,
                        restart_over(client, spec, workload, live, &reasons, false, dry_run).await,
                    )
                }
            });
        for (id, result) in futures_util::future::join_all(rolls).await {
            match result {
                Ok(true) => report.restarted.push(id),
                Ok(false) => {}
                Err(error) => report.fail(id, error),
            }
        }
    }
    Ok(report)
}

/// The opt-in fields of one workload plus the causes it rolls for, as pod-template
/// annotations we own: the fingerprint of the live Instrumentation and of its own
/// fields, and the DSN version when it reads the Secret. A cause that did not land this
/// time keeps the value the workload already carries, so nothing rolls for it.
fn optin_with_rollout_causes(
    spec: &PlatformSpec,
    workload: &crate::spec::InstrumentedWorkload,
    live: Option<&DynamicObject>,
    instrumentation: Option<&Value>,
    dsn_reason: Option<&String>,
) -> Result<DesiredObject, Error> {
    let container = live.and_then(|l| first_container(&l.data));
    let mut object = render_workload_optin(spec, workload, container)?;
    let carried = |key: &str| {
        live.and_then(|l| l.data.pointer("/spec/template/metadata/annotations"))
            .and_then(|a| a.get(key))
            .cloned()
    };
    let fingerprint = instrumentation
        .map(|i| {
            Value::String(format!(
                "instrumentation-{}",
                content_hash(&serde_json::json!([i, object.body]))
            ))
        })
        .or_else(|| carried(INSTRUMENTATION_RESTART_ANNOTATION));
    let dsn = dsn_reason
        .map(|r| Value::String(r.clone()))
        .or_else(|| carried(RESTARTED_FOR_ANNOTATION).filter(|_| dsn_reason.is_some()));
    let annotations = &mut object.body["spec"]["template"]["metadata"]["annotations"];
    if let Some(fingerprint) = fingerprint {
        annotations[INSTRUMENTATION_RESTART_ANNOTATION] = fingerprint;
    }
    if let Some(dsn) = dsn {
        annotations[RESTARTED_FOR_ANNOTATION] = dsn;
    }
    Ok(object)
}

/// Applies one delivery object: one someone else created only as far as adopting it
/// allows (returning what its owner must still fix), one of ours never with its
/// destination named twice.
async fn apply_delivery(
    client: &kube::Client,
    spec: &PlatformSpec,
    object: &DesiredObject,
    live: Option<DynamicObject>,
    dry_run: bool,
) -> Result<(ApplyOutcome, Vec<String>), Error> {
    let manager = &spec.cluster.field_manager;
    let json = live
        .as_ref()
        .map(|l| serde_json::to_value(l).unwrap_or_default());
    match (live, json) {
        (Some(live), Some(json)) if !created_by_us(&live) => {
            let adoption = adopt(object, &json)?;
            for warning in &adoption.warnings {
                tracing::warn!(object = %object.id(), warning = %warning, "adopted delivery object");
            }
            let Some(body) = adoption.body else {
                return Ok((ApplyOutcome::Unchanged, adoption.warnings));
            };
            let values_only = DesiredObject {
                body,
                owned: false,
                ..object.clone()
            };
            let outcome =
                apply_over_live(client, manager, &values_only, Some(live), dry_run).await?;
            Ok((outcome, adoption.warnings))
        }
        (live, json) => {
            if let Some(clash) = json.and_then(|j| destination_clash(object, &j)) {
                return Err(clash);
            }
            let outcome = apply_over_live(client, manager, object, live, dry_run).await?;
            Ok((outcome, Vec::new()))
        }
    }
}

/// Deletes the delivery object a replacement allowed (after the new one was applied);
/// `Ok(false)` when there is nothing else to delete (a rename in the same Application).
async fn remove_replaced_delivery(
    client: &kube::Client,
    spec: &PlatformSpec,
    from: &DeliveryRecord,
    dry_run: bool,
) -> Result<bool, Error> {
    let wanted = DeliveryRecord::wanted(spec);
    let Some((resource, namespace, name)) = super::delivery::delivery_object(&from.object) else {
        return Ok(false);
    };
    if from.object == wanted.object {
        return Ok(false);
    }
    prune_object(client, &resource, namespace, name, dry_run).await?;
    tracing::warn!(object = %from.object, before = "present", after = "deleted", dry_run, "deleted the delivery cluster.delivery.replaces names");
    Ok(true)
}

/// The report as the handler's JSON answer.
pub fn report_json(report: &SyncReport) -> Value {
    serde_json::to_value(report).unwrap_or(Value::Null)
}
