//! Pure renderers: the platform spec in, the objects we want on the cluster out.

pub mod delivery;
pub mod instrumentation;
pub mod scaling;
pub mod values;

use super::Error;
use super::objects::DesiredObject;
use crate::spec::PlatformSpec;

/// Every object the spec wants that we create and own (labelled, pruned when unwanted),
/// in apply order. The DSN Secret is not here: it needs Secrets Manager.
#[tracing::instrument(level = "debug", name = "plan.cluster_objects", skip_all)]
pub fn render_owned_objects(spec: &PlatformSpec) -> Result<Vec<DesiredObject>, Error> {
    let mut objects = Vec::new();
    objects.extend(delivery::render_delivery(spec));
    objects.push(scaling::render_scaled_object(spec));
    objects.push(instrumentation::render_instrumentation(spec)?);
    Ok(objects)
}

/// The namespace of the workloads the instrumentation names (default: the cluster's).
pub fn workload_namespace<'a>(spec: &'a PlatformSpec, namespace: &'a Option<String>) -> &'a str {
    namespace.as_deref().unwrap_or(&spec.cluster.namespace)
}
