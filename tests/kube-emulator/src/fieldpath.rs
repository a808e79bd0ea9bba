//! Field paths and field sets in the shape server-side apply uses (`FieldsV1`).
//!
//! A set is a flat collection of member paths; the nested `FieldsV1` JSON is only an
//! encoding of it, where a node that is itself a member and also has members below it
//! carries the `".": {}` marker.

use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;

/// One step of a path into an object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A named field of a map (`f:name`).
    Field(String),
    /// An associative list item, identified by its key fields as canonical JSON (`k:{...}`).
    Key(String),
    /// A set list item, identified by its value as canonical JSON (`v:...`).
    Value(String),
    /// A positional list item (`i:N`), only used for lists without keys.
    Index(usize),
}

/// A path from the object root.
pub type Path = Vec<PathElement>;

/// Canonical JSON: object keys sorted, no whitespace; used to name list items.
pub fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical_json(&m[*k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

impl PathElement {
    /// The `FieldsV1` key of this element (`f:`, `k:`, `v:` or `i:` prefixed).
    pub fn to_fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(n) => format!("f:{n}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `FieldsV1` key; `None` for the `.` marker or anything unknown.
    pub fn from_fields_v1_key(key: &str) -> Option<PathElement> {
        let (prefix, rest) = key.split_at_checked(2)?;
        match prefix {
            "f:" => Some(PathElement::Field(rest.to_string())),
            // Re-canonicalise so that sets read back compare equal to computed ones.
            "k:" => serde_json::from_str::<Value>(rest)
                .ok()
                .map(|v| PathElement::Key(canonical_json(&v))),
            "v:" => serde_json::from_str::<Value>(rest)
                .ok()
                .map(|v| PathElement::Value(canonical_json(&v))),
            "i:" => rest.parse().ok().map(PathElement::Index),
            _ => None,
        }
    }
}

impl fmt::Display for PathElement {
    /// Formats like the API server's conflict messages: `.name`, `[k="v"]`, `[=v]`, `[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(n) => write!(f, ".{n}"),
            PathElement::Key(k) => {
                let parsed: Value = serde_json::from_str(k).unwrap_or(Value::Null);
                let parts: Vec<String> = match parsed.as_object() {
                    Some(m) => {
                        let mut keys: Vec<&String> = m.keys().collect();
                        keys.sort();
                        keys.iter()
                            .map(|key| format!("{key}={}", canonical_json(&m[*key])))
                            .collect()
                    }
                    None => vec![k.clone()],
                };
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={v}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Renders a path like the API server does in conflict messages (`.spec.replicas`).
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(|e| e.to_string()).collect()
}

/// A set of member paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<Path>,
}

impl FieldSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a member path.
    pub fn insert(&mut self, path: Path) {
        self.members.insert(path);
    }

    /// Removes a member path.
    pub fn remove(&mut self, path: &[PathElement]) {
        self.members.remove(path);
    }

    /// Whether the path is a member.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        self.members.contains(path)
    }

    /// Whether any member lies strictly below `path`.
    pub fn has_descendant(&self, path: &[PathElement]) -> bool {
        self.members
            .range(path.to_vec()..)
            .take_while(|m| m.starts_with(path))
            .any(|m| m.len() > path.len())
    }

    /// Whether the set has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member paths, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.members.iter()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Members in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            members: self.members.union(&other.members).cloned().collect(),
        }
    }

    /// Members in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            members: self.members.intersection(&other.members).cloned().collect(),
        }
    }

    /// Members of `self` that are not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
        }
    }

    /// Keeps only the members for which `keep` answers true.
    pub fn retain(&mut self, keep: impl Fn(&Path) -> bool) {
        self.members.retain(|p| keep(p));
    }

    /// Encodes the set as a `FieldsV1` JSON object.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.members {
            let mut node = &mut root;
            for el in path {
                let entry = node
                    .entry(el.to_fields_v1_key())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(child) = entry else {
                    unreachable!("FieldsV1 nodes are always objects")
                };
                node = child;
            }
        }
        mark_members(&mut root, &self.members, &mut Vec::new());
        Value::Object(root)
    }

    /// Decodes a `FieldsV1` JSON object; unknown keys are skipped.
    pub fn from_fields_v1(v: &Value) -> FieldSet {
        let mut set = FieldSet::new();
        let mut path = Vec::new();
        decode_node(v, &mut path, &mut set);
        set
    }
}

fn has_children_or_later(child: &Map<String, Value>) -> bool {
    child.keys().any(|k| k != ".")
}

/// Adds the "." marker to every member node that has children below it.
fn mark_members(node: &mut Map<String, Value>, members: &BTreeSet<Path>, path: &mut Path) {
    for (key, child) in node.iter_mut() {
        if key == "." {
            continue;
        }
        let Some(el) = PathElement::from_fields_v1_key(key) else {
            continue;
        };
        path.push(el);
        if let Value::Object(child) = child {
            if members.contains(path.as_slice()) && has_children_or_later(child) {
                child.insert(".".into(), Value::Object(Map::new()));
            }
            mark_members(child, members, path);
        }
        path.pop();
    }
}

fn decode_node(v: &Value, path: &mut Path, set: &mut FieldSet) {
    let Some(m) = v.as_object() else { return };
    if !path.is_empty() && (m.is_empty() || m.contains_key(".")) {
        set.insert(path.clone());
    }
    for (key, child) in m {
        if key == "." {
            continue;
        }
        if let Some(el) = PathElement::from_fields_v1_key(key) {
            path.push(el);
            decode_node(child, path, set);
            path.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(n: &str) -> PathElement {
        PathElement::Field(n.into())
    }

    #[test]
    fn encodes_dot_for_members_with_children() {
        let mut s = FieldSet::new();
        s.insert(vec![f("data"), f("key")]);
        s.insert(vec![f("metadata"), f("labels")]);
        s.insert(vec![f("metadata"), f("labels"), f("app")]);
        assert_eq!(
            s.to_fields_v1(),
            json!({"f:data": {"f:key": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
        );
    }

    #[test]
    fn round_trips_keys_and_values() {
        let v = json!({
            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}},
            "f:metadata": {"f:finalizers": {"v:\"a\"": {}}}
        });
        let s = FieldSet::from_fields_v1(&v);
        assert_eq!(s.len(), 4);
        assert_eq!(s.to_fields_v1(), v);
    }

    #[test]
    fn path_strings_match_the_api_server() {
        let p = vec![
            f("spec"),
            f("containers"),
            PathElement::Key(canonical_json(&json!({"name": "app"}))),
            f("image"),
        ];
        assert_eq!(path_string(&p), ".spec.containers[name=\"app\"].image");
        assert_eq!(
            path_string(&[f("x"), PathElement::Value("\"a\"".into())]),
            ".x[=\"a\"]"
        );
    }

    #[test]
    fn descendant_lookup() {
        let mut s = FieldSet::new();
        s.insert(vec![f("a"), f("b"), f("c")]);
        assert!(s.has_descendant(&[f("a")]));
        assert!(s.has_descendant(&[f("a"), f("b")]));
        assert!(!s.has_descendant(&[f("a"), f("b"), f("c")]));
        assert!(!s.has_descendant(&[f("b")]));
    }
}
