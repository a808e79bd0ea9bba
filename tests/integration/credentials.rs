//! Credentials: provisioning and rotation against moto (Secrets Manager, RDS), the
//! stack's PostgreSQL (TLS, scram-sha-256, log_statement=all) and the stack's real
//! kube-apiserver (as rotate-credentials' RBAC identity), driven the way
//! Secrets Manager drives a rotation.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::types::RotationRulesType;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD as BASE64_URL};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use platform_tests::database::{
    SeededDatabase, admin_tls, app_passwords, drop_database, seed_database, server_version,
    superuser,
};
use platform_tests::kube::{TestCluster, spec_yaml};
use platform_tests::tcp_proxy::TcpProxy;
use platform_tests::{PgAdmin, aws, pg_admin, unique};
use serde_json::json;
use signoz_control::credentials::secret_store::{AWSCURRENT, AWSPENDING, SecretVersions, Version};
use signoz_control::credentials::values::{AppSecret, Endpoint, Password};
use signoz_control::credentials::{
    self, ClusterAccess, Context, Deadline, Error, PgTls, SecretStore, Timeouts,
    provision_database, run_rotation_step,
};
use signoz_control::events::{RotationRequest, RotationStep};
use signoz_control::spec::{
    DatabaseTls, PlatformSpec, RotationStrategy, SpecLocation, TlsMode, TlsNegotiation,
};
use tracing::instrument::WithSubscriber;

mod lockouts;
mod round_trips;

const UNDEPLOYED_LAMBDA: &str =
    "arn:aws:lambda:eu-west-1:123456789012:function:signoz-control-rotate-credentials";
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
    master_password: String,
}

impl Platform {
    async fn new(strategy: RotationStrategy, master_secret_name: Option<String>) -> Platform {
        let sdk = aws().await;
        let SeededDatabase {
            spec,
            admin,
            master_user,
            master_password,
            spec_file,
        } = seed_database(&sdk, "cred", strategy, master_secret_name).await;
        let sm = aws_sdk_secretsmanager::Client::new(&sdk);
        let location = SpecLocation::Path(spec_file.path().into());
        let deployment = platform_tests::Deployment::for_spec(&spec, &location);
        let mut ctx =
            Context::new(platform_tests::aws_as(credentials::FUNCTION, &deployment).await);
        ctx.cluster = ClusterAccess::Disabled;
        ctx.rotation_lambda_arn = Some(UNDEPLOYED_LAMBDA.into());
        ctx.spec_location = Some(location);
        Platform {
            spec,
            ctx,
            sm,
            admin,
            spec_file,
            master_user,
            master_password,
        }
    }

    fn app_secret(&self) -> &str {
        &self.spec.database.app_secret_name
    }

    /// The app secret's versions and their stages, as Secrets Manager describes them.
    async fn versions(&self) -> SecretVersions {
        self.ctx
            .secrets
            .describe(self.app_secret())
            .await
            .unwrap()
            .expect("the app secret exists")
    }

    /// Moves the platform onto its own namespaces of the stack's API server (the spec
    /// file follows), creates its workloads, and hands off as rotate-credentials' identity.
    async fn on_cluster(&mut self) -> TestCluster {
        let cluster = TestCluster::new(self.spec.clone()).await;
        self.spec = cluster.spec.clone();
        std::fs::write(self.spec_file.path(), spec_yaml(&self.spec)).unwrap();
        cluster.arrange_workloads().await;
        self.ctx.cluster = ClusterAccess::Client(cluster.client(credentials::FUNCTION).await);
        cluster
    }

    /// Changes the master's password in the database only (as RDS's own rotation does first).
    async fn set_master_password_in_database(&self, password: &str) {
        superuser(&self.admin)
            .await
            .batch_execute(&format!(
                "ALTER ROLE \"{}\" PASSWORD '{}'",
                self.master_user,
                postgres_verifier(password)
            ))
            .await
            .unwrap();
    }

    /// A connection as this platform's master to `dbname`.
    async fn master(&self, dbname: &str) -> tokio_postgres::Client {
        admin_tls(&self.admin)
            .connect(
                &Endpoint {
                    host: self.admin.host.clone(),
                    port: self.admin.port,
                },
                dbname,
                &self.master_user,
                &Password::new(self.master_password.clone()),
            )
            .await
            .expect("master connection")
    }

    /// What Secrets Manager does before calling createSecret: a new version with
    /// AWSPENDING and no value. Returns its token.
    async fn start_rotation(&self) -> String {
        self.start_rotation_of(self.app_secret()).await
    }

    async fn start_rotation_of(&self, secret: &str) -> String {
        // moto leaves the pending version, then fails looking the undeployed Lambda up.
        let _ = self
            .sm
            .rotate_secret()
            .secret_id(secret)
            .rotation_lambda_arn(UNDEPLOYED_LAMBDA)
            .rotation_rules(
                RotationRulesType::builder()
                    .automatically_after_days(30)
                    .build(),
            )
            .send()
            .await;
        let versions = SecretStore::new(self.sm.clone())
            .describe(secret)
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
        self.provision_spec(&self.spec).await
    }

    /// The context of the deployment whose app secret `spec` names, when that is not this
    /// platform's: each deployment's role reaches only its own app secret.
    async fn ctx_for(&self, spec: &PlatformSpec) -> Option<Context> {
        if spec.database.app_secret_name == self.spec.database.app_secret_name {
            return None;
        }
        let location = SpecLocation::Path(self.spec_file.path().into());
        let deployment = platform_tests::Deployment::for_spec(spec, &location);
        let mut ctx =
            Context::new(platform_tests::aws_as(credentials::FUNCTION, &deployment).await);
        ctx.cluster = ClusterAccess::Disabled;
        ctx.rotation_lambda_arn = self.ctx.rotation_lambda_arn.clone();
        ctx.spec_location = Some(location);
        Some(ctx)
    }

    async fn provision_spec(&self, spec: &PlatformSpec) -> Option<credentials::ProvisionOutcome> {
        let other = self.ctx_for(spec).await;
        let ctx = other.as_ref().unwrap_or(&self.ctx);
        match provision_database(ctx, spec, false, Deadline::default()).await {
            Ok(outcome) => Some(outcome),
            Err(Error::SecretsManager {
                op: "RotateSecret",
                reason,
            }) if reason.contains("Resource not found") => {
                let versions = ctx
                    .secrets
                    .describe(&spec.database.app_secret_name)
                    .await
                    .unwrap()
                    .unwrap();
                assert!(versions.rotation_enabled);
                assert_eq!(
                    versions.rotation_days,
                    Some(i64::from(spec.database.rotation_days))
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
        self.step_of(&self.spec, step, token, Deadline::default())
            .await
    }

    /// One step of the rotation of `spec`'s app secret, to finish before `deadline`.
    async fn step_of(
        &self,
        spec: &PlatformSpec,
        step: RotationStep,
        token: &str,
        deadline: Deadline,
    ) -> Result<credentials::StepOutcome, Error> {
        let other = self.ctx_for(spec).await;
        run_rotation_step(
            other.as_ref().unwrap_or(&self.ctx),
            spec,
            &RotationRequest {
                step,
                secret_id: spec.database.app_secret_name.clone(),
                token: token.into(),
                rotation_token: None,
            },
            deadline,
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
        self.secret_of(self.app_secret(), version).await
    }

    async fn secret_of(&self, secret: &str, version: Version<'_>) -> Option<AppSecret> {
        // What the test observes, read with the admin's credentials.
        let text = SecretStore::new(self.sm.clone())
            .read(secret, version)
            .await
            .unwrap()?;
        Some(AppSecret::parse(secret, &text).unwrap())
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
        drop_database(&self.admin, &self.spec, &self.master_user).await;
        drop(self.spec_file);
    }
}

fn postgres_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// The ways a password could leak: as is, URL-encoded, base64 (standard and URL-safe).
fn password_forms(password: &str) -> Vec<(&'static str, String)> {
    let url_encoded: String = url::form_urlencoded::byte_serialize(password.as_bytes()).collect();
    vec![
        ("the password itself", password.to_string()),
        ("the URL-encoded password", url_encoded),
        ("the base64 password", BASE64.encode(password)),
        ("the URL-safe base64 password", BASE64_URL.encode(password)),
    ]
}

/// Captures what the code under test logs through `tracing`, formatted as Lambda's
/// JSON lines, for the future it is attached to.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let buffer = self.0.clone();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || CaptureWriter(buffer.clone()))
            .finish()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternating_users_rotate_twice_and_signoz_objects_stay_usable_by_whoever_is_current() {
    // Everything the functions log during the scenario, as Lambda's JSON lines, at every
    // level (an operator may turn debug logging on).
    let log = LogCapture::default();
    let (p, _cluster, used) = rotate_alternating_users_twice()
        .with_subscriber(log.subscriber())
        .await;
    let lines = log.text();
    assert!(
        lines.contains("moved AWSCURRENT") && lines.contains("handed the DSN to the cluster"),
        "the capture saw the rotation's logs"
    );
    let mut forms = Vec::new();
    for secret in used {
        let dsn = credentials::dsn::signoz_dsn(&secret, &p.spec.database);
        forms.extend(password_forms(secret.password.expose()));
        forms.push(("the DSN in base64", BASE64.encode(&dsn)));
        forms.push(("the app secret in base64", BASE64.encode(secret.to_json())));
    }
    forms.extend(password_forms(&p.master_password));
    assert_eq!(
        forms.len(),
        3 * 6 + 4,
        "three app passwords and the master's"
    );
    for (form, value) in &forms {
        assert!(
            !lines.contains(value.as_str()),
            "a secret reached the function's log as {form}"
        );
    }
    p.cleanup().await;
}

/// Provisions, then rotates twice (the first time through the handler, every step twice,
/// in both spellings), checking SigNoz's objects, the cluster hand-off and PostgreSQL's log.
/// Returns the three app secrets it used.
async fn rotate_alternating_users_twice() -> (Platform, TestCluster, Vec<AppSecret>) {
    let mut p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    // The hand-off goes to the stack's API server as rotate-credentials' own identity.
    let cluster = p.on_cluster().await;
    let kube = cluster.admin.clone();
    let ns = p.spec.cluster.namespace.clone();
    let statefulsets = Api::<StatefulSet>::namespaced(kube.clone(), &ns);

    p.provision().await;
    let provisioned = provision_database(&p.ctx, &p.spec, true, Deadline::default())
        .await
        .unwrap();
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
                Deadline::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{spelling}: {e}"));
        }
    }
    let second = p.current().await;
    assert_eq!(second.username, format!("{base_user}_clone"));
    let versions = p.versions().await;
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
    for password in app_passwords(&p.ctx.secrets, p.app_secret()).await {
        assert!(
            !log.contains(&password),
            "a password reached PostgreSQL's log"
        );
    }
    // Nor the verifiers the function sent (log_statement = all): each is exactly what
    // the server stores.
    let su = superuser(&p.admin).await;
    for user in [base_user.clone(), format!("{base_user}_clone")] {
        let verifier: String = su
            .query_one(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
                &[&user],
            )
            .await
            .unwrap()
            .get(0);
        assert!(verifier.starts_with("SCRAM-SHA-256$"), "{user}");
        assert!(
            !log.contains(&verifier),
            "the SCRAM verifier of {user} reached PostgreSQL's statement log"
        );
    }
    (p, cluster, vec![first, second, third])
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
    let version = SecretStore::new(p.sm.clone())
        .describe(&plain)
        .await
        .unwrap()
        .unwrap()
        .version_with(AWSCURRENT)
        .unwrap()
        .to_string();
    // The deployment of that secret (its role reaches only it) gets a rotation event.
    let mut plain_spec = p.spec.clone();
    plain_spec.database.app_secret_name = plain.clone();
    let disabled = p
        .step_of(
            &plain_spec,
            RotationStep::CreateSecret,
            &version,
            Deadline::default(),
        )
        .await;
    assert!(
        matches!(disabled, Err(Error::RotationDisabled { .. })),
        "{disabled:?}"
    );

    // An untrusted server: typed, and nothing lost. (Database down and TLS refused
    // inside setSecret: set_secret_with_the_database_down_or_refusing_tls_...)
    p.step(RotationStep::CreateSecret, &token).await.unwrap();
    let untrusted = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(untrusted.path(), unrelated_ca_pem()).unwrap();
    let wrong_ca = PgTls::from_spec(
        &DatabaseTls {
            mode: TlsMode::VerifyFull,
            ca_file: Some(untrusted.path().display().to_string()),
            negotiation: Default::default(),
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

/// A CA certificate that did not sign the server's certificate: the stack's kube client CA.
fn unrelated_ca_pem() -> String {
    std::fs::read_to_string(platform_tests::stack_var("KUBE_CLIENT_CA_CERT")).unwrap()
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
    p.set_master_password_in_database(&new_master).await;
    // Too little time left to pause and retry: a typed, retryable error at once instead
    // of a pause that Lambda would cut short.
    let started = Instant::now();
    let short = p
        .step_of(
            &p.spec,
            RotationStep::SetSecret,
            &token,
            Deadline::after(Duration::from_millis(1300)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            short,
            Error::DeadlineNear {
                op: "master login retry",
                ..
            }
        ),
        "{short:?}"
    );
    assert!(short.retryable());
    assert!(started.elapsed() < Duration::from_millis(1300));

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

/// A TCP relay on loopback: forwards every connection to `target` and keeps a copy of
/// what clients sent, so a test can reach a server under another address or see the
/// requests a client made. Stops when dropped.
struct Relay {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(bind_ip: &str, target: SocketAddr) -> Relay {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind((bind_ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let copy = sent.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let copy = copy.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = server.into_split();
                    let upstream = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                            copy.lock().unwrap().extend_from_slice(&buf[..n]);
                            if to_server.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = to_server.shutdown().await;
                    };
                    let downstream = async {
                        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                        let _ = to_client.shutdown().await;
                    };
                    tokio::join!(upstream, downstream);
                });
            }
        });
        Relay { addr, sent, task }
    }

    fn sent_text(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A PostgreSQL look-alike that answers every SSLRequest with `N` (no TLS).
async fn listener_refusing_tls() -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 8];
            let _ = socket.read_exact(&mut request).await;
            let _ = socket.write_all(b"N").await;
        }
    });
    (port, task)
}

impl Platform {
    /// Points the master secret at `port` on the stack's host (a new AWSCURRENT version).
    async fn point_master_at(&self, port: u16) {
        self.sm
            .put_secret_value()
            .secret_id(&self.spec.database.master_secret_arn)
            .secret_string(
                json!({"username": self.master_user, "password": self.master_password,
                       "host": self.admin.host, "port": port})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_secret_with_the_database_down_or_refusing_tls_fails_typed_keeps_pending_and_resumes() {
    let p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    p.provision().await;
    let token = p.start_rotation().await;
    p.step(RotationStep::CreateSecret, &token).await.unwrap();
    let staged = p
        .secret_at(Version::IdAtStage(&token, AWSPENDING))
        .await
        .unwrap();

    // The database is down: the master's endpoint is a closed port.
    p.point_master_at(closed_port()).await;
    let down = p.step(RotationStep::SetSecret, &token).await.unwrap_err();
    assert!(matches!(down, Error::Network { .. }), "{down:?}");
    assert!(down.retryable(), "Secrets Manager's retry may find it up");

    // Something answers but refuses TLS: never fall back to plaintext.
    let (no_tls_port, no_tls) = listener_refusing_tls().await;
    p.point_master_at(no_tls_port).await;
    let refused = p.step(RotationStep::SetSecret, &token).await.unwrap_err();
    assert!(matches!(refused, Error::Tls { .. }), "{refused:?}");
    assert!(!refused.retryable());
    no_tls.abort();

    // Too little of the invocation left for a database attempt: typed and retryable.
    p.point_master_at(p.admin.port).await;
    let started = Instant::now();
    let late = p
        .step_of(
            &p.spec,
            RotationStep::SetSecret,
            &token,
            Deadline::after(Duration::from_millis(700)),
        )
        .await
        .unwrap_err();
    assert!(matches!(late, Error::DeadlineNear { .. }), "{late:?}");
    assert!(late.retryable());
    assert!(started.elapsed() < Duration::from_millis(700));

    // Nothing was lost: the same pending version, still AWSPENDING, and the old one in use.
    let still = p
        .secret_at(Version::IdAtStage(&token, AWSPENDING))
        .await
        .expect("AWSPENDING stays staged");
    assert_eq!(still, staged);
    p.login(&p.current().await)
        .await
        .expect("AWSCURRENT keeps logging in");
    assert!(
        matches!(p.login(&staged).await, Err(Error::Authentication { .. })),
        "the pending password was not set by a failed attempt"
    );

    // The fault clears: Secrets Manager's retry completes the rotation.
    for step in [
        RotationStep::SetSecret,
        RotationStep::TestSecret,
        RotationStep::FinishSecret,
    ] {
        p.step(step, &token).await.unwrap();
    }
    assert_eq!(p.current().await, staged);
    p.login(&staged).await.unwrap();
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_accepts_the_servers_certificate_under_a_name_it_lacks_and_verify_full_does_not()
{
    let admin = pg_admin();
    // 127.0.0.2 is loopback too, but not among the certificate's names (localhost, 127.0.0.1).
    let target: SocketAddr = format!("{}:{}", admin.host, admin.port).parse().unwrap();
    let relay = Relay::start("127.0.0.2", target).await;
    let unnamed = Endpoint {
        host: "127.0.0.2".into(),
        port: relay.addr.port(),
    };
    let named = Endpoint {
        host: "localhost".into(),
        port: admin.port,
    };
    let tls = |mode, ca_file: &str| {
        PgTls::from_spec(
            &DatabaseTls {
                mode,
                ca_file: Some(ca_file.into()),
                negotiation: Default::default(),
            },
            Timeouts::default(),
        )
        .unwrap()
    };
    let password = Password::new(admin.password.clone());
    let login = |tls: PgTls, endpoint: Endpoint| {
        let (user, password) = (admin.user.clone(), password.clone());
        async move { tls.connect(&endpoint, "postgres", &user, &password).await }
    };

    let full = login(tls(TlsMode::VerifyFull, &admin.ca_file), unnamed.clone()).await;
    match &full {
        Err(Error::Tls { reason }) => assert!(reason.contains("not valid for name"), "{reason}"),
        other => panic!("verify-full must refuse a name the certificate lacks: {other:?}"),
    }
    let ca = login(tls(TlsMode::VerifyCa, &admin.ca_file), unnamed.clone())
        .await
        .expect("verify-ca checks the chain only");
    let on_tls: bool = ca
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(on_tls);
    login(tls(TlsMode::VerifyFull, &admin.ca_file), named)
        .await
        .expect("verify-full accepts a name in the certificate");

    // verify-ca still checks the chain: another CA is refused.
    let other_ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other_ca.path(), unrelated_ca_pem()).unwrap();
    let wrong = login(
        tls(TlsMode::VerifyCa, &other_ca.path().display().to_string()),
        unnamed,
    )
    .await;
    assert!(matches!(wrong, Err(Error::Tls { .. })), "{wrong:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotation_token_secrets_manager_sends_reaches_put_secret_value() {
    let mut p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    p.provision().await;
    let token = p.start_rotation().await;
    // Watch what the function sends to Secrets Manager (moto accepts and ignores the field).
    let moto: url::Url = platform_tests::stack_var("AWS_ENDPOINT_URL")
        .parse()
        .unwrap();
    let moto = moto.socket_addrs(|| None).unwrap()[0];
    let relay = Relay::start("127.0.0.1", moto).await;
    // A service-level endpoint: the SdkConfig's would lose to `AWS_ENDPOINT_URL`.
    let watched = aws_sdk_secretsmanager::config::Builder::from(&p.ctx.sdk)
        .endpoint_url(format!("http://{}", relay.addr))
        .build();
    p.ctx.secrets = SecretStore::new(aws_sdk_secretsmanager::Client::from_conf(watched));
    let rotation_token = format!("rotation-token-{}", unique("rt"));
    credentials::handle(
        &p.ctx,
        json!({"Step": "createSecret", "SecretId": p.app_secret(),
               "ClientRequestToken": token, "RotationToken": rotation_token}),
        Deadline::default(),
    )
    .await
    .unwrap();
    let sent = relay.sent_text();
    let put = sent
        .split("POST ")
        .find(|request| {
            request
                .to_ascii_lowercase()
                .contains("x-amz-target: secretsmanager.putsecretvalue")
        })
        .expect("createSecret called PutSecretValue");
    assert!(
        put.contains(&format!("\"RotationToken\":\"{rotation_token}\"")),
        "PutSecretValue carries the RotationToken"
    );
    assert!(put.contains(&format!("\"ClientRequestToken\":\"{token}\"")));
    let pending = p.secret_at(Version::IdAtStage(&token, AWSPENDING)).await;
    assert!(pending.is_some(), "the pending value was stored");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_secrets_on_one_owner_role_rotate_concurrently_without_corrupting_each_other() {
    let p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    // A second SigNoz credential (say, a second SigNoz instance) on the same database,
    // the same owner role and the same master: its own secret and login roles.
    let mut other = p.spec.clone();
    other.database.app_secret_name = format!("{}-other", p.spec.database.app_secret_name);
    other.database.username = format!("{}_other", p.spec.database.username);
    // Its deployment creates its app secret empty, as this platform's did.
    p.sm.create_secret()
        .name(&other.database.app_secret_name)
        .send()
        .await
        .unwrap();
    let specs = [&p.spec, &other];
    for spec in specs {
        p.provision_spec(spec).await;
    }
    let owner = &p.spec.database.owner_role;
    for (i, spec) in specs.iter().enumerate() {
        let secret = p
            .secret_of(&spec.database.app_secret_name, Version::Stage(AWSCURRENT))
            .await
            .unwrap();
        p.login(&secret)
            .await
            .unwrap()
            .batch_execute(&format!("CREATE TABLE made_at_start_{i} (id int)"))
            .await
            .unwrap();
    }

    for round in 0..2 {
        let tokens = [
            p.start_rotation_of(&p.spec.database.app_secret_name).await,
            p.start_rotation_of(&other.database.app_secret_name).await,
        ];
        for step in STEPS {
            // Both rotations at once; setSecret also races a retry of itself.
            let run = |i: usize| p.step_of(specs[i], step, &tokens[i], Deadline::default());
            if step == RotationStep::SetSecret {
                let (a, a_again, b, b_again) = tokio::join!(run(0), run(0), run(1), run(1));
                for (which, result) in [
                    ("a", a),
                    ("a again", a_again),
                    ("b", b),
                    ("b again", b_again),
                ] {
                    result.unwrap_or_else(|e| panic!("round {round} setSecret {which}: {e}"));
                }
            } else {
                let (a, b) = tokio::join!(run(0), run(1));
                a.unwrap_or_else(|e| panic!("round {round} {step} a: {e}"));
                b.unwrap_or_else(|e| panic!("round {round} {step} b: {e}"));
            }
        }
        for (i, spec) in specs.iter().enumerate() {
            let secret_name = &spec.database.app_secret_name;
            let current = p
                .secret_of(secret_name, Version::Stage(AWSCURRENT))
                .await
                .unwrap();
            let versions = SecretStore::new(p.sm.clone())
                .describe(secret_name)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(versions.version_with(AWSCURRENT), Some(tokens[i].as_str()));
            assert_eq!(versions.version_with(AWSPENDING), None);
            let client = p.login(&current).await.unwrap_or_else(|e| {
                panic!("round {round}: AWSCURRENT of {secret_name} logs in: {e}")
            });
            client
                .batch_execute(&format!(
                    "CREATE TABLE made_in_round_{round}_by_{i} (id int);
                     INSERT INTO made_at_start_{} VALUES ({round})",
                    1 - i
                ))
                .await
                .unwrap();
        }
        let reader = p.login(&p.current().await).await.unwrap();
        let foreign: Vec<String> = reader
            .query(
                "SELECT c.relname::text || ' owned by ' || pg_get_userbyid(c.relowner)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) <> $1",
                &[owner],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert!(
            foreign.is_empty(),
            "round {round}: not owned by {owner}: {foreign:?}"
        );
        let tables: i64 = reader
            .query_one(
                // The probe ledger stays (each login reads what the other wrote).
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> $1",
                &[&credentials::postgres::PROBE_LEDGER],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            tables,
            2 + 2 * (round + 1),
            "round {round}: no probe table left behind"
        );
    }
    let su = superuser(&p.admin).await;
    let _ = su
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            p.spec.database.database_name
        ))
        .await;
    for role in [
        other.database.username.clone(),
        format!("{}_clone", other.database.username),
    ] {
        let _ = su
            .batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""))
            .await;
    }
    p.cleanup().await;
}

/// A login costs the round trips the protocol needs and no more: SSLRequest, the TLS 1.3
/// greeting (ClientHello → ServerHello..Finished), the client's Finished with the startup
/// message, the two SCRAM exchanges; then one per query. PostgreSQL up to 17 (RDS too)
/// accepts only P-256 for key exchange by default (`ssl_ecdh_curve = prime256v1`, checked
/// here), so a client whose first key share is X25519 pays a HelloRetryRequest on top.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_costs_five_round_trips_and_no_hello_retry() {
    let admin = pg_admin();
    let curve = superuser(&admin)
        .await
        .query_one("SHOW ssl_ecdh_curve", &[])
        .await
        .unwrap()
        .get::<_, String>(0);
    // PostgreSQL 15 (and RDS up to 17): `prime256v1` alone; 18: `X25519:prime256v1`.
    assert!(
        curve.split(':').any(|group| group == "prime256v1"),
        "the server accepts P-256: {curve}"
    );
    let (client, proxy) = login_through_proxy(&admin, TlsNegotiation::Postgres).await;
    let client = client.unwrap();
    // The statement timeout travels in the startup message, not as a `SET` after it.
    let timeout = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap();
    assert_ne!(timeout.get::<_, String>(0), "0", "bounded");
    let trips = proxy.round_trips();
    assert_eq!(proxy.connections(), 1);
    assert_eq!(
        trips.len(),
        7,
        "5 to log in, 2 for the query (prepare, execute): {trips:?}"
    );
}

/// What a login needs no credentials for (the SSLRequest, the TLS handshake) can be done
/// before they are known: setSecret opens its sessions while its reads are out. A login
/// on such a session costs the three round trips left (the client's Finished with the
/// startup message, the two SCRAM exchanges) on the same connection; a session opened to
/// another endpoint is left alone, one that failed to open fails its login as it was,
/// without a second attempt, and one closed while it waited is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_a_session_opened_ahead_costs_only_the_round_trips_of_its_credentials() {
    let admin = pg_admin();
    let (through, proxy) = proxy_to(&admin).await;
    let tls = chain_only(&admin, TlsNegotiation::Postgres);
    let password = Password::new(admin.password.clone());
    let opened = tls.open(&through).await.unwrap();
    let login_started = Instant::now();
    let _session = tls
        .with_opened(vec![(through.clone(), Ok(opened))])
        .connect(&through, "postgres", &admin.user, &password)
        .await
        .unwrap();
    let trips = proxy.round_trips();
    // The client's Finished leaves as the handshake ends and the startup message joins
    // it: the third round trip is the login's.
    let before = trips.iter().filter(|t| t.end < login_started).count();
    assert_eq!(proxy.connections(), 1, "the login used the session");
    assert_eq!(
        (before, trips.len() - before),
        (2, 3),
        "SSLRequest and handshake ahead, the login's three after: {trips:?}"
    );

    // Opened to another endpoint: the login opens its own.
    let elsewhere = Endpoint {
        host: admin.host.clone(),
        port: admin.port,
    };
    let tls = chain_only(&admin, TlsNegotiation::Postgres);
    let other = tls.open(&elsewhere).await.unwrap();
    tls.with_opened(vec![(elsewhere, Ok(other))])
        .connect(&through, "postgres", &admin.user, &password)
        .await
        .unwrap();
    assert_eq!(proxy.connections(), 2);

    // A session that failed to open is that login's failure.
    let failed = chain_only(&admin, TlsNegotiation::Postgres)
        .with_opened(vec![(
            through.clone(),
            Err(Error::Network {
                reason: "refused ahead".into(),
            }),
        )])
        .connect(&through, "postgres", &admin.user, &password)
        .await;
    assert!(
        matches!(&failed, Err(Error::Network { reason }) if reason == "refused ahead"),
        "{failed:?}"
    );
    assert_eq!(proxy.connections(), 2, "no second attempt");

    // One closed while it waited (the server's `authentication_timeout`, a dropped path):
    // the login opens a new session.
    let tls = chain_only(&admin, TlsNegotiation::Postgres);
    let stale = tls.open(&through).await.unwrap();
    proxy.sever();
    let client = tls
        .with_opened(vec![(through.clone(), Ok(stale))])
        .connect(&through, "postgres", &admin.user, &password)
        .await
        .unwrap();
    client.simple_query("SELECT 1").await.unwrap();
    assert_eq!(proxy.connections(), 4, "the closed session, then a new one");
}

/// `database.tls.negotiation: direct`, libpq's `sslnegotiation=direct` (PostgreSQL 17's
/// `ProcessSSLStartup`: a first byte of 0x16 is a TLS handshake, which must name ALPN
/// `postgresql`): no SSLRequest, so a login costs four round trips. A server before 17
/// reads the ClientHello as a startup packet's length and hangs up; the error says
/// which setting asked for it. The test's PostgreSQL 15 pass checks the refusal, its
/// PostgreSQL 18 pass the saving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_negotiation_saves_a_round_trip_from_17_and_names_the_setting_before() {
    let admin = pg_admin();
    let (client, proxy) = login_through_proxy(&admin, TlsNegotiation::Direct).await;
    if server_version(&admin).await < 170000 {
        let text = client.unwrap_err().to_string();
        assert!(
            text.contains("database.tls.negotiation is direct") && text.contains("17"),
            "{text}"
        );
        return;
    }
    // Counted while the session is open (its hang-up is no round trip): the login's and
    // the query's one.
    let login = |(client, proxy): (Result<tokio_postgres::Client, Error>, TcpProxy)| async move {
        let client = client.unwrap();
        client.simple_query("SELECT 1").await.unwrap();
        let trips = proxy.round_trips().len() - 1;
        drop(client);
        trips
    };
    let direct = login((client, proxy)).await;
    let asked = login(login_through_proxy(&admin, TlsNegotiation::Postgres).await).await;
    assert_eq!(
        (asked, direct),
        (5, 4),
        "a login, the SSLRequest first and not"
    );
}

/// The stack's superuser logs in through a proxy that records each round trip (5 ms
/// each way), verifying the server's chain only (the proxy's address is not its name).
async fn login_through_proxy(
    admin: &PgAdmin,
    negotiation: TlsNegotiation,
) -> (Result<tokio_postgres::Client, Error>, TcpProxy) {
    let (through, proxy) = proxy_to(admin).await;
    let client = chain_only(admin, negotiation)
        .connect(
            &through,
            "postgres",
            &admin.user,
            &Password::new(admin.password.clone()),
        )
        .await;
    (client, proxy)
}

/// A proxy to the stack's PostgreSQL that records each round trip (5 ms each way).
async fn proxy_to(admin: &PgAdmin) -> (Endpoint, TcpProxy) {
    let proxy = TcpProxy::start(
        &format!("{}:{}", admin.host, admin.port),
        Duration::from_millis(5),
    )
    .await
    .unwrap();
    let through = Endpoint {
        host: "127.0.0.1".into(),
        port: proxy.addr.port(),
    };
    (through, proxy)
}

/// TLS verifying the stack's chain only (a proxy's address is not the server's name).
fn chain_only(admin: &PgAdmin, negotiation: TlsNegotiation) -> PgTls {
    PgTls::from_spec(
        &DatabaseTls {
            mode: TlsMode::VerifyCa,
            ca_file: Some(admin.ca_file.clone()),
            negotiation,
        },
        Timeouts::default(),
    )
    .unwrap()
}
