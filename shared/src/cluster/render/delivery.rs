//! How Helm releases reach the cluster: an ArgoCD Application's `valuesObject`, or a Flux
//! HelmRelease fed by a values ConfigMap. SigNoz's release, and the OpenTelemetry
//! Operator's when the spec asks for it, go the same way.
//!
//! What the controllers do with these objects, and why they look like this:
//! - ArgoCD never deploys an Application without `syncPolicy.automated` until someone
//!   presses sync; a bounded `retry` re-tries a failed sync (argo-cd
//!   `docs/user-guide/auto_sync.md`, `docs/user-guide/sync-options.md`).
//! - `ignoreDifferences` alone only hides the collector's replicas from the diff; a sync
//!   still writes `replicas: replicaCount` (the chart renders it while
//!   `otelCollector.autoscaling.enabled` is false) unless `RespectIgnoreDifferences=true`
//!   is among the sync options ("Respect Ignore Difference Configs", sync-options.md).
//! - Flux's helm-controller upgrades with the rendered manifest: a kustomize post-renderer
//!   removing `/spec/replicas` from the collector Deployment leaves the count KEDA set
//!   (helm-controller `docs/api/v2/helm.md`, `PostRenderer`); from the first release on,
//!   Helm's three-way merge never sees the field.

use serde_json::{Value, json};

use super::values::render_helm_values;
use crate::cluster::objects::{
    DesiredObject, argocd_application_resource, configmap_resource, helm_release_resource,
    owner_labels,
};
use crate::spec::chart::{CHART, collector_deployment};
use crate::spec::{ARGOCD_IN_CLUSTER, ArgoSync, DeliveryMethod, OperatorDelivery, PlatformSpec};

/// Key of the values document in the Flux values ConfigMap.
pub const VALUES_KEY: &str = "values.yaml";
/// The OpenTelemetry Operator's chart in its Helm repository.
pub const OPERATOR_CHART: &str = "opentelemetry-operator";
/// Sync options of every Application we create.
pub const SYNC_OPTIONS: [&str; 3] = [
    "CreateNamespace=true",
    // Keeps the collector replicas KEDA set (see the module doc).
    "RespectIgnoreDifferences=true",
    // The charts ship CRDs too large for client-side apply's annotation.
    "ServerSideApply=true",
];
/// A failed sync is retried this many times, backing off from 30 s to 10 min.
pub const SYNC_RETRY_LIMIT: u32 = 5;

/// One Helm release delivered through GitOps.
struct ChartRelease {
    /// The Application's or the HelmRelease's name.
    name: String,
    chart: &'static str,
    version: String,
    release: String,
    target_namespace: String,
    /// ArgoCD: the chart's Helm repository.
    repo_url: String,
    /// Flux: the chart's source and the ConfigMap holding the values.
    source_kind: String,
    source_name: String,
    values_configmap: String,
    values: Value,
    /// A Deployment whose replicas an autoscaler owns: delivery never resets them.
    scaled_deployment: Option<String>,
}

/// Every delivery object for the spec's method: SigNoz's first, then the operator's.
pub fn render_delivery(spec: &PlatformSpec) -> Vec<DesiredObject> {
    let mut releases = vec![signoz_release(spec)];
    if let Some(operator) = &spec.instrumentation.operator {
        releases.push(operator_release(operator));
    }
    releases
        .into_iter()
        .flat_map(|r| match spec.cluster.delivery.method {
            DeliveryMethod::Argocd => vec![argocd_application(spec, r)],
            DeliveryMethod::Flux => flux_release(spec, r),
        })
        .collect()
}

/// The SigNoz release's delivery object (the one a rename or a switch of method replaces).
pub fn signoz_delivery(spec: &PlatformSpec) -> DesiredObject {
    render_delivery(spec)
        .into_iter()
        .find(|o| matches!(o.resource.kind.as_str(), "Application" | "HelmRelease"))
        .expect("the SigNoz release is always delivered")
}

fn signoz_release(spec: &PlatformSpec) -> ChartRelease {
    let d = &spec.cluster.delivery;
    let (name, repo_url) = match &d.argocd {
        Some(a) if d.method == DeliveryMethod::Argocd => {
            (a.application.clone(), a.repo_url.clone())
        }
        _ => (d.release.clone(), String::new()),
    };
    let (source_kind, source_name, values_configmap) = match &d.flux {
        Some(f) => (
            f.source_kind.clone(),
            f.source_name.clone(),
            f.values_configmap.clone(),
        ),
        None => Default::default(),
    };
    ChartRelease {
        name,
        chart: CHART,
        version: d.chart_version.clone(),
        release: d.release.clone(),
        target_namespace: spec.cluster.namespace.clone(),
        repo_url,
        source_kind,
        source_name,
        values_configmap,
        values: render_helm_values(spec),
        scaled_deployment: Some(collector_deployment(spec)),
    }
}

fn operator_release(o: &OperatorDelivery) -> ChartRelease {
    ChartRelease {
        name: o.release.clone(),
        chart: OPERATOR_CHART,
        version: o.chart_version.clone(),
        release: o.release.clone(),
        target_namespace: o.namespace.clone(),
        repo_url: o.repo_url.clone(),
        source_kind: "HelmRepository".into(),
        source_name: o.source_name.clone().unwrap_or_default(),
        values_configmap: format!("{}-values", o.release),
        values: super::values::render_operator_values(o),
        scaled_deployment: None,
    }
}

fn argocd_application(spec: &PlatformSpec, r: ChartRelease) -> DesiredObject {
    let argo = spec
        .cluster
        .delivery
        .argocd
        .as_ref()
        .expect("validated: argocd delivery has its section");
    let mut destination = match (&argo.destination_name, &argo.destination_server) {
        (Some(name), _) => json!({ "name": name }),
        (None, server) => json!({ "server": server.as_deref().unwrap_or(ARGOCD_IN_CLUSTER) }),
    };
    destination["namespace"] = json!(r.target_namespace);
    let mut sync_policy = json!({
        "syncOptions": SYNC_OPTIONS,
        "retry": {
            "limit": SYNC_RETRY_LIMIT,
            "backoff": { "duration": "30s", "factor": 2, "maxDuration": "10m" },
        },
    });
    if argo.sync == ArgoSync::Automated {
        sync_policy["automated"] = json!({ "prune": true, "selfHeal": true });
    }
    let mut body = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": r.name,
            "namespace": argo.namespace,
            "labels": owner_labels(&spec.platform.name),
        },
        "spec": {
            "project": argo.project,
            "source": {
                "repoURL": r.repo_url,
                "chart": r.chart,
                "targetRevision": r.version,
                "helm": { "releaseName": r.release, "valuesObject": r.values },
            },
            "destination": destination,
            "syncPolicy": sync_policy,
        },
    });
    if let Some(deployment) = &r.scaled_deployment {
        body["spec"]["ignoreDifferences"] = json!([{
            "group": "apps",
            "kind": "Deployment",
            "name": deployment,
            "namespace": r.target_namespace,
            "jsonPointers": ["/spec/replicas"],
        }]);
    }
    DesiredObject {
        resource: argocd_application_resource(),
        namespace: Some(argo.namespace.clone()),
        name: r.name,
        body,
        owned: true,
    }
}

fn flux_release(spec: &PlatformSpec, r: ChartRelease) -> Vec<DesiredObject> {
    let flux = spec
        .cluster
        .delivery
        .flux
        .as_ref()
        .expect("validated: flux delivery has its section");
    let labels = owner_labels(&spec.platform.name);
    let mut cm_labels = labels.clone();
    // Flux reconciles a HelmRelease at once when a labelled values source changes.
    cm_labels["reconcile.fluxcd.io/watch"] = json!("Enabled");
    let values_yaml = serde_norway::to_string(&r.values).unwrap_or_default();
    let configmap = DesiredObject {
        resource: configmap_resource(),
        namespace: Some(flux.namespace.clone()),
        name: r.values_configmap.clone(),
        body: json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": r.values_configmap, "namespace": flux.namespace, "labels": cm_labels },
            "data": { VALUES_KEY: values_yaml },
        }),
        owned: true,
    };
    let mut body = json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": { "name": r.name, "namespace": flux.namespace, "labels": labels },
        "spec": {
            "interval": "10m",
            "releaseName": r.release,
            "targetNamespace": r.target_namespace,
            "install": { "createNamespace": true },
            "chart": { "spec": {
                "chart": r.chart,
                "version": r.version,
                "sourceRef": { "kind": r.source_kind, "name": r.source_name, "namespace": flux.namespace },
            }},
            "valuesFrom": [{ "kind": "ConfigMap", "name": r.values_configmap, "valuesKey": VALUES_KEY }],
        },
    });
    if let Some(deployment) = &r.scaled_deployment {
        body["spec"]["postRenderers"] = json!([{ "kustomize": { "patches": [
            replicas_removal(deployment),
        ]}}]);
    }
    let release = DesiredObject {
        resource: helm_release_resource(),
        namespace: Some(flux.namespace.clone()),
        name: r.name,
        body,
        owned: true,
    };
    vec![configmap, release]
}

/// The kustomize patch (JSON 6902) that takes `/spec/replicas` out of a Deployment.
pub fn replicas_removal(deployment: &str) -> Value {
    json!({
        "target": { "group": "apps", "version": "v1", "kind": "Deployment", "name": deployment },
        "patch": "- op: remove\n  path: /spec/replicas\n",
    })
}
