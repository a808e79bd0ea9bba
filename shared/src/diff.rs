//! Field-level differences between two JSON documents, so each change can be told on one
//! line (`path: before -> after`) in a log, an answer or the CLI's plan.

use serde::Serialize;
use serde_json::Value;

/// One field that differs: where, what it was, what it becomes (`null`: absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub path: String,
    pub before: Value,
    pub after: Value,
}

impl std::fmt::Display for FieldChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} -> {}",
            self.path,
            plain(&self.before),
            plain(&self.after)
        )
    }
}

/// Keys that name the items of a list (containers and env by `name`, lifecycle rules by
/// `id`, policy statements by `Sid`), so they are compared item by item.
const ITEM_KEYS: [&str; 3] = ["name", "id", "Sid"];

/// Every leaf where `before` and `after` differ, in document order: added (`before` is
/// `null`), removed (`after` is `null`) or changed. A map is compared key by key, a list
/// of named items item by item, another list of maps index by index, any other list
/// whole.
pub fn field_changes(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<FieldChange>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (key, value) in a {
                walk(
                    &format!("{path}.{key}"),
                    b.get(key).unwrap_or(&Value::Null),
                    value,
                    out,
                );
            }
            for (key, value) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                walk(&format!("{path}.{key}"), value, &Value::Null, out);
            }
        }
        // One side absent: every leaf of the other is added or removed.
        (Value::Object(_), Value::Null) | (Value::Null, Value::Object(_)) => {
            let empty = Value::Object(Default::default());
            let (b, a) = if before.is_null() {
                (&empty, after)
            } else {
                (before, &empty)
            };
            walk(path, b, a, out);
        }
        (Value::Array(items), Value::Null) | (Value::Null, Value::Array(items))
            if !items.is_empty() && items.iter().all(Value::is_object) =>
        {
            let empty = Value::Array(Vec::new());
            let (b, a) = if before.is_null() {
                (&empty, after)
            } else {
                (before, &empty)
            };
            walk(path, b, a, out);
        }
        (Value::Array(b), Value::Array(a)) if b != a => match item_key(b, a) {
            Some(key) => {
                let name = |v: &Value| v[key].as_str().unwrap_or_default().to_string();
                // An item added or removed whole: its key is in the path already.
                let unnamed = |v: &Value| {
                    let mut v = v.clone();
                    if let Some(map) = v.as_object_mut() {
                        map.remove(key);
                    }
                    v
                };
                for item in a {
                    let path = format!("{path}[{key}={}]", name(item));
                    match b.iter().find(|o| o[key] == item[key]) {
                        Some(other) => walk(&path, other, item, out),
                        None => walk(&path, &Value::Null, &unnamed(item), out),
                    }
                }
                for item in b.iter().filter(|o| !a.iter().any(|i| i[key] == o[key])) {
                    let path = format!("{path}[{key}={}]", name(item));
                    walk(&path, &unnamed(item), &Value::Null, out);
                }
            }
            None if b.iter().chain(a).all(Value::is_object) => {
                for i in 0..a.len().max(b.len()) {
                    walk(
                        &format!("{path}[{i}]"),
                        b.get(i).unwrap_or(&Value::Null),
                        a.get(i).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
            None => push(path, before, after, out),
        },
        (b, a) if b == a => {}
        (Value::Number(b), Value::Number(a)) if b.as_f64() == a.as_f64() => {}
        _ => push(path, before, after, out),
    }
}

fn push(path: &str, before: &Value, after: &Value, out: &mut Vec<FieldChange>) {
    out.push(FieldChange {
        path: if path.is_empty() {
            ".".into()
        } else {
            path.into()
        },
        before: before.clone(),
        after: after.clone(),
    });
}

/// The key naming every item of both lists, when there is one.
fn item_key(before: &[Value], after: &[Value]) -> Option<&'static str> {
    ITEM_KEYS.into_iter().find(|key| {
        before
            .iter()
            .chain(after)
            .all(|item| item.get(*key).is_some_and(Value::is_string))
    })
}

/// A value as short text: strings bare, `null` as `(none)`, a list as `[a, b]`, a map as
/// `k=v k=v`; never a JSON document.
pub fn plain(value: &Value) -> String {
    match value {
        Value::Null => "(none)".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(plain).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{k}={}", plain(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lines(before: Value, after: Value) -> Vec<String> {
        field_changes(&before, &after)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn each_changed_leaf_is_one_line() {
        assert_eq!(
            lines(
                json!({"rules": [{"id": "tiers", "expiration_days": 395, "transitions": [{"days": 30, "storage_class": "STANDARD_IA"}]},
                                 {"id": "foreign", "status": "Enabled"}]}),
                json!({"rules": [{"id": "tiers", "expiration_days": 400, "transitions": [{"days": 30, "storage_class": "STANDARD_IA"}, {"days": 90, "storage_class": "GLACIER_IR"}]},
                                 {"id": "abort", "days": 7}]}),
            ),
            [
                ".rules[id=tiers].expiration_days: 395 -> 400",
                ".rules[id=tiers].transitions[1].days: (none) -> 90",
                ".rules[id=tiers].transitions[1].storage_class: (none) -> GLACIER_IR",
                ".rules[id=abort].days: (none) -> 7",
                ".rules[id=foreign].status: Enabled -> (none)",
            ]
        );
    }

    #[test]
    fn scalar_lists_change_whole_and_numbers_compare_by_value() {
        assert_eq!(
            lines(
                json!({"propagators": ["tracecontext"], "ratio": 1}),
                json!({"propagators": ["tracecontext", "baggage"], "ratio": 1.0})
            ),
            [".propagators: [tracecontext] -> [tracecontext, baggage]"]
        );
        assert!(field_changes(&json!({"a": [1, 2]}), &json!({"a": [1, 2]})).is_empty());
        assert_eq!(lines(json!(null), json!("AES256")), [".: (none) -> AES256"]);
    }

    #[test]
    fn plain_text_is_never_json() {
        assert_eq!(
            plain(&json!({"total_days": 30, "hot_days": null, "status": "success"})),
            "status=success total_days=30"
        );
    }
}
