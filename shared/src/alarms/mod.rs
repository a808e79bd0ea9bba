//! The `respond-to-alarms` function's path: decode, match policies, plan against the
//! policy's remembered state (S3, optimistic concurrency), apply, audit.
//!
//! Levels (collector replica bounds, hot days) live in the state store as steps over the
//! spec's baseline; sync-cluster and enforce-cold-storage read them ([`overrides`]), so a
//! scheduled reconcile keeps a remediation until an OK (after the cooldown) reverts it.

pub mod apply;
pub mod overrides;
pub mod plan;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::cold_storage::plan::RetentionHighWater;
use crate::events::{AlarmChange, Trigger, TriggerKind, decode_for};
use crate::spec::{AlarmAction, AlarmPolicy, PlatformSpec, SpecLocation, load_spec};
use crate::state::{StateError, StateStore};
use overrides::{describe_step, max_step, state_key};
use plan::{
    Decision, Ignored, PolicyState, Recorded, Remedy, plan_alarm_response, plan_due_revert,
};

/// Name of the Lambda function this module serves.
pub const FUNCTION: &str = "respond-to-alarms";
/// The triggers `respond-to-alarms` handles: alarm changes, and a schedule that completes
/// reverts whose cooldown has passed.
pub const HANDLES: &[TriggerKind] = &[TriggerKind::AlarmChange, TriggerKind::Schedule];

/// Errors of this function's path; [`Error::retryable`] says whether trying again helps.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// `rotate_now` on a secret without a rotation function (retry does not help).
    #[error("cannot rotate {secret}: it has no rotation function configured")]
    RotationNotConfigured { secret: String },
    /// Secrets Manager refused or failed (retry may help).
    #[error("Secrets Manager on {secret}: {detail}")]
    SecretsManager { secret: String, detail: String },
}

impl Error {
    /// Whether retrying the same invocation can succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Error::State(e) => !matches!(e, StateError::Corrupt { .. }),
            Error::SecretsManager { .. } => true,
            Error::RotationNotConfigured { .. } => false,
        }
    }
}

/// Clients and configuration built once per process, in `main`.
pub struct Context {
    pub sdk: aws_config::SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub spec_location: SpecLocation,
    /// The cluster (`KUBECONFIG`, else EKS with a token per invocation), kept warm.
    pub kube: crate::cluster::access::ClusterClient,
    /// enforce-cold-storage's context: move-to-cold and reconcile-now run its reconcile.
    pub cold_storage: crate::cold_storage::Context,
}

impl Context {
    /// Builds the context from the environment (`PLATFORM_SPEC`, AWS settings, `KUBECONFIG`).
    pub async fn from_env() -> crate::Result<Self> {
        let sdk = crate::aws::sdk_config().await?;
        Ok(Self::new(
            &sdk,
            SpecLocation::from_env()?,
            crate::cluster::access::kubeconfig_from_env(),
        ))
    }

    /// A context over the given SDK configuration, spec and kubeconfig.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        spec_location: SpecLocation,
        kubeconfig: Option<std::path::PathBuf>,
    ) -> Self {
        let s3 = crate::aws::s3_client(sdk);
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);
        Context {
            cold_storage: crate::cold_storage::Context::with_clients(
                s3.clone(),
                secrets.clone(),
                spec_location.clone(),
            ),
            s3,
            secrets,
            spec_location,
            kube: crate::cluster::access::ClusterClient::new(kubeconfig),
            sdk: sdk.clone(),
        }
    }
}

/// Handles one invocation.
pub async fn handle(ctx: &Context, payload: Value) -> crate::Result<Value> {
    handle_at(ctx, payload, Timestamp::now()).await
}

/// [`handle`] at a given time (cooldowns are measured against `now`).
pub async fn handle_at(ctx: &Context, payload: Value, now: Timestamp) -> crate::Result<Value> {
    let trigger = decode_for(FUNCTION, HANDLES, payload)?;
    let spec = load_spec(&ctx.spec_location, &ctx.s3).await?.spec;
    let store = StateStore::for_spec(ctx.s3.clone(), &spec);
    let responses = match &trigger {
        Trigger::AlarmChange(change) => respond_to_change(ctx, &store, &spec, change, now).await?,
        _ => complete_due_reverts(ctx, &store, &spec, now).await?,
    };
    Ok(json!({
        "function": FUNCTION,
        "trigger": trigger.kind().to_string(),
        "policies": responses,
    }))
}

/// Plans and applies the response of every policy matching the alarm.
async fn respond_to_change(
    ctx: &Context,
    store: &StateStore,
    spec: &PlatformSpec,
    change: &AlarmChange,
    now: Timestamp,
) -> crate::Result<Vec<Value>> {
    let policies: Vec<&AlarmPolicy> = spec
        .alarms
        .policies
        .iter()
        .filter(|p| p.matches(&change.alarm_name))
        .collect();
    if policies.is_empty() {
        tracing::info!(alarm = %change.alarm_name, state = %change.state, "no policy matches the alarm; ignored");
        return Ok(Vec::new());
    }
    let memory = remembered_retention(store, &policies).await?;
    let mut responses = Vec::new();
    for policy in policies {
        let limit = max_step(policy, spec, &memory);
        let mut decided = None;
        let mut step_before = 0;
        store
            .update(&state_key(&policy.name), |current: Option<&PolicyState>| {
                let decision = plan_alarm_response(policy, change, current, limit, now);
                let state = current.cloned().unwrap_or_default();
                step_before = state.step;
                decided = Some(decision);
                decision.is_recorded().then(|| {
                    state.after(&recorded(policy, spec, Some(change), decision, &state, now))
                })
            })
            .await
            .map_err(Error::from)?;
        let decision = decided.expect("update calls the change at least once");
        audit(policy, spec, Some(change), &decision, step_before);
        let effect = carry_out(ctx, spec, policy, &decision).await?;
        responses.push(json!({ "policy": policy.name, "decision": decision, "effect": effect }));
    }
    Ok(responses)
}

/// On the schedule: reverts whose cooldown has passed since the OK.
async fn complete_due_reverts(
    ctx: &Context,
    store: &StateStore,
    spec: &PlatformSpec,
    now: Timestamp,
) -> crate::Result<Vec<Value>> {
    let mut responses = Vec::new();
    for policy in &spec.alarms.policies {
        if !plan::holds_a_level(&policy.action) {
            continue;
        }
        let mut decided = None;
        let mut step_before = 0;
        store
            .update(&state_key(&policy.name), |current: Option<&PolicyState>| {
                let state = current?;
                let decision = plan_due_revert(state, now);
                decided = decision;
                step_before = state.step;
                decision.map(|d| state.after(&recorded(policy, spec, None, d, state, now)))
            })
            .await
            .map_err(Error::from)?;
        let Some(decision) = decided else { continue };
        audit(policy, spec, None, &decision, step_before);
        let effect = carry_out(ctx, spec, policy, &decision).await?;
        responses.push(json!({ "policy": policy.name, "decision": decision, "effect": effect }));
    }
    Ok(responses)
}

/// The largest retention ever applied, when a move-to-cold policy needs it for its bound.
async fn remembered_retention(
    store: &StateStore,
    policies: &[&AlarmPolicy],
) -> Result<RetentionHighWater, Error> {
    if !policies
        .iter()
        .any(|p| matches!(p.action, AlarmAction::MoveToColdSooner(_)))
    {
        return Ok(RetentionHighWater::default());
    }
    let (memory, _) = store
        .load::<RetentionHighWater>(RetentionHighWater::KEY)
        .await?;
    Ok(memory.unwrap_or_default())
}

fn step_after(decision: &Decision, before: u32) -> u32 {
    match decision {
        Decision::Escalate { to, .. } => *to,
        Decision::Revert { .. } => 0,
        _ => before,
    }
}

fn recorded<'a>(
    policy: &'a AlarmPolicy,
    spec: &PlatformSpec,
    change: Option<&'a AlarmChange>,
    decision: Decision,
    state: &PolicyState,
    now: Timestamp,
) -> Recorded<'a> {
    Recorded {
        policy,
        change,
        decision,
        now,
        before: describe_step(policy, spec, state.step),
        after: describe_step(policy, spec, step_after(&decision, state.step)),
    }
}

/// One structured record per decision.
fn audit(
    policy: &AlarmPolicy,
    spec: &PlatformSpec,
    change: Option<&AlarmChange>,
    decision: &Decision,
    step_before: u32,
) {
    let alarm = change.map_or("(schedule)", |c| c.alarm_name.as_str());
    let state = change.map_or_else(|| "-".to_string(), |c| c.state.to_string());
    let reason = change.map_or("cooldown passed after OK", |c| c.reason.as_str());
    let before = describe_step(policy, spec, step_before);
    let after = describe_step(policy, spec, step_after(decision, step_before));
    let decided_by = plan::decided_by(policy);
    let label = decision.label();
    if *decision == Decision::Notify {
        // notify_only: this record is the whole action.
        tracing::warn!(alarm, policy = %policy.name, state, reason, decision = label, before, after, decided_by, "alarm notification");
    } else {
        tracing::info!(alarm, policy = %policy.name, state, reason, decision = label, before, after, decided_by, "alarm decision");
    }
}

/// Performs what the decision asks. Levels are converged again on a duplicate, so a
/// retried invocation whose first apply failed still lands (no write when already there).
async fn carry_out(
    ctx: &Context,
    spec: &PlatformSpec,
    policy: &AlarmPolicy,
    decision: &Decision,
) -> crate::Result<Value> {
    let converge = matches!(
        decision,
        Decision::Escalate { .. } | Decision::Revert { .. } | Decision::Ignore(Ignored::Duplicate)
    );
    match (&policy.action, decision) {
        (AlarmAction::ScaleCollectors(_), _) if converge => {
            apply::apply_collector_scaling(ctx, spec).await
        }
        (AlarmAction::MoveToColdSooner(_), _) if converge => {
            apply::reconcile_cold_storage(ctx).await
        }
        (_, Decision::Trigger { remedy }) => match remedy {
            Remedy::Reconcile(crate::spec::ReconcileTarget::ColdStorage) => {
                apply::reconcile_cold_storage(ctx).await
            }
            Remedy::Reconcile(crate::spec::ReconcileTarget::Cluster) => {
                apply::reconcile_cluster(ctx, spec).await
            }
            Remedy::RotateAppSecret => Ok(apply::rotate_app_secret(ctx, spec).await?),
        },
        _ => Ok(Value::Null),
    }
}

#[cfg(test)]
mod tests;
