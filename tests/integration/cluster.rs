//! sync-cluster against the stack's real kube-apiserver (RBAC on, the real CRDs), acting
//! as the identity the deployment maps its role to and authorised only by the RBAC
//! rendered from the spec; and, `#[ignore]`d, the cluster of the current kubeconfig.
//! Create, no-op, targeted update, release, prune, conflicts, and the answers of a real
//! server: RBAC refusals, missing CRDs, schema rejections.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use platform_tests::kube::{TestCluster, apply_as_admin, spec_yaml, write_identity_kubeconfig};
use serde_json::{Value, json};
use signoz_control::cluster::delivery::DeliveryRecord;
use signoz_control::cluster::objects::{
    DesiredObject, argocd_application_resource, configmap_resource, helm_release_resource,
    instrumentation_resource, resource, scaled_object_resource, secret_resource, workload_resource,
};
use signoz_control::cluster::permissions::{render_rbac, role_name};
use signoz_control::cluster::sync::{
    DsnSource, SyncInputs, SyncReport, sync_cluster, sync_cluster_with,
};
use signoz_control::cluster::{Error, FUNCTION};
use signoz_control::spec::{PlatformSpec, parse_spec};

const INJECT: &str = "instrumentation.opentelemetry.io/inject-python";
const SERVICE_NAME: &str = "resource.opentelemetry.io/service.name";

fn example_spec() -> PlatformSpec {
    parse_spec(include_str!("../../infra/platform.yaml")).expect("example spec")
}

fn dsn(version: &str) -> DsnSource {
    DsnSource {
        dsn: format!("postgres://signoz_app:pw-{version}@db.local:5432/signoz?sslmode=verify-full"),
        ca_bundle: "-----BEGIN CERTIFICATE-----\n".into(),
        version_id: version.into(),
        // The test is the authority: each version it hands over is AWSCURRENT.
        authority: None,
    }
}

/// Every kind a sync writes, to judge "nothing was written" per object.
fn written_kinds() -> Vec<ApiResource> {
    let mut kinds = vec![
        secret_resource(),
        configmap_resource(),
        scaled_object_resource(),
        instrumentation_resource(),
        argocd_application_resource(),
        helm_release_resource(),
    ];
    kinds.extend(["Deployment", "StatefulSet"].map(|k| workload_resource(k).unwrap()));
    kinds
}

/// `OTEL_SERVICE_NAME` of a Deployment's first container, if set.
async fn otel_service_name(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let d = Api::<Deployment>::namespaced(client.clone(), namespace)
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

async fn template_annotations(client: &Client, namespace: &str, name: &str) -> Value {
    let d = Api::<Deployment>::namespaced(client.clone(), namespace)
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

fn ids(updated: &SyncReport) -> Vec<&str> {
    updated.updated.iter().map(|u| u.object.as_str()).collect()
}

async fn sync(client: &Client, spec: &PlatformSpec, dsn: &DsnSource) -> SyncReport {
    let report = sync_cluster(client, spec, Some(dsn), false)
        .await
        .expect("sync");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    report
}

/// A sync as the functions run it (`sync::reconcile`): against the state's record of
/// what SigNoz was delivered with, which it then updates.
async fn sync_recorded(
    client: &Client,
    spec: &PlatformSpec,
    dsn: &DsnSource,
    record: &mut Option<DeliveryRecord>,
) -> SyncReport {
    let inputs = SyncInputs {
        dsn: Some(dsn),
        delivered: record.as_ref(),
        ..Default::default()
    };
    let report = sync_cluster_with(client, spec, inputs).await.expect("sync");
    if let Some(delivered) = &report.delivered {
        *record = Some(delivered.clone());
    }
    report
}

/// The whole scenario, as sync-cluster's identity (`client`) on `cluster`'s platform.
async fn converges_then_updates_only_what_changed(mut cluster: TestCluster, client: Client) {
    cluster.arrange_workloads().await;
    let admin = cluster.admin.clone();
    let mut spec = cluster.spec.clone();
    let (ns, argo_ns) = (
        spec.cluster.namespace.clone(),
        spec.cluster
            .delivery
            .argocd
            .as_ref()
            .unwrap()
            .namespace
            .clone(),
    );
    let apps = spec.instrumentation.workloads[0].namespace.clone().unwrap();
    let v1 = dsn("v1");

    // First sync creates everything and restarts every workload once.
    let first = sync(&client, &spec, &v1).await;
    assert_eq!(
        sorted(first.created.clone()),
        [
            format!("Application/{argo_ns}/opentelemetry-operator"),
            format!("Application/{argo_ns}/signoz"),
            format!("Instrumentation/{ns}/python"),
            format!("ScaledObject/{ns}/signoz-otel-collector"),
            format!("Secret/{ns}/signoz-metadata-db"),
        ]
    );
    assert_eq!(
        first.created[0],
        format!("Secret/{ns}/signoz-metadata-db"),
        "the DSN first"
    );
    assert_eq!(
        first.updated.len(),
        4,
        "the four workloads got their opt-in fields"
    );
    assert_eq!(first.restarted.len(), 5, "{:?}", first.restarted);
    let api = template_annotations(&admin, &apps, "api").await;
    assert_eq!(api[INJECT], format!("{ns}/python"));
    assert_eq!(api[SERVICE_NAME], "acme-api");
    assert_eq!(
        otel_service_name(&admin, &apps, "api").await.as_deref(),
        Some("acme-api")
    );
    let secret = Api::<Secret>::namespaced(admin.clone(), &ns)
        .get("signoz-metadata-db")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data["SIGNOZ_SQLSTORE_PROVIDER"].0, b"postgres");
    assert!(String::from_utf8_lossy(&data["SIGNOZ_SQLSTORE_POSTGRES_DSN"].0).contains("pw-v1"));

    // Second sync: nothing to do, and no object written (the resourceVersion is global on
    // a real server, other tests write too: judged per object).
    let before = cluster.revisions(&written_kinds()).await;
    let second = sync(&client, &spec, &v1).await;
    assert!(second.in_sync(), "{second:?}");
    assert_eq!(second.unchanged.len(), 9);
    assert_eq!(
        cluster.revisions(&written_kinds()).await,
        before,
        "a no-op sync wrote"
    );

    // One workload's service name changes: only it is updated and restarted.
    spec.instrumentation.workloads[0].service_name = "acme-api-v2".into();
    let third = sync(&client, &spec, &v1).await;
    assert_eq!(ids(&third), [format!("Deployment/{apps}/api")]);
    assert_eq!(third.restarted, [format!("Deployment/{apps}/api")]);
    assert_eq!(
        template_annotations(&admin, &apps, "api").await[SERVICE_NAME],
        "acme-api-v2"
    );
    assert_eq!(
        otel_service_name(&admin, &apps, "api").await.as_deref(),
        Some("acme-api-v2")
    );

    // The sampler changes: the Instrumentation, and every instrumented workload rolls
    // once, by the one write that records the new fingerprint in its pod template.
    spec.instrumentation.sampler.argument = Some("0.25".into());
    let fourth = sync(&client, &spec, &v1).await;
    assert_eq!(
        ids(&fourth),
        [
            format!("Instrumentation/{ns}/python"),
            format!("Deployment/{apps}/api"),
            format!("Deployment/{apps}/worker"),
            format!("Deployment/{apps}/beat"),
            format!("Deployment/{apps}/flower"),
        ]
    );
    for update in &fourth.updated[1..] {
        let paths: Vec<&str> = update.changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [".spec.template.metadata.annotations.signoz-control-plane/instrumentation-hash"],
            "{}",
            update.object
        );
    }
    assert_eq!(fourth.restarted.len(), 4, "{:?}", fourth.restarted);
    assert!(
        sync(&client, &spec, &v1).await.in_sync(),
        "restarts happen once per change"
    );

    // A new DSN version: the Secret's data changes and only SigNoz restarts.
    let fifth = sync(&client, &spec, &dsn("v2")).await;
    assert_eq!(ids(&fifth), [format!("Secret/{ns}/signoz-metadata-db")]);
    let secret_diff = serde_json::to_string(&fifth.updated[0].changes).unwrap();
    assert!(
        secret_diff.contains("<redacted>") && !secret_diff.contains("pw-v"),
        "{secret_diff}"
    );
    assert_eq!(fifth.restarted, [format!("StatefulSet/{ns}/signoz")]);

    // A workload leaves the spec: our fields go, and it restarts without them.
    spec.instrumentation
        .workloads
        .retain(|w| w.name != "worker");
    let sixth = sync(&client, &spec, &dsn("v2")).await;
    assert_eq!(
        sixth.released_workloads,
        [format!("Deployment/{apps}/worker")]
    );
    assert_eq!(sixth.restarted, [format!("Deployment/{apps}/worker")]);
    let worker = template_annotations(&admin, &apps, "worker").await;
    assert!(
        worker.get(INJECT).is_none() && worker.get(SERVICE_NAME).is_none(),
        "{worker}"
    );
    assert_eq!(
        otel_service_name(&admin, &apps, "worker").await,
        None,
        "our env var is released too"
    );
    assert_eq!(
        otel_service_name(&admin, &apps, "beat").await.as_deref(),
        Some("acme-beat")
    );

    // The release is renamed: the chart would re-create SigNoz under new names (new
    // ClickHouse volumes). Refused, and nothing of the new spec is applied, until the spec
    // names what it replaces.
    let mut record = Some(DeliveryRecord::wanted(&spec));
    spec.cluster.delivery.release = "observability".into();
    let before = cluster.revisions(&written_kinds()).await;
    let refused = sync_recorded(&client, &spec, &dsn("v2"), &mut record).await;
    let error = failure(&refused, &format!("Application/{argo_ns}/signoz"));
    assert!(
        error.contains("delivery change refused")
            && error.contains("(release signoz) -> Application")
            && error.contains(&format!("cluster.delivery.replaces: {{ object: Application/{argo_ns}/signoz, release: signoz }}")),
        "{error}"
    );
    assert_eq!(refused.destructive.len(), 1, "{refused:?}");
    assert!(refused.created.is_empty() && refused.updated.is_empty() && refused.pruned.is_empty());
    assert_eq!(
        cluster.revisions(&written_kinds()).await,
        before,
        "a refused change wrote"
    );
    // Without the state's record (lost), the live Application's release tells the rename.
    let refused = sync_cluster(&client, &spec, Some(&dsn("v2")), false)
        .await
        .unwrap();
    assert!(failure(&refused, &format!("Application/{argo_ns}/signoz")).contains("refused"));
    spec.cluster.delivery.replaces = Some(signoz_control::spec::DeliveryReplacement {
        object: format!("Application/{argo_ns}/signoz"),
        release: "signoz".into(),
    });
    // The RBAC follows the spec, as the deployment re-applies it: the StatefulSet's new name.
    cluster.update_spec(&spec).await;
    let renamed = sync_recorded(&client, &spec, &dsn("v2"), &mut record).await;
    assert!(renamed.failed.is_empty(), "{:?}", renamed.failed);
    assert_eq!(renamed.destructive.len(), 1);
    // The chart's names follow the release: <release>-signoz-otel-collector.
    assert_eq!(
        sorted(renamed.pruned.clone()),
        [format!("ScaledObject/{ns}/signoz-otel-collector")]
    );
    let scaled =
        Api::<DynamicObject>::namespaced_with(admin.clone(), &ns, &scaled_object_resource());
    assert!(
        scaled
            .get_opt("signoz-otel-collector")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        scaled
            .get_opt("observability-signoz-otel-collector")
            .await
            .unwrap()
            .is_some()
    );
    let application = Api::<DynamicObject>::namespaced_with(
        admin.clone(),
        &argo_ns,
        &argocd_application_resource(),
    );
    let app = application.get("signoz").await.unwrap();
    assert_eq!(
        app.data["spec"]["source"]["helm"]["releaseName"],
        "observability"
    );
    assert_eq!(
        app.data["spec"]["ignoreDifferences"][0]["name"],
        "observability-signoz-otel-collector"
    );
    assert_eq!(record, Some(DeliveryRecord::wanted(&spec)));
    // Objects that are not ours are never pruned.
    let statefulsets =
        Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(admin.clone(), &ns);
    assert!(statefulsets.get_opt("signoz").await.unwrap().is_some());

    // Another manager owns a field we want: reported with its name, not overwritten.
    let collector = "observability-signoz-otel-collector";
    let theirs = json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": { "name": collector, "namespace": ns },
        "spec": { "maxReplicaCount": 7 },
    });
    scaled
        .patch(
            collector,
            &PatchParams::apply("argocd-controller").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .expect("other manager applies");
    spec.collectors.max_replicas = 12;
    let seventh = sync(&client, &spec, &dsn("v2")).await;
    assert_eq!(seventh.conflicts.len(), 1, "{seventh:?}");
    assert_eq!(seventh.conflicts[0].managers, ["argocd-controller"]);
    let live = scaled.get(collector).await.unwrap();
    assert_eq!(live.data["spec"]["maxReplicaCount"], 7);

    // Delivery moves from ArgoCD to Flux: two tools would deploy one release. Refused
    // until the spec names the Application it replaces; then the HelmRelease is created
    // and (RBAC following the spec: a delete on that one Application) the Application goes.
    spec.cluster.delivery.method = signoz_control::spec::DeliveryMethod::Flux;
    spec.cluster.delivery.replaces = None;
    let flux_ns = format!("flux-system-{ns}");
    spec.cluster.delivery.flux = Some(signoz_control::spec::FluxDelivery {
        namespace: flux_ns.clone(),
        source_kind: "HelmRepository".into(),
        source_name: "signoz".into(),
        values_configmap: "signoz-values".into(),
    });
    spec.instrumentation.operator.as_mut().unwrap().source_name = Some("open-telemetry".into());
    cluster.update_spec(&spec).await;
    let refused = sync_recorded(&client, &spec, &dsn("v2"), &mut record).await;
    assert!(
        failure(&refused, &format!("HelmRelease/{flux_ns}/observability")).contains(
            &format!("Application/{argo_ns}/signoz (release observability) -> HelmRelease/{flux_ns}/observability")
        ),
        "{refused:?}"
    );
    spec.cluster.delivery.replaces = Some(signoz_control::spec::DeliveryReplacement {
        object: format!("Application/{argo_ns}/signoz"),
        release: "observability".into(),
    });
    cluster.update_spec(&spec).await;
    let eighth = sync_recorded(&client, &spec, &dsn("v2"), &mut record).await;
    assert!(eighth.failed.is_empty(), "{:?}", eighth.failed);
    assert_eq!(
        eighth.created,
        [
            format!("ConfigMap/{flux_ns}/signoz-values"),
            format!("HelmRelease/{flux_ns}/observability"),
            format!("ConfigMap/{flux_ns}/opentelemetry-operator-values"),
            format!("HelmRelease/{flux_ns}/opentelemetry-operator"),
        ]
    );
    assert_eq!(eighth.pruned, [format!("Application/{argo_ns}/signoz")]);
    assert!(application.get_opt("signoz").await.unwrap().is_none());
    // The operator's Application is a delivery object too: never deleted on our own.
    assert!(
        application
            .get_opt("opentelemetry-operator")
            .await
            .unwrap()
            .is_some()
    );
    let values = Api::<ConfigMap>::namespaced(admin.clone(), &flux_ns)
        .get("signoz-values")
        .await
        .unwrap();
    assert!(values.data.unwrap()["values.yaml"].contains("memory_limiter"));

    // A dry run reports what would change and writes nothing.
    spec.instrumentation.propagators = vec!["tracecontext".into()];
    let before = cluster.revisions(&written_kinds()).await;
    let dry = sync_cluster(&client, &spec, Some(&dsn("v2")), true)
        .await
        .unwrap();
    assert!(dry.failed.is_empty(), "{:?}", dry.failed);
    assert_eq!(
        dry.updated[0].object,
        format!("Instrumentation/{ns}/python")
    );
    // The diff is between the live object and what the server answers it would store:
    // the one field, without our applied-content hash or the server's bookkeeping.
    assert_eq!(
        dry.updated[0].changes,
        [signoz_control::diff::FieldChange {
            path: ".spec.propagators".into(),
            before: json!(["tracecontext", "baggage"]),
            after: json!(["tracecontext"]),
        }]
    );
    assert_eq!(
        cluster.revisions(&written_kinds()).await,
        before,
        "a dry run wrote"
    );
    let inst =
        Api::<DynamicObject>::namespaced_with(admin.clone(), &ns, &instrumentation_resource());
    assert_eq!(
        inst.get("python").await.unwrap().data["spec"]["propagators"],
        json!(["tracecontext", "baggage"])
    );
}

#[tokio::test]
async fn sync_converges_under_the_shipped_rbac() {
    let cluster = TestCluster::new(example_spec()).await;
    let client = cluster.client(FUNCTION).await;
    converges_then_updates_only_what_changed(cluster, client).await;
}

/// Same scenario against the cluster of the current kubeconfig (kind, k3d, EKS), as that
/// kubeconfig's identity (client certificates cannot be minted there): it creates
/// uniquely named namespaces and applies the spec's RBAC, and needs the KEDA,
/// OpenTelemetry Operator, ArgoCD and Flux CRDs installed. Run on a throwaway cluster:
/// `cargo test -p platform-tests --test integration cluster::real_cluster -- --ignored`.
#[tokio::test]
#[ignore]
async fn real_cluster_converges() {
    signoz_control::runtime::install_crypto();
    let client = Client::try_default().await.expect("kubeconfig");
    let cluster = TestCluster::on(client.clone(), example_spec()).await;
    converges_then_updates_only_what_changed(cluster, client).await;
}

/// Runs a sync as `client` and returns its report, asserting the DSN Secret was applied.
async fn sync_expecting_failures(client: &Client, spec: &PlatformSpec) -> SyncReport {
    let report = sync_cluster(client, spec, Some(&dsn("v1")), false)
        .await
        .expect("sync runs");
    assert!(!report.failed.is_empty(), "expected refusals: {report:?}");
    report
}

fn failure<'a>(report: &'a SyncReport, object: &str) -> &'a str {
    report
        .failed
        .iter()
        .find(|f| f.object == object)
        .map(|f| f.error.as_str())
        .unwrap_or_else(|| panic!("{object} did not fail: {:?}", report.failed))
}

/// A rule removed from the shipped RBAC: exactly the call it covered fails, with a typed,
/// non-retryable error naming verb, resource and namespace; every other object is still
/// applied, and the invocation fails at the end.
#[tokio::test]
async fn a_missing_rbac_rule_fails_only_the_calls_it_covered() {
    let cluster = TestCluster::new(example_spec()).await;
    cluster.arrange_workloads().await;
    let spec = &cluster.spec;
    let ns = &spec.cluster.namespace;
    let mut manifests = render_rbac(spec).unwrap();
    let role = manifests
        .iter_mut()
        .find(|m| {
            m["kind"] == "Role"
                && m["metadata"]["name"] == role_name(spec, FUNCTION)
                && m["metadata"]["namespace"] == ns.as_str()
        })
        .expect("sync-cluster's Role in the SigNoz namespace");
    let rules = role["rules"].as_array_mut().unwrap();
    let before = rules.len();
    rules.retain(|r| r["apiGroups"][0] != "keda.sh");
    assert_eq!(rules.len(), before - 1, "one rule removed");
    apply_as_admin(&cluster.admin, &manifests).await;

    let client = cluster.client(FUNCTION).await;
    let report = sync_expecting_failures(&client, spec).await;
    let error = failure(&report, &format!("ScaledObject/{ns}/signoz-otel-collector"));
    assert!(
        error.contains("forbidden")
            && error.contains("cannot get keda.sh/scaledobjects")
            && error.contains(&format!("in namespace {ns}")),
        "{error}"
    );
    let prune = failure(&report, &format!("ScaledObject/{ns}"));
    assert!(
        prune.contains("cannot list keda.sh/scaledobjects"),
        "{prune}"
    );
    assert_eq!(report.failed.len(), 2, "{:?}", report.failed);
    assert!(report.failed.iter().all(|f| !f.retryable));
    assert!(
        report
            .created
            .contains(&format!("Secret/{ns}/signoz-metadata-db"))
            && report
                .created
                .contains(&format!("Instrumentation/{ns}/python")),
        "the rest was applied: {report:?}"
    );
    let whole = report.failure().expect("the reconcile fails at the end");
    assert!(!whole.retryable(), "{whole}");
    assert!(matches!(whole, Error::Incomplete { .. }), "{whole:?}");
}

/// The function reaches only what the spec names: not another namespace's Secret, not
/// another Secret of its own namespace, not a workload in a namespace the spec does not use.
#[tokio::test]
async fn the_identity_cannot_touch_what_the_spec_does_not_name() {
    let cluster = TestCluster::new(example_spec()).await;
    let other = TestCluster::new(example_spec()).await;
    other.arrange_workloads().await;
    let client = cluster.client(FUNCTION).await;
    let ns = &cluster.spec.cluster.namespace;
    let forbidden = |r: Result<Secret, kube::Error>| match r {
        Err(kube::Error::Api(s)) => s.code == 403,
        other => panic!("expected 403, got {other:?}"),
    };
    // Secrets of another platform (another namespace), even the same name.
    let theirs = Api::<Secret>::namespaced(client.clone(), &other.spec.cluster.namespace);
    assert!(forbidden(theirs.get("signoz-metadata-db").await));
    // Another Secret of its own namespace (ClickHouse's, say), and listing them.
    let admin_secrets = Api::<Secret>::namespaced(cluster.admin.clone(), ns);
    admin_secrets
        .create(
            &Default::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "clickhouse-password"}, "stringData": {"p": "x"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let ours = Api::<Secret>::namespaced(client.clone(), ns);
    assert!(forbidden(ours.get("clickhouse-password").await));
    assert!(matches!(
        ours.list(&Default::default()).await,
        Err(kube::Error::Api(s)) if s.code == 403
    ));
    // A workload of another platform.
    let apps = other.spec.instrumentation.workloads[0]
        .namespace
        .clone()
        .unwrap();
    let deployments = Api::<Deployment>::namespaced(client.clone(), &apps);
    let patched = deployments
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await;
    assert!(
        matches!(&patched, Err(kube::Error::Api(s)) if s.code == 403),
        "{patched:?}"
    );
}

/// What the deployment used to grant: EKS's `AmazonEKSEditPolicy` scoped to the SigNoz
/// namespace. AWS documents its rules as those of Kubernetes' user-facing `edit` role on
/// built-in API groups only (EKS user guide, "Review access policy permissions"); here the
/// API server's own bootstrap roles `system:aggregate-to-edit` and `-view` (what `edit`
/// aggregates) are bound in that one namespace. A reconcile fails clearly: the CRD kinds,
/// the ArgoCD namespace and the apps' namespace are out of reach; the DSN Secret still lands.
#[tokio::test]
async fn under_the_old_namespace_scoped_edit_policy_a_reconcile_fails_clearly() {
    let cluster = TestCluster::new(example_spec()).await;
    cluster.arrange_workloads().await;
    let spec = &cluster.spec;
    let ns = &spec.cluster.namespace;
    let group = format!("eks-edit-{}", spec.platform.name);
    let bindings: Vec<Value> = ["system:aggregate-to-edit", "system:aggregate-to-view"]
        .iter()
        .map(|role| {
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": { "name": role.replace(':', "-"), "namespace": ns },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
                "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group }],
            })
        })
        .collect();
    apply_as_admin(&cluster.admin, &bindings).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("edit.kubeconfig");
    write_identity_kubeconfig(&kubeconfig, "edit-policy-user", &[group]);
    let client = platform_tests::kube::client_from(&kubeconfig).await;

    let report = sync_expecting_failures(&client, spec).await;
    let argo_ns = &spec.cluster.delivery.argocd.as_ref().unwrap().namespace;
    let apps = spec.instrumentation.workloads[0]
        .namespace
        .as_deref()
        .unwrap();
    for (object, needle) in [
        (
            format!("Application/{argo_ns}/signoz"),
            format!("argoproj.io/applications \"signoz\" in namespace {argo_ns}"),
        ),
        (
            format!("ScaledObject/{ns}/signoz-otel-collector"),
            "keda.sh/scaledobjects".into(),
        ),
        (
            format!("Instrumentation/{ns}/python"),
            "opentelemetry.io/instrumentations".into(),
        ),
        (
            format!("Deployment/{apps}"),
            format!("cannot list apps/deployments in namespace {apps}"),
        ),
    ] {
        let error = failure(&report, &object);
        assert!(
            error.contains("forbidden") && error.contains(&needle),
            "{object}: {error}"
        );
    }
    assert!(
        report
            .created
            .contains(&format!("Secret/{ns}/signoz-metadata-db")),
        "edit covers Secrets in its namespace: {report:?}"
    );
    assert!(report.failure().is_some_and(|e| !e.retryable()));
}

/// Answers of a real server, per object: a kind the server does not serve (its CRD is
/// missing: a plain-text `404 page not found`, which kube-rs does not read as NotFound)
/// names the CRD; a field outside the schema or of the wrong type (HTTP 500 from
/// server-side apply) and a schema rule (HTTP 422) name the field; none is retryable.
#[tokio::test]
async fn a_missing_crd_or_a_rejected_field_is_named_and_not_retried() {
    // Flux delivery: the RBAC grants helmreleases in the Flux namespace (RBAC is checked
    // before the server routes the path: without the rule the answer would be a 403).
    let mut spec = example_spec();
    spec.cluster.delivery.method = signoz_control::spec::DeliveryMethod::Flux;
    spec.cluster.delivery.flux = Some(signoz_control::spec::FluxDelivery {
        namespace: "flux-system".into(),
        source_kind: "HelmRepository".into(),
        source_name: "signoz".into(),
        values_configmap: "signoz-values".into(),
    });
    spec.instrumentation.operator.as_mut().unwrap().source_name = Some("open-telemetry".into());
    let cluster = TestCluster::new(spec).await;
    let client = cluster.client(FUNCTION).await;
    let spec = &cluster.spec;
    let ns = spec.cluster.namespace.clone();
    let flux_ns = spec
        .cluster
        .delivery
        .flux
        .as_ref()
        .unwrap()
        .namespace
        .clone();
    let manager = &spec.cluster.field_manager;
    let apply = |object: DesiredObject| {
        let client = client.clone();
        async move {
            signoz_control::cluster::apply::apply_object(&client, manager, &object, false).await
        }
    };

    // The reference Flux CRD serves helm.toolkit.fluxcd.io/v2 only: v2beta1 is not served.
    let old_flux = resource(
        "helm.toolkit.fluxcd.io",
        "v2beta1",
        "HelmRelease",
        "helmreleases",
    );
    let object = DesiredObject {
        resource: old_flux,
        namespace: Some(flux_ns.clone()),
        name: "signoz".into(),
        body: json!({"apiVersion": "helm.toolkit.fluxcd.io/v2beta1", "kind": "HelmRelease",
                     "metadata": {"name": "signoz", "namespace": flux_ns}}),
        owned: true,
    };
    let err = apply(object).await.unwrap_err();
    assert!(
        matches!(&err, Error::KindNotServed { crd, .. } if crd == "helmreleases.helm.toolkit.fluxcd.io"),
        "{err:?}"
    );
    assert!(!err.retryable());

    let scaled = |spec_body: Value| {
        let mut object = signoz_control::cluster::render::scaling::render_scaled_object(spec);
        object.body["spec"] = spec_body;
        object
    };
    let mut unknown_field =
        signoz_control::cluster::render::scaling::render_scaled_object(spec).body["spec"].clone();
    unknown_field["maxReplicas"] = json!(3);
    for (body, field) in [
        (
            unknown_field,
            ".spec.maxReplicas: field not declared in schema",
        ),
        (
            json!({"scaleTargetRef": {"name": "x"}, "triggers": [], "minReplicaCount": "two"}),
            ".spec.minReplicaCount: expected numeric",
        ),
        (
            json!({"triggers": []}),
            "spec.scaleTargetRef: Required value",
        ),
    ] {
        let err = apply(scaled(body)).await.unwrap_err();
        assert!(matches!(&err, Error::Rejected { .. }), "{err:?}");
        assert!(err.to_string().contains(field), "{err}");
        assert!(!err.retryable());
    }
    // A missing namespace is named too (the functions never create namespaces).
    let mut elsewhere = scaled(json!({}));
    elsewhere.namespace = Some(format!("{ns}-missing"));
    elsewhere.body["metadata"]["namespace"] = json!(format!("{ns}-missing"));
    let err =
        signoz_control::cluster::apply::apply_object(&cluster.admin, manager, &elsewhere, false)
            .await
            .unwrap_err();
    assert!(
        matches!(&err, Error::NamespaceMissing { namespace, .. } if *namespace == format!("{ns}-missing")),
        "{err:?}"
    );
}

fn event(name: &str) -> Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("sample event")).expect("json")
}

/// The Lambda handler end to end: spec from a file, DSN from Secrets Manager's AWSCURRENT
/// (moto), cluster from a kubeconfig (sync-cluster's identity); a dry run first (the
/// server's own dry run: nothing stored), then the sync, then a no-op.
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

    let mut spec = example_spec();
    spec.database.app_secret_name = app_secret.clone();
    platform_tests::own_state_bucket(&mut spec).await;
    // Namespaces exist (the deployment's RBAC lives in them); the workloads do not yet.
    let cluster = TestCluster::new(spec).await;
    let spec = &cluster.spec;
    let ns = &spec.cluster.namespace;
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("platform.yaml");
    std::fs::write(&spec_path, spec_yaml(spec)).unwrap();

    let location = signoz_control::spec::SpecLocation::Path(spec_path);
    let role = platform_tests::aws_as(
        signoz_control::cluster::FUNCTION,
        &platform_tests::Deployment::for_spec(spec, &location),
    )
    .await;
    let ctx = signoz_control::cluster::Context {
        s3: signoz_control::aws::s3_client(&role),
        secrets: aws_sdk_secretsmanager::Client::new(&role),
        spec_location: location,
        kube: signoz_control::cluster::access::ClusterClient::new(Some(
            cluster.kubeconfig(FUNCTION),
        )),
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
        5,
        "Secret, SigNoz's and the operator's Applications, ScaledObject, Instrumentation: {answer}"
    );
    assert_eq!(
        answer["report"]["missing_workloads"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let secrets_api = Api::<Secret>::namespaced(cluster.admin.clone(), ns);
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
}

/// EKS access without kubectl: DescribeCluster (moto) gives endpoint and CA, and the
/// bearer token is minted for this cluster. (The token's signature against botocore's
/// presigner is a unit test; no server here can verify an IAM token.)
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
    let found = described.cluster().unwrap();
    let endpoint = found.endpoint().unwrap().to_string();
    let ca = found
        .certificate_authority()
        .unwrap()
        .data()
        .unwrap()
        .to_string();

    let role = platform_tests::aws_as(
        signoz_control::cluster::FUNCTION,
        &platform_tests::Deployment::for_spec(
            &spec,
            &signoz_control::spec::SpecLocation::Path("".into()),
        ),
    )
    .await;
    let kubeconfig = signoz_control::cluster::access::eks_kubeconfig(&spec, &role)
        .await
        .expect("kubeconfig");
    let cluster = kubeconfig.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.server.as_deref(), Some(endpoint.as_str()));
    assert_eq!(
        cluster.certificate_authority_data.as_deref(),
        Some(ca.as_str())
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
    eks.delete_cluster()
        .name(&spec.cluster.name)
        .send()
        .await
        .ok();
}

/// The shipped RBAC file is what `signoz-control rbac` renders from the example spec.
#[test]
fn the_shipped_rbac_manifest_is_rendered_from_the_example_spec() {
    let rendered = signoz_control::cluster::permissions::render_rbac_yaml(&example_spec()).unwrap();
    let shipped = include_str!("../../infra/kubernetes/rbac.yaml");
    assert_eq!(
        shipped, rendered,
        "infra/kubernetes/rbac.yaml is stale: cargo run -p signoz-control-cli -- rbac infra/platform.yaml > infra/kubernetes/rbac.yaml"
    );
    let groups: BTreeMap<_, _> = signoz_control::cluster::permissions::CLUSTER_FUNCTIONS
        .iter()
        .map(|f| {
            (
                *f,
                signoz_control::cluster::permissions::kubernetes_group(&example_spec(), f),
            )
        })
        .collect();
    for group in groups.values() {
        assert!(
            shipped.contains(&format!("name: {group}\n")),
            "{group} is bound"
        );
    }
}

/// An Application someone else manages (an app-of-apps parent's child): we write only the
/// Helm values, never its sync policy, destination, project, ignoreDifferences or source
/// coordinates; we say what still resets the replicas; and we refuse, writing nothing, when
/// our values would silently override its inline ones or it deploys another release.
#[tokio::test]
async fn an_application_someone_else_manages_gets_only_our_values() {
    let cluster = TestCluster::new(example_spec()).await;
    let spec = &cluster.spec;
    let argo_ns = spec
        .cluster
        .delivery
        .argocd
        .as_ref()
        .unwrap()
        .namespace
        .clone();
    let apps = Api::<DynamicObject>::namespaced_with(
        cluster.admin.clone(),
        &argo_ns,
        &argocd_application_resource(),
    );
    let theirs = |helm: Value| {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": { "name": "signoz", "namespace": argo_ns },
            "spec": {
                "project": "observability",
                "source": { "repoURL": "https://charts.signoz.io", "chart": "signoz", "targetRevision": "0.131.0", "helm": helm },
                "destination": { "name": "in-cluster", "namespace": spec.cluster.namespace },
                "syncPolicy": { "syncOptions": ["Validate=false"] },
            },
        })
    };
    let put = |body: Value| {
        let apps = apps.clone();
        async move {
            apps.patch(
                "signoz",
                &PatchParams::apply("app-of-apps").force(),
                &Patch::Apply(&body),
            )
            .await
            .expect("the parent applies its child")
        }
    };
    let client = cluster.client(FUNCTION).await;
    let operator_only = |report: &SyncReport| {
        report
            .failed
            .iter()
            .map(|f| f.object.clone())
            .collect::<Vec<_>>()
    };

    // Inline values our valuesObject would silently override: refused, nothing written.
    let before = put(theirs(json!({ "releaseName": "signoz", "values": "clickhouse:\n  persistence:\n    size: 500Gi\n" }))).await;
    let report = sync_cluster(&client, spec, None, false).await.unwrap();
    let error = failure(&report, &format!("Application/{argo_ns}/signoz"));
    assert!(
        error.contains("inline spec.source.helm.values") && error.contains("precedence"),
        "{error}"
    );
    assert_eq!(operator_only(&report).len(), 1, "{:?}", report.failed);
    assert_eq!(
        apps.get("signoz").await.unwrap().metadata.resource_version,
        before.metadata.resource_version
    );

    // Another release name: the chart's names would not be the ones we point at.
    put(theirs(json!({ "releaseName": "observability" }))).await;
    let report = sync_cluster(&client, spec, None, false).await.unwrap();
    let error = failure(&report, &format!("Application/{argo_ns}/signoz"));
    assert!(error.contains("Helm release \"observability\""), "{error}");

    // Adoptable: only valuesObject is ours; their fields stay theirs, nothing is labelled ours.
    put(theirs(json!({ "releaseName": "signoz" }))).await;
    let report = sync_cluster(&client, spec, None, false).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("RespectIgnoreDifferences=true"),
        "{:?}",
        report.warnings
    );
    let live = apps.get("signoz").await.unwrap();
    assert_eq!(live.data["spec"]["project"], "observability");
    assert_eq!(
        live.data["spec"]["destination"],
        json!({ "name": "in-cluster", "namespace": spec.cluster.namespace })
    );
    assert_eq!(
        live.data["spec"]["syncPolicy"],
        json!({ "syncOptions": ["Validate=false"] })
    );
    assert!(live.data["spec"].get("ignoreDifferences").is_none());
    assert!(live.data["spec"]["source"]["helm"]["valuesObject"]["otelCollector"].is_object());
    assert!(
        live.metadata.labels.unwrap_or_default().is_empty(),
        "never labelled ours, so never pruned"
    );
    let ours: Vec<_> = live
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.manager.as_deref() == Some(spec.cluster.field_manager.as_str()))
        .collect();
    assert_eq!(ours.len(), 1);
    let fields = serde_json::to_value(&ours[0].fields_v1).unwrap();
    assert_eq!(
        fields["f:spec"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["f:source"],
        "{fields}"
    );
    assert_eq!(
        fields["f:spec"]["f:source"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["f:helm"]
    );
}

/// A HelmRelease someone else manages (a Flux Kustomization's) is never written: until it
/// references our values ConfigMap we refuse, saying how to hand the values over.
#[tokio::test]
async fn a_helm_release_someone_else_manages_is_never_written() {
    let mut spec = example_spec();
    spec.cluster.delivery.method = signoz_control::spec::DeliveryMethod::Flux;
    spec.cluster.delivery.flux = Some(signoz_control::spec::FluxDelivery {
        namespace: "flux-system".into(),
        source_kind: "HelmRepository".into(),
        source_name: "signoz".into(),
        values_configmap: "signoz-values".into(),
    });
    spec.instrumentation.operator = None;
    let cluster = TestCluster::new(spec).await;
    let spec = &cluster.spec;
    let flux_ns = spec
        .cluster
        .delivery
        .flux
        .as_ref()
        .unwrap()
        .namespace
        .clone();
    let releases = Api::<DynamicObject>::namespaced_with(
        cluster.admin.clone(),
        &flux_ns,
        &helm_release_resource(),
    );
    let theirs = |values_from: Value| {
        json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": { "name": "signoz", "namespace": flux_ns },
            "spec": {
                "interval": "5m", "releaseName": "signoz", "targetNamespace": spec.cluster.namespace,
                "chart": { "spec": { "chart": "signoz", "version": "0.131.0",
                    "sourceRef": { "kind": "HelmRepository", "name": "signoz" } } },
                "valuesFrom": values_from,
            },
        })
    };
    let put = |body: Value| {
        let releases = releases.clone();
        async move {
            releases
                .patch(
                    "signoz",
                    &PatchParams::apply("kustomize-controller").force(),
                    &Patch::Apply(&body),
                )
                .await
                .expect("Flux applies it")
        }
    };
    let client = cluster.client(FUNCTION).await;
    let before = put(theirs(
        json!([{ "kind": "ConfigMap", "name": "their-values" }]),
    ))
    .await;
    let report = sync_cluster(&client, spec, None, false).await.unwrap();
    let error = failure(&report, &format!("HelmRelease/{flux_ns}/signoz"));
    assert!(
        error.contains(
            "add valuesFrom: [{kind: ConfigMap, name: signoz-values, valuesKey: values.yaml}]"
        ),
        "{error}"
    );
    assert_eq!(
        releases
            .get("signoz")
            .await
            .unwrap()
            .metadata
            .resource_version,
        before.metadata.resource_version,
        "never written"
    );
    // Handed over: adopted without a write; our values ConfigMap is what it reads.
    let handed = put(theirs(
        json!([{ "kind": "ConfigMap", "name": "signoz-values", "valuesKey": "values.yaml" }]),
    ))
    .await;
    let report = sync_cluster(&client, spec, None, false).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let values = Api::<ConfigMap>::namespaced(cluster.admin.clone(), &flux_ns);
    assert!(
        values.get_opt("signoz-values").await.unwrap().is_some(),
        "our values are there to read"
    );
    assert!(
        report.warnings.iter().any(|w| w.contains("post-renderer")),
        "{:?}",
        report.warnings
    );
    assert_eq!(
        releases
            .get("signoz")
            .await
            .unwrap()
            .metadata
            .resource_version,
        handed.metadata.resource_version
    );
}

/// Our Application whose destination another manager set by name: applying our server
/// would name the cluster twice (ArgoCD refuses that); refused, naming the manager.
#[tokio::test]
async fn a_destination_named_twice_is_refused_naming_the_other_manager() {
    let cluster = TestCluster::new(example_spec()).await;
    let spec = &cluster.spec;
    let client = cluster.client(FUNCTION).await;
    assert!(
        sync_cluster(&client, spec, None, false)
            .await
            .unwrap()
            .failed
            .is_empty()
    );
    let argo_ns = spec
        .cluster
        .delivery
        .argocd
        .as_ref()
        .unwrap()
        .namespace
        .clone();
    let apps = Api::<DynamicObject>::namespaced_with(
        cluster.admin.clone(),
        &argo_ns,
        &argocd_application_resource(),
    );
    let patch = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": { "name": "signoz", "namespace": argo_ns },
        "spec": { "destination": { "name": "prod-cluster" } },
    });
    apps.patch(
        "signoz",
        &PatchParams::apply("platform-team").force(),
        &Patch::Apply(&patch),
    )
    .await
    .unwrap();
    let report = sync_cluster(&client, spec, None, false).await.unwrap();
    let error = failure(&report, &format!("Application/{argo_ns}/signoz"));
    assert!(
        error.contains("destination.name is set by platform-team") && error.contains("twice"),
        "{error}"
    );
}

/// Two platforms on one cluster, the same names in the same namespaces and the same
/// (default) field manager: neither takes nor prunes the other's objects.
#[tokio::test]
async fn two_platforms_on_one_cluster_never_take_or_prune_each_others_objects() {
    let first = TestCluster::new(example_spec()).await;
    first.arrange_workloads().await;
    let mut second_spec = first.spec.clone();
    second_spec.platform.name = format!("{}-b", first.spec.platform.name);
    let second = TestCluster::arrange(first.admin.clone(), second_spec).await;
    let ns = first.spec.cluster.namespace.clone();
    let a = first.client(FUNCTION).await;
    let b = second.client(FUNCTION).await;
    let report = sync_cluster(&a, &first.spec, Some(&dsn("a")), false)
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let before = first.revisions(&written_kinds()).await;

    let report = sync_cluster(&b, &second.spec, Some(&dsn("b")), false)
        .await
        .unwrap();
    for object in [
        format!("ScaledObject/{ns}/signoz-otel-collector"),
        format!("Instrumentation/{ns}/python"),
        format!("Secret/{ns}/signoz-metadata-db"),
    ] {
        let error = failure(&report, &object);
        assert!(
            error.contains(&format!("belongs to platform {}", first.spec.platform.name)),
            "{object}: {error}"
        );
    }
    let apps = first.spec.instrumentation.workloads[0]
        .namespace
        .clone()
        .unwrap();
    assert!(failure(&report, &format!("Deployment/{apps}/api")).contains("belongs to platform"));
    assert!(
        report.pruned.is_empty() && report.restarted.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        first.revisions(&written_kinds()).await,
        before,
        "the other platform wrote"
    );
    // And the first platform still converges as before.
    assert!(
        sync_cluster(&a, &first.spec, Some(&dsn("a")), false)
            .await
            .unwrap()
            .in_sync()
    );
}

/// Restarts follow what was applied: while the Instrumentation's apply conflicts, no pod
/// restarts onto a configuration that did not land; once it lands, each workload restarts
/// once; and two causes in one reconcile (a new DSN and a new sampler) roll a workload once.
#[tokio::test]
async fn restarts_follow_what_was_applied_once_per_change() {
    let mut spec = example_spec();
    // api reads the DSN too: both causes reach it.
    spec.database.restart = vec![signoz_control::spec::WorkloadRef {
        kind: "Deployment".into(),
        name: "api".into(),
        namespace: spec.instrumentation.workloads[0].namespace.clone(),
    }];
    let cluster = TestCluster::new(spec).await;
    cluster.arrange_workloads().await;
    let mut spec = cluster.spec.clone();
    let client = cluster.client(FUNCTION).await;
    let ns = spec.cluster.namespace.clone();
    let apps = spec.instrumentation.workloads[0].namespace.clone().unwrap();
    sync(&client, &spec, &dsn("v1")).await;

    let inst = Api::<DynamicObject>::namespaced_with(
        cluster.admin.clone(),
        &ns,
        &instrumentation_resource(),
    );
    let theirs = json!({
        "apiVersion": "opentelemetry.io/v1alpha1", "kind": "Instrumentation",
        "metadata": { "name": "python", "namespace": ns },
        "spec": { "sampler": { "type": "parentbased_traceidratio", "argument": "0.5" } },
    });
    inst.patch(
        "python",
        &PatchParams::apply("platform-team").force(),
        &Patch::Apply(&theirs),
    )
    .await
    .unwrap();
    spec.instrumentation.sampler.argument = Some("0.25".into());
    let conflicted = sync_cluster(&client, &spec, Some(&dsn("v1")), false)
        .await
        .unwrap();
    assert_eq!(conflicted.conflicts.len(), 1, "{conflicted:?}");
    assert!(
        conflicted.restarted.is_empty(),
        "restarted onto what did not land: {:?}",
        conflicted.restarted
    );

    // The other manager lets go: our sampler lands and every instrumented workload restarts.
    let released = json!({
        "apiVersion": "opentelemetry.io/v1alpha1", "kind": "Instrumentation",
        "metadata": { "name": "python", "namespace": ns },
    });
    inst.patch(
        "python",
        &PatchParams::apply("platform-team").force(),
        &Patch::Apply(&released),
    )
    .await
    .unwrap();
    let landed = sync(&client, &spec, &dsn("v1")).await;
    assert_eq!(landed.restarted.len(), 4, "{:?}", landed.restarted);
    assert!(
        sync(&client, &spec, &dsn("v1")).await.restarted.is_empty(),
        "once per change"
    );

    // A new DSN and a new sampler in one reconcile: api rolls once, carrying both causes.
    let deployments = Api::<Deployment>::namespaced(cluster.admin.clone(), &apps);
    let generation = deployments
        .get("api")
        .await
        .unwrap()
        .metadata
        .generation
        .unwrap();
    spec.instrumentation.sampler.argument = Some("0.5".into());
    let both = sync(&client, &spec, &dsn("v2")).await;
    assert_eq!(
        both.restarted
            .iter()
            .filter(|r| **r == format!("Deployment/{apps}/api"))
            .count(),
        1,
        "{:?}",
        both.restarted
    );
    let api = deployments.get("api").await.unwrap();
    assert_eq!(
        api.metadata.generation.unwrap(),
        generation + 1,
        "one rollout"
    );
    let annotations = api
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert_eq!(
        annotations["signoz-control-plane/restarted-for"],
        "credentials-version-v2"
    );
    assert!(
        annotations["signoz-control-plane/instrumentation-hash"].starts_with("instrumentation-")
    );
}

/// Every enum the spec feeds into a CRD accepts exactly the CRD's values
/// (`../shared/reference/crds`, the upstream manifests the stack installs): nothing passes
/// the spec and fails at the API server.
#[test]
fn spec_enums_are_the_crds_enums() {
    let crd = |file: &str| -> Value {
        let dir = std::env::var("CRD_DIR").unwrap_or_else(|_| {
            format!("{}/../../shared/reference/crds", env!("CARGO_MANIFEST_DIR"))
        });
        let text = std::fs::read_to_string(format!("{dir}/{file}")).expect("CRD manifest");
        let doc: Value = serde_norway::from_str(&text).unwrap();
        doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let instrumentation = crd("opentelemetry.io_instrumentations.yaml");
    assert_eq!(
        strings(&instrumentation["properties"]["sampler"]["properties"]["type"]["enum"]),
        signoz_control::spec::SAMPLERS
    );
    assert_eq!(
        strings(&instrumentation["properties"]["propagators"]["items"]["enum"]),
        signoz_control::spec::PROPAGATORS
    );
    let release = crd("helm.toolkit.fluxcd.io_helmreleases.yaml");
    assert_eq!(
        strings(
            &release["properties"]["chart"]["properties"]["spec"]["properties"]["sourceRef"]["properties"]
                ["kind"]["enum"]
        ),
        signoz_control::spec::FLUX_SOURCE_KINDS
    );
}
