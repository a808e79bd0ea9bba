//! Every validation rule, proven with its exact message on a mutation of the example spec.

use serde_norway::Value;

use super::*;

/// The example spec with `edit` applied to its YAML tree.
fn spec_with(edit: impl FnOnce(&mut Value)) -> Result<PlatformSpec, SpecError> {
    let mut doc: Value = serde_norway::from_str(EXAMPLE_SPEC).unwrap();
    edit(&mut doc);
    parse_spec(&serde_norway::to_string(&doc).unwrap())
}

fn at<'a>(doc: &'a mut Value, path: &str) -> &'a mut Value {
    path.split('.')
        .fold(doc, |v, key| match key.parse::<usize>() {
            Ok(i) => &mut v[i],
            Err(_) => &mut v[key],
        })
}

fn set(path: &str, value: impl Into<Value>) -> impl FnOnce(&mut Value) {
    let value = value.into();
    move |doc| *at(doc, path) = value
}

fn problems(result: Result<PlatformSpec, SpecError>) -> Vec<String> {
    result
        .expect_err("spec should be rejected")
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[track_caller]
fn rejects(edit: impl FnOnce(&mut Value), expected: &str) {
    let got = problems(spec_with(edit));
    assert_eq!(got, vec![expected.to_string()], "problems: {got:#?}");
}

#[test]
fn the_example_spec_is_valid() {
    let spec = parse_spec(EXAMPLE_SPEC).expect("example spec validates");
    assert_eq!(spec.cold_storage.transitions["GLACIER_IR"], 90);
    assert_eq!(spec.database.strategy, RotationStrategy::AlternatingUsers);
    assert_eq!(spec.alarms.policies.len(), 5);
    assert_eq!(spec.alarms.policies[3].action, AlarmAction::RotateNow);
}

#[test]
fn unknown_keys_are_reported_with_their_paths() {
    let got = problems(spec_with(|doc| {
        at(doc, "cold_storage")["bukcet"] = "x".into();
        at(doc, "instrumentation.workloads.1")["replicas"] = 3.into();
        doc["extra"] = true.into();
    }));
    assert_eq!(
        got,
        vec![
            "cold_storage.bukcet: unknown key",
            "instrumentation.workloads[1].replicas: unknown key",
            "extra: unknown key",
        ]
    );
}

#[test]
fn a_type_error_names_its_path() {
    let got = problems(spec_with(set("collectors.max_replicas", "ten")));
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("collectors.max_replicas: invalid type: string \"ten\", expected u32"),
        "{got:?}"
    );
}

#[test]
fn a_missing_section_is_named() {
    let got = problems(spec_with(|doc| {
        doc.as_mapping_mut().unwrap().remove("retention");
    }));
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("(document): missing field `retention`"),
        "{got:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    // The acceptance example: four different mistakes, four messages.
    let got = problems(spec_with(|doc| {
        set("cold_storage.transitions.STANDARD_IA", 10)(doc);
        at(doc, "cold_storage.transitions")["GLACIER"] = 120.into();
        set("retention.logs.hot_days", 45)(doc);
        set("instrumentation.sampler.argument", "1.5")(doc);
    }));
    assert_eq!(
        got,
        vec![
            "retention.logs.hot_days: must be less than total_days (30), got 45",
            "cold_storage.transitions.GLACIER: storage class GLACIER needs a restore before reads; ClickHouse reads its S3 disk directly and fails with InvalidObjectState: use STANDARD_IA or GLACIER_IR",
            "cold_storage.transitions.STANDARD_IA: S3 refuses a transition to STANDARD_IA before 30 days, got 10",
            "instrumentation.sampler.argument: must be a ratio between 0 and 1, got \"1.5\"",
        ]
    );
}

#[test]
fn standard_ia_needs_thirty_days() {
    rejects(
        set("cold_storage.transitions.STANDARD_IA", 29),
        "cold_storage.transitions.STANDARD_IA: S3 refuses a transition to STANDARD_IA before 30 days, got 29",
    );
}

#[test]
fn glacier_ir_needs_thirty_days_after_standard_ia() {
    rejects(
        set("cold_storage.transitions.GLACIER_IR", 40),
        "cold_storage.transitions.GLACIER_IR: must be at least 30 days after STANDARD_IA (30), got 40",
    );
}

#[test]
fn deep_archive_is_refused() {
    rejects(
        |doc| at(doc, "cold_storage.transitions")["DEEP_ARCHIVE"] = 200.into(),
        "cold_storage.transitions.DEEP_ARCHIVE: storage class DEEP_ARCHIVE needs a restore before reads; ClickHouse reads its S3 disk directly and fails with InvalidObjectState: use STANDARD_IA or GLACIER_IR",
    );
}

#[test]
fn unknown_storage_class_is_refused() {
    rejects(
        |doc| at(doc, "cold_storage.transitions")["ONEZONE_IA"] = 60.into(),
        "cold_storage.transitions.ONEZONE_IA: unsupported storage class \"ONEZONE_IA\": expected STANDARD_IA or GLACIER_IR",
    );
}

#[test]
fn expiration_comes_after_the_last_transition() {
    let got = problems(spec_with(set("cold_storage.expiration_days", 90)));
    assert_eq!(
        got[0],
        "cold_storage.expiration_days: must come after the last transition (GLACIER_IR at 90 days), got 90"
    );
}

#[test]
fn expiration_must_outlive_every_cold_retention_plus_margin() {
    rejects(
        set("cold_storage.expiration_days", 371),
        "cold_storage.expiration_days: would delete objects ClickHouse still references: must be at least retention.metrics cold days (395 - 30 = 365) plus retention.safety_margin_days (7) = 372, got 371",
    );
    assert!(spec_with(set("cold_storage.expiration_days", 372)).is_ok());
}

#[test]
fn hot_days_must_be_below_total_days() {
    rejects(
        set("retention.traces.hot_days", 30),
        "retention.traces.hot_days: must be less than total_days (30), got 30",
    );
    let got = problems(spec_with(set("retention.logs.hot_days", 0)));
    assert_eq!(
        got[0],
        "retention.logs.hot_days: must be at least 1 (SigNoz needs toColdDuration > 0), got 0"
    );
}

#[test]
fn kms_encryption_needs_a_key_and_aes256_takes_none() {
    rejects(
        set("cold_storage.encryption.algorithm", "aws:kms"),
        "cold_storage.encryption.kms_key_id: required when algorithm is aws:kms",
    );
    rejects(
        set("cold_storage.encryption.kms_key_id", "alias/signoz"),
        "cold_storage.encryption.kms_key_id: only allowed when algorithm is aws:kms",
    );
}

#[test]
fn sampler_and_propagators_follow_the_operator() {
    rejects(
        set("instrumentation.sampler.type", "probabilistic"),
        "instrumentation.sampler.type: unknown sampler \"probabilistic\": expected one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio, jaeger_remote, xray",
    );
    rejects(
        set("instrumentation.sampler.argument", Value::Null),
        "instrumentation.sampler.argument: required for sampler parentbased_traceidratio: a ratio between 0 and 1",
    );
    rejects(
        set("instrumentation.propagators.1", "w3c"),
        "instrumentation.propagators[1]: unknown propagator \"w3c\": expected one of tracecontext, baggage, b3, b3multi, jaeger, xray, ottrace, none",
    );
    rejects(
        set("instrumentation.propagators.1", "tracecontext"),
        "instrumentation.propagators[1]: duplicate propagator \"tracecontext\"",
    );
}

#[test]
fn the_python_injector_needs_otlp_http_on_4318() {
    rejects(
        set(
            "instrumentation.endpoint",
            "http://signoz-otel-collector.platform.svc.cluster.local:4317",
        ),
        "instrumentation.endpoint: the Python injector speaks OTLP over HTTP on port 4318, got \"http://signoz-otel-collector.platform.svc.cluster.local:4317\"",
    );
}

#[test]
fn replica_bounds_hold() {
    rejects(
        set("collectors.min_replicas", 0),
        "collectors.min_replicas: must be at least 1 (collectors at zero drop telemetry), got 0",
    );
    let got = problems(spec_with(set("collectors.max_replicas", 1)));
    assert_eq!(
        got,
        vec![
            "collectors.max_replicas: must be at least min_replicas (2), got 1",
            "collectors.scaling.fallback_replicas: must be between min_replicas (2) and max_replicas (1), got 4",
        ]
    );
}

#[test]
fn workloads_to_restart_name_kind_and_name() {
    let reader = || {
        let mut w = serde_norway::Mapping::new();
        w.insert("kind".into(), "Deployment".into());
        w.insert("name".into(), "signoz-exporter".into());
        Value::Sequence(vec![Value::Mapping(w)])
    };
    let with_reader = |edit: Box<dyn FnOnce(&mut Value)>| {
        move |doc: &mut Value| {
            doc["database"]["restart"] = reader();
            edit(doc)
        }
    };
    rejects(
        with_reader(Box::new(set("database.restart.0.kind", ""))),
        "database.restart[0].kind: must name the workload kind (Deployment, StatefulSet or DaemonSet), got \"\"",
    );
    rejects(
        with_reader(Box::new(set("database.restart.0.name", "Signoz_Main"))),
        "database.restart[0].name: must be a DNS subdomain name, got \"Signoz_Main\"",
    );
    let got = problems(spec_with(|doc| {
        doc["database"]["restart"] = reader();
        at(doc, "database.restart.0")
            .as_mapping_mut()
            .unwrap()
            .remove("kind");
    }));
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("database.restart[0]: missing field `kind` at line "),
        "{got:?}"
    );
}

#[test]
fn instrumented_workloads_are_unique() {
    rejects(
        set("instrumentation.workloads.1.name", "api"),
        "instrumentation.workloads[1].name: Deployment \"api\" is listed twice",
    );
}

#[test]
fn delivery_method_needs_its_block() {
    let got = problems(spec_with(set("cluster.delivery.method", "flux")));
    assert_eq!(
        got,
        [
            "cluster.delivery.flux: required when method is flux",
            "instrumentation.operator.source_name: required with flux delivery: the HelmRepository of the operator's chart",
        ]
    );
}

#[test]
fn argocd_destination_is_one_of_server_or_name() {
    rejects(
        set("cluster.delivery.argocd.destination_name", "in-cluster"),
        "cluster.delivery.argocd.destination_name: give destination_server or destination_name, not both",
    );
    let got = problems(spec_with(set("cluster.delivery.argocd.sync", "sometimes")));
    assert!(
        got.len() == 1
            && got[0].starts_with(
                "cluster.delivery.argocd.sync: unknown variant `sometimes`, expected `automated` or `manual`"
            ),
        "{got:?}"
    );
}

#[test]
fn a_destructive_delivery_change_names_what_it_replaces() {
    let replaces = |object: &str, release: &str| {
        let (object, release) = (object.to_string(), release.to_string());
        move |doc: &mut Value| {
            let mut r = serde_norway::Mapping::new();
            r.insert("object".into(), object.into());
            r.insert("release".into(), release.into());
            doc["cluster"]["delivery"]["replaces"] = Value::Mapping(r);
        }
    };
    assert!(spec_with(replaces("HelmRelease/flux-system/signoz", "signoz")).is_ok());
    rejects(
        replaces("Deployment/argocd/signoz", "signoz"),
        "cluster.delivery.replaces.object: must be Application/<namespace>/<name> or HelmRelease/<namespace>/<name>, got \"Deployment/argocd/signoz\"",
    );
}

#[test]
fn the_frontend_ingress_stays_internal_unless_the_spec_means_it() {
    rejects(
        set("cluster.ingress.scheme", "internet-facing"),
        "cluster.ingress.scheme: internet-facing exposes SigNoz and its admin API to the internet: set allow_internet_facing: true to mean it",
    );
    assert!(
        spec_with(|doc| {
            doc["cluster"]["ingress"]["scheme"] = "internet-facing".into();
            doc["cluster"]["ingress"]["allow_internet_facing"] = true.into();
        })
        .is_ok()
    );
    rejects(
        set("cluster.ingress.group_name", "Acme_Internal"),
        "cluster.ingress.group_name: must be an ALB group name (at most 63 of a-z, 0-9, '-', '.', starting and ending with a letter or digit), got \"Acme_Internal\"",
    );
    rejects(
        set("cluster.ingress.group_order", 1001),
        "cluster.ingress.group_order: must be between -1000 and 1000, got 1001",
    );
    rejects(
        set(
            "cluster.ingress.certificate_arn",
            "arn:aws:iam::123456789012:server-certificate/x",
        ),
        "cluster.ingress.certificate_arn: must be an arn:aws:acm:...:certificate/... ARN, got \"arn:aws:iam::123456789012:server-certificate/x\"",
    );
}

#[test]
fn the_chart_version_is_one_the_values_are_checked_against() {
    rejects(
        set("cluster.delivery.chart_version", "0.140.0"),
        "cluster.delivery.chart_version: the Helm values are built and checked against SigNoz chart 0.131.x (its keys and collector pipelines), got \"0.140.0\"",
    );
}

#[test]
fn the_operator_runs_highly_available() {
    rejects(
        set("instrumentation.operator.replicas", 1),
        "instrumentation.operator.replicas: must be at least 2 so the injecting webhook survives a node rotation, got 1",
    );
}

#[test]
fn a_collector_endpoint_typed_by_hand_follows_the_charts_name() {
    // The chart names release "signoz"'s collector Service signoz-otel-collector.
    rejects(
        set(
            "instrumentation.endpoint",
            "http://signoz-signoz-otel-collector.platform.svc.cluster.local:4318",
        ),
        "instrumentation.endpoint: the chart names release \"signoz\"'s collector Service \"signoz-otel-collector\", got \"signoz-signoz-otel-collector\" (omit endpoint to use it)",
    );
    // Another collector (an agent elsewhere) is the user's choice.
    assert!(
        spec_with(set(
            "instrumentation.endpoint",
            "http://otel-agent.observability.svc.cluster.local:4318"
        ))
        .is_ok()
    );
}

#[test]
fn flux_source_kinds_are_those_its_crd_accepts() {
    rejects(
        |doc: &mut Value| {
            let flux: Value = serde_norway::from_str(
                "{namespace: flux-system, source_kind: OCIRepository, source_name: signoz, values_configmap: v}",
            )
            .unwrap();
            doc["cluster"]["delivery"]["method"] = "flux".into();
            doc["cluster"]["delivery"]["flux"] = flux;
            doc["instrumentation"]["operator"]["source_name"] = "open-telemetry".into();
        },
        "cluster.delivery.flux.source_kind: must be one of HelmRepository, GitRepository, Bucket, got \"OCIRepository\"",
    );
}

#[test]
fn database_names_are_postgres_identifiers() {
    rejects(
        set("database.username", "signoz-app"),
        "database.username: must be a lowercase PostgreSQL identifier ([a-z_][a-z0-9_]*, at most 63), got \"signoz-app\"",
    );
    rejects(
        set("database.owner_role", "signoz_app"),
        "database.owner_role: must differ from database.username (\"signoz_app\")",
    );
    rejects(
        set("database.password_length", 12),
        "database.password_length: must be between 20 and 4096, got 12",
    );
}

#[test]
fn collector_processors_are_sane() {
    rejects(
        set("collectors.memory_limiter.spike_limit_mib", 1000),
        "collectors.memory_limiter.spike_limit_mib: must be less than limit_mib (1000), got 1000",
    );
    rejects(
        set("collectors.batch.timeout", "ten seconds"),
        "collectors.batch.timeout: must be a positive duration such as \"5s\" or \"1m\", got \"ten seconds\"",
    );
    rejects(
        set("collectors.infra_targets.1.job", "karpenter"),
        "collectors.infra_targets[1].job: duplicate job \"karpenter\"",
    );
}

#[test]
fn alarm_policies_stay_within_the_spec() {
    rejects(
        set("alarms.policies.0.action.scale_collectors.ceiling", 5),
        "alarms.policies[0].action.scale_collectors.ceiling: must be at least collectors.max_replicas (10), got 5",
    );
    rejects(
        set(
            "alarms.policies.1.action.move_to_cold_sooner.floor_hot_days",
            8,
        ),
        "alarms.policies[1].action.move_to_cold_sooner.floor_hot_days: must be between 1 and the smallest retention hot_days (7), got 8",
    );
    rejects(
        set("alarms.policies.4.name", "collector-pressure"),
        "alarms.policies[4].name: duplicate policy \"collector-pressure\"",
    );
}

#[test]
fn alarm_policies_match_exact_names_and_prefixes() {
    let spec = parse_spec(EXAMPLE_SPEC).unwrap();
    let [pressure, disk, ..] = &spec.alarms.policies[..] else {
        panic!()
    };
    assert!(pressure.matches("signoz-collector-queue-pressure"));
    assert!(!pressure.matches("signoz-clickhouse-disk-high"));
    assert!(disk.matches("signoz-clickhouse-disk-high"));
    assert!(!disk.matches("signoz-clickhouse-disk-high-2"));
}

#[test]
fn spec_locations_parse() {
    assert_eq!(
        SpecLocation::parse("s3://cfg/platform/spec.yaml").unwrap(),
        SpecLocation::S3 {
            bucket: "cfg".into(),
            key: "platform/spec.yaml".into()
        }
    );
    assert_eq!(
        SpecLocation::parse("infra/platform.yaml").unwrap(),
        SpecLocation::Path("infra/platform.yaml".into())
    );
    assert!(matches!(
        SpecLocation::parse("s3://bucket-only"),
        Err(SpecError::BadLocation(_))
    ));
}

#[test]
fn go_durations_parse() {
    assert_eq!(parse_go_duration_secs("5s"), Some(5.0));
    assert_eq!(parse_go_duration_secs("500ms"), Some(0.5));
    assert_eq!(parse_go_duration_secs("2m"), Some(120.0));
    assert_eq!(parse_go_duration_secs("0s"), None);
    assert_eq!(parse_go_duration_secs("5"), None);
}

#[test]
fn the_safety_margin_covers_delayed_ttl_merges() {
    rejects(
        set("retention.safety_margin_days", 1),
        "retention.safety_margin_days: must be at least 2: ClickHouse drops parts in TTL merges that run at most every 4 hours and a part holds up to a day of rows, got 1",
    );
    spec_with(set("retention.safety_margin_days", 2)).expect("2 is enough");
}

#[test]
fn the_state_documents_never_sit_under_the_cold_lifecycle() {
    rejects(
        |doc| {
            *at(doc, "state.bucket") = "acme-signoz-cold".into();
            *at(doc, "state.prefix") = "clickhouse/state/".into();
        },
        "state.prefix: must not overlap cold_storage.prefix (\"clickhouse/\") in the same bucket: the cold lifecycle would expire the state documents, got \"clickhouse/state/\"",
    );
    spec_with(|doc| {
        *at(doc, "state.bucket") = "acme-signoz-cold".into();
        *at(doc, "state.prefix") = "control-plane/".into();
    })
    .expect("a prefix of its own in the same bucket is fine");
    // An empty cold prefix covers the whole bucket.
    let got = problems(spec_with(|doc| {
        *at(doc, "state.bucket") = "acme-signoz-cold".into();
        *at(doc, "cold_storage.prefix") = "".into();
    }));
    assert!(
        got[0].starts_with("state.prefix: must not overlap"),
        "{got:?}"
    );
}

#[test]
fn kms_keys_are_ids_arns_or_aliases_and_bucket_keys_are_for_kms() {
    let kms = |key: &str| {
        let key = key.to_string();
        move |doc: &mut Value| {
            *at(doc, "cold_storage.encryption.algorithm") = "aws:kms".into();
            at(doc, "cold_storage.encryption")["kms_key_id"] = key.into();
        }
    };
    for good in [
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "alias/signoz-cold",
        "arn:aws:kms:eu-west-1:123456789012:alias/signoz/cold",
    ] {
        let spec = spec_with(kms(good)).unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(spec.cold_storage.encryption.bucket_key_enabled, None);
    }
    rejects(
        kms("key/1234"),
        "cold_storage.encryption.kms_key_id: must be a KMS key ID, key ARN, alias/<name> or alias ARN, got \"key/1234\"",
    );
    rejects(
        |doc| at(doc, "cold_storage.encryption")["bucket_key_enabled"] = true.into(),
        "cold_storage.encryption.bucket_key_enabled: only allowed when algorithm is aws:kms (S3 Bucket Keys reduce KMS calls)",
    );
}

#[test]
fn the_cost_model_takes_shares_and_object_sizes_it_can_use() {
    rejects(
        set("cold_storage.cost.queried_share", 1.5),
        "cold_storage.cost.queried_share: must be a share between 0 and 1, got 1.5",
    );
    rejects(
        set("cold_storage.cost.average_object_kb", 0),
        "cold_storage.cost.average_object_kb: must be a positive number, got 0",
    );
    rejects(
        set("cold_storage.cost.daily_ingest_gb.logs", -1),
        "cold_storage.cost.daily_ingest_gb.logs: must be a non-negative number, got -1",
    );
    let spec = spec_with(|doc| {
        let cost = at(doc, "cold_storage.cost");
        for price in [
            "standard_gb_month",
            "standard_ia_gb_month",
            "glacier_ir_gb_month",
        ] {
            cost.as_mapping_mut().unwrap().remove(price);
        }
    })
    .expect("prices default");
    assert_eq!(
        spec.cold_storage
            .cost
            .unwrap()
            .glacier_ir_transition_per_1000,
        0.02
    );
}

#[test]
fn a_stuck_ttl_job_bound_is_sensible() {
    rejects(
        set("retention.ttl_api.stuck_after_minutes", 1),
        "retention.ttl_api.stuck_after_minutes: must be between 5 and 10080, got 1",
    );
    let spec = spec_with(|doc| {
        at(doc, "retention.ttl_api")
            .as_mapping_mut()
            .unwrap()
            .remove("stuck_after_minutes");
    })
    .unwrap();
    assert_eq!(spec.retention.ttl_api.stuck_after_minutes, 60);
}

#[test]
fn the_ttl_api_carrying_the_admin_key_must_be_https_at_an_address_a_lambda_resolves() {
    // The old example: cluster DNS and plain HTTP, each reported.
    assert_eq!(
        problems(spec_with(set(
            "retention.ttl_api.url",
            "http://signoz.platform.svc.cluster.local:8080",
        ))),
        [
            "retention.ttl_api.url: signoz.platform.svc.cluster.local is a cluster-internal name \
             a Lambda in the VPC cannot resolve: use the HTTPS address of the internal load \
             balancer in front of SigNoz",
            "retention.ttl_api.url: must be https: the request carries SigNoz's admin API key \
             (plain http only to a loopback address), got \
             http://signoz.platform.svc.cluster.local:8080/",
        ]
    );
    rejects(
        set("retention.ttl_api.url", "http://signoz.acme-prod.internal"),
        "retention.ttl_api.url: must be https: the request carries SigNoz's admin API key \
         (plain http only to a loopback address), got http://signoz.acme-prod.internal/",
    );
    rejects(
        set("retention.ttl_api.url", "https://signoz:8080"),
        "retention.ttl_api.url: signoz is a cluster-internal name a Lambda in the VPC cannot \
         resolve: use the HTTPS address of the internal load balancer in front of SigNoz",
    );
    // Loopback (the local run's fake SigNoz) and the internal load balancer are accepted.
    for url in [
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
        "https://signoz.acme-prod.internal",
        "https://internal-signoz-123.eu-west-1.elb.amazonaws.com",
    ] {
        spec_with(set("retention.ttl_api.url", url)).unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

#[test]
fn a_serialized_spec_loads_back_the_same() {
    // Tooling writes specs (tests, `signoz-control`): alarm actions keep their input shape.
    let spec = parse_spec(EXAMPLE_SPEC).unwrap();
    let text = serde_norway::to_string(&spec).unwrap();
    assert!(
        text.contains("scale_collectors:") && text.contains("action: rotate_now"),
        "{text}"
    );
    assert_eq!(parse_spec(&text).unwrap(), spec);
}

#[test]
fn telemetry_is_on_in_the_example_and_off_with_its_switch_or_without_the_section() {
    let spec = parse_spec(EXAMPLE_SPEC).unwrap();
    let telemetry = spec.telemetry.expect("the example sends its telemetry");
    assert!(telemetry.enabled);
    assert_eq!(telemetry.export_timeout_ms, 500);
    let off = spec_with(set("telemetry.enabled", false)).unwrap();
    assert!(!off.telemetry.unwrap().enabled);
    let absent = spec_with(|doc| {
        doc.as_mapping_mut().unwrap().remove("telemetry");
    })
    .unwrap();
    assert_eq!(absent.telemetry, None);
}

#[test]
fn a_telemetry_endpoint_is_an_otlp_base_url_without_credentials() {
    rejects(
        set("telemetry.endpoint", "collector:4318"),
        "telemetry.endpoint: must be an http(s) URL, got \"collector:4318\"",
    );
    rejects(
        set(
            "telemetry.endpoint",
            "https://user:secret@otel.internal:4318",
        ),
        "telemetry.endpoint: must not carry credentials (user:password@): the URL is logged",
    );
    rejects(
        set(
            "telemetry.endpoint",
            "http://otel.internal:4318/v1/traces?x=1",
        ),
        "telemetry.endpoint: is the OTLP base URL (/v1/traces and /v1/metrics are appended): no query or fragment, got \"http://otel.internal:4318/v1/traces?x=1\"",
    );
    rejects(
        set("telemetry.export_timeout_ms", 30000),
        "telemetry.export_timeout_ms: must be between 50 and 5000, got 30000",
    );
    let missing = problems(spec_with(|doc| {
        at(doc, "telemetry")
            .as_mapping_mut()
            .unwrap()
            .remove("endpoint");
    }));
    assert!(
        missing.len() == 1 && missing[0].starts_with("telemetry: missing field `endpoint`"),
        "{missing:?}"
    );
}
