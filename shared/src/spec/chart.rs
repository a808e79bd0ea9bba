//! The SigNoz chart's own naming rules (SigNoz/charts `charts/signoz/templates/_helpers.tpl`
//! and `charts/clickhouse/templates/_helper.tpl`): every object the chart creates is named
//! from the release, so the names we point at (the collector Deployment KEDA scales, the
//! SigNoz StatefulSet restarted onto a new DSN, ClickHouse's service account, the collector
//! Service the injector sends to) are derived here, never typed twice.

use super::PlatformSpec;

/// The chart's name, and its `nameOverride` default.
pub const CHART: &str = "signoz";
/// The chart versions whose keys and pipelines the rendered values are built and checked
/// against (`../shared/reference/signoz-chart-values.yaml`, chart 0.131.0).
pub const CHART_VERSIONS: &str = "0.131.";

/// The workloads that read the DSN Secret and restart onto a new one: SigNoz's own
/// StatefulSet (the chart's fullname, in the cluster namespace), then `database.restart`.
pub fn dsn_readers(spec: &PlatformSpec) -> Vec<super::WorkloadRef> {
    let mut readers = vec![super::WorkloadRef {
        kind: "StatefulSet".into(),
        name: signoz_fullname(spec),
        namespace: Some(spec.cluster.namespace.clone()),
    }];
    for w in &spec.database.restart {
        let namespace = w
            .namespace
            .clone()
            .or_else(|| Some(spec.cluster.namespace.clone()));
        let same = |r: &super::WorkloadRef| {
            r.kind == w.kind && r.name == w.name && r.namespace == namespace
        };
        if !readers.iter().any(same) {
            readers.push(super::WorkloadRef {
                namespace,
                ..w.clone()
            });
        }
    }
    readers
}

/// The collector endpoint the Instrumentation sends to: the spec's, else the chart's Service.
pub fn instrumentation_endpoint(spec: &PlatformSpec) -> String {
    spec.instrumentation
        .endpoint
        .clone()
        .unwrap_or_else(|| collector_endpoint(spec))
}
/// `otelCollector.name` (chart default).
const COLLECTOR_COMPONENT: &str = "otel-collector";
/// The ClickHouse sub-chart's name.
const CLICKHOUSE_CHART: &str = "clickhouse";

/// Helm's `fullname` rule: the release name when it contains the chart name, else
/// `<release>-<chart>`; truncated to 63 characters without a trailing dash.
fn fullname(release: &str, chart: &str) -> String {
    let name = if release.contains(chart) {
        release.to_string()
    } else {
        format!("{release}-{chart}")
    };
    truncate_63(&name)
}

fn truncate_63(name: &str) -> String {
    let cut: String = name.chars().take(63).collect();
    cut.trim_end_matches('-').to_string()
}

/// `signoz.fullname`: the SigNoz StatefulSet and Service.
pub fn signoz_fullname(spec: &PlatformSpec) -> String {
    fullname(&spec.cluster.delivery.release, CHART)
}

/// `otelCollector.fullname`: the collector Deployment (and Service) KEDA scales.
pub fn collector_deployment(spec: &PlatformSpec) -> String {
    truncate_63(&format!("{}-{COLLECTOR_COMPONENT}", signoz_fullname(spec)))
}

/// The in-cluster OTLP/HTTP endpoint of the chart's collector Service.
pub fn collector_endpoint(spec: &PlatformSpec) -> String {
    format!(
        "http://{}.{}.svc.cluster.local:{}",
        collector_deployment(spec),
        spec.cluster.namespace,
        super::OTLP_HTTP_PORT
    )
}

/// `clickhouse.serviceAccountName` with `serviceAccount.create`: the account ClickHouse's
/// IRSA role trusts.
pub fn clickhouse_service_account(spec: &PlatformSpec) -> String {
    fullname(&spec.cluster.delivery.release, CLICKHOUSE_CHART)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_release(release: &str) -> PlatformSpec {
        let mut spec = crate::spec::parse_spec(crate::spec::EXAMPLE_SPEC).unwrap();
        spec.cluster.delivery.release = release.into();
        spec
    }

    #[test]
    fn names_follow_the_charts_fullname_rule() {
        // Release containing the chart name: used as it is.
        let spec = with_release("signoz");
        assert_eq!(signoz_fullname(&spec), "signoz");
        assert_eq!(collector_deployment(&spec), "signoz-otel-collector");
        assert_eq!(clickhouse_service_account(&spec), "signoz-clickhouse");
        assert_eq!(
            collector_endpoint(&spec),
            "http://signoz-otel-collector.platform.svc.cluster.local:4318"
        );
        let spec = with_release("my-signoz-prod");
        assert_eq!(collector_deployment(&spec), "my-signoz-prod-otel-collector");
        // Otherwise `<release>-signoz`; ClickHouse has its own chart name.
        let spec = with_release("observability");
        assert_eq!(signoz_fullname(&spec), "observability-signoz");
        assert_eq!(
            collector_deployment(&spec),
            "observability-signoz-otel-collector"
        );
        assert_eq!(
            clickhouse_service_account(&spec),
            "observability-clickhouse"
        );
        let spec = with_release("clickhouse-and-more");
        assert_eq!(clickhouse_service_account(&spec), "clickhouse-and-more");
        // Truncated to 63 without a trailing dash.
        let long = format!("{}-x", "a".repeat(55));
        let spec = with_release(&long);
        let name = collector_deployment(&spec);
        assert!(name.len() <= 63 && !name.ends_with('-'), "{name}");
    }
}
