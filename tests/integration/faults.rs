//! Faults from AWS: every AWS call goes through a proxy in front of moto that answers
//! with throttling, 5xx errors or dropped connections. Throttled calls are retried with
//! backoff inside the time budget; persistent faults end in a typed, retryable error;
//! a reconcile cut off mid-way is completed by the next invocation.

use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::types::RotationRulesType;
use platform_tests::create_buckets;
use platform_tests::database::{SeededDatabase, admin_tls, drop_database, seed_database};
use platform_tests::fault_proxy::{Fault, FaultProxy, Match, Times};
use platform_tests::signoz::{SignozServer, start_signoz};
use platform_tests::{PgAdmin, aws, stack_var, unique};
use serde_json::{Value, json};
use signoz_control::cold_storage::plan::{self, RetentionHighWater};
use signoz_control::cold_storage::ttl::TtlPatience;
use signoz_control::credentials::secret_store::{AWSCURRENT, AWSPENDING, SecretVersions, Version};
use signoz_control::credentials::{
    self, ClusterAccess, Deadline, provision_database, run_rotation_step,
};
use signoz_control::events::{RotationRequest, RotationStep};
use signoz_control::spec::{EXAMPLE_SPEC, PlatformSpec, RotationStrategy, SpecLocation};
use signoz_control::state::StateStore;
use signoz_control::{aws::MAX_ATTEMPTS, cold_storage};

/// The shortest function timeout (`functions.json`): every retried call must fit in it.
const BUDGET: Duration = Duration::from_secs(60);

/// Clients whose every call goes through `proxy`. The endpoint is set per service:
/// `AWS_ENDPOINT_URL` in the environment would win over one set on the `SdkConfig`.
pub(crate) struct Via {
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub rds: aws_sdk_rds::Client,
}

pub(crate) fn via(proxy: &FaultProxy, sdk: &aws_config::SdkConfig) -> Via {
    Via {
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .endpoint_url(&proxy.url)
                .force_path_style(true)
                .build(),
        ),
        secrets: aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(sdk)
                .endpoint_url(&proxy.url)
                .build(),
        ),
        rds: aws_sdk_rds::Client::from_conf(
            aws_sdk_rds::config::Builder::from(sdk)
                .endpoint_url(&proxy.url)
                .build(),
        ),
    }
}

pub(crate) async fn start_proxy() -> FaultProxy {
    FaultProxy::start(&stack_var("AWS_ENDPOINT_URL")).await
}

// ---------- cold storage ----------

/// A cold-storage platform (fresh buckets, API-key secret, fake SigNoz) whose function
/// reaches AWS through a fault proxy.
pub(crate) struct ColdPlatform {
    pub ctx: cold_storage::Context,
    pub proxy: FaultProxy,
    pub direct: aws_sdk_s3::Client,
    pub cold: String,
    pub state_bucket: String,
    pub api_key_secret: String,
    pub signoz: SignozServer,
    /// The names its function's role is scoped to.
    pub deployment: platform_tests::Deployment,
}

impl ColdPlatform {
    /// Everything created; the admin API key stored is `api_key`.
    pub(crate) async fn new(api_key: &str) -> ColdPlatform {
        let config = aws().await;
        let direct = signoz_control::aws::s3_client(&config);
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        let (cold, state_bucket, config_bucket) =
            (unique("cold"), unique("state"), unique("config"));
        create_buckets(&direct, &[&cold, &state_bucket, &config_bucket]).await;
        let secret = unique("signoz-api-key");
        secrets
            .create_secret()
            .name(&secret)
            .secret_string(json!({ "api_key": api_key }).to_string())
            .send()
            .await
            .unwrap();
        let signoz = start_signoz(api_key).await;
        // moto reports the minimum object size as 128K whatever was written, so that
        // choice keeps "no write when converged" checkable (DESIGN.md, known quirks).
        let text = EXAMPLE_SPEC
            .replace("acme-signoz-cold", &cold)
            .replace("acme-signoz-control", &state_bucket)
            .replace(platform_tests::EXAMPLE_TTL_API_URL, &signoz.url)
            .replace("signoz/admin-api-key", &secret)
            .replace("varies_by_storage_class", "all_storage_classes_128k");
        direct
            .put_object()
            .bucket(&config_bucket)
            .key("platform.yaml")
            .body(text.clone().into_bytes().into())
            .send()
            .await
            .unwrap();
        let proxy = start_proxy().await;
        let location = SpecLocation::S3 {
            bucket: config_bucket,
            key: "platform.yaml".into(),
        };
        let deployment = platform_tests::Deployment::for_spec_text(&text, &location);
        let role = platform_tests::aws_as(cold_storage::FUNCTION, &deployment).await;
        let mut ctx = cold_storage::Context::new(&role, location);
        let clients = via(&proxy, &role);
        ctx.s3 = clients.s3;
        ctx.secrets = clients.secrets;
        ctx.ttl_patience = TtlPatience {
            attempts: 3,
            retry_delay: Duration::from_millis(20),
            polls: 2,
            poll_delay: Duration::from_millis(20),
        };
        ColdPlatform {
            ctx,
            proxy,
            direct,
            cold,
            state_bucket,
            api_key_secret: secret,
            signoz,
            deployment,
        }
    }

    /// One scheduled reconcile.
    pub(crate) async fn reconcile(&self) -> signoz_control::Result<Value> {
        cold_storage::handle(
            &self.ctx,
            serde_json::from_str(include_str!("../../events/schedule.json")).unwrap(),
        )
        .await
    }

    /// Bucket-level write calls on the cold bucket that reached moto.
    fn cold_writes(&self) -> usize {
        let prefix = format!("/{}/?", self.cold);
        self.proxy
            .seen()
            .iter()
            .filter(|s| s.method != "GET" && s.path.starts_with(&prefix) && s.fault.is_none())
            .count()
    }

    fn faults_answered(&self) -> usize {
        self.proxy
            .seen()
            .iter()
            .filter(|s| s.fault.is_some())
            .count()
    }

    /// The plan against the bucket as moto holds it now, read without the proxy.
    async fn remaining_plan(&self) -> Vec<&'static str> {
        let spec = signoz_control::spec::load_spec(&self.ctx.spec_location, &self.direct)
            .await
            .unwrap()
            .spec;
        let observed = cold_storage::apply::observe_bucket(&self.direct, &self.cold)
            .await
            .unwrap();
        let memory = StateStore::new(self.direct.clone(), &self.state_bucket, "state/")
            .load::<RetentionHighWater>(RetentionHighWater::KEY)
            .await
            .unwrap()
            .0
            .unwrap_or_default();
        plan::plan_bucket_posture(&spec, &observed, &memory)
            .iter()
            .map(|c| c.resource)
            .collect()
    }

    fn lifecycle(&self) -> String {
        format!("/{}/?lifecycle", self.cold)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_rides_out_throttling_5xx_and_dropped_connections_within_the_budget() {
    let p = ColdPlatform::new("signoz-admin-key-faults").await;
    let cold = p.cold.clone();
    p.proxy.inject(
        Match::s3("GET", p.lifecycle()),
        Fault::SlowDown,
        Times::next(2),
    );
    p.proxy.inject(
        Match::s3("PUT", p.lifecycle()),
        Fault::SlowDown,
        Times::next(2),
    );
    p.proxy.inject(
        Match::s3("PUT", format!("/{cold}/?encryption")),
        Fault::InternalError,
        Times::next(1),
    );
    p.proxy.inject(
        Match::s3("PUT", format!("/{cold}/?policy")),
        Fault::DropConnection,
        Times::next(1),
    );
    p.proxy.inject(
        Match::operation("secretsmanager.GetSecretValue"),
        Fault::Throttling,
        Times::next(2),
    );
    p.proxy.inject(
        Match::s3("PUT", format!("/{}/", p.state_bucket)),
        Fault::SlowDown,
        Times::next(1),
    );

    let started = Instant::now();
    let summary = p.reconcile().await.expect("faults within the retry budget");
    let took = started.elapsed();

    assert_eq!(p.faults_answered(), 9, "every injected fault was hit");
    assert!(took < BUDGET / 2, "retries took {took:?}");
    assert_eq!(summary["changes"].as_array().unwrap().len(), 4);
    assert!(p.remaining_plan().await.is_empty(), "bucket converged");
    let state = StateStore::new(p.direct.clone(), &p.state_bucket, "state/");
    let (memory, _) = state
        .load::<RetentionHighWater>(RetentionHighWater::KEY)
        .await
        .unwrap();
    assert_eq!(memory.unwrap().cold_days["metrics"], 365);
    assert_eq!(
        p.signoz.with(|s| s.in_force_days("metrics")),
        (395, Some(30)),
        "TTLs applied"
    );

    let lifecycle_puts = p
        .proxy
        .seen()
        .iter()
        .filter(|s| s.method == "PUT" && s.path.starts_with(&p.lifecycle()))
        .count();
    assert_eq!(lifecycle_puts, 3, "two throttled attempts, then success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_throttling_ends_in_a_typed_retryable_error_after_bounded_attempts() {
    let p = ColdPlatform::new("signoz-admin-key-faults").await;
    p.proxy.inject(
        Match::s3("GET", p.lifecycle()),
        Fault::SlowDown,
        Times::always(),
    );
    let started = Instant::now();
    let err = p.reconcile().await.expect_err("S3 never stops throttling");
    let took = started.elapsed();

    let signoz_control::Error::ColdStorage(e) = &err else {
        panic!("expected a cold-storage error, got {err}");
    };
    assert!(
        matches!(e, cold_storage::Error::BucketCall { operation: "GetBucketLifecycleConfiguration", reason } if reason.starts_with("SlowDown")),
        "{e}"
    );
    assert!(e.retryable(), "throttling is worth retrying later");
    let attempts: Vec<Instant> = p
        .proxy
        .seen()
        .iter()
        .filter(|s| s.path.starts_with(&p.lifecycle()))
        .map(|s| s.at)
        .collect();
    assert_eq!(attempts.len(), MAX_ATTEMPTS as usize);
    // Full-jitter backoff between the attempts: each pause is random up to 200 ms, 400 ms,
    // 800 ms, 1.6 s, so they cannot all be near zero, and never exceed 3 s together.
    let spread = attempts[attempts.len() - 1] - attempts[0];
    assert!(
        spread >= Duration::from_millis(10),
        "no backoff: {spread:?}"
    );
    assert!(
        spread <= Duration::from_secs(4),
        "backoff beyond its cap: {spread:?}"
    );
    assert!(took < BUDGET / 2, "gave up after {took:?}");
    assert_eq!(p.cold_writes(), 0, "nothing written after a failed read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_cut_off_at_its_third_write_is_completed_by_the_next_one() {
    let p = ColdPlatform::new("signoz-admin-key-faults").await;
    // The third write to the cold bucket fails on every attempt.
    p.proxy.inject(
        Match::s3("PUT", format!("/{}/?", p.cold)),
        Fault::InternalError,
        Times {
            skip: 2,
            count: u32::MAX,
        },
    );
    let err = p
        .reconcile()
        .await
        .expect_err("the third write never lands");
    assert!(
        matches!(&err, signoz_control::Error::ColdStorage(e) if e.retryable()),
        "{err}"
    );
    assert_eq!(p.cold_writes(), 2, "two writes landed before the fault");
    assert_eq!(p.remaining_plan().await.len(), 2, "two writes still to do");

    p.proxy.heal();
    p.proxy.clear_seen();
    let summary = p.reconcile().await.expect("the next invocation completes");
    assert_eq!(summary["changes"].as_array().unwrap().len(), 2);
    assert_eq!(p.cold_writes(), 2, "only the missing writes");
    assert!(p.remaining_plan().await.is_empty());

    p.proxy.clear_seen();
    let summary = p.reconcile().await.unwrap();
    assert_eq!(summary["changes"], json!([]));
    assert_eq!(p.cold_writes(), 0, "a converged bucket gets no write");
}

// ---------- credentials ----------

pub(crate) const UNDEPLOYED_LAMBDA: &str =
    "arn:aws:lambda:eu-west-1:123456789012:function:signoz-control-rotate-credentials";

pub(crate) const STEPS: [RotationStep; 4] = [
    RotationStep::CreateSecret,
    RotationStep::SetSecret,
    RotationStep::TestSecret,
    RotationStep::FinishSecret,
];

/// One SigNoz database on the shared PostgreSQL (own master role, master secret, moto RDS
/// instance), its function reaching AWS through a fault proxy.
pub(crate) struct CredPlatform {
    pub spec: PlatformSpec,
    pub ctx: credentials::Context,
    pub proxy: FaultProxy,
    pub admin: PgAdmin,
    pub master_user: String,
    pub master_password: String,
    /// The spec the context reads; deleted when the platform is dropped.
    _spec_file: tempfile::NamedTempFile,
}

impl CredPlatform {
    pub(crate) async fn new(strategy: RotationStrategy) -> CredPlatform {
        let sdk = aws().await;
        let SeededDatabase {
            spec,
            admin,
            master_user,
            master_password,
            spec_file,
        } = seed_database(&sdk, "flt", strategy, None).await;
        let proxy = start_proxy().await;
        let location = SpecLocation::Path(spec_file.path().into());
        let deployment = platform_tests::Deployment::for_spec(&spec, &location);
        let role = platform_tests::aws_as(credentials::FUNCTION, &deployment).await;
        let mut ctx = credentials::Context::new(role.clone());
        let clients = via(&proxy, &role);
        ctx.s3 = clients.s3;
        ctx.secrets = credentials::SecretStore::new(clients.secrets);
        ctx.rds = clients.rds.into();
        ctx.cluster = ClusterAccess::Disabled;
        ctx.rotation_lambda_arn = Some(UNDEPLOYED_LAMBDA.into());
        ctx.spec_location = Some(location);
        CredPlatform {
            spec,
            ctx,
            proxy,
            admin,
            master_user,
            master_password,
            _spec_file: spec_file,
        }
    }

    pub(crate) fn app_secret(&self) -> &str {
        &self.spec.database.app_secret_name
    }

    /// Provisions; moto enables rotation, then fails looking the undeployed Lambda up,
    /// which is accepted.
    pub(crate) async fn provision(&self) {
        match provision_database(&self.ctx, &self.spec, false, deadline()).await {
            Ok(_) => {}
            Err(credentials::Error::SecretsManager {
                op: "RotateSecret",
                reason,
            }) if reason.contains("Resource not found") => {}
            Err(e) => panic!("provisioning failed: {e}"),
        }
    }

    /// What Secrets Manager does before createSecret; returns the pending version's token.
    pub(crate) async fn start_rotation(&self) -> String {
        let _ = aws_sdk_secretsmanager::Client::new(&aws().await)
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
        self.versions()
            .await
            .version_with(AWSPENDING)
            .expect("a pending version")
            .to_string()
    }

    pub(crate) async fn step(
        &self,
        step: RotationStep,
        token: &str,
    ) -> Result<credentials::StepOutcome, credentials::Error> {
        let request = RotationRequest {
            step,
            secret_id: self.app_secret().into(),
            token: token.into(),
            rotation_token: None,
        };
        run_rotation_step(&self.ctx, &self.spec, &request, deadline()).await
    }

    /// The app secret's versions and their stages, as Secrets Manager describes them.
    pub(crate) async fn versions(&self) -> SecretVersions {
        self.ctx
            .secrets
            .describe(self.app_secret())
            .await
            .unwrap()
            .expect("the app secret exists")
    }

    pub(crate) async fn current_version(&self) -> String {
        self.versions()
            .await
            .version_with(AWSCURRENT)
            .unwrap()
            .to_string()
    }

    /// Every password Secrets Manager holds for the app secret.
    pub(crate) async fn app_passwords(&self) -> Vec<String> {
        platform_tests::database::app_passwords(&self.ctx.secrets, self.app_secret()).await
    }

    pub(crate) async fn cleanup(self) {
        drop_database(&self.admin, &self.spec, &self.master_user).await;
    }
}

pub(crate) fn deadline() -> Deadline {
    Deadline::after(BUDGET)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_completes_through_throttling_and_dropped_connections() {
    let p = CredPlatform::new(RotationStrategy::AlternatingUsers).await;
    p.provision().await;
    let token = p.start_rotation().await;
    p.proxy.clear_seen();
    p.proxy.inject(
        Match::operation("secretsmanager.GetSecretValue"),
        Fault::Throttling,
        Times::next(3),
    );
    p.proxy.inject(
        Match::operation("secretsmanager.DescribeSecret"),
        Fault::SlowDown,
        Times::next(2),
    );
    p.proxy.inject(
        Match::operation("secretsmanager.PutSecretValue"),
        Fault::DropConnection,
        Times::next(1),
    );
    p.proxy.inject(
        Match::operation("secretsmanager.UpdateSecretVersionStage"),
        Fault::InternalError,
        Times::next(1),
    );

    let started = Instant::now();
    for step in STEPS {
        p.step(step, &token)
            .await
            .unwrap_or_else(|e| panic!("{step:?} through faults: {e}"));
    }
    let took = started.elapsed();
    let faults = p.proxy.seen().iter().filter(|s| s.fault.is_some()).count();
    assert_eq!(faults, 7, "every injected fault was hit");
    assert!(took < BUDGET / 2, "rotation took {took:?}");
    assert_eq!(p.current_version().await, token, "the rotation finished");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_step_under_persistent_throttling_fails_retryably_and_a_retry_completes_it() {
    let p = CredPlatform::new(RotationStrategy::AlternatingUsers).await;
    p.provision().await;
    let token = p.start_rotation().await;
    p.proxy.inject(
        Match::operation("secretsmanager.PutSecretValue"),
        Fault::Throttling,
        Times::always(),
    );
    let err = p
        .step(RotationStep::CreateSecret, &token)
        .await
        .expect_err("Secrets Manager never stops throttling");
    assert!(
        matches!(&err, credentials::Error::SecretsManager { op: "PutSecretValue", reason } if reason.starts_with("ThrottlingException")),
        "{err}"
    );
    assert!(err.retryable());
    let puts = p
        .proxy
        .seen()
        .iter()
        .filter(|s| s.operation.as_deref() == Some("secretsmanager.PutSecretValue"))
        .filter(|s| s.fault.is_some())
        .count();
    assert_eq!(puts, MAX_ATTEMPTS as usize);

    // Secrets Manager retries the step; by then the throttling has passed.
    p.proxy.heal();
    for step in STEPS {
        p.step(step, &token).await.unwrap();
    }
    assert_eq!(p.current_version().await, token);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_rides_out_rds_query_throttling_and_secrets_manager_faults() {
    let p = CredPlatform::new(RotationStrategy::AlternatingUsers).await;
    p.proxy.inject(
        Match::operation("DescribeDBInstances"),
        Fault::Throttling,
        Times::next(2),
    );
    p.proxy.inject(
        Match::operation("DescribeDBParameters"),
        Fault::InternalError,
        Times::next(1),
    );
    p.proxy.inject(
        Match::operation("secretsmanager.DescribeSecret"),
        Fault::SlowDown,
        Times::next(1),
    );
    p.proxy.inject(
        Match::operation("secretsmanager.PutSecretValue"),
        Fault::DropResponse,
        Times::next(1),
    );
    let started = Instant::now();
    p.provision().await;
    let took = started.elapsed();

    let hit: Vec<String> = p
        .proxy
        .seen()
        .iter()
        .filter(|s| s.fault.is_some())
        .filter_map(|s| s.operation.clone())
        .collect();
    assert_eq!(hit.len(), 5, "every injected fault was hit: {hit:?}");
    assert!(took < BUDGET / 2, "provisioning took {took:?}");
    // The first value's PutSecretValue reached Secrets Manager but its answer was lost:
    // the retry must not leave a secret whose password the database does not know.
    let current = p
        .ctx
        .secrets
        .read(p.app_secret(), Version::Stage(AWSCURRENT))
        .await
        .unwrap()
        .expect("the app secret exists");
    let secret = credentials::values::AppSecret::parse(p.app_secret(), &current).unwrap();
    admin_tls(&p.admin)
        .connect(
            &secret.endpoint(),
            &secret.dbname,
            &secret.username,
            &secret.password,
        )
        .await
        .expect("the stored app password logs in");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_whose_answer_was_lost_are_retried_safely_including_the_state_compare_and_swap() {
    let p = ColdPlatform::new("signoz-admin-key-faults").await;
    p.proxy.inject(
        Match::s3("PUT", p.lifecycle()),
        Fault::DropResponse,
        Times::next(1),
    );
    // The conditional state write lands, its answer is lost: the SDK's retry then fails
    // its precondition, and the compare-and-swap must see its own write on re-read.
    p.proxy.inject(
        Match::s3("PUT", format!("/{}/", p.state_bucket)),
        Fault::DropResponse,
        Times::next(1),
    );
    p.reconcile().await.expect("lost answers are retried");
    assert_eq!(p.faults_answered(), 2);
    assert!(p.remaining_plan().await.is_empty());
    let state = StateStore::new(p.direct.clone(), &p.state_bucket, "state/");
    let (memory, _) = state
        .load::<RetentionHighWater>(RetentionHighWater::KEY)
        .await
        .unwrap();
    assert_eq!(memory.unwrap().cold_days["metrics"], 365);

    p.proxy.clear_seen();
    let summary = p.reconcile().await.unwrap();
    assert_eq!(summary["changes"], json!([]));
    assert_eq!(p.cold_writes(), 0);
}
