//! Server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), which
//! `kubectl get` asks for; columns follow the API server's printers for built-in kinds and
//! Name/Age for custom kinds (whose real printer columns come from their CRDs).

use crate::registry::Kind;
use serde_json::{Value, json};

/// What each row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` (the default).
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter.
    pub fn parse(v: Option<&str>) -> IncludeObject {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// A column: name, type, format, priority (0 = always shown, 1 = `-o wide`).
type Column = (&'static str, &'static str, &'static str, u8);

fn columns(kind: &Kind) -> Vec<Column> {
    let name = ("Name", "string", "name", 0);
    let age = ("Age", "string", "", 0);
    if !kind.builtin {
        return vec![name, age];
    }
    match kind.kind {
        "ConfigMap" => vec![name, ("Data", "integer", "", 0), age],
        "Secret" => vec![
            name,
            ("Type", "string", "", 0),
            ("Data", "integer", "", 0),
            age,
        ],
        "Namespace" => vec![name, ("Status", "string", "", 0), age],
        "ServiceAccount" => vec![name, ("Secrets", "integer", "", 0), age],
        "Service" => vec![
            name,
            ("Type", "string", "", 0),
            ("Cluster-IP", "string", "", 0),
            ("External-IP", "string", "", 0),
            ("Port(s)", "string", "", 0),
            age,
            ("Selector", "string", "", 1),
        ],
        "Deployment" => vec![
            name,
            ("Ready", "string", "", 0),
            ("Up-to-date", "integer", "", 0),
            ("Available", "integer", "", 0),
            age,
            ("Containers", "string", "", 1),
            ("Images", "string", "", 1),
            ("Selector", "string", "", 1),
        ],
        "StatefulSet" => vec![
            name,
            ("Ready", "string", "", 0),
            age,
            ("Containers", "string", "", 1),
            ("Images", "string", "", 1),
        ],
        "DaemonSet" => vec![
            name,
            ("Desired", "integer", "", 0),
            ("Current", "integer", "", 0),
            ("Ready", "integer", "", 0),
            ("Up-to-date", "integer", "", 0),
            ("Available", "integer", "", 0),
            ("Node Selector", "string", "", 0),
            age,
        ],
        "Pod" => vec![
            name,
            ("Ready", "string", "", 0),
            ("Status", "string", "", 0),
            ("Restarts", "string", "", 0),
            age,
        ],
        _ => vec![name, age],
    }
}

/// Formats an age like the API server's `HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    let y = d / 365;
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        if secs % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", secs % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if y < 2 {
        format!("{d}d")
    } else if y < 8 {
        if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        }
    } else {
        format!("{y}y")
    }
}

fn age(obj: &Value) -> String {
    let Some(ts) = obj["metadata"]["creationTimestamp"].as_str() else {
        return "<unknown>".into();
    };
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        Err(_) => "<unknown>".into(),
    }
}

fn count(v: &Value) -> i64 {
    v.as_object().map(|m| m.len() as i64).unwrap_or(0)
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn selector_string(sel: &Value) -> String {
    let labels = sel.get("matchLabels").unwrap_or(sel);
    match labels.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

fn containers(spec: &Value, field: &str) -> String {
    spec["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| c[field].as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn cells(kind: &Kind, obj: &Value) -> Vec<Value> {
    let name = json!(obj["metadata"]["name"]);
    let a = json!(age(obj));
    if !kind.builtin {
        return vec![name, a];
    }
    let spec = &obj["spec"];
    let st = &obj["status"];
    match kind.kind {
        "ConfigMap" => vec![
            name,
            json!(count(&obj["data"]) + count(&obj["binaryData"])),
            a,
        ],
        "Secret" => vec![name, obj["type"].clone(), json!(count(&obj["data"])), a],
        "Namespace" => vec![name, json!(st["phase"].as_str().unwrap_or("Active")), a],
        "ServiceAccount" => vec![
            name,
            json!(obj["secrets"].as_array().map_or(0, Vec::len)),
            a,
        ],
        "Service" => {
            let ports = spec["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP"))
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "<none>".into());
            let external = match spec["type"].as_str() {
                Some("LoadBalancer") => "<pending>",
                _ => "<none>",
            };
            vec![
                name,
                spec["type"].clone(),
                json!(spec["clusterIP"].as_str().unwrap_or("<none>")),
                json!(external),
                json!(ports),
                a,
                json!(selector_string(&spec["selector"])),
            ]
        }
        "Deployment" => {
            let pod = &spec["template"]["spec"];
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&st["readyReplicas"]),
                    int(&spec["replicas"])
                )),
                json!(int(&st["updatedReplicas"])),
                json!(int(&st["availableReplicas"])),
                a,
                json!(containers(pod, "name")),
                json!(containers(pod, "image")),
                json!(selector_string(&spec["selector"])),
            ]
        }
        "StatefulSet" => {
            let pod = &spec["template"]["spec"];
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&st["readyReplicas"]),
                    int(&spec["replicas"])
                )),
                a,
                json!(containers(pod, "name")),
                json!(containers(pod, "image")),
            ]
        }
        "DaemonSet" => vec![
            name,
            json!(int(&st["desiredNumberScheduled"])),
            json!(int(&st["currentNumberScheduled"])),
            json!(int(&st["numberReady"])),
            json!(int(&st["updatedNumberScheduled"])),
            json!(int(&st["numberAvailable"])),
            json!(selector_string(&spec["template"]["spec"]["nodeSelector"])),
            a,
        ],
        "Pod" => {
            let total = spec["containers"].as_array().map_or(0, Vec::len);
            vec![
                name,
                json!(format!("0/{total}")),
                json!(st["phase"].as_str().unwrap_or("Pending")),
                json!("0"),
                a,
            ]
        }
        _ => vec![name, a],
    }
}

/// Builds a `meta.k8s.io/v1` Table for the given objects.
pub fn table(kind: &Kind, objects: &[Value], list_meta: Value, include: IncludeObject) -> Value {
    let defs: Vec<Value> = columns(kind)
        .into_iter()
        .map(|(name, ty, format, priority)| {
            json!({"name": name, "type": ty, "format": format, "description": "", "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(kind, o)});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(o),
                IncludeObject::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// An object reduced to `PartialObjectMetadata`.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(100 * 86400), "100d");
    }
}
