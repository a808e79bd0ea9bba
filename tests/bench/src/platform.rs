//! The bench's stack and its platforms: moto, PostgreSQL and the real kube-apiserver from
//! the local stack, reached through one [`Network`] per latency (a counting proxy in
//! front of moto and of each fake SigNoz, TCP proxies in front of PostgreSQL and the API
//! server, all holding each message half the round trip each way; Kubernetes calls are
//! counted from the API server's audit log), and per-platform seeding (buckets, secrets,
//! RDS instance, namespaces, RBAC, workloads, a fake SigNoz, the spec uploaded to S3) so
//! N platforms can live side by side without touching each other.
//!
//! Each function runs as production runs it: under its deployment role (the policy of
//! functions.json rendered for the platform's [`Deployment`], IAM evaluated by moto) and
//! as its own Kubernetes identity; the admin's credentials only seed the world.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use platform_tests::iam::{Deployment, credentials_env, role_credentials, role_env};
use platform_tests::kube::TestCluster;
use platform_tests::signoz::{SignozServer, start_signoz};
use platform_tests::tcp_proxy::TcpProxy;
use platform_tests::{PgAdmin, pg_admin};
use serde_json::json;
use signoz_control::spec::{
    DatabaseTls, EXAMPLE_SPEC, MinimumObjectSize, PlatformSpec, RotationStrategy, SpecLocation,
    TlsMode, TlsNegotiation, parse_spec,
};

use crate::meter::Meter;
use crate::proxy::CountingProxy;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The way from the functions to the stack at one round-trip latency.
pub struct Network {
    pub rtt: Duration,
    moto: CountingProxy,
    /// `127.0.0.1:<port>` in front of PostgreSQL 15 and 18.
    pg: Arc<TcpProxy>,
    pg18: Arc<TcpProxy>,
    /// `https://127.0.0.1:<port>` in front of the API server (its certificate names
    /// 127.0.0.1, so TLS verifies through the proxy).
    kube_url: String,
}

impl Network {
    /// `rtt` as shown in tables: `0 ms`, `20 ms`.
    pub fn label(&self) -> String {
        format!("{} ms", self.rtt.as_millis())
    }
}

/// Which of the stack's servers a platform's database is on (the same superuser and CA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Postgres {
    /// PostgreSQL 15, logins asking for TLS with an SSLRequest (every version).
    V15,
    /// PostgreSQL 18, `database.tls.negotiation: direct` (17 and later).
    V18Direct,
}

/// Everything the functions talk to, reached through proxies.
pub struct Stack {
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    rds: aws_sdk_rds::Client,
    kube_admin: kube::Client,
    meter: Meter,
    pub pg: PgAdmin,
    pub networks: Vec<Network>,
    /// `<name_prefix>-rotate-credentials` registered in moto: what every deployment's
    /// `ROTATION_LAMBDA_ARN` names and its role may invoke.
    rotation_lambda_arn: String,
    pub workdir: PathBuf,
    /// Where every platform's functions send their telemetry (their SigNoz collector).
    otlp: platform_tests::otlp::OtlpReceiver,
}

/// One platform's names and its fake SigNoz.
pub struct Platform {
    pub spec: PlatformSpec,
    /// Index into [`Stack::networks`]: how far this platform is from its functions.
    pub network: usize,
    /// `s3://<id>-config/platform.yaml`.
    pub spec_uri: String,
    /// What its deployment names (the roles' resources).
    deployment: Deployment,
    /// Its namespaces, RBAC and the functions' identities on the stack's API server.
    cluster: TestCluster,
    _signoz: SignozServer,
    _signoz_proxy: CountingProxy,
}

impl Stack {
    /// Connects to the local stack's moto, PostgreSQL and API server, through one
    /// network per round-trip latency in `rtts`; `meter` sees every proxy.
    pub async fn start(
        workdir: PathBuf,
        meter: Meter,
        rtts: &[Duration],
    ) -> Result<Stack, BoxError> {
        let sdk = platform_tests::aws().await;
        let moto = platform_tests::stack_var("AWS_ENDPOINT_URL");
        let pg = pg_admin();
        let pg18 = format!("{}:{}", pg.host, platform_tests::stack_var("PG18_PORT"));
        let kube = platform_tests::stack_var("KUBE_API_URL");
        let kube_addr = kube.trim_start_matches("https://").trim_end_matches('/');
        let mut networks = Vec::new();
        for &rtt in rtts {
            let one_way = rtt / 2;
            let moto = CountingProxy::start(
                "moto",
                &moto,
                meter.log.clone(),
                meter.connections.clone(),
                one_way,
            )
            .await?;
            let pg = Arc::new(TcpProxy::start(&format!("{}:{}", pg.host, pg.port), one_way).await?);
            let pg18 = Arc::new(TcpProxy::start(&pg18, one_way).await?);
            let kube = Arc::new(TcpProxy::start(kube_addr, one_way).await?);
            let kube_url = format!("https://{}", kube.addr);
            meter
                .links
                .lock()
                .unwrap()
                .extend([pg.clone(), pg18.clone(), kube]);
            networks.push(Network {
                rtt,
                moto,
                pg,
                pg18,
                kube_url,
            });
        }
        let rotation_lambda_arn = platform_tests::ensure_rotation_lambda();
        Ok(Stack {
            s3: signoz_control::aws::s3_client(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            rds: aws_sdk_rds::Client::new(&sdk),
            kube_admin: platform_tests::kube::admin().await,
            meter,
            pg,
            networks,
            rotation_lambda_arn,
            workdir,
            otlp: platform_tests::otlp::OtlpReceiver::start().await,
        })
    }

    /// `function`'s kubeconfig for `platform`, its server the platform's network's
    /// proxy in front of the API server.
    fn kubeconfig(&self, function: &str, platform: &Platform) -> Result<PathBuf, BoxError> {
        let direct = platform.cluster.kubeconfig(function);
        let path = self.workdir.join(format!(
            "{}-{function}.kubeconfig",
            platform.spec.platform.name
        ));
        if !path.exists() {
            let mut config: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&direct)?)?;
            config["clusters"][0]["cluster"]["server"] =
                json!(self.networks[platform.network].kube_url);
            std::fs::write(&path, config.to_string())?;
        }
        Ok(path)
    }

    /// The environment `function`'s process gets for `platform`, as Lambda gives it: the
    /// credentials of the function's deployment role (assumed for this process, the admin's
    /// never reach it), AWS through the counting proxy, Kubernetes as the function's own
    /// identity (TLS, client certificate), the platform's spec and the rotation function.
    pub async fn function_env(
        &self,
        function: &str,
        platform: &Platform,
    ) -> Result<Vec<(String, String)>, BoxError> {
        let mut env = if function == crate::BASELINE {
            // The baseline gets a session too, so every process parses the same
            // environment; its role may do nothing.
            let deny_all = json!({"Version": "2012-10-17",
                "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]});
            credentials_env(&role_credentials(function, &platform.deployment, deny_all).await)
        } else {
            role_env(function, &platform.deployment).await
        };
        env.extend([
            (
                "AWS_ENDPOINT_URL".into(),
                self.networks[platform.network].moto.url.clone(),
            ),
            ("PLATFORM_SPEC".into(), platform.spec_uri.clone()),
            (
                "KUBECONFIG".into(),
                self.kubeconfig(function, platform)?.display().to_string(),
            ),
            (
                signoz_control::credentials::ROTATION_LAMBDA_ARN_ENV.into(),
                self.rotation_lambda_arn.clone(),
            ),
        ]);
        Ok(env)
    }

    /// Seeds a platform named `id` (lowercase, digits, dashes) on `network`: its
    /// buckets, SigNoz API key and fake SigNoz, namespaces and workloads, its empty app
    /// secret, and with a `database` strategy its RDS instance and master secret (the
    /// superuser of that server). Uploads its spec last.
    pub async fn seed_platform(
        &self,
        id: &str,
        database: Option<(RotationStrategy, Postgres)>,
        network: usize,
    ) -> Result<Platform, BoxError> {
        let mut spec = parse_spec(EXAMPLE_SPEC)?;
        let config_bucket = format!("{id}-config");
        spec.platform.name = id.into();
        spec.cluster.name = id.into();
        spec.state.bucket = format!("{id}-control");
        spec.cold_storage.bucket = format!("{id}-cold");
        if let Some(telemetry) = &mut spec.telemetry {
            telemetry.endpoint = self.otlp.endpoint();
        }
        // moto always reports all_storage_classes_128K; the example's choice would be
        // rewritten on every reconcile (DESIGN.md, known quirks).
        spec.cold_storage.transition_minimum_object_size = MinimumObjectSize::AllStorageClasses128k;
        for bucket in [
            &config_bucket,
            &spec.state.bucket,
            &spec.cold_storage.bucket,
        ] {
            self.s3
                .create_bucket()
                .bucket(bucket)
                .create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::EuWest1)
                        .build(),
                )
                .send()
                .await?;
        }

        let api_key = format!("{id}-admin-key");
        spec.retention.ttl_api.api_key_secret = format!("{id}/signoz-api-key");
        self.secrets
            .create_secret()
            .name(&spec.retention.ttl_api.api_key_secret)
            .secret_string(&api_key)
            .send()
            .await?;
        let signoz = start_signoz(&api_key).await;
        let signoz_proxy = CountingProxy::start(
            "signoz",
            &signoz.url,
            self.meter.log.clone(),
            self.meter.connections.clone(),
            self.networks[network].rtt / 2,
        )
        .await?;
        spec.retention.ttl_api.url = signoz_proxy.url.clone();

        let (platform_ns, apps_ns) = (format!("{id}-platform"), format!("{id}-apps"));
        spec.cluster.namespace = platform_ns;
        if let Some(argocd) = spec.cluster.delivery.argocd.as_mut() {
            argocd.namespace = format!("{id}-argocd");
        }
        for w in &mut spec.instrumentation.workloads {
            w.namespace = Some(apps_ns.clone());
        }
        spec.database.app_secret_name = format!("{id}/app");
        if let Some((strategy, server)) = database {
            spec.database.strategy = strategy;
            self.seed_database(id, &mut spec, &self.networks[network], server)
                .await?;
        }
        // What each platform's deployment creates: its app secret, empty (without a
        // database nothing writes a value and sync-cluster leaves the DSN Secret alone).
        let location = SpecLocation::S3 {
            bucket: config_bucket.clone(),
            key: "platform.yaml".into(),
        };
        let deployment = Deployment::for_spec(&spec, &location);
        deployment.create_app_secret(&self.secrets).await?;
        let cluster = TestCluster::arrange(self.kube_admin.clone(), spec.clone()).await;
        cluster.arrange_workloads().await;
        // JSON is YAML and round-trips the spec exactly.
        self.s3
            .put_object()
            .bucket(&config_bucket)
            .key("platform.yaml")
            .body(serde_json::to_vec(&spec)?.into())
            .send()
            .await?;
        Ok(Platform {
            spec,
            network,
            spec_uri: location.to_string(),
            deployment,
            cluster,
            _signoz: signoz,
            _signoz_proxy: signoz_proxy,
        })
    }

    /// An RDS instance that passes the posture checks and a master secret holding the
    /// stack's PostgreSQL superuser, its endpoint the network's proxy; role and database
    /// names unique to the platform.
    async fn seed_database(
        &self,
        id: &str,
        spec: &mut PlatformSpec,
        network: &Network,
        server: Postgres,
    ) -> Result<(), BoxError> {
        let (proxy, negotiation) = match server {
            Postgres::V15 => (&network.pg, TlsNegotiation::Postgres),
            Postgres::V18Direct => (&network.pg18, TlsNegotiation::Direct),
        };
        let sql_id = id.replace('-', "_");
        let db = &mut spec.database;
        db.instance_identifier = format!("{id}-db");
        db.database_name = format!("{sql_id}_signoz");
        db.username = format!("{sql_id}_app");
        db.owner_role = format!("{sql_id}_owner");
        db.tls = DatabaseTls {
            mode: TlsMode::VerifyFull,
            ca_file: Some(self.pg.ca_file.clone()),
            negotiation,
        };
        self.rds
            .create_db_instance()
            .db_instance_identifier(&db.instance_identifier)
            .engine("postgres")
            .db_instance_class("db.t4g.medium")
            .allocated_storage(20)
            .master_username(&self.pg.user)
            .master_user_password("not-used-locally")
            .storage_encrypted(true)
            .deletion_protection(true)
            .multi_az(true)
            .send()
            .await?;
        let master = json!({"engine": "postgres", "host": proxy.addr.ip().to_string(), "port": proxy.addr.port(),
            "username": self.pg.user, "password": self.pg.password, "dbname": "postgres"});
        db.master_secret_arn = self
            .secrets
            .create_secret()
            .name(format!("{id}/master"))
            .secret_string(master.to_string())
            .send()
            .await?
            .arn
            .ok_or("CreateSecret returned no ARN")?;
        Ok(())
    }

    /// Starts a rotation of the platform's app secret the way Secrets Manager does (a
    /// new, empty AWSPENDING version); returns its token.
    pub async fn start_rotation(&self, platform: &Platform) -> Result<String, BoxError> {
        let secret = &platform.spec.database.app_secret_name;
        // moto quirk: provisioning's RotateSecret(RotateImmediately=false) leaves AWSPENDING
        // on a copy of the current value, which real Secrets Manager does not; drop it so
        // createSecret has real work to do.
        if let Some(stale) = self.pending_version(secret).await? {
            self.secrets
                .update_secret_version_stage()
                .secret_id(secret)
                .version_stage("AWSPENDING")
                .remove_from_version_id(stale)
                .send()
                .await?;
        }
        // With the rotation Lambda's ARN (without it moto moves AWSCURRENT to the new,
        // empty version); moto stages AWSPENDING and cannot invoke the Lambda.
        let _ = self
            .secrets
            .rotate_secret()
            .secret_id(secret)
            .rotation_lambda_arn(&self.rotation_lambda_arn)
            .rotation_rules(
                aws_sdk_secretsmanager::types::RotationRulesType::builder()
                    .automatically_after_days(30)
                    .build(),
            )
            .send()
            .await;
        self.pending_version(secret)
            .await?
            .ok_or_else(|| format!("no AWSPENDING version of {secret} after RotateSecret").into())
    }

    async fn pending_version(&self, secret: &str) -> Result<Option<String>, BoxError> {
        let versions = self
            .secrets
            .list_secret_version_ids()
            .secret_id(secret)
            .send()
            .await?;
        Ok(versions.versions().iter().find_map(|v| {
            v.version_stages()
                .iter()
                .any(|s| s == "AWSPENDING")
                .then(|| v.version_id().unwrap_or_default().to_string())
        }))
    }
}
