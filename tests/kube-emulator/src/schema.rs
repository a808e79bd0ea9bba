//! Just enough structure per kind for merging and field ownership to behave like the real
//! server: which lists are associative (merged by key), which are sets, which maps are
//! atomic, and which struct fields always exist in the typed Go object.
//!
//! Paths are matched on their field names only; list-item steps are skipped, so
//! `spec.template.spec.containers.env` names the env list of every container.

use crate::fieldpath::PathElement;
use crate::registry::Kind;

/// How a list is merged and owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole, owned as one field.
    Atomic,
    /// Items identified by the values of these key fields (`+listType=map`).
    Map(&'static [&'static str]),
    /// Items are scalars identified by value (`+listType=set`).
    Set,
}

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The main resource: `status` is ignored when the kind has a status subresource.
    Main,
    /// The `/status` subresource: only `status` is written.
    Status,
    /// The `/scale` subresource: only `spec.replicas` is written.
    Scale,
}

/// Structural hints for one kind.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    lists: Vec<(Vec<String>, ListType)>,
    atomic_maps: Vec<Vec<String>>,
    structs: Vec<Vec<String>>,
    status_subresource: bool,
}

/// Fields the API server never records in managed fields.
const STRIPPED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

fn split(p: &str) -> Vec<String> {
    p.split('.').map(str::to_string).collect()
}

impl Schema {
    /// The hints for a kind.
    pub fn for_kind(kind: &Kind) -> Schema {
        let mut s = Schema {
            status_subresource: kind.status_subresource,
            ..Schema::default()
        };
        s.list("metadata.finalizers", ListType::Set);
        s.list("metadata.ownerReferences", ListType::Map(&["uid"]));
        s.structs.push(split("metadata"));
        if !kind.builtin {
            return s;
        }
        match kind.kind {
            "Pod" => {
                s.pod_spec("spec");
                s.structs.extend([split("spec"), split("status")]);
            }
            "Deployment" | "StatefulSet" | "DaemonSet" => {
                s.pod_spec("spec.template.spec");
                s.atomic_maps.push(split("spec.selector"));
                s.list("spec.template.metadata.finalizers", ListType::Set);
                for p in [
                    "spec",
                    "spec.template",
                    "spec.template.metadata",
                    "spec.template.spec",
                    "status",
                ] {
                    s.structs.push(split(p));
                }
                s.structs.push(split(match kind.kind {
                    "Deployment" => "spec.strategy",
                    _ => "spec.updateStrategy",
                }));
                s.list("status.conditions", ListType::Map(&["type"]));
                if kind.kind == "StatefulSet" {
                    s.list("spec.volumeClaimTemplates", ListType::Atomic);
                }
            }
            "Service" => {
                s.list("spec.ports", ListType::Map(&["port", "protocol"]));
                s.atomic_maps.push(split("spec.selector"));
                s.structs
                    .extend([split("spec"), split("status"), split("status.loadBalancer")]);
            }
            "Namespace" => {
                s.structs.extend([split("spec"), split("status")]);
            }
            "ServiceAccount" => {
                s.list("secrets", ListType::Map(&["name"]));
                s.list("imagePullSecrets", ListType::Atomic);
            }
            _ => {}
        }
        s
    }

    fn list(&mut self, path: &str, t: ListType) {
        self.lists.push((split(path), t));
    }

    fn pod_spec(&mut self, prefix: &str) {
        let p = |rest: &str| split(&format!("{prefix}.{rest}"));
        for c in ["containers", "initContainers", "ephemeralContainers"] {
            self.lists.push((p(c), ListType::Map(&["name"])));
            let item_lists: [(&str, ListType); 5] = [
                ("env", ListType::Map(&["name"])),
                ("ports", ListType::Map(&["containerPort", "protocol"])),
                ("volumeMounts", ListType::Map(&["mountPath"])),
                ("volumeDevices", ListType::Map(&["devicePath"])),
                ("resizePolicy", ListType::Map(&["resourceName"])),
            ];
            for (field, t) in item_lists {
                self.lists.push((p(&format!("{c}.{field}")), t));
            }
        }
        let pod_lists: [(&str, ListType); 6] = [
            ("volumes", ListType::Map(&["name"])),
            ("imagePullSecrets", ListType::Map(&["name"])),
            ("hostAliases", ListType::Map(&["ip"])),
            ("schedulingGates", ListType::Map(&["name"])),
            ("resourceClaims", ListType::Map(&["name"])),
            (
                "topologySpreadConstraints",
                ListType::Map(&["topologyKey", "whenUnsatisfiable"]),
            ),
        ];
        for (field, t) in pod_lists {
            self.lists.push((p(field), t));
        }
    }

    /// How the list at `path` merges.
    pub fn list_type(&self, path: &[PathElement]) -> ListType {
        let names = field_names(path);
        self.lists
            .iter()
            .find(|(p, _)| *p == names)
            .map(|(_, t)| t.clone())
            .unwrap_or(ListType::Atomic)
    }

    /// Whether the map at `path` is replaced and owned as a whole.
    pub fn is_atomic_map(&self, path: &[PathElement]) -> bool {
        let names = field_names(path);
        self.atomic_maps.iter().any(|p| *p == names)
    }

    /// Whether `path` is a struct that always exists in the typed object, so it is never
    /// itself recorded as added (the real server shows no `.` marker for it).
    pub fn is_struct(&self, path: &[PathElement]) -> bool {
        // Only fields reached without passing a list item are always present.
        if path.iter().any(|e| !matches!(e, PathElement::Field(_))) {
            return false;
        }
        let names = field_names(path);
        self.structs.iter().any(|p| *p == names)
    }

    /// Whether a path is outside what a write to `target` may own.
    pub fn ignored(&self, path: &[PathElement], target: Target) -> bool {
        let first = match path.first() {
            Some(PathElement::Field(f)) => f.as_str(),
            _ => return false,
        };
        if matches!(first, "apiVersion" | "kind") {
            return true;
        }
        if first == "metadata" {
            if path.len() == 1 {
                return true;
            }
            if let Some(PathElement::Field(f)) = path.get(1)
                && STRIPPED_METADATA.contains(&f.as_str())
            {
                return true;
            }
        }
        match target {
            Target::Main => self.status_subresource && first == "status",
            Target::Status => first != "status",
            Target::Scale => {
                path.get(..2)
                    != Some(&[
                        PathElement::Field("spec".into()),
                        PathElement::Field("replicas".into()),
                    ])
            }
        }
    }

    /// Whether the kind has a status subresource.
    pub fn has_status_subresource(&self) -> bool {
        self.status_subresource
    }
}

fn field_names(path: &[PathElement]) -> Vec<&str> {
    path.iter()
        .filter_map(|e| match e {
            PathElement::Field(f) => Some(f.as_str()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn path(p: &str) -> Vec<PathElement> {
        p.split('.')
            .map(|x| {
                if x == "*" {
                    PathElement::Key("{\"name\":\"a\"}".into())
                } else {
                    PathElement::Field(x.into())
                }
            })
            .collect()
    }

    #[test]
    fn deployment_hints() {
        let r = Registry::new();
        let d = &r.by_kind("apps", "Deployment").unwrap().schema;
        assert_eq!(
            d.list_type(&path("spec.template.spec.containers.*.env")),
            ListType::Map(&["name"])
        );
        assert_eq!(
            d.list_type(&path("spec.template.spec.tolerations")),
            ListType::Atomic
        );
        assert!(d.is_atomic_map(&path("spec.selector")));
        assert!(d.is_struct(&path("spec.template")));
        assert!(d.ignored(&path("status.replicas"), Target::Main));
        assert!(!d.ignored(&path("status.replicas"), Target::Status));
        assert!(d.ignored(&path("metadata.resourceVersion"), Target::Main));
        assert!(!d.ignored(&path("metadata.labels.a"), Target::Main));
        let cm = &r.by_kind("", "ConfigMap").unwrap().schema;
        assert!(!cm.ignored(&path("status"), Target::Main));
        let so = &r.by_kind("keda.sh", "ScaledObject").unwrap().schema;
        assert_eq!(so.list_type(&path("spec.triggers")), ListType::Atomic);
        assert!(!so.is_struct(&path("spec")));
    }
}
