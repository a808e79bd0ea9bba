//! kube-rs against the emulator.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Client, Error};
use kube_emulator::{Config, Emulator, RunningEmulator, TokenCheck};
use serde_json::{Value, json};

fn start() -> RunningEmulator {
    Emulator::start(Config::default()).expect("emulator starts")
}

fn cm(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "signoz", "tier": name}},
        "data": data,
    }))
    .unwrap()
}

fn api_error(e: Error) -> (u16, String, String) {
    match e {
        Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn rv_of(meta: &kube::api::ObjectMeta) -> u64 {
    meta.resource_version.as_deref().unwrap().parse().unwrap()
}

fn scaled_object_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
        "scaledobjects",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_sequence_matches_the_api_server() {
    let emu = start();
    let client = emu.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let pp = PatchParams::apply("signoz-control").force();

    // Creation.
    let desired = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dsn", "labels": {"app.kubernetes.io/managed-by": "signoz-control"}},
        "data": {"a": "1", "b": "2"}});
    let created = cms
        .patch("dsn", &pp, &Patch::Apply(&desired))
        .await
        .unwrap();
    let created_rv = rv_of(&created.metadata);
    let mf = created.metadata.managed_fields.as_ref().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("signoz-control"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    assert_eq!(mf[0].fields_type.as_deref(), Some("FieldsV1"));
    assert!(mf[0].time.is_some());

    // Identical re-apply keeps the resourceVersion (no write).
    let again = cms
        .patch("dsn", &pp, &Patch::Apply(&desired))
        .await
        .unwrap();
    assert_eq!(rv_of(&again.metadata), created_rv);
    assert_eq!(
        again.metadata.managed_fields,
        created.metadata.managed_fields
    );

    // A field dropped from the applied object is removed.
    let mut smaller = desired.clone();
    smaller["data"].as_object_mut().unwrap().remove("b");
    let pruned = cms
        .patch("dsn", &pp, &Patch::Apply(&smaller))
        .await
        .unwrap();
    assert!(rv_of(&pruned.metadata) > created_rv);
    let data = pruned.data.unwrap();
    assert_eq!(data.get("a").map(String::as_str), Some("1"));
    assert!(!data.contains_key("b"));

    // Another manager changing an owned field without force: 409 Conflict.
    let mut theirs = smaller.clone();
    theirs["data"]["a"] = json!("42");
    let err = cms
        .patch(
            "dsn",
            &PatchParams::apply("argocd-controller"),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap_err();
    let (code, reason, message) = api_error(err);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert_eq!(
        message,
        "Apply failed with 1 conflict: conflict with \"signoz-control\": .data.a"
    );
    assert_eq!(cms.get("dsn").await.unwrap().data.unwrap()["a"], "1");

    // Co-owning by applying the same value is fine.
    cms.patch(
        "dsn",
        &PatchParams::apply("argocd-controller"),
        &Patch::Apply(&smaller),
    )
    .await
    .unwrap();

    // With force the other manager takes ownership.
    let forced = cms
        .patch(
            "dsn",
            &PatchParams::apply("argocd-controller").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["a"], "42");
    let owners: Vec<(String, Value)> = forced
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.manager.unwrap(),
                e.fields_v1.map(|f| f.0).unwrap_or_default(),
            )
        })
        .collect();
    let ours = &owners
        .iter()
        .find(|(m, _)| m == "signoz-control")
        .unwrap()
        .1;
    assert!(ours.get("f:data").is_none(), "{ours}");
    let argo = &owners
        .iter()
        .find(|(m, _)| m == "argocd-controller")
        .unwrap()
        .1;
    assert_eq!(argo["f:data"]["f:a"], json!({}));

    // Dry-run applies write nothing.
    let mut dry = theirs.clone();
    dry["data"]["a"] = json!("dry");
    let before = cms.get("dsn").await.unwrap();
    let answer = cms
        .patch(
            "dsn",
            &PatchParams::apply("argocd-controller").force().dry_run(),
            &Patch::Apply(&dry),
        )
        .await
        .unwrap();
    assert_eq!(answer.data.unwrap()["a"], "dry");
    let after = cms.get("dsn").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_eq!(after.data.unwrap()["a"], "42");
    emu.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn crud_selectors_conflicts_and_not_found() {
    let emu = start();
    let client = emu.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let a = cms
        .create(&PostParams::default(), &cm("api", json!({"k": "v"})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("worker", json!({"k": "v"})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("beat", json!({"k": "v"})))
        .await
        .unwrap();
    assert!(a.metadata.uid.is_some());
    assert!(a.metadata.creation_timestamp.is_some());
    let mf = a.metadata.managed_fields.as_ref().unwrap();
    assert_eq!(mf[0].operation.as_deref(), Some("Update"));

    let err = cms
        .create(&PostParams::default(), &cm("api", json!({})))
        .await
        .unwrap_err();
    assert_eq!(api_error(err).1, "AlreadyExists");

    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect()
    };
    let sel = |s: &str| ListParams::default().labels(s);
    assert_eq!(
        names(cms.list(&sel("app=signoz")).await.unwrap()),
        ["api", "beat", "worker"]
    );
    assert_eq!(names(cms.list(&sel("tier=api")).await.unwrap()), ["api"]);
    assert_eq!(
        names(cms.list(&sel("tier!=api,app=signoz")).await.unwrap()),
        ["beat", "worker"]
    );
    assert_eq!(
        names(cms.list(&sel("tier in (api,beat)")).await.unwrap()),
        ["api", "beat"]
    );
    assert_eq!(
        names(cms.list(&sel("tier notin (api,beat),app")).await.unwrap()),
        ["worker"]
    );
    assert_eq!(
        names(cms.list(&sel("!app")).await.unwrap()),
        ["kube-root-ca.crt"]
    );
    let err = cms.list(&sel("tier in (api")).await.unwrap_err();
    assert_eq!(api_error(err).0, 400);
    let by_name = ListParams::default().fields("metadata.name=worker");
    assert_eq!(names(cms.list(&by_name).await.unwrap()), ["worker"]);
    let page = cms.list(&sel("app=signoz").limit(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let rest = cms
        .list(
            &sel("app=signoz")
                .limit(2)
                .continue_token(page.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(names(rest), ["worker"]);

    // Replace: current resourceVersion succeeds, a stale one conflicts.
    let mut fresh = cms.get("api").await.unwrap();
    fresh.data = Some([("k".to_string(), "w".to_string())].into());
    let replaced = cms
        .replace("api", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert!(rv_of(&replaced.metadata) > rv_of(&fresh.metadata));
    let err = cms
        .replace("api", &PostParams::default(), &fresh)
        .await
        .unwrap_err();
    let (code, reason, message) = api_error(err);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        message.contains("the object has been modified"),
        "{message}"
    );

    // Merge patch (RFC 7386): null removes.
    let patched = cms
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"data": {"k": null, "n": "1"}, "metadata": {"annotations": {"x": "y"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.data.unwrap(),
        [("n".to_string(), "1".to_string())].into()
    );
    assert_eq!(patched.metadata.annotations.unwrap()["x"], "y");

    // Deletes, and 404s for missing objects and namespaces.
    cms.delete("api", &DeleteParams::default()).await.unwrap();
    let (code, reason, message) = api_error(cms.get("api").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    assert_eq!(message, "configmaps \"api\" not found");
    assert_eq!(
        api_error(
            cms.delete("api", &DeleteParams::default())
                .await
                .unwrap_err()
        )
        .0,
        404
    );
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "no-such-ns");
    let (code, _, message) = api_error(
        elsewhere
            .create(&PostParams::default(), &cm("x", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404);
    assert_eq!(message, "namespaces \"no-such-ns\" not found");
    let (code, _, message) = api_error(
        elsewhere
            .patch(
                "x",
                &PatchParams::apply("m"),
                &Patch::Apply(
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
                ),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (404, "namespaces \"no-such-ns\" not found")
    );
    assert!(
        elsewhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Invalid names get 422 Invalid.
    let (code, reason, _) = api_error(
        cms.create(&PostParams::default(), &cm("Not_Valid", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    emu.shutdown().await;
}

#[tokio::test]
async fn deployments_strategic_merge_generation_and_status() {
    let emu = start();
    let client = emu.client().await.unwrap();
    let deps: Api<Deployment> = Api::namespaced(client, "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "worker"},
        "spec": {"selector": {"matchLabels": {"app": "worker"}},
            "template": {"metadata": {"labels": {"app": "worker"}},
                "spec": {"containers": [{"name": "worker", "image": "example.com/worker:1",
                    "env": [{"name": "A", "value": "1"}]}]}}}
    }))
    .unwrap();
    let created = deps.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.spec.as_ref().unwrap().replicas, Some(1));

    // Strategic merge: env merges by name; a label-only change keeps the generation.
    let patched = deps
        .patch(
            "worker",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "worker", "env": [{"name": "OTEL_SERVICE_NAME", "value": "worker"}]}]}}}})),
        )
        .await
        .unwrap();
    let env = patched.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let env_names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(env_names, ["A", "OTEL_SERVICE_NAME"]);
    assert_eq!(patched.metadata.generation, Some(2));
    let labelled = deps
        .patch(
            "worker",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));

    // Status is only written through /status; main-resource writes ignore it.
    let with_status = deps
        .patch_status(
            "worker",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": 2}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(with_status.status.as_ref().unwrap().ready_replicas, Some(1));
    assert_eq!(with_status.metadata.generation, Some(2));
    let ignored = deps
        .patch(
            "worker",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(ignored.status.unwrap().ready_replicas, Some(1));

    // The selector is immutable.
    let err = deps
        .patch(
            "worker",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err).0, 422);
    emu.shutdown().await;
}

#[tokio::test]
async fn custom_resources_across_namespaces_and_secrets() {
    let emu = start();
    let client = emu.client().await.unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "platform"}});
    let created = nss
        .patch("platform", &PatchParams::apply("m"), &Patch::Apply(&ns))
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));

    let ar = scaled_object_resource();
    for ns in ["default", "platform"] {
        let sos: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        let so = json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "collector"},
            "spec": {"scaleTargetRef": {"name": "otel"}, "minReplicaCount": 1, "maxReplicaCount": 5,
                "triggers": [{"type": "prometheus", "metadata": {"query": "up", "threshold": "1"}}]}});
        sos.patch(
            "collector",
            &PatchParams::apply("signoz-control"),
            &Patch::Apply(&so),
        )
        .await
        .unwrap();
    }
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let listed = all.list(&ListParams::default()).await.unwrap();
    let where_: Vec<String> = listed
        .items
        .iter()
        .map(|o| o.metadata.namespace.clone().unwrap())
        .collect();
    assert_eq!(where_, ["default", "platform"]);
    // Strategic merge is not defined for custom resources.
    let sos: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let err = sos
        .patch(
            "collector",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"minReplicaCount": 2}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err).0, 415);

    // Secrets: stringData folds into base64 data; listing across namespaces works.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "platform");
    let s: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "signoz-db"}, "stringData": {"SIGNOZ_SQLSTORE_POSTGRES_DSN": "postgres://u:p@db:5432/signoz"}}))
    .unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();
    let got = secrets.get("signoz-db").await.unwrap();
    assert_eq!(got.type_.as_deref(), Some("Opaque"));
    assert!(got.string_data.is_none());
    assert_eq!(
        got.data.unwrap()["SIGNOZ_SQLSTORE_POSTGRES_DSN"].0,
        b"postgres://u:p@db:5432/signoz"
    );
    let all_secrets: Api<Secret> = Api::all(client.clone());
    assert_eq!(
        all_secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // Deleting the namespace removes what was in it.
    nss.delete("platform", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn watch_streams_changes_in_order() {
    let emu = start();
    let client = emu.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let start_rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default().labels("app=signoz").timeout(10);
    let mut stream = cms.watch(&wp, &start_rv).await.unwrap().boxed();

    cms.create(&PostParams::default(), &cm("w", json!({"a": "1"})))
        .await
        .unwrap();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await
    .unwrap();
    // Leaving the selector reads as a deletion for this watcher.
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    cms.create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap();
    cms.delete("x", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 5 {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(5), stream.try_next())
            .await
            .expect("event in time")
            .unwrap()
            .expect("stream open");
        seen.push(match ev {
            WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.unwrap()),
            WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.unwrap()),
            WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.unwrap()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        seen,
        ["ADDED w", "MODIFIED w", "DELETED w", "ADDED x", "DELETED x"]
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn bearer_tokens_are_checked() {
    let emu = Emulator::start(Config {
        bearer_token: Some(TokenCheck::Exact("s3cret".into())),
        ..Config::default()
    })
    .unwrap();
    assert_eq!(emu.token(), "s3cret");
    let client = emu.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.list(&ListParams::default()).await.unwrap();

    let yaml = emu.kubeconfig_yaml().replace("s3cret", "wrong");
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let bad: Api<ConfigMap> = Api::namespaced(Client::try_from(config).unwrap(), "default");
    let (code, reason, _) = api_error(bad.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (401, "Unauthorized"));
}

#[tokio::test]
async fn discovery_through_kube_rs() {
    let emu = start();
    let client = emu.client().await.unwrap();
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk(
            "keda.sh",
            "v1alpha1",
            "ScaledObject",
        ))
        .expect("ScaledObject is discovered");
    assert_eq!(ar.plural, "scaledobjects");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
}

#[test]
fn many_emulators_in_parallel_threads() {
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let emu = start();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let cms: Api<ConfigMap> =
                        Api::namespaced(emu.client().await.unwrap(), "default");
                    cms.create(&PostParams::default(), &cm("p", json!({})))
                        .await
                        .unwrap();
                    cms.list(&ListParams::default()).await.unwrap().items.len()
                })
            })
        })
        .collect();
    for h in handles {
        // Each emulator is isolated: its own kube-root-ca.crt plus the one created here.
        assert_eq!(h.join().unwrap(), 2);
    }
}

#[tokio::test]
async fn finalizers_delay_deletion_and_metadata_views() {
    let emu = start();
    let client = emu.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut with_finalizer = cm("guarded", json!({"k": "v"}));
    with_finalizer.metadata.finalizers = Some(vec!["signoz.io/cleanup".into()]);
    cms.create(&PostParams::default(), &with_finalizer)
        .await
        .unwrap();

    cms.delete("guarded", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = cms.get("guarded").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    cms.patch(
        "guarded",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(cms.get("guarded").await.unwrap_err()).0, 404);

    cms.create(&PostParams::default(), &cm("plain", json!({})))
        .await
        .unwrap();
    let meta = cms.get_metadata("plain").await.unwrap();
    assert_eq!(meta.metadata.name.as_deref(), Some("plain"));
    let metas = cms
        .list_metadata(&ListParams::default().labels("app=signoz"))
        .await
        .unwrap();
    assert_eq!(metas.items.len(), 1);
    emu.shutdown().await;
}
