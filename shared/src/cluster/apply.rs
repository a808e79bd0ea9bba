//! Server-side apply under one field manager, skipping objects the server already holds
//! as desired (a no-op reconcile sends no write), and pruning what we made and no longer want.

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use super::{Call, Error};

use super::objects::{DesiredObject, MANAGED_BY, MANAGED_BY_LABEL, PLATFORM_LABEL};
use super::render::instrumentation::INSTRUMENTED_LABEL;

/// What applying one object did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOutcome {
    /// The object did not exist and was created.
    Created,
    /// The object existed and differed in these fields.
    Updated { changes: Vec<FieldChange> },
    /// The server already holds the desired object; nothing was sent.
    Unchanged,
    /// The object does not exist and is not ours to create (a workload we annotate).
    Missing,
    /// Another field manager owns a field we want; nothing was overwritten.
    Conflict { message: String },
}

impl ApplyOutcome {
    /// One word for the outcome (`created`, `updated`, ...), for logs and answers.
    pub fn name(&self) -> &'static str {
        match self {
            ApplyOutcome::Created => "created",
            ApplyOutcome::Updated { .. } => "updated",
            ApplyOutcome::Unchanged => "unchanged",
            ApplyOutcome::Missing => "missing",
            ApplyOutcome::Conflict { .. } => "conflict",
        }
    }
}

/// One field that differs: where, what the server has, what we want (secret values redacted).
pub use crate::diff::FieldChange;

/// Placeholder for values of a Secret's data in diffs and logs.
const REDACTED: &str = "<redacted>";

/// The Kubernetes API of one object's kind, namespaced when the object is.
pub fn api_for(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// Applies one object unless the live one already matches; conflicts are reported, not forced.
pub async fn apply_object(
    client: &kube::Client,
    field_manager: &str,
    desired: &DesiredObject,
    dry_run: bool,
) -> Result<ApplyOutcome, Error> {
    let live = read_live(client, desired).await?;
    apply_over_live(client, field_manager, desired, live, dry_run).await
}

/// The server's copy of the object, if any.
pub async fn read_live(
    client: &kube::Client,
    desired: &DesiredObject,
) -> Result<Option<DynamicObject>, Error> {
    api_for(client, &desired.resource, desired.namespace.as_deref())
        .get_opt(&desired.name)
        .await
        .map_err(|source| desired.call("get").failed(source))
}

/// [`apply_object`], also returning the object as the server holds it afterwards (its
/// answer to the apply, or what it already held); `None` when nothing landed.
pub async fn apply_returning_live(
    client: &kube::Client,
    field_manager: &str,
    desired: &DesiredObject,
    dry_run: bool,
) -> Result<(ApplyOutcome, Option<Value>), Error> {
    let live = read_live(client, desired).await?;
    apply_over_live_returning(client, field_manager, desired, live, dry_run).await
}

/// [`apply_object`] when the live object was already read.
pub async fn apply_over_live(
    client: &kube::Client,
    field_manager: &str,
    desired: &DesiredObject,
    live: Option<DynamicObject>,
    dry_run: bool,
) -> Result<ApplyOutcome, Error> {
    let (outcome, _) =
        apply_over_live_returning(client, field_manager, desired, live, dry_run).await?;
    Ok(outcome)
}

/// [`apply_over_live`], also returning the object as the server holds it afterwards.
pub async fn apply_over_live_returning(
    client: &kube::Client,
    field_manager: &str,
    desired: &DesiredObject,
    live: Option<DynamicObject>,
    dry_run: bool,
) -> Result<(ApplyOutcome, Option<Value>), Error> {
    let api = api_for(client, &desired.resource, desired.namespace.as_deref());
    let mut body = desired.body_with_hash();
    if let Some(live) = &live
        && desired.owned
        && !created_by_us(live)
    {
        // Someone else made it (an app-of-apps Application, say): we only own our fields
        // and never label it ours, so prune can never delete it.
        if let Some(labels) = body
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            labels.remove(MANAGED_BY_LABEL);
            labels.remove(PLATFORM_LABEL);
        }
    }
    if let Some(live) = &live
        && let Some(platform) = other_platform(&body, live)
    {
        // Same names, same field manager: applying would silently take it over.
        return Err(Error::OtherPlatform {
            object: desired.id(),
            platform,
        });
    }
    let outcome = match &live {
        None if !desired.owned => return Ok((ApplyOutcome::Missing, None)),
        None => ApplyOutcome::Created,
        Some(live) => {
            let live = serde_json::to_value(live).unwrap_or(Value::Null);
            let mut changes = differing_fields(&body, &live);
            if changes.is_empty() {
                return Ok((ApplyOutcome::Unchanged, Some(live)));
            }
            if desired.resource.kind == "Secret" {
                for change in &mut changes {
                    change.before = Value::String(REDACTED.into());
                    change.after = Value::String(REDACTED.into());
                }
            }
            ApplyOutcome::Updated { changes }
        }
    };
    // Strict: a field the server does not know fails loudly instead of being dropped (a
    // real server refuses an apply outside a CRD's schema with HTTP 500 whatever this says).
    let mut params = PatchParams::apply(field_manager).validation_strict();
    if dry_run {
        params = params.dry_run();
    }
    match api
        .patch(&desired.name, &params, &Patch::Apply(&body))
        .await
    {
        // A dry run tells what the server would store, defaults and other managers'
        // fields included: the diff is taken from its answer, not from our body.
        Ok(applied) if dry_run => {
            let applied = serde_json::to_value(applied).ok();
            let outcome = match (&outcome, &live, &applied) {
                (ApplyOutcome::Updated { .. }, Some(live), Some(stored)) => {
                    let live = serde_json::to_value(live).unwrap_or(Value::Null);
                    let changes = stored_changes(&desired.resource.kind, &live, stored);
                    if changes.is_empty() {
                        ApplyOutcome::Unchanged
                    } else {
                        ApplyOutcome::Updated { changes }
                    }
                }
                _ => outcome,
            };
            Ok((outcome, applied))
        }
        Ok(applied) => Ok((outcome, serde_json::to_value(applied).ok())),
        Err(kube::Error::Api(status)) if status.is_conflict() => Ok((
            ApplyOutcome::Conflict {
                message: status.message.clone(),
            },
            None,
        )),
        Err(source) => Err(desired.call("patch").failed(source)),
    }
}

/// What the server would change in `live` to store `stored` (its answer to a dry-run
/// apply): every field of the object, without what the server keeps for itself
/// (resource version, generation, managed fields, uid, creation time, status) and our
/// applied-content hash; a Secret's values redacted.
pub fn stored_changes(kind: &str, live: &Value, stored: &Value) -> Vec<FieldChange> {
    let strip = |object: &Value| {
        let mut object = object.clone();
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            for key in [
                "resourceVersion",
                "generation",
                "managedFields",
                "uid",
                "creationTimestamp",
            ] {
                metadata.remove(key);
            }
            if let Some(annotations) = metadata
                .get_mut("annotations")
                .and_then(Value::as_object_mut)
            {
                annotations.remove(super::objects::APPLIED_HASH_ANNOTATION);
            }
        }
        object
    };
    let mut changes = crate::diff::field_changes(&strip(live), &strip(stored));
    if kind == "Secret" {
        for change in changes
            .iter_mut()
            .filter(|c| c.path.starts_with(".data.") || c.path.starts_with(".stringData."))
        {
            for value in [&mut change.before, &mut change.after] {
                if !value.is_null() {
                    *value = Value::String(REDACTED.into());
                }
            }
        }
    }
    changes
}

/// Field paths (`.a.b`) where `desired` is not contained in `live`.
pub fn differing_paths(desired: &Value, live: &Value) -> Vec<String> {
    differing_fields(desired, live)
        .into_iter()
        .map(|c| c.path)
        .collect()
}

/// Fields where `desired` is not contained in `live`. Maps are compared key by key (the
/// server adds defaults and other managers' fields); everything else exactly.
pub fn differing_fields(desired: &Value, live: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    collect_differences("", desired, Some(live), &mut out);
    out
}

fn collect_differences(
    path: &str,
    desired: &Value,
    live: Option<&Value>,
    out: &mut Vec<FieldChange>,
) {
    // A differing map is told leaf by leaf, each one line; a list (atomic to the server)
    // as a whole.
    let changed = |out: &mut Vec<FieldChange>| {
        let before = live.cloned().unwrap_or(Value::Null);
        if !desired.is_object() {
            out.push(FieldChange {
                path: if path.is_empty() {
                    ".".into()
                } else {
                    path.into()
                },
                before,
                after: desired.clone(),
            });
            return;
        }
        for leaf in crate::diff::field_changes(&before, desired) {
            let path = match leaf.path.as_str() {
                "." if path.is_empty() => ".".to_string(),
                "." => path.to_string(),
                rest => format!("{path}{rest}"),
            };
            out.push(FieldChange { path, ..leaf });
        }
    };
    match (desired, live) {
        (Value::Object(want), Some(Value::Object(have))) => {
            for (key, value) in want {
                let child = format!("{path}.{key}");
                match have.get(key) {
                    Some(existing) => collect_differences(&child, value, Some(existing), out),
                    None if value.is_null() => {}
                    None => collect_differences(&child, value, None, out),
                }
            }
        }
        // A list of named items (containers, env) is a map keyed by name to the server:
        // other managers' items may sit beside ours.
        (Value::Array(want), Some(Value::Array(have)))
            if want != have && keyed_by_name(want) && keyed_by_name(have) =>
        {
            for item in want {
                let name = &item["name"];
                let child = format!("{path}[name={}]", name.as_str().unwrap_or_default());
                let existing = have.iter().find(|h| h["name"] == *name);
                collect_differences(&child, item, existing, out);
            }
        }
        (want, Some(have)) if want == have => {}
        // Other lists are atomic (a change is the whole list), but their items' numbers
        // may come back as floats too.
        (Value::Array(want), Some(Value::Array(have)))
            if want.len() == have.len()
                && want
                    .iter()
                    .zip(have)
                    .all(|(item, existing)| differing_fields(item, existing).is_empty()) => {}
        // The server may render integers as floats and back; compare numbers by value.
        (Value::Number(a), Some(Value::Number(b))) if a.as_f64() == b.as_f64() => {}
        _ => changed(out),
    }
}

/// The platform a live object belongs to when it is not the one `body` labels: our
/// ownership label, or the label on a workload another platform instrumented.
fn other_platform(body: &Value, live: &DynamicObject) -> Option<String> {
    let labels = live.metadata.labels.as_ref()?;
    [PLATFORM_LABEL, INSTRUMENTED_LABEL]
        .into_iter()
        .find_map(|key| {
            let ours = body["metadata"]["labels"][key].as_str()?;
            let theirs = labels.get(key)?;
            (theirs != ours).then(|| theirs.clone())
        })
}

/// The field manager that owns `path` (`["spec", "destination", "name"]`) of a live object.
pub fn manager_of(live: &Value, path: &[&str]) -> Option<String> {
    live["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find_map(|entry| {
            let mut fields = &entry["fieldsV1"];
            for key in path {
                fields = fields.get(format!("f:{key}"))?;
            }
            entry["manager"].as_str().map(str::to_string)
        })
}

/// The field managers a server-side apply conflict names (`conflict with "argocd-controller"`).
pub fn conflicting_managers(message: &str) -> Vec<String> {
    let mut managers: Vec<String> = message
        .split("conflict")
        .skip(1)
        .filter_map(|part| part.split('"').nth(1))
        .map(str::to_string)
        .collect();
    managers.dedup();
    managers
}

/// Whether the live object carries our ownership label.
pub(crate) fn created_by_us(live: &DynamicObject) -> bool {
    live.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY)
}

fn keyed_by_name(items: &[Value]) -> bool {
    items
        .iter()
        .all(|i| i.get("name").is_some_and(Value::is_string))
}

/// Deletes one object (a 404 is fine: someone was first); a dry run deletes nothing.
pub async fn prune_object(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: &str,
    name: &str,
    dry_run: bool,
) -> Result<(), Error> {
    if dry_run {
        return Ok(());
    }
    match api_for(client, resource, Some(namespace))
        .delete(name, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(source) => Err(Call {
            verb: "delete",
            resource,
            namespace: Some(namespace),
            name: Some(name),
        }
        .failed(source)),
    }
}
