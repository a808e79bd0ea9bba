//! Active alarm overrides: the policies' steps (in the state store) turned into bounded
//! values on top of the spec's baseline. sync-cluster and enforce-cold-storage read them
//! too, so a scheduled reconcile keeps a remediation instead of undoing it.

use crate::cold_storage::plan::{RetentionHighWater, expiration_days, unsafe_reasons};
use crate::spec::{
    AlarmAction, AlarmPolicy, MoveToColdSooner, PlatformSpec, Retention, ScaleCollectors,
};
use crate::state::{StateError, StateStore};

use super::Error;
use super::plan::PolicyState;

/// State key of a policy's document.
pub fn state_key(policy: &str) -> String {
    format!("alarms/{policy}.json")
}

/// Collector replica bounds raised by scale policies, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaOverride {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// One line per policy in force: `<policy>: <alarm> ALARM at <time>, ...`.
    pub why: Vec<String>,
}

impl ReplicaOverride {
    /// The spec with these replica bounds.
    pub fn applied_to(&self, spec: &PlatformSpec) -> PlatformSpec {
        let mut spec = spec.clone();
        spec.collectors.min_replicas = self.min_replicas;
        spec.collectors.max_replicas = self.max_replicas;
        spec
    }
}

/// Hot days lowered by move-to-cold policies, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct HotDaysOverride {
    pub retention: Retention,
    pub why: Vec<String>,
}

impl HotDaysOverride {
    /// The spec with this retention.
    pub fn applied_to(&self, spec: &PlatformSpec) -> PlatformSpec {
        let mut spec = spec.clone();
        spec.retention = self.retention.clone();
        spec
    }
}

/// Replica bounds of a scale policy at `step`: never past the ceiling, min never above max.
pub fn scaled_replicas(spec: &PlatformSpec, s: &ScaleCollectors, step: u32) -> (u32, u32) {
    let base = &spec.collectors;
    let raise = step.saturating_mul(s.step);
    let max = base
        .max_replicas
        .saturating_add(raise)
        .min(s.ceiling.max(base.max_replicas));
    let min = if s.raise_min {
        base.min_replicas.saturating_add(raise).min(max)
    } else {
        base.min_replicas
    };
    (min, max)
}

/// Retention with every signal's hot days lowered `step` times, never below the floor
/// (nor raised when the baseline is already under it).
pub fn lowered_retention(spec: &PlatformSpec, m: &MoveToColdSooner, step: u32) -> Retention {
    let mut r = spec.retention.clone();
    for s in [&mut r.traces, &mut r.logs, &mut r.metrics] {
        let floor = m.floor_hot_days.min(s.hot_days);
        s.hot_days = s
            .hot_days
            .saturating_sub(step.saturating_mul(m.step_days))
            .max(floor);
    }
    r
}

/// Whether `lowered` (the spec with alarm overrides) needs no longer expiration than the
/// one in force for `spec` and the memory: a move-to-cold step may raise the remembered
/// maximum only up to what S3 already keeps, never the expiration itself.
fn within_expiration(
    spec: &PlatformSpec,
    lowered: &PlatformSpec,
    memory: &RetentionHighWater,
) -> bool {
    let mut bounded = lowered.clone();
    bounded.cold_storage.expiration_days = expiration_days(spec, memory);
    unsafe_reasons(&bounded, memory).is_empty()
}

/// The highest step a policy's bounds allow. For move-to-cold this is also the highest
/// step the cold-storage safety check accepts: every lowered cold period plus the margin
/// stays within the expiration in force (the spec's, or the longer one the memory needs).
pub fn max_step(policy: &AlarmPolicy, spec: &PlatformSpec, memory: &RetentionHighWater) -> u32 {
    match &policy.action {
        AlarmAction::ScaleCollectors(s) => {
            let room = s.ceiling.saturating_sub(spec.collectors.max_replicas);
            room.div_ceil(s.step.max(1))
        }
        AlarmAction::MoveToColdSooner(m) => {
            let r = &spec.retention;
            let room = [r.traces, r.logs, r.metrics]
                .iter()
                .map(|s| s.hot_days.saturating_sub(m.floor_hot_days))
                .max()
                .unwrap_or(0);
            let limit = room.div_ceil(m.step_days.max(1));
            (1..=limit)
                .take_while(|step| {
                    let lowered = HotDaysOverride {
                        retention: lowered_retention(spec, m, *step),
                        why: Vec::new(),
                    };
                    within_expiration(spec, &lowered.applied_to(spec), memory)
                })
                .last()
                .unwrap_or(0)
        }
        AlarmAction::ReconcileNow(_) | AlarmAction::RotateNow | AlarmAction::NotifyOnly => 0,
    }
}

/// What a policy's action amounts to at `step`, for logs and the audit history.
pub fn describe_step(policy: &AlarmPolicy, spec: &PlatformSpec, step: u32) -> String {
    match &policy.action {
        AlarmAction::ScaleCollectors(s) => {
            let (min, max) = scaled_replicas(spec, s, step);
            format!("minReplicaCount {min}, maxReplicaCount {max}")
        }
        AlarmAction::MoveToColdSooner(m) => {
            let r = lowered_retention(spec, m, step);
            format!(
                "hot days traces {}, logs {}, metrics {}",
                r.traces.hot_days, r.logs.hot_days, r.metrics.hot_days
            )
        }
        AlarmAction::ReconcileNow(_) | AlarmAction::RotateNow | AlarmAction::NotifyOnly => {
            "-".into()
        }
    }
}

fn why(policy: &AlarmPolicy, state: &PolicyState, before: &str, after: &str) -> String {
    match &state.last_escalation {
        Some(e) => format!(
            "{}: {} ALARM at {}, {before} -> {after}",
            policy.name, e.alarm, e.at
        ),
        None => format!("{}: step {}, {before} -> {after}", policy.name, state.step),
    }
}

/// The replica bounds of every scale policy in force combined (the highest wins), each
/// bounded again by its ceiling; `None` when no scale policy is escalated.
pub fn replica_override(
    spec: &PlatformSpec,
    states: &[(AlarmPolicy, PolicyState)],
) -> Option<ReplicaOverride> {
    let base = (spec.collectors.min_replicas, spec.collectors.max_replicas);
    let mut result: Option<ReplicaOverride> = None;
    for (policy, state) in states {
        let AlarmAction::ScaleCollectors(s) = &policy.action else {
            continue;
        };
        let step = state
            .step
            .min(max_step(policy, spec, &RetentionHighWater::default()));
        if step == 0 {
            continue;
        }
        let (min, max) = scaled_replicas(spec, s, step);
        let line = why(
            policy,
            state,
            &format!("maxReplicaCount {}", base.1),
            &format!("{max}"),
        );
        let entry = result.get_or_insert(ReplicaOverride {
            min_replicas: base.0,
            max_replicas: base.1,
            why: Vec::new(),
        });
        entry.min_replicas = entry.min_replicas.max(min);
        entry.max_replicas = entry.max_replicas.max(max);
        entry.why.push(line);
    }
    result
}

/// The hot days of every move-to-cold policy in force combined (the lowest wins), each
/// bounded by its floor and by the cold-storage safety check; `None` when none is in force.
pub fn hot_days_override(
    spec: &PlatformSpec,
    states: &[(AlarmPolicy, PolicyState)],
    memory: &RetentionHighWater,
) -> Option<HotDaysOverride> {
    let mut result: Option<HotDaysOverride> = None;
    for (policy, state) in states {
        let AlarmAction::MoveToColdSooner(m) = &policy.action else {
            continue;
        };
        let step = state.step.min(max_step(policy, spec, memory));
        if step == 0 {
            continue;
        }
        let lowered = lowered_retention(spec, m, step);
        let line = why(
            policy,
            state,
            &describe_step(policy, spec, 0),
            &describe_step(policy, spec, step),
        );
        let entry = result.get_or_insert(HotDaysOverride {
            retention: spec.retention.clone(),
            why: Vec::new(),
        });
        for (into, from) in [
            (&mut entry.retention.traces, lowered.traces),
            (&mut entry.retention.logs, lowered.logs),
            (&mut entry.retention.metrics, lowered.metrics),
        ] {
            into.hot_days = into.hot_days.min(from.hot_days);
        }
        entry.why.push(line);
    }
    // Each policy's step is safe alone and the check is per signal, so the combination
    // is too; checked again rather than assumed.
    result.filter(|o| within_expiration(spec, &o.applied_to(spec), memory))
}

/// Reads the state of every policy that holds a level (scale, move-to-cold).
pub async fn load_policy_states(
    store: &StateStore,
    spec: &PlatformSpec,
) -> Result<Vec<(AlarmPolicy, PolicyState)>, Error> {
    let mut states = Vec::new();
    for policy in &spec.alarms.policies {
        if !super::plan::holds_a_level(&policy.action) {
            continue;
        }
        match store.load::<PolicyState>(&state_key(&policy.name)).await {
            Ok((Some(state), _)) => states.push((policy.clone(), state)),
            Ok((None, _)) => {}
            // No state bucket: no remediation can have been recorded either.
            Err(StateError::Unavailable { reason, .. }) if reason.starts_with("NoSuchBucket") => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(states)
}

/// The collector replica override in force, read from the state store.
pub async fn read_replica_override(
    store: &StateStore,
    spec: &PlatformSpec,
) -> Result<Option<ReplicaOverride>, Error> {
    Ok(replica_override(
        spec,
        &load_policy_states(store, spec).await?,
    ))
}

/// The hot-days override in force, read from the state store.
pub async fn read_hot_days_override(
    store: &StateStore,
    spec: &PlatformSpec,
    memory: &RetentionHighWater,
) -> Result<Option<HotDaysOverride>, Error> {
    Ok(hot_days_override(
        spec,
        &load_policy_states(store, spec).await?,
        memory,
    ))
}

/// What a move-to-cold step will and will not do, in words, for the policy's report:
/// SigNoz changes the TTL of parts written afterwards only (`materialize_ttl_after_modify
/// = 0`), so the step frees no hot disk now, and each step raises for good how long S3
/// must keep objects, never past what the spec's expiration covers.
pub fn remedy_report(
    policy: &AlarmPolicy,
    spec: &PlatformSpec,
    memory: &RetentionHighWater,
    decision: &super::plan::Decision,
) -> Option<String> {
    use super::plan::Decision;
    let AlarmAction::MoveToColdSooner(m) = &policy.action else {
        return None;
    };
    let names = ["traces", "logs", "metrics"];
    let by_signal = |r: &Retention| [r.traces, r.logs, r.metrics];
    let floor = |r: &Retention| -> Vec<u32> {
        names
            .iter()
            .zip(by_signal(r))
            .map(|(name, s)| {
                s.cold_days()
                    .max(memory.cold_days.get(*name).copied().unwrap_or(0))
            })
            .collect()
    };
    let pairs = |a: Vec<u32>, b: Vec<u32>| -> String {
        names
            .iter()
            .zip(a.iter().zip(&b))
            .map(|(n, (a, b))| format!("{n} {a} -> {b}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let hot = |r: &Retention| by_signal(r).iter().map(|s| s.hot_days).collect::<Vec<_>>();
    let in_force = expiration_days(spec, memory);
    let bound = in_force.saturating_sub(spec.retention.safety_margin_days);
    match decision {
        Decision::Escalate { from, to } => {
            let (before, after) = (
                lowered_retention(spec, m, *from),
                lowered_retention(spec, m, *to),
            );
            let lowest = hot(&after).into_iter().min().unwrap_or(0);
            Some(format!(
                "lowers hot days ({}): SigNoz sets materialize_ttl_after_modify=0, so only parts written from now on move to S3 sooner; it does not free the hot disk now (parts already there keep their TTL), relief starts as new parts pass {lowest} hot days. It raises for good how long S3 must keep objects (the remembered maximum, days): {}; bounded: the policy stops before any signal needs more than the expiration in force ({in_force} days) - safety_margin_days {} = at most {bound} days, so it never lengthens the expiration",
                pairs(hot(&before), hot(&after)),
                pairs(floor(&before), floor(&after)),
                spec.retention.safety_margin_days,
            ))
        }
        Decision::Revert { from } => {
            let lowered = lowered_retention(spec, m, *from);
            Some(format!(
                "restores hot days ({}) for parts written from now on; parts written while they were lower keep their TTL, and S3 keeps objects as long as the remembered maximum needs ({} days)",
                pairs(hot(&lowered), hot(&spec.retention)),
                floor(&lowered)
                    .iter()
                    .zip(names)
                    .map(|(d, n)| format!("{n} {d}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
        _ => None,
    }
}
