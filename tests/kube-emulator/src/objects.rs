//! What the API server does to an object besides storing it: system metadata, defaulting,
//! validation and `metadata.generation`, per kind.
//!
//! Defaulting covers the fields a client most often sees come back (so drift detection in
//! tests meets the same surprises as against a real cluster); validation covers names,
//! labels, keys and the workload invariants clients most often get wrong.

use crate::registry::Kind;
use crate::selector::{valid_label_key, valid_label_value};
use crate::status::{self, ApiError, FieldError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicU32, Ordering};

/// Current time as RFC 3339 with second precision, as the API server writes timestamps.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system random source is available");
    b
}

/// A random version-4 UUID.
pub fn new_uid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The 5-character suffix `generateName` gets, from the API server's alphabet.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random_bytes::<5>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const LABEL_KEY_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns_label)
}

fn dns1035_label(s: &str) -> bool {
    dns_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

fn config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn name_errors(kind: &Kind, name: &str) -> Option<FieldError> {
    let (ok, msg) = match kind.kind {
        "Namespace" => (dns_label(name), LABEL_MSG),
        "Service" => (dns1035_label(name), DNS1035_MSG),
        _ => (dns_subdomain(name), SUBDOMAIN_MSG),
    };
    (!ok).then(|| FieldError::invalid("metadata.name", &json!(name), msg))
}

fn meta_errors(obj: &Value, errors: &mut Vec<FieldError>) {
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if !valid_label_key(k) {
                errors.push(FieldError::invalid(
                    "metadata.labels",
                    &json!(k),
                    LABEL_KEY_MSG,
                ));
            }
            match v.as_str() {
                Some(s) if valid_label_value(s) => {}
                _ => errors.push(FieldError::invalid("metadata.labels", v, LABEL_VALUE_MSG)),
            }
        }
    }
    if let Some(ann) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for (k, v) in ann {
            if !valid_label_key(k) {
                errors.push(FieldError::invalid(
                    "metadata.annotations",
                    &json!(k),
                    LABEL_KEY_MSG,
                ));
            }
            if !v.is_string() {
                errors.push(FieldError::invalid(
                    &format!("metadata.annotations.{k}"),
                    v,
                    "must be a string",
                ));
            }
        }
    }
}

fn labels_match_selector(selector: &Value, labels: &Value) -> bool {
    let Some(ml) = selector.get("matchLabels").and_then(Value::as_object) else {
        return true;
    };
    ml.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn workload_errors(obj: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let selector = &spec["selector"];
    if selector.is_null() {
        errors.push(FieldError::required("spec.selector"));
    } else {
        let empty = selector.as_object().is_none_or(|m| {
            m.values().all(|v| {
                v.as_object().is_some_and(Map::is_empty) || v.as_array().is_some_and(Vec::is_empty)
            })
        });
        if empty {
            errors.push(FieldError::invalid(
                "spec.selector",
                selector,
                "empty selector is invalid for deployment",
            ));
        }
        let labels = &spec["template"]["metadata"]["labels"];
        if !labels_match_selector(selector, labels) {
            errors.push(FieldError::invalid(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            ));
        }
        if let Some(old) = old
            && old["spec"]["selector"] != *selector
        {
            errors.push(FieldError::invalid(
                "spec.selector",
                selector,
                "field is immutable",
            ));
        }
    }
    match spec["template"]["spec"]["containers"].as_array() {
        Some(cs) if !cs.is_empty() => {
            for (i, c) in cs.iter().enumerate() {
                for f in ["name", "image"] {
                    if c[f].as_str().is_none_or(str::is_empty) {
                        errors.push(FieldError::required(&format!(
                            "spec.template.spec.containers[{i}].{f}"
                        )));
                    }
                }
            }
        }
        _ => errors.push(FieldError::required("spec.template.spec.containers")),
    }
    if let Some(r) = spec.get("replicas")
        && r.as_i64().is_none_or(|n| n < 0)
    {
        errors.push(FieldError::invalid(
            "spec.replicas",
            r,
            "must be greater than or equal to 0",
        ));
    }
}

fn keyed_data_errors(obj: &Value, errors: &mut Vec<FieldError>) {
    for field in ["data", "binaryData"] {
        if let Some(m) = obj.get(field).and_then(Value::as_object) {
            for k in m.keys() {
                if !config_key(k) {
                    errors.push(FieldError::invalid(
                        &format!("{field}[{k}]"),
                        &json!(k),
                        CONFIG_KEY_MSG,
                    ));
                }
            }
        }
    }
}

fn immutable_errors(obj: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let Some(old) = old else { return };
    if old["immutable"] != json!(true) {
        return;
    }
    for f in ["data", "binaryData", "stringData", "type"] {
        if obj.get(f) != old.get(f) && !(f == "stringData" && obj.get(f).is_none()) {
            errors.push(FieldError::forbidden(
                f,
                "field is immutable when `immutable` is set",
            ));
        }
    }
    if obj["immutable"] != json!(true) {
        errors.push(FieldError::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
}

/// Checks an object about to be stored; `old` is the stored version on updates.
pub fn validate(kind: &Kind, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let mut errors = Vec::new();
    if name.is_empty() {
        errors.push(FieldError {
            reason: "FieldValueRequired",
            field: "metadata.name".into(),
            message: "Required value: name or generateName is required".into(),
        });
    } else if let Some(e) = name_errors(kind, name) {
        errors.push(e);
    }
    meta_errors(obj, &mut errors);
    if kind.builtin {
        match kind.kind {
            "ConfigMap" => {
                keyed_data_errors(obj, &mut errors);
                if let Some(m) = obj.get("data").and_then(Value::as_object) {
                    for (k, v) in m {
                        if !v.is_string() {
                            return Err(status::bad_request(format!(
                                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal {} into Go struct field ConfigMap.data of type string (key {k:?})",
                                json_type(v)
                            )));
                        }
                    }
                }
                immutable_errors(obj, old, &mut errors);
            }
            "Secret" => {
                keyed_data_errors(obj, &mut errors);
                immutable_errors(obj, old, &mut errors);
                if let Some(old) = old
                    && old.get("type") != obj.get("type")
                {
                    errors.push(FieldError::invalid(
                        "type",
                        &obj["type"],
                        "field is immutable",
                    ));
                }
            }
            "Deployment" | "StatefulSet" | "DaemonSet" => workload_errors(obj, old, &mut errors),
            "Service" => service_errors(obj, old, &mut errors),
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(status::invalid(kind, name, &errors))
    }
}

fn service_errors(obj: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    let headless = spec["clusterIP"] == json!("None");
    match spec["ports"].as_array() {
        Some(ps) if !ps.is_empty() => {
            for (i, p) in ps.iter().enumerate() {
                if p["port"].as_i64().is_none_or(|n| !(1..=65535).contains(&n)) {
                    errors.push(FieldError::invalid(
                        &format!("spec.ports[{i}].port"),
                        &p["port"],
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
        _ if ty == "ExternalName" || headless => {}
        _ => errors.push(FieldError::required("spec.ports")),
    }
    if let Some(old) = old {
        let was = &old["spec"]["clusterIP"];
        if !was.is_null() && spec["clusterIP"] != *was {
            errors.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                &spec["clusterIP"],
                "may not change once set",
            ));
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn set_default(m: &mut Value, key: &str, v: Value) {
    if let Some(o) = m.as_object_mut()
        && o.get(key).is_none_or(Value::is_null)
    {
        o.insert(key.to_string(), v);
    }
}

fn pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let tag = if let Some((_, t)) = last.split_once('@') {
        return if t.is_empty() {
            "Always"
        } else {
            "IfNotPresent"
        };
    } else {
        last.split_once(':').map(|(_, t)| t)
    };
    match tag {
        None | Some("latest") => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                set_default(c, "resources", json!({}));
                let image = c["image"].as_str().unwrap_or_default().to_string();
                set_default(c, "imagePullPolicy", json!(pull_policy(&image)));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        set_default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

static NEXT_CLUSTER_IP: AtomicU32 = AtomicU32::new(10);

/// Fills in the defaults the API server would for this kind.
pub fn default(kind: &Kind, obj: &mut Value, old: Option<&Value>) {
    if !kind.builtin {
        return;
    }
    match kind.kind {
        "Secret" => {
            set_default(obj, "type", json!("Opaque"));
            // stringData is write-only: merged into data, never stored.
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                set_default(obj, "data", json!({}));
                if let Some(data) = obj["data"].as_object_mut() {
                    for (k, v) in sd {
                        let s = v
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string());
                        data.insert(k, json!(B64.encode(s)));
                    }
                }
            }
        }
        "Namespace" => {
            let name = obj["metadata"]["name"].clone();
            set_default(&mut obj["metadata"], "labels", json!({}));
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            set_default(obj, "spec", json!({}));
            set_default(&mut obj["spec"], "finalizers", json!(["kubernetes"]));
            set_default(obj, "status", json!({}));
            set_default(&mut obj["status"], "phase", json!("Active"));
        }
        "Service" => {
            set_default(obj, "spec", json!({}));
            let spec = &mut obj["spec"];
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            if spec["type"] != json!("ExternalName") {
                let ip = old
                    .and_then(|o| o["spec"].get("clusterIP").cloned())
                    .unwrap_or_else(|| {
                        let n = NEXT_CLUSTER_IP.fetch_add(1, Ordering::Relaxed);
                        json!(format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff))
                    });
                set_default(spec, "clusterIP", ip);
                let ip = spec["clusterIP"].clone();
                set_default(spec, "clusterIPs", json!([ip]));
                set_default(spec, "ipFamilies", json!(["IPv4"]));
                set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
                set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    set_default(p, "protocol", json!("TCP"));
                    let port = p["port"].clone();
                    set_default(p, "targetPort", port);
                }
            }
            set_default(obj, "status", json!({"loadBalancer": {}}));
        }
        "Pod" => {
            default_pod_spec(&mut obj["spec"]);
            set_default(
                obj,
                "status",
                json!({"phase": "Pending", "qosClass": "BestEffort"}),
            );
        }
        "Deployment" => {
            let spec = &mut obj["spec"];
            if !spec.is_object() {
                return;
            }
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(spec, "strategy", json!({}));
            set_default(&mut spec["strategy"], "type", json!("RollingUpdate"));
            if spec["strategy"]["type"] == json!("RollingUpdate") {
                set_default(&mut spec["strategy"], "rollingUpdate", json!({}));
                set_default(
                    &mut spec["strategy"]["rollingUpdate"],
                    "maxSurge",
                    json!("25%"),
                );
                set_default(
                    &mut spec["strategy"]["rollingUpdate"],
                    "maxUnavailable",
                    json!("25%"),
                );
            }
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        "StatefulSet" => {
            let spec = &mut obj["spec"];
            if !spec.is_object() {
                return;
            }
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "podManagementPolicy", json!("OrderedReady"));
            set_default(spec, "updateStrategy", json!({}));
            set_default(&mut spec["updateStrategy"], "type", json!("RollingUpdate"));
            if spec["updateStrategy"]["type"] == json!("RollingUpdate") {
                set_default(
                    &mut spec["updateStrategy"],
                    "rollingUpdate",
                    json!({"partition": 0}),
                );
            }
            set_default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        "DaemonSet" => {
            let spec = &mut obj["spec"];
            if !spec.is_object() {
                return;
            }
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "updateStrategy", json!({}));
            set_default(&mut spec["updateStrategy"], "type", json!("RollingUpdate"));
            if spec["updateStrategy"]["type"] == json!("RollingUpdate") {
                set_default(
                    &mut spec["updateStrategy"],
                    "rollingUpdate",
                    json!({"maxSurge": 0, "maxUnavailable": 1}),
                );
            }
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        _ => {}
    }
}

/// Checks that a Secret's `data` values are base64, as decoding into the typed object does.
pub fn check_decodable(kind: &Kind, obj: &Value) -> Result<(), ApiError> {
    if kind.builtin && kind.kind == "Secret" {
        for field in ["data"] {
            if let Some(m) = obj.get(field).and_then(Value::as_object) {
                for v in m.values() {
                    let ok = v.as_str().is_some_and(|s| B64.decode(s).is_ok());
                    if !ok {
                        return Err(status::bad_request(
                            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 0",
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The parts of an object whose change bumps `metadata.generation`.
fn generation_view(kind: &Kind, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        let meta = m.remove("metadata");
        if kind.status_subresource {
            m.remove("status");
        }
        // Deployments also bump on annotation changes: they are copied to ReplicaSets.
        if kind.builtin && kind.kind == "Deployment" {
            m.insert(
                "annotations".into(),
                meta.and_then(|x| x.get("annotations").cloned())
                    .unwrap_or(Value::Null),
            );
        }
    }
    v
}

/// Sets `metadata.generation` for a create (`old` absent) or an update.
pub fn set_generation(kind: &Kind, obj: &mut Value, old: Option<&Value>) {
    if !kind.generation {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("generation");
        }
        return;
    }
    let generation = match old {
        None => 1,
        Some(old) => {
            let prev = old["metadata"]["generation"].as_i64().unwrap_or(1);
            if generation_view(kind, old) != generation_view(kind, obj) {
                prev + 1
            } else {
                prev
            }
        }
    };
    obj["metadata"]["generation"] = json!(generation);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn uids_and_suffixes_have_the_right_shape() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(new_uid(), u);
        assert_eq!(name_suffix().len(), 5);
        let t = now_rfc3339();
        assert!(t.ends_with('Z') && t.len() == 20, "{t}");
    }

    #[test]
    fn secrets_fold_string_data_into_data() {
        let r = Registry::new();
        let k = &r.by_kind("", "Secret").unwrap().kind;
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"dsn": "postgres://u:p@h/db"}, "data": {"a": "YQ=="}});
        default(k, &mut s, None);
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["data"]["a"], "YQ==");
        assert_eq!(s["data"]["dsn"], B64.encode("postgres://u:p@h/db"));
    }

    #[test]
    fn deployment_defaults_validation_and_generation() {
        let r = Registry::new();
        let k = &r.by_kind("apps", "Deployment").unwrap().kind;
        let mut d = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        default(k, &mut d, None);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
        validate(k, &d, None).unwrap();
        set_generation(k, &mut d, None);
        assert_eq!(d["metadata"]["generation"], 1);
        let mut d2 = d.clone();
        d2["metadata"]["labels"] = json!({"x": "y"});
        set_generation(k, &mut d2, Some(&d));
        assert_eq!(d2["metadata"]["generation"], 1);
        let mut d3 = d.clone();
        d3["spec"]["template"]["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/restartedAt": "t"});
        set_generation(k, &mut d3, Some(&d));
        assert_eq!(d3["metadata"]["generation"], 2);

        let mut bad = d.clone();
        bad["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
        let e = validate(k, &bad, None).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.body["message"]
                .as_str()
                .unwrap()
                .starts_with("Deployment.apps \"web\" is invalid: spec.template.metadata.labels"),
            "{}",
            e.body["message"]
        );
    }

    #[test]
    fn names_are_checked_per_kind() {
        let r = Registry::new();
        let cm = &r.by_kind("", "ConfigMap").unwrap().kind;
        assert!(validate(cm, &json!({"metadata": {"name": "a.b-c"}}), None).is_ok());
        let e = validate(cm, &json!({"metadata": {"name": "Bad_Name"}}), None).unwrap_err();
        assert!(
            e.body["message"]
                .as_str()
                .unwrap()
                .contains("RFC 1123 subdomain")
        );
        let svc = &r.by_kind("", "Service").unwrap().kind;
        let e = validate(
            svc,
            &json!({"metadata": {"name": "1abc"}, "spec": {"ports": [{"port": 80}]}}),
            None,
        )
        .unwrap_err();
        assert!(e.body["message"].as_str().unwrap().contains("DNS-1035"));
        let e = validate(
            cm,
            &json!({"metadata": {"name": "x", "labels": {"a": "not ok"}}}),
            None,
        )
        .unwrap_err();
        assert!(
            e.body["message"]
                .as_str()
                .unwrap()
                .contains("metadata.labels")
        );
    }
}
