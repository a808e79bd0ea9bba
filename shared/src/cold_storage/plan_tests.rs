use serde_json::json;

use super::*;
use crate::cold_storage::cost::{cost_chart_svg, cost_curve, cost_table};
use crate::spec::{EXAMPLE_SPEC, parse_spec};

fn example() -> PlatformSpec {
    parse_spec(EXAMPLE_SPEC).expect("example spec is valid")
}

/// The bucket exactly as the plan leaves it.
fn converged(spec: &PlatformSpec) -> ObservedBucket {
    ObservedBucket {
        lifecycle_rules: desired_rules(spec, spec.cold_storage.expiration_days),
        minimum_object_size: Some(
            minimum_object_size_value(spec.cold_storage.transition_minimum_object_size).into(),
        ),
        encryption: Some(DefaultEncryption {
            algorithm: "AES256".into(),
            kms_key_id: None,
            bucket_key_enabled: false,
        }),
        public_access_block: Some(PublicAccessBlock::ALL_ON),
        versioning: None,
        policy: Some(json!({
            "Version": "2012-10-17",
            "Statement": [deny_insecure_statement(&spec.cold_storage.bucket)],
        })),
        intelligent_tiering: Vec::new(),
    }
}

fn none() -> RetentionHighWater {
    RetentionHighWater::default()
}

fn resources(changes: &[BucketChange]) -> Vec<&str> {
    changes.iter().map(|c| c.resource).collect()
}

#[test]
fn an_empty_bucket_gets_every_setting() {
    let spec = example();
    let changes = plan_bucket_posture(&spec, &ObservedBucket::default(), &none());
    assert_eq!(
        resources(&changes),
        ["public_access_block", "encryption", "policy", "lifecycle"]
    );
}

#[test]
fn a_converged_bucket_needs_no_write() {
    let spec = example();
    assert!(plan_bucket_posture(&spec, &converged(&spec), &none()).is_empty());
}

#[test]
fn rule_order_and_policy_spelling_do_not_count_as_drift() {
    let spec = example();
    let mut observed = converged(&spec);
    observed.lifecycle_rules.reverse();
    let bucket = &spec.cold_storage.bucket;
    observed.policy = Some(json!({
        "Statement": {
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Resource": [format!("arn:aws:s3:::{bucket}/*"), format!("arn:aws:s3:::{bucket}")],
            "Action": ["s3:*"],
            "Principal": "*",
            "Effect": "Deny",
            "Sid": DENY_INSECURE_SID,
        },
        "Version": "2012-10-17",
    }));
    assert!(plan_bucket_posture(&spec, &observed, &none()).is_empty());
}

#[test]
fn rules_and_statements_others_own_are_kept() {
    let spec = example();
    let mut observed = converged(&spec);
    let foreign = LifecycleRule::builder()
        .id("logs-expire")
        .filter(
            LifecycleRuleFilter::builder()
                .prefix("access-logs/")
                .build(),
        )
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(10).build())
        .build()
        .unwrap();
    observed.lifecycle_rules = vec![foreign.clone()];
    observed.policy = Some(json!({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "ClickHouseAccess", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/ch"}, "Action": "s3:*", "Resource": "*"}],
    }));
    let changes = plan_bucket_posture(&spec, &observed, &none());
    let BucketWrite::Lifecycle { rules, .. } = &changes.last().unwrap().write else {
        panic!("lifecycle last: {:?}", resources(&changes))
    };
    assert_eq!(rules[0], foreign);
    assert_eq!(rules.len(), 4);
    let BucketWrite::Policy(doc) = &changes[0].write else {
        panic!("policy first")
    };
    let doc: Value = serde_json::from_str(doc).unwrap();
    let sids: Vec<&str> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["ClickHouseAccess", DENY_INSECURE_SID]);
}

#[test]
fn enabled_versioning_is_suspended_and_suspended_stays() {
    let spec = example();
    let mut observed = converged(&spec);
    observed.versioning = Some("Enabled".into());
    let changes = plan_bucket_posture(&spec, &observed, &none());
    assert_eq!(resources(&changes), ["versioning"]);
    assert_eq!(changes[0].after, json!("Suspended"));
    observed.versioning = Some("Suspended".into());
    assert!(plan_bucket_posture(&spec, &observed, &none()).is_empty());
}

#[test]
fn a_changed_expiration_rewrites_the_lifecycle_with_before_and_after() {
    let mut spec = example();
    let observed = converged(&spec);
    spec.cold_storage.expiration_days = 500;
    let changes = plan_bucket_posture(&spec, &observed, &none());
    assert_eq!(resources(&changes), ["lifecycle"]);
    assert_eq!(changes[0].before["rules"][0]["expiration_days"], json!(400));
    assert_eq!(changes[0].after["rules"][0]["expiration_days"], json!(500));
}

#[test]
fn the_minimum_object_size_choice_is_enforced() {
    let spec = example();
    let mut observed = converged(&spec);
    observed.minimum_object_size = Some("varies_by_storage_class".into());
    let changes = plan_bucket_posture(&spec, &observed, &none());
    assert_eq!(resources(&changes), ["lifecycle"]);
    assert_eq!(
        changes[0].after["transition_default_minimum_object_size"],
        json!("all_storage_classes_128K")
    );
}

#[test]
fn expiration_below_the_remembered_retention_is_refused() {
    let mut spec = example();
    // Metrics once kept 365 cold days; shortening them must not shorten S3's expiration.
    let memory = RetentionHighWater::default()
        .raised_to(&spec.retention)
        .unwrap();
    spec.retention.metrics.total_days = 200;
    spec.cold_storage.expiration_days = 200;
    assert!(unsafe_reasons(&spec, &RetentionHighWater::default()).is_empty());
    let reasons = unsafe_reasons(&spec, &memory);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("metrics was once applied with 365 cold days"),
        "{}",
        reasons[0]
    );
    assert!(reasons[0].contains("= 372, got 200"), "{}", reasons[0]);
}

#[test]
fn the_high_water_mark_only_rises() {
    let mut spec = example();
    let memory = RetentionHighWater::default()
        .raised_to(&spec.retention)
        .unwrap();
    assert_eq!(memory.longest(), Some(("metrics", 365)));
    spec.retention.metrics.total_days = 100;
    assert_eq!(memory.raised_to(&spec.retention), None);
    spec.retention.logs.total_days = 60;
    let raised = memory.raised_to(&spec.retention).unwrap();
    assert_eq!(raised.cold_days["logs"], 53);
    assert_eq!(raised.cold_days["metrics"], 365);
}

#[test]
fn static_invariants_are_rechecked_by_the_validator() {
    let mut spec = example();
    spec.cold_storage.transitions.insert("GLACIER".into(), 120);
    spec.cold_storage
        .transitions
        .insert("STANDARD_IA".into(), 20);
    let reasons = unsafe_reasons(&spec, &RetentionHighWater::default());
    assert!(
        reasons.iter().any(|r| r.contains("InvalidObjectState")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("before 30 days")),
        "{reasons:?}"
    );
}

#[test]
fn a_foreign_rule_that_expires_clickhouse_objects_early_is_refused() {
    let spec = example();
    let whole_bucket = LifecycleRule::builder()
        .id("cleanup")
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(90).build())
        .transitions(
            Transition::builder()
                .days(60)
                .storage_class(TransitionStorageClass::Glacier)
                .build(),
        )
        .build()
        .unwrap();
    let other_prefix = LifecycleRule::builder()
        .id("access-logs")
        .filter(
            LifecycleRuleFilter::builder()
                .prefix("access-logs/")
                .build(),
        )
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(10).build())
        .build()
        .unwrap();
    let reasons = foreign_rule_conflicts(
        &spec,
        &RetentionHighWater::default(),
        &[whole_bucket, other_prefix],
    );
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("\"cleanup\"") && reasons[0].contains("after 90 days"));
    assert!(reasons[1].contains("GLACIER"));
}

#[test]
fn noncurrent_versions_and_delete_markers_are_expired_under_the_prefix() {
    let spec = example();
    let rules = desired_rules(&spec, 400);
    let rule = rules
        .iter()
        .find(|r| r.id() == Some(NONCURRENT_RULE_ID))
        .expect("noncurrent rule");
    assert_eq!(rule_prefix(rule), "clickhouse/");
    assert_eq!(
        rule.noncurrent_version_expiration()
            .and_then(|n| n.noncurrent_days()),
        Some(1)
    );
    let expiration = rule.expiration().unwrap();
    // S3 refuses ExpiredObjectDeleteMarker next to Days: it gets a rule of its own.
    assert_eq!(expiration.expired_object_delete_marker(), Some(true));
    assert_eq!(expiration.days(), None);
    // A bucket that lost it gets it back.
    let mut observed = converged(&spec);
    observed
        .lifecycle_rules
        .retain(|r| r.id() != Some(NONCURRENT_RULE_ID));
    assert_eq!(
        resources(&plan_bucket_posture(&spec, &observed, &none())),
        ["lifecycle"]
    );
}

#[test]
fn the_expiration_rises_to_what_the_memory_needs_and_says_why() {
    let spec = example();
    let memory = RetentionHighWater::default()
        .raised_by(&[ColdDaysNeeded {
            signal: "logs",
            days: 593,
            source: "SigNoz v2 in force: 600 days total, 7 hot".into(),
        }])
        .unwrap();
    assert_eq!(expiration_days(&spec, &RetentionHighWater::default()), 400);
    assert_eq!(expiration_days(&spec, &memory), 600);
    let why = expiration_raised(&spec, &memory).unwrap();
    assert!(
        why.contains("expiration_days 400")
            && why.contains("logs keeps parts 593 days")
            && why.contains("SigNoz v2 in force")
            && why.contains("wrote 600"),
        "{why}"
    );
    let changes = plan_bucket_posture(&spec, &converged(&spec), &memory);
    assert_eq!(changes[0].after["rules"][0]["expiration_days"], json!(600));
}

#[test]
fn kms_asks_for_the_bucket_key_and_compares_key_arns_not_strings() {
    // moto stores KMSMasterKeyID as written; S3 may read an alias or a key ID back as an
    // ARN. The spellings are compared here, in the planner.
    let mut spec = example();
    spec.cold_storage.encryption.algorithm = crate::spec::EncryptionAlgorithm::AwsKms;
    spec.cold_storage.encryption.kms_key_id = Some("alias/signoz-cold".into());
    let mut observed = converged(&spec);
    let kms = |key: &str, bucket_key: bool| DefaultEncryption {
        algorithm: "aws:kms".into(),
        kms_key_id: Some(key.into()),
        bucket_key_enabled: bucket_key,
    };
    observed.encryption = Some(kms(
        "arn:aws:kms:eu-west-1:123456789012:alias/signoz-cold",
        true,
    ));
    assert!(plan_bucket_posture(&spec, &observed, &none()).is_empty());
    observed.encryption = Some(kms("arn:aws:kms:eu-west-1:123456789012:alias/other", true));
    assert_eq!(
        resources(&plan_bucket_posture(&spec, &observed, &none())),
        ["encryption"]
    );
    observed.encryption = Some(kms("alias/signoz-cold", false));
    let changes = plan_bucket_posture(&spec, &observed, &none());
    assert_eq!(changes[0].after["bucket_key_enabled"], json!(true));
    let key = "1234abcd-12ab-34cd-56ef-1234567890ab";
    spec.cold_storage.encryption.kms_key_id = Some(key.into());
    observed.encryption = Some(kms(
        &format!("arn:aws:kms:eu-west-1:123456789012:key/{key}"),
        true,
    ));
    assert!(plan_bucket_posture(&spec, &observed, &none()).is_empty());
    // An alias and a key ID cannot be told equal without KMS: rewritten.
    spec.cold_storage.encryption.kms_key_id = Some("alias/signoz-cold".into());
    assert_eq!(
        resources(&plan_bucket_posture(&spec, &observed, &none())),
        ["encryption"]
    );
    // Opting out of the bucket key is honoured.
    spec.cold_storage.encryption.bucket_key_enabled = Some(false);
    observed.encryption = Some(kms("alias/signoz-cold", false));
    assert!(plan_bucket_posture(&spec, &observed, &none()).is_empty());
}

#[test]
fn date_expirations_and_archive_tiers_under_the_prefix_are_conflicts() {
    use aws_sdk_s3::types::{IntelligentTieringAccessTier, IntelligentTieringFilter, Tiering};
    let spec = example();
    let dated = LifecycleRule::builder()
        .id("purge")
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .status(ExpirationStatus::Enabled)
        .expiration(
            LifecycleExpiration::builder()
                .date(aws_sdk_s3::primitives::DateTime::from_secs(1_798_761_600))
                .build(),
        )
        .build()
        .unwrap();
    let reasons = foreign_rule_conflicts(&spec, &none(), &[dated]);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("\"purge\"") && reasons[0].contains("on 2027-01-01"),
        "{}",
        reasons[0]
    );
    // moto does not implement Intelligent-Tiering configurations: checked here.
    let archive = |prefix: &str| {
        IntelligentTieringConfiguration::builder()
            .id("archive-old")
            .filter(IntelligentTieringFilter::builder().prefix(prefix).build())
            .status(IntelligentTieringStatus::Enabled)
            .tierings(
                Tiering::builder()
                    .days(90)
                    .access_tier(IntelligentTieringAccessTier::ArchiveAccess)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let reasons = archive_tier_conflicts(&spec, &[archive("clickhouse/traces/")]);
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].contains("archive-old") && reasons[0].contains("ARCHIVE_ACCESS"),
        "{}",
        reasons[0]
    );
    assert!(archive_tier_conflicts(&spec, &[archive("access-logs/")]).is_empty());
    let mut observed = converged(&spec);
    observed.intelligent_tiering = vec![archive("")];
    assert_eq!(lifecycle_conflicts(&spec, &none(), &observed).len(), 1);
}

fn cost_of(spec: &PlatformSpec) -> crate::cold_storage::cost::CostCurve {
    cost_curve(
        &spec.cold_storage,
        &spec.retention,
        spec.cold_storage.cost.as_ref().unwrap(),
    )
}

fn tier(m: &crate::cold_storage::cost::MonthCost, class: &str) -> (f64, f64) {
    let t = m.tiers.iter().find(|t| t.storage_class == class).unwrap();
    (t.gb, t.usd)
}

#[test]
fn steady_state_cost_of_the_example_is_hand_checked() {
    // Traces (20 GB/day) and logs (15) live 23 days in S3: they never reach Standard-IA
    // (30 days) and stay in STANDARD. Metrics (5 GB/day) live 365 days; 5% of their bytes
    // are objects under 128 KB, which stay in STANDARD too.
    let spec = example();
    let curve = cost_of(&spec);
    assert_eq!(curve.steady_state_month, 14);
    assert_eq!(curve.months.len(), 14);
    let steady = &curve.steady_state;
    // STANDARD: 20*23 + 15*23 + 0.25*365 + 4.75*30 = 1038.75 GB, * 0.023 = 23.89125
    assert_eq!(tier(steady, "STANDARD"), (1038.75, 23.89));
    // STANDARD_IA: 4.75 * 60 = 285 GB, * 0.0125 = 3.5625
    assert_eq!(tier(steady, "STANDARD_IA"), (285.0, 3.56));
    // GLACIER_IR: 4.75 * 275 = 1306.25 GB, * 0.004 = 5.225
    assert_eq!(tier(steady, "GLACIER_IR"), (1306.25, 5.23));
    // 4.75 GB/day of 1024 KB objects = 4864 objects a day, each transitioning twice:
    // 30 * 4864 * (0.01 + 0.02) / 1000 = 4.3776
    assert_eq!(steady.transitions_usd, 4.38);
    // 2% read back: 285 * 0.02 * 0.01 + 1306.25 * 0.02 * 0.03 = 0.84075
    assert_eq!(steady.retrieval_usd, 0.84);
    assert_eq!(steady.early_deletion_usd, 0.0);
    assert_eq!(steady.total_usd, 37.9);
    // Month 1 holds 0-29 day old objects: nothing has transitioned yet.
    let first = &curve.months[0];
    assert_eq!(tier(first, "STANDARD_IA"), (0.0, 0.0));
    assert_eq!(first.transitions_usd, 0.0);
    assert!(curve.assumptions.iter().any(|a| a.contains("under 128 KB")));
    assert!(
        curve
            .assumptions
            .iter()
            .any(|a| a.contains("not until the expiration"))
    );
}

#[test]
fn objects_deleted_before_the_minimum_duration_are_billed_the_rest() {
    // Metrics 150 days total, 30 hot: 120 days in S3, 30 of them in Glacier IR, whose
    // minimum is 90: 60 more days billed on each GB deleted.
    let mut spec = example();
    spec.retention.metrics.total_days = 150;
    let steady = cost_of(&spec).steady_state;
    // 4.75 GB/day * 60 days * 0.004 = 1.14 a month.
    assert_eq!(steady.early_deletion_usd, 1.14);
}

#[test]
fn small_objects_stay_in_standard_whatever_the_setting() {
    let mut spec = example();
    let cost = spec.cold_storage.cost.as_mut().unwrap();
    cost.average_object_kb = 64.0;
    cost.small_object_share = None;
    let steady = cost_of(&spec).steady_state;
    assert_eq!(tier(&steady, "STANDARD_IA").0, 0.0);
    assert_eq!(tier(&steady, "GLACIER_IR").0, 0.0);
    assert_eq!(steady.transitions_usd, 0.0);
    // 20*23 + 15*23 + 5*365 = 2630 GB in STANDARD.
    assert_eq!(tier(&steady, "STANDARD").0, 2630.0);
}

#[test]
fn money_is_in_cents_and_the_chart_marks_the_steady_state() {
    let curve = cost_of(&example());
    for m in &curve.months {
        for usd in
            m.tiers
                .iter()
                .map(|t| t.usd)
                .chain([m.transitions_usd, m.retrieval_usd, m.total_usd])
        {
            assert_eq!((usd * 100.0).round() / 100.0, usd, "month {}", m.month);
        }
    }
    let svg = cost_chart_svg(&curve);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.contains("steady state from month 14: $37.90/month"),
        "{svg}"
    );
    assert_eq!(svg.matches("<rect").count(), 14 * 4 + 4, "bars and legend");
    let table = cost_table(&curve);
    assert!(
        table.contains("14 (steady state)") && table.contains("$37.90"),
        "{table}"
    );
    assert!(table.lines().count() <= 8, "a short table:\n{table}");
}
