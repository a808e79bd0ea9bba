//! Rollout restarts of workloads, like `kubectl rollout restart`: a pod-template annotation.

use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::apply::api_for;
use super::objects::workload_resource;
use super::render::workload_namespace;
use super::{Call, Error};
use crate::spec::{PlatformSpec, WorkloadRef};

/// The annotation `kubectl rollout restart` sets; the controller rolls pods when it changes.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
/// Why we restarted (a change fingerprint or a human reason), so a restart happens once per change.
pub const RESTARTED_FOR_ANNOTATION: &str = "signoz-control-plane/restarted-for";

/// Restarts workloads like `kubectl rollout restart` (pod-template annotation), recording why; returns "Kind/ns/name" of each restarted.
pub async fn restart_workloads(
    client: &kube::Client,
    spec: &PlatformSpec,
    workloads: &[WorkloadRef],
    reason: &str,
) -> Result<Vec<String>, Error> {
    restart_workloads_once(client, spec, workloads, reason, false).await
}

/// Restarts each workload whose pod template does not already record `reason`; a
/// workload that does not exist is skipped (no pods to restart). With `only_if_new`
/// false every workload restarts.
pub async fn restart_workloads_once(
    client: &kube::Client,
    spec: &PlatformSpec,
    workloads: &[WorkloadRef],
    reason: &str,
    only_if_new: bool,
) -> Result<Vec<String>, Error> {
    let mode = if only_if_new {
        RestartMode::OncePer(RESTARTED_FOR_ANNOTATION)
    } else {
        RestartMode::Always
    };
    restart_with(client, spec, workloads, reason, mode, false).await
}

/// `Kind/namespace/name` of a workload the spec names (namespace defaulting to the cluster's).
pub fn workload_id(spec: &PlatformSpec, workload: &WorkloadRef) -> String {
    let namespace = workload_namespace(spec, &workload.namespace);
    format!("{}/{namespace}/{}", workload.kind, workload.name)
}

/// When a restart happens.
#[derive(Debug, Clone, Copy)]
pub enum RestartMode {
    /// Every time.
    Always,
    /// Only when this pod-template annotation does not already hold the reason; each
    /// cause of restarts has its own annotation so causes never undo each other.
    OncePer(&'static str),
}

/// Restarts workloads per `mode`, recording `reason`; a dry run only reports.
pub async fn restart_with(
    client: &kube::Client,
    spec: &PlatformSpec,
    workloads: &[WorkloadRef],
    reason: &str,
    mode: RestartMode,
    dry_run: bool,
) -> Result<Vec<String>, Error> {
    let (key, always) = match mode {
        RestartMode::Always => (RESTARTED_FOR_ANNOTATION, true),
        RestartMode::OncePer(key) => (key, false),
    };
    let reasons = [(key, reason.to_string())];
    // Workloads do not wait for each other.
    let done = futures_util::future::try_join_all(
        workloads
            .iter()
            .map(|workload| restart_for(client, spec, workload, &reasons, always, dry_run)),
    )
    .await?;
    Ok(restarted_ids(spec, workloads, &done))
}

fn restarted_ids(spec: &PlatformSpec, workloads: &[WorkloadRef], done: &[bool]) -> Vec<String> {
    workloads
        .iter()
        .zip(done)
        .filter(|(_, restarted)| **restarted)
        .map(|(workload, _)| workload_id(spec, workload))
        .collect()
}

/// Reads the workloads at once (`None`: it does not exist), for [`restart_once_over`].
pub async fn read_workloads(
    client: &kube::Client,
    spec: &PlatformSpec,
    workloads: &[WorkloadRef],
) -> Result<Vec<Option<kube::api::DynamicObject>>, Error> {
    futures_util::future::try_join_all(
        workloads
            .iter()
            .map(|workload| read_workload(client, spec, workload)),
    )
    .await
}

/// [`restart_workloads_once`] over what [`read_workloads`] read; the patches go out at
/// once.
pub async fn restart_once_over(
    client: &kube::Client,
    spec: &PlatformSpec,
    workloads: &[WorkloadRef],
    live: &[Option<kube::api::DynamicObject>],
    reason: &str,
) -> Result<Vec<String>, Error> {
    let reasons = [(RESTARTED_FOR_ANNOTATION, reason.to_string())];
    let done =
        futures_util::future::try_join_all(workloads.iter().zip(live).map(|(workload, live)| {
            restart_over(
                client,
                spec,
                workload,
                live.as_ref(),
                &reasons,
                false,
                false,
            )
        }))
        .await?;
    Ok(restarted_ids(spec, workloads, &done))
}

/// One workload by name (`None`: it does not exist).
pub(super) async fn read_workload(
    client: &kube::Client,
    spec: &PlatformSpec,
    workload: &WorkloadRef,
) -> Result<Option<kube::api::DynamicObject>, Error> {
    let resource = workload_resource(&workload.kind).ok_or_else(|| Error::UnsupportedWorkload {
        kind: workload.kind.clone(),
        name: workload.name.clone(),
    })?;
    let namespace = workload_namespace(spec, &workload.namespace);
    api_for(client, &resource, Some(namespace))
        .get_opt(&workload.name)
        .await
        .map_err(|source| {
            Call {
                verb: "get",
                resource: &resource,
                namespace: Some(namespace),
                name: Some(&workload.name),
            }
            .failed(source)
        })
}

/// Restarts one workload once for every cause in `reasons` (annotation, reason) it does not
/// already record, in a single patch: two causes in one reconcile roll the pods once. A
/// workload that does not exist is skipped (no pods to restart). Returns whether it restarted.
pub async fn restart_for(
    client: &kube::Client,
    spec: &PlatformSpec,
    workload: &WorkloadRef,
    reasons: &[(&'static str, String)],
    always: bool,
    dry_run: bool,
) -> Result<bool, Error> {
    let live = read_workload(client, spec, workload).await?;
    restart_over(
        client,
        spec,
        workload,
        live.as_ref(),
        reasons,
        always,
        dry_run,
    )
    .await
}

/// [`restart_for`] when the workload was already read (`None`: it does not exist).
pub async fn restart_over(
    client: &kube::Client,
    spec: &PlatformSpec,
    workload: &WorkloadRef,
    live: Option<&kube::api::DynamicObject>,
    reasons: &[(&'static str, String)],
    always: bool,
    dry_run: bool,
) -> Result<bool, Error> {
    let resource = workload_resource(&workload.kind).ok_or_else(|| Error::UnsupportedWorkload {
        kind: workload.kind.clone(),
        name: workload.name.clone(),
    })?;
    let namespace = workload_namespace(spec, &workload.namespace);
    let id = workload_id(spec, workload);
    let api = api_for(client, &resource, Some(namespace));
    let call = |verb| Call {
        verb,
        resource: &resource,
        namespace: Some(namespace),
        name: Some(&workload.name),
    };
    let Some(live) = live else {
        tracing::warn!(workload = %id, "workload to restart does not exist; skipped");
        return Ok(false);
    };
    let recorded = live.data.pointer("/spec/template/metadata/annotations");
    let due: Vec<&(&str, String)> = reasons
        .iter()
        .filter(|(key, reason)| {
            always || recorded.and_then(|a| a.get(*key)).and_then(|v| v.as_str()) != Some(reason)
        })
        .collect();
    if due.is_empty() {
        return Ok(false);
    }
    if dry_run {
        return Ok(true);
    }
    let now = jiff::Timestamp::now().to_string();
    let mut annotations = serde_json::Map::new();
    annotations.insert(RESTARTED_AT_ANNOTATION.into(), json!(now));
    for (key, reason) in &due {
        annotations.insert((*key).into(), json!(reason));
    }
    // A merge patch (not apply) like kubectl: the restart annotations must not become
    // part of our applied configuration, or the next apply would remove them.
    let patch = json!({ "spec": { "template": { "metadata": { "annotations": annotations } } } });
    api.patch(
        &workload.name,
        &PatchParams {
            field_manager: Some(spec.cluster.field_manager.clone()),
            ..Default::default()
        }
        .validation_strict(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|source| call("patch").failed(source))?;
    for (key, reason) in due {
        let before = recorded.and_then(|a| a.get(*key)).and_then(|v| v.as_str());
        tracing::info!(workload = %id, cause = %key, before = before.unwrap_or("(none)"), after = %reason, restarted_at = %now, "restarted workload");
    }
    Ok(true)
}
