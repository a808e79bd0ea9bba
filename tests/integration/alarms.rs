//! respond-to-alarms end to end: alarms raised in moto's CloudWatch, the EventBridge event
//! built from what CloudWatch reports, the remediation seen on the stack's real
//! kube-apiserver (each function as its own RBAC identity), the fake SigNoz TTL API,
//! Secrets Manager and the state document in moto S3.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DynamicObject};
use platform_tests::create_buckets;
use platform_tests::kube::{TestCluster, spec_yaml};
use platform_tests::signoz::{SignozServer, start_signoz};
use platform_tests::{aws, unique};
use serde_json::{Value, json};
use signoz_control::alarms::{self, Context, plan::PolicyState};
use signoz_control::cluster::objects::scaled_object_resource;
use signoz_control::cluster::render::scaling::REMEDIATION_ANNOTATION;
use signoz_control::cold_storage::ttl::TtlPatience;
use signoz_control::spec::{EXAMPLE_SPEC, SpecLocation, parse_spec};

const API_KEY: &str = "signoz-admin-key-for-alarm-tests";
const COLLECTOR: &str = "signoz-otel-collector";

/// A platform of its own: buckets, secrets, SigNoz, a cluster, alarms named `<prefix>-...`.
struct Platform {
    ctx: Context,
    s3: aws_sdk_s3::Client,
    secrets: aws_sdk_secretsmanager::Client,
    prefix: String,
    state_bucket: String,
    app_secret: String,
    signoz: SignozServer,
    deployment: platform_tests::Deployment,
    cluster: TestCluster,
}

impl Platform {
    async fn new() -> Platform {
        let sdk = aws().await;
        let s3 = signoz_control::aws::s3_client(&sdk);
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let prefix = unique("alarmtest");
        let cold = format!("{prefix}-cold");
        let state_bucket = format!("{prefix}-state");
        let config = format!("{prefix}-config");
        create_buckets(&s3, &[&cold, &state_bucket, &config]).await;
        let key_secret = format!("{prefix}/admin-api-key");
        secrets
            .create_secret()
            .name(&key_secret)
            .secret_string(API_KEY)
            .send()
            .await
            .expect("api key secret");
        let app_secret = format!("{prefix}/app");
        // The deployment creates the app secret empty; provisioning would fill it.
        secrets
            .create_secret()
            .name(&app_secret)
            .send()
            .await
            .expect("app secret");
        let signoz = start_signoz(API_KEY).await;
        let spec = EXAMPLE_SPEC
            .replace("acme-signoz-cold", &cold)
            .replace("acme-signoz-control", &state_bucket)
            .replace(platform_tests::EXAMPLE_TTL_API_URL, &signoz.url)
            .replace("signoz/admin-api-key", &key_secret)
            .replace("signoz/metadata-db/app", &app_secret)
            .replace("varies_by_storage_class", "all_storage_classes_128k")
            .replace("alarm: signoz-", &format!("alarm: {prefix}-"));
        let cluster = TestCluster::new(parse_spec(&spec).expect("spec")).await;
        s3.put_object()
            .bucket(&config)
            .key("platform.yaml")
            .body(spec_yaml(&cluster.spec).into_bytes().into())
            .send()
            .await
            .expect("spec");
        let location = SpecLocation::S3 {
            bucket: config,
            key: "platform.yaml".into(),
        };
        let kubeconfig = cluster.kubeconfig(alarms::FUNCTION);
        let deployment = platform_tests::Deployment::for_spec(&cluster.spec, &location);
        let role = platform_tests::aws_as(alarms::FUNCTION, &deployment).await;
        let mut ctx = Context::new(&role, location, Some(kubeconfig));
        ctx.cold_storage.ttl_patience = TtlPatience {
            attempts: 3,
            retry_delay: Duration::from_millis(20),
            polls: 2,
            poll_delay: Duration::from_millis(20),
        };
        Platform {
            ctx,
            deployment,
            s3,
            secrets,
            prefix,
            state_bucket,
            app_secret,
            signoz,
            cluster,
        }
    }

    /// Creates a metric alarm in CloudWatch (moto starts it in OK).
    fn put_alarm(&self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.prefix);
        cloudwatch(&[
            "put-metric-alarm",
            "--alarm-name",
            &name,
            "--namespace",
            "SigNoz/Collector",
            "--metric-name",
            "ExporterQueueUtilization",
            "--statistic",
            "Average",
            "--period",
            "300",
            "--evaluation-periods",
            "1",
            "--threshold",
            "80",
            "--comparison-operator",
            "GreaterThanThreshold",
        ]);
        name
    }

    /// Moves the alarm to `state` in CloudWatch and returns the event EventBridge would deliver.
    async fn set_state(&self, alarm: &str, state: &str, reason: &str) -> Value {
        cloudwatch(&[
            "set-alarm-state",
            "--alarm-name",
            alarm,
            "--state-value",
            state,
            "--state-reason",
            reason,
        ]);
        // Alarm timestamps are in milliseconds: keep two transitions apart.
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.event_for(alarm)
    }

    /// The "CloudWatch Alarm State Change" event of the alarm's current state, built from
    /// `DescribeAlarms` (state, reason, timestamp, ARN) in the shape of events/alarm-state-change.json.
    fn event_for(&self, alarm: &str) -> Value {
        let described = cloudwatch(&["describe-alarms", "--alarm-names", alarm]);
        let a = &described["MetricAlarms"][0];
        let at = match &a["StateUpdatedTimestamp"] {
            Value::Number(n) => {
                let ms = (n.as_f64().unwrap() * 1000.0).round() as i64;
                Timestamp::from_millisecond(ms).unwrap()
            }
            Value::String(text) => text.parse::<Timestamp>().expect("ISO timestamp"),
            other => panic!("StateUpdatedTimestamp: {other}"),
        };
        let stamp = at.strftime("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string();
        json!({
            "version": "0",
            "id": unique("event"),
            "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch",
            "account": "123456789012",
            "time": stamp,
            "region": "eu-west-1",
            "resources": [a["AlarmArn"]],
            "detail": {
                "alarmName": a["AlarmName"],
                "state": {
                    "value": a["StateValue"],
                    "reason": a["StateReason"],
                    "timestamp": stamp,
                },
                "configuration": { "description": a["AlarmDescription"] },
            }
        })
    }

    async fn respond(&self, event: Value, now: Timestamp) -> Value {
        alarms::handle_at(&self.ctx, event, now)
            .await
            .expect("respond-to-alarms")
    }

    async fn policy_state(&self, policy: &str) -> Option<PolicyState> {
        let out = self
            .s3
            .get_object()
            .bucket(&self.state_bucket)
            .key(format!("state/alarms/{policy}.json"))
            .send()
            .await
            .ok()?;
        let bytes = out.body.collect().await.unwrap().into_bytes();
        Some(serde_json::from_slice(&bytes).expect("state document"))
    }

    async fn scaled_object(&self) -> DynamicObject {
        Api::<DynamicObject>::namespaced_with(
            self.cluster.admin.clone(),
            &self.cluster.spec.cluster.namespace,
            &scaled_object_resource(),
        )
        .get(COLLECTOR)
        .await
        .expect("ScaledObject")
    }

    async fn max_replicas(&self) -> i64 {
        self.scaled_object().await.data["spec"]["maxReplicaCount"]
            .as_f64()
            .expect("maxReplicaCount") as i64
    }

    async fn remediation_note(&self) -> Option<String> {
        self.scaled_object()
            .await
            .metadata
            .annotations
            .and_then(|a| a.get(REMEDIATION_ANNOTATION).cloned())
    }

    /// The hot days SigNoz has for a signal, from its `toColdDuration`.
    fn hot_days(&self, signal: &str) -> i64 {
        self.signoz.with(|s| s.hot_days(signal))
    }

    /// sync-cluster's scheduled reconcile, as the Lambda would run it.
    async fn scheduled_cluster_sync(&self) -> Value {
        let sdk = platform_tests::aws_as(signoz_control::cluster::FUNCTION, &self.deployment).await;
        let ctx = signoz_control::cluster::Context {
            s3: signoz_control::aws::s3_client(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            sdk,
            spec_location: self.ctx.spec_location.clone(),
            kube: signoz_control::cluster::access::ClusterClient::new(Some(
                self.cluster.kubeconfig(signoz_control::cluster::FUNCTION),
            )),
        };
        signoz_control::cluster::handle(&ctx, schedule())
            .await
            .expect("sync-cluster")
    }

    async fn cleanup(self) {
        for suffix in [
            "collector-queue-pressure",
            "clickhouse-disk-high",
            "db-auth-failures",
            "cold-bucket-drift",
        ] {
            let name = format!("{}-{suffix}", self.prefix);
            let _ = std::process::Command::new("aws")
                .args(["cloudwatch", "delete-alarms", "--alarm-names", &name])
                .output();
        }
    }
}

/// Runs `aws cloudwatch ...` against the stack's moto and returns its JSON answer. The AWS
/// CLI, not the Rust SDK: the SDK speaks CloudWatch's RPCv2-CBOR protocol, which moto 5.2
/// does not serve.
fn cloudwatch(args: &[&str]) -> Value {
    let out = std::process::Command::new("aws")
        .arg("cloudwatch")
        .args(args)
        .args(["--output", "json"])
        .output()
        .expect("the AWS CLI (tests/bin/setup.sh installs it)");
    assert!(
        out.status.success(),
        "aws cloudwatch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn schedule() -> Value {
    json!({
        "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-25T08:00:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/respond-to-alarms"], "detail": {}
    })
}

/// The same transition as the alarm's own Lambda action delivers it (`alarmData`).
fn lambda_action(event: Value) -> Value {
    json!({
        "source": "aws.cloudwatch",
        "alarmArn": event["resources"][0],
        "accountId": "123456789012",
        "time": event["time"],
        "region": "eu-west-1",
        "alarmData": event["detail"],
    })
}

fn minutes(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

fn decision(answer: &Value) -> String {
    answer["policies"][0]["decision"]["decision"]
        .as_str()
        .unwrap_or("none")
        .to_string()
}

#[tokio::test]
async fn collector_pressure_scales_up_survives_a_flood_and_reverts_after_the_cooldown() {
    let p = Platform::new().await;
    // sync-cluster has run: namespaces and the ScaledObject at the baseline.
    p.scheduled_cluster_sync().await;
    assert_eq!(p.max_replicas().await, 10);
    let alarm = p.put_alarm("collector-queue-pressure");
    let initial_ok = p.event_for(&alarm);
    let t0 = Timestamp::now();

    let raised = p
        .set_state(&alarm, "ALARM", "Threshold Crossed: queue at 91%")
        .await;
    // Delivered three times at once: the conditional state write lets one escalate.
    let (a, b, c) = tokio::join!(
        p.respond(raised.clone(), t0),
        p.respond(raised.clone(), t0),
        p.respond(raised.clone(), t0)
    );
    let mut decisions = vec![decision(&a), decision(&b), decision(&c)];
    decisions.sort();
    assert_eq!(decisions, ["escalate", "ignore", "ignore"], "{a} {b} {c}");
    assert_eq!(p.max_replicas().await, 12);
    let note = p.remediation_note().await.expect("annotated with why");
    assert!(
        note.starts_with(&format!("collector-pressure: {alarm} ALARM at "))
            && note.ends_with("maxReplicaCount 10 -> 12"),
        "{note}"
    );
    let state = p.policy_state("collector-pressure").await.expect("state");
    assert_eq!(state.step, 1);
    assert_eq!(
        state.history[0].decided_by,
        "respond-to-alarms policy collector-pressure"
    );

    // A flood of duplicates and the older OK, in any order: nothing moves.
    let version = p.scaled_object().await.metadata.resource_version;
    for event in [
        raised.clone(),
        initial_ok.clone(),
        raised.clone(),
        raised.clone(),
        initial_ok,
    ] {
        let answer = p.respond(event, t0 + minutes(1)).await;
        let d = &answer["policies"][0]["decision"];
        assert!(d["why"] == "duplicate" || d["why"] == "stale", "{answer}");
    }
    assert_eq!(
        p.scaled_object().await.metadata.resource_version,
        version,
        "no write"
    );
    assert_eq!(
        p.policy_state("collector-pressure")
            .await
            .unwrap()
            .history
            .len(),
        1
    );

    // INSUFFICIENT_DATA is logged only.
    let unknown = p
        .set_state(&alarm, "INSUFFICIENT_DATA", "no datapoints")
        .await;
    let answer = p.respond(unknown, t0 + minutes(2)).await;
    assert_eq!(
        answer["policies"][0]["decision"]["why"],
        "insufficient_data"
    );
    assert_eq!(p.max_replicas().await, 12);

    // The scheduled cluster reconcile keeps the remediation.
    p.scheduled_cluster_sync().await;
    assert_eq!(
        p.max_replicas().await,
        12,
        "sync-cluster undid the remediation"
    );

    // OK within the cooldown (15 min): the revert waits for the schedule.
    let cleared = p
        .set_state(&alarm, "OK", "Threshold Crossed: queue at 35%")
        .await;
    let answer = p.respond(cleared, t0 + minutes(3)).await;
    assert_eq!(decision(&answer), "defer", "{answer}");
    assert_eq!(p.max_replicas().await, 12);
    let answer = p.respond(schedule(), t0 + minutes(14)).await;
    assert_eq!(answer["policies"], json!([]), "not yet due");
    assert_eq!(p.max_replicas().await, 12);
    let answer = p.respond(schedule(), t0 + minutes(16)).await;
    assert_eq!(decision(&answer), "revert", "{answer}");
    assert_eq!(p.max_replicas().await, 10);
    assert_eq!(
        p.remediation_note().await,
        None,
        "the why goes with the override"
    );
    let state = p.policy_state("collector-pressure").await.unwrap();
    assert_eq!((state.step, state.pending_revert), (0, None));
    let last = state.history.last().unwrap();
    assert_eq!(
        (last.before.as_str(), last.after.as_str()),
        (
            "minReplicaCount 2, maxReplicaCount 12",
            "minReplicaCount 2, maxReplicaCount 10"
        )
    );
    p.cleanup().await;
}

#[tokio::test]
async fn repeated_alarms_never_scale_past_the_ceiling() {
    let p = Platform::new().await;
    // sync-cluster has run: namespaces and the ScaledObject at the baseline.
    p.scheduled_cluster_sync().await;
    assert_eq!(p.max_replicas().await, 10);
    let alarm = p.put_alarm("collector-queue-pressure");
    let t0 = Timestamp::now();
    // Seven incidents, each past the previous cooldown, each cleared within its own.
    for round in 0..7 {
        let now = t0 + minutes(20 * round);
        let raised = p.set_state(&alarm, "ALARM", "queue high").await;
        p.respond(raised, now).await;
        let cleared = p.set_state(&alarm, "OK", "queue normal").await;
        let answer = p.respond(cleared, now + minutes(1)).await;
        assert_eq!(decision(&answer), "defer", "{answer}");
    }
    // Baseline 10, step 2, ceiling 20.
    assert_eq!(p.max_replicas().await, 20);
    let state = p.policy_state("collector-pressure").await.unwrap();
    assert_eq!(state.step, 5);
    assert!(
        state
            .history
            .iter()
            .any(|r| r.decision == "ignore (at its bound)"),
        "{:?}",
        state.history
    );
    p.cleanup().await;
}

#[tokio::test]
async fn disk_alarm_moves_data_to_cold_sooner_and_ok_restores_the_hot_days() {
    let p = Platform::new().await;
    let alarm = p.put_alarm("clickhouse-disk-high");
    let t0 = Timestamp::now();

    // This alarm calls the function directly (its alarm action), not through EventBridge.
    let raised = lambda_action(p.set_state(&alarm, "ALARM", "volume at 86%").await);
    let answer = p.respond(raised, t0).await;
    assert_eq!(decision(&answer), "escalate", "{answer}");
    // step_days 2: traces and logs 7 -> 5, metrics 30 -> 28, through SigNoz's TTL API.
    assert_eq!(
        (
            p.hot_days("traces"),
            p.hot_days("logs"),
            p.hot_days("metrics")
        ),
        (5, 5, 28)
    );
    assert!(
        answer["policies"][0]["effect"]["alarm_overrides"][0]
            .as_str()
            .unwrap()
            .contains(
                "hot days traces 7, logs 7, metrics 30 -> hot days traces 5, logs 5, metrics 28"
            ),
        "{answer}"
    );

    // enforce-cold-storage's own schedule keeps the lowered hot days.
    let posts = p.signoz.with(|s| s.posts);
    signoz_control::cold_storage::handle(&p.ctx.cold_storage, schedule())
        .await
        .expect("enforce-cold-storage");
    assert_eq!(p.hot_days("traces"), 5);
    assert_eq!(p.signoz.with(|s| s.posts), posts, "no TTL write");

    // OK after the cooldown (60 min): the baseline comes back at once.
    let cleared = p.set_state(&alarm, "OK", "volume at 60%").await;
    let answer = p.respond(cleared, t0 + minutes(61)).await;
    assert_eq!(decision(&answer), "revert", "{answer}");
    assert_eq!(
        (
            p.hot_days("traces"),
            p.hot_days("logs"),
            p.hot_days("metrics")
        ),
        (7, 7, 30)
    );
    p.cleanup().await;
}

#[tokio::test]
async fn failed_logins_start_one_rotation_and_none_while_one_is_pending() {
    let p = Platform::new().await;
    p.secrets
        .put_secret_value()
        .secret_id(&p.app_secret)
        .secret_string(r#"{"username":"signoz_app","password":"not-a-real-one"}"#)
        .send()
        .await
        .expect("app secret value");
    // Configure rotation; moto stages AWSPENDING on a new version, as a running rotation.
    let rotation_lambda = platform_tests::ensure_rotation_lambda();
    p.secrets
        .rotate_secret()
        .secret_id(&p.app_secret)
        .rotation_lambda_arn(&rotation_lambda)
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await
        .expect("configure rotation");
    let pending = |p: &Platform| {
        let secrets = p.secrets.clone();
        let id = p.app_secret.clone();
        async move {
            let d = secrets
                .describe_secret()
                .secret_id(id)
                .send()
                .await
                .unwrap();
            d.version_ids_to_stages()
                .unwrap()
                .iter()
                .filter(|(_, s)| s.iter().any(|s| s == "AWSPENDING"))
                .map(|(v, _)| v.clone())
                .collect::<Vec<_>>()
        }
    };
    let first_pending = pending(&p).await;
    assert_eq!(first_pending.len(), 1);

    let alarm = p.put_alarm("db-auth-failures");
    let t0 = Timestamp::now();
    let raised = p.set_state(&alarm, "ALARM", "28P01 x 40").await;
    let answer = p.respond(raised, t0).await;
    assert_eq!(
        answer["policies"][0]["effect"]["rotation"], "in progress",
        "{answer}"
    );
    assert_eq!(pending(&p).await, first_pending);

    // The rotation finished (AWSPENDING gone); the next incident, after the cooldown, rotates.
    p.secrets
        .update_secret_version_stage()
        .secret_id(&p.app_secret)
        .version_stage("AWSPENDING")
        .remove_from_version_id(&first_pending[0])
        .send()
        .await
        .expect("clear AWSPENDING");
    let cleared = p.set_state(&alarm, "OK", "no failures").await;
    p.respond(cleared, t0 + minutes(1)).await;
    let raised = p.set_state(&alarm, "ALARM", "28P01 x 12").await;
    let answer = p.respond(raised.clone(), t0 + minutes(2)).await;
    assert_eq!(
        answer["policies"][0]["decision"]["why"], "cooldown",
        "{answer}"
    );
    assert!(pending(&p).await.is_empty());
    let cleared = p.set_state(&alarm, "OK", "no failures").await;
    p.respond(cleared, t0 + minutes(61)).await;
    let raised = p.set_state(&alarm, "ALARM", "28P01 x 50").await;
    let answer = p.respond(raised.clone(), t0 + minutes(62)).await;
    assert_eq!(
        answer["policies"][0]["effect"]["rotation"], "started",
        "{answer}"
    );
    let started = pending(&p).await;
    assert_eq!(started.len(), 1);
    assert_ne!(started, first_pending);
    // The same event again starts nothing.
    let answer = p.respond(raised, t0 + minutes(63)).await;
    assert_eq!(
        answer["policies"][0]["decision"]["why"], "duplicate",
        "{answer}"
    );
    assert_eq!(pending(&p).await, started);

    p.secrets
        .delete_secret()
        .secret_id(&p.app_secret)
        .force_delete_without_recovery(true)
        .send()
        .await
        .ok();
    p.cleanup().await;
}

#[tokio::test]
async fn a_drift_alarm_reconciles_the_cold_bucket_at_once() {
    let p = Platform::new().await;
    let cold = format!("{}-cold", p.prefix);
    let lifecycle = || async {
        p.s3.get_bucket_lifecycle_configuration()
            .bucket(&cold)
            .send()
            .await
            .map(|l| l.rules().len())
            .unwrap_or(0)
    };
    assert_eq!(lifecycle().await, 0, "a fresh bucket has no lifecycle");
    let alarm = p.put_alarm("cold-bucket-drift");
    let raised = p
        .set_state(&alarm, "ALARM", "lifecycle rule count below 1")
        .await;
    let answer = p.respond(raised, Timestamp::now()).await;
    assert_eq!(
        answer["policies"][0]["decision"]["remedy"],
        json!({ "reconcile": "cold_storage" }),
        "{answer}"
    );
    assert!(lifecycle().await >= 1, "the lifecycle is back: {answer}");
    assert_eq!(p.hot_days("traces"), 7, "TTLs at the spec's baseline");
    p.cleanup().await;
}

#[tokio::test]
async fn a_disk_alarm_says_what_moving_to_cold_sooner_will_and_will_not_do() {
    let p = Platform::new().await;
    let alarm = p.put_alarm("clickhouse-disk-high");
    let raised = lambda_action(p.set_state(&alarm, "ALARM", "volume at 91%").await);
    let answer = p.respond(raised, Timestamp::now()).await;
    assert_eq!(decision(&answer), "escalate", "{answer}");
    let report = answer["policies"][0]["report"].as_str().unwrap_or_default();
    // SigNoz sets materialize_ttl_after_modify=0: only parts written from now on move sooner.
    assert!(
        report.contains("only parts written from now on") && report.contains("does not free"),
        "{answer}"
    );
    // The floor it raises: S3 must keep metrics 2 days longer, never past the spec's
    // expiration (400) less the safety margin (7).
    assert!(
        report.contains("metrics 365 -> 367") && report.contains("at most 393"),
        "{report}"
    );
    p.cleanup().await;
}

#[tokio::test]
async fn a_one_shot_remedy_that_failed_is_retried_not_dropped_as_a_duplicate() {
    let p = Platform::new().await;
    let cold = format!("{}-cold", p.prefix);
    let key_secret = format!("{}/admin-api-key", p.prefix);
    // The first delivery finds SigNoz's API key missing: the reconcile fails.
    p.secrets
        .delete_secret()
        .secret_id(&key_secret)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let alarm = p.put_alarm("cold-bucket-drift");
    let raised = p.set_state(&alarm, "ALARM", "lifecycle rules gone").await;
    let t0 = Timestamp::now();
    let first = alarms::handle_at(&p.ctx, raised.clone(), t0).await;
    assert!(first.is_err(), "the remedy failed: {first:?}");
    let state = p.policy_state("lifecycle-drift").await;
    assert!(
        state.as_ref().is_none_or(|s| s.cooldown_until.is_none()),
        "no cooldown before the remedy took effect: {state:?}"
    );
    // Lambda retries the same event once the key is back: it acts now.
    p.secrets
        .create_secret()
        .name(&key_secret)
        .secret_string(API_KEY)
        .send()
        .await
        .unwrap();
    let retried = p.respond(raised.clone(), t0 + minutes(1)).await;
    assert_eq!(
        retried["policies"][0]["decision"]["remedy"],
        json!({ "reconcile": "cold_storage" }),
        "{retried}"
    );
    let rules =
        p.s3.get_bucket_lifecycle_configuration()
            .bucket(&cold)
            .send()
            .await
            .map(|l| l.rules().len())
            .unwrap_or(0);
    assert!(rules >= 1, "the lifecycle is back");
    // Now it took effect, the same event is a duplicate.
    let again = p.respond(raised, t0 + minutes(2)).await;
    assert_eq!(
        again["policies"][0]["decision"]["why"], "duplicate",
        "{again}"
    );
    p.cleanup().await;
}

#[tokio::test]
async fn an_alarm_left_in_insufficient_data_or_deleted_stops_blocking_the_revert() {
    for deleted in [false, true] {
        let p = Platform::new().await;
        p.scheduled_cluster_sync().await;
        let queue = p.put_alarm("collector-queue-pressure");
        let memory = p.put_alarm("collector-memory-pressure");
        let t0 = Timestamp::now();
        let answer = p
            .respond(p.set_state(&queue, "ALARM", "queue high").await, t0)
            .await;
        assert_eq!(decision(&answer), "escalate", "{answer}");
        p.respond(
            p.set_state(&memory, "ALARM", "memory high").await,
            t0 + minutes(1),
        )
        .await;
        let answer = p
            .respond(
                p.set_state(&queue, "OK", "queue normal").await,
                t0 + minutes(20),
            )
            .await;
        assert_eq!(
            answer["policies"][0]["decision"]["why"],
            "other_alarm_active"
        );
        // The other alarm stops reporting, or is deleted: no OK will ever come.
        if deleted {
            cloudwatch(&["delete-alarms", "--alarm-names", &memory]);
        } else {
            p.set_state(&memory, "INSUFFICIENT_DATA", "no datapoints")
                .await;
        }
        let answer = p.respond(schedule(), t0 + minutes(50)).await;
        assert_eq!(decision(&answer), "revert", "deleted {deleted}: {answer}");
        assert_eq!(p.max_replicas().await, 10);
        cloudwatch(&["delete-alarms", "--alarm-names", &memory]);
        p.cleanup().await;
    }
}

#[tokio::test]
async fn an_alarm_that_stays_in_alarm_escalates_once_per_cooldown_up_to_the_ceiling() {
    let p = Platform::new().await;
    p.scheduled_cluster_sync().await;
    let alarm = p.put_alarm("collector-queue-pressure");
    let t0 = Timestamp::now();
    p.respond(p.set_state(&alarm, "ALARM", "queue high").await, t0)
        .await;
    assert_eq!(p.max_replicas().await, 12);
    // CloudWatch sends no further event while the alarm stays in ALARM: the schedule acts.
    let answer = p.respond(schedule(), t0 + minutes(5)).await;
    assert_eq!(
        answer["policies"],
        json!([]),
        "within the cooldown: {answer}"
    );
    assert_eq!(p.max_replicas().await, 12);
    for (round, expected) in [(1, 14), (2, 16), (3, 18), (4, 20), (5, 20)] {
        p.respond(schedule(), t0 + minutes(16 * round)).await;
        assert_eq!(p.max_replicas().await, expected, "after {round} cooldowns");
    }
    let state = p.policy_state("collector-pressure").await.unwrap();
    assert_eq!(state.step, 5);
    p.cleanup().await;
}

#[tokio::test]
async fn enforce_cold_storage_racing_respond_to_alarms_never_undoes_the_override() {
    let p = Platform::new().await;
    let enforce = || signoz_control::cold_storage::handle(&p.ctx.cold_storage, schedule());
    enforce().await.expect("converged at the baseline");
    let alarm = p.put_alarm("clickhouse-disk-high");
    let raised = lambda_action(p.set_state(&alarm, "ALARM", "volume at 88%").await);
    // Hot days back at the baseline in SigNoz (someone reset them): the schedule will
    // post the baseline while the alarm posts the lowered hot days.
    p.signoz.with(|s| s.set_in_force("traces", 30, Some(6)));
    // The schedule's first POST is held until the alarm has had its chance.
    p.signoz.with(|s| s.hold_posts(1));
    let scheduled = tokio::spawn({
        let ctx = p.ctx.cold_storage.clone();
        async move { signoz_control::cold_storage::handle(&ctx, schedule()).await }
    });
    while !p.signoz.with(|s| s.holding()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let responded = {
        let event = raised.clone();
        alarms::handle_at(&p.ctx, event, Timestamp::now())
    };
    let release = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        p.signoz.with(|s| s.release_posts());
    };
    let (answer, ()) = tokio::join!(responded, release);
    answer.expect("respond-to-alarms");
    scheduled.await.unwrap().expect("enforce-cold-storage");
    // Whatever the order, the alarm's lowered hot days are what SigNoz keeps, and S3
    // keeps every object as long as the longest cold period ever set needs.
    assert_eq!(p.hot_days("traces"), 5);
    assert_eq!(p.hot_days("metrics"), 28);
    let cold = format!("{}-cold", p.prefix);
    let memory = signoz_control::state::StateStore::new(p.s3.clone(), &p.state_bucket, "state/")
        .load::<signoz_control::cold_storage::plan::RetentionHighWater>(
            signoz_control::cold_storage::plan::RetentionHighWater::KEY,
        )
        .await
        .unwrap()
        .0
        .unwrap();
    let expiration =
        p.s3.get_bucket_lifecycle_configuration()
            .bucket(&cold)
            .send()
            .await
            .unwrap()
            .rules()
            .iter()
            .find(|r| r.id() == Some("signoz-cold-tiers"))
            .and_then(|r| r.expiration())
            .and_then(|e| e.days())
            .unwrap();
    let longest = memory.cold_days.values().max().copied().unwrap();
    assert!(longest >= 367, "{memory:?}");
    assert!(
        expiration as u32 >= longest + 7,
        "{expiration} vs {memory:?}"
    );
    p.cleanup().await;
}
