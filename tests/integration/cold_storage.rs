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
use signoz_control::cold_storage::plan::{
    self, ABORT_RULE_ID, DENY_INSECURE_SID, NONCURRENT_RULE_ID, TIER_RULE_ID,
};
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

pub(crate) struct Platform {
    pub(crate) ctx: Context,
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) secrets: aws_sdk_secretsmanager::Client,
    pub(crate) writes: Arc<AtomicUsize>,
    pub(crate) cold: String,
    pub(crate) state_bucket: String,
    pub(crate) config: String,
    pub(crate) secret: String,
    pub(crate) signoz: SignozServer,
}

pub(crate) const API_KEY: &str = "signoz-admin-key-for-tests";

impl Platform {
    /// Fresh buckets, secret and SigNoz; the spec is the example with these names.
    pub(crate) async fn new() -> Platform {
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
    pub(crate) async fn write_spec(&self, edit: impl Fn(String) -> String) {
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

    pub(crate) fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    pub(crate) async fn reconcile(&self) -> signoz_control::Result<Value> {
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

    /// A scheduled reconcile as if it ran at `now` (TTL jobs are timed against it).
    pub(crate) async fn reconcile_at(&self, now: jiff::Timestamp) -> signoz_control::Result<Value> {
        cold_storage::handle_at(
            &self.ctx,
            json!({
                "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
                "account": "123456789012", "time": "2026-11-25T08:00:00Z", "region": "eu-west-1",
                "resources": ["arn:aws:events:eu-west-1:123456789012:rule/reconcile"], "detail": {}
            }),
            now,
        )
        .await
    }

    /// The expiration of the tier rule as S3 (moto) holds it.
    pub(crate) async fn expiration(&self) -> Option<i32> {
        let o = self.observed().await;
        o.lifecycle_rules
            .iter()
            .find(|r| r.id() == Some(TIER_RULE_ID))
            .and_then(|r| r.expiration())
            .and_then(|e| e.days())
    }

    /// The remembered retention maximum in the state bucket.
    pub(crate) async fn memory(&self) -> Option<plan::RetentionHighWater> {
        StateStore::new(self.s3.clone(), &self.state_bucket, "state/")
            .load::<plan::RetentionHighWater>(plan::RetentionHighWater::KEY)
            .await
            .unwrap()
            .0
    }

    pub(crate) async fn observed(&self) -> plan::ObservedBucket {
        cold_storage::apply::observe_bucket(&self.s3, &self.cold)
            .await
            .unwrap()
    }

    pub(crate) async fn loaded_spec(&self) -> signoz_control::spec::PlatformSpec {
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
    // Access and encryption first; the lifecycle last, once SigNoz's retention is known.
    assert_eq!(
        resources,
        [
            "public_access_block",
            "encryption",
            "versioning",
            "policy",
            "lifecycle",
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
    // Versioning was once enabled: what it left behind is expired under the prefix.
    let noncurrent = rule(&o, NONCURRENT_RULE_ID);
    assert_eq!(noncurrent.filter().unwrap().prefix(), Some("clickhouse/"));
    assert_eq!(
        noncurrent
            .noncurrent_version_expiration()
            .unwrap()
            .noncurrent_days(),
        Some(1)
    );
    assert_eq!(
        noncurrent
            .expiration()
            .unwrap()
            .expired_object_delete_marker(),
        Some(true)
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
    assert!(
        plan::plan_bucket_posture(&p.loaded_spec().await, &o, &p.memory().await.unwrap())
            .is_empty()
    );

    // TTLs: every signal at its total and hot days; logs through v2 (the current schema).
    p.signoz.with(|s| {
        assert_eq!(s.in_force_days("traces"), (30, Some(7)));
        assert_eq!(s.in_force_days("logs"), (30, Some(7)));
        assert_eq!(s.in_force_days("metrics"), (395, Some(30)));
        assert_eq!(s.posts, 3);
    });
    assert_eq!(summary["ttls"][0]["signal"], "traces");
    assert_eq!(summary["ttls"][0]["api"], "v1");
    assert_eq!(summary["ttls"][2]["api"], "v2");
    assert_eq!(summary["remembered_cold_days"]["metrics"], 365);

    let again = p.reconcile().await.expect("second reconcile");
    assert_eq!(p.writes(), 5, "a converged bucket gets no write call");
    assert_eq!(again["changes"], json!([]));
    assert_eq!(
        p.signoz.with(|s| s.posts),
        3,
        "TTLs already right are not re-posted"
    );
    for t in again["ttls"].as_array().unwrap() {
        assert_eq!(t["outcome"], "unchanged", "{t}");
    }
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
    let memory = p.memory().await.expect("remembered");
    let events = cloudtrail_events();
    assert!(events.len() >= 6);
    for (name, event) in events {
        assert!(
            DRIFT_EVENT_NAMES.contains(&name.as_str()),
            "{name} is a drift event"
        );
        drift(&p, &name).await;
        assert!(
            !plan::plan_bucket_posture(&spec, &p.observed().await, &memory).is_empty(),
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
        let after = plan::plan_bucket_posture(&spec, &p.observed().await, &memory);
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
        assert_eq!(p.signoz.with(|s| s.posts), 0);
    }
}

/// Puts a lifecycle someone else wrote: only `rules`.
async fn put_foreign_lifecycle(p: &Platform, rules: Vec<LifecycleRule>) {
    p.s3.put_bucket_lifecycle_configuration()
        .bucket(&p.cold)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_lifecycle_blocks_only_the_lifecycle_and_the_rest_is_repaired() {
    let p = Platform::new().await;
    // Someone else's rule expires everything after 10 days, ClickHouse's prefix included.
    let cleanup = LifecycleRule::builder()
        .id("cleanup")
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(10).build())
        .build()
        .unwrap();
    put_foreign_lifecycle(&p, vec![cleanup.clone()]).await;
    let err = p
        .reconcile()
        .await
        .expect_err("unsafe lifecycle")
        .to_string();
    assert!(
        err.contains("\"cleanup\"") && err.contains("after 10 days"),
        "{err}"
    );
    assert!(
        err.contains("repaired: public_access_block, encryption, policy"),
        "the error says what was still repaired: {err}"
    );
    let o = p.observed().await;
    assert_eq!(o.lifecycle_rules, [cleanup], "the lifecycle is left alone");
    assert_eq!(o.public_access_block, Some(plan::PublicAccessBlock::ALL_ON));
    assert_eq!(o.encryption.as_ref().unwrap().algorithm, "AES256");
    assert_eq!(
        o.policy.as_ref().unwrap()["Statement"][0]["Sid"],
        DENY_INSECURE_SID
    );
    assert_eq!(p.writes(), 3);
    // The TTLs still converge: they do not depend on the lifecycle.
    assert_eq!(
        p.signoz.with(|s| s.in_force_days("metrics")),
        (395, Some(30))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_date_expiration_under_the_prefix_blocks_the_lifecycle() {
    // moto stores a rule's Expiration Date as S3 does; the check reads it back from there.
    let p = Platform::new().await;
    let on_a_date = LifecycleRule::builder()
        .id("purge-2027")
        .filter(LifecycleRuleFilter::builder().prefix("clickhouse/").build())
        .status(ExpirationStatus::Enabled)
        .expiration(
            LifecycleExpiration::builder()
                .date(aws_sdk_s3::primitives::DateTime::from_secs(1_798_761_600))
                .build(),
        )
        .build()
        .unwrap();
    put_foreign_lifecycle(&p, vec![on_a_date]).await;
    let err = p
        .reconcile()
        .await
        .expect_err("date expiration")
        .to_string();
    assert!(
        err.contains("\"purge-2027\"") && err.contains("2027-01-01"),
        "{err}"
    );
    assert_eq!(p.expiration().await, None, "our rule was not written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remembered_maximum_holds_when_retention_is_shortened() {
    let p = Platform::new().await;
    p.reconcile().await.expect("apply 395-day metrics");
    // Metrics shortened to 200 days and expiration to 250: statically fine, but parts
    // written under the old TTL keep 365 cold days (materialize_ttl_after_modify=0).
    p.write_spec(|s| {
        s.replace("metrics: { total_days: 395", "metrics: { total_days: 200")
            .replace("expiration_days: 400", "expiration_days: 250")
    })
    .await;
    let summary = p.reconcile().await.expect("safe expiration written");
    assert_eq!(
        p.signoz.with(|s| s.in_force_days("metrics")),
        (200, Some(30))
    );
    assert_eq!(
        p.expiration().await,
        Some(372),
        "365 remembered cold days + 7 margin, not the spec's 250"
    );
    assert_eq!(summary["remembered_cold_days"]["metrics"], 365);
    let warning = summary["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("cold_storage.expiration_days 250")
            && warning.contains("metrics")
            && warning.contains("372"),
        "{warning}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_a_cluster_that_keeps_data_longer_never_expires_below_it() {
    let p = Platform::new().await;
    // Before the control plane ever ran, someone kept metrics 600 days, 30 of them hot.
    p.signoz.with(|s| s.set_in_force("metrics", 600, Some(30)));
    let summary = p.reconcile().await.expect("adopted");
    assert_eq!(summary["remembered_cold_days"]["metrics"], 570);
    assert_eq!(p.expiration().await, Some(577));
    assert_eq!(p.memory().await.unwrap().cold_days["metrics"], 570);
    // SigNoz is brought to the spec's retention for new parts.
    assert_eq!(
        p.signoz.with(|s| s.in_force_days("metrics")),
        (395, Some(30))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_changed_in_the_signoz_ui_is_learned_before_anything_is_decided() {
    let p = Platform::new().await;
    p.reconcile().await.expect("converged");
    assert_eq!(p.expiration().await, Some(400));
    // Someone keeps logs 600 days from the SigNoz UI; new parts carry that TTL.
    p.signoz.with(|s| s.set_in_force("logs", 600, Some(7)));
    let summary = p.reconcile().await.expect("learned");
    assert_eq!(p.memory().await.unwrap().cold_days["logs"], 593);
    assert_eq!(p.expiration().await, Some(600), "593 + 7");
    assert_eq!(summary["ttls"][2]["before"]["total_days"], 600);
    assert_eq!(p.signoz.with(|s| s.in_force_days("logs")), (30, Some(7)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_state_document_is_learned_again_from_signoz() {
    let p = Platform::new().await;
    p.reconcile().await.expect("converged");
    p.s3.delete_object()
        .bucket(&p.state_bucket)
        .key(format!("state/{}", plan::RetentionHighWater::KEY))
        .send()
        .await
        .unwrap();
    // With the memory gone, a shorter spec must still not expire what SigNoz keeps.
    p.write_spec(|s| {
        s.replace("metrics: { total_days: 395", "metrics: { total_days: 200")
            .replace("expiration_days: 400", "expiration_days: 250")
    })
    .await;
    p.reconcile().await.expect("relearned");
    assert_eq!(p.memory().await.unwrap().cold_days["metrics"], 365);
    assert_eq!(p.expiration().await, Some(372));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_job_counts_with_the_retention_it_will_set() {
    let p = Platform::new().await;
    // A job someone started that has not finished: metrics to 800 days, 30 hot.
    p.signoz.with(|s| s.plant_stuck_job("metrics", 800, 30));
    let summary = p.reconcile().await.expect("deferred, not failed");
    assert_eq!(summary["remembered_cold_days"]["metrics"], 770);
    assert_eq!(p.expiration().await, Some(777));
    assert!(
        summary["ttls"][1]["outcome"]["deferred"].is_object(),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_encryption_sets_the_bucket_key_and_a_second_run_writes_nothing() {
    let p = Platform::new().await;
    p.write_spec(|s| {
        s.replace(
            "algorithm: AES256",
            "algorithm: aws:kms\n    kms_key_id: alias/signoz-cold",
        )
    })
    .await;
    p.reconcile().await.expect("kms");
    let out =
        p.s3.get_bucket_encryption()
            .bucket(&p.cold)
            .send()
            .await
            .unwrap();
    let rule = &out.server_side_encryption_configuration().unwrap().rules()[0];
    let default = rule.apply_server_side_encryption_by_default().unwrap();
    assert_eq!(default.sse_algorithm().as_str(), "aws:kms");
    assert_eq!(default.kms_master_key_id(), Some("alias/signoz-cold"));
    assert_eq!(rule.bucket_key_enabled(), Some(true));
    let writes = p.writes();
    p.reconcile().await.expect("no-op");
    assert_eq!(p.writes(), writes, "the bucket key reads back as written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_cost_and_writes_nothing_to_the_bucket() {
    let p = Platform::new().await;
    let event: Value = serde_json::from_str(include_str!(
        "../../events/control-reconcile-cold-storage.json"
    ))
    .unwrap();
    let summary = cold_storage::handle(&p.ctx, event).await.expect("dry run");
    assert_eq!(p.writes(), 0);
    assert_eq!(p.signoz.with(|s| s.posts), 0);
    let planned: Vec<&str> = summary["planned_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["resource"].as_str().unwrap())
        .collect();
    assert_eq!(
        planned,
        ["public_access_block", "encryption", "policy", "lifecycle"]
    );
    assert_eq!(summary["planned_changes"][1]["before"], Value::Null);
    assert_eq!(
        summary["planned_changes"][1]["after"]["algorithm"],
        "AES256"
    );
    assert_eq!(
        summary["planned_ttls"][1],
        json!({"signal": "metrics", "total_days": 395, "hot_days": 30})
    );
    // Money in cents; every assumption stated.
    let cost = &summary["cost"];
    let total = cost["steady_state"]["total_usd"].as_f64().unwrap();
    assert_eq!((total * 100.0).round() / 100.0, total, "{total}");
    assert!(cost["assumptions"].as_array().unwrap().len() >= 5);
    assert!(cost["table"].as_str().unwrap().contains("steady state"));
    // The plan and the chart sit side by side in the state store.
    let read = |key: &str| {
        let (s3, bucket) = (p.s3.clone(), p.state_bucket.clone());
        let key = format!("state/{key}");
        async move {
            let out = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            String::from_utf8(out.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
        }
    };
    let chart = read(cold_storage::COST_CHART_KEY).await;
    assert!(
        chart.starts_with("<svg") && chart.contains("steady state"),
        "{chart}"
    );
    let plan: Value = serde_json::from_str(&read(cold_storage::PLAN_KEY).await).unwrap();
    assert_eq!(plan["planned_changes"], summary["planned_changes"]);
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
    assert!(p.expiration().await.is_some());
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
