//! Object storage: one map per resource, one global resourceVersion counter, and a bounded
//! event history so watches can resume from a resourceVersion.

use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Identifies a resource: (group, plural).
pub type ResourceKey = (&'static str, &'static str);

/// How many events the store keeps for watches that resume from an older resourceVersion.
const HISTORY: usize = 10_000;

/// A change, as a watch reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object changed.
    Modified,
    /// The object was removed.
    Deleted,
}

impl EventType {
    /// The watch event type string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One stored change.
#[derive(Clone, Debug)]
pub struct Event {
    /// resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// Which resource.
    pub resource: ResourceKey,
    /// The object after the change (for deletions, its last state).
    pub object: Value,
    /// The object before the change, for modifications.
    pub old: Option<Value>,
}

/// All objects.
#[derive(Debug)]
pub struct Store {
    objects: BTreeMap<ResourceKey, BTreeMap<(String, String), Value>>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    events: broadcast::Sender<Arc<Event>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

fn key_of(obj: &Value) -> (String, String) {
    let m = &obj["metadata"];
    (
        m["namespace"].as_str().unwrap_or_default().to_string(),
        m["name"].as_str().unwrap_or_default().to_string(),
    )
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        let (events, _) = broadcast::channel(4096);
        Store {
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            events,
        }
    }

    /// The latest resourceVersion handed out.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch can resume from.
    pub fn oldest_resumable_rv(&self) -> u64 {
        self.history.front().map(|e| e.rv - 1).unwrap_or(self.rv)
    }

    /// One object.
    pub fn get(&self, res: ResourceKey, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&res)?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of a resource, sorted by namespace then name; `ns` of `None` means all.
    pub fn list<'a>(
        &'a self,
        res: ResourceKey,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .get(&res)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(move |((n, _), _)| ns.is_none_or(|want| n == want))
            .map(|(_, v)| v)
    }

    /// Stores a new or changed object under a fresh resourceVersion and returns it.
    pub fn put(&mut self, res: ResourceKey, mut obj: Value) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let key = key_of(&obj);
        let old = self
            .objects
            .entry(res)
            .or_default()
            .insert(key, obj.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(kind, res, obj.clone(), old);
        obj
    }

    /// Removes an object; the returned last state carries the deletion's resourceVersion.
    pub fn remove(&mut self, res: ResourceKey, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self
            .objects
            .get_mut(&res)?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        self.record(EventType::Deleted, res, obj.clone(), None);
        Some(obj)
    }

    fn record(
        &mut self,
        kind: EventType,
        resource: ResourceKey,
        object: Value,
        old: Option<Value>,
    ) {
        let ev = Arc::new(Event {
            rv: self.rv,
            kind,
            resource,
            object,
            old,
        });
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ev.clone());
        // Nobody listening is fine.
        let _ = self.events.send(ev);
    }

    /// Events after `rv` for a resource, plus a receiver for later ones; taken together
    /// under the store lock so nothing falls between them.
    pub fn subscribe(
        &self,
        res: ResourceKey,
        rv: u64,
    ) -> (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>) {
        let past = self
            .history
            .iter()
            .filter(|e| e.rv > rv && e.resource == res)
            .cloned()
            .collect();
        (past, self.events.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CM: ResourceKey = ("", "configmaps");

    #[test]
    fn resource_versions_increase_and_deletes_get_one() {
        let mut s = Store::new();
        let a = s.put(CM, json!({"metadata": {"name": "a", "namespace": "x"}}));
        let b = s.put(CM, json!({"metadata": {"name": "b", "namespace": "w"}}));
        assert_eq!(a["metadata"]["resourceVersion"], "1");
        assert_eq!(b["metadata"]["resourceVersion"], "2");
        let names: Vec<&str> = s
            .list(CM, None)
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b", "a"]); // sorted by namespace, then name
        assert_eq!(s.list(CM, Some("x")).count(), 1);
        let gone = s.remove(CM, "x", "a").unwrap();
        assert_eq!(gone["metadata"]["resourceVersion"], "3");
        assert!(s.get(CM, "x", "a").is_none());
        let (past, _rx) = s.subscribe(CM, 1);
        let kinds: Vec<EventType> = past.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventType::Added, EventType::Deleted]);
    }
}
