//! `signoz-control status`: one screen of where the platform stands: the spec revision,
//! drift per area (the plan), the retention memory against what SigNoz reports, the last
//! rotation and the next, alarm overrides in force and when they revert, TTL jobs
//! pending or stuck.

use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use signoz_control::alarms::overrides::{describe_step, load_policy_states};
use signoz_control::cold_storage::ttl::TtlJobs;
use signoz_control::credentials::secret_store::AWSCURRENT;
use signoz_control::state::StateStore;

use crate::output::Style;
use crate::plan::{AreaPlan, plan_cluster, plan_cold_storage, plan_credentials};
use crate::session::Session;

/// The screen, and whether anything could not be read (exit code 1).
pub async fn status(session: &Session, style: &Style) -> (String, bool) {
    let spec = session.spec();
    let now = Timestamp::now();
    let mut out = String::new();
    let mut broken = false;
    let revision = &session.loaded.revision;
    let _ = writeln!(
        out,
        "{} {} ({}, {})",
        style.bold("platform"),
        spec.platform.name,
        spec.platform.environment,
        spec.platform.region
    );
    let _ = writeln!(
        out,
        "{:<13}{}  etag {}{}",
        style.bold("spec"),
        revision.location,
        short(&revision.etag),
        revision
            .version_id
            .as_deref()
            .map(|v| format!("  version {v}"))
            .unwrap_or_default()
    );

    let (cold, answer) = plan_cold_storage(session).await;
    let cluster = plan_cluster(session).await;
    let credentials = plan_credentials(session).await;
    for area in [&credentials, &cluster, &cold] {
        broken |= area.error.is_some();
        let _ = writeln!(
            out,
            "{:<13}{}",
            style.bold(area.area.title()),
            drift(area, style)
        );
    }

    out.push('\n');
    let _ = writeln!(out, "{}", style.bold("retention"));
    match &answer {
        Some(answer) => retention(&mut out, answer, style),
        None => {
            let _ = writeln!(
                out,
                "  {}",
                style.dim("unknown: cold storage could not be read")
            );
        }
    }
    let store = StateStore::for_spec(session.s3.clone(), spec);
    match store.load::<TtlJobs>(TtlJobs::KEY).await {
        Ok((jobs, _)) => {
            let stuck_after =
                SignedDuration::from_mins(spec.retention.ttl_api.stuck_after_minutes.into());
            let mut any = false;
            for (signal, job) in jobs.unwrap_or_default().signals {
                any = true;
                let line = match (job.waiting_since, &job.sent) {
                    (Some(since), _) if now.duration_since(since) > stuck_after => {
                        style.red(&format!(
                            "{signal}: stuck, a job pending since {} (more than {} min)",
                            minute(since),
                            spec.retention.ttl_api.stuck_after_minutes
                        ))
                    }
                    (Some(since), _) => {
                        style.yellow(&format!("{signal}: a job pending since {}", minute(since)))
                    }
                    (None, Some(sent)) => format!(
                        "{signal}: sent {} d total, {} d hot at {}, not verified yet",
                        sent.total_days,
                        sent.hot_days,
                        minute(sent.at)
                    ),
                    (None, None) => continue,
                };
                let _ = writeln!(out, "  TTL job {line}");
            }
            if !any {
                let _ = writeln!(out, "  {}", style.dim("no TTL job pending"));
            }
        }
        Err(e) => {
            broken = true;
            let _ = writeln!(out, "  {} TTL jobs: {e}", style.red("error:"));
        }
    }

    out.push('\n');
    let _ = writeln!(out, "{}", style.bold("rotation"));
    let ctx = session.credentials();
    match ctx.secrets.describe(&spec.database.app_secret_name).await {
        Ok(Some(v)) => {
            let every = v
                .rotation_days
                .map_or("no schedule".into(), |d| format!("every {d} days"));
            let enabled = if v.rotation_enabled {
                style.green("enabled")
            } else {
                style.red("disabled")
            };
            let last = v.last_rotated.map_or("never".into(), minute);
            let next = v
                .next_rotation
                .or_else(|| {
                    let days = v.rotation_days?;
                    v.last_rotated?
                        .checked_add(SignedDuration::from_hours(days * 24))
                        .ok()
                })
                .map_or("not scheduled".into(), minute);
            let _ = writeln!(
                out,
                "  {} {enabled}, {every}; last {last}; next {next}",
                spec.database.app_secret_name
            );
            let _ = writeln!(
                out,
                "  AWSCURRENT is version {}",
                v.version_with(AWSCURRENT)
                    .unwrap_or("(none: not provisioned)")
            );
        }
        Ok(None) => {
            let _ = writeln!(
                out,
                "  {} the app secret {} does not exist",
                style.red("!"),
                spec.database.app_secret_name
            );
        }
        Err(e) => {
            broken = true;
            let _ = writeln!(out, "  {} {e}", style.red("error:"));
        }
    }

    out.push('\n');
    let _ = writeln!(out, "{}", style.bold("alarm overrides"));
    match load_policy_states(&store, spec).await {
        Ok(states) => {
            let mut any = false;
            for (policy, state) in states.iter().filter(|(_, s)| s.step > 0) {
                any = true;
                let why = state
                    .last_escalation
                    .as_ref()
                    .map(|e| format!(" since {} went to ALARM at {}", e.alarm, minute(e.at)))
                    .unwrap_or_default();
                let revert = match (state.pending_revert, state.cooldown_until) {
                    (Some(at), _) => format!("reverts at {} (its alarm is OK)", minute(at)),
                    (None, Some(until)) if until > now => format!(
                        "reverts once its alarms are OK, not before {}",
                        minute(until)
                    ),
                    _ => "reverts once its alarms are OK".into(),
                };
                let _ = writeln!(
                    out,
                    "  {}: {} -> {}{why}; {revert}",
                    policy.name,
                    describe_step(policy, spec, 0),
                    style.yellow(&describe_step(policy, spec, state.step))
                );
            }
            if !any {
                let _ = writeln!(
                    out,
                    "  {}",
                    style.dim("none in force: every level is the spec's")
                );
            }
        }
        Err(e) => {
            broken = true;
            let _ = writeln!(out, "  {} {e}", style.red("error:"));
        }
    }
    (out, broken)
}

/// One area's drift in a few words.
fn drift(area: &AreaPlan, style: &Style) -> String {
    if let Some(error) = &area.error {
        return style.red(&format!("error: {error}"));
    }
    let mut parts = vec![if area.items.is_empty() {
        style.green("in sync")
    } else {
        style.yellow(&format!(
            "drifted: {} change(s) to make ({}{})",
            area.items.len(),
            area.items
                .iter()
                .take(3)
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if area.items.len() > 3 { ", ..." } else { "" }
        ))
    }];
    if !area.refusals.is_empty() {
        parts.push(style.red(&format!("{} refused", area.refusals.len())));
    }
    if !area.warnings.is_empty() {
        parts.push(style.yellow(&format!("{} warning(s) (see plan)", area.warnings.len())));
    }
    parts.join("; ")
}

/// The remembered retention (the largest cold period SigNoz's parts ever had) against
/// what SigNoz reports now, per signal.
fn retention(out: &mut String, answer: &Value, style: &Style) {
    let observed = answer["observed_ttls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for signal in ["traces", "logs", "metrics"] {
        let remembered = &answer["remembered_cold_days"][signal];
        let reported = observed.iter().find(|o| o["signal"] == signal);
        let now = match reported {
            Some(o) => {
                let (total, hot) = (o["total_days"].as_u64(), o["hot_days"].as_u64());
                let cold = total.zip(hot).map(|(t, h)| t.saturating_sub(h));
                format!(
                    "SigNoz reports {} d total, {} d hot ({} d in S3), job {}",
                    total.map_or("?".into(), |t| t.to_string()),
                    hot.map_or("none".into(), |h| h.to_string()),
                    cold.map_or("?".into(), |c| c.to_string()),
                    o["status"].as_str().unwrap_or("unknown")
                )
            }
            None => "SigNoz not asked".into(),
        };
        let _ = writeln!(
            out,
            "  {signal:<8} remembered maximum {} d in S3; {now}",
            remembered
                .as_u64()
                .map_or_else(|| style.dim("none yet"), |d| d.to_string())
        );
    }
    let _ = writeln!(
        out,
        "  the bucket expires objects after {} days",
        answer["expiration_days"]
    );
}

fn short(etag: &str) -> &str {
    etag.get(..12).unwrap_or(etag)
}

/// A time to the minute, UTC.
fn minute(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}
