//! The real `kubectl` against the emulator.

mod common;

use common::{managed_entry, rv};
use kube_emulator::{Config, Emulator, TokenCheck};

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: signoz-otel
  namespace: default
  labels:
    app.kubernetes.io/managed-by: signoz-control
data:
  key: one
";

const SCALED_OBJECT: &str = "apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: otel-collector
  namespace: default
spec:
  scaleTargetRef:
    name: signoz-otel-collector
  minReplicaCount: 2
  maxReplicaCount: 10
  triggers:
  - type: prometheus
    metadata:
      serverAddress: http://prometheus.monitoring:9090
      query: sum(rate(otelcol_receiver_accepted_spans[1m]))
      threshold: \"5000\"
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: default
spec:
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: example.com/api:1.0
";

#[test]
fn server_side_apply_conflicts_force_and_delete_for_configmap() {
    let emu = Emulator::start(Config::default()).unwrap();
    let k = kubectl_or_skip!(&emu);

    let r = k.apply(CONFIGMAP, &[]);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("configmap/signoz-otel serverside-applied"),
        "{}",
        r.stdout
    );
    let first = k.get_yaml(&["configmap", "signoz-otel"]);
    assert_eq!(first["data"]["key"], "one");
    let mine = managed_entry(&first, "kubectl").expect("kubectl owns fields");
    assert_eq!(mine["operation"], "Apply");
    assert_eq!(mine["fieldsType"], "FieldsV1");
    assert!(mine["fieldsV1"]["f:data"]["f:key"].is_object(), "{mine}");

    // Re-applying the same manifest is a no-op; a changed one bumps the resourceVersion.
    assert!(k.apply(CONFIGMAP, &[]).ok);
    assert_eq!(rv(&k.get_yaml(&["configmap", "signoz-otel"])), rv(&first));
    assert!(k.apply(&CONFIGMAP.replace("key: one", "key: two"), &[]).ok);
    let second = k.get_yaml(&["configmap", "signoz-otel"]);
    assert!(rv(&second) > rv(&first));
    assert_eq!(second["data"]["key"], "two");

    // Another manager changing an owned field conflicts: 409 naming the field and owner.
    let other = CONFIGMAP.replace("key: one", "key: three");
    let r = k.apply(&other, &["--field-manager", "other", "-v=6"]);
    assert!(!r.ok);
    assert!(r.stderr.contains("409 Conflict"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Apply failed with 1 conflict: conflict with \"kubectl\": .data.key"),
        "{}",
        r.stderr
    );
    assert_eq!(
        k.get_yaml(&["configmap", "signoz-otel"])["data"]["key"],
        "two"
    );

    // With --force-conflicts the other manager takes the field over.
    let r = k.apply(&other, &["--field-manager", "other", "--force-conflicts"]);
    assert!(r.ok, "{}", r.stderr);
    let third = k.get_yaml(&["configmap", "signoz-otel"]);
    assert_eq!(third["data"]["key"], "three");
    let theirs = managed_entry(&third, "other").expect("other owns fields");
    assert!(theirs["fieldsV1"]["f:data"]["f:key"].is_object());
    let mine = managed_entry(&third, "kubectl").expect("kubectl still owns the label");
    assert!(mine["fieldsV1"].get("f:data").is_none(), "{mine}");

    let out = k.ok(&["delete", "configmap", "signoz-otel"]);
    assert!(out.contains("configmap \"signoz-otel\" deleted"), "{out}");
    let err = k.fails(&["get", "configmap", "signoz-otel"]);
    assert!(
        err.contains("NotFound") && err.contains("configmaps \"signoz-otel\" not found"),
        "{err}"
    );
}

#[test]
fn server_side_apply_of_a_keda_scaled_object() {
    let emu = Emulator::start(Config::default()).unwrap();
    let k = kubectl_or_skip!(&emu);

    let r = k.apply(SCALED_OBJECT, &[]);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("scaledobject.keda.sh/otel-collector serverside-applied"),
        "{}",
        r.stdout
    );
    let so = k.get_yaml(&["scaledobject", "otel-collector"]);
    assert_eq!(
        so["spec"]["scaleTargetRef"]["name"],
        "signoz-otel-collector"
    );
    assert_eq!(so["spec"]["triggers"][0]["type"], "prometheus");
    assert_eq!(so["metadata"]["generation"], 1);
    let mine = managed_entry(&so, "kubectl").unwrap();
    assert!(
        mine["fieldsV1"]["f:spec"]["f:maxReplicaCount"].is_object(),
        "{mine}"
    );
    // Lists of a custom resource are atomic: one leaf for all triggers.
    assert_eq!(
        mine["fieldsV1"]["f:spec"]["f:triggers"],
        serde_json::json!({})
    );

    assert!(
        k.apply(
            &SCALED_OBJECT.replace("maxReplicaCount: 10", "maxReplicaCount: 12"),
            &[]
        )
        .ok
    );
    let changed = k.get_yaml(&["so", "otel-collector"]);
    assert!(rv(&changed) > rv(&so));
    assert_eq!(changed["metadata"]["generation"], 2);

    let hpa_like = SCALED_OBJECT.replace("maxReplicaCount: 10", "maxReplicaCount: 20");
    let r = k.apply(&hpa_like, &["--field-manager", "autoscaler-tuner"]);
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("conflict with \"kubectl\": .spec.maxReplicaCount"),
        "{}",
        r.stderr
    );
    let r = k.apply(
        &hpa_like,
        &["--field-manager", "autoscaler-tuner", "--force-conflicts"],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        k.get_yaml(&["so", "otel-collector"])["spec"]["maxReplicaCount"],
        20
    );

    // Listing across namespaces and by short name.
    let all = k.ok(&["get", "scaledobjects", "-A"]);
    assert!(
        all.contains("default") && all.contains("otel-collector"),
        "{all}"
    );

    let r = k.run_with_stdin(&["delete", "-f", "-"], SCALED_OBJECT);
    assert!(r.ok, "{}", r.stderr);
    let err = k.fails(&["get", "so", "otel-collector"]);
    assert!(
        err.contains("scaledobjects.keda.sh \"otel-collector\" not found"),
        "{err}"
    );
}

#[test]
fn get_prints_names_in_tables_and_across_namespaces() {
    let emu = Emulator::start(Config::default()).unwrap();
    let k = kubectl_or_skip!(&emu);
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: platform\n";
    assert!(k.apply(ns, &[]).ok);
    assert!(k.apply(CONFIGMAP, &[]).ok);
    assert!(
        k.apply(
            &CONFIGMAP
                .replace("namespace: default", "namespace: platform")
                .replace("signoz-otel", "other-cm"),
            &[]
        )
        .ok
    );

    let out = k.ok(&["get", "configmaps"]);
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.contains("signoz-otel"), "{out}");
    assert!(out.contains("kube-root-ca.crt"), "{out}");
    assert!(!out.contains("other-cm"), "{out}");

    let out = k.ok(&["get", "cm", "-A"]);
    assert!(out.starts_with("NAMESPACE"), "{out}");
    assert!(
        out.contains("platform") && out.contains("other-cm"),
        "{out}"
    );

    let out = k.ok(&[
        "get",
        "cm",
        "-l",
        "app.kubernetes.io/managed-by=signoz-control",
        "-A",
        "-o",
        "name",
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["configmap/signoz-otel", "configmap/other-cm"]
    );

    let out = k.ok(&["get", "namespaces"]);
    for ns in ["default", "kube-system", "platform"] {
        assert!(out.contains(ns), "{out}");
    }

    // Deleting a namespace takes its objects with it.
    k.ok(&["delete", "namespace", "platform"]);
    let err = k.fails(&["get", "cm", "other-cm", "-n", "platform"]);
    assert!(err.contains("not found"), "{err}");
    let err = k.run_with_stdin(
        &["apply", "--server-side", "--validate=false", "-f", "-"],
        &CONFIGMAP.replace("namespace: default", "namespace: platform"),
    );
    assert!(!err.ok);
    assert!(
        err.stderr.contains("namespaces \"platform\" not found"),
        "{}",
        err.stderr
    );
}

#[test]
fn rollout_restart_sets_restarted_at() {
    let emu = Emulator::start(Config::default()).unwrap();
    let k = kubectl_or_skip!(&emu);
    assert!(
        k.apply(DEPLOYMENT, &["--field-manager", "argocd-controller"])
            .ok
    );
    let before = k.get_yaml(&["deployment", "api"]);
    assert!(before["spec"]["template"]["metadata"]["annotations"].is_null());
    assert_eq!(before["metadata"]["generation"], 1);
    // Defaults the API server fills in are there.
    assert_eq!(before["spec"]["replicas"], 1);
    assert_eq!(
        before["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );

    let out = k.ok(&["rollout", "restart", "deployment/api"]);
    assert!(out.contains("deployment.apps/api restarted"), "{out}");
    let after = k.get_yaml(&["deployment", "api"]);
    let restarted =
        &after["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"];
    assert!(
        restarted.as_str().is_some_and(|t| t.ends_with('Z')),
        "{after}"
    );
    assert_eq!(after["metadata"]["generation"], 2);
    assert!(rv(&after) > rv(&before));
    let rollout = managed_entry(&after, "kubectl-rollout").expect("rollout recorded as Update");
    assert_eq!(rollout["operation"], "Update");
    // The Deployment's applier still owns its fields and can re-apply without conflict.
    let r = k.apply(DEPLOYMENT, &["--field-manager", "argocd-controller"]);
    assert!(r.ok, "{}", r.stderr);
    let again = k.get_yaml(&["deployment", "api"]);
    assert_eq!(
        again["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        *restarted
    );

    // kubectl scale goes through the /scale subresource.
    let out = k.ok(&["scale", "deployment/api", "--replicas=3"]);
    assert!(out.contains("deployment.apps/api scaled"), "{out}");
    let scaled = k.get_yaml(&["deployment", "api"]);
    assert_eq!(scaled["spec"]["replicas"], 3);
    let scaler = scaled["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subresource"] == "scale")
        .expect("scale write recorded with its subresource");
    assert_eq!(
        scaler["fieldsV1"],
        serde_json::json!({"f:spec": {"f:replicas": {}}})
    );
}

#[test]
fn discovery_version_openapi_and_diff() {
    let emu = Emulator::start(Config::default()).unwrap();
    let k = kubectl_or_skip!(&emu);
    let out = k.ok(&["api-resources"]);
    for line in [
        "scaledobjects",
        "instrumentations",
        "applications",
        "helmreleases",
        "deployments",
        "configmaps",
    ] {
        assert!(out.contains(line), "{out}");
    }
    let out = k.ok(&["api-resources", "--api-group=keda.sh", "-o", "name"]);
    assert_eq!(out.trim(), "scaledobjects.keda.sh");
    let out = k.ok(&["version"]);
    assert!(out.contains("Server Version: v1.33.0"), "{out}");

    // No OpenAPI is served: client-side validation cannot run, --validate=false works.
    let r = k.run_with_stdin(&["apply", "--server-side", "-f", "-"], CONFIGMAP);
    assert!(!r.ok);
    assert!(r.stderr.contains("--validate=false"), "{}", r.stderr);
    assert!(k.apply(CONFIGMAP, &[]).ok);

    // kubectl diff runs a server-side dry-run apply; nothing is written.
    let before = k.get_yaml(&["cm", "signoz-otel"]);
    let r = k.run_with_stdin(
        &["diff", "--server-side", "-f", "-"],
        &CONFIGMAP.replace("key: one", "key: changed"),
    );
    assert!(
        r.stdout.contains("-  key: one") && r.stdout.contains("+  key: changed"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(rv(&k.get_yaml(&["cm", "signoz-otel"])), rv(&before));
}

#[test]
fn eks_style_bearer_tokens() {
    let emu = Emulator::start(Config {
        bearer_token: Some(TokenCheck::eks()),
        client_token: Some("k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8".into()),
        ..Config::default()
    })
    .unwrap();
    let k = kubectl_or_skip!(&emu);
    let out = k.ok(&["get", "namespaces"]);
    assert!(out.contains("default"), "{out}");
    let bad = std::fs::read_to_string(k.kubeconfig()).unwrap().replace(
        "k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8",
        "not-an-eks-token",
    );
    std::fs::write(k.kubeconfig(), bad).unwrap();
    let err = k.fails(&["get", "configmaps"]);
    assert!(
        err.contains("Unauthorized") || err.contains("You must be logged in"),
        "{err}"
    );
}

#[test]
fn imperative_create_commands_use_protobuf_and_work() {
    let emu = Emulator::start(Config::default()).unwrap();
    let k = kubectl_or_skip!(&emu);
    k.ok(&["create", "namespace", "signoz"]);
    k.ok(&[
        "create",
        "configmap",
        "otel",
        "-n",
        "signoz",
        "--from-literal=endpoint=http://collector:4318",
    ]);
    k.ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "-n",
        "signoz",
        "--from-literal=dsn=postgres://u:p@h/db",
    ]);
    k.ok(&["create", "serviceaccount", "clickhouse", "-n", "signoz"]);
    k.ok(&[
        "create",
        "deployment",
        "api",
        "-n",
        "signoz",
        "--image=example.com/api:1.0",
        "--replicas=2",
    ]);
    k.ok(&[
        "create",
        "service",
        "clusterip",
        "api",
        "-n",
        "signoz",
        "--tcp=80:8080",
    ]);

    let cm = k.get_yaml(&["cm", "otel", "-n", "signoz"]);
    assert_eq!(cm["data"]["endpoint"], "http://collector:4318");
    assert_eq!(
        managed_entry(&cm, "kubectl-create").unwrap()["operation"],
        "Update"
    );
    let secret = k.ok(&[
        "get",
        "secret",
        "db",
        "-n",
        "signoz",
        "-o",
        "jsonpath={.data.dsn}",
    ]);
    assert_eq!(secret, "cG9zdGdyZXM6Ly91OnBAaC9kYg==");
    let dep = k.get_yaml(&["deploy", "api", "-n", "signoz"]);
    assert_eq!(dep["spec"]["replicas"], 2);
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "example.com/api:1.0"
    );
    let svc = k.get_yaml(&["svc", "api", "-n", "signoz"]);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.96."))
    );
    let err = k.fails(&["create", "namespace", "signoz"]);
    assert!(
        err.contains("AlreadyExists") && err.contains("namespaces \"signoz\" already exists"),
        "{err}"
    );
}
