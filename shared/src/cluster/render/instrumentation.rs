//! The OpenTelemetry Operator `Instrumentation` and the workloads that opt in to it.

use serde_json::{Value, json};

use super::workload_namespace;
use crate::cluster::Error;
use crate::cluster::objects::{DesiredObject, instrumentation_resource, workload_resource};
use crate::spec::{InstrumentedWorkload, PlatformSpec};

/// Pod-template annotation that makes the operator inject the Python agent.
pub const INJECT_PYTHON_ANNOTATION: &str = "instrumentation.opentelemetry.io/inject-python";
/// Pod-template annotation prefix the operator turns into resource attributes.
pub const RESOURCE_ANNOTATION_PREFIX: &str = "resource.opentelemetry.io/";
/// Label on workloads we annotated, so a later reconcile finds the ones to release.
pub const INSTRUMENTED_LABEL: &str = "signoz-control-plane/instrumented-by";

/// Problems the operator's admission webhook would reject (empty when valid): the
/// spec's own instrumentation rules (sampler types, ratio in [0, 1], propagator names,
/// OTLP/HTTP on 4318), checked again here because a spec can be built without the loader.
pub fn instrumentation_problems(spec: &PlatformSpec) -> Vec<String> {
    crate::spec::validate(spec)
        .into_iter()
        .filter(|p| p.path.starts_with("instrumentation."))
        .map(|p| p.to_string())
        .collect()
}

/// The Instrumentation resource, validated as the operator validates it.
pub fn render_instrumentation(spec: &PlatformSpec) -> Result<DesiredObject, Error> {
    let i = &spec.instrumentation;
    let namespace = spec.cluster.namespace.clone();
    let id = format!("Instrumentation/{namespace}/{}", i.name);
    let problems = instrumentation_problems(spec);
    if !problems.is_empty() {
        return Err(Error::Invalid {
            object: id,
            problems,
        });
    }
    let mut sampler = json!({ "type": i.sampler.kind });
    if let Some(argument) = &i.sampler.argument {
        sampler["argument"] = json!(argument);
    }
    Ok(DesiredObject {
        resource: instrumentation_resource(),
        namespace: Some(namespace.clone()),
        name: i.name.clone(),
        body: json!({
            "apiVersion": "opentelemetry.io/v1alpha1",
            "kind": "Instrumentation",
            "metadata": {
                "name": i.name,
                "namespace": namespace,
                "labels": crate::cluster::objects::owner_labels(&spec.platform.name),
            },
            "spec": {
                "exporter": { "endpoint": crate::spec::chart::instrumentation_endpoint(spec) },
                "propagators": i.propagators,
                "sampler": sampler,
                "resource": { "resourceAttributes": {
                    "service.namespace": spec.platform.service_namespace,
                    "deployment.environment": spec.platform.environment,
                }},
                "python": {
                    "image": i.python_image,
                    "env": [{ "name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "http/protobuf" }],
                },
            },
        }),
        owned: true,
    })
}

/// The annotation `inject-python` value: the Instrumentation, namespace-qualified when
/// the workload lives elsewhere.
fn inject_value(spec: &PlatformSpec, workload_ns: &str) -> String {
    if workload_ns == spec.cluster.namespace {
        spec.instrumentation.name.clone()
    } else {
        format!("{}/{}", spec.cluster.namespace, spec.instrumentation.name)
    }
}

/// The fields we own on an opted-in workload: the inject annotation, the resource
/// attributes as the operator's `resource.opentelemetry.io/*` annotations, a label to find
/// it again, and `OTEL_SERVICE_NAME` on `container` (the one the operator injects into,
/// the first; the operator never overrides an explicit `OTEL_SERVICE_NAME`).
pub fn render_workload_optin(
    spec: &PlatformSpec,
    workload: &InstrumentedWorkload,
    container: Option<&str>,
) -> Result<DesiredObject, Error> {
    let namespace = workload_namespace(spec, &workload.namespace).to_string();
    let annotations = json!({
        INJECT_PYTHON_ANNOTATION: inject_value(spec, &namespace),
        format!("{RESOURCE_ANNOTATION_PREFIX}service.name"): workload.service_name,
        format!("{RESOURCE_ANNOTATION_PREFIX}service.namespace"): spec.platform.service_namespace,
        format!("{RESOURCE_ANNOTATION_PREFIX}deployment.environment"): spec.platform.environment,
    });
    let mut object = workload_fields(
        spec,
        &workload.kind,
        &namespace,
        &workload.name,
        Some(annotations),
    )?;
    if let Some(container) = container {
        object.body["spec"]["template"]["spec"] = json!({ "containers": [{
            "name": container,
            "env": [{ "name": "OTEL_SERVICE_NAME", "value": workload.service_name }],
        }]});
    }
    Ok(object)
}

/// The first container of a workload's pod template (where the operator injects).
pub fn first_container(workload: &Value) -> Option<&str> {
    workload
        .pointer("/spec/template/spec/containers/0/name")?
        .as_str()
}

/// An apply body for a workload we only own fields of. `None` annotations gives the
/// empty configuration that releases every field we owned (our annotations and label).
pub fn workload_fields(
    spec: &PlatformSpec,
    kind: &str,
    namespace: &str,
    name: &str,
    annotations: Option<Value>,
) -> Result<DesiredObject, Error> {
    let resource = workload_resource(kind).ok_or_else(|| Error::UnsupportedWorkload {
        kind: kind.into(),
        name: name.into(),
    })?;
    let mut body = json!({
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": { "name": name, "namespace": namespace },
    });
    if let Some(annotations) = annotations {
        body["metadata"]["labels"] = json!({ INSTRUMENTED_LABEL: spec.platform.name });
        body["spec"] = json!({ "template": { "metadata": { "annotations": annotations } } });
    }
    Ok(DesiredObject {
        resource,
        namespace: Some(namespace.into()),
        name: name.into(),
        body,
        owned: false,
    })
}
