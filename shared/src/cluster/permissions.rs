//! What each function does to the cluster, as Kubernetes RBAC. One source for the Roles the
//! deployment ships (`signoz-control rbac`, `infra/kubernetes/rbac.yaml`), for the
//! namespaces prune and release look in, and for the error that names a missing rule.
//!
//! EKS access policies cover built-in API groups only and cannot be extended, so each
//! function's IAM role is mapped by its access entry to one Kubernetes group
//! ([`kubernetes_group`]) and these Roles grant that group exactly what the function's code
//! calls, on the kinds and in the namespaces the spec names: nothing cluster-wide, and
//! `list`/`delete` only where prune and release need them. `create` cannot be limited by
//! name in RBAC, and server-side apply of a new object needs it. Secrets and the workloads
//! restarted onto a new DSN are limited to their names, and Secrets are never listed
//! (listing Secrets reads every Secret of the namespace). Our own kinds need no names:
//! prune deletes them by label anyway; instrumented workloads need none either, because
//! releasing one the spec no longer names patches it.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::ApiResource;
use serde_json::{Value, json};

use super::Error;
use super::objects::{DesiredObject, PLATFORM_LABEL, workload_resource};
use super::render::{render_owned_objects, workload_namespace};
use super::secret::{DsnSource, render_database_secret};
use crate::spec::{AlarmAction, PlatformSpec, ReconcileTarget};

/// Kinds of workloads we may have opted in (release lists them where workloads live).
pub const WORKLOAD_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

/// rotate-credentials (`credentials::FUNCTION`), named here so this module depends on no
/// other function's module: it hands the DSN to the cluster.
pub const ROTATE_CREDENTIALS: &str = "rotate-credentials";
/// respond-to-alarms (`alarms::FUNCTION`): it writes the ScaledObject, may run a sync.
pub const RESPOND_TO_ALARMS: &str = "respond-to-alarms";
/// The functions that call the Kubernetes API.
pub const CLUSTER_FUNCTIONS: [&str; 3] = [ROTATE_CREDENTIALS, super::FUNCTION, RESPOND_TO_ALARMS];

/// The Kubernetes group a function's IAM role is mapped to (EKS access entry
/// `kubernetes_groups`); per platform, so two platforms on one cluster never share rights.
pub fn kubernetes_group(spec: &PlatformSpec, function: &str) -> String {
    format!("signoz-control:{}:{function}", spec.platform.name)
}

/// Name of the Role and RoleBinding of one function in each namespace it touches.
pub fn role_name(spec: &PlatformSpec, function: &str) -> String {
    format!("signoz-control-{}-{function}", spec.platform.name)
}

/// One permission: verbs on a resource in a namespace, limited to `names` when not empty.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub namespace: String,
    pub group: String,
    pub resource: String,
    pub names: BTreeSet<String>,
    pub verbs: BTreeSet<&'static str>,
}

/// Where prune looks for our objects of a kind: every namespace the spec places that kind
/// in. Never the DSN Secret (see the module doc) nor a delivery object: deleting one
/// uninstalls a release (`cluster::delivery`).
pub fn prune_scopes(spec: &PlatformSpec) -> Result<Vec<(ApiResource, String)>, Error> {
    let mut scopes: Vec<(ApiResource, String)> = Vec::new();
    for object in render_owned_objects(spec)? {
        if crate::spec::DELIVERY_KINDS.contains(&object.resource.kind.as_str()) {
            continue;
        }
        let namespace = object.namespace.clone().unwrap_or_default();
        if !scopes
            .iter()
            .any(|(r, ns)| r.kind == object.resource.kind && *ns == namespace)
        {
            scopes.push((object.resource, namespace));
        }
    }
    Ok(scopes)
}

/// Where release looks for workloads we opted in and the spec no longer names: every
/// workload kind in every namespace the spec's workloads live in.
pub fn release_scopes(spec: &PlatformSpec) -> Vec<(ApiResource, String)> {
    let namespaces: BTreeSet<&str> = spec
        .instrumentation
        .workloads
        .iter()
        .map(|w| workload_namespace(spec, &w.namespace))
        .collect();
    namespaces
        .into_iter()
        .flat_map(|ns| {
            WORKLOAD_KINDS
                .iter()
                .filter_map(move |kind| workload_resource(kind).map(|r| (r, ns.to_string())))
        })
        .collect()
}

/// Every grant each cluster-calling function needs for this spec, by function.
pub fn required_access(spec: &PlatformSpec) -> Result<BTreeMap<&'static str, Vec<Grant>>, Error> {
    let mut by_function = BTreeMap::new();
    by_function.insert(super::FUNCTION, sync_grants(spec)?);
    by_function.insert(ROTATE_CREDENTIALS, handoff_grants(spec));
    let mut alarms = Vec::new();
    for policy in &spec.alarms.policies {
        match &policy.action {
            AlarmAction::ScaleCollectors(_) => {
                let object = super::render::scaling::render_scaled_object(spec);
                alarms.extend(apply_grants(&object));
            }
            AlarmAction::ReconcileNow(r) if r.target == ReconcileTarget::Cluster => {
                alarms.extend(sync_grants(spec)?);
            }
            _ => {}
        }
    }
    if !alarms.is_empty() {
        by_function.insert(RESPOND_TO_ALARMS, merge(alarms));
    }
    Ok(by_function)
}

/// sync-cluster: apply and prune our objects, hand off the DSN, opt workloads in, release
/// and restart them.
fn sync_grants(spec: &PlatformSpec) -> Result<Vec<Grant>, Error> {
    let mut grants = Vec::new();
    for object in render_owned_objects(spec)? {
        grants.extend(apply_grants(&object));
    }
    for (resource, namespace) in prune_scopes(spec)? {
        grants.push(grant(&namespace, &resource, &[], &["list", "delete"]));
    }
    grants.extend(handoff_grants(spec));
    // The one delivery object the spec allows us to delete, by name.
    let replaced = spec.cluster.delivery.replaces.as_ref();
    if let Some((resource, namespace, name)) =
        replaced.and_then(|r| super::delivery::delivery_object(&r.object))
    {
        grants.push(grant(namespace, &resource, &[name], &["delete"]));
    }
    for (resource, namespace) in release_scopes(spec) {
        grants.push(grant(&namespace, &resource, &[], &["get", "list", "patch"]));
    }
    Ok(merge(grants))
}

/// The DSN Secret and the workloads restarted onto it (rotate-credentials' finishSecret).
fn handoff_grants(spec: &PlatformSpec) -> Vec<Grant> {
    let mut grants = apply_grants(&render_database_secret(spec, &DsnSource::placeholder()));
    for workload in &crate::spec::chart::dsn_readers(spec) {
        if let Some(resource) = workload_resource(&workload.kind) {
            let namespace = workload_namespace(spec, &workload.namespace);
            grants.push(grant(
                namespace,
                &resource,
                &[&workload.name],
                &["get", "patch"],
            ));
        }
    }
    merge(grants)
}

/// Server-side apply of one object: read and patch it (a Secret by its name only), create
/// it when missing; the reconcile reads our objects of a kind with one list (`observe`).
fn apply_grants(object: &DesiredObject) -> Vec<Grant> {
    let namespace = object.namespace.as_deref().unwrap_or_default();
    if object.resource.kind == "Secret" {
        return vec![
            grant(
                namespace,
                &object.resource,
                &[&object.name],
                &["get", "patch"],
            ),
            grant(namespace, &object.resource, &[], &["create"]),
        ];
    }
    vec![grant(
        namespace,
        &object.resource,
        &[],
        &["create", "get", "list", "patch"],
    )]
}

fn grant(namespace: &str, resource: &ApiResource, names: &[&str], verbs: &[&'static str]) -> Grant {
    Grant {
        namespace: namespace.to_string(),
        group: resource.group.clone(),
        resource: resource.plural.clone(),
        names: names.iter().map(|n| n.to_string()).collect(),
        verbs: verbs.iter().copied().collect(),
    }
}

/// Folds grants: one per namespace, resource and names, with every verb asked for.
fn merge(grants: Vec<Grant>) -> Vec<Grant> {
    let mut folded: BTreeMap<(String, String, String, BTreeSet<String>), Grant> = BTreeMap::new();
    for g in grants {
        let key = (
            g.namespace.clone(),
            g.group.clone(),
            g.resource.clone(),
            g.names.clone(),
        );
        folded
            .entry(key)
            .and_modify(|f| f.verbs.extend(g.verbs.iter().copied()))
            .or_insert(g);
    }
    folded.into_values().collect()
}

/// What makes two grants one rule: their API group, verbs and resource names.
type RuleKey<'a> = (&'a str, &'a BTreeSet<&'a str>, &'a BTreeSet<String>);

/// RBAC rules of one namespace's grants: resources of one API group with the same verbs
/// and names share a rule.
fn rules(grants: &[&Grant]) -> Vec<Value> {
    let mut by_rule: BTreeMap<RuleKey, Vec<&str>> = BTreeMap::new();
    for g in grants {
        by_rule
            .entry((&g.group, &g.verbs, &g.names))
            .or_default()
            .push(&g.resource);
    }
    by_rule
        .into_iter()
        .map(|((group, verbs, names), resources)| {
            let mut rule = json!({ "apiGroups": [group], "resources": resources, "verbs": verbs });
            if !names.is_empty() {
                rule["resourceNames"] = json!(names);
            }
            rule
        })
        .collect()
}

/// The Roles and RoleBindings that grant each function's group what it needs, one pair per
/// function and namespace, in a stable order.
pub fn render_rbac(spec: &PlatformSpec) -> Result<Vec<Value>, Error> {
    let mut manifests = Vec::new();
    for (function, grants) in required_access(spec)? {
        let mut by_namespace: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
        for g in &grants {
            by_namespace.entry(&g.namespace).or_default().push(g);
        }
        let name = role_name(spec, function);
        let labels = json!({
            "app.kubernetes.io/part-of": "signoz-control",
            "app.kubernetes.io/component": function,
            PLATFORM_LABEL: spec.platform.name,
        });
        for (namespace, grants) in by_namespace {
            let rules = rules(&grants);
            let metadata = json!({ "name": name, "namespace": namespace, "labels": labels });
            manifests.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": metadata,
                "rules": rules,
            }));
            manifests.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": metadata,
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name },
                "subjects": [{
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Group",
                    "name": kubernetes_group(spec, function),
                }],
            }));
        }
    }
    Ok(manifests)
}

/// [`render_rbac`] as a multi-document YAML file, headed with how it was made.
pub fn render_rbac_yaml(spec: &PlatformSpec) -> Result<String, Error> {
    let mut out = format!(
        "# Kubernetes RBAC of the signoz-control functions for platform {}, rendered from its\n\
         # platform spec by `signoz-control rbac` (do not edit: re-render when the spec changes).\n\
         # Each function's IAM role is mapped to its group by the EKS access entry.\n",
        spec.platform.name
    );
    for manifest in render_rbac(spec)? {
        out.push_str("---\n");
        out.push_str(
            &serde_norway::to_string(&manifest).map_err(|e| Error::Invalid {
                object: "RBAC manifest".into(),
                problems: vec![e.to_string()],
            })?,
        );
    }
    Ok(out)
}
