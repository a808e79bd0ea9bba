//! Pure decisions: one alarm transition and the policy's remembered state in, what to do
//! (and the state to remember next) out. No I/O here.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::events::{AlarmChange, AlarmState};
use crate::spec::{AlarmAction, AlarmPolicy, ReconcileTarget};

/// Audit records kept per policy document (oldest dropped first).
pub const HISTORY_LIMIT: usize = 20;

/// The last transition handled for one alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmMark {
    #[serde(with = "state_name")]
    pub state: AlarmState,
    /// The alarm's own state timestamp (orders events), not the time we handled it.
    pub at: Timestamp,
}

/// The ALARM that set the step in force: the "why" of the applied objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub alarm: String,
    pub at: Timestamp,
}

/// One audit record: what was decided, from what, to what, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the decision was made.
    pub decided_at: Timestamp,
    pub alarm: String,
    pub state: String,
    pub event_at: Option<Timestamp>,
    pub decision: String,
    /// The alarm's reason text (CloudWatch's), or the schedule's.
    pub reason: String,
    pub before: String,
    pub after: String,
    pub decided_by: String,
}

/// The document `alarms/<policy>.json`: what one policy has done and must remember.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyState {
    pub policy: String,
    /// Last transition handled, per alarm the policy matches (a prefix can match several).
    pub alarms: BTreeMap<String, AlarmMark>,
    /// Escalation steps in force; 0 is the spec's baseline.
    pub step: u32,
    pub last_escalation: Option<Escalation>,
    pub last_action_at: Option<Timestamp>,
    /// No further escalation (or trigger) before this time.
    pub cooldown_until: Option<Timestamp>,
    /// An OK arrived within the cooldown: revert to the baseline once this time has come.
    pub pending_revert: Option<Timestamp>,
    /// A one-shot remedy started for this event and not confirmed yet: its state and
    /// cooldown are recorded only once it took effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
    pub history: Vec<AuditRecord>,
}

/// A one-shot remedy being carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub alarm: String,
    /// The event's own timestamp.
    pub at: Timestamp,
    /// When the invocation carrying it out started.
    pub since: Timestamp,
}

/// How long a claimed one-shot remedy keeps a duplicate delivery from starting it again:
/// a little less than a function runs at most (60 s), so Lambda's retries (1 and 2
/// minutes later) find it released or expired.
pub const IN_FLIGHT_FOR: SignedDuration = SignedDuration::from_secs(50);
/// The least time an alarm in INSUFFICIENT_DATA keeps a remediation in force (a short
/// gap in the metric); past the policy's cooldown it no longer blocks a revert.
pub const INSUFFICIENT_DATA_GRACE: SignedDuration = SignedDuration::from_mins(5);

/// Why an event leads to no action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "why")]
pub enum Ignored {
    /// Older than the last event handled for this alarm.
    Stale,
    /// The same state at the same timestamp was already handled.
    Duplicate,
    /// INSUFFICIENT_DATA is only logged.
    InsufficientData,
    /// The policy acted recently; it holds until `until`.
    Cooldown { until: Timestamp },
    /// Already at the ceiling (or floor) the policy and the retention invariants allow.
    AtBound,
    /// Another alarm of this policy is still in ALARM: keep the remediation.
    OtherAlarmActive,
    /// OK with nothing in force to revert.
    NothingToRevert,
    /// The same one-shot remedy is being carried out by another invocation.
    InProgress,
}

/// A one-shot remediation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Remedy {
    Reconcile(ReconcileTarget),
    RotateAppSecret,
}

/// What to do about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    Ignore(Ignored),
    /// Raise the remediation one step.
    Escalate {
        from: u32,
        to: u32,
    },
    /// Return to the spec's baseline.
    Revert {
        from: u32,
    },
    /// Revert once the cooldown has passed (the schedule completes it).
    Defer {
        until: Timestamp,
    },
    Trigger {
        remedy: Remedy,
    },
    /// Log a structured record only.
    Notify,
}

impl Decision {
    /// Whether the decision is remembered in the policy's state (ignored events that were
    /// already handled, or carry no state, are not).
    pub fn is_recorded(&self) -> bool {
        !matches!(
            self,
            Decision::Ignore(Ignored::Stale | Ignored::Duplicate | Ignored::InProgress)
        )
    }

    /// Short text for logs and the audit history.
    pub fn label(&self) -> String {
        match self {
            Decision::Ignore(why) => format!("ignore ({})", ignored_label(why)),
            Decision::Escalate { from, to } => format!("escalate step {from} -> {to}"),
            Decision::Revert { from } => format!("revert step {from} -> 0"),
            Decision::Defer { until } => format!("revert after {until}"),
            Decision::Trigger { remedy } => match remedy {
                Remedy::Reconcile(ReconcileTarget::ColdStorage) => "reconcile cold storage".into(),
                Remedy::Reconcile(ReconcileTarget::Cluster) => "reconcile cluster".into(),
                Remedy::RotateAppSecret => "rotate app secret".into(),
            },
            Decision::Notify => "notify".into(),
        }
    }
}

fn ignored_label(why: &Ignored) -> String {
    match why {
        Ignored::Stale => "stale".into(),
        Ignored::Duplicate => "duplicate".into(),
        Ignored::InsufficientData => "insufficient data".into(),
        Ignored::Cooldown { until } => format!("cooldown until {until}"),
        Ignored::AtBound => "at its bound".into(),
        Ignored::OtherAlarmActive => "another alarm of the policy is in ALARM".into(),
        Ignored::NothingToRevert => "nothing to revert".into(),
        Ignored::InProgress => "the remedy is being carried out".into(),
    }
}

/// Who decides: named in every audit record.
pub fn decided_by(policy: &AlarmPolicy) -> String {
    format!("respond-to-alarms policy {}", policy.name)
}

/// Whether the policy's action holds a level (step) that OK reverts, rather than acting once.
pub fn holds_a_level(action: &AlarmAction) -> bool {
    matches!(
        action,
        AlarmAction::ScaleCollectors(_) | AlarmAction::MoveToColdSooner(_)
    )
}

/// How long an alarm in INSUFFICIENT_DATA still counts as firing for this policy.
pub fn insufficient_data_bound(policy: &AlarmPolicy) -> SignedDuration {
    SignedDuration::from_mins(i64::from(policy.cooldown_minutes)).max(INSUFFICIENT_DATA_GRACE)
}

/// Whether an alarm in this mark still holds the policy's remediation at `now`: ALARM
/// does; INSUFFICIENT_DATA only within [`insufficient_data_bound`] (a metric that
/// stopped reporting must not hold a level for ever); OK does not.
pub fn holds(policy: &AlarmPolicy, mark: &AlarmMark, now: Timestamp) -> bool {
    match mark.state {
        AlarmState::Alarm => true,
        AlarmState::InsufficientData => mark
            .at
            .checked_add(insufficient_data_bound(policy))
            .is_ok_and(|until| now < until),
        AlarmState::Ok => false,
    }
}

/// Decides what one alarm transition means for a policy. `max_step` is the highest step
/// the policy's bounds allow (ceiling, floor, retention invariants). `state` should hold
/// the other alarms' marks as CloudWatch reports them now ([`PolicyState::with_current`]).
#[tracing::instrument(level = "debug", name = "plan.alarm_response", skip_all, fields(alarm.policy = %policy.name))]
pub fn plan_alarm_response(
    policy: &AlarmPolicy,
    change: &AlarmChange,
    state: Option<&PolicyState>,
    max_step: u32,
    now: Timestamp,
) -> Decision {
    let empty = PolicyState::default();
    let state = state.unwrap_or(&empty);
    if let Some(last) = state.alarms.get(&change.alarm_name) {
        if change.state_changed_at < last.at {
            return Decision::Ignore(Ignored::Stale);
        }
        if change.state_changed_at == last.at {
            // Same instant, other state: the first one handled stands.
            return Decision::Ignore(if change.state == last.state {
                Ignored::Duplicate
            } else {
                Ignored::Stale
            });
        }
    }
    if change.state == AlarmState::InsufficientData {
        // Remembered (it bounds how long this alarm holds a level), not acted on.
        return Decision::Ignore(Ignored::InsufficientData);
    }
    let cooling = state.cooldown_until.filter(|until| now < *until);
    match (change.state, &policy.action) {
        (_, AlarmAction::NotifyOnly) => Decision::Notify,
        (AlarmState::Alarm, action) if holds_a_level(action) => match cooling {
            Some(until) if state.step > 0 => Decision::Ignore(Ignored::Cooldown { until }),
            _ if state.step >= max_step => Decision::Ignore(Ignored::AtBound),
            _ => Decision::Escalate {
                from: state.step,
                to: state.step + 1,
            },
        },
        (AlarmState::Alarm, action) => {
            let claimed = state.in_flight.as_ref().is_some_and(|f| {
                f.alarm == change.alarm_name
                    && f.at == change.state_changed_at
                    && f.since.checked_add(IN_FLIGHT_FOR).is_ok_and(|t| now < t)
            });
            match cooling {
                _ if claimed => Decision::Ignore(Ignored::InProgress),
                Some(until) => Decision::Ignore(Ignored::Cooldown { until }),
                None => Decision::Trigger {
                    remedy: match action {
                        AlarmAction::ReconcileNow(r) => Remedy::Reconcile(r.target),
                        _ => Remedy::RotateAppSecret,
                    },
                },
            }
        }
        (_, action) if holds_a_level(action) => {
            let other_active = state
                .alarms
                .iter()
                .any(|(name, mark)| *name != change.alarm_name && holds(policy, mark, now));
            if state.step == 0 {
                Decision::Ignore(Ignored::NothingToRevert)
            } else if other_active {
                Decision::Ignore(Ignored::OtherAlarmActive)
            } else if let Some(until) = cooling {
                Decision::Defer { until }
            } else {
                Decision::Revert { from: state.step }
            }
        }
        _ => Decision::Ignore(Ignored::NothingToRevert),
    }
}

/// A decision the schedule makes with no event: what, why, and the alarm behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub decision: Decision,
    pub why: String,
    pub alarm: Option<String>,
}

/// What the schedule does for a policy that holds a level: escalate once per cooldown
/// while an alarm stays in ALARM (CloudWatch sends no further event), revert once no
/// alarm holds it any more (an OK came within the cooldown, or the alarms went to
/// INSUFFICIENT_DATA past the bound, or were deleted). `state` should carry the marks as
/// CloudWatch reports them now.
#[tracing::instrument(level = "debug", name = "plan.alarm_schedule", skip_all, fields(alarm.policy = %policy.name))]
pub fn plan_schedule(
    policy: &AlarmPolicy,
    state: &PolicyState,
    max_step: u32,
    now: Timestamp,
) -> Option<Scheduled> {
    if !holds_a_level(&policy.action) || state.step == 0 {
        return None;
    }
    let cooled = state.cooldown_until.is_none_or(|until| until <= now);
    if let Some((name, _)) = state
        .alarms
        .iter()
        .find(|(_, m)| m.state == AlarmState::Alarm)
    {
        return (cooled && state.step < max_step).then(|| Scheduled {
            decision: Decision::Escalate {
                from: state.step,
                to: state.step + 1,
            },
            why: format!("{name} still in ALARM after the cooldown"),
            alarm: Some(name.clone()),
        });
    }
    if state.alarms.values().any(|m| holds(policy, m, now)) {
        return None;
    }
    let revert = |why: &str| {
        Some(Scheduled {
            decision: Decision::Revert { from: state.step },
            why: why.into(),
            alarm: None,
        })
    };
    match state.pending_revert {
        Some(at) if at <= now => revert("cooldown passed after OK"),
        Some(_) => None,
        None if cooled => revert(
            "no alarm of the policy holds it any more (OK, INSUFFICIENT_DATA past the bound, or deleted)",
        ),
        None => None,
    }
}

/// What a decision leaves in the policy's state. `before` / `after` describe the effect
/// (e.g. `maxReplicaCount 10` -> `maxReplicaCount 12`) for the audit record.
pub struct Recorded<'a> {
    pub policy: &'a AlarmPolicy,
    /// The event, or `None` when the schedule decided (then `scheduled` says why).
    pub change: Option<&'a AlarmChange>,
    pub scheduled: Option<&'a Scheduled>,
    pub decision: Decision,
    pub now: Timestamp,
    pub before: String,
    pub after: String,
}

impl PolicyState {
    /// This state with the marks that may hold the level (ALARM, INSUFFICIENT_DATA) as
    /// CloudWatch reports those alarms now: a newer state replaces the mark, a deleted
    /// alarm loses it. OK marks, and `except` (the alarm whose event is being handled),
    /// stay as they are.
    pub fn with_current(
        &self,
        current: &super::cloudwatch::CurrentAlarms,
        except: Option<&str>,
    ) -> PolicyState {
        let mut next = self.clone();
        next.alarms.retain(|name, mark| {
            if Some(name.as_str()) == except || mark.state == AlarmState::Ok {
                return true;
            }
            match current.get(name) {
                None => false,
                Some(c) => {
                    if c.since > mark.at {
                        *mark = AlarmMark {
                            state: c.state,
                            at: c.since,
                        };
                    }
                    true
                }
            }
        });
        next
    }

    /// The state with a one-shot remedy claimed for `change` (nothing else recorded yet).
    pub fn claimed(
        &self,
        policy: &AlarmPolicy,
        change: &AlarmChange,
        now: Timestamp,
    ) -> PolicyState {
        let mut next = self.clone();
        next.policy = policy.name.clone();
        next.in_flight = Some(InFlight {
            alarm: change.alarm_name.clone(),
            at: change.state_changed_at,
            since: now,
        });
        next
    }

    /// The state with the claim for `change` dropped (the remedy failed: a retry runs it).
    pub fn released(&self, change: &AlarmChange) -> Option<PolicyState> {
        let ours = self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.alarm == change.alarm_name && f.at == change.state_changed_at);
        ours.then(|| PolicyState {
            in_flight: None,
            ..self.clone()
        })
    }

    /// The state after `r.decision`, with its audit record appended.
    pub fn after(&self, r: &Recorded<'_>) -> PolicyState {
        let mut next = self.clone();
        next.policy = r.policy.name.clone();
        if let Some(change) = r.change
            && next
                .in_flight
                .as_ref()
                .is_some_and(|f| f.alarm == change.alarm_name && f.at == change.state_changed_at)
        {
            next.in_flight = None;
        }
        if let Some(change) = r.change {
            next.alarms.insert(
                change.alarm_name.clone(),
                AlarmMark {
                    state: change.state,
                    at: change.state_changed_at,
                },
            );
            if change.state == AlarmState::Alarm {
                // The condition is back: whatever revert was waiting no longer applies.
                next.pending_revert = None;
            }
        }
        let cooldown = SignedDuration::from_mins(i64::from(r.policy.cooldown_minutes));
        let acted = |next: &mut PolicyState| {
            next.last_action_at = Some(r.now);
            next.cooldown_until = r.now.checked_add(cooldown).ok();
        };
        match r.decision {
            Decision::Escalate { to, .. } => {
                next.step = to;
                next.last_escalation = match (r.change, r.scheduled) {
                    (Some(c), _) => Some(Escalation {
                        alarm: c.alarm_name.clone(),
                        at: c.state_changed_at,
                    }),
                    (None, Some(s)) => s.alarm.as_ref().map(|a| Escalation {
                        alarm: a.clone(),
                        at: r.now,
                    }),
                    (None, None) => None,
                };
                acted(&mut next);
            }
            Decision::Revert { .. } => {
                next.step = 0;
                next.pending_revert = None;
                next.last_escalation = None;
                next.last_action_at = Some(r.now);
            }
            Decision::Defer { until } => next.pending_revert = Some(until),
            Decision::Trigger { .. } => acted(&mut next),
            // Held at the bound by a firing alarm: the revert waits a full cooldown again.
            Decision::Ignore(Ignored::AtBound) => {
                next.cooldown_until = r.now.checked_add(cooldown).ok();
            }
            Decision::Ignore(_) | Decision::Notify => {}
        }
        next.history.push(AuditRecord {
            decided_at: r.now,
            alarm: r
                .change
                .map_or_else(|| "(schedule)".into(), |c| c.alarm_name.clone()),
            state: r.change.map_or_else(|| "-".into(), |c| c.state.to_string()),
            event_at: r.change.map(|c| c.state_changed_at),
            decision: r.decision.label(),
            reason: match (r.change, r.scheduled) {
                (Some(c), _) => c.reason.chars().take(300).collect(),
                (None, Some(s)) => s.why.clone(),
                (None, None) => "cooldown passed after OK".into(),
            },
            before: r.before.clone(),
            after: r.after.clone(),
            decided_by: decided_by(r.policy),
        });
        let excess = next.history.len().saturating_sub(HISTORY_LIMIT);
        next.history.drain(..excess);
        next
    }
}

/// `AlarmState` as CloudWatch spells it (`ALARM`, `OK`, `INSUFFICIENT_DATA`).
mod state_name {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::events::AlarmState;

    pub fn serialize<S: Serializer>(state: &AlarmState, s: S) -> Result<S::Ok, S::Error> {
        state.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AlarmState, D::Error> {
        match String::deserialize(d)?.as_str() {
            "ALARM" => Ok(AlarmState::Alarm),
            "OK" => Ok(AlarmState::Ok),
            "INSUFFICIENT_DATA" => Ok(AlarmState::InsufficientData),
            other => Err(serde::de::Error::unknown_variant(
                other,
                &["ALARM", "OK", "INSUFFICIENT_DATA"],
            )),
        }
    }
}
