use serde_json::json;

use super::*;
use crate::cold_storage::cost::cost_curve;
use crate::spec::{EXAMPLE_SPEC, parse_spec};

fn example() -> PlatformSpec {
    parse_spec(EXAMPLE_SPEC).expect("example spec is valid")
}

/// The bucket exactly as the plan leaves it.
fn converged(spec: &PlatformSpec) -> ObservedBucket {
    ObservedBucket {
        lifecycle_rules: desired_rules(spec),
        minimum_object_size: Some(
            minimum_object_size_value(spec.cold_storage.transition_minimum_object_size).into(),
        ),
        encryption: Some(DefaultEncryption {
            algorithm: "AES256".into(),
            kms_key_id: None,
        }),
        public_access_block: Some(PublicAccessBlock::ALL_ON),
        versioning: None,
        policy: Some(json!({
            "Version": "2012-10-17",
            "Statement": [deny_insecure_statement(&spec.cold_storage.bucket)],
        })),
    }
}

fn resources(changes: &[BucketChange]) -> Vec<&str> {
    changes.iter().map(|c| c.resource).collect()
}

#[test]
fn an_empty_bucket_gets_every_setting() {
    let spec = example();
    let changes = plan_bucket_posture(&spec, &ObservedBucket::default());
    assert_eq!(
        resources(&changes),
        ["lifecycle", "encryption", "public_access_block", "policy"]
    );
}

#[test]
fn a_converged_bucket_needs_no_write() {
    let spec = example();
    assert!(plan_bucket_posture(&spec, &converged(&spec)).is_empty());
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
    assert!(plan_bucket_posture(&spec, &observed).is_empty());
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
    let changes = plan_bucket_posture(&spec, &observed);
    let BucketWrite::Lifecycle { rules, .. } = &changes[0].write else {
        panic!("lifecycle first: {:?}", resources(&changes))
    };
    assert_eq!(rules[0], foreign);
    assert_eq!(rules.len(), 3);
    let BucketWrite::Policy(doc) = &changes.last().unwrap().write else {
        panic!("policy last")
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
    let changes = plan_bucket_posture(&spec, &observed);
    assert_eq!(resources(&changes), ["versioning"]);
    assert_eq!(changes[0].after, json!("Suspended"));
    observed.versioning = Some("Suspended".into());
    assert!(plan_bucket_posture(&spec, &observed).is_empty());
}

#[test]
fn a_changed_expiration_rewrites_the_lifecycle_with_before_and_after() {
    let mut spec = example();
    let observed = converged(&spec);
    spec.cold_storage.expiration_days = 500;
    let changes = plan_bucket_posture(&spec, &observed);
    assert_eq!(resources(&changes), ["lifecycle"]);
    assert_eq!(changes[0].before["rules"][0]["expiration_days"], json!(400));
    assert_eq!(changes[0].after["rules"][0]["expiration_days"], json!(500));
}

#[test]
fn the_minimum_object_size_choice_is_enforced() {
    let spec = example();
    let mut observed = converged(&spec);
    observed.minimum_object_size = Some("all_storage_classes_128K".into());
    let changes = plan_bucket_posture(&spec, &observed);
    assert_eq!(resources(&changes), ["lifecycle"]);
    assert_eq!(
        changes[0].after["transition_default_minimum_object_size"],
        json!("varies_by_storage_class")
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
fn steady_state_cost_of_the_example_is_hand_checked() {
    // 40 GB/day: 30 days Standard (1200 GB), 60 days IA (2400 GB), 310 days Glacier IR (12400 GB).
    let spec = example();
    let curve = cost_curve(&spec.cold_storage, spec.cold_storage.cost.as_ref().unwrap());
    let steady = &curve.steady_state;
    let gb: Vec<f64> = steady.tiers.iter().map(|t| t.gb).collect();
    assert_eq!(gb, [1200.0, 2400.0, 12400.0]);
    // 1200*0.023 + 2400*0.0125 + 12400*0.004 = 27.6 + 30 + 49.6
    assert!(
        (steady.total_usd - 107.2).abs() < 1e-9,
        "{}",
        steady.total_usd
    );
    // Month 2 (60 days): 30 days Standard, 30 days IA, nothing in Glacier IR yet.
    let m2 = &curve.months[1];
    assert_eq!(
        m2.tiers.iter().map(|t| t.gb).collect::<Vec<_>>(),
        [1200.0, 1200.0, 0.0]
    );
    assert!((m2.total_usd - (27.6 + 15.0)).abs() < 1e-9);
    // 400 days fill in 14 months; the last equals the steady state.
    assert_eq!(curve.months.len(), 14);
    assert_eq!(curve.months[13].tiers, steady.tiers);
}
