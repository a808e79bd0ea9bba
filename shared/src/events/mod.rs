//! Decoding every trigger the functions receive into one typed [`Trigger`].
//!
//! The payload's shape is recognised by its discriminating fields (`Records[].eventSource`,
//! `Step`/`SecretId`, EventBridge `source` + `detail-type`, `alarmData`) before any typed
//! deserialisation: an untagged enum would let the permissive alarm type swallow
//! EventBridge payloads. Each function then accepts only the [`TriggerKind`]s it handles.

use std::fmt;

use aws_lambda_events::cloudwatch_alarms::{
    CloudWatchAlarm, CloudWatchAlarmData, CloudWatchAlarmStateValue,
};
use aws_lambda_events::cloudwatch_events::cloudtrail::AWSAPICall;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::s3::S3Event;
use aws_lambda_events::secretsmanager::SecretsManagerSecretRotationEvent;
use serde::Deserialize;
use serde_json::Value;

/// EventBridge `source` of explicit requests to the control plane.
pub const CONTROL_SOURCE: &str = "signoz.control-plane";

/// A decoded trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// EventBridge schedule.
    Schedule { rule: Option<String> },
    /// The platform spec was written to the config bucket.
    SpecWritten(ObjectWritten),
    /// A CloudTrail-recorded S3 API call (drift candidate).
    BucketApiCall(BucketApiCall),
    /// A CloudWatch alarm changed state (EventBridge or the alarm's Lambda action).
    AlarmChange(AlarmChange),
    /// A Secrets Manager rotation step.
    Rotation(RotationRequest),
    /// An RDS DB instance event.
    RdsInstance(RdsInstanceEvent),
    /// An explicit request (`source: signoz.control-plane`).
    Control(ControlRequest),
}

/// The kinds of [`Trigger`], for routing and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    Schedule,
    SpecWritten,
    BucketApiCall,
    AlarmChange,
    Rotation,
    RdsInstance,
    Control,
}

impl fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TriggerKind::Schedule => "EventBridge schedule",
            TriggerKind::SpecWritten => "S3 object written",
            TriggerKind::BucketApiCall => "CloudTrail S3 API call",
            TriggerKind::AlarmChange => "CloudWatch alarm state change",
            TriggerKind::Rotation => "Secrets Manager rotation",
            TriggerKind::RdsInstance => "RDS DB instance event",
            TriggerKind::Control => "control-plane request",
        })
    }
}

impl Trigger {
    /// This trigger's kind.
    pub fn kind(&self) -> TriggerKind {
        match self {
            Trigger::Schedule { .. } => TriggerKind::Schedule,
            Trigger::SpecWritten(_) => TriggerKind::SpecWritten,
            Trigger::BucketApiCall(_) => TriggerKind::BucketApiCall,
            Trigger::AlarmChange(_) => TriggerKind::AlarmChange,
            Trigger::Rotation(_) => TriggerKind::Rotation,
            Trigger::RdsInstance(_) => TriggerKind::RdsInstance,
            Trigger::Control(_) => TriggerKind::Control,
        }
    }
}

/// An object written to S3 (the spec, when it is the configured key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectWritten {
    pub bucket: String,
    pub key: String,
    pub etag: Option<String>,
    pub version_id: Option<String>,
}

/// An S3 API call on a bucket, as CloudTrail recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketApiCall {
    /// CloudTrail's event name (e.g. `PutBucketLifecycle`, not the SDK's operation name).
    pub event_name: String,
    pub bucket: String,
    /// Who made the call (ARN, else principal id, else identity type).
    pub actor: String,
    pub event_time: String,
    /// Set when the call failed: nothing changed then.
    pub error_code: Option<String>,
}

/// Alarm states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        })
    }
}

/// One alarm transition, whichever way it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmChange {
    pub alarm_name: String,
    pub alarm_arn: Option<String>,
    pub state: AlarmState,
    pub previous_state: Option<AlarmState>,
    pub reason: String,
    /// When the alarm entered `state` (orders events per alarm).
    pub state_changed_at: jiff::Timestamp,
}

/// The four rotation steps of Secrets Manager's contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RotationStep {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

impl RotationStep {
    /// Parses both spellings Secrets Manager uses (`createSecret`, `create_secret`).
    pub fn parse(step: &str) -> Option<Self> {
        match step {
            "createSecret" | "create_secret" => Some(Self::CreateSecret),
            "setSecret" | "set_secret" => Some(Self::SetSecret),
            "testSecret" | "test_secret" => Some(Self::TestSecret),
            "finishSecret" | "finish_secret" => Some(Self::FinishSecret),
            _ => None,
        }
    }
}

impl fmt::Display for RotationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RotationStep::CreateSecret => "createSecret",
            RotationStep::SetSecret => "setSecret",
            RotationStep::TestSecret => "testSecret",
            RotationStep::FinishSecret => "finishSecret",
        })
    }
}

/// One rotation invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationRequest {
    pub step: RotationStep,
    pub secret_id: String,
    /// The version being rotated in (`ClientRequestToken`).
    pub token: String,
    /// To pass to `PutSecretValue` when present.
    pub rotation_token: Option<String>,
}

/// An RDS DB instance event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdsInstanceEvent {
    pub instance_identifier: String,
    /// `RDS-EVENT-0005` (created), ...
    pub event_id: String,
    pub message: String,
}

impl RdsInstanceEvent {
    /// Whether this event means a new instance exists that needs SigNoz's database
    /// (created, restored from snapshot or point in time).
    pub fn calls_for_provisioning(&self) -> bool {
        matches!(
            self.event_id.as_str(),
            "RDS-EVENT-0005" | "RDS-EVENT-0043" | "RDS-EVENT-0019"
        )
    }
}

/// What an explicit request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlAction {
    ProvisionDatabase,
    ReconcileColdStorage,
    SyncCluster,
}

impl ControlAction {
    /// The EventBridge `detail-type` of this action.
    pub const fn detail_type(self) -> &'static str {
        match self {
            ControlAction::ProvisionDatabase => "Provision Database",
            ControlAction::ReconcileColdStorage => "Reconcile Cold Storage",
            ControlAction::SyncCluster => "Sync Cluster",
        }
    }

    fn from_detail_type(value: &str) -> Option<Self> {
        [
            Self::ProvisionDatabase,
            Self::ReconcileColdStorage,
            Self::SyncCluster,
        ]
        .into_iter()
        .find(|a| a.detail_type() == value)
    }
}

/// An explicit request, sent with `aws events put-events` or invoked directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRequest {
    pub action: ControlAction,
    /// Plan and print, write nothing.
    pub dry_run: bool,
}

/// Why a payload was not accepted. Raised before any side effect.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("unsupported event: {0}")]
    Unsupported(String),
    #[error("malformed {kind} event: {reason}")]
    Malformed { kind: &'static str, reason: String },
    #[error("{function} does not handle {got} events (it handles: {handles})")]
    NotHandled {
        function: &'static str,
        got: TriggerKind,
        handles: String,
    },
}

fn malformed(kind: &'static str) -> impl Fn(serde_json::Error) -> DecodeError {
    move |e| DecodeError::Malformed {
        kind,
        reason: e.to_string(),
    }
}

/// Decodes a payload and checks that `function` handles its kind.
pub fn decode_for(
    function: &'static str,
    handles: &[TriggerKind],
    payload: Value,
) -> Result<Trigger, DecodeError> {
    let trigger = decode(payload)?;
    crate::telemetry::record_trigger(trigger.kind());
    if handles.contains(&trigger.kind()) {
        Ok(trigger)
    } else {
        Err(DecodeError::NotHandled {
            function,
            got: trigger.kind(),
            handles: handles
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// Recognises the payload's shape and decodes it.
pub fn decode(payload: Value) -> Result<Trigger, DecodeError> {
    let Value::Object(map) = &payload else {
        return Err(DecodeError::Unsupported(format!(
            "expected a JSON object, got {}",
            json_type(&payload)
        )));
    };
    if let Some(records) = map.get("Records") {
        let source = records
            .get(0)
            .and_then(|r| r.get("eventSource"))
            .and_then(Value::as_str)
            .unwrap_or("an unknown source");
        return match source {
            "aws:s3" => decode_s3_records(payload),
            other => Err(DecodeError::Unsupported(format!("Records from {other}"))),
        };
    }
    if map.contains_key("Step") && map.contains_key("SecretId") {
        return decode_rotation(payload);
    }
    if let (Some(source), Some(detail_type)) = (
        map.get("source").and_then(Value::as_str),
        map.get("detail-type").and_then(Value::as_str),
    ) {
        return decode_eventbridge(source.to_string(), detail_type.to_string(), payload);
    }
    if map.contains_key("alarmData")
        && map.get("source").and_then(Value::as_str) == Some("aws.cloudwatch")
    {
        let alarm: CloudWatchAlarm<Value, Value> =
            serde_json::from_value(payload).map_err(malformed("CloudWatch alarm action"))?;
        return alarm_change(alarm.alarm_data, alarm.alarm_arn, "CloudWatch alarm action");
    }
    let mut keys: Vec<&str> = map.keys().map(String::as_str).take(6).collect();
    keys.sort_unstable();
    Err(DecodeError::Unsupported(format!(
        "unrecognised payload with keys [{}]",
        keys.join(", ")
    )))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn decode_s3_records(payload: Value) -> Result<Trigger, DecodeError> {
    let event: S3Event = serde_json::from_value(payload).map_err(malformed("S3 notification"))?;
    let record = event
        .records
        .into_iter()
        .find(|r| {
            r.event_name
                .as_deref()
                .is_some_and(|n| n.starts_with("ObjectCreated:"))
        })
        .ok_or_else(|| {
            DecodeError::Unsupported("S3 notification without an ObjectCreated record".into())
        })?;
    let missing = |what: &str| DecodeError::Malformed {
        kind: "S3 notification",
        reason: format!("record has no {what}"),
    };
    Ok(Trigger::SpecWritten(ObjectWritten {
        bucket: record
            .s3
            .bucket
            .name
            .ok_or_else(|| missing("bucket name"))?,
        // Keys arrive URL-encoded with '+' for spaces.
        key: url_decode_key(&record.s3.object.key.ok_or_else(|| missing("object key"))?),
        etag: record.s3.object.e_tag,
        version_id: record.s3.object.version_id,
    }))
}

fn url_decode_key(key: &str) -> String {
    let plus_as_space = key.replace('+', " ");
    url::form_urlencoded::parse(format!("k={}", plus_as_space.replace(' ', "%20")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or(plus_as_space)
}

fn decode_rotation(payload: Value) -> Result<Trigger, DecodeError> {
    let rotation_token = payload
        .get("RotationToken")
        .and_then(Value::as_str)
        .map(str::to_string);
    let event: SecretsManagerSecretRotationEvent =
        serde_json::from_value(payload).map_err(malformed("Secrets Manager rotation"))?;
    let step = RotationStep::parse(&event.step).ok_or_else(|| DecodeError::Malformed {
        kind: "Secrets Manager rotation",
        reason: format!(
            "unknown step {:?} (expected createSecret, setSecret, testSecret or finishSecret)",
            event.step
        ),
    })?;
    if event.secret_id.is_empty() || event.client_request_token.is_empty() {
        return Err(DecodeError::Malformed {
            kind: "Secrets Manager rotation",
            reason: "SecretId and ClientRequestToken must not be empty".into(),
        });
    }
    Ok(Trigger::Rotation(RotationRequest {
        step,
        secret_id: event.secret_id,
        token: event.client_request_token,
        rotation_token,
    }))
}

fn decode_eventbridge(
    source: String,
    detail_type: String,
    payload: Value,
) -> Result<Trigger, DecodeError> {
    match (source.as_str(), detail_type.as_str()) {
        ("aws.events" | "aws.scheduler", "Scheduled Event") => {
            let event: EventBridgeEvent =
                serde_json::from_value(payload).map_err(malformed("scheduled"))?;
            Ok(Trigger::Schedule {
                rule: event.resources.and_then(|r| r.into_iter().next()),
            })
        }
        ("aws.s3", "Object Created") => {
            let event: EventBridgeEvent<S3ObjectCreatedDetail> =
                serde_json::from_value(payload).map_err(malformed("S3 Object Created"))?;
            Ok(Trigger::SpecWritten(ObjectWritten {
                bucket: event.detail.bucket.name,
                key: event.detail.object.key,
                etag: event.detail.object.etag,
                version_id: event.detail.object.version_id,
            }))
        }
        ("aws.s3", "AWS API Call via CloudTrail") => {
            let error_code = payload
                .pointer("/detail/errorCode")
                .and_then(Value::as_str)
                .map(str::to_string);
            let event: EventBridgeEvent<AWSAPICall> =
                serde_json::from_value(payload).map_err(malformed("CloudTrail API call"))?;
            let call = event.detail;
            let bucket = call
                .request_parameters
                .get("bucketName")
                .and_then(Value::as_str)
                .ok_or_else(|| DecodeError::Malformed {
                    kind: "CloudTrail API call",
                    reason: "requestParameters.bucketName is missing".into(),
                })?
                .to_string();
            let identity = &call.user_identity;
            let actor = identity
                .arn
                .clone()
                .or_else(|| identity.principal_id.clone())
                .unwrap_or_else(|| identity.r#type.clone());
            Ok(Trigger::BucketApiCall(BucketApiCall {
                event_name: call.event_name,
                bucket,
                actor,
                event_time: call.event_time,
                error_code,
            }))
        }
        ("aws.cloudwatch", "CloudWatch Alarm State Change") => {
            let resources = payload.get("resources").cloned();
            let event: EventBridgeEvent<CloudWatchAlarmData<Value, Value>> =
                serde_json::from_value(payload)
                    .map_err(malformed("CloudWatch Alarm State Change"))?;
            let arn = resources.and_then(|r| r.get(0).and_then(Value::as_str).map(str::to_string));
            alarm_change(event.detail, arn, "CloudWatch Alarm State Change")
        }
        ("aws.rds", "RDS DB Instance Event") => {
            let event: EventBridgeEvent<RdsEventDetail> =
                serde_json::from_value(payload).map_err(malformed("RDS DB Instance Event"))?;
            Ok(Trigger::RdsInstance(RdsInstanceEvent {
                instance_identifier: event.detail.source_identifier,
                event_id: event.detail.event_id,
                message: event.detail.message,
            }))
        }
        (CONTROL_SOURCE, _) => {
            let action = ControlAction::from_detail_type(&detail_type).ok_or_else(|| {
                DecodeError::Unsupported(format!(
                    "control-plane request {detail_type:?} (expected \"Provision Database\", \"Reconcile Cold Storage\" or \"Sync Cluster\")"
                ))
            })?;
            let event: EventBridgeEvent<ControlDetail> =
                serde_json::from_value(payload).map_err(malformed("control-plane request"))?;
            Ok(Trigger::Control(ControlRequest {
                action,
                dry_run: event.detail.dry_run,
            }))
        }
        _ => Err(DecodeError::Unsupported(format!(
            "EventBridge event from {source:?} with detail-type {detail_type:?}"
        ))),
    }
}

fn alarm_change(
    data: CloudWatchAlarmData<Value, Value>,
    alarm_arn: Option<String>,
    kind: &'static str,
) -> Result<Trigger, DecodeError> {
    let state = data.state.ok_or_else(|| DecodeError::Malformed {
        kind,
        reason: "alarm has no state".into(),
    })?;
    let current = alarm_state(&state.value).ok_or_else(|| DecodeError::Malformed {
        kind,
        reason: format!("unknown alarm state {:?}", state.value),
    })?;
    let previous = data.previous_state.and_then(|p| alarm_state(&p.value));
    let state_changed_at = jiff::Timestamp::from_second(state.timestamp.timestamp())
        .and_then(|t| {
            t.checked_add(jiff::SignedDuration::from_nanos(
                state.timestamp.timestamp_subsec_nanos().into(),
            ))
        })
        .map_err(|e| DecodeError::Malformed {
            kind,
            reason: format!("bad state timestamp: {e}"),
        })?;
    Ok(Trigger::AlarmChange(AlarmChange {
        alarm_name: data.alarm_name,
        alarm_arn,
        state: current,
        previous_state: previous,
        reason: state.reason,
        state_changed_at,
    }))
}

fn alarm_state(value: &CloudWatchAlarmStateValue) -> Option<AlarmState> {
    match value {
        CloudWatchAlarmStateValue::Ok => Some(AlarmState::Ok),
        CloudWatchAlarmStateValue::Alarm => Some(AlarmState::Alarm),
        CloudWatchAlarmStateValue::InsufficientData => Some(AlarmState::InsufficientData),
        _ => None,
    }
}

#[derive(Deserialize, serde::Serialize)]
struct S3ObjectCreatedDetail {
    bucket: NamedBucket,
    object: CreatedObject,
}

#[derive(Deserialize, serde::Serialize)]
struct NamedBucket {
    name: String,
}

#[derive(Deserialize, serde::Serialize)]
struct CreatedObject {
    key: String,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default, rename = "version-id")]
    version_id: Option<String>,
}

#[derive(Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct RdsEventDetail {
    source_identifier: String,
    #[serde(rename = "EventID")]
    event_id: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields)]
struct ControlDetail {
    #[serde(default)]
    dry_run: bool,
}

#[cfg(test)]
mod tests;
