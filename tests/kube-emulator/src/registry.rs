//! The kinds the emulator serves, and the discovery documents built from them.
//!
//! Built-in kinds carry a little structural knowledge (associative lists, atomic maps) in
//! [`crate::schema`]; custom kinds are treated like CRDs with a structural schema whose
//! lists are all atomic, which is what the real CRDs of these operators declare.

use crate::schema::Schema;
use serde_json::{Value, json};

/// Whether objects of a kind live in a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Objects live in a namespace.
    Namespaced,
    /// Objects are cluster-wide.
    Cluster,
}

/// One served kind.
#[derive(Clone, Debug)]
pub struct Kind {
    /// API group ("" for core).
    pub group: &'static str,
    /// Served version.
    pub version: &'static str,
    /// Kind name, e.g. `ConfigMap`.
    pub kind: &'static str,
    /// Resource (plural) name used in URLs.
    pub plural: &'static str,
    /// Singular resource name.
    pub singular: &'static str,
    /// Namespaced or cluster-scoped.
    pub scope: Scope,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Discovery categories (`all`).
    pub categories: &'static [&'static str],
    /// Built into the API server rather than defined by a CRD.
    pub builtin: bool,
    /// Has a `/status` subresource, so writes to the main resource ignore `status`.
    pub status_subresource: bool,
    /// Maintains `metadata.generation` (workloads and custom resources do, ConfigMaps do not).
    pub generation: bool,
}

impl Kind {
    const fn core(
        kind: &'static str,
        plural: &'static str,
        singular: &'static str,
        scope: Scope,
        short_names: &'static [&'static str],
        categories: &'static [&'static str],
        status_subresource: bool,
    ) -> Kind {
        Kind {
            group: "",
            version: "v1",
            kind,
            plural,
            singular,
            scope,
            short_names,
            categories,
            builtin: true,
            status_subresource,
            generation: false,
        }
    }

    const fn apps(
        kind: &'static str,
        plural: &'static str,
        singular: &'static str,
        short_names: &'static [&'static str],
    ) -> Kind {
        Kind {
            group: "apps",
            version: "v1",
            kind,
            plural,
            singular,
            scope: Scope::Namespaced,
            short_names,
            categories: &["all"],
            builtin: true,
            status_subresource: true,
            generation: true,
        }
    }

    /// A custom resource kind, as a CRD would register it.
    // One positional row per kind keeps the table one line per kind.
    #[allow(clippy::too_many_arguments)]
    pub const fn custom(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
        singular: &'static str,
        scope: Scope,
        short_names: &'static [&'static str],
        status_subresource: bool,
    ) -> Kind {
        Kind {
            group,
            version,
            kind,
            plural,
            singular,
            scope,
            short_names,
            categories: &[],
            builtin: false,
            status_subresource,
            generation: true,
        }
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource as the API server names it in messages: `configmaps`, `deployments.apps`.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether the kind serves `/scale` (workloads with `spec.replicas`).
    pub fn scale_subresource(&self) -> bool {
        self.builtin && matches!(self.kind, "Deployment" | "StatefulSet")
    }

    /// Whether objects live in namespaces.
    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }
}

use Scope::{Cluster, Namespaced};

/// Built-in kinds.
#[rustfmt::skip]
const BUILTIN_KINDS: &[Kind] = &[
    Kind::core("Namespace", "namespaces", "namespace", Cluster, &["ns"], &[], true),
    Kind::core("ConfigMap", "configmaps", "configmap", Namespaced, &["cm"], &[], false),
    Kind::core("Secret", "secrets", "secret", Namespaced, &[], &[], false),
    Kind::core("Service", "services", "service", Namespaced, &["svc"], &["all"], true),
    Kind::core("ServiceAccount", "serviceaccounts", "serviceaccount", Namespaced, &["sa"], &[], false),
    Kind::core("Pod", "pods", "pod", Namespaced, &["po"], &["all"], true),
    Kind::apps("Deployment", "deployments", "deployment", &["deploy"]),
    Kind::apps("StatefulSet", "statefulsets", "statefulset", &["sts"]),
    Kind::apps("DaemonSet", "daemonsets", "daemonset", &["ds"]),
];

/// Custom kinds the platform uses; adding one is one line.
#[rustfmt::skip]
pub const CUSTOM_KINDS: &[Kind] = &[
    Kind::custom("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects", "scaledobject", Namespaced, &["so"], true),
    Kind::custom("opentelemetry.io", "v1alpha1", "Instrumentation", "instrumentations", "instrumentation", Namespaced, &["otelinst", "otelinsts"], true),
    // Argo CD's Application CRD has no status subresource: the controller writes status in place.
    Kind::custom("argoproj.io", "v1alpha1", "Application", "applications", "application", Namespaced, &["app", "apps"], false),
    Kind::custom("helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases", "helmrelease", Namespaced, &["hr"], true),
];

/// The verbs every served resource supports.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A served kind together with its structural hints.
#[derive(Debug)]
pub struct Entry {
    /// The kind.
    pub kind: Kind,
    /// Structural hints for merging and field ownership.
    pub schema: Schema,
}

/// All served kinds.
#[derive(Debug)]
pub struct Registry {
    entries: Vec<Entry>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// The built-in kinds plus [`CUSTOM_KINDS`].
    pub fn new() -> Registry {
        let entries = BUILTIN_KINDS
            .iter()
            .chain(CUSTOM_KINDS)
            .map(|k| Entry {
                schema: Schema::for_kind(k),
                kind: k.clone(),
            })
            .collect();
        Registry { entries }
    }

    /// Looks a resource up by group, version and plural.
    pub fn by_resource(&self, group: &str, version: &str, plural: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.kind.group == group && e.kind.version == version && e.kind.plural == plural)
    }

    /// Looks a kind up by group and kind name.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.kind.group == group && e.kind.kind == kind)
    }

    /// All entries.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Whether any kind is served under `group/version`.
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.kind.group == group && e.kind.version == version)
    }

    /// Non-core groups in registration order, each with its one version.
    fn groups(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&'static str, &'static str)> = Vec::new();
        for e in &self.entries {
            let gv = (e.kind.group, e.kind.version);
            if !e.kind.group.is_empty() && !out.contains(&gv) {
                out.push(gv);
            }
        }
        out
    }

    /// `GET /api` in the legacy format.
    pub fn api_versions(&self, server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        })
    }

    /// `GET /apis` in the legacy format.
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .into_iter()
            .map(|(g, v)| group_doc(g, v))
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `GET /apis/{group}`, if the group is served.
    pub fn api_group(&self, group: &str) -> Option<Value> {
        self.groups()
            .into_iter()
            .find(|(g, _)| *g == group)
            .map(|(g, v)| {
                let mut doc = group_doc(g, v);
                doc["kind"] = json!("APIGroup");
                doc["apiVersion"] = json!("v1");
                doc
            })
    }

    /// `GET /api/v1` or `GET /apis/{group}/{version}`, if served.
    pub fn api_resource_list(&self, group: &str, version: &str) -> Option<Value> {
        if !self.serves(group, version) {
            return None;
        }
        let mut resources = Vec::new();
        for e in self
            .entries
            .iter()
            .filter(|e| e.kind.group == group && e.kind.version == version)
        {
            let k = &e.kind;
            let mut r = json!({
                "name": k.plural,
                "singularName": k.singular,
                "namespaced": k.namespaced(),
                "kind": k.kind,
                "verbs": VERBS,
            });
            if !k.short_names.is_empty() {
                r["shortNames"] = json!(k.short_names);
            }
            if !k.categories.is_empty() {
                r["categories"] = json!(k.categories);
            }
            resources.push(r);
            if k.status_subresource {
                resources.push(json!({
                    "name": format!("{}/status", k.plural),
                    "singularName": "",
                    "namespaced": k.namespaced(),
                    "kind": k.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
            if k.scale_subresource() {
                resources.push(json!({
                    "name": format!("{}/scale", k.plural),
                    "singularName": "",
                    "namespaced": k.namespaced(),
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
        let group_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }))
    }

    /// Aggregated discovery (`apidiscovery.k8s.io/v2`) for `/api` (core) or `/apis` (the rest).
    pub fn aggregated_discovery(&self, core: bool) -> Value {
        let groups: Vec<(&str, &str)> = if core {
            vec![("", "v1")]
        } else {
            self.groups()
        };
        let items: Vec<Value> = groups
            .into_iter()
            .map(|(g, v)| {
                let resources: Vec<Value> = self
                    .entries
                    .iter()
                    .filter(|e| e.kind.group == g && e.kind.version == v)
                    .map(|e| {
                        let k = &e.kind;
                        let response_kind = json!({"group": g, "version": v, "kind": k.kind});
                        let mut r = json!({
                            "resource": k.plural,
                            "responseKind": response_kind,
                            "scope": if k.namespaced() { "Namespaced" } else { "Cluster" },
                            "singularResource": k.singular,
                            "verbs": VERBS,
                        });
                        if !k.short_names.is_empty() {
                            r["shortNames"] = json!(k.short_names);
                        }
                        if !k.categories.is_empty() {
                            r["categories"] = json!(k.categories);
                        }
                        let mut subresources = Vec::new();
                        if k.status_subresource {
                            subresources.push(json!({
                                "subresource": "status",
                                "responseKind": response_kind,
                                "verbs": ["get", "patch", "update"],
                            }));
                        }
                        if k.scale_subresource() {
                            subresources.push(json!({
                                "subresource": "scale",
                                "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                                "verbs": ["get", "patch", "update"],
                            }));
                        }
                        if !subresources.is_empty() {
                            r["subresources"] = json!(subresources);
                        }
                        r
                    })
                    .collect();
                let mut metadata = json!({"creationTimestamp": null});
                if !g.is_empty() {
                    metadata["name"] = json!(g);
                }
                json!({
                    "metadata": metadata,
                    "versions": [{"version": v, "resources": resources, "freshness": "Current"}],
                })
            })
            .collect();
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        })
    }
}

fn group_doc(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// The `/version` document; the emulator speaks the API of Kubernetes 1.33.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_kinds_and_builds_discovery() {
        let r = Registry::new();
        let so = r
            .by_resource("keda.sh", "v1alpha1", "scaledobjects")
            .unwrap();
        assert_eq!(so.kind.kind, "ScaledObject");
        assert_eq!(so.kind.qualified_resource(), "scaledobjects.keda.sh");
        assert!(r.by_kind("apps", "Deployment").is_some());
        let core = r.api_resource_list("", "v1").unwrap();
        assert!(
            core["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == "configmaps" && x["shortNames"][0] == "cm")
        );
        let agg = r.aggregated_discovery(false);
        let names: Vec<&str> = agg["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "apps",
                "keda.sh",
                "opentelemetry.io",
                "argoproj.io",
                "helm.toolkit.fluxcd.io"
            ]
        );
        assert!(r.api_resource_list("keda.sh", "v1").is_none());
    }
}
