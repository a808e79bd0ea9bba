//! The read phase of a reconcile: everything it needs from the cluster, fetched at once.
//!
//! One list per kind and namespace of our labelled objects (it also serves prune), a GET
//! only for what a list cannot show (the DSN Secret, which is never listed; an object not,
//! or not yet, labelled ours), and one list per workload kind in each namespace the spec
//! instruments (opt-in, release and restarts read from it). All of it concurrently: on a
//! real network the reads cost one round trip, not one each.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use kube::api::{ApiResource, DynamicObject, ListParams};

use super::apply::{api_for, read_live};
use super::objects::{DesiredObject, owner_selector};
use super::permissions::release_scopes;
use super::restart::{read_workload, workload_id};
use super::{Call, Error};
use crate::spec::{PlatformSpec, WorkloadRef};

/// What the cluster holds, as read at the start of a reconcile.
#[derive(Debug, Default)]
pub struct Observed {
    /// The live copy of each desired object, by `Kind/namespace/name` (`None`: absent).
    pub objects: BTreeMap<String, Option<DynamicObject>>,
    /// Our labelled objects per kind and namespace (what prune may delete).
    pub labelled: BTreeMap<(String, String), Vec<DynamicObject>>,
    /// Workloads by `Kind/namespace/name`: every one of the namespaces we instrument, and
    /// the DSN readers.
    pub workloads: BTreeMap<String, DynamicObject>,
    /// Reads that failed, by the object or scope they were for.
    pub failures: Vec<(String, Error)>,
    /// `Kind/namespace` scopes whose list failed: what they hold is unknown, not absent.
    pub unread: Vec<String>,
}

impl Observed {
    /// Whether the workload `Kind/namespace/name` could not be read (its list failed).
    pub fn unread_workload(&self, id: &str) -> bool {
        self.unread.iter().any(|scope| {
            id.strip_prefix(scope.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// The live copy of `object`, or the error that kept it from being read.
    pub fn object(&mut self, object: &DesiredObject) -> Result<Option<DynamicObject>, Error> {
        if let Some(at) = self.failures.iter().position(|(id, _)| *id == object.id()) {
            return Err(self.failures.remove(at).1);
        }
        Ok(self.objects.get(&object.id()).cloned().flatten())
    }
}

/// Reads `desired` objects, their kinds' labelled objects, and the workloads, at once.
pub async fn observe(
    client: &kube::Client,
    spec: &PlatformSpec,
    desired: &[&DesiredObject],
) -> Observed {
    let selector = owner_selector(&spec.platform.name);
    // (kind, namespace) scopes of our labelled objects; Secrets are never listed.
    let mut scopes: Vec<(ApiResource, String)> = Vec::new();
    for object in desired {
        let namespace = object.namespace.clone().unwrap_or_default();
        if object.resource.kind != "Secret"
            && !scopes
                .iter()
                .any(|(r, ns)| r.kind == object.resource.kind && *ns == namespace)
        {
            scopes.push((object.resource.clone(), namespace));
        }
    }
    let lists = join_all(scopes.iter().map(|(resource, namespace)| {
        let selector = selector.clone();
        async move {
            api_for(client, resource, Some(namespace))
                .list(&ListParams::default().labels(&selector))
                .await
                .map(|l| typed(l.items, resource))
                .map_err(|source| list_call(resource, namespace).failed(source))
        }
    }));
    let workload_scopes = release_scopes(spec);
    let workload_lists = join_all(
        workload_scopes
            .iter()
            .map(|(resource, namespace)| async move {
                api_for(client, resource, Some(namespace))
                    .list(&ListParams::default())
                    .await
                    .map(|l| typed(l.items, resource))
                    .map_err(|source| list_call(resource, namespace).failed(source))
            }),
    );
    let (lists, workload_lists) = tokio::join!(lists, workload_lists);

    let mut observed = Observed::default();
    for ((resource, namespace), listed) in scopes.into_iter().zip(lists) {
        match listed {
            Ok(items) => {
                observed
                    .labelled
                    .insert((resource.kind.clone(), namespace), items);
            }
            Err(error) => observed
                .failures
                .push((format!("{}/{namespace}", resource.kind), error)),
        }
    }
    for ((resource, namespace), listed) in workload_scopes.into_iter().zip(workload_lists) {
        match listed {
            Ok(items) => {
                for item in items {
                    let name = item.metadata.name.clone().unwrap_or_default();
                    observed
                        .workloads
                        .insert(format!("{}/{namespace}/{name}", resource.kind), item);
                }
            }
            Err(error) => {
                observed
                    .unread
                    .push(format!("{}/{namespace}", resource.kind));
                observed
                    .failures
                    .push((format!("{}/{namespace}", resource.kind), error));
            }
        }
    }

    // What the lists could not show: GET by name, concurrently.
    let mut missing: Vec<&DesiredObject> = Vec::new();
    for object in desired {
        let namespace = object.namespace.clone().unwrap_or_default();
        match observed
            .labelled
            .get(&(object.resource.kind.clone(), namespace))
        {
            Some(items)
                if items
                    .iter()
                    .any(|i| i.metadata.name.as_deref() == Some(&object.name)) =>
            {
                let live = items
                    .iter()
                    .find(|i| i.metadata.name.as_deref() == Some(&object.name))
                    .cloned();
                observed.objects.insert(object.id(), live);
            }
            // Not ours, not yet, or its kind's list failed (then the GET says why).
            _ => missing.push(object),
        }
    }
    let readers: Vec<WorkloadRef> = crate::spec::chart::dsn_readers(spec)
        .into_iter()
        .filter(|w| !observed.workloads.contains_key(&workload_id(spec, w)))
        .collect();
    let (gets, reader_gets) = tokio::join!(
        join_all(missing.iter().map(|object| read_live(client, object))),
        join_all(readers.iter().map(|w| read_workload(client, spec, w))),
    );
    for (object, live) in missing.into_iter().zip(gets) {
        match live {
            Ok(live) => {
                observed.objects.insert(object.id(), live);
            }
            Err(error) => observed.failures.push((object.id(), error)),
        }
    }
    for (workload, live) in readers.iter().zip(reader_gets) {
        match live {
            Ok(Some(live)) => {
                observed.workloads.insert(workload_id(spec, workload), live);
            }
            Ok(None) => {}
            Err(error) => observed.failures.push((workload_id(spec, workload), error)),
        }
    }
    observed
}

/// List items come without `apiVersion` and `kind`: give them their resource's.
fn typed(mut items: Vec<DynamicObject>, resource: &ApiResource) -> Vec<DynamicObject> {
    for item in &mut items {
        item.types = Some(kube::api::TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        });
    }
    items
}

fn list_call<'a>(resource: &'a ApiResource, namespace: &'a str) -> Call<'a> {
    Call {
        verb: "list",
        resource,
        namespace: Some(namespace),
        name: None,
    }
}
