//! Every payload in `events/` reaches the right function; foreign and malformed ones are
//! refused with a message naming what arrived.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;
use crate::{alarms, cluster, cold_storage, credentials};

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn event(name: &str) -> Value {
    let text = std::fs::read_to_string(events_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Which functions handle each sample, by file-name prefix.
fn expected(name: &str) -> (TriggerKind, &'static [&'static str]) {
    const COLD: &str = cold_storage::FUNCTION;
    const SYNC: &str = cluster::FUNCTION;
    const CREDS: &str = credentials::FUNCTION;
    const ALARM: &str = alarms::FUNCTION;
    match name {
        n if n.starts_with("schedule") => (TriggerKind::Schedule, &[COLD, SYNC, ALARM]),
        n if n.starts_with("s3-") => (TriggerKind::SpecWritten, &[COLD, SYNC]),
        n if n.starts_with("cloudtrail-") => (TriggerKind::BucketApiCall, &[COLD]),
        n if n.starts_with("alarm-") => (TriggerKind::AlarmChange, &[ALARM]),
        n if n.starts_with("rotation-") => (TriggerKind::Rotation, &[CREDS]),
        n if n.starts_with("rds-") => (TriggerKind::RdsInstance, &[CREDS]),
        n if n.starts_with("control-") => (TriggerKind::Control, &[CREDS, COLD, SYNC]),
        other => panic!("events/{other} has no expectation: add one"),
    }
}

const FUNCTIONS: [(&str, &[TriggerKind]); 4] = [
    (credentials::FUNCTION, credentials::HANDLES),
    (cold_storage::FUNCTION, cold_storage::HANDLES),
    (cluster::FUNCTION, cluster::HANDLES),
    (alarms::FUNCTION, alarms::HANDLES),
];

#[test]
fn every_sample_event_reaches_exactly_the_functions_that_handle_it() {
    let mut seen = 0;
    for entry in std::fs::read_dir(events_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".json") {
            continue;
        }
        seen += 1;
        let (kind, handlers) = expected(&name);
        let payload = event(&name);
        assert_eq!(decode(payload.clone()).unwrap().kind(), kind, "{name}");
        for (function, handles) in FUNCTIONS {
            let result = decode_for(function, handles, payload.clone());
            if handlers.contains(&function) {
                assert!(result.is_ok(), "{function} should take {name}: {result:?}");
            } else {
                let err = result.expect_err(&format!("{function} should refuse {name}"));
                assert!(
                    err.to_string()
                        .starts_with(&format!("{function} does not handle {kind} events")),
                    "{err}"
                );
            }
        }
    }
    assert!(seen >= 20, "only {seen} sample events");
}

#[test]
fn rotation_steps_decode_with_both_spellings_and_the_rotation_token() {
    let Trigger::Rotation(r) = decode(event("rotation-set-secret.json")).unwrap() else {
        panic!()
    };
    assert_eq!(r.step, RotationStep::SetSecret);
    assert_eq!(r.token, "7d2c5a3e-9f41-4b8e-a6d0-3c1f2e9b8a77");
    assert_eq!(
        r.rotation_token.as_deref(),
        Some("b1e6d9f0-2a7c-4c35-9e18-5f04a3d2c6b9")
    );
    let snake = json!({"Step": "finish_secret", "SecretId": "s", "ClientRequestToken": "t"});
    let Trigger::Rotation(r) = decode(snake).unwrap() else {
        panic!()
    };
    assert_eq!(
        (r.step, r.rotation_token),
        (RotationStep::FinishSecret, None)
    );
}

#[test]
fn alarm_payloads_from_both_paths_decode_to_one_shape() {
    let Trigger::AlarmChange(via_eventbridge) = decode(event("alarm-state-change.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        via_eventbridge.alarm_name,
        "signoz-collector-queue-pressure"
    );
    assert_eq!(via_eventbridge.state, AlarmState::Alarm);
    assert_eq!(via_eventbridge.previous_state, Some(AlarmState::Ok));
    assert_eq!(
        via_eventbridge.state_changed_at.to_string(),
        "2026-11-25T11:20:31.842Z"
    );
    let Trigger::AlarmChange(direct) = decode(event("alarm-lambda-action-composite.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(direct.alarm_name, "signoz-ingest-errors-composite");
    assert_eq!(direct.state, AlarmState::Alarm);
    assert!(
        direct
            .alarm_arn
            .unwrap()
            .ends_with(":alarm:signoz-ingest-errors-composite")
    );
}

#[test]
fn cloudtrail_calls_carry_the_bucket_and_the_actor() {
    let Trigger::BucketApiCall(call) =
        decode(event("cloudtrail-put-bucket-lifecycle.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(call.event_name, "PutBucketLifecycle");
    assert_eq!(call.bucket, "acme-signoz-cold");
    assert_eq!(
        call.actor,
        "arn:aws:sts::123456789012:assumed-role/PlatformAdmin/bob"
    );
    assert_eq!(call.error_code, None);
}

#[test]
fn s3_keys_are_url_decoded_and_both_s3_shapes_agree() {
    let mut records = event("s3-spec-written.json");
    records["Records"][0]["s3"]["object"]["key"] = json!("specs/acme+prod%2Bv2.yaml");
    let Trigger::SpecWritten(o) = decode(records).unwrap() else {
        panic!()
    };
    assert_eq!(o.key, "specs/acme prod+v2.yaml");
    let Trigger::SpecWritten(a) = decode(event("s3-spec-written.json")).unwrap() else {
        panic!()
    };
    let Trigger::SpecWritten(b) = decode(event("s3-object-created-eventbridge.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(a, b);
}

#[test]
fn rds_creation_calls_for_provisioning() {
    let Trigger::RdsInstance(e) = decode(event("rds-instance-created.json")).unwrap() else {
        panic!()
    };
    assert_eq!(e.instance_identifier, "signoz-metadata");
    assert!(e.calls_for_provisioning());
}

#[test]
fn control_requests_carry_dry_run() {
    let Trigger::Control(c) = decode(event("control-reconcile-cold-storage.json")).unwrap() else {
        panic!()
    };
    assert_eq!(c.action, ControlAction::ReconcileColdStorage);
    assert!(c.dry_run);
}

#[test]
fn foreign_and_malformed_payloads_are_refused_by_name() {
    let cases = [
        (
            json!([1, 2]),
            "unsupported event: expected a JSON object, got an array",
        ),
        (
            json!("ping"),
            "unsupported event: expected a JSON object, got a string",
        ),
        (
            json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}),
            "unsupported event: Records from aws:sqs",
        ),
        (
            json!({"version": "0", "id": "1", "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}}),
            "unsupported event: EventBridge event from \"aws.ec2\" with detail-type \"EC2 Instance State-change Notification\"",
        ),
        (
            json!({"Step": "dropSecret", "SecretId": "s", "ClientRequestToken": "t"}),
            "malformed Secrets Manager rotation event: unknown step \"dropSecret\" (expected createSecret, setSecret, testSecret or finishSecret)",
        ),
        (
            json!({"detail-type": "Sync Cluster", "source": CONTROL_SOURCE, "detail": {"dryrun": true}}),
            "malformed control-plane request event: unknown field `dryrun`, expected `dry_run`",
        ),
        (
            json!({"detail-type": "Drop Everything", "source": CONTROL_SOURCE, "detail": {}}),
            "unsupported event: control-plane request \"Drop Everything\" (expected \"Provision Database\", \"Reconcile Cold Storage\" or \"Sync Cluster\")",
        ),
        (
            json!({"hello": "world"}),
            "unsupported event: unrecognised payload with keys [hello]",
        ),
    ];
    for (payload, message) in cases {
        assert_eq!(decode(payload).unwrap_err().to_string(), message);
    }
    // An EventBridge alarm event with its detail missing is malformed, not routed elsewhere.
    let mut broken = event("alarm-state-change.json");
    broken["detail"]
        .as_object_mut()
        .unwrap()
        .remove("alarmName");
    let err = decode(broken).unwrap_err().to_string();
    assert!(
        err.starts_with("malformed CloudWatch Alarm State Change event: missing field `alarmName`"),
        "{err}"
    );
}
