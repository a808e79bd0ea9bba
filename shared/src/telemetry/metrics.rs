//! The counters one invocation reports: as OTLP metrics (delta sums and a histogram) and
//! as one CloudWatch embedded-metric-format line, from the same numbers.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Serialize;

use super::{INVOCATION, Invocation, lock, with_invocation};

/// CloudWatch namespace of the counters.
pub const CLOUDWATCH_NAMESPACE: &str = "SigNozControlPlane";
/// Bucket bounds (ms) of the rotation step histogram.
const ROTATION_BOUNDS_MS: [f64; 10] = [
    10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// What one invocation did, as counted where it happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Writes that changed the platform (objects created, updated, pruned; bucket
    /// settings; TTLs; secret versions and stages; database roles; alarm remedies).
    pub changes_applied: u64,
    /// Of those, the ones a schedule or a drift event made: the platform had drifted.
    pub drift_undone: u64,
    /// Changes refused as unsafe or invalid (an invalid spec, an unsafe lifecycle, a
    /// destructive delivery, an object of another owner, a deputy check).
    pub refusals: u64,
    /// Rotation steps run, with how long each took.
    pub rotation_steps: Vec<RotationStep>,
}

/// One rotation step and its duration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RotationStep {
    pub step: String,
    pub ms: f64,
}

/// Counts `n` changes applied (and as drift undone when `drift`).
pub fn changes_applied(n: usize, drift: bool) {
    with_invocation(|i| {
        let mut c = lock(&i.counts);
        c.changes_applied += n as u64;
        if drift {
            c.drift_undone += n as u64;
        }
    });
}

/// Counts `n` refusals.
pub fn refused(n: usize) {
    if n > 0 {
        with_invocation(|i| lock(&i.counts).refusals += n as u64);
    }
}

/// Records one rotation step's duration.
pub fn rotation_step(step: &str, took: Duration) {
    with_invocation(|i| {
        lock(&i.counts).rotation_steps.push(RotationStep {
            step: step.into(),
            ms: took.as_secs_f64() * 1e3,
        })
    });
}

/// Runs `work` as an invocation of its own and returns what it counted (tests, the CLI).
pub async fn counting<F: Future>(work: F) -> (F::Output, Counts) {
    let invocation = Arc::new(Invocation::new());
    let output = INVOCATION.scope(invocation.clone(), work).await;
    let counts = lock(&invocation.counts).clone();
    (output, counts)
}

/// The CloudWatch embedded-metric-format line of one invocation: the counters by
/// platform and function, and the rotation steps by step.
pub fn emf_line(function: &str, platform: Option<&str>, counts: &Counts, at: SystemTime) -> String {
    let millis = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut directives = vec![serde_json::json!({
        "Namespace": CLOUDWATCH_NAMESPACE,
        "Dimensions": [["Platform", "Function"]],
        "Metrics": [
            { "Name": "ChangesApplied", "Unit": "Count" },
            { "Name": "DriftUndone", "Unit": "Count" },
            { "Name": "Refusals", "Unit": "Count" },
        ],
    })];
    let mut line = serde_json::json!({
        "Platform": platform.unwrap_or("unknown"),
        "Function": function,
        "ChangesApplied": counts.changes_applied,
        "DriftUndone": counts.drift_undone,
        "Refusals": counts.refusals,
    });
    if let Some(first) = counts.rotation_steps.first() {
        directives.push(serde_json::json!({
            "Namespace": CLOUDWATCH_NAMESPACE,
            "Dimensions": [["Platform", "Function", "RotationStep"]],
            "Metrics": [{ "Name": "RotationDuration", "Unit": "Milliseconds" }],
        }));
        // One step per invocation (Secrets Manager calls each step on its own).
        line["RotationStep"] = first.step.clone().into();
        line["RotationDuration"] = serde_json::json!(
            counts
                .rotation_steps
                .iter()
                .map(|s| (s.ms * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>()
        );
    }
    line["_aws"] = serde_json::json!({ "Timestamp": millis, "CloudWatchMetrics": directives });
    line.to_string()
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The OTLP metrics of one invocation: three delta sums and, when a rotation step ran,
/// a delta histogram of its duration; `[start, end]` is the invocation.
pub fn metrics_request(
    resource: &[(&'static str, String)],
    counts: &Counts,
    start: SystemTime,
    end: SystemTime,
) -> ExportMetricsServiceRequest {
    let (start, end) = (nanos(start), nanos(end));
    let sum = |name: &str, description: &str, value: u64| Metric {
        name: name.into(),
        description: description.into(),
        unit: "{change}".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                start_time_unix_nano: start,
                time_unix_nano: end,
                value: Some(number_data_point::Value::AsInt(value as i64)),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    let mut metrics = vec![
        sum(
            "signoz_control.changes_applied",
            "Writes that changed the platform",
            counts.changes_applied,
        ),
        sum(
            "signoz_control.drift_undone",
            "Changes made because the platform had drifted from the spec",
            counts.drift_undone,
        ),
        sum(
            "signoz_control.refusals",
            "Changes refused as unsafe or invalid",
            counts.refusals,
        ),
    ];
    let mut steps: Vec<&str> = counts
        .rotation_steps
        .iter()
        .map(|s| s.step.as_str())
        .collect();
    steps.dedup();
    let points: Vec<HistogramDataPoint> = steps
        .into_iter()
        .map(|step| {
            let values: Vec<f64> = counts
                .rotation_steps
                .iter()
                .filter(|s| s.step == step)
                .map(|s| s.ms)
                .collect();
            let mut buckets = vec![0u64; ROTATION_BOUNDS_MS.len() + 1];
            for v in &values {
                let at = ROTATION_BOUNDS_MS
                    .iter()
                    .position(|b| v <= b)
                    .unwrap_or(ROTATION_BOUNDS_MS.len());
                buckets[at] += 1;
            }
            HistogramDataPoint {
                attributes: vec![string_attribute("signoz_control.rotation.step", step)],
                start_time_unix_nano: start,
                time_unix_nano: end,
                count: values.len() as u64,
                sum: Some(values.iter().sum()),
                bucket_counts: buckets,
                explicit_bounds: ROTATION_BOUNDS_MS.to_vec(),
                min: values.iter().copied().reduce(f64::min),
                max: values.iter().copied().reduce(f64::max),
                ..Default::default()
            }
        })
        .collect();
    if !points.is_empty() {
        metrics.push(Metric {
            name: "signoz_control.rotation.duration".into(),
            description: "Duration of a credentials rotation step".into(),
            unit: "ms".into(),
            data: Some(metric::Data::Histogram(
                opentelemetry_proto::tonic::metrics::v1::Histogram {
                    data_points: points,
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                },
            )),
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource
                    .iter()
                    .map(|(k, v)| string_attribute(k, v))
                    .collect(),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: super::SCOPE.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts() -> Counts {
        Counts {
            changes_applied: 3,
            drift_undone: 2,
            refusals: 1,
            rotation_steps: vec![RotationStep {
                step: "setSecret".into(),
                ms: 27.5,
            }],
        }
    }

    #[test]
    fn the_emf_line_declares_every_counter_it_carries() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let line: serde_json::Value =
            serde_json::from_str(&emf_line("rotate-credentials", Some("acme"), &counts(), at))
                .unwrap();
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_123u64);
        // CloudWatch extracts a metric only when the directive names it and the line
        // carries a member of that name, and every dimension too.
        for directive in line["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(directive["Namespace"], CLOUDWATCH_NAMESPACE);
            for dimension in directive["Dimensions"][0].as_array().unwrap() {
                assert!(line[dimension.as_str().unwrap()].is_string(), "{dimension}");
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap();
                assert!(!line[name].is_null(), "{name} is declared and carried");
            }
        }
        assert_eq!(line["ChangesApplied"], 3);
        assert_eq!(line["DriftUndone"], 2);
        assert_eq!(line["Refusals"], 1);
        assert_eq!(line["RotationStep"], "setSecret");
        assert_eq!(line["RotationDuration"], serde_json::json!([27.5]));
        let quiet = emf_line("sync-cluster", None, &Counts::default(), at);
        assert!(!quiet.contains("RotationDuration"));
        assert!(quiet.contains(r#""Platform":"unknown""#));
    }

    #[test]
    fn otlp_metrics_are_delta_sums_and_a_histogram_over_the_invocation() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let end = start + Duration::from_millis(40);
        let request = metrics_request(
            &[("service.name", "rotate-credentials".into())],
            &counts(),
            start,
            end,
        );
        let scope = &request.resource_metrics[0].scope_metrics[0];
        let names: Vec<&str> = scope.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "signoz_control.changes_applied",
                "signoz_control.drift_undone",
                "signoz_control.refusals",
                "signoz_control.rotation.duration"
            ]
        );
        let Some(metric::Data::Sum(sum)) = &scope.metrics[0].data else {
            panic!("a sum")
        };
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Delta as i32
        );
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsInt(3))
        );
        assert_eq!(sum.data_points[0].start_time_unix_nano, 10_000_000_000);
        assert_eq!(sum.data_points[0].time_unix_nano, 10_040_000_000);
        let Some(metric::Data::Histogram(h)) = &scope.metrics[3].data else {
            panic!("a histogram")
        };
        let point = &h.data_points[0];
        assert_eq!((point.count, point.sum), (1, Some(27.5)));
        // 27.5 ms falls in (25, 50].
        assert_eq!(point.bucket_counts[2], 1);
        assert_eq!(point.bucket_counts.iter().sum::<u64>(), 1);
    }

    #[tokio::test]
    async fn counters_count_inside_an_invocation_only() {
        changes_applied(5, true);
        let ((), counts) = counting(async {
            changes_applied(2, false);
            changes_applied(1, true);
            refused(1);
            rotation_step("testSecret", Duration::from_millis(3));
        })
        .await;
        assert_eq!(counts.changes_applied, 3);
        assert_eq!(counts.drift_undone, 1);
        assert_eq!(counts.refusals, 1);
        assert_eq!(counts.rotation_steps[0].step, "testSecret");
    }
}
