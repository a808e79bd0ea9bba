//! Cold storage against moto and a SigNoz TTL API test server: apply, read back, no-op
//! reconciles, drift undone, unsafe plans refused, TTL job handling, state CAS.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus, LifecycleExpiration,
    LifecycleRule, LifecycleRuleFilter, VersioningConfiguration,
};
use platform_tests::create_buckets;
use platform_tests::signoz::{SignozServer, start_signoz};
use platform_tests::{Deployment, aws, aws_as, unique};
use serde_json::{Value, json};
use signoz_control::cold_storage::plan::{self, ABORT_RULE_ID, DENY_INSECURE_SID, TIER_RULE_ID};
use signoz_control::cold_storage::ttl::TtlPatience;
use signoz_control::cold_storage::{self, Context, DRIFT_EVENT_NAMES};
use signoz_control::spec::{EXAMPLE_SPEC, SpecLocation};
use signoz_control::state::{StateError, StateStore, Version};

// ---------- the platform under test ----------

/// Counts bucket-level write calls (non-GET) on one bucket.
#[derive(Debug, Clone)]
struct CountWrites {
    bucket: String,
    count: Arc<AtomicUsize>,
}

impl Intercept for CountWrites {
    fn name(&self) -> &'static str {
        "CountWrites"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        if request.method() != "GET" && request.uri().contains(&format!("/{}/?", self.bucket)) {
            self.count.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

struct Platform {
    ctx: Context,
    s3: aws_sdk_s3::Client,
    secrets: aws_sdk_secretsmanager::Client,
    writes: Arc<AtomicUsize>,
    cold: String,
    state_bucket: String,
    config: String,
    secret: String,
    signoz: SignozServer,
}

const API_KEY: &str = "signoz-admin-key-for-tests";

impl Platform {
    /// Fresh buckets, secret and SigNoz; the spec is the example with these names.
    async fn new() -> Platform {
        let config = aws().await;
        let s3 = signoz_control::aws::s3_client(&config);
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        let cold = unique("cold");
        let state_bucket = unique("state");
        let config_bucket = unique("config");
        create_buckets(&s3, &[&cold, &state_bucket, &config_bucket]).await;
        let secret = unique("signoz-api-key");
        secrets
            .create_secret()
            .name(&secret)
            .secret_string(API_KEY)
            .send()
            .await
            .unwrap();
        let signoz = start_signoz(API_KEY).await;
        let location = SpecLocation::S3 {
            bucket: config_bucket.clone(),
            key: "platform.yaml".into(),
        };
        let deployment = Deployment {
            cold_bucket: cold.clone(),
            state_bucket: state_bucket.clone(),
            ttl_api_key_secret: secret.clone(),
            ..Deployment::for_spec_text(EXAMPLE_SPEC, &location)
        };
        let role = aws_as(cold_storage::FUNCTION, &deployment).await;
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&role)
                .force_path_style(true)
                .interceptor(CountWrites {
                    bucket: cold.clone(),
                    count: writes.clone(),
                })
                .build(),
        );
        let mut ctx = Context::new(&role, location);
        ctx.s3 = counted;
        ctx.ttl_patience = TtlPatience {
            attempts: 3,
            retry_delay: Duration::from_millis(20),
            polls: 2,
            poll_delay: Duration::from_millis(20),
        };
        let platform = Platform {
            ctx,
            s3,
            secrets,
            writes,
            cold,
            state_bucket,
            config: config_bucket,
            secret,
            signoz,
        };
        platform.write_spec(|s| s).await;
        platform
    }

    /// Uploads the example spec with this platform's names, edited by `edit`. moto reports
    /// `TransitionDefaultMinimumObjectSize` as `all_storage_classes_128K` whatever was
    /// written, so the tests choose that value to keep "no write when right" checkable.
    async fn write_spec(&self, edit: impl Fn(String) -> String) {
        let text = EXAMPLE_SPEC
            .replace("acme-signoz-cold", &self.cold)
            .replace("acme-signoz-control", &self.state_bucket)
            .replace(platform_tests::EXAMPLE_TTL_API_URL, &self.signoz.url)
            .replace("signoz/admin-api-key", &self.secret)
            .replace("varies_by_storage_class", "all_storage_classes_128k");
        let text = edit(text);
        self.s3
            .put_object()
            .bucket(&self.config)
            .key("platform.yaml")
            .body(text.into_bytes().into())
            .send()
            .await
            .unwrap();
    }

    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    async fn reconcile(&self) -> signoz_control::Result<Value> {
        cold_storage::handle(
            &self.ctx,
            json!({
                "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
                "account": "123456789012", "time": "2026-11-25T08:00:00Z", "region": "eu-west-1",
                "resources": ["arn:aws:events:eu-west-1:123456789012:rule/reconcile"], "detail": {}
            }),
        )
        .await
    }

    async fn observed(&self) -> plan::ObservedBucket {
        cold_storage::apply::observe_bucket(&self.s3, &self.cold)
            .await
            .unwrap()
    }

    async fn loaded_spec(&self) -> signoz_control::spec::PlatformSpec {
        signoz_control::spec::load_spec(&self.ctx.spec_location, &self.s3)
            .await
            .unwrap()
            .spec
    }
}

fn foreign_rule() -> LifecycleRule {
    LifecycleRule::builder()
        .id("access-logs-expire")
        .filter(
            LifecycleRuleFilter::builder()
                .prefix("access-logs/")
                .build(),
        )
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(10).build())
        .build()
        .unwrap()
}

fn rule<'a>(o: &'a plan::ObservedBucket, id: &str) -> &'a LifecycleRule {
    o.lifecycle_rules
        .iter()
        .find(|r| r.id() == Some(id))
        .unwrap_or_else(|| panic!("rule {id}"))
}

// ---------- tests ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_reads_back_as_planned_and_a_second_run_writes_nothing() {
    let p = Platform::new().await;
    // Others' settings that must survive: a lifecycle rule, a policy statement; and
    // versioning that someone once enabled.
    p.s3.put_bucket_lifecycle_configuration()
        .bucket(&p.cold)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(foreign_rule())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let other_statement = json!({"Sid": "ClickHouseRole", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:role/acme-prod-signoz-clickhouse"},
        "Action": "s3:*", "Resource": format!("arn:aws:s3:::{}/*", p.cold)});
    p.s3.put_bucket_policy()
        .bucket(&p.cold)
        .policy(json!({"Version": "2012-10-17", "Statement": [other_statement]}).to_string())
        .send()
        .await
        .unwrap();
    p.s3.put_bucket_versioning()
        .bucket(&p.cold)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let summary = p.reconcile().await.expect("first reconcile");
    let resources: Vec<&str> = summary["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["resource"].as_str().unwrap())
        .collect();
    assert_eq!(
        resources,
        [
            "lifecycle",
            "encryption",
            "public_access_block",
            "versioning",
            "policy"
        ]
    );
    assert_eq!(p.writes(), 5);

    // Read back every setting from moto.
    let o = p.observed().await;
    let tiers = rule(&o, TIER_RULE_ID);
    let t: Vec<(i32, &str)> = tiers
        .transitions()
        .iter()
        .map(|t| (t.days().unwrap(), t.storage_class().unwrap().as_str()))
        .collect();
    assert_eq!(t, [(30, "STANDARD_IA"), (90, "GLACIER_IR")]);
    assert_eq!(tiers.expiration().unwrap().days(), Some(400));
    assert_eq!(tiers.filter().unwrap().prefix(), Some("clickhouse/"));
    assert_eq!(
        rule(&o, ABORT_RULE_ID)
            .abort_incomplete_multipart_upload()
            .unwrap()
            .days_after_initiation(),
        Some(7)
    );
    assert_eq!(rule(&o, "access-logs-expire"), &foreign_rule());
    assert_eq!(
        o.minimum_object_size.as_deref(),
        Some("all_storage_classes_128K")
    );
    assert_eq!(o.encryption.as_ref().unwrap().algorithm, "AES256");
    assert_eq!(o.public_access_block, Some(plan::PublicAccessBlock::ALL_ON));
    assert_eq!(o.versioning.as_deref(), Some("Suspended"));
    let statements = o.policy.as_ref().unwrap()["Statement"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(statements[0], other_statement);
    assert_eq!(statements[1]["Sid"], DENY_INSECURE_SID);
    assert_eq!(
        statements[1]["Condition"]["Bool"]["aws:SecureTransport"],
        "false"
    );
    assert!(plan::plan_bucket_posture(&p.loaded_spec().await, &o).is_empty());

    // TTLs: hours, total and hot, every signal; the job status is reported.
    {
        let s = p.signoz.state.lock().unwrap();
        assert_eq!(s.ttl["traces"], (720, 168, "success".into()));
        assert_eq!(s.ttl["logs"], (720, 168, "success".into()));
        assert_eq!(s.ttl["metrics"], (395 * 24, 30 * 24, "success".into()));
        assert_eq!(s.posts, 3);
    }
    assert_eq!(
        summary["ttls"][0]["outcome"],
        json!({"applied": {"status": "success"}})
    );
    assert_eq!(summary["remembered_cold_days"]["metrics"], 365);

    let again = p.reconcile().await.expect("second reconcile");
    assert_eq!(p.writes(), 5, "a converged bucket gets no write call");
    assert_eq!(again["changes"], json!([]));
    assert_eq!(
        p.signoz.state.lock().unwrap().posts,
        3,
        "TTLs already right are not re-posted"
    );
    assert!(
        again["ttls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["outcome"] == "unchanged")
    );
}

/// Makes the change a CloudTrail event of this name records.
async fn drift(p: &Platform, event_name: &str) {
    let s3 = &p.s3;
    let b = &p.cold;
    match event_name {
        "DeleteBucketLifecycle" => {
            s3.delete_bucket_lifecycle().bucket(b).send().await.unwrap();
        }
        "PutBucketLifecycle" => {
            s3.put_bucket_lifecycle_configuration()
                .bucket(b)
                .lifecycle_configuration(
                    BucketLifecycleConfiguration::builder()
                        .rules(foreign_rule())
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
        }
        "DeleteBucketEncryption" => {
            s3.delete_bucket_encryption()
                .bucket(b)
                .send()
                .await
                .unwrap();
        }
        "DeleteBucketPublicAccessBlock" => {
            s3.delete_public_access_block()
                .bucket(b)
                .send()
                .await
                .unwrap();
        }
        "PutBucketPolicy" => {
            s3.put_bucket_policy().bucket(b)
                .policy(json!({"Version": "2012-10-17", "Statement": [{"Sid": "Other", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": format!("arn:aws:s3:::{b}")}]}).to_string())
                .send().await.unwrap();
        }
        "PutBucketVersioning" => {
            s3.put_bucket_versioning()
                .bucket(b)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        other => panic!("no drift scripted for {other}"),
    }
}

fn cloudtrail_events() -> Vec<(String, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut events: Vec<(String, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("cloudtrail-")
        })
        .map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (v["detail"]["eventName"].as_str().unwrap().to_string(), v)
        })
        .collect();
    events.sort_by(|a, b| a.0.cmp(&b.0));
    events
}

fn for_bucket(mut event: Value, bucket: &str) -> Value {
    event["detail"]["requestParameters"]["bucketName"] = json!(bucket);
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cloudtrail_drift_event_is_undone_and_foreign_buckets_are_untouched() {
    let p = Platform::new().await;
    p.reconcile().await.expect("converge first");
    let spec = p.loaded_spec().await;
    let events = cloudtrail_events();
    assert!(events.len() >= 6);
    for (name, event) in events {
        assert!(
            DRIFT_EVENT_NAMES.contains(&name.as_str()),
            "{name} is a drift event"
        );
        drift(&p, &name).await;
        assert!(
            !plan::plan_bucket_posture(&spec, &p.observed().await).is_empty(),
            "{name} drifted the bucket"
        );

        // The same call on another bucket, and a failed call, change nothing.
        let before = p.writes();
        let foreign =
            cold_storage::handle(&p.ctx, for_bucket(event.clone(), "someone-elses-bucket"))
                .await
                .unwrap();
        assert!(
            foreign["ignored"]
                .as_str()
                .unwrap()
                .contains("not the cold-storage bucket"),
            "{foreign}"
        );
        let mut failed = for_bucket(event.clone(), &p.cold);
        failed["detail"]["errorCode"] = json!("AccessDenied");
        let failed = cold_storage::handle(&p.ctx, failed).await.unwrap();
        assert!(failed["ignored"].is_string(), "{failed}");
        assert_eq!(p.writes(), before);

        let summary = cold_storage::handle(&p.ctx, for_bucket(event, &p.cold))
            .await
            .expect(&name);
        assert_eq!(
            summary["drift"]["actor"],
            "arn:aws:sts::123456789012:assumed-role/PlatformAdmin/bob"
        );
        assert!(
            p.writes() > before,
            "{name} was undone with a write: {summary}"
        );
        assert!(
            summary.get("ttls").is_none(),
            "drift only touches the bucket"
        );
        let after = plan::plan_bucket_posture(&spec, &p.observed().await);
        assert!(
            after.is_empty(),
            "{name} left {:?}",
            after.iter().map(|c| c.resource).collect::<Vec<_>>()
        );
    }

    // A read-only call is ignored.
    let (_, mut read_only) = cloudtrail_events().remove(0);
    read_only["detail"]["eventName"] = json!("GetBucketLifecycle");
    let before = p.writes();
    let ignored = cold_storage::handle(&p.ctx, for_bucket(read_only, &p.cold))
        .await
        .unwrap();
    assert!(ignored["ignored"].is_string());
    assert_eq!(p.writes(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unsafe_spec_is_refused_with_its_reason_and_nothing_is_written() {
    let p = Platform::new().await;
    type Case = (&'static str, fn(String) -> String, &'static str);
    let cases: [Case; 5] = [
        (
            "GLACIER tier",
            |s| s.replace("GLACIER_IR: 90", "GLACIER: 90"),
            "InvalidObjectState",
        ),
        (
            "STANDARD_IA too early",
            |s| s.replace("STANDARD_IA: 30", "STANDARD_IA: 20"),
            "before 30 days",
        ),
        (
            "GLACIER_IR too soon after IA",
            |s| s.replace("GLACIER_IR: 90", "GLACIER_IR: 50"),
            "at least 30 days after STANDARD_IA",
        ),
        (
            "expiration before last transition",
            |s| s.replace("expiration_days: 400", "expiration_days: 80"),
            "must come after the last transition",
        ),
        (
            "expiration under cold days + margin",
            |s| s.replace("expiration_days: 400", "expiration_days: 370"),
            "would delete objects ClickHouse still references",
        ),
    ];
    for (name, edit, message) in cases {
        p.write_spec(edit).await;
        let err = p.reconcile().await.expect_err(name).to_string();
        assert!(err.contains(message), "{name}: {err}");
        assert_eq!(p.writes(), 0, "{name}: nothing written");
        assert_eq!(p.signoz.state.lock().unwrap().posts, 0);
    }

    // A rule someone else added that expires ClickHouse's prefix early.
    p.write_spec(|s| s).await;
    let mut early = foreign_rule();
    early = LifecycleRule::builder()
        .id("cleanup")
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .status(ExpirationStatus::Enabled)
        .expiration(early.expiration().unwrap().clone())
        .build()
        .unwrap();
    p.s3.put_bucket_lifecycle_configuration()
        .bucket(&p.cold)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(early)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let err = p.reconcile().await.expect_err("foreign rule").to_string();
    assert!(
        err.contains("\"cleanup\"") && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(p.writes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remembered_maximum_holds_when_retention_is_shortened() {
    let p = Platform::new().await;
    p.reconcile().await.expect("apply 395-day metrics");
    let writes = p.writes();
    // Metrics shortened to 200 days: statically fine, but old parts keep 365 cold days.
    p.write_spec(|s| {
        s.replace("metrics: { total_days: 395", "metrics: { total_days: 200")
            .replace("expiration_days: 400", "expiration_days: 250")
    })
    .await;
    let err = p.reconcile().await.expect_err("refused").to_string();
    assert!(
        err.contains("metrics was once applied with 365 cold days"),
        "{err}"
    );
    assert_eq!(p.writes(), writes);
    assert_eq!(p.signoz.state.lock().unwrap().ttl["metrics"].0, 395 * 24);
    // Keeping expiration above the remembered maximum lets the shorter TTL through.
    p.write_spec(|s| s.replace("metrics: { total_days: 395", "metrics: { total_days: 200"))
        .await;
    let summary = p.reconcile().await.expect("shorter TTL, safe expiration");
    assert_eq!(p.signoz.state.lock().unwrap().ttl["metrics"].0, 200 * 24);
    assert_eq!(summary["remembered_cold_days"]["metrics"], 365);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_409_is_retried_then_applied() {
    let p = Platform::new().await;
    p.signoz.state.lock().unwrap().conflicts_left = 2;
    let summary = p.reconcile().await.expect("409s are not failures");
    assert_eq!(
        summary["ttls"][0]["outcome"],
        json!({"applied": {"status": "success"}})
    );
    assert_eq!(p.signoz.state.lock().unwrap().posts, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_409_beyond_patience_is_deferred_not_failed() {
    let p = Platform::new().await;
    p.signoz.state.lock().unwrap().conflicts_left = 100;
    let summary = p.reconcile().await.expect("deferred is not a failure");
    assert!(
        summary["ttls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["outcome"]["deferred"].is_object()),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_ttl_job_is_an_error() {
    let p = Platform::new().await;
    p.signoz.state.lock().unwrap().fail_jobs = true;
    let err = p.reconcile().await.expect_err("failed job");
    assert!(
        err.to_string()
            .contains("TTL job failed for: traces, metrics, logs"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_api_key_is_a_clear_error_and_a_wrong_one_is_rejected() {
    let p = Platform::new().await;
    p.secrets
        .delete_secret()
        .secret_id(&p.secret)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let err = p.reconcile().await.expect_err("no key").to_string();
    // The role may read only that secret: for a deleted one AWS answers AccessDenied, the
    // ARN it names (no suffix) matching no `name-??????` grant (tests/bin/moto-iam-server.py).
    assert!(
        err.contains(&p.secret) && (err.contains("does not exist") || err.contains("AccessDenied")),
        "{err}"
    );
    assert_eq!(p.signoz.state.lock().unwrap().posts, 0);

    p.secrets
        .create_secret()
        .name(&p.secret)
        .secret_string("wrong-key")
        .send()
        .await
        .unwrap();
    let err = p.reconcile().await.expect_err("wrong key").to_string();
    assert!(err.contains("HTTP 403"), "{err}");
    assert!(
        !err.contains("wrong-key"),
        "the key never appears in errors"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_cost_and_writes_nothing() {
    let p = Platform::new().await;
    let event: Value = serde_json::from_str(include_str!(
        "../../events/control-reconcile-cold-storage.json"
    ))
    .unwrap();
    let summary = cold_storage::handle(&p.ctx, event).await.expect("dry run");
    assert_eq!(p.writes(), 0);
    assert_eq!(p.signoz.state.lock().unwrap().posts, 0);
    let planned: Vec<&str> = summary["planned_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["resource"].as_str().unwrap())
        .collect();
    assert_eq!(
        planned,
        ["lifecycle", "encryption", "public_access_block", "policy"]
    );
    assert_eq!(summary["planned_changes"][1]["before"], Value::Null);
    assert_eq!(
        summary["planned_changes"][1]["after"]["algorithm"],
        "AES256"
    );
    assert_eq!(
        summary["planned_ttls"][1],
        json!({"signal": "metrics", "duration_hours": 9480, "to_cold_hours": 720})
    );
    assert!(
        (summary["cost"]["steady_state"]["total_usd"]
            .as_f64()
            .unwrap()
            - 107.2)
            .abs()
            < 1e-9
    );
    assert_eq!(summary["cost"]["months"].as_array().unwrap().len(), 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_write_elsewhere_is_ignored() {
    let p = Platform::new().await;
    let mut event: Value =
        serde_json::from_str(include_str!("../../events/s3-spec-written.json")).unwrap();
    event["Records"][0]["s3"]["bucket"]["name"] = json!(p.config);
    event["Records"][0]["s3"]["object"]["key"] = json!("other.yaml");
    let ignored = cold_storage::handle(&p.ctx, event.clone()).await.unwrap();
    assert!(ignored["ignored"].is_string());
    assert_eq!(p.writes(), 0);
    event["Records"][0]["s3"]["object"]["key"] = json!("platform.yaml");
    let applied = cold_storage::handle(&p.ctx, event).await.unwrap();
    assert_eq!(applied["changes"].as_array().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_writes_are_compare_and_swap_on_moto() {
    let config = aws().await;
    let s3 = signoz_control::aws::s3_client(&config);
    let bucket = unique("state-cas");
    create_buckets(&s3, &[&bucket]).await;
    let store = StateStore::new(s3, &bucket, "state/");
    store
        .save("doc.json", &json!({"n": 1}), &Version::Absent)
        .await
        .unwrap();
    assert!(matches!(
        store
            .save("doc.json", &json!({"n": 2}), &Version::Absent)
            .await,
        Err(StateError::Conflict { .. })
    ));
    let (value, version) = store.load::<Value>("doc.json").await.unwrap();
    assert_eq!(value, Some(json!({"n": 1})));
    store
        .save("doc.json", &json!({"n": 2}), &version)
        .await
        .unwrap();
    assert!(
        matches!(
            store.save("doc.json", &json!({"n": 3}), &version).await,
            Err(StateError::Conflict { .. })
        ),
        "a stale ETag loses"
    );

    // Concurrent read-modify-write: no increment is lost.
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .update("counter.json", |n: Option<&u32>| {
                        Some(n.copied().unwrap_or(0) + 1)
                    })
                    .await
            })
        })
        .collect();
    let mut done = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => done += 1,
            Err(StateError::Contended { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        store.load::<u32>("counter.json").await.unwrap().0,
        Some(done)
    );
    assert!(done >= 1);
}
