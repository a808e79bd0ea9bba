//! The stack's real Kubernetes API server (`tests/bin/stack.sh`: etcd + kube-apiserver,
//! RBAC on, the platform's CRDs installed). The admin arranges the world; each function
//! acts as an identity in the group its EKS access entry maps its role to, authorised
//! only by the RBAC rendered from the spec (`signoz_control::cluster::permissions`).
//!
//! Identities are X.509 client certificates signed by the stack's kube client CA (CN = user,
//! O = groups): a token file is fixed when the server starts, and every test needs its own
//! identity in its own platform's groups. Tests share one server, so each test gets its
//! own platform name and namespaces ([`TestCluster`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use signoz_control::cluster::permissions::{kubernetes_group, render_rbac};
use signoz_control::spec::PlatformSpec;

/// The admin's kubeconfig (system:masters): for arranging the world only.
pub fn admin_kubeconfig() -> PathBuf {
    PathBuf::from(crate::stack_var("KUBE_ADMIN_KUBECONFIG"))
}

/// A client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> kube::Client {
    signoz_control::runtime::install_crypto();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("kube config");
    kube::Client::try_from(config).expect("kube client")
}

/// The admin client.
pub async fn admin() -> kube::Client {
    client_from(&admin_kubeconfig()).await
}

/// Writes a kubeconfig for `user` in `groups` (a fresh client certificate from the stack's
/// kube client CA) to `path`.
pub fn write_identity_kubeconfig(path: &Path, user: &str, groups: &[String]) {
    let read = |var: &str| {
        std::fs::read_to_string(crate::stack_var(var)).unwrap_or_else(|e| panic!("{var}: {e}"))
    };
    let ca_key = rcgen::KeyPair::from_pem(&read("KUBE_CLIENT_CA_KEY")).expect("client CA key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&read("KUBE_CLIENT_CA_CERT"), ca_key)
        .expect("client CA certificate");
    let key = rcgen::KeyPair::generate().expect("client key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, user);
    for group in groups {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, group.as_str());
    }
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).expect("client certificate");
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "stack", "cluster": {
            "server": crate::stack_var("KUBE_API_URL"),
            "certificate-authority-data": b64(&read("KUBE_CA_FILE")),
        }}],
        "users": [{ "name": user, "user": {
            "client-certificate-data": b64(&cert.pem()),
            "client-key-data": b64(&key.serialize_pem()),
        }}],
        "contexts": [{ "name": "stack", "context": { "cluster": "stack", "user": user } }],
        "current-context": "stack",
    });
    std::fs::write(path, serde_json::to_string_pretty(&kubeconfig).unwrap())
        .expect("write kubeconfig");
}

/// Every namespace name the spec uses, renamed by `rename`.
pub fn rename_namespaces(spec: &mut PlatformSpec, rename: impl Fn(&str) -> String) {
    spec.cluster.namespace = rename(&spec.cluster.namespace);
    if let Some(argo) = &mut spec.cluster.delivery.argocd {
        argo.namespace = rename(&argo.namespace);
    }
    if let Some(flux) = &mut spec.cluster.delivery.flux {
        flux.namespace = rename(&flux.namespace);
    }
    for w in &mut spec.instrumentation.workloads {
        if let Some(ns) = &mut w.namespace {
            *ns = rename(ns);
        }
    }
    for w in &mut spec.database.restart {
        if let Some(ns) = &mut w.namespace {
            *ns = rename(ns);
        }
    }
}

/// The spec as the YAML file the functions read.
pub fn spec_yaml(spec: &PlatformSpec) -> String {
    serde_norway::to_string(spec).expect("spec serializes")
}

/// Every namespace the spec places objects or workloads in.
pub fn spec_namespaces(spec: &PlatformSpec) -> Vec<String> {
    let mut namespaces = vec![spec.cluster.namespace.clone()];
    namespaces.extend(
        spec.cluster
            .delivery
            .argocd
            .iter()
            .map(|a| a.namespace.clone()),
    );
    namespaces.extend(
        spec.cluster
            .delivery
            .flux
            .iter()
            .map(|f| f.namespace.clone()),
    );
    let workloads = spec.instrumentation.workloads.iter().map(|w| &w.namespace);
    namespaces.extend(
        workloads
            .chain(spec.database.restart.iter().map(|w| &w.namespace))
            .flatten()
            .cloned(),
    );
    namespaces.sort();
    namespaces.dedup();
    namespaces
}

fn rbac_resource(kind: &str) -> ApiResource {
    let plural = format!("{}s", kind.to_lowercase());
    ApiResource {
        group: "rbac.authorization.k8s.io".into(),
        version: "v1".into(),
        api_version: "rbac.authorization.k8s.io/v1".into(),
        kind: kind.into(),
        plural,
    }
}

/// Applies manifests (Roles, RoleBindings, ClusterRoles...) as the admin, the way the
/// deployment's IaC (or `kubectl apply --server-side`) does.
pub async fn apply_as_admin(admin: &kube::Client, manifests: &[Value]) {
    for manifest in manifests {
        let kind = manifest["kind"].as_str().expect("kind");
        let resource = match manifest["apiVersion"].as_str() {
            Some("rbac.authorization.k8s.io/v1") => rbac_resource(kind),
            other => panic!("apply_as_admin: unsupported apiVersion {other:?}"),
        };
        let name = manifest["metadata"]["name"].as_str().expect("name");
        let api: Api<DynamicObject> = match manifest["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(admin.clone(), ns, &resource),
            None => Api::all_with(admin.clone(), &resource),
        };
        api.patch(
            name,
            &PatchParams::apply("test-admin").force(),
            &Patch::Apply(manifest),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {kind}/{name}: {e}"));
    }
}

/// One test's platform on the shared API server: its own platform name (so its own
/// Kubernetes groups) and namespaces, created by the admin, with the RBAC the deployment
/// ships for that spec applied.
pub struct TestCluster {
    pub spec: PlatformSpec,
    pub admin: kube::Client,
    dir: tempfile::TempDir,
}

impl TestCluster {
    /// On the stack's server: renames the spec's platform and namespaces uniquely, creates
    /// the namespaces and applies the spec's RBAC.
    pub async fn new(spec: PlatformSpec) -> TestCluster {
        TestCluster::on(admin().await, spec).await
    }

    /// [`TestCluster::new`] on the cluster `admin` reaches.
    pub async fn on(admin: kube::Client, mut spec: PlatformSpec) -> TestCluster {
        let suffix = crate::unique("t");
        spec.platform.name = format!("{}-{suffix}", spec.platform.name);
        rename_namespaces(&mut spec, |ns| format!("{ns}-{suffix}"));
        TestCluster::arrange(admin, spec).await
    }

    /// A platform whose names are already unique: creates its namespaces and applies its RBAC.
    pub async fn arrange(admin: kube::Client, spec: PlatformSpec) -> TestCluster {
        let cluster = TestCluster {
            spec,
            admin,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        cluster.create_namespaces().await;
        cluster.apply_rbac().await;
        cluster
    }

    /// Takes a changed spec (same platform): creates namespaces it adds, re-applies RBAC,
    /// as a deployment does when the spec changes.
    pub async fn update_spec(&mut self, spec: &PlatformSpec) {
        self.spec = spec.clone();
        self.create_namespaces().await;
        self.apply_rbac().await;
    }

    async fn create_namespaces(&self) {
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.admin.clone());
        for ns in spec_namespaces(&self.spec) {
            let body = serde_json::from_value(json!({ "metadata": { "name": ns } })).unwrap();
            match namespaces.create(&PostParams::default(), &body).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_already_exists() => {}
                Err(e) => panic!("create namespace {ns}: {e}"),
            }
        }
    }

    /// Creates, as the app teams would have them, every workload the spec names: the
    /// instrumented ones (a Python container) and those restarted onto a new DSN.
    pub async fn arrange_workloads(&self) {
        let spec = &self.spec;
        let workloads = spec.instrumentation.workloads.iter().map(|w| {
            (
                w.kind.as_str(),
                w.name.as_str(),
                &w.namespace,
                "python:3.12",
            )
        });
        let readers = signoz_control::spec::chart::dsn_readers(spec);
        let restarted = readers.iter().map(|w| {
            (
                w.kind.as_str(),
                w.name.as_str(),
                &w.namespace,
                "signoz/signoz:v0.131.0",
            )
        });
        let mut made = std::collections::BTreeSet::new();
        for (kind, name, namespace, image) in workloads.chain(restarted) {
            let namespace = namespace.as_deref().unwrap_or(&spec.cluster.namespace);
            if !made.insert((kind, name, namespace)) {
                continue;
            }
            let resource = signoz_control::cluster::objects::workload_resource(kind)
                .unwrap_or_else(|| panic!("workload kind {kind}"));
            let mut body = json!({
                "apiVersion": "apps/v1", "kind": kind,
                "metadata": { "name": name, "namespace": namespace },
                "spec": {
                    "selector": { "matchLabels": { "app": name } },
                    "template": {
                        "metadata": { "labels": { "app": name } },
                        "spec": { "containers": [{ "name": name, "image": image }] },
                    },
                },
            });
            if kind == "StatefulSet" {
                body["spec"]["serviceName"] = json!(name);
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.admin.clone(), namespace, &resource);
            api.create(
                &PostParams::default(),
                &serde_json::from_value(body).unwrap(),
            )
            .await
            .unwrap_or_else(|e| panic!("create {kind}/{namespace}/{name}: {e}"));
        }
    }

    /// Applies the RBAC the deployment ships for this spec.
    pub async fn apply_rbac(&self) {
        let manifests = render_rbac(&self.spec).expect("RBAC renders");
        apply_as_admin(&self.admin, &manifests).await;
    }

    /// A kubeconfig for `function`'s identity: a user in the group its access entry maps to.
    pub fn kubeconfig(&self, function: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{function}.kubeconfig"));
        if !path.exists() {
            let user = format!(
                "arn:aws:sts::000000000000:assumed-role/{function}/{}",
                self.spec.platform.name
            );
            write_identity_kubeconfig(&path, &user, &[kubernetes_group(&self.spec, function)]);
        }
        path
    }

    /// A client acting as `function`'s identity.
    pub async fn client(&self, function: &str) -> kube::Client {
        client_from(&self.kubeconfig(function)).await
    }

    /// [`TestCluster::client`] reaching the API server at `server` (`https://127.0.0.1:<port>`,
    /// a proxy in front of it: the server's certificate names 127.0.0.1, so TLS verifies).
    pub async fn client_at(&self, function: &str, server: &str) -> kube::Client {
        let direct = self.kubeconfig(function);
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&direct).expect("kubeconfig"))
                .expect("kubeconfig JSON");
        config["clusters"][0]["cluster"]["server"] = json!(server);
        let path = direct.with_extension(format!("{}.kubeconfig", crate::unique("at")));
        std::fs::write(&path, config.to_string()).expect("write kubeconfig");
        client_from(&path).await
    }

    /// The resourceVersion of every object of `kinds` in this platform's namespaces. The
    /// server's resourceVersion is global (other tests write too), so "nothing was
    /// written" is judged per object.
    pub async fn revisions(&self, kinds: &[ApiResource]) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for ns in spec_namespaces(&self.spec) {
            for kind in kinds {
                let api: Api<DynamicObject> = Api::namespaced_with(self.admin.clone(), &ns, kind);
                let list = api
                    .list_metadata(&ListParams::default())
                    .await
                    .unwrap_or_else(|e| panic!("list {} in {ns}: {e}", kind.kind));
                for item in list.items {
                    out.insert(
                        format!(
                            "{}/{ns}/{}",
                            kind.kind,
                            item.metadata.name.unwrap_or_default()
                        ),
                        item.metadata.resource_version.unwrap_or_default(),
                    );
                }
            }
        }
        out
    }
}
