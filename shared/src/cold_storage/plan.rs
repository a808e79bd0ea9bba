//! Pure planning: the bucket posture and the safety rules, from the spec and what was
//! observed, with no I/O.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, Transition, TransitionStorageClass,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::spec::{self, EncryptionAlgorithm, MinimumObjectSize, PlatformSpec};

/// ID of the lifecycle rule that ages ClickHouse's objects through the tiers.
pub const TIER_RULE_ID: &str = "signoz-cold-tiers";
/// ID of the lifecycle rule that aborts incomplete multipart uploads.
pub const ABORT_RULE_ID: &str = "signoz-abort-incomplete-uploads";
/// `Sid` of the bucket-policy statement that denies requests without TLS.
pub const DENY_INSECURE_SID: &str = "SignozDenyInsecureTransport";
/// Storage classes that need a restore before a read: ClickHouse fails on them.
const UNREADABLE_TIERS: [&str; 2] = ["GLACIER", "DEEP_ARCHIVE"];

/// The four public-access-block settings, in S3's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    /// Every setting on.
    pub const ALL_ON: PublicAccessBlock = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
}

/// Default encryption of the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefaultEncryption {
    pub algorithm: String,
    pub kms_key_id: Option<String>,
}

/// What the bucket has now, as read by the adapter.
#[derive(Debug, Clone, Default)]
pub struct ObservedBucket {
    pub lifecycle_rules: Vec<LifecycleRule>,
    /// `TransitionDefaultMinimumObjectSize` as reported (S3's wire value).
    pub minimum_object_size: Option<String>,
    pub encryption: Option<DefaultEncryption>,
    pub public_access_block: Option<PublicAccessBlock>,
    /// `Enabled`, `Suspended`, or `None` when versioning was never enabled.
    pub versioning: Option<String>,
    pub policy: Option<Value>,
}

/// One write the applier performs, with what it replaces (for the log and the report).
#[derive(Debug, Clone)]
pub struct BucketChange {
    pub resource: &'static str,
    pub before: Value,
    pub after: Value,
    pub write: BucketWrite,
}

/// The write call a [`BucketChange`] needs.
#[derive(Debug, Clone)]
pub enum BucketWrite {
    /// PutBucketLifecycleConfiguration with the merged rules.
    Lifecycle {
        rules: Vec<LifecycleRule>,
        minimum_object_size: &'static str,
    },
    /// PutBucketEncryption.
    Encryption(DefaultEncryption),
    /// PutPublicAccessBlock.
    PublicAccessBlock(PublicAccessBlock),
    /// PutBucketVersioning `Suspended` (versioning once enabled cannot be turned off).
    SuspendVersioning,
    /// PutBucketPolicy with the merged document.
    Policy(String),
}

/// The largest retention ever applied, per signal (days a part lives in S3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionHighWater {
    pub cold_days: BTreeMap<String, u32>,
}

impl RetentionHighWater {
    /// State key of this document.
    pub const KEY: &'static str = "cold-storage/retention-high-water.json";

    /// The largest remembered cold period and its signal.
    pub fn longest(&self) -> Option<(&str, u32)> {
        self.cold_days
            .iter()
            .max_by_key(|(_, d)| **d)
            .map(|(s, d)| (s.as_str(), *d))
    }

    /// This memory raised to the spec's retention; `None` when nothing grows.
    pub fn raised_to(&self, retention: &spec::Retention) -> Option<RetentionHighWater> {
        let mut next = self.clone();
        let mut grew = false;
        for (signal, s) in signals(retention) {
            let days = next.cold_days.entry(signal.into()).or_insert(0);
            if s.cold_days() > *days {
                *days = s.cold_days();
                grew = true;
            }
        }
        grew.then_some(next)
    }
}

fn signals(r: &spec::Retention) -> [(&'static str, spec::SignalRetention); 3] {
    [
        ("traces", r.traces),
        ("logs", r.logs),
        ("metrics", r.metrics),
    ]
}

/// Every reason the spec is unsafe to apply, given what was applied before; empty when safe.
/// The static rules are the spec validator's (second line of defence); the dynamic rule
/// is that expiration never falls below the largest retention ever applied.
pub fn unsafe_reasons(spec: &PlatformSpec, memory: &RetentionHighWater) -> Vec<String> {
    let mut reasons: Vec<String> = spec::validate(spec)
        .into_iter()
        .filter(|p| p.path.starts_with("cold_storage") || p.path.starts_with("retention"))
        .map(|p| p.to_string())
        .collect();
    let c = &spec.cold_storage;
    if let Some((signal, days)) = memory.longest() {
        let needed = days + spec.retention.safety_margin_days;
        if c.expiration_days < needed {
            reasons.push(format!(
                "cold_storage.expiration_days: would delete objects ClickHouse still references: {signal} was once applied with {days} cold days and old parts keep that TTL, so expiration must be at least {days} + retention.safety_margin_days ({}) = {needed}, got {}",
                spec.retention.safety_margin_days, c.expiration_days
            ));
        }
    }
    reasons
}

/// Reasons rules other tools own would break ClickHouse's objects (expire them too early
/// or move them to a tier that needs a restore).
pub fn foreign_rule_conflicts(
    spec: &PlatformSpec,
    memory: &RetentionHighWater,
    observed: &[LifecycleRule],
) -> Vec<String> {
    let c = &spec.cold_storage;
    let longest = spec::longest_cold_days(&spec.retention).1.cold_days();
    let needed =
        longest.max(memory.longest().map_or(0, |(_, d)| d)) + spec.retention.safety_margin_days;
    let mut reasons = Vec::new();
    for rule in observed.iter().filter(|r| !is_ours(r)) {
        if rule.status() != &ExpirationStatus::Enabled || !overlaps(&rule_prefix(rule), &c.prefix) {
            continue;
        }
        let id = rule.id().unwrap_or("(no id)");
        if let Some(days) = rule.expiration().and_then(|e| e.days())
            && (days as u32) < needed
        {
            reasons.push(format!(
                "lifecycle rule {id:?} (not ours) expires objects under {:?} after {days} days; ClickHouse references them for {needed} days: remove or narrow that rule",
                c.prefix
            ));
        }
        for t in rule.transitions() {
            if let Some(class) = t.storage_class()
                && UNREADABLE_TIERS.contains(&class.as_str())
            {
                reasons.push(format!(
                    "lifecycle rule {id:?} (not ours) moves objects under {:?} to {class}, which ClickHouse cannot read without a restore: remove or narrow that rule",
                    c.prefix
                ));
            }
        }
    }
    reasons
}

fn is_ours(rule: &LifecycleRule) -> bool {
    matches!(rule.id(), Some(TIER_RULE_ID | ABORT_RULE_ID))
}

/// Two key prefixes select overlapping objects when one starts with the other.
fn overlaps(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn rule_prefix(rule: &LifecycleRule) -> String {
    #[allow(deprecated)]
    let legacy = rule.prefix();
    rule.filter()
        .and_then(|f| f.prefix().or_else(|| f.and().and_then(|a| a.prefix())))
        .or(legacy)
        .unwrap_or_default()
        .to_string()
}

/// The rules this control plane owns, built from the spec.
pub fn desired_rules(spec: &PlatformSpec) -> Vec<LifecycleRule> {
    let c = &spec.cold_storage;
    let filter = || LifecycleRuleFilter::builder().prefix(&c.prefix).build();
    let mut transitions: Vec<(u32, &str)> = c
        .transitions
        .iter()
        .map(|(k, d)| (*d, k.as_str()))
        .collect();
    transitions.sort();
    let tiers = LifecycleRule::builder()
        .id(TIER_RULE_ID)
        .filter(filter())
        .status(ExpirationStatus::Enabled)
        .set_transitions(Some(
            transitions
                .into_iter()
                .map(|(days, class)| {
                    Transition::builder()
                        .days(days as i32)
                        .storage_class(TransitionStorageClass::from(class))
                        .build()
                })
                .collect(),
        ))
        .expiration(
            LifecycleExpiration::builder()
                .days(c.expiration_days as i32)
                .build(),
        )
        .build()
        .expect("status is set");
    let abort = LifecycleRule::builder()
        .id(ABORT_RULE_ID)
        .filter(filter())
        .status(ExpirationStatus::Enabled)
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(c.abort_incomplete_multipart_days as i32)
                .build(),
        )
        .build()
        .expect("status is set");
    vec![tiers, abort]
}

/// A rule as the report shows it and as rules are compared: order-free and without the
/// SDK's representation choices (legacy prefix vs filter).
pub fn rule_summary(rule: &LifecycleRule) -> Value {
    let mut transitions: Vec<(i32, String)> = rule
        .transitions()
        .iter()
        .map(|t| {
            (
                t.days().unwrap_or_default(),
                t.storage_class()
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    transitions.sort();
    let filter_has_more = rule.filter().is_some_and(|f| {
        f.tag().is_some()
            || f.and().is_some()
            || f.object_size_greater_than().is_some()
            || f.object_size_less_than().is_some()
    });
    json!({
        "id": rule.id(),
        "prefix": rule_prefix(rule),
        "status": rule.status().as_str(),
        "transitions": transitions.into_iter().map(|(d, c)| json!({"days": d, "storage_class": c})).collect::<Vec<_>>(),
        "expiration_days": rule.expiration().and_then(|e| e.days()),
        "abort_incomplete_multipart_days": rule.abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation()),
        "noncurrent": rule.noncurrent_version_expiration().is_some() || !rule.noncurrent_version_transitions().is_empty(),
        "extra_filter": filter_has_more,
    })
}

/// S3's wire value of the spec's minimum-object-size choice.
pub fn minimum_object_size_value(choice: MinimumObjectSize) -> &'static str {
    match choice {
        MinimumObjectSize::AllStorageClasses128k => "all_storage_classes_128K",
        MinimumObjectSize::VariesByStorageClass => "varies_by_storage_class",
    }
}

fn desired_encryption(spec: &PlatformSpec) -> DefaultEncryption {
    let e = &spec.cold_storage.encryption;
    DefaultEncryption {
        algorithm: match e.algorithm {
            EncryptionAlgorithm::Aes256 => "AES256",
            EncryptionAlgorithm::AwsKms => "aws:kms",
        }
        .into(),
        kms_key_id: e.kms_key_id.clone(),
    }
}

/// The statement denying every request made without TLS.
pub fn deny_insecure_statement(bucket: &str) -> Value {
    json!({
        "Sid": DENY_INSECURE_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    })
}

/// A policy value in a form where equal meaning compares equal: a one-element list is
/// its element, list order does not matter.
fn normalise_policy_value(value: &Value) -> Value {
    match value {
        Value::Array(items) if items.len() == 1 => normalise_policy_value(&items[0]),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalise_policy_value).collect();
            items.sort_by_key(|v| v.to_string());
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalise_policy_value(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn statements(policy: &Value) -> Vec<Value> {
    match policy.get("Statement") {
        Some(Value::Array(items)) => items.clone(),
        Some(single @ Value::Object(_)) => vec![single.clone()],
        _ => Vec::new(),
    }
}

/// The policy with our statement merged in by `Sid`, or `None` when it is already there.
fn merged_policy(observed: Option<&Value>, bucket: &str) -> Option<Value> {
    let ours = deny_insecure_statement(bucket);
    let existing = observed.map(statements).unwrap_or_default();
    let current = existing
        .iter()
        .find(|s| s.get("Sid").and_then(Value::as_str) == Some(DENY_INSECURE_SID));
    if current.is_some_and(|s| normalise_policy_value(s) == normalise_policy_value(&ours)) {
        return None;
    }
    let mut merged = observed
        .cloned()
        .unwrap_or_else(|| json!({"Version": "2012-10-17"}));
    let mut kept: Vec<Value> = existing
        .into_iter()
        .filter(|s| s.get("Sid").and_then(Value::as_str) != Some(DENY_INSECURE_SID))
        .collect();
    kept.push(ours);
    merged["Statement"] = Value::Array(kept);
    Some(merged)
}

/// The writes that bring the bucket to the spec's posture; empty when it is already right.
pub fn plan_bucket_posture(spec: &PlatformSpec, observed: &ObservedBucket) -> Vec<BucketChange> {
    let bucket = &spec.cold_storage.bucket;
    let mut changes = Vec::new();

    let desired = desired_rules(spec);
    let min_size = minimum_object_size_value(spec.cold_storage.transition_minimum_object_size);
    let ours_observed: Vec<Value> = observed
        .lifecycle_rules
        .iter()
        .filter(|r| is_ours(r))
        .map(rule_summary)
        .collect();
    let ours_desired: Vec<Value> = desired.iter().map(rule_summary).collect();
    let sorted = |mut v: Vec<Value>| {
        v.sort_by_key(|r| r.to_string());
        v
    };
    let min_size_right = observed.minimum_object_size.as_deref() == Some(min_size);
    if sorted(ours_observed) != sorted(ours_desired) || !min_size_right {
        let foreign: Vec<LifecycleRule> = observed
            .lifecycle_rules
            .iter()
            .filter(|r| !is_ours(r))
            .cloned()
            .collect();
        let rules: Vec<LifecycleRule> = foreign.into_iter().chain(desired).collect();
        changes.push(BucketChange {
            resource: "lifecycle",
            before: json!({
                "transition_default_minimum_object_size": observed.minimum_object_size,
                "rules": observed.lifecycle_rules.iter().map(rule_summary).collect::<Vec<_>>(),
            }),
            after: json!({
                "transition_default_minimum_object_size": min_size,
                "rules": rules.iter().map(rule_summary).collect::<Vec<_>>(),
            }),
            write: BucketWrite::Lifecycle {
                rules,
                minimum_object_size: min_size,
            },
        });
    }

    let encryption = desired_encryption(spec);
    if observed.encryption.as_ref() != Some(&encryption) {
        changes.push(BucketChange {
            resource: "encryption",
            before: json!(observed.encryption),
            after: json!(encryption),
            write: BucketWrite::Encryption(encryption),
        });
    }

    if observed.public_access_block != Some(PublicAccessBlock::ALL_ON) {
        changes.push(BucketChange {
            resource: "public_access_block",
            before: json!(observed.public_access_block),
            after: json!(PublicAccessBlock::ALL_ON),
            write: BucketWrite::PublicAccessBlock(PublicAccessBlock::ALL_ON),
        });
    }

    if observed.versioning.as_deref() == Some("Enabled") {
        changes.push(BucketChange {
            resource: "versioning",
            before: json!("Enabled"),
            after: json!("Suspended"),
            write: BucketWrite::SuspendVersioning,
        });
    }

    if let Some(policy) = merged_policy(observed.policy.as_ref(), bucket) {
        changes.push(BucketChange {
            resource: "policy",
            before: json!(observed.policy),
            after: policy.clone(),
            write: BucketWrite::Policy(policy.to_string()),
        });
    }
    changes
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
