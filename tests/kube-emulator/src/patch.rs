//! Non-apply patches: JSON merge patch (RFC 7386), strategic merge patch and JSON patch
//! (RFC 6902).

use crate::fieldpath::PathElement;
use crate::schema::{ListType, Schema};
use serde_json::{Map, Value};

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    match patch {
        Value::Object(p) => {
            let mut out = match target {
                Value::Object(t) => t.clone(),
                _ => Map::new(),
            };
            for (k, v) in p {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Strategic merge patch for built-in kinds: like a merge patch, but lists the schema
/// declares as keyed merge item by item (first key field is the patch merge key), set
/// lists take the union, and the `$patch`, `$retainKeys`, `$setElementOrder/` and
/// `$deleteFromPrimitiveList/` directives are honoured.
pub fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    schema: &Schema,
) -> Result<Value, String> {
    smp_at(Some(target), patch, &mut Vec::new(), schema).map(|v| v.unwrap_or(Value::Null))
}

fn smp_at(
    target: Option<&Value>,
    patch: &Value,
    path: &mut Vec<PathElement>,
    schema: &Schema,
) -> Result<Option<Value>, String> {
    let Value::Object(p) = patch else {
        return Ok(Some(patch.clone()));
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => {
            let mut m = p.clone();
            m.remove("$patch");
            return Ok(Some(Value::Object(m)));
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("Unknown patch type: {other}")),
    }
    let mut out = match target {
        Some(Value::Object(t)) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (out.get_mut(field), v) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if v.is_null() {
            out.remove(k);
            continue;
        }
        path.push(PathElement::Field(k.clone()));
        let merged = match v {
            Value::Object(_) => smp_at(out.get(k), v, path, schema)?,
            Value::Array(items) => Some(smp_list(out.get(k), items, path, schema)?),
            other => Some(other.clone()),
        };
        path.pop();
        match merged {
            Some(m) => {
                out.insert(k.clone(), m);
            }
            None => {
                out.remove(k);
            }
        }
    }
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in p {
        if let (Some(field), Value::Array(order)) = (k.strip_prefix("$setElementOrder/"), v)
            && let Some(Value::Array(list)) = out.get_mut(field)
        {
            reorder(list, order);
        }
    }
    Ok(Some(Value::Object(out)))
}

fn smp_list(
    target: Option<&Value>,
    items: &[Value],
    path: &mut Vec<PathElement>,
    schema: &Schema,
) -> Result<Value, String> {
    let existing = target.and_then(Value::as_array);
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect(),
        ));
    }
    match schema.list_type(path) {
        ListType::Map(keys) => {
            let key = keys[0];
            let mut out: Vec<Value> = existing.cloned().unwrap_or_default();
            for item in items {
                let Some(kv) = item.get(key) else {
                    return Err(format!(
                        "map: {item} does not contain declared merge key: {key}"
                    ));
                };
                let pos = out.iter().position(|e| e.get(key) == Some(kv));
                let deleting = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, deleting) {
                    (Some(i), true) => {
                        out.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => {
                        if let Some(m) = smp_at(Some(&out[i]), item, path, schema)? {
                            out[i] = m;
                        }
                    }
                    (None, false) => {
                        if let Some(m) = smp_at(None, item, path, schema)? {
                            out.push(m);
                        }
                    }
                }
            }
            Ok(Value::Array(out))
        }
        ListType::Set => {
            let mut out: Vec<Value> = existing.cloned().unwrap_or_default();
            for item in items {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Ok(Value::Array(out))
        }
        ListType::Atomic => Ok(Value::Array(items.to_vec())),
    }
}

/// Orders `list` like `order` (items matched on the fields `order` gives); others follow.
fn reorder(list: &mut Vec<Value>, order: &[Value]) {
    let matches = |item: &Value, o: &Value| match o {
        Value::Object(keys) => keys.iter().all(|(k, v)| item.get(k) == Some(v)),
        scalar => item == scalar,
    };
    let mut sorted = Vec::with_capacity(list.len());
    for o in order {
        if let Some(i) = list.iter().position(|item| matches(item, o)) {
            sorted.push(list.remove(i));
        }
    }
    sorted.append(list);
    *list = sorted;
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, String> {
    let ops = ops
        .as_array()
        .ok_or("json patch must be an array of operations")?;
    let mut doc = target.clone();
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or("json patch operation without \"op\"")?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("json patch operation without \"path\"")?;
        match kind {
            "add" => add(&mut doc, path, value_of(op)?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value_of(op)?)?;
            }
            "move" => {
                let from = from_of(op)?;
                let v = remove(&mut doc, from)?;
                add(&mut doc, path, v)?;
            }
            "copy" => {
                let from = from_of(op)?;
                let v = doc
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| format!("missing value at {from}"))?;
                add(&mut doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value_of(op)?) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(doc)
}

fn value_of(op: &Value) -> Result<Value, String> {
    op.get("value")
        .cloned()
        .ok_or_else(|| "json patch operation without \"value\"".to_string())
}

fn from_of(op: &Value) -> Result<&str, String> {
    op.get("from")
        .and_then(Value::as_str)
        .ok_or_else(|| "json patch operation without \"from\"".to_string())
}

fn split_pointer(path: &str) -> Result<(String, String), String> {
    let i = path
        .rfind('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    let last = path[i + 1..].replace("~1", "/").replace("~0", "~");
    Ok((path[..i].to_string(), last))
}

fn add(doc: &mut Value, path: &str, v: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = v;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(m)) => {
            m.insert(last, v);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| format!("invalid array index {last:?}"))?
            };
            a.insert(i, v);
            Ok(())
        }
        _ => Err(format!("doc is missing path: {path:?}")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let missing = || format!("doc is missing path: {path:?}");
    match doc.pointer_mut(&parent) {
        Some(Value::Object(m)) => m.remove(&last).ok_or_else(missing),
        Some(Value::Array(a)) => {
            let i = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < a.len())
                .ok_or_else(missing)?;
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        let target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        let patch = json!({"a": "z", "c": {"f": null}});
        assert_eq!(
            merge_patch(&target, &patch),
            json!({"a": "z", "c": {"d": "e"}})
        );
        assert_eq!(
            merge_patch(&json!({"a": [1]}), &json!({"a": [2]})),
            json!({"a": [2]})
        );
        assert_eq!(
            merge_patch(&json!({"a": 1}), &json!({"b": {"c": null}})),
            json!({"a": 1, "b": {}})
        );
    }

    #[test]
    fn strategic_merge_merges_containers_and_env_by_name() {
        let r = Registry::new();
        let s = &r.by_kind("apps", "Deployment").unwrap().schema;
        let dep = json!({"spec": {"template": {"metadata": {"annotations": {"a": "1"}}, "spec": {"containers": [
            {"name": "app", "image": "x:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "side", "image": "s:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {
        "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}},
        "spec": {"containers": [
            {"name": "app", "env": [{"name": "B", "value": "3"}, {"name": "A", "$patch": "delete"}]},
            {"name": "side", "$patch": "delete"}
        ]}}}});
        let out = strategic_merge_patch(&dep, &patch, s).unwrap();
        assert_eq!(out["spec"]["template"]["metadata"]["annotations"]["a"], "1");
        assert_eq!(
            out["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
            "now"
        );
        let cs = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0]["image"], "x:1");
        assert_eq!(cs[0]["env"], json!([{"name": "B", "value": "3"}]));
        // Atomic lists (args) are replaced.
        let out2 = strategic_merge_patch(
            &json!({"spec": {"template": {"spec": {"tolerations": [{"key": "a"}]}}}}),
            &json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b"}]}}}}),
            s,
        )
        .unwrap();
        assert_eq!(
            out2["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "b"}])
        );
    }

    #[test]
    fn strategic_merge_directives() {
        let r = Registry::new();
        let s = &r.by_kind("apps", "Deployment").unwrap().schema;
        let obj = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}}});
        let out = strategic_merge_patch(
            &obj,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "labels": {"$patch": "replace", "z": "3"}}}),
            s,
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(out["metadata"]["labels"], json!({"z": "3"}));
    }

    #[test]
    fn json_patch_operations() {
        let doc = json!({"a": {"b": [1, 2]}, "c": "d"});
        let ops = json!([
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "replace", "path": "/c", "value": "e"},
            {"op": "remove", "path": "/a/b/0"},
            {"op": "test", "path": "/c", "value": "e"},
            {"op": "copy", "from": "/c", "path": "/f"},
            {"op": "move", "from": "/f", "path": "/g"}
        ]);
        assert_eq!(
            json_patch(&doc, &ops).unwrap(),
            json!({"a": {"b": [2, 3]}, "c": "e", "g": "e"})
        );
        assert!(json_patch(&doc, &json!([{"op": "test", "path": "/c", "value": "x"}])).is_err());
        assert!(json_patch(&doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
