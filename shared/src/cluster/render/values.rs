//! The SigNoz chart's Helm values this control plane owns.

use serde_json::{Value, json};

use crate::spec::PlatformSpec;

/// Volume of the SigNoz pod holding the database CA bundle.
pub const DATABASE_CA_VOLUME: &str = "signoz-control-database-ca";

/// Name of the collector's scrape receiver for infrastructure targets.
const INFRA_RECEIVER: &str = "prometheus/infra";

/// The collector Deployment the chart creates for a release.
pub fn collector_deployment(spec: &PlatformSpec) -> String {
    format!("{}-otel-collector", spec.cluster.delivery.release)
}

/// The Helm values (chart keys from SigNoz's values.yaml).
pub fn render_helm_values(spec: &PlatformSpec) -> Value {
    let collectors = &spec.collectors;
    let cold = &spec.cold_storage;
    let secret = &spec.database.kubernetes_secret;
    let role = json!({ "eks.amazonaws.com/role-arn": cold.clickhouse_role_arn });
    let mut otel = json!({
        // Our KEDA ScaledObject scales the collector: the chart's HPA and ScaledObject stay
        // off so two autoscalers never fight over replicas.
        "autoscaling": {
            "enabled": false,
            "minReplicas": collectors.min_replicas,
            "maxReplicas": collectors.max_replicas,
            "keda": { "enabled": false },
        },
        "replicaCount": collectors.min_replicas,
        "config": collector_config(spec),
    });
    if collectors.spot.enabled {
        otel["tolerations"] = spot_tolerations();
        otel["affinity"] = spot_affinity(collectors.spot.weight);
    }
    json!({
        "otelCollector": otel,
        "clickhouse": {
            "serviceAccount": { "annotations": role },
            "coldStorage": {
                "enabled": true,
                "type": "s3",
                "endpoint": format!(
                    "https://{}.s3.{}.amazonaws.com/{}",
                    cold.bucket, spec.platform.region, cold.prefix
                ),
                // IRSA: no static keys, the service account's role reaches the bucket.
                "role": { "enabled": true, "annotations": role },
            },
        },
        "postgresql": { "enabled": false },
        "signoz": {
            "env": {
                "signoz_sqlstore_provider": "postgres",
                "signoz_sqlstore_postgres_dsn": {
                    "valueFrom": { "secretKeyRef": { "name": secret.name, "key": secret.dsn_key } }
                },
            },
            // The DSN's `sslrootcert` names this file: only the CA key of the Secret is
            // projected (chart 0.131 `signoz.additionalVolumes` / `additionalVolumeMounts`).
            "additionalVolumes": [{
                "name": DATABASE_CA_VOLUME,
                "secret": {
                    "secretName": secret.name,
                    "items": [{ "key": secret.ca_key, "path": secret.ca_key }],
                    "defaultMode": 0o444,
                },
            }],
            "additionalVolumeMounts": [{
                "name": DATABASE_CA_VOLUME,
                "mountPath": secret.ca_mount_path,
                "readOnly": true,
            }],
        },
    })
}

/// Collector config: `memory_limiter` first and `batch` last in every pipeline, plus
/// the `metrics/infra` scrape pipeline. Helm merges maps, so only what we change is set.
fn collector_config(spec: &PlatformSpec) -> Value {
    let c = &spec.collectors;
    let with_limits = |middle: &[&str], batch: &str| {
        let mut list = vec!["memory_limiter".to_string()];
        list.extend(middle.iter().map(|s| s.to_string()));
        list.push(batch.to_string());
        json!(list)
    };
    let mut pipelines = json!({
        "traces": { "processors": with_limits(&["signozspanmetrics/delta"], "batch") },
        "metrics": { "processors": with_limits(&[], "batch") },
        "logs": { "processors": with_limits(&[], "batch") },
        "metrics/meter": { "processors": with_limits(&[], "batch/meter") },
    });
    let mut receivers = json!({});
    if !c.infra_targets.is_empty() {
        pipelines["metrics/infra"] = json!({
            "receivers": [INFRA_RECEIVER],
            "processors": with_limits(&[], "batch"),
            "exporters": ["signozclickhousemetrics"],
        });
        let jobs: Vec<Value> = c
            .infra_targets
            .iter()
            .map(|t| {
                json!({
                    "job_name": t.job,
                    "scrape_interval": t.interval,
                    "metrics_path": t.path,
                    "static_configs": [{ "targets": [t.address] }],
                })
            })
            .collect();
        receivers[INFRA_RECEIVER] = json!({ "config": { "scrape_configs": jobs } });
    }
    json!({
        "receivers": receivers,
        "processors": {
            "memory_limiter": {
                "check_interval": c.memory_limiter.check_interval,
                "limit_mib": c.memory_limiter.limit_mib,
                "spike_limit_mib": c.memory_limiter.spike_limit_mib,
            },
            "batch": {
                "timeout": c.batch.timeout,
                "send_batch_size": c.batch.send_batch_size,
                "send_batch_max_size": c.batch.send_batch_max_size,
            },
        },
        "service": { "pipelines": pipelines },
    })
}

/// Capacity-type labels of Spot nodes: Karpenter's and EKS managed node groups'.
const SPOT_LABELS: [(&str, &str); 2] = [
    ("karpenter.sh/capacity-type", "spot"),
    ("eks.amazonaws.com/capacityType", "SPOT"),
];

fn spot_tolerations() -> Value {
    SPOT_LABELS
        .iter()
        .map(|(key, value)| json!({ "key": key, "operator": "Equal", "value": value, "effect": "NoSchedule" }))
        .collect()
}

/// Preferred, not required: collectors fall back to on-demand when Spot is short.
fn spot_affinity(weight: u32) -> Value {
    let terms: Vec<Value> = SPOT_LABELS
        .iter()
        .map(|(key, value)| {
            json!({
                "weight": weight,
                "preference": { "matchExpressions": [{ "key": key, "operator": "In", "values": [value] }] },
            })
        })
        .collect();
    json!({ "nodeAffinity": { "preferredDuringSchedulingIgnoredDuringExecution": terms } })
}
