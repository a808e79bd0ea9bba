//! The bench's stack and its platforms: moto, PostgreSQL and the real kube-apiserver from
//! the local stack, counting proxies in front of moto and each fake SigNoz (Kubernetes
//! calls are counted from the API server's audit log), and per-platform seeding (buckets,
//! secrets, RDS instance, namespaces, RBAC, workloads, a fake SigNoz, the spec uploaded to
//! S3) so N platforms can live side by side without touching each other.

use std::path::PathBuf;

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use platform_tests::kube::TestCluster;
use platform_tests::signoz::{SignozServer, start_signoz};
use platform_tests::{PgAdmin, pg_admin};
use serde_json::json;
use signoz_control::spec::{
    DatabaseTls, EXAMPLE_SPEC, MinimumObjectSize, PlatformSpec, TlsMode, parse_spec,
};

use crate::proxy::{CallLog, CountingProxy};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything the functions talk to, reached through counting proxies.
pub struct Stack {
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    rds: aws_sdk_rds::Client,
    kube_admin: kube::Client,
    pub log: CallLog,
    pub pg: PgAdmin,
    moto_proxy: CountingProxy,
    pub workdir: PathBuf,
    /// Where every platform's functions send their telemetry (their SigNoz collector).
    otlp: platform_tests::otlp::OtlpReceiver,
}

/// One platform's names and its fake SigNoz.
pub struct Platform {
    pub spec: PlatformSpec,
    /// `s3://<id>-config/platform.yaml`.
    pub spec_uri: String,
    /// Its namespaces, RBAC and the functions' identities on the stack's API server.
    cluster: TestCluster,
    _signoz: SignozServer,
    _signoz_proxy: CountingProxy,
}

impl Stack {
    /// Connects to the local stack's moto, PostgreSQL and API server.
    pub async fn start(workdir: PathBuf, log: CallLog) -> Result<Stack, BoxError> {
        let sdk = platform_tests::aws().await;
        let moto = platform_tests::stack_var("AWS_ENDPOINT_URL");
        let moto_proxy = CountingProxy::start("moto", &moto, log.clone()).await?;
        Ok(Stack {
            s3: signoz_control::aws::s3_client(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            rds: aws_sdk_rds::Client::new(&sdk),
            kube_admin: platform_tests::kube::admin().await,
            log,
            pg: pg_admin(),
            moto_proxy,
            workdir,
            otlp: platform_tests::otlp::OtlpReceiver::start().await,
        })
    }

    /// The environment `function`'s process gets for `platform`: AWS through the counting
    /// proxy, Kubernetes as the function's own identity (TLS, client certificate), and the
    /// platform's spec.
    pub fn function_env(&self, function: &str, platform: &Platform) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_ENDPOINT_URL".into(), self.moto_proxy.url.clone()),
            ("PLATFORM_SPEC".into(), platform.spec_uri.clone()),
            (
                "KUBECONFIG".into(),
                platform.cluster.kubeconfig(function).display().to_string(),
            ),
        ];
        if let Ok(arn) = std::env::var("ROTATION_LAMBDA_ARN") {
            env.push(("ROTATION_LAMBDA_ARN".into(), arn));
        }
        env
    }

    /// Seeds a platform named `id` (lowercase, digits, dashes): its buckets, SigNoz API
    /// key and fake SigNoz, namespaces and workloads, and with `database` its RDS
    /// instance and master secret (the stack's superuser). Uploads its spec last.
    pub async fn seed_platform(&self, id: &str, database: bool) -> Result<Platform, BoxError> {
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
        let signoz_proxy = CountingProxy::start("signoz", &signoz.url, self.log.clone()).await?;
        spec.retention.ttl_api.url = signoz_proxy.url.clone();

        let (platform_ns, apps_ns) = (format!("{id}-platform"), format!("{id}-apps"));
        spec.cluster.namespace = platform_ns;
        if let Some(argocd) = spec.cluster.delivery.argocd.as_mut() {
            argocd.namespace = format!("{id}-argocd");
        }
        for w in &mut spec.instrumentation.workloads {
            w.namespace = Some(apps_ns.clone());
        }
        if database {
            self.seed_database(id, &mut spec).await?;
        }
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
            spec_uri: format!("s3://{config_bucket}/platform.yaml"),
            cluster,
            _signoz: signoz,
            _signoz_proxy: signoz_proxy,
        })
    }

    /// An RDS instance that passes the posture checks and a master secret holding the
    /// stack's PostgreSQL superuser; role and database names unique to the platform.
    async fn seed_database(&self, id: &str, spec: &mut PlatformSpec) -> Result<(), BoxError> {
        let sql_id = id.replace('-', "_");
        let db = &mut spec.database;
        db.instance_identifier = format!("{id}-db");
        db.database_name = format!("{sql_id}_signoz");
        db.app_secret_name = format!("{id}/app");
        db.username = format!("{sql_id}_app");
        db.owner_role = format!("{sql_id}_owner");
        db.tls = DatabaseTls {
            mode: TlsMode::VerifyFull,
            ca_file: Some(self.pg.ca_file.clone()),
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
        let master = json!({"engine": "postgres", "host": self.pg.host, "port": self.pg.port,
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
        let lambda = std::env::var("ROTATION_LAMBDA_ARN")?;
        let _ = self
            .secrets
            .rotate_secret()
            .secret_id(secret)
            .rotation_lambda_arn(lambda)
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
