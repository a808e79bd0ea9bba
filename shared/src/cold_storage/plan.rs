//! Pure planning: the bucket posture and the safety rules, from the spec and what was
//! observed, with no I/O.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, ExpirationStatus, IntelligentTieringConfiguration,
    IntelligentTieringStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, Transition, TransitionStorageClass,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::spec::{self, EncryptionAlgorithm, MinimumObjectSize, PlatformSpec};

/// ID of the lifecycle rule that ages ClickHouse's objects through the tiers.
pub const TIER_RULE_ID: &str = "signoz-cold-tiers";
/// ID of the lifecycle rule that aborts incomplete multipart uploads.
pub const ABORT_RULE_ID: &str = "signoz-abort-incomplete-uploads";
/// ID of the lifecycle rule that expires noncurrent versions and expired delete markers.
pub const NONCURRENT_RULE_ID: &str = "signoz-expire-noncurrent";
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
    /// `BucketKeyEnabled` of the rule (S3 reports false when unset).
    pub bucket_key_enabled: bool,
}

impl DefaultEncryption {
    /// Whether `observed` already gives what `self` asks: same algorithm, the same KMS key
    /// however it is spelled (S3 may read an alias back as its ARN), the same bucket key.
    pub fn satisfied_by(&self, observed: &DefaultEncryption) -> bool {
        let same_key = match (&self.kms_key_id, &observed.kms_key_id) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a == b
                    || spec::parse_kms_key(a)
                        .zip(spec::parse_kms_key(b))
                        .is_some_and(|(a, b)| a.same_key(&b))
            }
            _ => false,
        };
        self.algorithm == observed.algorithm
            && same_key
            && (self.algorithm != "aws:kms"
                || self.bucket_key_enabled == observed.bucket_key_enabled)
    }
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
    /// The bucket's S3 Intelligent-Tiering configurations (archive tiers are opt-in there).
    pub intelligent_tiering: Vec<IntelligentTieringConfiguration>,
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

/// The largest retention ever applied to or observed in SigNoz, per signal (days a part
/// lives in S3), and the lease that serialises the writers of the lifecycle and TTLs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionHighWater {
    pub cold_days: BTreeMap<String, u32>,
    /// Where each maximum was learned (the spec, or what SigNoz reported).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub learned_from: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}

/// Who may write the lifecycle and the TTLs now, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: String,
    pub until: jiff::Timestamp,
}

/// Cold days one signal needs, and where that was learned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColdDaysNeeded {
    pub signal: &'static str,
    pub days: u32,
    pub source: String,
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

    /// This memory raised to every `needed` that is larger; `None` when nothing grows.
    pub fn raised_by<'a>(
        &self,
        needed: impl IntoIterator<Item = &'a ColdDaysNeeded>,
    ) -> Option<RetentionHighWater> {
        let mut next = self.clone();
        let mut grew = false;
        for n in needed {
            let days = next.cold_days.entry(n.signal.into()).or_insert(0);
            if n.days > *days {
                *days = n.days;
                next.learned_from.insert(n.signal.into(), n.source.clone());
                grew = true;
            }
        }
        grew.then_some(next)
    }

    /// This memory raised to the spec's retention; `None` when nothing grows.
    pub fn raised_to(&self, retention: &spec::Retention) -> Option<RetentionHighWater> {
        self.raised_by(&spec_cold_days(retention, "spec"))
    }

    /// The lease when it is held by someone else at `now`.
    pub fn leased_to_other(&self, me: &str, now: jiff::Timestamp) -> Option<&Lease> {
        self.lease
            .as_ref()
            .filter(|l| l.holder != me && l.until > now)
    }
}

/// The cold days the spec's retention gives each signal.
pub fn spec_cold_days(r: &spec::Retention, source: &str) -> Vec<ColdDaysNeeded> {
    signals(r)
        .into_iter()
        .map(|(signal, s)| ColdDaysNeeded {
            signal,
            days: s.cold_days(),
            source: source.into(),
        })
        .collect()
}

fn signals(r: &spec::Retention) -> [(&'static str, spec::SignalRetention); 3] {
    [
        ("traces", r.traces),
        ("logs", r.logs),
        ("metrics", r.metrics),
    ]
}

/// The expiration S3 needs so it never deletes an object ClickHouse references: the
/// longest cold period of the spec or the memory, plus the margin; with that signal.
pub fn required_expiration(
    spec: &PlatformSpec,
    memory: &RetentionHighWater,
) -> (u32, &'static str) {
    let (signal, s) = spec::longest_cold_days(&spec.retention);
    let (mut signal, mut days) = (signal, s.cold_days());
    for (name, _) in signals(&spec.retention) {
        if let Some(d) = memory.cold_days.get(name)
            && *d > days
        {
            (signal, days) = (name, *d);
        }
    }
    (days + spec.retention.safety_margin_days, signal)
}

/// The expiration written: the spec's, raised to [`required_expiration`] when the memory
/// needs more.
pub fn expiration_days(spec: &PlatformSpec, memory: &RetentionHighWater) -> u32 {
    spec.cold_storage
        .expiration_days
        .max(required_expiration(spec, memory).0)
}

/// Why the written expiration exceeds the spec's, when it does.
pub fn expiration_raised(spec: &PlatformSpec, memory: &RetentionHighWater) -> Option<String> {
    let (needed, signal) = required_expiration(spec, memory);
    let days = memory.cold_days.get(signal).copied().unwrap_or_default();
    let source = memory
        .learned_from
        .get(signal)
        .map_or(String::new(), |s| format!(" ({s})"));
    (needed > spec.cold_storage.expiration_days).then(|| {
        format!(
            "cold_storage.expiration_days {} is below what parts in ClickHouse need: {signal} keeps parts {days} days in S3{source}, plus retention.safety_margin_days {} = {needed}; wrote {needed}. Set expiration_days to at least {needed}",
            spec.cold_storage.expiration_days, spec.retention.safety_margin_days
        )
    })
}

/// Every reason the spec is unsafe to apply, given what was applied before; empty when safe.
/// The static rules are the spec validator's (second line of defence); the dynamic rule
/// is that the spec's expiration covers the largest retention ever applied. Alarm
/// remedies are bounded by it: they never push the memory past the spec's expiration.
pub fn unsafe_reasons(spec: &PlatformSpec, memory: &RetentionHighWater) -> Vec<String> {
    let mut reasons = static_reasons(spec);
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

fn static_reasons(spec: &PlatformSpec) -> Vec<String> {
    spec::validate(spec)
        .into_iter()
        .filter(|p| p.path.starts_with("cold_storage") || p.path.starts_with("retention"))
        .map(|p| p.to_string())
        .collect()
}

/// Reasons the lifecycle must not be written: the spec (with alarm overrides) breaks a
/// static rule, or rules and configurations other tools own would break ClickHouse's
/// objects (expire them too early or move them to a tier that needs a restore).
pub fn lifecycle_conflicts(
    spec: &PlatformSpec,
    memory: &RetentionHighWater,
    observed: &ObservedBucket,
) -> Vec<String> {
    let mut reasons = static_reasons(spec);
    reasons.extend(foreign_rule_conflicts(
        spec,
        memory,
        &observed.lifecycle_rules,
    ));
    reasons.extend(archive_tier_conflicts(spec, &observed.intelligent_tiering));
    reasons
}

/// Reasons rules other tools own would break ClickHouse's objects.
pub fn foreign_rule_conflicts(
    spec: &PlatformSpec,
    memory: &RetentionHighWater,
    observed: &[LifecycleRule],
) -> Vec<String> {
    let c = &spec.cold_storage;
    let needed = required_expiration(spec, memory).0;
    let mut reasons = Vec::new();
    for rule in observed.iter().filter(|r| !is_ours(r)) {
        if rule.status() != &ExpirationStatus::Enabled || !overlaps(&rule_prefix(rule), &c.prefix) {
            continue;
        }
        let id = rule.id().unwrap_or("(no id)");
        if let Some(expiration) = rule.expiration() {
            if let Some(days) = expiration.days()
                && (days as u32) < needed
            {
                reasons.push(format!(
                    "lifecycle rule {id:?} (not ours) expires objects under {:?} after {days} days; ClickHouse references them for {needed} days: remove or narrow that rule",
                    c.prefix
                ));
            }
            if let Some(date) = expiration.date() {
                reasons.push(format!(
                    "lifecycle rule {id:?} (not ours) expires every object under {:?} on {}, whatever its age, ClickHouse's included: remove or narrow that rule",
                    c.prefix,
                    date_text(date)
                ));
            }
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

fn date_text(date: &aws_sdk_s3::primitives::DateTime) -> String {
    date.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .map(|t| t.trim_end_matches("T00:00:00Z").to_string())
        .unwrap_or_else(|_| date.to_string())
}

/// Intelligent-Tiering's archive tiers need a restore before a read, like GLACIER: a
/// configuration that enables them under ClickHouse's prefix archives every object that
/// reaches the INTELLIGENT_TIERING class and goes unread for its days.
pub fn archive_tier_conflicts(
    spec: &PlatformSpec,
    configurations: &[IntelligentTieringConfiguration],
) -> Vec<String> {
    let prefix = &spec.cold_storage.prefix;
    configurations
        .iter()
        .filter(|c| c.status() == &IntelligentTieringStatus::Enabled)
        .filter(|c| {
            let p = c
                .filter()
                .and_then(|f| f.prefix().or_else(|| f.and().and_then(|a| a.prefix())))
                .unwrap_or_default();
            overlaps(p, prefix)
        })
        .flat_map(|c| {
            c.tierings().iter().map(move |t| {
                format!(
                    "Intelligent-Tiering configuration {:?} archives objects under {prefix:?} unread for {} days to {}, which ClickHouse cannot read without a restore: remove its archive tiers or narrow its filter",
                    c.id(),
                    t.days(),
                    t.access_tier().as_str()
                )
            })
        })
        .collect()
}

fn is_ours(rule: &LifecycleRule) -> bool {
    matches!(
        rule.id(),
        Some(TIER_RULE_ID | ABORT_RULE_ID | NONCURRENT_RULE_ID)
    )
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

/// The rules this control plane owns: the tiers with `expiration_days`, aborting
/// incomplete uploads, and expiring noncurrent versions and expired delete markers.
pub fn desired_rules(spec: &PlatformSpec, expiration_days: u32) -> Vec<LifecycleRule> {
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
                .days(expiration_days as i32)
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
    // Versioning once enabled can only be suspended: the versions it made become
    // noncurrent, and deletes leave delete markers; both are billed until expired.
    let noncurrent = LifecycleRule::builder()
        .id(NONCURRENT_RULE_ID)
        .filter(filter())
        .status(ExpirationStatus::Enabled)
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(c.noncurrent_expiration_days as i32)
                .build(),
        )
        .expiration(
            LifecycleExpiration::builder()
                .expired_object_delete_marker(true)
                .build(),
        )
        .build()
        .expect("status is set");
    vec![tiers, abort, noncurrent]
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
    let expiration = rule.expiration();
    json!({
        "id": rule.id(),
        "prefix": rule_prefix(rule),
        "status": rule.status().as_str(),
        "transitions": transitions.into_iter().map(|(d, c)| json!({"days": d, "storage_class": c})).collect::<Vec<_>>(),
        "expiration_days": expiration.and_then(|e| e.days()),
        "expiration_date": expiration.and_then(|e| e.date()).map(date_text),
        "expired_object_delete_marker": expiration.and_then(|e| e.expired_object_delete_marker()).unwrap_or(false),
        "abort_incomplete_multipart_days": rule.abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation()),
        "noncurrent_expiration_days": rule.noncurrent_version_expiration().and_then(|n| n.noncurrent_days()),
        "noncurrent_transitions": !rule.noncurrent_version_transitions().is_empty(),
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
    let kms = e.algorithm == EncryptionAlgorithm::AwsKms;
    DefaultEncryption {
        algorithm: if kms { "aws:kms" } else { "AES256" }.into(),
        kms_key_id: e.kms_key_id.clone(),
        bucket_key_enabled: kms && e.bucket_key_enabled.unwrap_or(true),
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

/// The writes that bring the bucket to the spec's posture, given the retention memory
/// (it sets the expiration); empty when it is already right. Access and encryption come
/// first, the lifecycle last: it is the one write that needs SigNoz's retention.
#[tracing::instrument(level = "debug", name = "plan.bucket_posture", skip_all)]
pub fn plan_bucket_posture(
    spec: &PlatformSpec,
    observed: &ObservedBucket,
    memory: &RetentionHighWater,
) -> Vec<BucketChange> {
    let bucket = &spec.cold_storage.bucket;
    let mut changes = Vec::new();

    if observed.public_access_block != Some(PublicAccessBlock::ALL_ON) {
        changes.push(BucketChange {
            resource: "public_access_block",
            before: json!(observed.public_access_block),
            after: json!(PublicAccessBlock::ALL_ON),
            write: BucketWrite::PublicAccessBlock(PublicAccessBlock::ALL_ON),
        });
    }

    let encryption = desired_encryption(spec);
    if !observed
        .encryption
        .as_ref()
        .is_some_and(|o| encryption.satisfied_by(o))
    {
        changes.push(BucketChange {
            resource: "encryption",
            before: json!(observed.encryption),
            after: json!(encryption),
            write: BucketWrite::Encryption(encryption),
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

    let desired = desired_rules(spec, expiration_days(spec, memory));
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
    changes
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
