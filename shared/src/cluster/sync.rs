//! One reconcile of the cluster: apply what the spec renders, release and prune what it no
//! longer wants, restart what changed (once per change).

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde_json::Value;

use super::Error;
use super::apply::{
    ApplyOutcome, FieldChange, apply_object, apply_over_live, prune_objects, read_live,
};
use super::objects::{
    DesiredObject, argocd_application_resource, configmap_resource, content_hash,
    helm_release_resource, instrumentation_resource, scaled_object_resource, secret_resource,
    workload_resource,
};
use super::render::instrumentation::{
    INSTRUMENTED_LABEL, first_container, render_workload_optin, workload_fields,
};
use super::render::render_owned_objects;
use super::render::scaling::render_scaled_object_with;
use super::restart::{RESTARTED_FOR_ANNOTATION, RestartMode, restart_with};
use super::secret::{data_changed, render_database_secret};
use crate::alarms::overrides::ReplicaOverride;
use crate::spec::{PlatformSpec, WorkloadRef};

/// Pod-template annotation holding the instrumentation a workload last restarted for.
pub const INSTRUMENTATION_RESTART_ANNOTATION: &str = "signoz-control-plane/instrumentation-hash";
/// Kinds of workloads we may have opted in.
const WORKLOAD_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

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
/// Secret is then neither written nor pruned).
pub async fn sync_cluster(
    client: &kube::Client,
    spec: &PlatformSpec,
    dsn: Option<&DsnSource>,
    dry_run: bool,
) -> Result<SyncReport, Error> {
    sync_cluster_with(client, spec, None, dsn, dry_run).await
}

/// [`sync_cluster`] keeping an alarm policy's replica override in force (see `alarms`).
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

    let mut owned = render_owned_objects(spec)?;
    if replicas.is_some() {
        for object in owned
            .iter_mut()
            .filter(|o| o.resource.kind == "ScaledObject")
        {
            *object = render_scaled_object_with(spec, replicas);
        }
    }
    if let Some(source) = dsn {
        owned.push(render_database_secret(spec, &source.dsn));
    }
    ensure_namespaces(client, &owned, &mut report).await?;
    let mut dsn_changed = false;
    for object in &owned {
        let outcome = apply_object(client, manager, object, dry_run).await?;
        if object.resource.kind == "Secret" {
            dsn_changed = data_changed(&outcome);
        }
        report.record(object, &outcome);
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
        let live = read_live(client, &probe).await?;
        let container = live
            .as_ref()
            .and_then(|l| first_container(&l.data))
            .map(str::to_string);
        let object = render_workload_optin(spec, workload, container.as_deref())?;
        let outcome = apply_over_live(client, manager, &object, live, dry_run).await?;
        report.record(&object, &outcome);
        wanted.push((
            object.resource.kind.clone(),
            object.namespace.clone(),
            object.name.clone(),
        ));
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
    for kind in WORKLOAD_KINDS {
        let Some(resource) = workload_resource(kind) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let labelled = api
            .list(&ListParams::default().labels(&format!("{INSTRUMENTED_LABEL}={platform}")))
            .await
            .map_err(|source| Error::kube(format!("listing {kind}s"), source))?;
        for live in labelled.items {
            let name = live.metadata.name.clone().unwrap_or_default();
            let namespace = live.metadata.namespace.clone().unwrap_or_default();
            if wanted
                .iter()
                .any(|(k, ns, n)| k == kind && ns.as_deref() == Some(&namespace) && *n == name)
            {
                continue;
            }
            let release = workload_fields(spec, kind, &namespace, &name, None)?;
            if !dry_run {
                let api = super::apply::api_for(client, &resource, Some(&namespace));
                api.patch(
                    &name,
                    &PatchParams::apply(manager),
                    &Patch::Apply(&release.body),
                )
                .await
                .map_err(|source| Error::kube(format!("releasing {}", release.id()), source))?;
            }
            tracing::info!(workload = %release.id(), before = "instrumented", after = "released", dry_run, "removed our instrumentation fields");
            report.released_workloads.push(release.id());
            restart_plan.push((workload_ref(&release), "instrumentation-removed".into()));
        }
    }

    // Prune our objects the spec no longer wants, per kind we create.
    let mut kinds = vec![
        configmap_resource(),
        scaled_object_resource(),
        instrumentation_resource(),
        argocd_application_resource(),
        helm_release_resource(),
    ];
    if dsn.is_some() {
        kinds.push(secret_resource());
    }
    for resource in &kinds {
        let keep: Vec<(Option<String>, String)> = owned
            .iter()
            .filter(|o| o.resource.kind == resource.kind)
            .map(|o| (o.namespace.clone(), o.name.clone()))
            .collect();
        report
            .pruned
            .extend(prune_objects(client, platform, resource, &keep, dry_run).await?);
    }

    for (workload, reason) in restart_plan {
        let restarted = restart_with(
            client,
            spec,
            std::slice::from_ref(&workload),
            &reason,
            RestartMode::OncePer(INSTRUMENTATION_RESTART_ANNOTATION),
            dry_run,
        )
        .await?;
        report.restarted.extend(restarted);
    }
    if let Some(source) = dsn {
        let reason = format!("credentials-version-{}", source.version_id);
        let mode = RestartMode::OncePer(RESTARTED_FOR_ANNOTATION);
        let restarted =
            restart_with(client, spec, &spec.database.restart, &reason, mode, dry_run).await?;
        if dsn_changed || !restarted.is_empty() {
            tracing::info!(dsn_changed, restarted = ?restarted, "database secret hand-off");
        }
        report.restarted.extend(restarted);
    }
    Ok(report)
}

/// Creates the namespaces our objects go into when missing (a fresh cluster, where ArgoCD
/// has not synced yet). Namespaces are never labelled ours, so never pruned.
async fn ensure_namespaces(
    client: &kube::Client,
    owned: &[DesiredObject],
    report: &mut SyncReport,
) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut namespaces: Vec<&str> = owned
        .iter()
        .filter_map(|o| o.namespace.as_deref())
        .collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    for name in namespaces {
        let found = api
            .get_opt(name)
            .await
            .map_err(|source| Error::kube(format!("reading Namespace/{name}"), source))?;
        if found.is_some() {
            continue;
        }
        if !report.dry_run {
            let body: Namespace =
                serde_json::from_value(serde_json::json!({ "metadata": { "name": name } }))
                    .expect("a namespace body");
            match api.create(&PostParams::default(), &body).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.is_already_exists() => {}
                Err(source) => {
                    return Err(Error::kube(format!("creating Namespace/{name}"), source));
                }
            }
        }
        tracing::info!(
            namespace = name,
            before = "absent",
            after = "created",
            dry_run = report.dry_run,
            "created namespace"
        );
        report.created.push(format!("Namespace//{name}"));
    }
    Ok(())
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
