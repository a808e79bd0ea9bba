//! The KEDA `ScaledObject` scaling collectors on ingestion pressure.

use serde_json::json;

use crate::alarms::overrides::ReplicaOverride;
use crate::cluster::objects::{DesiredObject, owner_labels, scaled_object_resource};
use crate::spec::chart::collector_deployment;
use crate::spec::{PlatformSpec, ScalingBehavior};

/// Annotation on the ScaledObject saying which alarm raised its replica bounds.
pub const REMEDIATION_ANNOTATION: &str = "signoz-control-plane/remediation";

/// The ScaledObject with an alarm policy's replica override in force, annotated with why.
pub fn render_scaled_object_with(
    spec: &PlatformSpec,
    replicas: Option<&ReplicaOverride>,
) -> DesiredObject {
    let Some(replicas) = replicas else {
        return render_scaled_object(spec);
    };
    let mut object = render_scaled_object(&replicas.applied_to(spec));
    object.body["metadata"]["annotations"] =
        json!({ REMEDIATION_ANNOTATION: replicas.why.join("; ") });
    object
}

/// The ScaledObject for the collector Deployment (Prometheus trigger, fallback, HPA behaviour).
pub fn render_scaled_object(spec: &PlatformSpec) -> DesiredObject {
    let c = &spec.collectors;
    let s = &c.scaling;
    let target = collector_deployment(spec);
    let name = target.clone();
    let namespace = spec.cluster.namespace.clone();
    let policy = |b: &ScalingBehavior| {
        json!({
            "stabilizationWindowSeconds": b.stabilization_window_seconds,
            "policies": [{ "type": "Percent", "value": b.percent, "periodSeconds": b.period_seconds }],
        })
    };
    DesiredObject {
        resource: scaled_object_resource(),
        namespace: Some(namespace.clone()),
        name: name.clone(),
        body: json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": { "name": name, "namespace": namespace, "labels": owner_labels(&spec.platform.name) },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": target },
                "minReplicaCount": c.min_replicas,
                "maxReplicaCount": c.max_replicas,
                "pollingInterval": s.polling_interval_seconds,
                "cooldownPeriod": s.cooldown_seconds,
                // When Prometheus is unreachable, hold a safe replica count instead of freezing.
                "fallback": { "failureThreshold": 3, "replicas": s.fallback_replicas },
                "advanced": {
                    "horizontalPodAutoscalerConfig": {
                        "behavior": { "scaleUp": policy(&s.scale_up), "scaleDown": policy(&s.scale_down) },
                    },
                },
                "triggers": [{
                    "type": "prometheus",
                    // The fallback only works with an AverageValue metric.
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": s.prometheus_address,
                        "query": s.query,
                        "threshold": number_text(s.threshold),
                        "activationThreshold": number_text(s.activation_threshold),
                    },
                }],
            },
        }),
        owned: true,
    }
}

/// KEDA trigger metadata is strings; whole numbers without a trailing `.0`.
fn number_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}
