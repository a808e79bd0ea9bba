//! Renderers (pure) and request shapes (kube-rs over tower-test's mock service).

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

use super::apply::{ApplyOutcome, apply_object, differing_paths};
use super::render::instrumentation::{instrumentation_problems, render_instrumentation};
use super::render::scaling::render_scaled_object;
use super::render::values::render_helm_values;
use super::render::{delivery::render_delivery, render_owned_objects};
use super::secret::render_database_secret;
use crate::spec::{DeliveryMethod, FluxDelivery, PlatformSpec, parse_spec};

fn example_spec() -> PlatformSpec {
    parse_spec(include_str!("../../../infra/platform.yaml")).expect("example spec is valid")
}

#[test]
fn every_collector_pipeline_limits_memory_first_and_batches() {
    let values = render_helm_values(&example_spec());
    let pipelines = values["otelCollector"]["config"]["service"]["pipelines"]
        .as_object()
        .unwrap();
    assert!(pipelines.contains_key("metrics/infra"));
    for (name, pipeline) in pipelines {
        let processors: Vec<&str> = pipeline["processors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(processors[0], "memory_limiter", "{name}");
        assert!(processors.last().unwrap().starts_with("batch"), "{name}");
    }
    let limiter = &values["otelCollector"]["config"]["processors"]["memory_limiter"];
    assert_eq!(
        limiter,
        &json!({ "check_interval": "5s", "limit_mib": 1000, "spike_limit_mib": 200 })
    );
}

/// Against the chart version the spec names (0.131.0, `../shared/reference`): each of its
/// pipelines keeps its processors with memory_limiter put first (Helm replaces lists, so
/// a processor we left out would be gone), and metrics/infra exports where its `metrics`
/// pipeline does.
#[test]
fn pipelines_carry_every_processor_and_exporter_of_the_charts_own() {
    let spec = example_spec();
    assert!(spec.cluster.delivery.chart_version.starts_with("0.131."));
    let reference: Value = serde_norway::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/reference/signoz-chart-values.yaml"
        ))
        .expect("../shared/reference beside the repository"),
    )
    .unwrap();
    let chart = reference["otelCollector"]["config"]["service"]["pipelines"]
        .as_object()
        .unwrap();
    let values = render_helm_values(&spec);
    let ours = &values["otelCollector"]["config"]["service"]["pipelines"];
    for (name, pipeline) in chart {
        let mut expected = vec![json!("memory_limiter")];
        expected.extend(pipeline["processors"].as_array().unwrap().iter().cloned());
        assert_eq!(ours[name]["processors"], json!(expected), "{name}");
    }
    let infra = &ours["metrics/infra"];
    assert_eq!(infra["exporters"], chart["metrics"]["exporters"]);
    let mut expected = vec![json!("memory_limiter")];
    expected.extend(
        chart["metrics"]["processors"]
            .as_array()
            .unwrap()
            .iter()
            .cloned(),
    );
    assert_eq!(infra["processors"], json!(expected));
}

#[test]
fn infra_pipeline_scrapes_every_target_of_the_spec() {
    let spec = example_spec();
    let values = render_helm_values(&spec);
    let jobs = values["otelCollector"]["config"]["receivers"]["prometheus/infra"]["config"]
        ["scrape_configs"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = jobs
        .iter()
        .map(|j| j["job_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "karpenter",
            "keda-operator",
            "argocd-server",
            "argocd-repo-server",
            "argocd-application-controller",
            "litellm",
            "valkey"
        ]
    );
    let litellm = &jobs[5];
    assert_eq!(litellm["metrics_path"], "/metrics/");
    assert_eq!(
        litellm["static_configs"][0]["targets"][0],
        "litellm.ai.svc.cluster.local:4000"
    );
    assert_eq!(jobs[6]["scrape_interval"], "15s");
}

#[test]
fn chart_autoscalers_stay_off_so_keda_alone_scales_collectors() {
    let values = render_helm_values(&example_spec());
    let autoscaling = &values["otelCollector"]["autoscaling"];
    assert_eq!(autoscaling["enabled"], false);
    assert_eq!(autoscaling["keda"]["enabled"], false);
}

#[test]
fn collectors_prefer_spot_and_tolerate_its_taint() {
    let values = render_helm_values(&example_spec());
    let otel = &values["otelCollector"];
    assert_eq!(otel["tolerations"][0]["key"], "karpenter.sh/capacity-type");
    let preferred =
        &otel["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(preferred[0]["weight"], 100);
    assert!(
        otel["affinity"]["nodeAffinity"]
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .is_none()
    );

    let mut spec = example_spec();
    spec.collectors.spot.enabled = false;
    assert!(
        render_helm_values(&spec)["otelCollector"]
            .get("tolerations")
            .is_none()
    );
}

#[test]
fn clickhouse_cold_storage_uses_the_irsa_role_not_keys() {
    let values = render_helm_values(&example_spec());
    let cold = &values["clickhouse"]["coldStorage"];
    assert_eq!(
        cold["endpoint"],
        "https://acme-signoz-cold.s3.eu-west-1.amazonaws.com/clickhouse/"
    );
    assert_eq!(
        cold["role"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/acme-prod-signoz-clickhouse"
    );
    assert!(cold.get("accessKey").is_none() && cold.get("secretAccess").is_none());
}

#[test]
fn signoz_reads_its_dsn_from_the_kubernetes_secret() {
    let values = render_helm_values(&example_spec());
    let env = &values["signoz"]["env"];
    assert_eq!(env["signoz_sqlstore_provider"], "postgres");
    assert_eq!(
        env["signoz_sqlstore_postgres_dsn"]["valueFrom"]["secretKeyRef"],
        json!({ "name": "signoz-metadata-db", "key": "SIGNOZ_SQLSTORE_POSTGRES_DSN" })
    );
    assert_eq!(values["postgresql"]["enabled"], false);
}

#[test]
fn scaled_object_scales_the_collector_on_ingestion_pressure() {
    let object = render_scaled_object(&example_spec());
    let spec = &object.body["spec"];
    assert_eq!(spec["scaleTargetRef"]["name"], "signoz-otel-collector");
    assert_eq!(
        (
            spec["minReplicaCount"].as_u64(),
            spec["maxReplicaCount"].as_u64()
        ),
        (Some(2), Some(10))
    );
    let trigger = &spec["triggers"][0];
    assert_eq!(trigger["type"], "prometheus");
    assert_eq!(trigger["metadata"]["threshold"], "20000");
    assert_eq!(trigger["metadata"]["activationThreshold"], "1000");
    assert_eq!(spec["fallback"]["replicas"], 4);
    let behavior = &spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"];
    assert_eq!(behavior["scaleDown"]["stabilizationWindowSeconds"], 300);
    assert_eq!(
        behavior["scaleDown"]["policies"][0],
        json!({ "type": "Percent", "value": 50, "periodSeconds": 60 })
    );
}

#[test]
fn instrumentation_carries_endpoint_sampler_and_shared_attributes() {
    let object = render_instrumentation(&example_spec()).unwrap();
    let spec = &object.body["spec"];
    assert_eq!(
        spec["exporter"]["endpoint"],
        "http://signoz-otel-collector.platform.svc.cluster.local:4318"
    );
    assert_eq!(
        spec["sampler"],
        json!({ "type": "parentbased_traceidratio", "argument": "1" })
    );
    assert_eq!(spec["propagators"], json!(["tracecontext", "baggage"]));
    assert_eq!(
        spec["resource"]["resourceAttributes"]["service.namespace"],
        "acme"
    );
}

#[test]
fn instrumentation_the_operator_would_reject_is_never_rendered() {
    let mut spec = example_spec();
    spec.instrumentation.sampler.argument = Some("1.5".into());
    spec.instrumentation.propagators.push("w3c".into());
    spec.instrumentation.endpoint = Some("http://collector:4317".into());
    let problems = instrumentation_problems(&spec);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(matches!(
        render_instrumentation(&spec),
        Err(super::Error::Invalid { .. })
    ));

    spec = example_spec();
    spec.instrumentation.sampler.kind = "probabilistic".into();
    assert_eq!(instrumentation_problems(&spec).len(), 1);
}

#[test]
fn argocd_delivery_puts_values_in_the_application_and_ignores_replicas() {
    let spec = example_spec();
    let objects = render_delivery(&spec);
    assert_eq!(objects.len(), 2, "SigNoz's Application and the operator's");
    let app = &objects[0].body;
    assert_eq!(
        app["spec"]["source"]["helm"]["valuesObject"],
        render_helm_values(&spec)
    );
    assert_eq!(app["spec"]["source"]["targetRevision"], "0.131.0");
    // ArgoCD's rule (argo-cd docs/user-guide/sync-options.md, "Respect Ignore Difference
    // Configs"): ignoreDifferences keeps the field out of the diff only; a sync keeps the
    // live value of an ignored field only with RespectIgnoreDifferences=true.
    assert_eq!(
        app["spec"]["ignoreDifferences"],
        json!([{ "group": "apps", "kind": "Deployment", "name": "signoz-otel-collector",
                 "namespace": "platform", "jsonPointers": ["/spec/replicas"] }])
    );
    let options = app["spec"]["syncPolicy"]["syncOptions"].as_array().unwrap();
    assert!(
        options.contains(&json!("RespectIgnoreDifferences=true")),
        "{options:?}"
    );
    // An Application without syncPolicy.automated never deploys until someone presses
    // sync (argo-cd docs/user-guide/auto_sync.md): the default is automated, self-healing.
    assert_eq!(
        app["spec"]["syncPolicy"]["automated"],
        json!({ "prune": true, "selfHeal": true })
    );
    assert_eq!(app["spec"]["syncPolicy"]["retry"]["limit"], 5);
    let mut manual = spec.clone();
    manual.cluster.delivery.argocd.as_mut().unwrap().sync = crate::spec::ArgoSync::Manual;
    let app = &render_delivery(&manual)[0].body;
    assert!(app["spec"]["syncPolicy"].get("automated").is_none());
    assert!(app["spec"]["syncPolicy"]["syncOptions"].is_array());
    // Never both destination.server and destination.name.
    assert_eq!(
        objects[0].body["spec"]["destination"],
        json!({ "server": "https://kubernetes.default.svc", "namespace": "platform" })
    );
    let mut by_name = spec.clone();
    let argo = by_name.cluster.delivery.argocd.as_mut().unwrap();
    argo.destination_server = None;
    argo.destination_name = Some("in-cluster".into());
    assert_eq!(
        render_delivery(&by_name)[0].body["spec"]["destination"],
        json!({ "name": "in-cluster", "namespace": "platform" })
    );
}

#[test]
fn the_operator_is_delivered_highly_available_through_the_same_path() {
    let spec = example_spec();
    let objects = render_delivery(&spec);
    let app = &objects[1].body;
    assert_eq!(app["metadata"]["name"], "opentelemetry-operator");
    assert_eq!(app["spec"]["source"]["chart"], "opentelemetry-operator");
    assert_eq!(app["spec"]["source"]["targetRevision"], "0.122.0");
    assert_eq!(
        app["spec"]["destination"]["namespace"],
        "opentelemetry-operator-system"
    );
    assert!(app["spec"].get("ignoreDifferences").is_none());
    let values = &app["spec"]["source"]["helm"]["valuesObject"];
    // The operator chart's keys (its values.yaml): replicaCount, pdb, topologySpreadConstraints.
    let reference: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/reference/opentelemetry-operator-chart-values.yaml"
        ))
        .expect("../shared/reference beside the repository"),
    )
    .unwrap();
    for key in ["replicaCount", "pdb", "topologySpreadConstraints"] {
        assert!(reference.get(key).is_some(), "the chart has {key}");
    }
    assert!(reference["pdb"].get("minAvailable").is_some());
    assert_eq!(values["replicaCount"], 2);
    assert_eq!(values["pdb"], json!({ "create": true, "minAvailable": 1 }));
    let spread = values["topologySpreadConstraints"].as_array().unwrap();
    assert_eq!(spread[0]["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(spread[0]["whenUnsatisfiable"], "DoNotSchedule");
    assert_eq!(spread[1]["topologyKey"], "topology.kubernetes.io/zone");
    // The labels the chart's Deployment selects its pods by (templates/deployment.yaml).
    assert_eq!(
        spread[0]["labelSelector"]["matchLabels"],
        json!({ "app.kubernetes.io/name": "opentelemetry-operator",
                "app.kubernetes.io/component": "controller-manager",
                "app.kubernetes.io/instance": "opentelemetry-operator" })
    );
}

#[test]
fn the_frontend_is_an_internal_alb_in_the_shared_group() {
    let spec = example_spec();
    let ingress = &render_helm_values(&spec)["signoz"]["ingress"];
    assert_eq!(ingress["enabled"], true);
    assert_eq!(ingress["className"], "alb");
    let a = &ingress["annotations"];
    assert_eq!(a["alb.ingress.kubernetes.io/scheme"], "internal");
    assert_eq!(a["alb.ingress.kubernetes.io/group.name"], "acme-internal");
    assert_eq!(a["alb.ingress.kubernetes.io/group.order"], "20");
    assert_eq!(a["alb.ingress.kubernetes.io/target-type"], "ip");
    assert!(
        a["alb.ingress.kubernetes.io/certificate-arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:acm:")
    );
    assert_eq!(a["alb.ingress.kubernetes.io/ssl-redirect"], "443");
    assert_eq!(
        a["alb.ingress.kubernetes.io/healthcheck-path"],
        "/api/v1/health"
    );
    assert_eq!(ingress["hosts"][0]["host"], "signoz.acme-prod.internal");
    // The chart's own keys (SigNoz/charts values.yaml, signoz.ingress).
    let reference: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/reference/signoz-chart-values.yaml"
        ))
        .expect("../shared/reference beside the repository"),
    )
    .unwrap();
    let chart = &reference["signoz"]["ingress"];
    for key in ["enabled", "className", "annotations", "hosts", "tls"] {
        assert!(
            chart.get(key).is_some(),
            "signoz.ingress.{key} is a chart key"
        );
    }
    assert_eq!(chart["hosts"][0]["paths"][0]["port"], 8080);
}

#[test]
fn flux_delivery_feeds_the_release_from_a_watched_configmap() {
    let spec = flux_spec();
    let objects = render_delivery(&spec);
    let kinds: Vec<&str> = objects.iter().map(|o| o.resource.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["ConfigMap", "HelmRelease", "ConfigMap", "HelmRelease"]
    );
    let cm = &objects[0].body;
    assert_eq!(
        cm["metadata"]["labels"]["reconcile.fluxcd.io/watch"],
        "Enabled"
    );
    let values: Value =
        serde_norway::from_str(cm["data"]["values.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(values, render_helm_values(&spec));
    assert_eq!(
        objects[1].body["spec"]["valuesFrom"][0]["name"],
        "signoz-values"
    );
    // helm-controller applies post-renderers to the rendered manifest before Helm's
    // three-way merge (helm-controller docs/api/v2/helm.md, PostRenderer): without
    // /spec/replicas the collector keeps the count KEDA set.
    assert_eq!(
        objects[1].body["spec"]["postRenderers"],
        json!([{ "kustomize": { "patches": [{
            "target": { "group": "apps", "version": "v1", "kind": "Deployment", "name": "signoz-otel-collector" },
            "patch": "- op: remove\n  path: /spec/replicas\n",
        }]}}])
    );
}

#[test]
fn every_owned_object_is_labelled_ours() {
    let spec = example_spec();
    let mut objects = render_owned_objects(&spec).unwrap();
    objects.push(render_database_secret(
        &spec,
        &dsn_source("postgres://u:p@h/db"),
    ));
    for object in objects {
        let labels = &object.body["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/managed-by"],
            "signoz-control-plane",
            "{}",
            object.id()
        );
        assert_eq!(labels["signoz-control-plane/platform"], "acme-prod");
    }
}

#[test]
fn containment_ignores_server_added_fields_but_sees_changed_values() {
    let desired = json!({ "spec": { "a": 1, "b": { "c": "x" }, "list": [1, 2] } });
    let live =
        json!({ "spec": { "a": 1.0, "b": { "c": "x", "d": true }, "list": [1, 2] }, "status": {} });
    assert!(differing_paths(&desired, &live).is_empty());
    let live = json!({ "spec": { "a": 2, "b": { "c": "y" }, "list": [2, 1] } });
    assert_eq!(
        differing_paths(&desired, &live),
        [".spec.a", ".spec.b.c", ".spec.list"]
    );
}

// ---- request shapes over the mock service ----

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (kube::Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

fn json_response(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn not_found() -> Response<Body> {
    json_response(
        404,
        &json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found" }),
    )
}

async fn body_json(request: Request<Body>) -> Value {
    let bytes = request.into_body().collect_bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Expects GET (answered 404) then an apply PATCH; returns the PATCH's query and body.
async fn expect_create(handle: &mut Handle, path: &str) -> (String, String, Value) {
    let (get, send) = handle.next_request().await.expect("GET");
    assert_eq!(get.method(), Method::GET);
    assert_eq!(get.uri().path(), path);
    send.send_response(not_found());
    let (patch, send) = handle.next_request().await.expect("PATCH");
    assert_eq!(patch.method(), Method::PATCH);
    assert_eq!(patch.uri().path(), path);
    let query = patch.uri().query().unwrap_or_default().to_string();
    let content_type = patch.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let body = body_json(patch).await;
    send.send_response(json_response(201, &body));
    (query, content_type, body)
}

#[tokio::test]
async fn database_secret_is_applied_with_our_field_manager_without_force() {
    let spec = example_spec();
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        expect_create(
            &mut handle,
            "/api/v1/namespaces/platform/secrets/signoz-metadata-db",
        )
        .await
    });
    let source = dsn_source("postgres://u:p%40ss@h:5432/signoz");
    let changed = super::apply_database_secret(&client, &spec, &source, false)
        .await
        .unwrap();
    let (query, content_type, body) = server.await.unwrap();
    assert!(changed.data_changed());
    assert_eq!(content_type, "application/apply-patch+yaml");
    assert!(
        query.contains("fieldManager=signoz-control-plane"),
        "{query}"
    );
    assert!(
        !query.contains("force"),
        "conflicts must surface, not be forced: {query}"
    );
    assert_eq!(body["data"]["SIGNOZ_SQLSTORE_PROVIDER"], "cG9zdGdyZXM=");
    assert_eq!(
        body["data"]["SIGNOZ_SQLSTORE_POSTGRES_DSN"],
        "cG9zdGdyZXM6Ly91OnAlNDBzc0BoOjU0MzIvc2lnbm96"
    );
    assert_eq!(body["data"]["database-ca.pem"], "LS0tLS1CRUdJTg==");
    assert_eq!(
        body["metadata"]["annotations"]["signoz-control-plane/credentials-version"],
        "v1"
    );
    assert!(body.get("stringData").is_none());
}

/// A hand-off of version `v1` with a stand-in CA bundle (base64 `LS0tLS1CRUdJTg==`).
fn dsn_source(dsn: &str) -> super::secret::DsnSource {
    super::secret::DsnSource {
        dsn: dsn.into(),
        ca_bundle: "-----BEGIN".into(),
        version_id: "v1".into(),
        authority: None,
    }
}

/// An authority nobody answers (a refused port, no retries): asking it is an error.
fn unreachable_authority(moved_after_first_read: bool) -> super::secret::VersionAuthority {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .region(aws_sdk_secretsmanager::config::Region::new("eu-west-1"))
        .endpoint_url("http://127.0.0.1:1")
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::for_tests())
        .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
        .build();
    super::secret::VersionAuthority {
        secrets: aws_sdk_secretsmanager::Client::from_conf(config),
        secret_id: "app".into(),
        moved_after_first_read,
    }
}

/// The Secret holds `v0` and we hand off `v1`. Where finishSecret moved AWSCURRENT to
/// `v1` itself after its read, that read's write goes without asking Secrets Manager;
/// once the write is refused as modified since, the re-read's decision asks. Anyone
/// else (sync-cluster) asks before the first write.
#[tokio::test]
async fn the_version_guard_asks_unless_our_own_move_answered_it_for_that_read() {
    let spec = example_spec();
    let mut live =
        render_database_secret(&spec, &dsn_source("postgres://old@h/signoz")).body_with_hash();
    live["metadata"]["annotations"]["signoz-control-plane/credentials-version"] = json!("v0");
    live["metadata"]["resourceVersion"] = json!("7");
    let modified = json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
        "message": "Operation cannot be fulfilled on secrets \"signoz-metadata-db\": the object has been modified; please apply your changes to the latest version and try again" });
    for moved in [true, false] {
        let mut source = dsn_source("postgres://new@h/signoz");
        source.authority = Some(unreachable_authority(moved));
        let (client, mut handle) = mock_client();
        let (first, reread, modified) = (live.clone(), live.clone(), modified.clone());
        let server = tokio::spawn(async move {
            let mut methods = Vec::new();
            if let Some((patch, send)) = handle.next_request().await {
                methods.push(patch.method().clone());
                let body = body_json(patch).await;
                assert_eq!(
                    body["metadata"]["resourceVersion"], "7",
                    "the write carries the read's version"
                );
                send.send_response(json_response(409, &modified));
                let (get, send) = handle.next_request().await.expect("the re-read");
                methods.push(get.method().clone());
                send.send_response(json_response(200, &reread));
            }
            methods
        });
        let outcome = super::secret::apply_database_secret_over(
            &client,
            &spec,
            &source,
            Some(serde_json::from_value(first).unwrap()),
            false,
        )
        .await;
        drop(client);
        let methods = server.await.unwrap();
        let err = outcome.expect_err("the authority is asked at last, and cannot answer");
        assert!(err.to_string().contains("app"), "{err}");
        match moved {
            true => assert_eq!(methods, [Method::PATCH, Method::GET]),
            false => assert!(methods.is_empty(), "wrote before asking: {methods:?}"),
        }
    }
}

#[tokio::test]
async fn unchanged_secret_sends_no_write() {
    let spec = example_spec();
    let dsn = dsn_source("postgres://u:p@h:5432/signoz");
    let live = render_database_secret(&spec, &dsn).body_with_hash();
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        let (get, send) = handle.next_request().await.expect("GET");
        assert_eq!(get.method(), Method::GET);
        send.send_response(json_response(200, &live));
        // Nothing else may arrive: the mock's stream ends when the client is dropped.
        handle
    });
    assert!(
        !super::apply_database_secret(&client, &spec, &dsn, false)
            .await
            .unwrap()
            .data_changed()
    );
    drop(client);
    let mut handle = server.await.unwrap();
    assert!(handle.next_request().await.is_none(), "a write was sent");
}

#[tokio::test]
async fn each_custom_kind_is_applied_at_its_api_path() {
    let spec = example_spec();
    let objects = render_owned_objects(&spec).unwrap();
    let expected = [
        "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/signoz",
        "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/opentelemetry-operator",
        "/apis/keda.sh/v1alpha1/namespaces/platform/scaledobjects/signoz-otel-collector",
        "/apis/opentelemetry.io/v1alpha1/namespaces/platform/instrumentations/python",
    ];
    assert_eq!(objects.len(), expected.len());
    for (object, path) in objects.iter().zip(expected) {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move { expect_create(&mut handle, path).await });
        let outcome = apply_object(&client, "signoz-control-plane", object, false)
            .await
            .unwrap();
        let (query, content_type, body) = server.await.unwrap();
        assert_eq!(outcome, ApplyOutcome::Created);
        assert_eq!(content_type, "application/apply-patch+yaml");
        assert!(query.contains("fieldManager=signoz-control-plane") && !query.contains("force"));
        assert!(query.contains("fieldValidation=Strict"), "{query}");
        assert_eq!(body["kind"], object.body["kind"]);
        assert_eq!(body["spec"], object.body["spec"]);
        assert!(body["metadata"]["annotations"]["signoz-control-plane/applied-hash"].is_string());
    }
}

#[tokio::test]
async fn a_conflict_is_reported_with_the_owning_manager() {
    let spec = example_spec();
    let object = render_scaled_object(&spec);
    let (client, mut handle) = mock_client();
    let live = json!({ "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": { "name": "signoz-otel-collector", "namespace": "platform" }, "spec": { "maxReplicaCount": 3 } });
    let server = tokio::spawn(async move {
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(json_response(200, &live));
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(json_response(409, &json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "Conflict", "code": 409,
            "message": "Apply failed with 1 conflict: conflict with \"argocd-controller\": .spec.maxReplicaCount" })));
    });
    let outcome = apply_object(&client, "signoz-control-plane", &object, false)
        .await
        .unwrap();
    server.await.unwrap();
    match outcome {
        ApplyOutcome::Conflict { message } => {
            assert!(message.contains("argocd-controller"), "{message}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn restart_patches_the_pod_template_like_kubectl() {
    let spec = example_spec();
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        let path = "/apis/apps/v1/namespaces/platform/statefulsets/signoz";
        let (get, send) = handle.next_request().await.unwrap();
        assert_eq!((get.method(), get.uri().path()), (&Method::GET, path));
        let live = json!({ "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": { "name": "signoz", "namespace": "platform" }, "spec": {} });
        send.send_response(json_response(200, &live));
        let (patch, send) = handle.next_request().await.unwrap();
        assert_eq!((patch.method(), patch.uri().path()), (&Method::PATCH, path));
        assert_eq!(
            patch.headers()["content-type"],
            "application/merge-patch+json"
        );
        let body = body_json(patch).await;
        send.send_response(json_response(200, &live));
        body
    });
    let restarted = super::restart_workloads(
        &client,
        &spec,
        &crate::spec::chart::dsn_readers(&spec),
        "dsn rotated",
    )
    .await
    .unwrap();
    let body = server.await.unwrap();
    assert_eq!(restarted, ["StatefulSet/platform/signoz"]);
    let annotations = &body["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        annotations["signoz-control-plane/restarted-for"],
        "dsn rotated"
    );
    assert!(
        annotations["kubectl.kubernetes.io/restartedAt"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

#[test]
fn named_items_are_matched_by_name_beside_other_managers_items() {
    let desired =
        json!({ "containers": [{ "name": "api", "env": [{ "name": "A", "value": "1" }] }] });
    let live = json!({ "containers": [
        { "name": "sidecar", "image": "x" },
        { "name": "api", "image": "y", "env": [{ "name": "B", "value": "2" }, { "name": "A", "value": "1" }] },
    ]});
    assert!(differing_paths(&desired, &live).is_empty());
    let live = json!({ "containers": [{ "name": "api", "env": [{ "name": "A", "value": "0" }] }] });
    assert_eq!(
        differing_paths(&desired, &live),
        [".containers[name=api].env[name=A].value"]
    );
}

fn flux_spec() -> PlatformSpec {
    let mut spec = example_spec();
    spec.cluster.delivery.method = DeliveryMethod::Flux;
    spec.cluster.delivery.flux = Some(FluxDelivery {
        namespace: "flux-system".into(),
        source_kind: "HelmRepository".into(),
        source_name: "signoz".into(),
        values_configmap: "signoz-values".into(),
    });
    spec.instrumentation.operator.as_mut().unwrap().source_name = Some("open-telemetry".into());
    spec
}

#[tokio::test]
async fn flux_objects_are_applied_at_their_api_paths() {
    let objects = render_delivery(&flux_spec());
    let expected = [
        "/api/v1/namespaces/flux-system/configmaps/signoz-values",
        "/apis/helm.toolkit.fluxcd.io/v2/namespaces/flux-system/helmreleases/signoz",
        "/api/v1/namespaces/flux-system/configmaps/opentelemetry-operator-values",
        "/apis/helm.toolkit.fluxcd.io/v2/namespaces/flux-system/helmreleases/opentelemetry-operator",
    ];
    assert_eq!(objects.len(), expected.len());
    for (object, path) in objects.iter().zip(expected) {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move { expect_create(&mut handle, path).await });
        let outcome = apply_object(&client, "signoz-control-plane", object, false)
            .await
            .unwrap();
        let (query, content_type, body) = server.await.unwrap();
        assert_eq!(outcome, ApplyOutcome::Created);
        assert_eq!(content_type, "application/apply-patch+yaml");
        assert!(query.contains("fieldManager=signoz-control-plane") && !query.contains("force"));
        assert_eq!(
            body["metadata"]["labels"],
            object.body["metadata"]["labels"]
        );
    }
}

#[tokio::test]
async fn a_workload_gets_only_our_fields_applied_and_is_never_created() {
    let spec = example_spec();
    let workload = &spec.instrumentation.workloads[0];
    let object =
        super::render::instrumentation::render_workload_optin(&spec, workload, Some("api"))
            .unwrap();
    let path = "/apis/apps/v1/namespaces/apps/deployments/api";

    // Absent: reported missing, nothing written.
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        let (get, send) = handle.next_request().await.unwrap();
        assert_eq!(get.uri().path(), path);
        send.send_response(not_found());
        handle
    });
    let outcome = apply_object(&client, "signoz-control-plane", &object, false)
        .await
        .unwrap();
    assert_eq!(outcome, ApplyOutcome::Missing);
    drop(client);
    assert!(server.await.unwrap().next_request().await.is_none());

    // Present: a partial apply with the annotation, the label and the env var only.
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        let (_, send) = handle.next_request().await.unwrap();
        let live = json!({ "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "api", "namespace": "apps" },
            "spec": { "template": { "spec": { "containers": [{ "name": "api", "image": "app:1" }] } } } });
        send.send_response(json_response(200, &live));
        let (patch, send) = handle.next_request().await.unwrap();
        assert_eq!(
            patch.headers()["content-type"],
            "application/apply-patch+yaml"
        );
        let body = body_json(patch).await;
        send.send_response(json_response(200, &body));
        body
    });
    let outcome = apply_object(&client, "signoz-control-plane", &object, false)
        .await
        .unwrap();
    let body = server.await.unwrap();
    assert!(matches!(outcome, ApplyOutcome::Updated { .. }));
    let template = &body["spec"]["template"];
    assert_eq!(
        template["metadata"]["annotations"]["instrumentation.opentelemetry.io/inject-python"],
        "platform/python"
    );
    assert_eq!(
        template["spec"]["containers"],
        json!([{ "name": "api", "env": [{ "name": "OTEL_SERVICE_NAME", "value": "acme-api" }] }])
    );
    assert!(
        body["metadata"].get("annotations").is_none(),
        "no hash annotation on objects we do not own"
    );
    assert!(body["spec"].get("replicas").is_none() && body["spec"].get("selector").is_none());
}

#[tokio::test]
async fn an_object_someone_else_created_is_never_labelled_ours() {
    let spec = example_spec();
    let application = render_delivery(&spec).remove(0);
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        let (_, send) = handle.next_request().await.unwrap();
        let live = json!({ "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": { "name": "signoz", "namespace": "argocd", "labels": { "team": "platform" } }, "spec": {} });
        send.send_response(json_response(200, &live));
        let (patch, send) = handle.next_request().await.unwrap();
        let body = body_json(patch).await;
        send.send_response(json_response(200, &body));
        body
    });
    apply_object(&client, "signoz-control-plane", &application, false)
        .await
        .unwrap();
    let body = server.await.unwrap();
    assert_eq!(body["metadata"].get("labels"), Some(&json!({})));
    assert_eq!(
        body["spec"]["source"]["helm"]["valuesObject"],
        render_helm_values(&spec)
    );
}

#[test]
fn only_a_write_of_the_configured_spec_triggers_a_sync() {
    use crate::events::ObjectWritten;
    use crate::spec::SpecLocation;
    let location = SpecLocation::parse("s3://acme-config/platform.yaml").unwrap();
    let written = |key: &str| ObjectWritten {
        bucket: "acme-config".into(),
        key: key.into(),
        etag: None,
        version_id: None,
    };
    assert!(super::is_configured_spec(
        &location,
        &written("platform.yaml")
    ));
    assert!(!super::is_configured_spec(
        &location,
        &written("other.yaml")
    ));
}

/// Answers recorded from the real kube-apiserver (v1.36, `../shared/envtest`), sent through
/// kube-rs's own response handling, and what each becomes.
#[tokio::test]
async fn real_server_answers_become_typed_errors_that_name_the_problem() {
    use super::Error;
    let spec = example_spec();
    let object = render_scaled_object(&spec);
    let answer = |status: u16, body: &'static str, json: bool| {
        let object = object.clone();
        async move {
            let (client, mut handle) = mock_client();
            let serve = tokio::spawn(async move {
                let (_, send) = handle.next_request().await.expect("GET");
                let mut response = Response::builder().status(status);
                if json {
                    response = response.header("content-type", "application/json");
                }
                send.send_response(response.body(Body::from(body.as_bytes().to_vec())).unwrap());
            });
            let err = apply_object(&client, "m", &object, false)
                .await
                .unwrap_err();
            serve.await.unwrap();
            err
        }
    };
    let forbidden = answer(403, r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"scaledobjects.keda.sh \"signoz-otel-collector\" is forbidden: User \"arn:aws:sts::1:assumed-role/sync-cluster/x\" cannot get resource \"scaledobjects\" in API group \"keda.sh\" in the namespace \"platform\"","reason":"Forbidden","details":{"name":"signoz-otel-collector","group":"keda.sh","kind":"scaledobjects"},"code":403}"#, true).await;
    assert!(
        matches!(&forbidden, Error::Forbidden { verb, resource, scope, .. }
            if verb == "get" && resource == "keda.sh/scaledobjects" && scope == "namespace platform"),
        "{forbidden:?}"
    );
    assert!(!forbidden.retryable());
    assert!(
        forbidden.to_string().contains("signoz-control rbac"),
        "{forbidden}"
    );

    let missing_crd = answer(404, "404 page not found\n", false).await;
    assert!(
        matches!(&missing_crd, Error::KindNotServed { crd, .. } if crd == "scaledobjects.keda.sh"),
        "{missing_crd:?}"
    );
    assert!(!missing_crd.retryable());

    let throttled = answer(429, r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Too many requests, please try again later.","reason":"TooManyRequests","code":429}"#, true).await;
    assert!(
        matches!(throttled, Error::Kube { .. }) && throttled.retryable(),
        "{throttled:?}"
    );
}

#[test]
fn the_shipped_rbac_grants_nothing_cluster_wide_and_never_lists_secrets() {
    use super::permissions::{kubernetes_group, render_rbac, required_access};
    let spec = example_spec();
    let access = required_access(&spec).unwrap();
    assert_eq!(
        access.keys().copied().collect::<Vec<_>>(),
        [
            crate::alarms::FUNCTION,
            crate::credentials::FUNCTION,
            super::FUNCTION
        ]
    );
    for (function, grants) in &access {
        for g in grants {
            assert!(!g.namespace.is_empty(), "{function}: cluster-wide {g:?}");
            if g.resource == "secrets" {
                assert!(!g.verbs.contains("list"), "{function} lists Secrets");
                assert!(
                    g.names.is_empty()
                        == (g.verbs.iter().copied().collect::<Vec<_>>() == ["create"]),
                    "{function}: Secret reads and writes are limited by name: {g:?}"
                );
            }
        }
    }
    // respond-to-alarms writes only the ScaledObject (the example has no cluster reconcile policy).
    let alarms = &access["respond-to-alarms"];
    assert!(
        alarms.iter().all(|g| g.resource == "scaledobjects"),
        "{alarms:?}"
    );
    // A cluster reconcile policy gives it what the sync needs.
    let mut with_sync = spec.clone();
    with_sync.alarms.policies[2].action =
        crate::spec::AlarmAction::ReconcileNow(crate::spec::ReconcileNow {
            target: crate::spec::ReconcileTarget::Cluster,
        });
    let wider = required_access(&with_sync).unwrap();
    assert_eq!(wider["respond-to-alarms"], wider["sync-cluster"]);
    // Every Role is bound to its function's group only.
    for manifest in render_rbac(&spec).unwrap() {
        if manifest["kind"] == "RoleBinding" {
            let function = manifest["metadata"]["labels"]["app.kubernetes.io/component"]
                .as_str()
                .unwrap();
            assert_eq!(
                manifest["subjects"][0]["name"],
                kubernetes_group(&spec, function)
            );
            assert_eq!(manifest["subjects"].as_array().unwrap().len(), 1);
        }
    }
}

/// A dry run's diff is the live object against what the server answers it would store:
/// the server's bookkeeping and our content hash are not changes, defaults it fills and
/// fields it drops are, and a Secret's values never show.
#[test]
fn the_stored_diff_is_the_servers_answer_against_the_live_object() {
    use crate::cluster::apply::stored_changes;
    use crate::cluster::objects::APPLIED_HASH_ANNOTATION;
    let live = json!({
        "metadata": { "name": "x", "resourceVersion": "41", "generation": 3, "uid": "u",
            "managedFields": [{ "manager": "signoz-control-plane" }],
            "annotations": { APPLIED_HASH_ANNOTATION: "old" } },
        "spec": { "maxReplicaCount": 10, "advanced": { "restoreToOriginalReplicaCount": true } },
        "status": { "conditions": [] },
    });
    let stored = json!({
        "metadata": { "name": "x", "resourceVersion": "42", "generation": 4, "uid": "u",
            "managedFields": [{ "manager": "signoz-control-plane", "time": "now" }],
            "annotations": { APPLIED_HASH_ANNOTATION: "new" } },
        "spec": { "maxReplicaCount": 12, "pollingInterval": 30 },
        "status": { "conditions": [{ "type": "Ready" }] },
    });
    let lines: Vec<String> = stored_changes("ScaledObject", &live, &stored)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            ".spec.maxReplicaCount: 10 -> 12",
            ".spec.pollingInterval: (none) -> 30",
            ".spec.advanced.restoreToOriginalReplicaCount: true -> (none)",
        ]
    );
    let secret = |dsn: &str| json!({ "metadata": { "name": "db" }, "data": { "DSN": dsn } });
    let changes = stored_changes("Secret", &secret("b2xk"), &secret("bmV3"));
    assert_eq!(
        changes[0].to_string(),
        ".data.DSN: <redacted> -> <redacted>"
    );
}
