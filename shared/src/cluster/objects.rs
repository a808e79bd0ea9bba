//! The objects we own: identity, ownership labels and the desired body we apply.

use kube::api::ApiResource;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Label marking every object we create (so prune never touches anything else).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "signoz-control-plane";
/// Label naming the platform an object belongs to.
pub const PLATFORM_LABEL: &str = "signoz-control-plane/platform";
/// Annotation with the hash of what we last applied.
pub const APPLIED_HASH_ANNOTATION: &str = "signoz-control-plane/applied-hash";

/// Label selector matching every object we own for one platform.
pub fn owner_selector(platform: &str) -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY},{PLATFORM_LABEL}={platform}")
}

/// Ownership labels of one platform's objects.
pub fn owner_labels(platform: &str) -> Value {
    json!({ MANAGED_BY_LABEL: MANAGED_BY, PLATFORM_LABEL: platform })
}

/// One object as we want it on the server.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObject {
    pub resource: ApiResource,
    pub namespace: Option<String>,
    pub name: String,
    /// Full apply body (apiVersion, kind, metadata, ...).
    pub body: Value,
    /// Whether we created the object (labelled, pruned when unwanted) or only own fields of it.
    pub owned: bool,
}

impl DesiredObject {
    /// `Kind/namespace/name`.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.resource.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name
        )
    }

    /// A call on this object, to name it when it fails.
    pub fn call(&self, verb: &'static str) -> super::Call<'_> {
        super::Call {
            verb,
            resource: &self.resource,
            namespace: self.namespace.as_deref(),
            name: Some(&self.name),
        }
    }

    /// The body with the hash of itself in an annotation, so a later reconcile that finds
    /// the same hash and fields on the server can skip the write.
    pub fn body_with_hash(&self) -> Value {
        let mut body = self.body.clone();
        // Objects we only own fields of carry no annotation of ours beyond those fields.
        if !self.owned {
            return body;
        }
        // A `resourceVersion` precondition (the DSN Secret's guard) is not content.
        let mut content = self.body.clone();
        if let Some(metadata) = content.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("resourceVersion");
        }
        let hash = content_hash(&content);
        if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
            if let Some(map) = annotations.as_object_mut() {
                map.insert(APPLIED_HASH_ANNOTATION.into(), Value::String(hash));
            }
        }
        body
    }
}

/// Short, stable hash of a JSON value (key order is canonical in serde_json's map).
pub fn content_hash(value: &Value) -> String {
    let digest = Sha256::digest(value.to_string().as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `ApiResource` of a kind by group, version, kind and plural.
pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version,
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Core `v1/Secret`.
pub fn secret_resource() -> ApiResource {
    resource("", "v1", "Secret", "secrets")
}

/// Core `v1/ConfigMap`.
pub fn configmap_resource() -> ApiResource {
    resource("", "v1", "ConfigMap", "configmaps")
}

/// `keda.sh/v1alpha1 ScaledObject`.
pub fn scaled_object_resource() -> ApiResource {
    resource("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects")
}

/// `opentelemetry.io/v1alpha1 Instrumentation`.
pub fn instrumentation_resource() -> ApiResource {
    resource(
        "opentelemetry.io",
        "v1alpha1",
        "Instrumentation",
        "instrumentations",
    )
}

/// `argoproj.io/v1alpha1 Application`.
pub fn argocd_application_resource() -> ApiResource {
    resource("argoproj.io", "v1alpha1", "Application", "applications")
}

/// `helm.toolkit.fluxcd.io/v2 HelmRelease`.
pub fn helm_release_resource() -> ApiResource {
    resource(
        "helm.toolkit.fluxcd.io",
        "v2",
        "HelmRelease",
        "helmreleases",
    )
}

/// The `apps/v1` resource of a workload kind, or `None` for kinds we cannot restart.
pub fn workload_resource(kind: &str) -> Option<ApiResource> {
    match kind {
        "Deployment" => Some(resource("apps", "v1", "Deployment", "deployments")),
        "StatefulSet" => Some(resource("apps", "v1", "StatefulSet", "statefulsets")),
        "DaemonSet" => Some(resource("apps", "v1", "DaemonSet", "daemonsets")),
        _ => None,
    }
}
