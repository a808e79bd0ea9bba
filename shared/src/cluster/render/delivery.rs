//! How the Helm values reach the release: an ArgoCD Application's `valuesObject`, or a
//! Flux HelmRelease fed by a values ConfigMap.

use serde_json::{Value, json};

use super::values::{collector_deployment, render_helm_values};
use crate::cluster::objects::{
    DesiredObject, argocd_application_resource, configmap_resource, helm_release_resource,
    owner_labels,
};
use crate::spec::{DeliveryMethod, PlatformSpec};

/// SigNoz's chart name in its Helm repository.
const CHART: &str = "signoz";
/// Key of the values document in the Flux values ConfigMap.
pub const VALUES_KEY: &str = "values.yaml";

/// The delivery objects for the spec's method (validation guarantees its section exists).
pub fn render_delivery(spec: &PlatformSpec) -> Vec<DesiredObject> {
    let values = render_helm_values(spec);
    match spec.cluster.delivery.method {
        DeliveryMethod::Argocd => spec
            .cluster
            .delivery
            .argocd
            .as_ref()
            .map(|argo| vec![argocd_application(spec, argo, values)])
            .unwrap_or_default(),
        DeliveryMethod::Flux => spec
            .cluster
            .delivery
            .flux
            .as_ref()
            .map(|flux| flux_release(spec, flux, &values))
            .unwrap_or_default(),
    }
}

fn argocd_application(
    spec: &PlatformSpec,
    argo: &crate::spec::ArgoCdDelivery,
    values: Value,
) -> DesiredObject {
    let delivery = &spec.cluster.delivery;
    DesiredObject {
        resource: argocd_application_resource(),
        namespace: Some(argo.namespace.clone()),
        name: argo.application.clone(),
        body: json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {
                "name": argo.application,
                "namespace": argo.namespace,
                "labels": owner_labels(&spec.platform.name),
            },
            "spec": {
                "project": argo.project,
                "source": {
                    "repoURL": argo.repo_url,
                    "chart": CHART,
                    "targetRevision": delivery.chart_version,
                    "helm": { "releaseName": delivery.release, "valuesObject": values },
                },
                "destination": { "server": argo.destination_server, "namespace": spec.cluster.namespace },
                // KEDA owns the collector's replica count; ArgoCD must not reset it.
                "ignoreDifferences": [{
                    "group": "apps",
                    "kind": "Deployment",
                    "name": collector_deployment(spec),
                    "namespace": spec.cluster.namespace,
                    "jsonPointers": ["/spec/replicas"],
                }],
            },
        }),
        owned: true,
    }
}

fn flux_release(
    spec: &PlatformSpec,
    flux: &crate::spec::FluxDelivery,
    values: &Value,
) -> Vec<DesiredObject> {
    let delivery = &spec.cluster.delivery;
    let labels = owner_labels(&spec.platform.name);
    let mut cm_labels = labels.clone();
    // Flux reconciles a HelmRelease at once when a labelled values source changes.
    cm_labels["reconcile.fluxcd.io/watch"] = json!("Enabled");
    let values_yaml = serde_norway::to_string(values).unwrap_or_default();
    let configmap = DesiredObject {
        resource: configmap_resource(),
        namespace: Some(flux.namespace.clone()),
        name: flux.values_configmap.clone(),
        body: json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": flux.values_configmap, "namespace": flux.namespace, "labels": cm_labels },
            "data": { VALUES_KEY: values_yaml },
        }),
        owned: true,
    };
    let release = DesiredObject {
        resource: helm_release_resource(),
        namespace: Some(flux.namespace.clone()),
        name: delivery.release.clone(),
        body: json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": { "name": delivery.release, "namespace": flux.namespace, "labels": labels },
            "spec": {
                "interval": "10m",
                "releaseName": delivery.release,
                "targetNamespace": spec.cluster.namespace,
                "chart": { "spec": {
                    "chart": CHART,
                    "version": delivery.chart_version,
                    "sourceRef": { "kind": flux.source_kind, "name": flux.source_name, "namespace": flux.namespace },
                }},
                "valuesFrom": [{ "kind": "ConfigMap", "name": flux.values_configmap, "valuesKey": VALUES_KEY }],
            },
        }),
        owned: true,
    };
    vec![configmap, release]
}
