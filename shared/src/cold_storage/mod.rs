//! The `enforce-cold-storage` function's path: decode, plan, check safety, apply.
//!
//! The bucket's posture ([`plan`], [`apply`]) and ClickHouse's TTLs ([`ttl`]) are planned
//! from the spec; an unsafe plan is refused before any write. The largest retention ever
//! applied lives in the state store and bounds expiration from below.

pub mod apply;
pub mod cost;
pub mod plan;
pub mod ttl;

use serde_json::{Value, json};

use crate::events::{ControlAction, Trigger, TriggerKind, decode_for};
use crate::spec::{LoadedSpec, SpecLocation, load_spec};
use crate::state::{StateError, StateStore};
use plan::RetentionHighWater;
use ttl::{TtlApi, TtlOutcome, TtlPatience};

/// Name of the Lambda function this module serves.
pub const FUNCTION: &str = "enforce-cold-storage";
/// The triggers `enforce-cold-storage` handles.
pub const HANDLES: &[TriggerKind] = &[
    TriggerKind::Schedule,
    TriggerKind::SpecWritten,
    TriggerKind::BucketApiCall,
    TriggerKind::Control,
];

/// CloudTrail `eventName`s of the bucket-level calls that change what this function
/// enforces, as CloudTrail spells them (AWS S3 User Guide, "Amazon S3 bucket-level actions
/// tracked by CloudTrail logging"): `PutBucketLifecycleConfiguration` is logged as
/// `PutBucketLifecycle`, `PutPublicAccessBlock` / `DeletePublicAccessBlock` on a bucket as
/// `PutBucketPublicAccessBlock` / `DeleteBucketPublicAccessBlock`. The EventBridge rule
/// must match exactly this list.
pub const DRIFT_EVENT_NAMES: &[&str] = &[
    "PutBucketLifecycle",
    "DeleteBucketLifecycle",
    "PutBucketEncryption",
    "DeleteBucketEncryption",
    "PutBucketPublicAccessBlock",
    "DeleteBucketPublicAccessBlock",
    "PutBucketPolicy",
    "DeleteBucketPolicy",
    "PutBucketVersioning",
];

/// Environment variable that turns every invocation into a dry run (the local command).
pub const DRY_RUN_ENV: &str = "DRY_RUN";

/// Errors of this function's path. Nothing is written when `Unsafe` is returned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("refusing the cold-storage plan, nothing was written:\n{}", render(.0))]
    Unsafe(Vec<String>),
    #[error(
        "cold-storage bucket {0} does not exist (it is created by Terraform); retry once it does"
    )]
    BucketMissing(String),
    #[error("S3 {operation} failed: {reason}")]
    BucketCall {
        operation: &'static str,
        reason: String,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "SigNoz API key secret {secret} does not exist or is empty: store an admin API key in it"
    )]
    ApiKeyMissing { secret: String },
    #[error("cannot read SigNoz API key secret {secret}: {reason}")]
    ApiKeyUnavailable { secret: String, reason: String },
    #[error("SigNoz TTL API unavailable for {signal}: {reason}")]
    TtlApiUnavailable { signal: String, reason: String },
    #[error("SigNoz TTL API refused {signal} (HTTP {status}): {message}")]
    TtlApiRejected {
        signal: String,
        status: u16,
        message: String,
    },
    #[error("SigNoz reported the TTL job failed for: {}", .0.join(", "))]
    TtlJobFailed(Vec<String>),
}

impl Error {
    /// Whether running again later may succeed without anyone changing anything.
    pub fn retryable(&self) -> bool {
        match self {
            Error::BucketCall { .. }
            | Error::ApiKeyUnavailable { .. }
            | Error::TtlApiUnavailable { .. }
            | Error::TtlJobFailed(_) => true,
            Error::State(e) => !matches!(e, StateError::Corrupt { .. }),
            Error::Unsafe(_)
            | Error::BucketMissing(_)
            | Error::ApiKeyMissing { .. }
            | Error::TtlApiRejected { .. } => false,
        }
    }
}

fn render(reasons: &[String]) -> String {
    reasons
        .iter()
        .map(|r| format!("  - {r}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Clients and configuration built once per process, in `main`.
pub struct Context {
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    /// Built on first use: drift repairs never call SigNoz, and building a TLS client
    /// loads the system's root certificates, which would lengthen every cold start.
    http: std::sync::OnceLock<reqwest::Client>,
    pub spec_location: SpecLocation,
    /// Plan and report only, whatever the event says (`DRY_RUN=1`).
    pub dry_run: bool,
    pub ttl_patience: TtlPatience,
}

impl Context {
    /// Builds the context from the environment.
    pub async fn from_env() -> crate::Result<Self> {
        let config = crate::aws::sdk_config().await?;
        let mut ctx = Context::new(&config, SpecLocation::from_env()?);
        ctx.dry_run = std::env::var(DRY_RUN_ENV).is_ok_and(|v| v == "1" || v == "true");
        Ok(ctx)
    }

    /// A context over the given SDK configuration and spec location.
    pub fn new(config: &aws_config::SdkConfig, spec_location: SpecLocation) -> Self {
        Self::with_clients(
            crate::aws::s3_client(config),
            aws_sdk_secretsmanager::Client::new(config),
            spec_location,
        )
    }

    /// A context over clients the caller already built (they are cheap handles).
    pub fn with_clients(
        s3: aws_sdk_s3::Client,
        secrets: aws_sdk_secretsmanager::Client,
        spec_location: SpecLocation,
    ) -> Self {
        Context {
            s3,
            secrets,
            http: std::sync::OnceLock::new(),
            spec_location,
            dry_run: false,
            ttl_patience: TtlPatience::default(),
        }
    }

    /// The HTTP client of SigNoz's TTL API.
    pub fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(15))
                .build()
                .expect("HTTP client (the TLS provider is installed at start-up)")
        })
    }
}

/// What a reconcile covers: drift events only touch the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    BucketAndTtls,
    BucketOnly,
}

fn ignored(trigger: &str, reason: impl Into<String>) -> Value {
    let reason = reason.into();
    tracing::info!(trigger, reason, "ignored");
    json!({ "function": FUNCTION, "trigger": trigger, "ignored": reason })
}

/// Handles one invocation.
pub async fn handle(ctx: &Context, payload: Value) -> crate::Result<Value> {
    let trigger = decode_for(FUNCTION, HANDLES, payload)?;
    let kind = trigger.kind().to_string();
    match trigger {
        Trigger::Schedule { .. } => {
            let loaded = load_spec(&ctx.spec_location, &ctx.s3).await?;
            reconcile(ctx, &loaded, Scope::BucketAndTtls, ctx.dry_run, &kind).await
        }
        Trigger::SpecWritten(object) => {
            let is_spec = matches!(&ctx.spec_location,
                SpecLocation::S3 { bucket, key } if *bucket == object.bucket && *key == object.key);
            if !is_spec {
                return Ok(ignored(
                    &kind,
                    format!(
                        "s3://{}/{} is not the platform spec ({})",
                        object.bucket, object.key, ctx.spec_location
                    ),
                ));
            }
            let loaded = load_spec(&ctx.spec_location, &ctx.s3).await?;
            reconcile(ctx, &loaded, Scope::BucketAndTtls, ctx.dry_run, &kind).await
        }
        Trigger::BucketApiCall(call) => {
            if let Some(code) = &call.error_code {
                return Ok(ignored(
                    &kind,
                    format!("{} failed ({code}): nothing changed", call.event_name),
                ));
            }
            if !DRIFT_EVENT_NAMES.contains(&call.event_name.as_str()) {
                return Ok(ignored(
                    &kind,
                    format!("{} does not change the bucket's posture", call.event_name),
                ));
            }
            let loaded = load_spec(&ctx.spec_location, &ctx.s3).await?;
            if call.bucket != loaded.spec.cold_storage.bucket {
                return Ok(ignored(
                    &kind,
                    format!("bucket {} is not the cold-storage bucket", call.bucket),
                ));
            }
            tracing::warn!(
                bucket = call.bucket,
                event_name = call.event_name,
                actor = call.actor,
                event_time = call.event_time,
                "cold bucket changed outside the control plane; undoing"
            );
            let mut summary =
                reconcile(ctx, &loaded, Scope::BucketOnly, ctx.dry_run, &kind).await?;
            summary["drift"] = json!({ "event_name": call.event_name, "actor": call.actor, "event_time": call.event_time });
            Ok(summary)
        }
        Trigger::Control(request) if request.action == ControlAction::ReconcileColdStorage => {
            let loaded = load_spec(&ctx.spec_location, &ctx.s3).await?;
            let dry_run = request.dry_run || ctx.dry_run;
            reconcile(ctx, &loaded, Scope::BucketAndTtls, dry_run, &kind).await
        }
        Trigger::Control(request) => Ok(ignored(
            &kind,
            format!("{:?} is not for this function", request.action),
        )),
        other => Ok(ignored(
            &kind,
            format!("unexpected trigger {}", other.kind()),
        )),
    }
}

/// Reconciles the bucket and TTLs now, as the schedule would (respond-to-alarms calls it).
pub async fn reconcile_now(ctx: &Context, trigger: &str) -> crate::Result<Value> {
    let loaded = load_spec(&ctx.spec_location, &ctx.s3).await?;
    reconcile(ctx, &loaded, Scope::BucketAndTtls, ctx.dry_run, trigger).await
}

/// Plans the bucket and TTLs, refuses unsafe plans, and applies unless `dry_run`.
async fn reconcile(
    ctx: &Context,
    loaded: &LoadedSpec,
    scope: Scope,
    dry_run: bool,
    trigger: &str,
) -> crate::Result<Value> {
    let spec = &loaded.spec;
    let bucket = &spec.cold_storage.bucket;
    let state = StateStore::for_spec(ctx.s3.clone(), spec);
    let (memory, _) = state
        .load::<RetentionHighWater>(RetentionHighWater::KEY)
        .await
        .map_err(Error::from)?;
    let memory = memory.unwrap_or_default();
    // Hot days lowered by an alarm policy stay lowered until respond-to-alarms reverts them;
    // the override is already bounded by the same safety check as below.
    let hot_days = match scope {
        Scope::BucketAndTtls => {
            crate::alarms::overrides::read_hot_days_override(&state, &loaded.spec, &memory).await?
        }
        Scope::BucketOnly => None,
    };
    let effective = hot_days.as_ref().map(|o| o.applied_to(&loaded.spec));
    let spec = effective.as_ref().unwrap_or(spec);
    let observed = apply::observe_bucket(&ctx.s3, bucket).await?;
    let mut reasons = plan::unsafe_reasons(spec, &memory);
    reasons.extend(plan::foreign_rule_conflicts(
        spec,
        &memory,
        &observed.lifecycle_rules,
    ));
    if !reasons.is_empty() {
        for reason in &reasons {
            tracing::error!(bucket, reason, "unsafe cold-storage plan refused");
        }
        return Err(Error::Unsafe(reasons).into());
    }
    let changes = plan::plan_bucket_posture(spec, &observed);
    let targets = ttl::plan_ttls(&spec.retention);
    let report: Vec<Value> = changes
        .iter()
        .map(|c| json!({ "resource": c.resource, "before": c.before, "after": c.after }))
        .collect();
    let mut summary = json!({
        "function": FUNCTION,
        "trigger": trigger,
        "spec_revision": loaded.revision,
        "dry_run": dry_run,
        "bucket": bucket,
        "remembered_cold_days": memory.cold_days,
    });
    if let Some(o) = &hot_days {
        summary["alarm_overrides"] = json!(o.why);
    }
    if dry_run {
        summary["planned_changes"] = json!(report);
        if scope == Scope::BucketAndTtls {
            summary["planned_ttls"] = json!(targets);
        }
        summary["cost"] = json!(
            spec.cold_storage
                .cost
                .as_ref()
                .map(|prices| cost::cost_curve(&spec.cold_storage, prices))
        );
        tracing::info!(plan = %summary, "dry run: nothing written");
        return Ok(summary);
    }
    for change in &changes {
        apply::apply_bucket_change(&ctx.s3, bucket, change).await?;
    }
    summary["changes"] = json!(report);
    if scope == Scope::BucketOnly {
        return Ok(summary);
    }
    // Remember before applying: a TTL that half-applied must still bound expiration.
    let raised = state
        .update(
            RetentionHighWater::KEY,
            |current: Option<&RetentionHighWater>| {
                current
                    .cloned()
                    .unwrap_or_default()
                    .raised_to(&spec.retention)
            },
        )
        .await
        .map_err(Error::from)?;
    if let Some(raised) = &raised {
        summary["remembered_cold_days"] = json!(raised.cold_days);
    }
    let api_key = read_api_key(ctx, &spec.retention.ttl_api.api_key_secret).await?;
    let api = TtlApi {
        http: ctx.http(),
        base_url: &spec.retention.ttl_api.url,
        api_key: &api_key,
        patience: ctx.ttl_patience,
    };
    let mut reports = Vec::new();
    for target in targets {
        reports.push(api.converge(target).await?);
    }
    summary["ttls"] = json!(reports);
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.outcome == TtlOutcome::Failed)
        .map(|r| r.signal.to_string())
        .collect();
    tracing::info!(summary = %summary, "cold storage reconciled");
    if !failed.is_empty() {
        return Err(Error::TtlJobFailed(failed).into());
    }
    Ok(summary)
}

/// The admin API key: the secret's string, or its `api_key` field when it is JSON.
async fn read_api_key(ctx: &Context, secret: &str) -> Result<String, Error> {
    let out = ctx
        .secrets
        .get_secret_value()
        .secret_id(secret)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .map_err(|e| match crate::aws::error_code(&e) {
            Some("ResourceNotFoundException") => Error::ApiKeyMissing {
                secret: secret.into(),
            },
            _ => Error::ApiKeyUnavailable {
                secret: secret.into(),
                reason: crate::aws::error_text(&e),
            },
        })?;
    let text = out.secret_string().unwrap_or_default().trim();
    let key = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map
            .get("api_key")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => text.to_string(),
    };
    if key.is_empty() {
        return Err(Error::ApiKeyMissing {
            secret: secret.into(),
        });
    }
    Ok(key)
}
