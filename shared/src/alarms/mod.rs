//! The `respond-to-alarms` function's path: decode, match policies, plan against the
//! policy's remembered state (S3, optimistic concurrency), apply, audit.
//!
//! Levels (collector replica bounds, hot days) live in the state store as steps over the
//! spec's baseline; sync-cluster and enforce-cold-storage read them ([`overrides`]), so a
//! scheduled reconcile keeps a remediation until an OK (after the cooldown) reverts it.

pub mod apply;
pub mod cloudwatch;
pub mod overrides;
pub mod plan;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::cold_storage::plan::RetentionHighWater;
use crate::events::{AlarmChange, Trigger, TriggerKind, decode_for};
use crate::spec::{AlarmAction, AlarmPolicy, PlatformSpec, SpecLocation, load_spec};
use crate::state::{StateError, StateStore};
use cloudwatch::CurrentAlarms;
use overrides::{describe_step, max_step, state_key};
use plan::{
    Decision, Ignored, PolicyState, Recorded, Remedy, Scheduled, plan_alarm_response, plan_schedule,
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
    /// CloudWatch could not say what state the alarms are in (retry may help).
    #[error("CloudWatch: {detail}")]
    CloudWatch { detail: String },
}

impl Error {
    /// Whether retrying the same invocation can succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Error::State(e) => !matches!(e, StateError::Corrupt { .. }),
            Error::SecretsManager { .. } | Error::CloudWatch { .. } => true,
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
    /// CloudWatch's HTTPS client, built on first use.
    cloudwatch: std::sync::OnceLock<reqwest::Client>,
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
            cloudwatch: std::sync::OnceLock::new(),
        }
    }

    /// The current state of `names` in CloudWatch (deleted alarms are absent).
    pub async fn current_alarms(&self, names: &[String]) -> Result<CurrentAlarms, Error> {
        if names.is_empty() {
            return Ok(CurrentAlarms::new());
        }
        let http = match self.cloudwatch.get() {
            Some(http) => http,
            None => {
                let built = cloudwatch::http_client()?;
                self.cloudwatch.get_or_init(|| built)
            }
        };
        cloudwatch::describe_alarms(http, &self.sdk, names).await
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
        _ => run_schedule(ctx, &store, &spec, now).await?,
    };
    Ok(json!({
        "function": FUNCTION,
        "trigger": trigger.kind().to_string(),
        "policies": responses,
    }))
}

/// The names of the other alarms whose marks say they may still hold the policy's
/// level (ALARM, INSUFFICIENT_DATA): CloudWatch is asked what they are now.
fn alarms_to_check(state: Option<&PolicyState>, except: Option<&str>) -> Vec<String> {
    state
        .into_iter()
        .flat_map(|s| s.alarms.iter())
        .filter(|(name, mark)| {
            Some(name.as_str()) != except && mark.state != crate::events::AlarmState::Ok
        })
        .map(|(name, _)| name.clone())
        .collect()
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
    // An OK reverts only if no other alarm of the policy still holds the level: ask
    // CloudWatch about those, an event may never come for them. Those questions and the
    // retention memory are read together, before any policy decides.
    let others_now = |policy: &AlarmPolicy| {
        let key = state_key(&policy.name);
        let asks =
            change.state == crate::events::AlarmState::Ok && plan::holds_a_level(&policy.action);
        async move {
            if !asks {
                return Ok(None);
            }
            let (state, _) = store.load::<PolicyState>(&key).await.map_err(Error::from)?;
            let names = alarms_to_check(state.as_ref(), Some(&change.alarm_name));
            Ok::<_, crate::Error>(Some(ctx.current_alarms(&names).await?))
        }
    };
    let (memory, currents) = tokio::join!(
        remembered_retention(store, &policies),
        futures_util::future::try_join_all(policies.iter().map(|p| others_now(p))),
    );
    let (memory, currents) = (memory?, currents?);
    let mut responses = Vec::new();
    for (policy, current) in policies.into_iter().zip(currents) {
        let limit = max_step(policy, spec, &memory);
        let key = state_key(&policy.name);
        let mut decided = None;
        let mut step_before = 0;
        store
            .update(&key, |stored: Option<&PolicyState>| {
                let state = stored.cloned().unwrap_or_default();
                let view = match &current {
                    Some(c) => state.with_current(c, Some(&change.alarm_name)),
                    None => state,
                };
                let decision = plan_alarm_response(policy, change, Some(&view), limit, now);
                step_before = view.step;
                decided = Some(decision);
                match decision {
                    // A one-shot remedy is only claimed now; it is recorded once it worked.
                    Decision::Trigger { .. } => Some(view.claimed(policy, change, now)),
                    d if d.is_recorded() => {
                        Some(view.after(&recorded(policy, spec, Some(change), None, d, &view, now)))
                    }
                    _ => None,
                }
            })
            .await
            .map_err(Error::from)?;
        let decision = decided.expect("update calls the change at least once");
        audit(policy, spec, Some(change), None, &decision, step_before);
        let effect = match carry_out(ctx, spec, policy, &decision, now).await {
            Ok(effect) => effect,
            Err(e) if matches!(decision, Decision::Trigger { .. }) => {
                // Not taken effect: drop the claim so Lambda's retry of this event runs it.
                tracing::warn!(policy = %policy.name, alarm = %change.alarm_name, error = %e, "remedy failed; the event will be retried");
                store
                    .update(&key, |stored: Option<&PolicyState>| {
                        stored.and_then(|s| s.released(change))
                    })
                    .await
                    .map_err(Error::from)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if matches!(decision, Decision::Trigger { .. }) {
            store
                .update(&key, |stored: Option<&PolicyState>| {
                    let state = stored.cloned().unwrap_or_default();
                    Some(state.after(&recorded(
                        policy,
                        spec,
                        Some(change),
                        None,
                        decision,
                        &state,
                        now,
                    )))
                })
                .await
                .map_err(Error::from)?;
        }
        let mut response = json!({ "policy": policy.name, "decision": decision, "summary": decision.label(), "effect": effect });
        if let Some(report) = overrides::remedy_report(policy, spec, &memory, &decision) {
            response["report"] = json!(report);
        }
        responses.push(response);
    }
    Ok(responses)
}

/// On the schedule: for every policy holding a level, what CloudWatch says its alarms
/// are now decides: escalate once per cooldown while one stays in ALARM, revert once
/// none holds it (the cooldown passed after an OK, INSUFFICIENT_DATA past the bound,
/// deleted).
async fn run_schedule(
    ctx: &Context,
    store: &StateStore,
    spec: &PlatformSpec,
    now: Timestamp,
) -> crate::Result<Vec<Value>> {
    let policies: Vec<&AlarmPolicy> = spec
        .alarms
        .policies
        .iter()
        .filter(|p| plan::holds_a_level(&p.action))
        .collect();
    let keys: Vec<String> = policies.iter().map(|p| state_key(&p.name)).collect();
    let loaded =
        futures_util::future::try_join_all(keys.iter().map(|k| store.load::<PolicyState>(k)))
            .await
            .map_err(Error::from)?;
    let stored: Vec<Option<PolicyState>> = loaded
        .into_iter()
        .map(|(state, _)| state.filter(|s| s.step > 0))
        .collect();
    let names: Vec<String> = stored
        .iter()
        .flat_map(|s| alarms_to_check(s.as_ref(), None))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if stored.iter().all(Option::is_none) {
        return Ok(Vec::new());
    }
    let (current, memory) = tokio::join!(
        ctx.current_alarms(&names),
        remembered_retention(store, &policies)
    );
    let (current, memory) = (current?, memory?);
    let mut responses = Vec::new();
    for (policy, state) in policies.into_iter().zip(stored) {
        if state.is_none() {
            continue;
        }
        let limit = max_step(policy, spec, &memory);
        let mut decided: Option<Scheduled> = None;
        let mut step_before = 0;
        store
            .update(&state_key(&policy.name), |stored: Option<&PolicyState>| {
                let view = stored?.with_current(&current, None);
                let scheduled = plan_schedule(policy, &view, limit, now);
                step_before = view.step;
                decided = scheduled.clone();
                scheduled.map(|s| {
                    view.after(&recorded(
                        policy,
                        spec,
                        None,
                        Some(&s),
                        s.decision,
                        &view,
                        now,
                    ))
                })
            })
            .await
            .map_err(Error::from)?;
        let Some(scheduled) = decided else { continue };
        audit(
            policy,
            spec,
            None,
            Some(&scheduled.why),
            &scheduled.decision,
            step_before,
        );
        let effect = carry_out(ctx, spec, policy, &scheduled.decision, now).await?;
        let mut response = json!({
            "policy": policy.name,
            "decision": scheduled.decision,
            "summary": scheduled.decision.label(),
            "why": scheduled.why,
            "effect": effect,
        });
        if let Some(report) = overrides::remedy_report(policy, spec, &memory, &scheduled.decision) {
            response["report"] = json!(report);
        }
        responses.push(response);
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
    scheduled: Option<&'a Scheduled>,
    decision: Decision,
    state: &PolicyState,
    now: Timestamp,
) -> Recorded<'a> {
    Recorded {
        policy,
        change,
        scheduled,
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
    why: Option<&str>,
    decision: &Decision,
    step_before: u32,
) {
    let alarm = change.map_or("(schedule)", |c| c.alarm_name.as_str());
    let state = change.map_or_else(|| "-".to_string(), |c| c.state.to_string());
    let reason = change.map_or(why.unwrap_or("schedule"), |c| c.reason.as_str());
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
    now: Timestamp,
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
            apply::reconcile_cold_storage(ctx, now).await
        }
        (_, Decision::Trigger { remedy }) => match remedy {
            Remedy::Reconcile(crate::spec::ReconcileTarget::ColdStorage) => {
                apply::reconcile_cold_storage(ctx, now).await
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
