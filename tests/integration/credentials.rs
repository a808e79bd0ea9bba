//! Credentials: provisioning and rotation against moto (Secrets Manager, RDS), the
//! stack's PostgreSQL (TLS, scram-sha-256, log_statement=all) and the Kubernetes
//! emulator, driven the way Secrets Manager drives a rotation.

use std::time::Duration;

use aws_sdk_secretsmanager::types::RotationRulesType;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use platform_tests::{PgAdmin, aws, pg_admin, unique};
use serde_json::json;
use signoz_control::credentials::secret_store::{AWSCURRENT, AWSPENDING, Version};
use signoz_control::credentials::values::{AppSecret, Endpoint, Password};
use signoz_control::credentials::{
    self, ClusterAccess, Context, Error, PgTls, Timeouts, provision_database, run_rotation_step,
};
use signoz_control::events::{RotationRequest, RotationStep};
use signoz_control::spec::{
    DatabaseTls, EXAMPLE_SPEC, PlatformSpec, RotationStrategy, SpecLocation, TlsMode, parse_spec,
};

const UNDEPLOYED_LAMBDA: &str = "arn:aws:lambda:eu-west-1:123456789012:function:rotate-credentials";
const STEPS: [RotationStep; 4] = [
    RotationStep::CreateSecret,
    RotationStep::SetSecret,
    RotationStep::TestSecret,
    RotationStep::FinishSecret,
];

/// One SigNoz database on the shared server: its own master role, master secret, moto
/// RDS instance and names, so tests run in parallel.
struct Platform {
    spec: PlatformSpec,
    ctx: Context,
    sm: aws_sdk_secretsmanager::Client,
    admin: PgAdmin,
    spec_file: tempfile::NamedTempFile,
    master_user: String,
}

fn admin_tls(admin: &PgAdmin) -> PgTls {
    PgTls::from_spec(
        &DatabaseTls {
            mode: TlsMode::VerifyFull,
            ca_file: Some(admin.ca_file.clone()),
        },
        Timeouts::default(),
    )
    .unwrap()
}

async fn superuser(admin: &PgAdmin) -> tokio_postgres::Client {
    admin_tls(admin)
        .connect(
            &Endpoint {
                host: admin.host.clone(),
                port: admin.port,
            },
            "postgres",
            &admin.user,
            &Password::new(admin.password.clone()),
        )
        .await
        .unwrap()
}

impl Platform {
    async fn new(strategy: RotationStrategy, master_secret_name: Option<String>) -> Platform {
        let sdk = aws().await;
        let admin = pg_admin();
        let id = unique("cred").replace('-', "_");
        let master_user = format!("{id}_master");
        let master_password = format!("Master{}x", id.replace('_', ""));
        let su = superuser(&admin).await;
        let verifier = postgres_verifier(&master_password);
        su.batch_execute(&format!(
            "CREATE ROLE \"{master_user}\" LOGIN CREATEROLE CREATEDB PASSWORD '{verifier}'"
        ))
        .await
        .unwrap();
        let sm = aws_sdk_secretsmanager::Client::new(&sdk);
        let master_arn = sm
            .create_secret()
            .name(master_secret_name.unwrap_or_else(|| format!("{id}/master")))
            .secret_string(
                json!({"username": master_user, "password": master_password,
                       "host": admin.host, "port": admin.port})
                .to_string(),
            )
            .send()
            .await
            .unwrap()
            .arn
            .unwrap();
        let instance = id.replace('_', "-");
        aws_sdk_rds::Client::new(&sdk)
            .create_db_instance()
            .db_instance_identifier(&instance)
            .engine("postgres")
            .db_instance_class("db.t3.micro")
            .allocated_storage(20)
            .master_username("postgres")
            .master_user_password("not-used-locally")
            .storage_encrypted(true)
            .deletion_protection(true)
            .send()
            .await
            .unwrap();
        let mut spec = parse_spec(EXAMPLE_SPEC).unwrap();
        let db = &mut spec.database;
        db.instance_identifier = instance;
        db.database_name = format!("{id}_signoz");
        db.master_secret_arn = master_arn;
        db.app_secret_name = format!("{id}/app");
        db.strategy = strategy;
        db.username = format!("{id}_app");
        db.owner_role = format!("{id}_owner");
        db.tls = DatabaseTls {
            mode: TlsMode::VerifyFull,
            ca_file: Some(admin.ca_file.clone()),
        };
        let spec_file = tempfile::NamedTempFile::new().unwrap();
        // JSON is YAML, and round-trips the spec exactly.
        std::fs::write(spec_file.path(), serde_json::to_string(&spec).unwrap()).unwrap();
        let mut ctx = Context::new(sdk);
        ctx.cluster = ClusterAccess::Disabled;
        ctx.rotation_lambda_arn = Some(UNDEPLOYED_LAMBDA.into());
        ctx.spec_location = Some(SpecLocation::Path(spec_file.path().into()));
        Platform {
            spec,
            ctx,
            sm,
            admin,
            spec_file,
            master_user,
        }
    }

    fn app_secret(&self) -> &str {
        &self.spec.database.app_secret_name
    }

    /// What Secrets Manager does before calling createSecret: a new version with
    /// AWSPENDING and no value. Returns its token.
    async fn start_rotation(&self) -> String {
        // moto leaves the pending version, then fails looking the undeployed Lambda up.
        let _ = self
            .sm
            .rotate_secret()
            .secret_id(self.app_secret())
            .rotation_lambda_arn(UNDEPLOYED_LAMBDA)
            .rotation_rules(
                RotationRulesType::builder()
                    .automatically_after_days(30)
                    .build(),
            )
            .send()
            .await;
        let versions = self
            .ctx
            .secrets
            .describe(self.app_secret())
            .await
            .unwrap()
            .unwrap();
        versions
            .version_with(AWSPENDING)
            .expect("a pending version")
            .to_string()
    }

    /// Provisions; moto enables rotation and then fails looking the undeployed Lambda
    /// up, so that one error is accepted once rotation is seen enabled.
    async fn provision(&self) -> Option<credentials::ProvisionOutcome> {
        match provision_database(&self.ctx, &self.spec, false).await {
            Ok(outcome) => Some(outcome),
            Err(Error::SecretsManager {
                op: "RotateSecret",
                reason,
            }) if reason.contains("Resource not found") => {
                let versions = self
                    .ctx
                    .secrets
                    .describe(self.app_secret())
                    .await
                    .unwrap()
                    .unwrap();
                assert!(versions.rotation_enabled);
                assert_eq!(
                    versions.rotation_days,
                    Some(i64::from(self.spec.database.rotation_days))
                );
                None
            }
            Err(e) => panic!("provisioning failed: {e}"),
        }
    }

    async fn step(
        &self,
        step: RotationStep,
        token: &str,
    ) -> Result<credentials::StepOutcome, Error> {
        run_rotation_step(
            &self.ctx,
            &self.spec,
            &RotationRequest {
                step,
                secret_id: self.app_secret().into(),
                token: token.into(),
                rotation_token: None,
            },
        )
        .await
    }

    async fn rotate(&self) -> String {
        let token = self.start_rotation().await;
        for step in STEPS {
            self.step(step, &token).await.unwrap();
        }
        token
    }

    async fn secret_at(&self, version: Version<'_>) -> Option<AppSecret> {
        let text = self
            .ctx
            .secrets
            .read(self.app_secret(), version)
            .await
            .unwrap()?;
        Some(AppSecret::parse(self.app_secret(), &text).unwrap())
    }

    async fn current(&self) -> AppSecret {
        self.secret_at(Version::Stage(AWSCURRENT)).await.unwrap()
    }

    async fn login(&self, secret: &AppSecret) -> Result<tokio_postgres::Client, Error> {
        admin_tls(&self.admin)
            .connect(
                &secret.endpoint(),
                &secret.dbname,
                &secret.username,
                &secret.password,
            )
            .await
    }

    async fn cleanup(self) {
        let su = superuser(&self.admin).await;
        let db = &self.spec.database;
        let _ = su
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                db.database_name
            ))
            .await;
        for role in [
            format!("{}_clone", db.username),
            db.username.clone(),
            db.owner_role.clone(),
            self.master_user.clone(),
        ] {
            let _ = su
                .batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""))
                .await;
        }
        drop(self.spec_file);
    }
}

fn postgres_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// Everything Secrets Manager stored for the secret, to search logs for.
async fn all_passwords(p: &Platform) -> Vec<String> {
    let versions = p
        .ctx
        .secrets
        .describe(p.app_secret())
        .await
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    for (id, stages) in &versions.stages {
        for stage in stages {
            if let Some(s) = p.secret_at(Version::IdAtStage(id, stage)).await {
                out.push(s.password.expose().to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternating_users_rotate_twice_and_signoz_objects_stay_usable_by_whoever_is_current() {
    let p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    let emulator = kube_emulator::Emulator::start(kube_emulator::Config::default()).unwrap();
    let kube = emulator.client().await.unwrap();
    let mut p = p;
    p.ctx.cluster = ClusterAccess::Client(kube.clone());
    let ns = p.spec.cluster.namespace.clone();
    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(kube.clone())
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await;
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "signoz", "namespace": ns},
        "spec": {"serviceName": "signoz", "selector": {"matchLabels": {"app": "signoz"}},
                 "template": {"metadata": {"labels": {"app": "signoz"}},
                              "spec": {"containers": [{"name": "signoz", "image": "signoz/signoz"}]}}}
    }))
    .unwrap();
    let statefulsets = Api::<StatefulSet>::namespaced(kube.clone(), &ns);
    statefulsets
        .create(&Default::default(), &sts)
        .await
        .unwrap();

    p.provision().await;
    let provisioned = provision_database(&p.ctx, &p.spec, true).await.unwrap();
    let failed: Vec<_> = provisioned
        .findings
        .iter()
        .filter(|f| !f.ok)
        .map(|f| f.check)
        .collect();
    assert!(
        failed.contains(&"force_ssl"),
        "moto's default group has no rds.force_ssl = 1: {failed:?}"
    );
    assert!(!failed.contains(&"storage_encrypted"), "{failed:?}");
    let again = p
        .provision()
        .await
        .expect("rotation already enabled: no RotateSecret call");
    assert!(
        again.actions.is_empty(),
        "second provisioning changed something: {:?}",
        again.actions
    );

    let first = p.current().await;
    let base_user = p.spec.database.username.clone();
    assert_eq!(first.username, base_user);
    p.login(&first)
        .await
        .unwrap()
        .batch_execute("CREATE TABLE dashboards (id int, title text); INSERT INTO dashboards VALUES (1, 'made by the first user')")
        .await
        .unwrap();

    // Rotation 1, through the handler, every step twice (Secrets Manager retries), in both spellings.
    let token = p.start_rotation().await;
    for (step, snake) in [
        ("createSecret", "create_secret"),
        ("setSecret", "set_secret"),
        ("testSecret", "test_secret"),
        ("finishSecret", "finish_secret"),
    ] {
        for spelling in [step, snake] {
            credentials::handle(
                &p.ctx,
                json!({"Step": spelling, "SecretId": p.app_secret(), "ClientRequestToken": token}),
            )
            .await
            .unwrap_or_else(|e| panic!("{spelling}: {e}"));
        }
    }
    let second = p.current().await;
    assert_eq!(second.username, format!("{base_user}_clone"));
    let versions = p
        .ctx
        .secrets
        .describe(p.app_secret())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(versions.version_with(AWSCURRENT), Some(token.as_str()));
    assert_eq!(
        versions.version_with(AWSPENDING),
        None,
        "stray AWSPENDING: {versions:?}"
    );
    let clone = p.login(&second).await.unwrap();
    let title: String = clone
        .query_one("SELECT title FROM dashboards", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(title, "made by the first user");
    clone
        .batch_execute(
            "INSERT INTO dashboards VALUES (2, 'by clone'); CREATE TABLE alerts (id int)",
        )
        .await
        .unwrap();

    let token2 = p.rotate().await;
    let third = p.current().await;
    assert_eq!(third.username, base_user);
    let base = p.login(&third).await.unwrap();
    base.batch_execute("INSERT INTO alerts VALUES (1); DROP TABLE dashboards")
        .await
        .unwrap();
    assert!(
        p.login(&second).await.is_ok(),
        "the previous user keeps working until the next rotation"
    );

    // The cluster got the DSN of the current user, and the StatefulSet restarted once per version.
    let secret = Api::<Secret>::namespaced(kube.clone(), &ns)
        .get(&p.spec.database.kubernetes_secret.name)
        .await
        .unwrap();
    let dsn = secret.data.unwrap()[&p.spec.database.kubernetes_secret.dsn_key]
        .0
        .clone();
    let dsn = url::Url::parse(std::str::from_utf8(&dsn).unwrap()).unwrap();
    assert_eq!(dsn.username(), base_user);
    assert_eq!(dsn.password(), Some(third.password.expose()));
    let restarted = statefulsets.get("signoz").await.unwrap();
    let annotations = restarted
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert!(
        annotations.values().any(|v| v.contains(&token2)),
        "restart annotation names the version: {annotations:?}"
    );

    let log = std::fs::read_to_string(&p.admin.log_file).unwrap();
    for password in all_passwords(&p).await {
        assert!(
            !log.contains(&password),
            "a password reached PostgreSQL's log"
        );
    }
    p.cleanup().await;
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_user_rotation_interrupted_after_any_step_resumes_and_never_loses_the_password() {
    let p = Platform::new(RotationStrategy::SingleUser, None).await;
    p.provision().await;
    for interrupted_after in 0..STEPS.len() {
        let token = p.start_rotation().await;
        for step in &STEPS[..=interrupted_after] {
            p.step(*step, &token).await.unwrap();
            assert_some_version_logs_in(&p, &token).await;
        }
        // Secrets Manager resumes: every step again, from the start.
        for step in STEPS {
            p.step(step, &token).await.unwrap();
            assert_some_version_logs_in(&p, &token).await;
        }
        let current = p.current().await;
        p.login(&current)
            .await
            .expect("AWSCURRENT logs in after the rotation");
    }
    p.cleanup().await;
}

async fn assert_some_version_logs_in(p: &Platform, token: &str) {
    let current = p.current().await;
    let pending = p.secret_at(Version::IdAtStage(token, AWSPENDING)).await;
    let current_ok = p.login(&current).await.is_ok();
    let pending_ok = match &pending {
        Some(s) => p.login(s).await.is_ok(),
        None => false,
    };
    assert!(
        current_ok || pending_ok,
        "neither AWSCURRENT nor AWSPENDING logs in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_typed_errors_and_the_rotation_still_completes_afterwards() {
    let p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    p.provision().await;
    let token = p.start_rotation().await;

    let wrong = p
        .step(
            RotationStep::CreateSecret,
            "00000000-0000-0000-0000-000000000000",
        )
        .await;
    assert!(
        matches!(wrong, Err(Error::UnknownToken { .. })),
        "{wrong:?}"
    );
    let before_create = p.step(RotationStep::SetSecret, &token).await;
    assert!(
        matches!(before_create, Err(Error::MalformedSecret { .. })),
        "{before_create:?}"
    );

    // A secret without rotation.
    let plain = unique("cred-plain");
    p.sm.create_secret()
        .name(&plain)
        .secret_string("{}")
        .send()
        .await
        .unwrap();
    let version = p
        .ctx
        .secrets
        .describe(&plain)
        .await
        .unwrap()
        .unwrap()
        .version_with(AWSCURRENT)
        .unwrap()
        .to_string();
    let disabled = run_rotation_step(
        &p.ctx,
        &p.spec,
        &RotationRequest {
            step: RotationStep::CreateSecret,
            secret_id: plain.clone(),
            token: version,
            rotation_token: None,
        },
    )
    .await;
    assert!(
        matches!(disabled, Err(Error::RotationDisabled { .. })),
        "{disabled:?}"
    );

    // Database down, then TLS refused, then an untrusted server: typed, and nothing lost.
    p.step(RotationStep::CreateSecret, &token).await.unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let down = admin_tls(&p.admin)
        .connect(
            &Endpoint {
                host: "127.0.0.1".into(),
                port: closed_port,
            },
            "postgres",
            "x",
            &Password::new("y"),
        )
        .await;
    assert!(matches!(down, Err(Error::Network { .. })), "{down:?}");
    let refusing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refusing_port = refusing.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = refusing.accept().await {
            let mut request = [0u8; 8];
            let _ = socket.read_exact(&mut request).await;
            let _ = socket.write_all(b"N").await;
        }
    });
    let no_tls = admin_tls(&p.admin)
        .connect(
            &Endpoint {
                host: "127.0.0.1".into(),
                port: refusing_port,
            },
            "postgres",
            "x",
            &Password::new("y"),
        )
        .await;
    assert!(
        matches!(no_tls, Err(Error::Tls { .. })),
        "a server without TLS must be an error: {no_tls:?}"
    );
    let untrusted = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(untrusted.path(), unrelated_ca_pem()).unwrap();
    let wrong_ca = PgTls::from_spec(
        &DatabaseTls {
            mode: TlsMode::VerifyFull,
            ca_file: Some(untrusted.path().display().to_string()),
        },
        Timeouts::default(),
    );
    let pending = p
        .secret_at(Version::IdAtStage(&token, AWSPENDING))
        .await
        .unwrap();
    let r = wrong_ca
        .unwrap()
        .connect(&pending.endpoint(), "postgres", "x", &Password::new("y"))
        .await;
    assert!(
        matches!(r, Err(Error::Tls { .. })),
        "an unverifiable server must be an error: {r:?}"
    );

    // The rotation still completes.
    for step in STEPS {
        p.step(step, &token).await.unwrap();
    }
    p.login(&p.current().await).await.unwrap();
    p.cleanup().await;
}

/// A CA certificate that did not sign the server's certificate: the emulator's own.
fn unrelated_ca_pem() -> String {
    let emulator = kube_emulator::Emulator::start(kube_emulator::Config::default()).unwrap();
    emulator.ca_pem().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_current_secret_is_a_typed_error_that_names_no_value() {
    let p = Platform::new(RotationStrategy::SingleUser, None).await;
    p.provision().await;
    p.sm.put_secret_value()
        .secret_id(p.app_secret())
        .secret_string(r#"{"username": "u", "password": "leaky-value-123"}"#)
        .send()
        .await
        .unwrap();
    let token = p.start_rotation().await;
    let err = p
        .step(RotationStep::CreateSecret, &token)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MalformedSecret { .. }), "{err:?}");
    assert!(!err.to_string().contains("leaky-value-123"));
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rds_managed_master_password_that_rotated_mid_way_is_reread_and_retried() {
    let name = format!("rds!{}", unique("db"));
    let p = Platform::new(RotationStrategy::AlternatingUsers, Some(name)).await;
    p.provision().await;
    let token = p.start_rotation().await;
    p.step(RotationStep::CreateSecret, &token).await.unwrap();

    // RDS rotates the master: the database changes first, the secret a moment later.
    let new_master = format!("Rotated{}", token.replace('-', ""));
    superuser(&p.admin)
        .await
        .batch_execute(&format!(
            "ALTER ROLE \"{}\" PASSWORD '{}'",
            p.master_user,
            postgres_verifier(&new_master)
        ))
        .await
        .unwrap();
    let sm = p.sm.clone();
    let master_arn = p.spec.database.master_secret_arn.clone();
    let value = json!({"username": p.master_user, "password": new_master, "host": p.admin.host, "port": p.admin.port}).to_string();
    let late_update = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        sm.put_secret_value()
            .secret_id(master_arn)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    });
    p.step(RotationStep::SetSecret, &token)
        .await
        .expect("re-read the master secret and retried");
    late_update.await.unwrap();
    p.step(RotationStep::TestSecret, &token).await.unwrap();
    p.step(RotationStep::FinishSecret, &token).await.unwrap();
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_set_secret_invocations_do_not_corrupt_each_other() {
    let p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    p.provision().await;
    let token = p.start_rotation().await;
    p.step(RotationStep::CreateSecret, &token).await.unwrap();
    let (a, b, c) = tokio::join!(
        p.step(RotationStep::SetSecret, &token),
        p.step(RotationStep::SetSecret, &token),
        p.step(RotationStep::SetSecret, &token),
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    p.step(RotationStep::TestSecret, &token).await.unwrap();
    p.step(RotationStep::FinishSecret, &token).await.unwrap();
    p.login(&p.current().await).await.unwrap();
    p.cleanup().await;
}
