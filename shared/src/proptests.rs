//! Property tests over every input the functions take: event payloads, spec documents,
//! and the planners' desired/observed states. Case counts stay modest so the whole suite
//! runs in seconds.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, Transition,
    TransitionStorageClass,
};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::cluster::apply::differing_fields;
use crate::cluster::render::render_owned_objects;
use crate::cluster::render::values::render_helm_values;
use crate::cluster::secret::render_database_secret;
use crate::cold_storage::plan::{
    self, BucketWrite, DefaultEncryption, ObservedBucket, PublicAccessBlock, RetentionHighWater,
};
use crate::events::{DecodeError, decode};
use crate::spec::{EXAMPLE_SPEC, PlatformSpec, parse_spec, validate};

/// Every sample payload shipped in `events/`.
const SAMPLES: &[&str] = &[
    include_str!("../../events/alarm-lambda-action-composite.json"),
    include_str!("../../events/alarm-lambda-action.json"),
    include_str!("../../events/alarm-state-change-ok.json"),
    include_str!("../../events/alarm-state-change.json"),
    include_str!("../../events/cloudtrail-delete-bucket-encryption.json"),
    include_str!("../../events/cloudtrail-delete-bucket-lifecycle.json"),
    include_str!("../../events/cloudtrail-delete-public-access-block.json"),
    include_str!("../../events/cloudtrail-put-bucket-lifecycle.json"),
    include_str!("../../events/cloudtrail-put-bucket-policy.json"),
    include_str!("../../events/cloudtrail-put-bucket-versioning.json"),
    include_str!("../../events/control-provision-database.json"),
    include_str!("../../events/control-reconcile-cold-storage.json"),
    include_str!("../../events/control-sync-cluster.json"),
    include_str!("../../events/rds-instance-created.json"),
    include_str!("../../events/rotation-create-secret.json"),
    include_str!("../../events/rotation-finish-secret.json"),
    include_str!("../../events/rotation-set-secret.json"),
    include_str!("../../events/rotation-test-secret.json"),
    include_str!("../../events/s3-object-created-eventbridge.json"),
    include_str!("../../events/s3-spec-written.json"),
    include_str!("../../events/schedule.json"),
];

fn example() -> PlatformSpec {
    parse_spec(EXAMPLE_SPEC).expect("the example spec is valid")
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON document, biased towards the keys the decoders look at.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("Records".to_string()),
        Just("eventSource".to_string()),
        Just("source".to_string()),
        Just("detail-type".to_string()),
        Just("detail".to_string()),
        Just("Step".to_string()),
        Just("SecretId".to_string()),
        Just("ClientRequestToken".to_string()),
        Just("alarmData".to_string()),
        Just("action".to_string()),
        "[a-zA-Z-]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            Just("aws:s3".to_string()),
            Just("aws.events".to_string()),
            Just("aws.s3".to_string()),
            Just("Scheduled Event".to_string()),
            Just("signoz.control-plane".to_string()),
            Just("createSecret".to_string()),
            ".{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON pointers of every node below the root.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        _ => {}
    }
}

/// One edit of a document: drop a node, or give it another type.
#[derive(Debug, Clone)]
enum Mutation {
    Drop(usize),
    Replace(usize, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let replacement = prop_oneof![
        Just(Value::Null),
        Just(json!(true)),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!(u64::MAX)),
        Just(json!("")),
        Just(json!("x")),
        Just(json!([])),
        Just(json!({})),
        Just(json!([{}])),
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Drop),
        (any::<usize>(), replacement).prop_map(|(i, v)| Mutation::Replace(i, v)),
    ]
}

fn mutate(mut doc: Value, mutations: &[Mutation]) -> Value {
    for m in mutations {
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        if all.is_empty() {
            break;
        }
        let (index, replacement) = match m {
            Mutation::Drop(i) => (*i, None),
            Mutation::Replace(i, v) => (*i, Some(v.clone())),
        };
        let pointer = &all[index % all.len()];
        match replacement {
            Some(v) => *doc.pointer_mut(pointer).expect("pointer was collected") = v,
            None => {
                let (parent, last) = pointer.rsplit_once('/').expect("below the root");
                let last = last.replace("~1", "/").replace("~0", "~");
                match doc.pointer_mut(parent).expect("parent exists") {
                    Value::Object(map) => {
                        map.remove(&last);
                    }
                    Value::Array(items) => {
                        items.remove(last.parse::<usize>().expect("array index"));
                    }
                    _ => unreachable!("pointers only descend into containers"),
                }
            }
        }
    }
    doc
}

/// A decode error that tells the operator what is wrong: a non-empty reason naming the
/// kind of event or what was expected.
fn assert_names_problem(err: &DecodeError) {
    let text = err.to_string();
    match err {
        DecodeError::Unsupported(why) => assert!(!why.trim().is_empty(), "empty reason: {text}"),
        DecodeError::Malformed { kind, reason } => {
            assert!(!kind.is_empty() && !reason.trim().is_empty(), "{text}")
        }
        DecodeError::NotHandled { .. } => unreachable!("decode does not route"),
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_json_decodes_or_is_refused_with_a_reason(payload in arbitrary_json()) {
        if let Err(e) = decode(payload) {
            assert_names_problem(&e);
        }
    }

    #[test]
    fn mutated_sample_events_decode_or_are_refused_with_a_reason(
        sample in 0..SAMPLES.len(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let doc: Value = serde_json::from_str(SAMPLES[sample]).expect("sample is JSON");
        if let Err(e) = decode(mutate(doc, &mutations)) {
            assert_names_problem(&e);
        }
    }
}

#[test]
fn every_sample_event_decodes_unmutated() {
    for sample in SAMPLES {
        let doc: Value = serde_json::from_str(sample).expect("sample is JSON");
        decode(doc).expect("each shipped sample decodes");
    }
}

fn assert_spec_problems_are_named(err: &crate::spec::SpecError) {
    let problems = err.problems();
    assert!(!problems.is_empty(), "an invalid spec lists its problems");
    for p in problems {
        assert!(!p.path.is_empty() && !p.message.trim().is_empty(), "{p}");
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn any_text_as_a_spec_is_refused_without_panicking(text in ".{0,200}") {
        if let Err(e) = parse_spec(&text) {
            assert_spec_problems_are_named(&e);
        }
    }

    #[test]
    fn any_yaml_document_as_a_spec_is_refused_without_panicking(doc in arbitrary_json()) {
        let text = serde_norway::to_string(&doc).expect("JSON values serialise to YAML");
        if let Err(e) = parse_spec(&text) {
            assert_spec_problems_are_named(&e);
        }
    }

    #[test]
    fn mutated_example_specs_parse_or_name_their_problems(
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let doc: Value = serde_norway::from_str(EXAMPLE_SPEC).expect("example is YAML");
        let text = serde_norway::to_string(&mutate(doc, &mutations)).expect("serialises");
        match parse_spec(&text) {
            Ok(spec) => assert_invariants(&spec),
            Err(e) => assert_spec_problems_are_named(&e),
        }
    }
}

/// The spec knobs the safety invariants depend on.
#[derive(Debug, Clone)]
struct Knobs {
    transitions: BTreeMap<String, u32>,
    expiration_days: u32,
    retention: [(u32, u32); 3],
    safety_margin_days: u32,
    sampler_argument: Option<String>,
    replicas: (u32, u32, u32),
}

/// Knobs of every kind: arbitrary, valid, and valid nudged across one rule's boundary,
/// so accepted and refused specs both come up often.
fn knobs() -> impl Strategy<Value = Knobs> {
    prop_oneof![
        1 => wild_knobs(),
        1 => valid_knobs(),
        3 => (valid_knobs(), 0usize..8, -2i64..=2).prop_map(|(k, which, delta)| nudge(k, which, delta)),
    ]
}

/// `k` with one knob set near the boundary of the rule guarding it.
fn nudge(mut k: Knobs, which: usize, delta: i64) -> Knobs {
    let near = |v: u32| u32::try_from((i64::from(v) + delta).max(0)).unwrap_or(0);
    let ia = k.transitions.get("STANDARD_IA").copied().unwrap_or(30);
    let last = k.transitions.values().max().copied().unwrap_or(0);
    let longest_cold = k.retention.iter().map(|(t, h)| t - h).max().unwrap_or(0);
    match which {
        0 => {
            k.transitions.insert("STANDARD_IA".into(), near(30));
        }
        1 => {
            k.transitions.insert("GLACIER_IR".into(), near(ia + 30));
        }
        2 => k.expiration_days = near(last + 1),
        3 => k.expiration_days = near(longest_cold + k.safety_margin_days),
        4 => k.retention[0].1 = near(k.retention[0].0),
        5 => k.sampler_argument = Some((1.0 + delta as f64 / 100.0).to_string()),
        6 => {
            let class = if delta < 0 { "GLACIER" } else { "DEEP_ARCHIVE" };
            k.transitions.insert(class.into(), last + 30);
        }
        _ => k.replicas.1 = near(k.replicas.0),
    }
    k
}

fn wild_knobs() -> impl Strategy<Value = Knobs> {
    let class = prop_oneof![
        4 => Just("STANDARD_IA"),
        4 => Just("GLACIER_IR"),
        1 => Just("GLACIER"),
        1 => Just("DEEP_ARCHIVE"),
        1 => Just("ONEZONE_IA"),
    ];
    let days = 0u32..500;
    let signal = (1u32..500, 0u32..120);
    let argument = prop_oneof![
        Just(None),
        (-0.5f64..1.5).prop_map(|r| Some(r.to_string())),
        Just(Some("1".to_string())),
        Just(Some("NaN".to_string())),
        Just(Some("half".to_string())),
    ];
    (
        prop::collection::btree_map(class.prop_map(str::to_string), days.clone(), 0..3),
        0u32..900,
        [signal.clone(), signal.clone(), signal],
        0u32..40,
        argument,
        (0u32..12, 0u32..12, 0u32..12),
    )
        .prop_map(
            |(transitions, expiration_days, retention, safety_margin_days, arg, replicas)| Knobs {
                transitions,
                expiration_days,
                retention,
                safety_margin_days,
                sampler_argument: arg,
                replicas,
            },
        )
}

fn spec_with(k: &Knobs) -> PlatformSpec {
    let mut spec = example();
    let c = &mut spec.cold_storage;
    c.transitions = k.transitions.clone();
    c.expiration_days = k.expiration_days;
    let r = &mut spec.retention;
    for (signal, (total, hot)) in [&mut r.traces, &mut r.logs, &mut r.metrics]
        .into_iter()
        .zip(k.retention)
    {
        signal.total_days = total;
        signal.hot_days = hot;
    }
    r.safety_margin_days = k.safety_margin_days;
    spec.instrumentation.sampler.argument = k.sampler_argument.clone();
    let (min, max, fallback) = k.replicas;
    spec.collectors.min_replicas = min;
    spec.collectors.max_replicas = max;
    spec.collectors.scaling.fallback_replicas = fallback;
    // The alarm policies bound some knobs from below (ceiling, floor); keep them out of
    // the way so generated specs can validate.
    spec.alarms.policies.clear();
    spec
}

/// A spec knob set that satisfies the rules, so the planners see many valid specs.
fn valid_knobs() -> impl Strategy<Value = Knobs> {
    (
        30u32..200,
        prop::option::of(30u32..200),
        prop::array::uniform3((1u32..120, 1u32..300)),
        crate::spec::MIN_SAFETY_MARGIN_DAYS..30,
        0u32..50,
        (1u32..5, 0u32..10),
        0.0f64..=1.0,
    )
        .prop_map(
            |(ia, gir_after, signals, margin, slack, (min, extra), ratio)| {
                let mut transitions = BTreeMap::from([("STANDARD_IA".to_string(), ia)]);
                let mut last = ia;
                if let Some(after) = gir_after {
                    last = ia + after;
                    transitions.insert("GLACIER_IR".into(), last);
                }
                let retention = signals.map(|(hot, cold)| (hot + cold, hot));
                let longest_cold = signals.iter().map(|(_, cold)| *cold).max().unwrap_or(0);
                Knobs {
                    transitions,
                    expiration_days: (last + 1).max(longest_cold + margin) + slack,
                    retention,
                    safety_margin_days: margin,
                    sampler_argument: Some(ratio.to_string()),
                    replicas: (min, min + extra, min),
                }
            },
        )
}

/// DESIGN.md's safety invariants, checked on a spec the loader accepted.
fn assert_invariants(spec: &PlatformSpec) {
    let c = &spec.cold_storage;
    for class in c.transitions.keys() {
        assert!(
            class == "STANDARD_IA" || class == "GLACIER_IR",
            "unreadable or unknown tier {class} accepted"
        );
    }
    let ia = c.transitions.get("STANDARD_IA");
    if let Some(ia) = ia {
        assert!(*ia >= 30, "STANDARD_IA at {ia} days accepted");
    }
    if let (Some(ia), Some(gir)) = (ia, c.transitions.get("GLACIER_IR")) {
        assert!(
            *gir >= ia + 30,
            "GLACIER_IR {gir} < STANDARD_IA {ia} + 30 accepted"
        );
    }
    if let Some(last) = c.transitions.values().max() {
        assert!(
            c.expiration_days > *last,
            "expiration not after the last transition"
        );
    }
    let r = &spec.retention;
    assert!(
        r.safety_margin_days >= crate::spec::MIN_SAFETY_MARGIN_DAYS,
        "margin {} below the floor accepted",
        r.safety_margin_days
    );
    for s in [r.traces, r.logs, r.metrics] {
        assert!(
            s.hot_days < s.total_days,
            "hot {} >= total {}",
            s.hot_days,
            s.total_days
        );
        assert!(
            c.expiration_days >= s.total_days - s.hot_days + r.safety_margin_days,
            "expiration {} deletes parts ClickHouse still references ({s:?}, margin {})",
            c.expiration_days,
            r.safety_margin_days
        );
    }
    let sampler = &spec.instrumentation.sampler;
    if sampler.kind.ends_with("traceidratio") {
        let ratio: f64 = sampler
            .argument
            .as_deref()
            .and_then(|a| a.parse().ok())
            .expect("a ratio sampler has a numeric argument");
        assert!((0.0..=1.0).contains(&ratio), "ratio {ratio} accepted");
    }
    let k = &spec.collectors;
    assert!(1 <= k.min_replicas && k.min_replicas <= k.max_replicas);
    assert!((k.min_replicas..=k.max_replicas).contains(&k.scaling.fallback_replicas));
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn every_spec_the_loader_accepts_keeps_the_safety_invariants(k in knobs()) {
        let spec = spec_with(&k);
        let text = serde_norway::to_string(&spec).expect("spec serialises");
        match parse_spec(&text) {
            Ok(parsed) => {
                assert_invariants(&parsed);
                prop_assert_eq!(parsed, spec);
            }
            Err(e) => {
                assert_spec_problems_are_named(&e);
                prop_assert!(!validate(&spec).is_empty());
            }
        }
    }

    #[test]
    fn generated_valid_specs_are_accepted(k in valid_knobs()) {
        let spec = spec_with(&k);
        let problems = validate(&spec);
        prop_assert!(problems.is_empty(), "{:?} for {:?}", problems, k);
    }
}

/// A lifecycle rule someone else owns (or a stale copy of one of ours).
fn lifecycle_rule() -> impl Strategy<Value = LifecycleRule> {
    let id = prop_oneof![
        3 => "[a-z-]{1,12}".prop_map(Some),
        1 => Just(Some(plan::TIER_RULE_ID.to_string())),
        1 => Just(Some(plan::ABORT_RULE_ID.to_string())),
        1 => Just(None),
    ];
    let prefix = prop_oneof![
        Just("clickhouse/".to_string()),
        Just("other/".to_string()),
        Just(String::new())
    ];
    (
        id,
        prefix,
        any::<bool>(),
        prop::option::of(1i32..900),
        prop::collection::vec(
            (
                1i32..400,
                prop_oneof![
                    Just("STANDARD_IA"),
                    Just("GLACIER_IR"),
                    Just("INTELLIGENT_TIERING")
                ],
            ),
            0..3,
        ),
    )
        .prop_map(|(id, prefix, enabled, expiration, transitions)| {
            LifecycleRule::builder()
                .set_id(id)
                .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
                .status(if enabled {
                    ExpirationStatus::Enabled
                } else {
                    ExpirationStatus::Disabled
                })
                .set_expiration(expiration.map(|d| LifecycleExpiration::builder().days(d).build()))
                .set_transitions(Some(
                    transitions
                        .into_iter()
                        .map(|(d, c)| {
                            Transition::builder()
                                .days(d)
                                .storage_class(TransitionStorageClass::from(c))
                                .build()
                        })
                        .collect(),
                ))
                .build()
                .expect("status is set")
        })
}

fn policy_statement(bucket: String) -> impl Strategy<Value = Value> {
    prop_oneof![
        "[A-Za-z]{1,10}".prop_map(|sid| json!({
            "Sid": sid, "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::x/*",
        })),
        Just(
            json!({"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": "arn:aws:s3:::x"})
        ),
        // Ours, stale (another bucket's ARNs) or current.
        Just(plan::deny_insecure_statement("another-bucket")),
        Just(plan::deny_insecure_statement(&bucket)),
    ]
}

fn observed_bucket(bucket: String) -> impl Strategy<Value = ObservedBucket> {
    let policy = prop_oneof![
        Just(None),
        prop::collection::vec(policy_statement(bucket.clone()), 0..4)
            .prop_map(|s| Some(json!({"Version": "2012-10-17", "Statement": s}))),
        policy_statement(bucket)
            .prop_map(|s| Some(json!({"Version": "2012-10-17", "Statement": s}))),
    ];
    let encryption = prop::option::of(prop_oneof![
        Just(DefaultEncryption {
            algorithm: "AES256".into(),
            kms_key_id: None,
            bucket_key_enabled: false,
        }),
        Just(DefaultEncryption {
            algorithm: "aws:kms".into(),
            kms_key_id: Some("alias/x".into()),
            bucket_key_enabled: false,
        }),
        // Ours, read back as the alias's ARN with the bucket key on.
        Just(DefaultEncryption {
            algorithm: "aws:kms".into(),
            kms_key_id: Some("arn:aws:kms:eu-west-1:123456789012:alias/signoz-cold".into()),
            bucket_key_enabled: true,
        }),
    ]);
    let pab = prop::option::of(
        prop::array::uniform4(any::<bool>()).prop_map(|[a, b, c, d]| PublicAccessBlock {
            block_public_acls: a,
            ignore_public_acls: b,
            block_public_policy: c,
            restrict_public_buckets: d,
        }),
    );
    (
        prop::collection::vec(lifecycle_rule(), 0..5),
        prop::option::of(prop_oneof![
            Just("all_storage_classes_128K".to_string()),
            Just("varies_by_storage_class".to_string())
        ]),
        encryption,
        pab,
        prop::option::of(prop_oneof![
            Just("Enabled".to_string()),
            Just("Suspended".to_string())
        ]),
        policy,
    )
        .prop_map(
            |(
                lifecycle_rules,
                minimum_object_size,
                encryption,
                public_access_block,
                versioning,
                policy,
            )| {
                ObservedBucket {
                    lifecycle_rules,
                    minimum_object_size,
                    encryption,
                    public_access_block,
                    versioning,
                    policy,
                    intelligent_tiering: Vec::new(),
                }
            },
        )
}

/// The bucket as S3 holds it after the planned writes succeed.
fn apply_to_observed(mut bucket: ObservedBucket, changes: &[plan::BucketChange]) -> ObservedBucket {
    for change in changes {
        match &change.write {
            BucketWrite::Lifecycle {
                rules,
                minimum_object_size,
            } => {
                bucket.lifecycle_rules = rules.clone();
                bucket.minimum_object_size = Some(minimum_object_size.to_string());
            }
            BucketWrite::Encryption(e) => bucket.encryption = Some(e.clone()),
            BucketWrite::PublicAccessBlock(p) => bucket.public_access_block = Some(*p),
            BucketWrite::SuspendVersioning => bucket.versioning = Some("Suspended".into()),
            BucketWrite::Policy(document) => {
                bucket.policy = Some(serde_json::from_str(document).expect("policy is JSON"))
            }
        }
    }
    bucket
}

fn is_ours(rule: &LifecycleRule) -> bool {
    matches!(
        rule.id(),
        Some(plan::TIER_RULE_ID | plan::ABORT_RULE_ID | plan::NONCURRENT_RULE_ID)
    )
}

fn foreign_statements(policy: Option<&Value>) -> Vec<Value> {
    let statements = match policy.and_then(|p| p.get("Statement")) {
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    statements
        .into_iter()
        .filter(|s| s.get("Sid").and_then(Value::as_str) != Some(plan::DENY_INSECURE_SID))
        .collect()
}

fn spec_and_bucket() -> impl Strategy<Value = (PlatformSpec, ObservedBucket)> {
    (valid_knobs(), any::<bool>()).prop_flat_map(|(k, kms)| {
        let mut spec = spec_with(&k);
        if kms {
            spec.cold_storage.encryption.algorithm = crate::spec::EncryptionAlgorithm::AwsKms;
            spec.cold_storage.encryption.kms_key_id = Some("alias/signoz-cold".into());
        }
        let bucket = spec.cold_storage.bucket.clone();
        (Just(spec), observed_bucket(bucket))
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn a_planned_bucket_replans_to_nothing_and_keeps_foreign_settings(
        (spec, observed) in spec_and_bucket(),
    ) {
        let memory = RetentionHighWater::default();
        let changes = plan::plan_bucket_posture(&spec, &observed, &memory);
        let after = apply_to_observed(observed.clone(), &changes);
        let again = plan::plan_bucket_posture(&spec, &after, &memory);
        prop_assert!(again.is_empty(), "re-plan wants {:?}", again.iter().map(|c| c.resource).collect::<Vec<_>>());

        for rule in observed.lifecycle_rules.iter().filter(|r| !is_ours(r)) {
            prop_assert!(after.lifecycle_rules.contains(rule), "foreign rule {:?} dropped", rule.id());
        }
        let kept = foreign_statements(after.policy.as_ref());
        for statement in foreign_statements(observed.policy.as_ref()) {
            prop_assert!(kept.contains(&statement), "foreign statement {statement} dropped");
        }
        // Every plan entry says what it replaces and with what.
        for c in &changes {
            prop_assert!(c.before != c.after, "{} logs no difference", c.resource);
        }
    }

    #[test]
    fn an_accepted_spec_renders_cluster_objects_that_pass_validation_deterministically(
        k in valid_knobs(),
        dsn_password in "[A-Za-z0-9]{8,32}",
    ) {
        let spec = spec_with(&k);
        let objects = render_owned_objects(&spec).expect("a valid spec renders");
        prop_assert_eq!(&objects, &render_owned_objects(&spec).expect("renders twice"));
        prop_assert_eq!(render_helm_values(&spec), render_helm_values(&spec));
        let dsn = format!("postgres://u:{dsn_password}@db:5432/signoz?sslmode=verify-full");
        let source = crate::cluster::secret::DsnSource {
            dsn,
            ca_bundle: "-----BEGIN CERTIFICATE-----".into(),
            version_id: "v1".into(),
            authority: None,
        };
        let secret = render_database_secret(&spec, &source);
        prop_assert_eq!(&secret, &render_database_secret(&spec, &source));

        for object in objects.iter().chain([&secret]) {
            let body = object.body_with_hash();
            prop_assert_eq!(&body, &object.body_with_hash());
            // What the server returns after a server-side apply: our fields, its own
            // metadata and status, integers possibly rendered as floats.
            let live = as_server_returns(&body);
            let left = differing_fields(&body, &live);
            prop_assert!(left.is_empty(), "{} differs after apply at {:?}", object.id(), left.iter().map(|c| &c.path).collect::<Vec<_>>());
        }
    }
}

/// A body as the API server hands it back: nulls dropped, numbers as floats, metadata
/// and status added.
fn as_server_returns(body: &Value) -> Value {
    fn normalise(v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), normalise(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
            Value::Number(n) => json!(n.as_f64().expect("finite")),
            other => other.clone(),
        }
    }
    let mut live = normalise(body);
    if let Some(metadata) = live.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("uid".into(), json!("0b7e2f0c"));
        metadata.insert("resourceVersion".into(), json!("42"));
        metadata.insert(
            "managedFields".into(),
            json!([{"manager": "signoz-control-plane"}]),
        );
    }
    live["status"] = json!({"observedGeneration": 1});
    live
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn the_ttls_of_a_valid_spec_are_ones_signoz_accepts_and_s3_outlives(k in valid_knobs()) {
        let spec = spec_with(&k);
        for t in crate::cold_storage::ttl::plan_ttls(&spec.retention) {
            prop_assert!(0 < t.hot_days && t.hot_days < t.total_days, "{:?}", t);
            let cold_days = u64::from(t.total_days - t.hot_days);
            let margin = u64::from(spec.retention.safety_margin_days);
            prop_assert!(
                cold_days + margin <= u64::from(spec.cold_storage.expiration_days),
                "S3 expires {} parts before ClickHouse drops them",
                t.signal
            );
        }
    }

    #[test]
    fn a_valid_spec_is_refused_exactly_when_a_longer_retention_was_once_applied(
        k in valid_knobs(),
        remembered in 0u32..900,
    ) {
        let spec = spec_with(&k);
        prop_assert!(plan::unsafe_reasons(&spec, &RetentionHighWater::default()).is_empty());
        let memory = RetentionHighWater {
            cold_days: BTreeMap::from([("metrics".to_string(), remembered)]),
            ..RetentionHighWater::default()
        };
        let needed = remembered + spec.retention.safety_margin_days;
        let reasons = plan::unsafe_reasons(&spec, &memory);
        prop_assert_eq!(
            !reasons.is_empty(),
            spec.cold_storage.expiration_days < needed,
            "{:?}",
            reasons
        );
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn the_expiration_written_always_covers_the_memory_and_the_spec(
        k in valid_knobs(),
        signal in prop_oneof![Just("traces"), Just("logs"), Just("metrics")],
        remembered in 0u32..2000,
    ) {
        let spec = spec_with(&k);
        let memory = RetentionHighWater {
            cold_days: BTreeMap::from([(signal.to_string(), remembered)]),
            ..RetentionHighWater::default()
        };
        let changes = plan::plan_bucket_posture(&spec, &ObservedBucket::default(), &memory);
        let Some(BucketWrite::Lifecycle { rules, .. }) = changes.iter().map(|c| &c.write).find(|w| matches!(w, BucketWrite::Lifecycle { .. })) else {
            panic!("an empty bucket gets a lifecycle");
        };
        let expiration = rules
            .iter()
            .find(|r| r.id() == Some(plan::TIER_RULE_ID))
            .and_then(|r| r.expiration())
            .and_then(|e| e.days())
            .expect("the tier rule expires") as u32;
        prop_assert!(expiration >= spec.cold_storage.expiration_days);
        prop_assert!(expiration >= remembered + spec.retention.safety_margin_days);
    }
}

// Regressions the properties above found, pinned so they do not depend on the generator.

#[test]
fn an_unknown_empty_key_is_named_in_its_problem() {
    let text = format!("\"\": 1\n{EXAMPLE_SPEC}");
    let err = parse_spec(&text).expect_err("an unknown key");
    assert_eq!(err.problems()[0].path, "\"\"");
    assert_eq!(err.problems()[0].message, "unknown key");
}

#[test]
fn numbers_inside_atomic_lists_that_come_back_as_floats_are_no_change() {
    let desired = json!({"spec": {"weights": [{"weight": 100}, {"weight": 1}]}});
    let live = json!({"spec": {"weights": [{"weight": 100.0}, {"weight": 1.0}]}});
    assert!(differing_fields(&desired, &live).is_empty());
    let changed = json!({"spec": {"weights": [{"weight": 100.0}, {"weight": 2.0}]}});
    let paths: Vec<String> = differing_fields(&desired, &changed)
        .into_iter()
        .map(|c| c.path)
        .collect();
    assert_eq!(
        paths,
        [".spec.weights"],
        "an atomic list changes as a whole"
    );
}
