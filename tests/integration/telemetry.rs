//! The control plane observed by the platform it runs: sync-cluster's real binary under the
//! Lambda Runtime API, against the stack (moto, the real kube-apiserver as its own
//! identity), sends each invocation's trace and counters to the OTLP receiver the spec
//! names (`tests/support/otlp.rs`, modelled on the collector's `otlphttp.go`), after it
//! has answered, bounded when the collector is stuck, and nothing when switched off.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use platform_tests::kube::{TestCluster, spec_yaml};
use platform_tests::otlp::{OtlpReceiver, ReceivedSpan};
use platform_tests::runtime_api::{RunOptions, RunReport, run_function_with};
use serde_json::{Value, json};
use signoz_control::cluster::FUNCTION;
use signoz_control::spec::{PlatformSpec, SpecLocation, Telemetry, parse_spec};

/// A password with characters the DSN percent-encodes: neither form may reach a span.
const PLANTED: &str = "Zx9-Planted/Otel+Secret=";

struct Platform {
    cluster: TestCluster,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

/// A platform sync-cluster can converge: its app secret (with [`PLANTED`]), namespaces,
/// RBAC and workloads, its spec on disk with `telemetry`, and the function's role.
async fn platform(telemetry: Option<Telemetry>) -> Platform {
    let sdk = platform_tests::aws().await;
    let app_secret = platform_tests::unique("signoz-app");
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&app_secret)
        .secret_string(
            json!({ "engine": "postgres", "host": "db.local", "port": 5432,
                    "username": "signoz_app", "password": PLANTED, "dbname": "signoz" })
            .to_string(),
        )
        .send()
        .await
        .expect("app secret");
    let mut spec: PlatformSpec = parse_spec(signoz_control::spec::EXAMPLE_SPEC).unwrap();
    spec.database.app_secret_name = app_secret;
    spec.telemetry = telemetry;
    platform_tests::own_state_bucket(&mut spec).await;
    let cluster = TestCluster::new(spec).await;
    cluster.arrange_workloads().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.yaml");
    std::fs::write(&path, spec_yaml(&cluster.spec)).unwrap();
    let location = SpecLocation::Path(path.clone());
    let deployment = platform_tests::Deployment::for_spec(&cluster.spec, &location);
    let mut env = platform_tests::iam::role_env(FUNCTION, &deployment).await;
    env.extend([
        ("PLATFORM_SPEC".into(), path.display().to_string()),
        (
            "KUBECONFIG".into(),
            cluster.kubeconfig(FUNCTION).display().to_string(),
        ),
        ("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()),
    ]);
    Platform {
        cluster,
        env,
        _dir: dir,
    }
}

fn telemetry(endpoint: String, export_timeout_ms: u32) -> Option<Telemetry> {
    Some(Telemetry {
        enabled: true,
        endpoint,
        export_timeout_ms,
    })
}

fn schedule() -> Value {
    serde_json::from_str(include_str!("../../events/schedule.json")).unwrap()
}

/// sync-cluster's binary as `cargo build --workspace` leaves it.
fn binary() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR").map_or(root.join("target"), Into::into);
    let binary = target.join("debug").join(FUNCTION);
    assert!(binary.exists(), "build it: cargo build -p {FUNCTION}");
    binary
}

async fn run(env: &[(String, String)], events: Vec<Value>, log: &std::path::Path) -> RunReport {
    let options = RunOptions {
        env: env.to_vec(),
        log_file: Some(log.to_path_buf()),
        ..RunOptions::new(Duration::from_secs(90))
    };
    let report = run_function_with(&binary(), FUNCTION, &options, events)
        .await
        .unwrap();
    assert!(report.init_error.is_none(), "{:?}", report.init_error);
    for result in &report.results {
        assert!(result.ok, "{}", result.body);
    }
    report
}

/// The CloudWatch embedded-metric-format lines of a run's stdout.
fn emf_lines(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l.get("_aws").is_some())
        .collect()
}

fn counter(
    request: &opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
    name: &str,
) -> i64 {
    use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
    let metric = request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} was sent"));
    let Some(metric::Data::Sum(sum)) = &metric.data else {
        panic!("{name} is a sum")
    };
    match sum.data_points[0].value {
        Some(number_data_point::Value::AsInt(v)) => v,
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invocation_sends_its_trace_and_counters_to_the_specs_collector() {
    let receiver = OtlpReceiver::start().await;
    let p = platform(telemetry(receiver.endpoint(), 2000)).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stdout.log");

    // A converge, then a no-op.
    let report = run(&p.env, vec![schedule(), schedule()], &log).await;
    assert_eq!(report.results[0].body["in_sync"], false);
    assert_eq!(report.results[1].body["in_sync"], true);
    let created = report.results[0].body["report"]["created"]
        .as_array()
        .unwrap()
        .len() as i64;

    let spans = receiver.spans();
    let mut traces: BTreeMap<Vec<u8>, Vec<ReceivedSpan>> = BTreeMap::new();
    for span in spans {
        traces.entry(span.trace_id.clone()).or_default().push(span);
    }
    assert_eq!(traces.len(), 2, "one trace per invocation");
    let mut traces: Vec<Vec<ReceivedSpan>> = traces.into_values().collect();
    let root_of = |spans: &[ReceivedSpan]| {
        spans
            .iter()
            .find(|s| s.parent_span_id.is_empty())
            .cloned()
            .expect("a root span")
    };
    traces.sort_by_key(|t| root_of(t).attributes["faas.invocation_id"].clone());
    let (converge, noop) = (&traces[0], &traces[1]);

    for trace in [converge, noop] {
        let root = root_of(trace);
        // lambda_runtime's OpenTelemetry layer: named after the function, faas attributes.
        assert_eq!(root.name, FUNCTION);
        assert_eq!(root.attributes["faas.trigger"], "pubsub");
        // Every span hangs off the invocation's root in the same trace.
        let ids: BTreeSet<&Vec<u8>> = trace.iter().map(|s| &s.span_id).collect();
        for span in trace.iter().filter(|s| !s.parent_span_id.is_empty()) {
            assert!(
                ids.contains(&span.parent_span_id),
                "{} has its parent",
                span.name
            );
        }
        // The resource: service.name per function and the platform's attributes.
        let spec = &p.cluster.spec;
        assert_eq!(root.resource["service.name"], FUNCTION);
        assert_eq!(
            root.resource["service.namespace"],
            spec.platform.service_namespace
        );
        assert_eq!(
            root.resource["deployment.environment"],
            spec.platform.environment
        );
        assert_eq!(root.resource["signoz_control.platform"], spec.platform.name);
        assert_eq!(root.resource["faas.name"], FUNCTION);
        assert_eq!(root.resource["cloud.provider"], "aws");
        let handle = trace
            .iter()
            .find(|s| s.name == "handle")
            .expect("the handler's span");
        assert_eq!(handle.parent_span_id, root.span_id);
        assert_eq!(
            handle.attributes["signoz_control.trigger"],
            "EventBridge schedule"
        );
        let load = trace
            .iter()
            .find(|s| s.name == "spec.load")
            .expect("the spec load");
        assert_eq!(load.parent_span_id, handle.span_id);
        assert_eq!(load.attributes["spec.location"], spec_path(&p.env));
        assert!(
            trace.iter().any(|s| s.name == "plan.cluster_objects"),
            "the plan"
        );
    }
    assert_eq!(root_of(converge).attributes["faas.coldstart"], "true");
    assert_eq!(root_of(noop).attributes["faas.coldstart"], "false");

    // Each Kubernetes write is a span naming its resource, namespace and object.
    let writes = |trace: &[ReceivedSpan]| -> Vec<ReceivedSpan> {
        trace
            .iter()
            .filter(|s| s.attributes.contains_key("k8s.resource"))
            .cloned()
            .collect()
    };
    let applied = writes(converge);
    let scaled = applied
        .iter()
        .find(|s| s.name == "PATCH scaledobjects.keda.sh")
        .expect("the ScaledObject's apply");
    assert_eq!(
        scaled.attributes["k8s.namespace.name"],
        p.cluster.spec.cluster.namespace
    );
    assert_eq!(
        scaled.attributes["k8s.object.name"],
        "signoz-otel-collector"
    );
    // Server-side apply of an object that did not exist: 201 Created.
    assert_eq!(scaled.attributes["http.response.status_code"], "201");
    assert!(
        applied.iter().any(|s| s.name == "PATCH secrets"),
        "the DSN Secret"
    );
    assert!(
        writes(noop).is_empty(),
        "a no-op writes nothing, so no write span"
    );
    // The AWS SDK's own span of each AWS write (the delivery record), none of its reads.
    assert!(
        converge.iter().any(|s| s.name == "S3.PutObject"),
        "{:?}",
        converge.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    for span in converge.iter().chain(noop) {
        assert!(
            !span.name.contains(".Get") && !span.name.contains(".List"),
            "a read became a span: {}",
            span.name
        );
    }

    // The counters, over OTLP and as CloudWatch metric lines, from the same numbers.
    let metrics = receiver.with(|r| r.metrics.clone());
    assert_eq!(metrics.len(), 2);
    let by_changes: Vec<i64> = metrics
        .iter()
        .map(|m| counter(m, "signoz_control.changes_applied"))
        .collect();
    assert!(
        by_changes.contains(&0),
        "the no-op applied nothing: {by_changes:?}"
    );
    let applied_count = by_changes.iter().copied().max().unwrap();
    assert!(applied_count >= created, "{applied_count} >= {created}");
    let emf = emf_lines(&log);
    assert_eq!(emf.len(), 2, "one metric line per invocation");
    assert_eq!(emf[0]["ChangesApplied"], applied_count);
    // A schedule that finds work: the cluster had drifted from the spec.
    assert_eq!(emf[0]["DriftUndone"], applied_count);
    assert_eq!(emf[1]["ChangesApplied"], 0);
    assert_eq!(emf[0]["Platform"], p.cluster.spec.platform.name);
    assert_eq!(emf[0]["Function"], FUNCTION);

    // No secret in anything the collector got: the DSN's password in any form, the
    // function's AWS credentials.
    let encoded = url::form_urlencoded::byte_serialize(PLANTED.as_bytes()).collect::<String>();
    let mut planted = vec![PLANTED.to_string(), encoded];
    planted.extend(
        p.env
            .iter()
            .filter(|(k, _)| k == "AWS_SECRET_ACCESS_KEY" || k == "AWS_SESSION_TOKEN")
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty()),
    );
    receiver.with(|r| {
        for body in &r.raw {
            let text = String::from_utf8_lossy(body);
            for secret in &planted {
                assert!(
                    !text.contains(secret.as_str()),
                    "a secret reached the collector"
                );
            }
        }
    });
}

fn spec_path(env: &[(String, String)]) -> String {
    env.iter()
        .find(|(k, _)| k == "PLATFORM_SPEC")
        .map(|(_, v)| v.clone())
        .unwrap()
}

/// A collector that accepts and never answers costs each invocation at most the spec's
/// export timeout, after its answer; the spec's switch and the process's switch send
/// nothing, while the CloudWatch metric line stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_collector_is_bounded_and_the_off_switches_send_nothing() {
    let stuck = OtlpReceiver::blackhole().await;
    let p = platform(telemetry(stuck.endpoint(), 200)).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stdout.log");
    let report = run(&p.env, vec![schedule(), schedule(), schedule()], &log).await;
    assert!(stuck.connections() >= 1, "the function tried the collector");
    for result in &report.results {
        let cycle = result
            .cycle
            .expect("the function came back for the next event");
        // Unbounded, a stuck collector would hold the function until the run's 90 s.
        assert!(
            cycle < Duration::from_secs(5),
            "an invocation took {cycle:?} with a stuck collector"
        );
    }
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("telemetry export timed out"),
        "the drop is logged"
    );

    // The spec's off switch.
    let receiver = OtlpReceiver::start().await;
    let mut off = telemetry(receiver.endpoint(), 500);
    off.as_mut().unwrap().enabled = false;
    let p = platform(off).await;
    let log = dir.path().join("off.log");
    run(&p.env, vec![schedule()], &log).await;
    // The process's switch, whatever the spec says.
    let p = platform(telemetry(receiver.endpoint(), 500)).await;
    let mut env = p.env.clone();
    env.push((
        signoz_control::telemetry::TELEMETRY_ENV.into(),
        "off".into(),
    ));
    let log_env = dir.path().join("env-off.log");
    run(&env, vec![schedule()], &log_env).await;
    assert_eq!(receiver.connections(), 0, "switched off, nothing is sent");
    for log in [&log, &log_env] {
        let emf = emf_lines(log);
        assert_eq!(emf.len(), 1, "CloudWatch still gets its line");
        assert!(emf[0]["ChangesApplied"].as_i64().unwrap() > 0);
    }
}
