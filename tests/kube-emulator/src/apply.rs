//! Server-side apply and managed-field bookkeeping, as pure functions over JSON objects.
//!
//! The algorithm follows the API server's (structured-merge-diff): an apply merges the
//! configuration into the live object, the applier's field set becomes exactly what it
//! applied, fields it applied last time and no longer applies are removed unless someone
//! else owns them, and fields another manager owns whose value would change are conflicts.
//! Non-apply writes ("Update" operations) take ownership of every field they change.

use crate::fieldpath::{FieldSet, Path, PathElement, canonical_json, path_string};
use crate::schema::{ListType, Schema, Target};
use serde_json::{Map, Value, json};

/// The operation that produced a managed-fields entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write (create, update, patch).
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedEntry {
    /// Field manager name.
    pub manager: String,
    /// Apply or Update.
    pub operation: Operation,
    /// API version the fields were written with.
    pub api_version: String,
    /// RFC 3339 time of the manager's last change.
    pub time: Option<String>,
    /// `status` for writes to the status subresource, else empty.
    pub subresource: String,
    /// The owned fields.
    pub fields: FieldSet,
}

impl ManagedEntry {
    /// Whether this entry is the one a write by (manager, operation, version, subresource)
    /// updates; apply entries are not split by version, as in the API server.
    fn is(&self, manager: &str, op: Operation, api_version: &str, subresource: &str) -> bool {
        self.manager == manager
            && self.operation == op
            && self.subresource == subresource
            && (op == Operation::Apply || self.api_version == api_version)
    }

    /// The manager as the API server prints it in conflict messages.
    pub fn display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if self.operation == Operation::Update {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }
}

/// Reads `metadata.managedFields`; malformed entries are skipped.
pub fn decode_managed_fields(v: Option<&Value>) -> Vec<ManagedEntry> {
    let Some(Value::Array(items)) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|e| {
            let operation = match e.get("operation")?.as_str()? {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return None,
            };
            Some(ManagedEntry {
                manager: e.get("manager")?.as_str()?.to_string(),
                operation,
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                time: e.get("time").and_then(Value::as_str).map(str::to_string),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                fields: e
                    .get("fieldsV1")
                    .map(FieldSet::from_fields_v1)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Writes `metadata.managedFields`, sorted the way the API server sorts them.
pub fn encode_managed_fields(entries: &[ManagedEntry]) -> Value {
    let mut sorted: Vec<&ManagedEntry> = entries.iter().filter(|e| !e.fields.is_empty()).collect();
    sorted.sort_by(|p, q| {
        (
            p.operation,
            &p.time,
            &p.manager,
            &p.api_version,
            &p.subresource,
        )
            .cmp(&(
                q.operation,
                &q.time,
                &q.manager,
                &q.api_version,
                &q.subresource,
            ))
    });
    Value::Array(
        sorted
            .into_iter()
            .map(|e| {
                let mut m = json!({
                    "manager": e.manager,
                    "operation": e.operation.as_str(),
                    "apiVersion": e.api_version,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": e.fields.to_fields_v1(),
                });
                if let Some(t) = &e.time {
                    m["time"] = json!(t);
                }
                if !e.subresource.is_empty() {
                    m["subresource"] = json!(e.subresource);
                }
                m
            })
            .collect(),
    )
}

/// A field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    /// The owner, as printed by the API server (`"mgr"` or `"mgr" using v1`).
    pub manager: String,
    /// The contested field, as printed by the API server (`.data.key`).
    pub field: String,
}

/// The message of a 409 apply conflict, worded like the API server's.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.manager, c.field
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {m}:"));
        for c in conflicts.iter().filter(|c| c.manager == m) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// What changed between two versions of an object, path by path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparison {
    /// Paths present only in the new object.
    pub added: FieldSet,
    /// Leaf paths whose value changed.
    pub modified: FieldSet,
    /// Paths present only in the old object.
    pub removed: FieldSet,
}

impl Comparison {
    fn filter(&mut self, schema: &Schema, target: Target) {
        for s in [&mut self.added, &mut self.modified, &mut self.removed] {
            s.retain(|p| !schema.ignored(p, target));
        }
    }

    fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

/// The path element naming a list item, or `None` when the item cannot be keyed.
fn item_element(list_type: &ListType, item: &Value) -> Option<PathElement> {
    match list_type {
        ListType::Atomic => None,
        ListType::Set => match item {
            Value::Object(_) | Value::Array(_) => None,
            v => Some(PathElement::Value(canonical_json(v))),
        },
        ListType::Map(keys) => {
            let obj = item.as_object()?;
            let mut key = Map::new();
            for k in keys.iter() {
                if let Some(v) = obj.get(*k) {
                    key.insert((*k).to_string(), v.clone());
                }
            }
            Some(PathElement::Key(canonical_json(&Value::Object(key))))
        }
    }
}

/// Items of a keyed list with their path elements, or `None` if any item cannot be keyed
/// (then the list is handled atomically).
fn keyed_items<'v>(
    list_type: &ListType,
    list: &'v [Value],
) -> Option<Vec<(PathElement, &'v Value)>> {
    if *list_type == ListType::Atomic {
        return None;
    }
    list.iter()
        .map(|i| item_element(list_type, i).map(|e| (e, i)))
        .collect()
}

fn child(path: &[PathElement], el: PathElement) -> Path {
    let mut p = path.to_vec();
    p.push(el);
    p
}

/// The set of fields an applied configuration specifies (before ignored fields are dropped).
pub fn to_field_set(obj: &Value, schema: &Schema) -> FieldSet {
    let mut out = FieldSet::new();
    walk_set(obj, &[], schema, &mut out);
    out
}

fn walk_set(v: &Value, path: &[PathElement], schema: &Schema, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() && !schema.is_atomic_map(path) => {
            for (k, cv) in m {
                walk_set(cv, &child(path, PathElement::Field(k.clone())), schema, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let lt = schema.list_type(path);
            match keyed_items(&lt, a) {
                Some(items) => {
                    for (el, item) in items {
                        let ip = child(path, el);
                        if let (ListType::Map(_), Value::Object(m)) = (&lt, item) {
                            for (k, cv) in m {
                                walk_set(
                                    cv,
                                    &child(&ip, PathElement::Field(k.clone())),
                                    schema,
                                    out,
                                );
                            }
                        }
                        out.insert(ip);
                    }
                }
                None => out.insert(path.to_vec()),
            }
        }
        _ if path.is_empty() => {}
        _ => out.insert(path.to_vec()),
    }
}

/// Drops keys whose value is null, recursively; an applied null means "not set".
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Merges an applied configuration into a live object: maps merge per key, keyed lists
/// merge per item (live order first, new items after), everything else is replaced.
pub fn merge(live: &Value, config: &Value, schema: &Schema) -> Value {
    merge_at(Some(live), config, &[], schema)
}

fn merge_at(live: Option<&Value>, cfg: &Value, path: &[PathElement], schema: &Schema) -> Value {
    match (live, cfg) {
        (Some(Value::Object(l)), Value::Object(c)) if !schema.is_atomic_map(path) => {
            let mut out = l.clone();
            for (k, cv) in c {
                if cv.is_null() {
                    out.remove(k);
                    continue;
                }
                let p = child(path, PathElement::Field(k.clone()));
                let merged = merge_at(l.get(k), cv, &p, schema);
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Some(Value::Array(l)), Value::Array(c)) => {
            let lt = schema.list_type(path);
            match (keyed_items(&lt, l), keyed_items(&lt, c)) {
                (Some(li), Some(ci)) => {
                    let mut out = Vec::with_capacity(li.len().max(ci.len()));
                    for (el, litem) in &li {
                        match ci.iter().find(|(e, _)| e == el) {
                            Some((_, citem)) => out.push(merge_at(
                                Some(litem),
                                citem,
                                &child(path, el.clone()),
                                schema,
                            )),
                            None => out.push((*litem).clone()),
                        }
                    }
                    for (el, citem) in &ci {
                        if !li.iter().any(|(e, _)| e == el) {
                            out.push(strip_nulls(citem));
                        }
                    }
                    Value::Array(out)
                }
                _ => strip_nulls(cfg),
            }
        }
        _ => strip_nulls(cfg),
    }
}

/// Compares two versions of an object the way field ownership needs it.
pub fn compare(old: &Value, new: &Value, schema: &Schema) -> Comparison {
    let mut out = Comparison::default();
    compare_at(Some(old), Some(new), &[], schema, &mut out);
    out
}

fn is_granular_map(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Object(_)))
}

fn compare_at(
    l: Option<&Value>,
    r: Option<&Value>,
    path: &[PathElement],
    schema: &Schema,
    out: &mut Comparison,
) {
    if l.is_none() && r.is_none() {
        return;
    }
    let both_maps_or_absent =
        (l.is_none() || is_granular_map(l)) && (r.is_none() || is_granular_map(r));
    if both_maps_or_absent && !schema.is_atomic_map(path) {
        if !path.is_empty() && !schema.is_struct(path) {
            match (l, r) {
                (None, Some(_)) => out.added.insert(path.to_vec()),
                (Some(_), None) => out.removed.insert(path.to_vec()),
                _ => {}
            }
        }
        let empty = Map::new();
        let lm = l.and_then(Value::as_object).unwrap_or(&empty);
        let rm = r.and_then(Value::as_object).unwrap_or(&empty);
        for k in lm.keys().chain(rm.keys().filter(|k| !lm.contains_key(*k))) {
            compare_at(
                lm.get(k),
                rm.get(k),
                &child(path, PathElement::Field(k.clone())),
                schema,
                out,
            );
        }
        return;
    }
    let la = l.and_then(Value::as_array);
    let ra = r.and_then(Value::as_array);
    let lists = (l.is_none() || la.is_some()) && (r.is_none() || ra.is_some());
    let nonempty = la.is_some_and(|a| !a.is_empty()) || ra.is_some_and(|a| !a.is_empty());
    if lists && nonempty {
        let lt = schema.list_type(path);
        let empty = Vec::new();
        if let (Some(li), Some(ri)) = (
            keyed_items(&lt, la.unwrap_or(&empty)),
            keyed_items(&lt, ra.unwrap_or(&empty)),
        ) {
            for (el, litem) in &li {
                let ritem = ri.iter().find(|(e, _)| e == el).map(|(_, v)| *v);
                compare_item(
                    Some(litem),
                    ritem,
                    &child(path, el.clone()),
                    &lt,
                    schema,
                    out,
                );
            }
            for (el, ritem) in &ri {
                if !li.iter().any(|(e, _)| e == el) {
                    compare_item(
                        None,
                        Some(ritem),
                        &child(path, el.clone()),
                        &lt,
                        schema,
                        out,
                    );
                }
            }
            return;
        }
    }
    // A leaf: a scalar, an atomic list or map, or a change of type.
    match (l, r) {
        (None, Some(_)) => out.added.insert(path.to_vec()),
        (Some(_), None) => out.removed.insert(path.to_vec()),
        (Some(a), Some(b)) if a != b => out.modified.insert(path.to_vec()),
        _ => {}
    }
}

fn compare_item(
    l: Option<&Value>,
    r: Option<&Value>,
    path: &[PathElement],
    lt: &ListType,
    schema: &Schema,
    out: &mut Comparison,
) {
    match (l, r) {
        (None, Some(_)) => out.added.insert(path.to_vec()),
        (Some(_), None) => out.removed.insert(path.to_vec()),
        _ => {}
    }
    if matches!(lt, ListType::Map(_)) {
        let empty = Map::new();
        let lm = l.and_then(Value::as_object).unwrap_or(&empty);
        let rm = r.and_then(Value::as_object).unwrap_or(&empty);
        for k in lm.keys().chain(rm.keys().filter(|k| !lm.contains_key(*k))) {
            compare_at(
                lm.get(k),
                rm.get(k),
                &child(path, PathElement::Field(k.clone())),
                schema,
                out,
            );
        }
    }
}

/// Looks up the value at `path`.
pub fn get_path<'v>(obj: &'v Value, path: &[PathElement], schema: &Schema) -> Option<&'v Value> {
    let mut cur = obj;
    for (i, el) in path.iter().enumerate() {
        cur = match el {
            PathElement::Field(f) => cur.as_object()?.get(f)?,
            PathElement::Index(n) => cur.as_array()?.get(*n)?,
            PathElement::Key(_) | PathElement::Value(_) => {
                let lt = schema.list_type(&path[..i]);
                cur.as_array()?
                    .iter()
                    .find(|item| item_element(&lt, item).as_ref() == Some(el))?
            }
        };
    }
    Some(cur)
}

/// Removes the value at `path` (a map key or a list item); missing paths are ignored.
pub fn remove_path(obj: &mut Value, path: &[PathElement], schema: &Schema) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for (i, el) in parent_path.iter().enumerate() {
        let next = match el {
            PathElement::Field(f) => cur.as_object_mut().and_then(|m| m.get_mut(f)),
            PathElement::Index(n) => cur.as_array_mut().and_then(|a| a.get_mut(*n)),
            PathElement::Key(_) | PathElement::Value(_) => {
                let lt = schema.list_type(&parent_path[..i]);
                cur.as_array_mut().and_then(|a| {
                    a.iter_mut()
                        .find(|item| item_element(&lt, item).as_ref() == Some(el))
                })
            }
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        PathElement::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        PathElement::Index(n) => {
            if let Some(a) = cur.as_array_mut()
                && *n < a.len()
            {
                a.remove(*n);
            }
        }
        PathElement::Key(_) | PathElement::Value(_) => {
            let lt = schema.list_type(parent_path);
            if let Some(a) = cur.as_array_mut() {
                a.retain(|item| item_element(&lt, item).as_ref() != Some(last));
            }
        }
    }
}

/// Keeps the parts of `merged` that a write to `target` may not change as they are in `live`.
fn reset_fields(merged: &mut Value, live: &Value, schema: &Schema, target: Target) {
    match target {
        Target::Main if schema.has_status_subresource() => match live.get("status") {
            Some(s) => merged["status"] = s.clone(),
            None => {
                if let Some(m) = merged.as_object_mut() {
                    m.remove("status");
                }
            }
        },
        Target::Main => {}
        Target::Scale => {
            let replicas = merged["spec"].get("replicas").cloned();
            *merged = live.clone();
            if let Some(r) = replicas {
                merged["spec"]["replicas"] = r;
            }
        }
        Target::Status => {
            let status = merged.get("status").cloned();
            *merged = live.clone();
            match status {
                Some(s) => merged["status"] = s,
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
    }
}

/// What an apply or update needs besides the objects.
#[derive(Clone, Copy, Debug)]
pub struct WriteContext<'a> {
    /// Field manager of the write.
    pub manager: &'a str,
    /// API version of the request.
    pub api_version: &'a str,
    /// Main resource or status subresource.
    pub target: Target,
    /// Current time, RFC 3339.
    pub now: &'a str,
    /// Structural hints of the kind.
    pub schema: &'a Schema,
}

impl WriteContext<'_> {
    fn subresource(&self) -> &'static str {
        match self.target {
            Target::Main => "",
            Target::Status => "status",
            Target::Scale => "scale",
        }
    }
}

/// Result of a successful apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The new object (without `metadata.managedFields`).
    pub object: Value,
    /// The new managed-fields entries.
    pub managers: Vec<ManagedEntry>,
}

/// Server-side apply of `config` onto `live` (use `{}` when the object does not exist yet).
///
/// Both objects must come without `metadata.managedFields`; `managers` are the live entries.
pub fn apply(
    live: &Value,
    config: &Value,
    mut managers: Vec<ManagedEntry>,
    force: bool,
    ctx: &WriteContext<'_>,
) -> Result<Applied, Vec<Conflict>> {
    let schema = ctx.schema;
    let sub = ctx.subresource();
    let mut set = to_field_set(config, schema);
    set.retain(|p| !schema.ignored(p, ctx.target));
    let mut merged = merge(live, config, schema);

    let mine = managers
        .iter()
        .position(|e| e.is(ctx.manager, Operation::Apply, ctx.api_version, sub));
    let mut entry = match mine {
        Some(i) => managers.remove(i),
        None => ManagedEntry {
            manager: ctx.manager.to_string(),
            operation: Operation::Apply,
            api_version: ctx.api_version.to_string(),
            time: None,
            subresource: sub.to_string(),
            fields: FieldSet::new(),
        },
    };
    let last = std::mem::take(&mut entry.fields);

    // Prune what this manager applied before and no longer applies, unless still owned.
    let owned = managers
        .iter()
        .fold(set.clone(), |acc, e| acc.union(&e.fields));
    let dropped: Vec<Path> = last
        .difference(&set)
        .iter()
        .filter(|p| !owned.contains(p) && !owned.has_descendant(p))
        .cloned()
        .collect();
    for p in &dropped {
        remove_path(&mut merged, p, schema);
        remove_empty_ancestors(&mut merged, p, &owned, schema);
    }
    reset_fields(&mut merged, live, schema, ctx.target);

    let mut cmp = compare(live, &merged, schema);
    cmp.filter(schema, ctx.target);
    let changed = cmp.changed();
    let mut conflicts = Vec::new();
    for other in &managers {
        for p in other.fields.intersection(&changed).iter() {
            conflicts.push(Conflict {
                manager: other.display(),
                field: path_string(p),
            });
        }
    }
    if !conflicts.is_empty() && !force {
        conflicts.sort_by(|a, b| (&a.manager, &a.field).cmp(&(&b.manager, &b.field)));
        return Err(conflicts);
    }
    for other in &mut managers {
        other.fields = other.fields.difference(&changed).difference(&cmp.removed);
    }
    managers.retain(|e| !e.fields.is_empty());

    if merged != *live || set != last || entry.time.is_none() {
        entry.time = Some(ctx.now.to_string());
    }
    entry.api_version = ctx.api_version.to_string();
    entry.fields = set;
    if !entry.fields.is_empty() {
        managers.push(entry);
    }
    Ok(Applied {
        object: merged,
        managers,
    })
}

/// Ownership after a non-apply write (create, update, patch) by `ctx.manager`.
pub fn update(
    old: &Value,
    new: &Value,
    mut managers: Vec<ManagedEntry>,
    ctx: &WriteContext<'_>,
) -> Vec<ManagedEntry> {
    let mut cmp = compare(old, new, ctx.schema);
    cmp.filter(ctx.schema, ctx.target);
    let changed = cmp.changed();
    for e in &mut managers {
        e.fields = e.fields.difference(&changed).difference(&cmp.removed);
    }
    if !changed.is_empty() {
        let sub = ctx.subresource();
        match managers
            .iter_mut()
            .find(|e| e.is(ctx.manager, Operation::Update, ctx.api_version, sub))
        {
            Some(e) => {
                e.fields = e.fields.union(&changed);
                e.time = Some(ctx.now.to_string());
            }
            None => managers.push(ManagedEntry {
                manager: ctx.manager.to_string(),
                operation: Operation::Update,
                api_version: ctx.api_version.to_string(),
                time: Some(ctx.now.to_string()),
                subresource: sub.to_string(),
                fields: changed,
            }),
        }
    }
    managers.retain(|e| !e.fields.is_empty());
    managers
}

/// After pruning `path`, removes parents left empty that nobody owns (never `metadata`).
fn remove_empty_ancestors(
    obj: &mut Value,
    path: &[PathElement],
    owned: &FieldSet,
    schema: &Schema,
) {
    let mut end = path.len();
    while end > 1 {
        end -= 1;
        let parent = &path[..end];
        if parent == [PathElement::Field("metadata".into())] || owned.contains(parent) {
            return;
        }
        let empty = match get_path(obj, parent, schema) {
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        if !empty {
            return;
        }
        remove_path(obj, parent, schema);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    const NOW: &str = "2025-01-01T00:00:00Z";

    fn ctx<'a>(schema: &'a Schema, manager: &'a str) -> WriteContext<'a> {
        WriteContext {
            manager,
            api_version: "v1",
            target: Target::Main,
            now: NOW,
            schema,
        }
    }

    fn cm_schema() -> Schema {
        Registry::new()
            .by_kind("", "ConfigMap")
            .unwrap()
            .schema
            .clone()
    }

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}, "data": data})
    }

    #[test]
    fn apply_records_leaves_without_dot_markers() {
        let s = cm_schema();
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"app": "x"}}, "data": {"key": "v"}});
        let out = apply(&json!({}), &config, vec![], false, &ctx(&s, "mgr")).unwrap();
        assert_eq!(out.object["data"]["key"], "v");
        assert_eq!(out.managers.len(), 1);
        let enc = encode_managed_fields(&out.managers);
        assert_eq!(
            enc[0]["fieldsV1"],
            json!({"f:data": {"f:key": {}}, "f:metadata": {"f:labels": {"f:app": {}}}})
        );
        assert_eq!(enc[0]["operation"], "Apply");
        assert_eq!(enc[0]["manager"], "mgr");
    }

    #[test]
    fn identical_reapply_changes_nothing() {
        let s = cm_schema();
        let config = cm(json!({"key": "v"}));
        let first = apply(&json!({}), &config, vec![], false, &ctx(&s, "mgr")).unwrap();
        let later = WriteContext {
            now: "2030-01-01T00:00:00Z",
            ..ctx(&s, "mgr")
        };
        let second = apply(
            &first.object,
            &config,
            first.managers.clone(),
            false,
            &later,
        )
        .unwrap();
        assert_eq!(second, first);
    }

    #[test]
    fn dropped_fields_are_pruned_unless_shared() {
        let s = cm_schema();
        let first = apply(
            &json!({}),
            &cm(json!({"a": "1", "b": "2"})),
            vec![],
            false,
            &ctx(&s, "m1"),
        )
        .unwrap();
        // m2 co-owns "b" by applying the same value: no conflict.
        let second = apply(
            &first.object,
            &cm(json!({"b": "2"})),
            first.managers,
            false,
            &ctx(&s, "m2"),
        )
        .unwrap();
        let bare = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let third = apply(
            &second.object,
            &bare,
            second.managers,
            false,
            &ctx(&s, "m1"),
        )
        .unwrap();
        assert_eq!(third.object["data"], json!({"b": "2"}));
        // m1 now owns nothing and disappears; m2 keeps "b".
        assert_eq!(third.managers.len(), 1);
        assert_eq!(third.managers[0].manager, "m2");
        // m2 drops "b": data becomes empty and, unowned, goes away.
        let fourth = apply(
            &third.object,
            &bare,
            third.managers.clone(),
            false,
            &ctx(&s, "m2"),
        )
        .unwrap();
        assert!(fourth.object.get("data").is_none());
        assert!(fourth.managers.is_empty());
        // Applying an explicitly empty map owns the map itself and keeps it.
        let fifth = apply(
            &third.object,
            &cm(json!({})),
            third.managers,
            false,
            &ctx(&s, "m2"),
        )
        .unwrap();
        assert_eq!(fifth.object["data"], json!({}));
        assert_eq!(
            fifth.managers[0].fields.to_fields_v1(),
            json!({"f:data": {}})
        );
    }

    #[test]
    fn conflicts_name_owner_and_field_and_force_takes_over() {
        let s = cm_schema();
        let first = apply(
            &json!({}),
            &cm(json!({"key": "a"})),
            vec![],
            false,
            &ctx(&s, "owner"),
        )
        .unwrap();
        let err = apply(
            &first.object,
            &cm(json!({"key": "b"})),
            first.managers.clone(),
            false,
            &ctx(&s, "other"),
        )
        .unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "\"owner\"".into(),
                field: ".data.key".into()
            }]
        );
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 1 conflict: conflict with \"owner\": .data.key"
        );
        let forced = apply(
            &first.object,
            &cm(json!({"key": "b"})),
            first.managers,
            true,
            &ctx(&s, "other"),
        )
        .unwrap();
        assert_eq!(forced.object["data"]["key"], "b");
        assert_eq!(forced.managers.len(), 1);
        assert_eq!(forced.managers[0].manager, "other");
    }

    #[test]
    fn update_takes_changed_fields_with_dot_markers() {
        let s = cm_schema();
        let created = cm(json!({"key": "v"}));
        let m = update(&json!({}), &created, vec![], &ctx(&s, "kubectl-create"));
        let enc = encode_managed_fields(&m);
        assert_eq!(
            enc[0]["fieldsV1"],
            json!({"f:data": {".": {}, "f:key": {}}})
        );
        assert_eq!(enc[0]["operation"], "Update");
        // An applier taking the field from an Update manager conflicts with "x using v1".
        let err = apply(
            &created,
            &cm(json!({"key": "w"})),
            m.clone(),
            false,
            &ctx(&s, "mgr"),
        )
        .unwrap_err();
        assert_eq!(err[0].manager, "\"kubectl-create\" using v1");
        // A later update of the same field by someone else moves ownership.
        let newer = cm(json!({"key": "z"}));
        let m2 = update(&created, &newer, m, &ctx(&s, "editor"));
        assert_eq!(m2.len(), 2);
        let creator = m2.iter().find(|e| e.manager == "kubectl-create").unwrap();
        assert!(creator.fields.len() == 1); // still owns the data map itself
        let editor = m2.iter().find(|e| e.manager == "editor").unwrap();
        assert_eq!(
            editor.fields.to_fields_v1(),
            json!({"f:data": {"f:key": {}}})
        );
    }

    #[test]
    fn associative_lists_merge_by_key_and_atomic_lists_replace() {
        let reg = Registry::new();
        let s = reg.by_kind("apps", "Deployment").unwrap().schema.clone();
        let dep = |containers: Value| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": containers}}}})
        };
        let c = WriteContext {
            api_version: "apps/v1",
            ..ctx(&s, "helm")
        };
        let first = apply(
            &json!({}),
            &dep(json!([{"name": "app", "image": "x:1", "args": ["a"]}])),
            vec![],
            false,
            &c,
        )
        .unwrap();
        let side = WriteContext {
            manager: "injector",
            ..c
        };
        let second = apply(
            &first.object,
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "s:1"}]}}}}),
            first.managers,
            false,
            &side,
        )
        .unwrap();
        let names: Vec<&str> = second.object["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["app", "sidecar"]);
        let enc = encode_managed_fields(&second.managers);
        let injector = enc
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "injector")
            .unwrap();
        assert_eq!(
            injector["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"sidecar\"}"],
            json!({".": {}, "f:image": {}, "f:name": {}})
        );
        // The selector is atomic: one leaf.
        let helm = enc
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "helm")
            .unwrap();
        assert_eq!(helm["fieldsV1"]["f:spec"]["f:selector"], json!({}));
        // Helm dropping its container removes only that item.
        let third = apply(&second.object, &dep(json!([])), second.managers, false, &c).unwrap();
        let left = &third.object["spec"]["template"]["spec"]["containers"];
        assert_eq!(left.as_array().unwrap().len(), 1);
        assert_eq!(left[0]["name"], "sidecar");
    }

    #[test]
    fn status_is_reset_on_main_resource_writes() {
        let reg = Registry::new();
        let s = reg
            .by_kind("keda.sh", "ScaledObject")
            .unwrap()
            .schema
            .clone();
        let live = json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "s"},
            "spec": {"minReplicaCount": 1}, "status": {"health": {}}});
        let config = json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "s"},
            "spec": {"minReplicaCount": 2}, "status": {"bogus": true}});
        let out = apply(&live, &config, vec![], false, &ctx(&s, "m")).unwrap();
        assert_eq!(out.object["status"], json!({"health": {}}));
        assert_eq!(
            out.managers[0].fields.to_fields_v1(),
            json!({"f:spec": {"f:minReplicaCount": {}}})
        );
    }

    #[test]
    fn managed_fields_round_trip_and_sort() {
        let s = cm_schema();
        let a = apply(
            &json!({}),
            &cm(json!({"k": "v"})),
            vec![],
            false,
            &ctx(&s, "z-applier"),
        )
        .unwrap();
        let m = update(
            &a.object,
            &cm(json!({"k": "v", "j": "w"})),
            a.managers,
            &ctx(&s, "a-updater"),
        );
        let enc = encode_managed_fields(&m);
        assert_eq!(enc[0]["operation"], "Apply");
        assert_eq!(enc[1]["operation"], "Update");
        let dec = decode_managed_fields(Some(&enc));
        assert_eq!(encode_managed_fields(&dec), enc);
    }
}
