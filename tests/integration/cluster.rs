//! sync-cluster against the Kubernetes emulator (and, `#[ignore]`d, the cluster of the
//! current kubeconfig): create, no-op, targeted update, release, prune, conflicts.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use signoz_control::cluster::objects::{instrumentation_resource, scaled_object_resource};
use signoz_control::cluster::sync::{DsnSource, SyncReport, sync_cluster};
use signoz_control::spec::{PlatformSpec, parse_spec};

const INJECT: &str = "instrumentation.opentelemetry.io/inject-python";
const SERVICE_NAME: &str = "resource.opentelemetry.io/service.name";

fn example_spec() -> PlatformSpec {
    parse_spec(include_str!("../../infra/platform.yaml")).expect("example spec")
}

fn dsn(version: &str) -> DsnSource {
    DsnSource {
        dsn: format!("postgres://signoz_app:pw-{version}@db.local:5432/signoz?sslmode=verify-full"),
        version_id: version.into(),
    }
}

/// Namespaces and the workloads the example spec names, as an app team would have them.
async fn arrange_platform(client: &Client) {
    for ns in ["platform", "argocd", "apps"] {
        let body: Namespace =
            serde_json::from_value(json!({ "metadata": { "name": ns } })).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &body)
            .await
            .expect("namespace");
    }
    let template = |app: &str| {
        json!({
            "selector": { "matchLabels": { "app": app } },
            "template": {
                "metadata": { "labels": { "app": app } },
                "spec": { "containers": [{ "name": app, "image": "python:3.12" }] },
            },
        })
    };
    for app in ["api", "worker", "beat", "flower"] {
        let body: Deployment = serde_json::from_value(json!({
            "metadata": { "name": app, "namespace": "apps" }, "spec": template(app),
        }))
        .unwrap();
        Api::<Deployment>::namespaced(client.clone(), "apps")
            .create(&PostParams::default(), &body)
            .await
            .expect("deployment");
    }
    let mut spec = template("signoz");
    spec["serviceName"] = json!("signoz");
    let body: StatefulSet = serde_json::from_value(json!({
        "metadata": { "name": "signoz", "namespace": "platform" }, "spec": spec,
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), "platform")
        .create(&PostParams::default(), &body)
        .await
        .expect("statefulset");
}

/// The server's global resourceVersion: it moves on every stored write.
async fn cluster_revision(client: &Client) -> String {
    let list = Api::<ConfigMap>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
        .expect("list");
    list.metadata.resource_version.unwrap_or_default()
}

/// `OTEL_SERVICE_NAME` of a Deployment's first container, if set.
async fn otel_service_name(client: &Client, name: &str) -> Option<String> {
    let d = Api::<Deployment>::namespaced(client.clone(), "apps")
        .get(name)
        .await
        .unwrap();
    let container = d.spec.unwrap().template.spec.unwrap().containers.remove(0);
    assert_eq!(
        container.image.as_deref(),
        Some("python:3.12"),
        "the app's own fields stay"
    );
    container
        .env
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == "OTEL_SERVICE_NAME")
        .and_then(|e| e.value)
}

async fn template_annotations(client: &Client, name: &str) -> Value {
    let d = Api::<Deployment>::namespaced(client.clone(), "apps")
        .get(name)
        .await
        .unwrap();
    let annotations = d
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap_or_default();
    serde_json::to_value(annotations).unwrap()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn sync(client: &Client, spec: &PlatformSpec, dsn: &DsnSource) -> SyncReport {
    sync_cluster(client, spec, Some(dsn), false)
        .await
        .expect("sync")
}

/// The whole scenario; runs against the emulator and, ignored, a real cluster.
async fn converges_then_updates_only_what_changed(client: Client) {
    arrange_platform(&client).await;
    let mut spec = example_spec();
    let v1 = dsn("v1");

    // First sync creates everything and restarts every workload once.
    let started = std::time::Instant::now();
    let first = sync(&client, &spec, &v1).await;
    eprintln!("first sync: {:?}", started.elapsed());
    assert_eq!(
        sorted(first.created.clone()),
        [
            "Application/argocd/signoz",
            "Instrumentation/platform/python",
            "ScaledObject/platform/signoz-otel-collector",
            "Secret/platform/signoz-metadata-db",
        ]
    );
    assert_eq!(
        first.updated.len(),
        4,
        "the four workloads got their opt-in fields"
    );
    assert_eq!(first.restarted.len(), 5, "{:?}", first.restarted);
    let api = template_annotations(&client, "api").await;
    assert_eq!(api[INJECT], "platform/python");
    assert_eq!(api[SERVICE_NAME], "acme-api");
    assert_eq!(
        otel_service_name(&client, "api").await.as_deref(),
        Some("acme-api")
    );
    let secret = Api::<Secret>::namespaced(client.clone(), "platform")
        .get("signoz-metadata-db")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data["SIGNOZ_SQLSTORE_PROVIDER"].0, b"postgres");
    assert!(String::from_utf8_lossy(&data["SIGNOZ_SQLSTORE_POSTGRES_DSN"].0).contains("pw-v1"));

    // Second sync: nothing to do, and nothing written.
    let before = cluster_revision(&client).await;
    let started = std::time::Instant::now();
    let second = sync(&client, &spec, &v1).await;
    eprintln!("no-op sync: {:?}", started.elapsed());
    assert!(second.in_sync(), "{second:?}");
    assert_eq!(second.unchanged.len(), 8);
    assert_eq!(
        cluster_revision(&client).await,
        before,
        "a no-op sync wrote something"
    );

    // One workload's service name changes: only it is updated and restarted.
    spec.instrumentation.workloads[0].service_name = "acme-api-v2".into();
    let third = sync(&client, &spec, &v1).await;
    assert_eq!(
        third
            .updated
            .iter()
            .map(|u| u.object.as_str())
            .collect::<Vec<_>>(),
        ["Deployment/apps/api"]
    );
    assert_eq!(third.restarted, ["Deployment/apps/api"]);
    assert_eq!(
        template_annotations(&client, "api").await[SERVICE_NAME],
        "acme-api-v2"
    );
    assert_eq!(
        otel_service_name(&client, "api").await.as_deref(),
        Some("acme-api-v2")
    );

    // The sampler changes: the Instrumentation and every instrumented workload, once.
    spec.instrumentation.sampler.argument = Some("0.25".into());
    let fourth = sync(&client, &spec, &v1).await;
    assert_eq!(
        fourth
            .updated
            .iter()
            .map(|u| u.object.as_str())
            .collect::<Vec<_>>(),
        ["Instrumentation/platform/python"]
    );
    assert_eq!(fourth.restarted.len(), 4, "{:?}", fourth.restarted);
    assert!(
        sync(&client, &spec, &v1).await.in_sync(),
        "restarts happen once per change"
    );

    // A new DSN version: the Secret's data changes and only SigNoz restarts.
    let fifth = sync(&client, &spec, &dsn("v2")).await;
    assert_eq!(
        fifth
            .updated
            .iter()
            .map(|u| u.object.as_str())
            .collect::<Vec<_>>(),
        ["Secret/platform/signoz-metadata-db"]
    );
    let secret_diff = serde_json::to_string(&fifth.updated[0].changes).unwrap();
    assert!(
        secret_diff.contains("<redacted>") && !secret_diff.contains("pw-v"),
        "{secret_diff}"
    );
    assert_eq!(fifth.restarted, ["StatefulSet/platform/signoz"]);

    // A workload leaves the spec and the release is renamed: our fields and objects go.
    spec.instrumentation
        .workloads
        .retain(|w| w.name != "worker");
    spec.cluster.delivery.release = "observability".into();
    let sixth = sync(&client, &spec, &dsn("v2")).await;
    assert_eq!(sixth.released_workloads, ["Deployment/apps/worker"]);
    assert!(
        sixth
            .restarted
            .contains(&"Deployment/apps/worker".to_string())
    );
    assert_eq!(
        sixth.pruned,
        ["ScaledObject/platform/signoz-otel-collector"]
    );
    let worker = template_annotations(&client, "worker").await;
    assert!(
        worker.get(INJECT).is_none() && worker.get(SERVICE_NAME).is_none(),
        "{worker}"
    );
    assert_eq!(
        otel_service_name(&client, "worker").await,
        None,
        "our env var is released too"
    );
    assert_eq!(
        otel_service_name(&client, "beat").await.as_deref(),
        Some("acme-beat")
    );
    let scaled = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "platform",
        &scaled_object_resource(),
    );
    assert!(
        scaled
            .get_opt("signoz-otel-collector")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        scaled
            .get_opt("observability-otel-collector")
            .await
            .unwrap()
            .is_some()
    );
    // Objects that are not ours are never pruned.
    assert!(
        Api::<StatefulSet>::namespaced(client.clone(), "platform")
            .get_opt("signoz")
            .await
            .unwrap()
            .is_some()
    );

    // Another manager owns a field we want: reported with its name, not overwritten.
    let theirs = json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": { "name": "observability-otel-collector", "namespace": "platform" },
        "spec": { "maxReplicaCount": 7 },
    });
    scaled
        .patch(
            "observability-otel-collector",
            &PatchParams::apply("argocd-controller").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .expect("other manager applies");
    spec.collectors.max_replicas = 12;
    let seventh = sync(&client, &spec, &dsn("v2")).await;
    assert_eq!(seventh.conflicts.len(), 1, "{seventh:?}");
    assert!(
        seventh.conflicts[0].message.contains("argocd-controller"),
        "{}",
        seventh.conflicts[0].message
    );
    let live = scaled.get("observability-otel-collector").await.unwrap();
    assert_eq!(live.data["spec"]["maxReplicaCount"], 7);

    // Delivery moves from ArgoCD to Flux: the values ConfigMap and HelmRelease appear,
    // our Application goes.
    spec.cluster.delivery.method = signoz_control::spec::DeliveryMethod::Flux;
    spec.cluster.delivery.flux = Some(signoz_control::spec::FluxDelivery {
        namespace: "flux-system".into(),
        source_kind: "HelmRepository".into(),
        source_name: "signoz".into(),
        values_configmap: "signoz-values".into(),
    });
    let eighth = sync(&client, &spec, &dsn("v2")).await;
    assert_eq!(
        eighth.created,
        [
            "Namespace//flux-system",
            "ConfigMap/flux-system/signoz-values",
            "HelmRelease/flux-system/observability"
        ]
    );
    assert_eq!(eighth.pruned, ["Application/argocd/signoz"]);
    let values = Api::<ConfigMap>::namespaced(client.clone(), "flux-system")
        .get("signoz-values")
        .await
        .unwrap();
    assert!(values.data.unwrap()["values.yaml"].contains("memory_limiter"));

    // A dry run reports what would change and writes nothing.
    spec.instrumentation.propagators = vec!["tracecontext".into()];
    let before = cluster_revision(&client).await;
    let dry = sync_cluster(&client, &spec, Some(&dsn("v2")), true)
        .await
        .unwrap();
    assert_eq!(dry.updated[0].object, "Instrumentation/platform/python");
    assert_eq!(
        dry.updated[0].changes[0].path,
        ".metadata.annotations.signoz-control-plane/applied-hash"
    );
    assert!(
        dry.updated[0]
            .changes
            .iter()
            .any(|c| c.path == ".spec.propagators" && c.after == json!(["tracecontext"]))
    );
    assert_eq!(
        cluster_revision(&client).await,
        before,
        "a dry run wrote something"
    );
    let inst = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "platform",
        &instrumentation_resource(),
    );
    assert_eq!(
        inst.get("python").await.unwrap().data["spec"]["propagators"],
        json!(["tracecontext", "baggage"])
    );
}

#[tokio::test]
async fn sync_converges_against_the_emulator() {
    signoz_control::runtime::install_crypto();
    let emulator =
        kube_emulator::Emulator::start(kube_emulator::Config::default()).expect("emulator");
    let client = emulator.client().await.expect("client");
    converges_then_updates_only_what_changed(client).await;
    emulator.shutdown().await;
}

/// Same scenario against the cluster of the current kubeconfig (kind, k3d, EKS); it
/// creates namespaces platform, argocd and apps and needs the KEDA, OpenTelemetry
/// Operator and ArgoCD CRDs installed. Run: `cargo test -p platform-tests --test
/// integration cluster::real_cluster -- --ignored` on a throwaway cluster.
#[tokio::test]
#[ignore]
async fn real_cluster_converges() {
    signoz_control::runtime::install_crypto();
    let client = Client::try_default().await.expect("kubeconfig");
    converges_then_updates_only_what_changed(client).await;
}

fn event(name: &str) -> Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("sample event")).expect("json")
}

/// The Lambda handler end to end: spec from a file, DSN from Secrets Manager's AWSCURRENT
/// (moto), cluster from a kubeconfig (the emulator); a dry run first, then the sync.
#[tokio::test]
async fn handler_syncs_the_cluster_with_the_dsn_from_secrets_manager() {
    let sdk = platform_tests::aws().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let app_secret = platform_tests::unique("signoz-app");
    secrets
        .create_secret()
        .name(&app_secret)
        .secret_string(
            json!({ "engine": "postgres", "host": "db.local", "port": 5432, "username": "signoz_app",
                    "password": "Zx9-not-a-real-one", "dbname": "signoz" })
            .to_string(),
        )
        .send()
        .await
        .expect("app secret");

    let emulator =
        kube_emulator::Emulator::start(kube_emulator::Config::default()).expect("emulator");
    // An empty cluster, as in the local run: namespaces are created, missing workloads reported.
    let client = emulator.client().await.expect("client");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig).unwrap();
    let spec_path = dir.path().join("platform.yaml");
    let spec_text =
        include_str!("../../infra/platform.yaml").replace("signoz/metadata-db/app", &app_secret);
    std::fs::write(&spec_path, &spec_text).unwrap();

    let location = signoz_control::spec::SpecLocation::Path(spec_path);
    let role = platform_tests::aws_as(
        signoz_control::cluster::FUNCTION,
        &platform_tests::Deployment::for_spec_text(&spec_text, &location),
    )
    .await;
    let ctx = signoz_control::cluster::Context {
        s3: signoz_control::aws::s3_client(&role),
        secrets: aws_sdk_secretsmanager::Client::new(&role),
        spec_location: location,
        kubeconfig: Some(kubeconfig),
        sdk: role,
    };
    let mut dry = event("control-sync-cluster.json");
    dry["detail"]["dry_run"] = json!(true);
    let answer = signoz_control::cluster::handle(&ctx, dry)
        .await
        .expect("dry run");
    assert_eq!(answer["report"]["dry_run"], true);
    assert_eq!(
        answer["report"]["created"].as_array().unwrap().len(),
        6,
        "namespaces argocd and platform, Application, ScaledObject, Instrumentation, Secret: {answer}"
    );
    assert_eq!(
        answer["report"]["missing_workloads"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let namespaces = Api::<Namespace>::all(client.clone());
    assert!(
        namespaces.get_opt("platform").await.unwrap().is_none(),
        "dry run wrote"
    );
    let secrets_api = Api::<Secret>::namespaced(client.clone(), "platform");
    assert!(
        secrets_api
            .get_opt("signoz-metadata-db")
            .await
            .unwrap()
            .is_none(),
        "dry run wrote"
    );

    let answer = signoz_control::cluster::handle(&ctx, event("schedule.json"))
        .await
        .expect("sync");
    assert_eq!(answer["in_sync"], false);
    assert!(namespaces.get_opt("argocd").await.unwrap().is_some());
    let secret = secrets_api.get("signoz-metadata-db").await.unwrap();
    let dsn = String::from_utf8(
        secret.data.unwrap()["SIGNOZ_SQLSTORE_POSTGRES_DSN"]
            .0
            .clone(),
    )
    .unwrap();
    assert!(
        dsn.starts_with("postgres://signoz_app:") && dsn.contains("@db.local:5432/signoz"),
        "DSN shape"
    );
    assert!(
        !answer.to_string().contains("Zx9-not-a-real-one"),
        "the password leaked into the answer"
    );

    let answer = signoz_control::cluster::handle(&ctx, event("schedule.json"))
        .await
        .expect("resync");
    assert_eq!(answer["in_sync"], true, "{answer}");

    let err = signoz_control::cluster::handle(&ctx, event("control-reconcile-cold-storage.json"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Reconcile Cold Storage"), "{err}");

    secrets
        .delete_secret()
        .secret_id(&app_secret)
        .force_delete_without_recovery(true)
        .send()
        .await
        .ok();
    emulator.shutdown().await;
}

/// EKS access without kubectl: DescribeCluster (moto) gives endpoint and CA, the bearer
/// token is minted for this cluster; the token then authenticates against a server that
/// only accepts EKS tokens.
#[tokio::test]
async fn eks_access_uses_describe_cluster_and_a_fresh_iam_token() {
    use base64::Engine as _;
    let sdk = platform_tests::aws().await;
    let eks = aws_sdk_eks::Client::new(&sdk);
    let mut spec = example_spec();
    spec.cluster.name = platform_tests::unique("eks");
    eks.create_cluster()
        .name(&spec.cluster.name)
        .role_arn("arn:aws:iam::123456789012:role/eks")
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .build(),
        )
        .send()
        .await
        .expect("moto cluster");
    let described = eks
        .describe_cluster()
        .name(&spec.cluster.name)
        .send()
        .await
        .unwrap();
    let endpoint = described.cluster().unwrap().endpoint().unwrap().to_string();

    let role = platform_tests::aws_as(
        signoz_control::cluster::FUNCTION,
        &platform_tests::Deployment::for_spec(
            &spec,
            &signoz_control::spec::SpecLocation::Path("".into()),
        ),
    )
    .await;
    let mut kubeconfig = signoz_control::cluster::access::eks_kubeconfig(&spec, &role)
        .await
        .expect("kubeconfig");
    assert_eq!(
        kubeconfig.clusters[0]
            .cluster
            .as_ref()
            .unwrap()
            .server
            .as_deref(),
        Some(endpoint.as_str())
    );
    let users = serde_json::to_value(&kubeconfig.auth_infos).unwrap();
    let token = users[0]["user"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    let url = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.strip_prefix("k8s-aws-v1.").expect("prefix"))
            .unwrap(),
    )
    .unwrap();
    assert!(url.starts_with(
        "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
    ));
    assert!(
        url.contains("X-Amz-Expires=60") && url.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"),
        "{url}"
    );

    // The same kubeconfig pointed at a server that demands an EKS token.
    let emulator = kube_emulator::Emulator::start(kube_emulator::Config {
        bearer_token: Some(kube_emulator::TokenCheck::eks()),
        ..Default::default()
    })
    .expect("emulator");
    let cluster = kubeconfig.clusters[0].cluster.as_mut().unwrap();
    cluster.server = Some(emulator.url());
    cluster.certificate_authority_data =
        Some(base64::engine::general_purpose::STANDARD.encode(emulator.ca_pem()));
    let client = signoz_control::cluster::access::client_from_kubeconfig(kubeconfig)
        .await
        .unwrap();
    Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .expect("EKS token accepted");
    emulator.shutdown().await;
    eks.delete_cluster()
        .name(&spec.cluster.name)
        .send()
        .await
        .ok();
}
