use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::overrides::{
    describe_step, hot_days_override, lowered_retention, max_step, replica_override,
    scaled_replicas,
};
use super::plan::*;
use crate::cold_storage::plan::RetentionHighWater;
use crate::events::{AlarmChange, AlarmState};
use crate::spec::{AlarmAction, AlarmPolicy, EXAMPLE_SPEC, PlatformSpec, parse_spec};

fn spec() -> PlatformSpec {
    parse_spec(EXAMPLE_SPEC).expect("example spec")
}

fn policy(name: &str) -> AlarmPolicy {
    spec()
        .alarms
        .policies
        .into_iter()
        .find(|p| p.name == name)
        .expect("policy in the example")
}

fn at(minute: i64) -> Timestamp {
    Timestamp::from_second(1_795_000_000 + minute * 60).unwrap()
}

fn change(alarm: &str, state: AlarmState, minute: i64) -> AlarmChange {
    AlarmChange {
        alarm_name: alarm.into(),
        alarm_arn: None,
        state,
        previous_state: None,
        reason: format!("{alarm} went {state}"),
        state_changed_at: at(minute),
    }
}

const QUEUE: &str = "signoz-collector-queue-pressure";

/// Feeds events through planner and state as the handler does; returns the decisions.
fn run(
    policy: &AlarmPolicy,
    state: &mut Option<PolicyState>,
    events: &[(AlarmChange, Timestamp)],
    max: u32,
) -> Vec<Decision> {
    events
        .iter()
        .map(|(event, now)| {
            let decision = plan_alarm_response(policy, event, state.as_ref(), max, *now);
            if decision.is_recorded() {
                let current = state.clone().unwrap_or_default();
                *state = Some(current.after(&Recorded {
                    policy,
                    change: Some(event),
                    scheduled: None,
                    decision,
                    now: *now,
                    before: String::new(),
                    after: String::new(),
                }));
            }
            decision
        })
        .collect()
}

#[test]
fn an_alarm_raises_collectors_one_step_and_starts_the_cooldown() {
    let p = policy("collector-pressure");
    let mut state = None;
    let d = run(
        &p,
        &mut state,
        &[(change(QUEUE, AlarmState::Alarm, 0), at(1))],
        5,
    );
    assert_eq!(d, [Decision::Escalate { from: 0, to: 1 }]);
    let state = state.unwrap();
    assert_eq!(state.step, 1);
    assert_eq!(state.cooldown_until, Some(at(1 + 15)));
    assert_eq!(state.last_escalation.unwrap().alarm, QUEUE);
    assert_eq!(state.history.len(), 1);
    assert_eq!(
        state.history[0].decided_by,
        "respond-to-alarms policy collector-pressure"
    );
}

#[test]
fn the_same_event_twice_changes_nothing_the_second_time() {
    let p = policy("collector-pressure");
    let mut state = None;
    let alarm = change(QUEUE, AlarmState::Alarm, 0);
    let d = run(
        &p,
        &mut state,
        &[
            (alarm.clone(), at(1)),
            (alarm.clone(), at(40)),
            (alarm, at(90)),
        ],
        5,
    );
    assert_eq!(d[1], Decision::Ignore(Ignored::Duplicate));
    assert_eq!(d[2], Decision::Ignore(Ignored::Duplicate));
    assert!(!d[1].is_recorded());
    assert_eq!(state.unwrap().step, 1);
}

#[test]
fn an_event_older_than_the_last_handled_is_stale() {
    let p = policy("collector-pressure");
    let mut state = None;
    let d = run(
        &p,
        &mut state,
        &[
            (change(QUEUE, AlarmState::Ok, 10), at(11)),
            (change(QUEUE, AlarmState::Alarm, 5), at(12)),
            // Same instant, other state: the first one handled stands.
            (change(QUEUE, AlarmState::Alarm, 10), at(12)),
        ],
        5,
    );
    assert_eq!(d[0], Decision::Ignore(Ignored::NothingToRevert));
    assert_eq!(d[1], Decision::Ignore(Ignored::Stale));
    assert_eq!(d[2], Decision::Ignore(Ignored::Stale));
    assert_eq!(state.unwrap().step, 0);
}

#[test]
fn insufficient_data_is_remembered_but_changes_no_level() {
    let p = policy("collector-pressure");
    let mut state = None;
    run(
        &p,
        &mut state,
        &[(change(QUEUE, AlarmState::Alarm, 0), at(1))],
        5,
    );
    let before = state.clone();
    let d = run(
        &p,
        &mut state,
        &[(change(QUEUE, AlarmState::InsufficientData, 30), at(31))],
        5,
    );
    assert_eq!(d, [Decision::Ignore(Ignored::InsufficientData)]);
    let after = state.unwrap();
    let before = before.unwrap();
    assert_eq!(after.step, before.step);
    assert_eq!(after.cooldown_until, before.cooldown_until);
    assert_eq!(after.alarms[QUEUE].state, AlarmState::InsufficientData);
}

#[test]
fn insufficient_data_holds_a_level_only_within_the_bound() {
    let p = policy("collector-pressure");
    let mut state = None;
    let other = "signoz-collector-refused";
    let d = run(
        &p,
        &mut state,
        &[
            (change(QUEUE, AlarmState::Alarm, 0), at(0)),
            (change(other, AlarmState::Alarm, 1), at(1)),
            (change(other, AlarmState::InsufficientData, 2), at(2)),
            // Within the bound (the cooldown, 15 minutes) the other alarm still holds.
            (change(QUEUE, AlarmState::Ok, 16), at(16)),
        ],
        5,
    );
    assert_eq!(d[3], Decision::Ignore(Ignored::OtherAlarmActive));
    let state = state.unwrap();
    assert_eq!(plan_schedule(&p, &state, 5, at(16)), None);
    let later = plan_schedule(&p, &state, 5, at(18)).expect("past the bound");
    assert_eq!(later.decision, Decision::Revert { from: 1 });
    assert!(
        later.why.contains("INSUFFICIENT_DATA past the bound"),
        "{}",
        later.why
    );
}

#[test]
fn a_deleted_alarm_no_longer_holds_the_level() {
    use super::cloudwatch::{CurrentAlarm, CurrentAlarms};
    let p = policy("collector-pressure");
    let mut state = None;
    let other = "signoz-collector-refused";
    run(
        &p,
        &mut state,
        &[
            (change(QUEUE, AlarmState::Alarm, 0), at(0)),
            (change(other, AlarmState::Alarm, 1), at(1)),
        ],
        5,
    );
    let state = state.unwrap();
    let queue_ok = CurrentAlarms::from([(
        QUEUE.to_string(),
        CurrentAlarm {
            state: AlarmState::Ok,
            since: at(20),
        },
    )]);
    // CloudWatch knows only QUEUE now (in OK, its event lost): the other was deleted.
    let view = state.with_current(&queue_ok, None);
    assert!(!view.alarms.contains_key(other));
    assert_eq!(view.alarms[QUEUE].state, AlarmState::Ok);
    assert_eq!(
        plan_schedule(&p, &view, 5, at(30)).map(|s| s.decision),
        Some(Decision::Revert { from: 1 })
    );
    // Without asking CloudWatch the stale marks would hold the level for ever.
    assert_eq!(
        plan_schedule(&p, &state, 5, at(10_000)).map(|s| s.decision),
        Some(Decision::Escalate { from: 1, to: 2 })
    );
}

#[test]
fn the_schedule_escalates_once_per_cooldown_while_an_alarm_stays_in_alarm() {
    let p = policy("collector-pressure");
    let mut state = None;
    run(
        &p,
        &mut state,
        &[(change(QUEUE, AlarmState::Alarm, 0), at(0))],
        2,
    );
    let mut state = state.unwrap();
    assert_eq!(plan_schedule(&p, &state, 2, at(10)), None, "cooling down");
    let s = plan_schedule(&p, &state, 2, at(15)).expect("after the cooldown");
    assert_eq!(s.decision, Decision::Escalate { from: 1, to: 2 });
    assert_eq!(s.alarm.as_deref(), Some(QUEUE));
    state = state.after(&Recorded {
        policy: &p,
        change: None,
        scheduled: Some(&s),
        decision: s.decision,
        now: at(15),
        before: String::new(),
        after: String::new(),
    });
    assert_eq!(state.cooldown_until, Some(at(30)));
    assert_eq!(state.last_escalation.as_ref().unwrap().alarm, QUEUE);
    assert!(
        state
            .history
            .last()
            .unwrap()
            .reason
            .contains("still in ALARM")
    );
    assert_eq!(plan_schedule(&p, &state, 2, at(60)), None, "at the ceiling");
}

#[test]
fn a_one_shot_remedy_is_recorded_only_once_it_took_effect() {
    let p = policy("lifecycle-drift");
    let alarm = "signoz-cold-bucket-drift";
    let event = change(alarm, AlarmState::Alarm, 0);
    let trigger = plan_alarm_response(&p, &event, None, 0, at(0));
    assert!(matches!(trigger, Decision::Trigger { .. }));
    let claimed = PolicyState::default().claimed(&p, &event, at(0));
    assert!(claimed.alarms.is_empty() && claimed.cooldown_until.is_none());
    // A duplicate while it runs waits; the claim is released when the remedy failed.
    assert_eq!(
        plan_alarm_response(&p, &event, Some(&claimed), 0, at(0)),
        Decision::Ignore(Ignored::InProgress)
    );
    let released = claimed.released(&event).unwrap();
    assert_eq!(
        plan_alarm_response(&p, &event, Some(&released), 0, at(1)),
        trigger
    );
    // A claim whose invocation died expires.
    assert_eq!(
        plan_alarm_response(&p, &event, Some(&claimed), 0, at(2)),
        trigger
    );
    // Once it took effect the same event is a duplicate, and the cooldown runs.
    let done = claimed.after(&Recorded {
        policy: &p,
        change: Some(&event),
        scheduled: None,
        decision: trigger,
        now: at(0),
        before: String::new(),
        after: String::new(),
    });
    assert_eq!(done.in_flight, None);
    assert_eq!(
        plan_alarm_response(&p, &event, Some(&done), 0, at(1)),
        Decision::Ignore(Ignored::Duplicate)
    );
}

#[test]
fn the_disk_remedy_says_what_it_does_and_bounds_the_floor_it_raises() {
    let s = spec();
    let p = policy("clickhouse-disk");
    let report = super::overrides::remedy_report(
        &p,
        &s,
        &RetentionHighWater::default(),
        &Decision::Escalate { from: 0, to: 1 },
    )
    .unwrap();
    assert!(
        report.contains("traces 7 -> 5, logs 7 -> 5, metrics 30 -> 28"),
        "{report}"
    );
    assert!(
        report.contains("only parts written from now on"),
        "{report}"
    );
    assert!(
        report.contains("does not free the hot disk now"),
        "{report}"
    );
    assert!(report.contains("metrics 365 -> 367"), "{report}");
    assert!(report.contains("at most 393"), "{report}");
    // And the bound holds: no step leaves a signal needing more than 393 days.
    let limit = max_step(&p, &s, &RetentionHighWater::default());
    if let crate::spec::AlarmAction::MoveToColdSooner(m) = &p.action {
        let lowered = lowered_retention(&s, m, limit);
        assert!(lowered.metrics.cold_days() <= 393);
    }
    let revert = super::overrides::remedy_report(
        &p,
        &s,
        &RetentionHighWater::default(),
        &Decision::Revert { from: 1 },
    )
    .unwrap();
    assert!(revert.contains("restores hot days"), "{revert}");
}

#[test]
fn a_second_alarm_within_the_cooldown_does_not_escalate_again() {
    let p = policy("collector-pressure");
    let mut state = None;
    let d = run(
        &p,
        &mut state,
        &[
            (change(QUEUE, AlarmState::Alarm, 0), at(0)),
            (change(QUEUE, AlarmState::Ok, 3), at(3)),
            (change(QUEUE, AlarmState::Alarm, 6), at(6)),
            (change(QUEUE, AlarmState::Ok, 20), at(20)),
            (change(QUEUE, AlarmState::Alarm, 21), at(21)),
        ],
        5,
    );
    assert_eq!(d[1], Decision::Defer { until: at(15) });
    assert_eq!(d[2], Decision::Ignore(Ignored::Cooldown { until: at(15) }));
    // Past the cooldown, an OK reverts at once and a new ALARM starts from the baseline.
    assert_eq!(d[3], Decision::Revert { from: 1 });
    assert_eq!(d[4], Decision::Escalate { from: 0, to: 1 });
}

#[test]
fn an_alarm_after_a_deferred_ok_cancels_the_pending_revert() {
    let p = policy("collector-pressure");
    let mut state = None;
    run(
        &p,
        &mut state,
        &[
            (change(QUEUE, AlarmState::Alarm, 0), at(0)),
            (change(QUEUE, AlarmState::Ok, 3), at(3)),
        ],
        5,
    );
    assert_eq!(state.as_ref().unwrap().pending_revert, Some(at(15)));
    let scheduled = |state: &PolicyState, now| plan_schedule(&p, state, 5, now).map(|s| s.decision);
    assert_eq!(scheduled(state.as_ref().unwrap(), at(14)), None);
    assert_eq!(
        scheduled(state.as_ref().unwrap(), at(15)),
        Some(Decision::Revert { from: 1 })
    );
    run(
        &p,
        &mut state,
        &[(change(QUEUE, AlarmState::Alarm, 5), at(5))],
        5,
    );
    let state = state.unwrap();
    assert_eq!(state.pending_revert, None);
    assert_eq!(
        scheduled(&state, at(100)),
        Some(Decision::Escalate { from: 1, to: 2 }),
        "the alarm is back and stays: one more step after the cooldown"
    );
}

#[test]
fn ok_keeps_the_level_while_another_alarm_of_the_policy_is_in_alarm() {
    let p = policy("collector-pressure");
    let mut state = None;
    let other = "signoz-collector-refused";
    let d = run(
        &p,
        &mut state,
        &[
            (change(QUEUE, AlarmState::Alarm, 0), at(0)),
            (change(other, AlarmState::Alarm, 1), at(20)),
            (change(QUEUE, AlarmState::Ok, 30), at(30)),
            (change(other, AlarmState::Ok, 40), at(40)),
        ],
        5,
    );
    assert_eq!(d[1], Decision::Escalate { from: 1, to: 2 });
    assert_eq!(d[2], Decision::Ignore(Ignored::OtherAlarmActive));
    assert_eq!(d[3], Decision::Revert { from: 2 });
    assert_eq!(state.unwrap().step, 0);
}

#[test]
fn the_ceiling_holds_however_many_alarms_arrive() {
    let s = spec();
    let p = policy("collector-pressure");
    let AlarmAction::ScaleCollectors(scale) = &p.action else {
        unreachable!()
    };
    // Baseline max 10, step 2, ceiling 20: five steps reach it.
    let limit = max_step(&p, &s, &RetentionHighWater::default());
    assert_eq!(limit, 5);
    let mut state = None;
    let events: Vec<_> = (0..12)
        .map(|i| (change(QUEUE, AlarmState::Alarm, i * 20), at(i * 20)))
        .collect();
    let d = run(&p, &mut state, &events, limit);
    assert_eq!(d[5], Decision::Ignore(Ignored::AtBound));
    assert_eq!(state.unwrap().step, 5);
    for step in 0..50 {
        let (min, max) = scaled_replicas(&s, scale, step);
        assert!(max <= 20 && min <= max, "step {step}: {min}..{max}");
    }
    assert_eq!(scaled_replicas(&s, scale, 1), (2, 12));
    assert_eq!(
        describe_step(&p, &s, 1),
        "minReplicaCount 2, maxReplicaCount 12"
    );
}

#[test]
fn raise_min_moves_the_minimum_but_never_above_the_maximum() {
    let s = spec();
    let scale = crate::spec::ScaleCollectors {
        step: 4,
        ceiling: 12,
        raise_min: true,
    };
    assert_eq!(scaled_replicas(&s, &scale, 1), (6, 12));
    assert_eq!(scaled_replicas(&s, &scale, 3), (12, 12));
}

#[test]
fn hot_days_never_go_below_the_floor() {
    let s = spec();
    let p = policy("clickhouse-disk");
    let AlarmAction::MoveToColdSooner(m) = &p.action else {
        unreachable!()
    };
    // traces/logs 7 hot days, metrics 30, floor 3, step 2.
    let r = lowered_retention(&s, m, 1);
    assert_eq!((r.traces.hot_days, r.metrics.hot_days), (5, 28));
    let r = lowered_retention(&s, m, 100);
    assert_eq!(
        (r.traces.hot_days, r.logs.hot_days, r.metrics.hot_days),
        (3, 3, 3)
    );
}

#[test]
fn hot_days_stop_where_expiration_would_delete_referenced_objects() {
    let mut s = spec();
    let p = policy("clickhouse-disk");
    // Unbounded by retention, metrics (30 hot) reaches the floor 3 in 14 steps.
    assert_eq!(max_step(&p, &s, &RetentionHighWater::default()), 14);
    // metrics: 395 total; expiration 400 with margin 7 allows cold days up to 393, so hot >= 2.
    // Tighten expiration to 380: cold days <= 373, so metrics hot >= 22: 4 steps (30 -> 22).
    s.cold_storage.expiration_days = 380;
    assert!(crate::cold_storage::plan::unsafe_reasons(&s, &Default::default()).is_empty());
    let limit = max_step(&p, &s, &RetentionHighWater::default());
    assert_eq!(limit, 4);
    let states = [(
        p.clone(),
        PolicyState {
            step: 9,
            ..Default::default()
        },
    )];
    let o = hot_days_override(&s, &states, &RetentionHighWater::default()).unwrap();
    assert_eq!(
        o.retention.metrics.hot_days, 22,
        "the stored step is bounded again"
    );
    assert!(
        crate::cold_storage::plan::unsafe_reasons(&o.applied_to(&s), &Default::default())
            .is_empty()
    );
}

#[test]
fn steps_never_lengthen_the_expiration_in_force() {
    // The spec's expiration exactly covers metrics' 365 cold days: no step may raise them.
    let mut s = spec();
    s.cold_storage.expiration_days = 372;
    let p = policy("clickhouse-disk");
    let none = RetentionHighWater::default();
    assert_eq!(max_step(&p, &s, &none), 0);
    let states = [(
        p.clone(),
        PolicyState {
            step: 1,
            ..Default::default()
        },
    )];
    assert_eq!(hot_days_override(&s, &states, &none), None);
    // Parts once kept 380 days: S3 already keeps 387, so metrics may go up to 380 cold
    // days (hot 16, seven steps of 2) and no further.
    let mut memory = RetentionHighWater::default();
    memory.cold_days.insert("metrics".into(), 380);
    assert_eq!(max_step(&p, &s, &memory), 7);
    let o = hot_days_override(&s, &states, &memory).unwrap();
    assert_eq!(o.retention.metrics.hot_days, 28);
}

#[test]
fn the_replica_override_says_why() {
    let s = spec();
    let p = policy("collector-pressure");
    let mut state = None;
    run(
        &p,
        &mut state,
        &[(change(QUEUE, AlarmState::Alarm, 0), at(0))],
        5,
    );
    let o = replica_override(&s, &[(p, state.unwrap())]).unwrap();
    assert_eq!((o.min_replicas, o.max_replicas), (2, 12));
    assert_eq!(
        o.why,
        [format!(
            "collector-pressure: {QUEUE} ALARM at {}, maxReplicaCount 10 -> 12",
            at(0)
        )]
    );
    assert_eq!(replica_override(&s, &[]), None);
}

#[test]
fn one_shot_actions_trigger_once_per_cooldown() {
    let p = policy("failed-logins");
    let alarm = "signoz-db-auth-failures";
    let mut state = None;
    let d = run(
        &p,
        &mut state,
        &[
            (change(alarm, AlarmState::Alarm, 0), at(0)),
            (change(alarm, AlarmState::Ok, 5), at(5)),
            (change(alarm, AlarmState::Alarm, 10), at(10)),
            (change(alarm, AlarmState::Alarm, 70), at(70)),
        ],
        0,
    );
    let rotate = Decision::Trigger {
        remedy: Remedy::RotateAppSecret,
    };
    assert_eq!(d[0], rotate);
    assert_eq!(d[1], Decision::Ignore(Ignored::NothingToRevert));
    assert_eq!(d[2], Decision::Ignore(Ignored::Cooldown { until: at(60) }));
    assert_eq!(d[3], rotate);

    let p = policy("lifecycle-drift");
    let d = plan_alarm_response(
        &p,
        &change("signoz-cold-bucket-drift", AlarmState::Alarm, 0),
        None,
        0,
        at(0),
    );
    assert_eq!(
        d,
        Decision::Trigger {
            remedy: Remedy::Reconcile(crate::spec::ReconcileTarget::ColdStorage)
        }
    );
}

#[test]
fn notify_only_notifies_on_both_states() {
    let p = policy("ingest-errors");
    for state in [AlarmState::Alarm, AlarmState::Ok] {
        let d = plan_alarm_response(
            &p,
            &change("signoz-ingest-errors-x", state, 0),
            None,
            0,
            at(0),
        );
        assert_eq!(d, Decision::Notify);
    }
}

#[test]
fn the_history_is_bounded_and_the_state_round_trips_as_json() {
    let p = policy("ingest-errors");
    let mut state = None;
    let events: Vec<_> = (0..30)
        .map(|i| (change("signoz-ingest-errors", AlarmState::Alarm, i), at(i)))
        .collect();
    run(&p, &mut state, &events, 0);
    let state = state.unwrap();
    assert_eq!(state.history.len(), HISTORY_LIMIT);
    assert_eq!(state.history.last().unwrap().event_at, Some(at(29)));
    let text = serde_json::to_string(&state).unwrap();
    assert!(text.contains("\"state\":\"ALARM\""), "{text}");
    let back: PolicyState = serde_json::from_str(&text).unwrap();
    assert_eq!(back, state);
}

proptest! {
    /// Whatever order a flood of events arrives in (duplicates included), the policy ends
    /// in the state of the newest event: its mark, and a level in force exactly when it is
    /// ALARM (or an OK whose revert is pending).
    #[test]
    fn any_order_of_events_ends_in_the_state_of_the_newest(
        states in proptest::collection::vec(any::<bool>(), 1..8),
        order in Just(()).prop_perturb(|_, mut rng| {
            let mut v: Vec<usize> = (0..24).collect();
            for i in (1..v.len()).rev() { v.swap(i, (rng.next_u32() as usize) % (i + 1)); }
            v
        }),
        cooldown in 0u32..30,
    ) {
        let mut p = policy("collector-pressure");
        p.cooldown_minutes = cooldown;
        // Each event once or more (duplicates), ten minutes apart in alarm time.
        let events: Vec<AlarmChange> = states
            .iter()
            .enumerate()
            .map(|(i, alarm)| {
                let state = if *alarm { AlarmState::Alarm } else { AlarmState::Ok };
                change(QUEUE, state, i as i64 * 10)
            })
            .collect();
        let mut arrivals: Vec<AlarmChange> = order
            .iter()
            .filter(|i| **i < events.len() * 3)
            .map(|i| events[i % events.len()].clone())
            .collect();
        arrivals.extend(events.iter().cloned());
        let now = at(1000);
        let fed: Vec<_> = arrivals.into_iter().map(|e| (e, now)).collect();
        let mut state = None;
        run(&p, &mut state, &fed, 5);
        let newest = events.last().unwrap();
        let state = state.unwrap();
        let mark = &state.alarms[QUEUE];
        prop_assert_eq!(mark.state, newest.state);
        prop_assert_eq!(mark.at, newest.state_changed_at);
        if newest.state == AlarmState::Alarm {
            prop_assert!(state.step >= 1);
            prop_assert_eq!(state.pending_revert, None);
        } else {
            prop_assert!(state.step == 0 || state.pending_revert.is_some());
        }
        prop_assert!(state.step <= 5);
    }
}

#[test]
fn cooldown_is_measured_from_the_last_action() {
    let p = policy("collector-pressure");
    let state = PolicyState {
        step: 1,
        last_action_at: Some(at(0)),
        cooldown_until: Some(at(0).checked_add(SignedDuration::from_mins(15)).unwrap()),
        ..Default::default()
    };
    let ok = change(QUEUE, AlarmState::Ok, 1);
    assert_eq!(
        plan_alarm_response(&p, &ok, Some(&state), 5, at(14)),
        Decision::Defer { until: at(15) }
    );
    assert_eq!(
        plan_alarm_response(&p, &ok, Some(&state), 5, at(15)),
        Decision::Revert { from: 1 }
    );
}
