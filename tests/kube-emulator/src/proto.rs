//! Decoding of the Kubernetes protobuf encoding for the few request bodies that kubectl's
//! typed clients send that way (`kubectl create namespace|configmap|secret|serviceaccount|
//! service|deployment`). Responses are always JSON, which those clients also accept.
//!
//! The schema tables below cover the fields those commands set. Go writes every
//! non-pointer field even when empty, so unknown fields holding a zero value are skipped;
//! an unknown field with content is refused rather than silently dropped.

use base64::Engine;
use serde_json::{Map, Value, json};

/// The prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\x00";

#[derive(Clone, Copy)]
enum T {
    Str,
    Int,
    Bool,
    Msg(&'static [F]),
    MapStr,
    MapBytes,
    MapQuantity,
    IntOrString,
    Time,
}

#[derive(Clone, Copy)]
struct F {
    num: u64,
    name: &'static str,
    ty: T,
    repeated: bool,
    /// A pointer field in Go: present means set, even when zero.
    keep_zero: bool,
}

const fn f(num: u64, name: &'static str, ty: T) -> F {
    F {
        num,
        name,
        ty,
        repeated: false,
        keep_zero: false,
    }
}

const fn r(num: u64, name: &'static str, ty: T) -> F {
    F {
        repeated: true,
        ..f(num, name, ty)
    }
}

const fn p(num: u64, name: &'static str, ty: T) -> F {
    F {
        keep_zero: true,
        ..f(num, name, ty)
    }
}

const OBJECT_META: &[F] = &[
    f(1, "name", T::Str),
    f(2, "generateName", T::Str),
    f(3, "namespace", T::Str),
    f(5, "uid", T::Str),
    f(6, "resourceVersion", T::Str),
    f(7, "generation", T::Int),
    f(8, "creationTimestamp", T::Time),
    f(11, "labels", T::MapStr),
    f(12, "annotations", T::MapStr),
    r(14, "finalizers", T::Str),
];
const LOCAL_REF: &[F] = &[f(1, "name", T::Str)];
const NAMESPACE: &[F] = &[
    f(1, "metadata", T::Msg(OBJECT_META)),
    f(2, "spec", T::Msg(&[r(1, "finalizers", T::Str)])),
    f(3, "status", T::Msg(&[f(1, "phase", T::Str)])),
];
const CONFIG_MAP: &[F] = &[
    f(1, "metadata", T::Msg(OBJECT_META)),
    f(2, "data", T::MapStr),
    f(3, "binaryData", T::MapBytes),
    p(4, "immutable", T::Bool),
];
const SECRET: &[F] = &[
    f(1, "metadata", T::Msg(OBJECT_META)),
    f(2, "data", T::MapBytes),
    f(3, "type", T::Str),
    f(4, "stringData", T::MapStr),
    p(5, "immutable", T::Bool),
];
const SERVICE_ACCOUNT: &[F] = &[
    f(1, "metadata", T::Msg(OBJECT_META)),
    r(3, "imagePullSecrets", T::Msg(LOCAL_REF)),
    p(4, "automountServiceAccountToken", T::Bool),
];
const LABEL_SELECTOR: &[F] = &[
    f(1, "matchLabels", T::MapStr),
    r(
        2,
        "matchExpressions",
        T::Msg(&[
            f(1, "key", T::Str),
            f(2, "operator", T::Str),
            r(3, "values", T::Str),
        ]),
    ),
];
const CONTAINER: &[F] = &[
    f(1, "name", T::Str),
    f(2, "image", T::Str),
    r(3, "command", T::Str),
    r(4, "args", T::Str),
    f(5, "workingDir", T::Str),
    r(
        6,
        "ports",
        T::Msg(&[
            f(1, "name", T::Str),
            f(2, "hostPort", T::Int),
            f(3, "containerPort", T::Int),
            f(4, "protocol", T::Str),
        ]),
    ),
    r(
        7,
        "env",
        T::Msg(&[f(1, "name", T::Str), f(2, "value", T::Str)]),
    ),
    f(
        8,
        "resources",
        T::Msg(&[
            f(1, "limits", T::MapQuantity),
            f(2, "requests", T::MapQuantity),
        ]),
    ),
    f(13, "terminationMessagePath", T::Str),
    f(14, "imagePullPolicy", T::Str),
    f(20, "terminationMessagePolicy", T::Str),
];
const POD_SPEC: &[F] = &[
    r(2, "containers", T::Msg(CONTAINER)),
    f(3, "restartPolicy", T::Str),
    p(4, "terminationGracePeriodSeconds", T::Int),
    f(6, "dnsPolicy", T::Str),
    f(7, "nodeSelector", T::MapStr),
    f(8, "serviceAccountName", T::Str),
    f(19, "schedulerName", T::Str),
    r(20, "initContainers", T::Msg(CONTAINER)),
];
const DEPLOYMENT: &[F] = &[
    f(1, "metadata", T::Msg(OBJECT_META)),
    f(
        2,
        "spec",
        T::Msg(&[
            p(1, "replicas", T::Int),
            f(2, "selector", T::Msg(LABEL_SELECTOR)),
            f(
                3,
                "template",
                T::Msg(&[
                    f(1, "metadata", T::Msg(OBJECT_META)),
                    f(2, "spec", T::Msg(POD_SPEC)),
                ]),
            ),
            f(
                4,
                "strategy",
                T::Msg(&[
                    f(1, "type", T::Str),
                    f(
                        2,
                        "rollingUpdate",
                        T::Msg(&[
                            f(1, "maxUnavailable", T::IntOrString),
                            f(2, "maxSurge", T::IntOrString),
                        ]),
                    ),
                ]),
            ),
            f(5, "minReadySeconds", T::Int),
            p(6, "revisionHistoryLimit", T::Int),
            f(7, "paused", T::Bool),
            p(9, "progressDeadlineSeconds", T::Int),
        ]),
    ),
    f(3, "status", T::Msg(&[])),
];

const SERVICE: &[F] = &[
    f(1, "metadata", T::Msg(OBJECT_META)),
    f(
        2,
        "spec",
        T::Msg(&[
            r(
                1,
                "ports",
                T::Msg(&[
                    f(1, "name", T::Str),
                    f(2, "protocol", T::Str),
                    f(3, "port", T::Int),
                    f(4, "targetPort", T::IntOrString),
                    f(5, "nodePort", T::Int),
                ]),
            ),
            f(2, "selector", T::MapStr),
            f(3, "clusterIP", T::Str),
            f(4, "type", T::Str),
        ]),
    ),
    f(3, "status", T::Msg(&[])),
];

fn schema_for(api_version: &str, kind: &str) -> Option<&'static [F]> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("v1", "Service") => SERVICE,
        ("apps/v1", "Deployment") => DEPLOYMENT,
        _ => return None,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Wire<'a> {
    Varint(u64),
    Fixed(u64),
    Len(&'a [u8]),
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or("truncated field")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn field(&mut self) -> Result<Option<(u64, Wire<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
                Wire::Len(self.take(n)?)
            }
            5 => Wire::Fixed(u64::from(u32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            ))),
            w => return Err(format!("unsupported wire type {w}")),
        };
        Ok(Some((key >> 3, wire)))
    }
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    let mut r = Reader { buf, pos: 0 };
    let mut out = Vec::new();
    while let Some(f) = r.field()? {
        out.push(f);
    }
    Ok(out)
}

fn string(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in string field".to_string())
}

fn map_entry(
    b: &[u8],
    value: impl Fn(&[u8]) -> Result<Value, String>,
) -> Result<(String, Value), String> {
    let mut key = String::new();
    let mut val = value(&[])?;
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Len(k)) => key = string(k)?,
            (2, Wire::Len(v)) => val = value(v)?,
            _ => return Err("malformed map entry".into()),
        }
    }
    Ok((key, val))
}

fn quantity(b: &[u8]) -> Result<Value, String> {
    let mut s = String::new();
    for (n, w) in fields(b)? {
        if let (1, Wire::Len(v)) = (n, w) {
            s = string(v)?;
        }
    }
    Ok(json!(s))
}

fn scalar(ty: T, w: Wire<'_>, path: &str) -> Result<Value, String> {
    let bad = || format!("{path}: unexpected wire type");
    Ok(match (ty, w) {
        (T::Str, Wire::Len(b)) => json!(string(b)?),
        (T::Int, Wire::Varint(v)) => json!(v as i64),
        (T::Bool, Wire::Varint(v)) => json!(v != 0),
        (T::Msg(schema), Wire::Len(b)) => message(b, schema, path)?,
        (T::Time, Wire::Len(b)) => {
            let mut secs = 0i64;
            for (n, w) in fields(b)? {
                if let (1, Wire::Varint(v)) = (n, w) {
                    secs = v as i64;
                }
            }
            if secs == 0 {
                Value::Null
            } else {
                let t = jiff::Timestamp::from_second(secs).map_err(|e| format!("{path}: {e}"))?;
                json!(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            }
        }
        (T::IntOrString, Wire::Len(b)) => {
            let (mut ty, mut int, mut s) = (0u64, 0i64, String::new());
            for (n, w) in fields(b)? {
                match (n, w) {
                    (1, Wire::Varint(v)) => ty = v,
                    (2, Wire::Varint(v)) => int = v as i64,
                    (3, Wire::Len(v)) => s = string(v)?,
                    _ => {}
                }
            }
            if ty == 1 { json!(s) } else { json!(int) }
        }
        _ => return Err(bad()),
    })
}

fn is_zero(w: &Wire<'_>) -> bool {
    match w {
        Wire::Varint(v) | Wire::Fixed(v) => *v == 0,
        Wire::Len(b) => b.is_empty(),
    }
}

fn is_empty_scalar(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

fn message(buf: &[u8], schema: &[F], path: &str) -> Result<Value, String> {
    let mut out = Map::new();
    for (num, w) in fields(buf)? {
        let Some(field) = schema.iter().find(|f| f.num == num) else {
            if is_zero(&w) {
                continue;
            }
            return Err(format!(
                "{path}: protobuf field {num} is not supported by the emulator; send JSON instead"
            ));
        };
        let here = format!("{path}.{}", field.name);
        match field.ty {
            T::MapStr | T::MapBytes | T::MapQuantity => {
                let Wire::Len(b) = w else {
                    return Err(format!("{here}: malformed map"));
                };
                let (k, v) = match field.ty {
                    T::MapStr => map_entry(b, |v| string(v).map(Value::String))?,
                    T::MapBytes => map_entry(b, |v| {
                        Ok(json!(base64::engine::general_purpose::STANDARD.encode(v)))
                    })?,
                    _ => map_entry(b, quantity)?,
                };
                let m = out
                    .entry(field.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(m) = m.as_object_mut() {
                    m.insert(k, v);
                }
            }
            _ if field.repeated => {
                let v = scalar(field.ty, w, &here)?;
                let list = out.entry(field.name).or_insert_with(|| json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(v);
                }
            }
            ty => {
                let v = scalar(ty, w, &here)?;
                if field.keep_zero || matches!(ty, T::Msg(_)) || !is_empty_scalar(&v) {
                    out.insert(field.name.to_string(), v);
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a protobuf request body into the JSON form of the object.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("not a Kubernetes protobuf body (missing magic prefix)")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    for (n, w) in fields(rest)? {
        match (n, w) {
            (1, Wire::Len(tm)) => {
                for (m, v) in fields(tm)? {
                    match (m, v) {
                        (1, Wire::Len(s)) => api_version = string(s)?,
                        (2, Wire::Len(s)) => kind = string(s)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Len(b)) => raw = Some(b),
            _ => {}
        }
    }
    let schema = schema_for(&api_version, &kind).ok_or_else(|| {
        format!("protobuf bodies of {api_version} {kind} are not supported by the emulator; send JSON instead")
    })?;
    let mut obj = message(raw.unwrap_or_default(), schema, "")?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn len_field(num: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint((num << 3) | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        len_field(1, api_version.as_bytes(), &mut tm);
        len_field(2, kind.as_bytes(), &mut tm);
        let mut body = MAGIC.to_vec();
        len_field(1, &tm, &mut body);
        len_field(2, raw, &mut body);
        len_field(3, b"", &mut body);
        len_field(4, b"", &mut body);
        body
    }

    #[test]
    fn decodes_a_configmap_like_kubectl_create_sends_it() {
        let mut meta = Vec::new();
        len_field(1, b"settings", &mut meta);
        len_field(2, b"", &mut meta); // empty generateName, always written by Go
        let mut entry = Vec::new();
        len_field(1, b"a", &mut entry);
        len_field(2, b"b", &mut entry);
        let mut raw = Vec::new();
        len_field(1, &meta, &mut raw);
        len_field(2, &entry, &mut raw);
        let obj = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "b"}})
        );
    }

    #[test]
    fn refuses_unknown_content_and_kinds() {
        let mut raw = Vec::new();
        len_field(1, b"", &mut raw);
        len_field(99, b"x", &mut raw);
        assert!(
            decode(&envelope("v1", "ConfigMap", &raw))
                .unwrap_err()
                .contains("field 99")
        );
        assert!(decode(&envelope("v1", "Pod", &[])).is_err());
        assert!(decode(b"{}").is_err());
    }
}
