//! A function's answer told in a few lines, for people (`lambda-run`, the local run):
//! what it changed (each change one line, before -> after), what it found already as the
//! spec says, what it refused. The full answer goes to a file; this is the story.

use serde_json::Value;
use signoz_control::diff::plain;

/// Lines shown per list before "... and N more".
const SHOWN: usize = 6;

/// The story of one answer (`ok`: posted to `/response`, else `/error`).
pub fn tell(function: &str, ok: bool, answer: &Value) -> Vec<String> {
    if !ok {
        let message = answer["errorMessage"].as_str().unwrap_or_default();
        let mut lines = vec![format!(
            "failed: {}",
            answer["errorType"].as_str().unwrap_or("error")
        )];
        lines.extend(message.lines().map(|l| format!("  {}", l.trim_start())));
        return lines;
    }
    if let Some(why) = answer["ignored"].as_str().or(answer["skipped"].as_str()) {
        return vec![format!("nothing to do: {why}")];
    }
    match function {
        "enforce-cold-storage" => cold_storage(answer),
        "sync-cluster" => cluster(answer),
        "rotate-credentials" => credentials(answer),
        "respond-to-alarms" => alarms(answer),
        _ => vec![plain(answer)],
    }
}

fn list(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let items: Vec<String> = items.into_iter().collect();
    let mut out: Vec<String> = items.iter().take(SHOWN).cloned().collect();
    if items.len() > SHOWN {
        out.push(format!("  ... and {} more", items.len() - SHOWN));
    }
    out
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().map_or_else(|| plain(s), str::to_string))
        .collect()
}

/// Each bucket write as one line: the setting, its first changed field and how many
/// more (every field is in the full answer, and in `signoz-control plan`).
fn bucket_fields(changes: &Value, mark: &str) -> Vec<String> {
    list(changes.as_array().into_iter().flatten().map(|c| {
        let resource = c["resource"].as_str().unwrap_or_default();
        let fields = c["fields"].as_array().cloned().unwrap_or_default();
        let first = fields.first().map_or(String::new(), |f| {
            format!(
                " {}: {} -> {}",
                f["field"].as_str().unwrap_or_default(),
                plain(&f["before"]),
                plain(&f["after"])
            )
        });
        let more = match fields.len() {
            0 | 1 => String::new(),
            n => format!(" (and {} more field(s))", n - 1),
        };
        format!("  {mark} {resource}{first}{more}")
    }))
}

/// A TTL as SigNoz reports it (`total_days`, `hot_days`, `status`).
fn ttl_text(v: &Value) -> String {
    let hot = v["hot_days"]
        .as_u64()
        .map_or("no cold move".into(), |h| format!("{h} d hot"));
    match v["total_days"].as_u64() {
        Some(total) => format!("{total} d total, {hot}"),
        None => "unknown".into(),
    }
}

/// A TTL outcome (`"unchanged"`, `{"applied": {"status": ..}}`, ...) in words.
fn outcome_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(map) => map
            .iter()
            .map(|(kind, detail)| {
                let detail = ["status", "reason"]
                    .iter()
                    .find_map(|k| detail[*k].as_str())
                    .map(|d| format!(", {d}"))
                    .unwrap_or_default();
                format!("{kind}{detail}")
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => plain(other),
    }
}

fn cold_storage(a: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if a["dry_run"] == true {
        let planned = a["planned_changes"].as_array().map_or(0, Vec::len);
        out.push(format!(
            "dry run on {}: {planned} bucket write(s) planned, nothing written",
            a["bucket"].as_str().unwrap_or_default()
        ));
        out.extend(bucket_fields(&a["planned_changes"], "+"));
        if let Some(steady) = a["cost"]["steady_state"]["total_usd"].as_f64() {
            out.push(format!(
                "cost at steady state (month {}): ${steady:.2} a month",
                a["cost"]["steady_state_month"]
            ));
        }
    } else {
        let written = a["changes"].as_array().map_or(0, Vec::len);
        if let Some(drift) = a.get("drift").filter(|d| !d.is_null()) {
            out.push(format!(
                "drift event: {} by {}",
                drift["event_name"].as_str().unwrap_or_default(),
                drift["actor"].as_str().unwrap_or("?")
            ));
        }
        out.push(if written == 0 {
            format!(
                "bucket {} already as the spec says: no write",
                a["bucket"].as_str().unwrap_or_default()
            )
        } else {
            format!("{written} bucket setting(s) written:")
        });
        out.extend(bucket_fields(&a["changes"], "~"));
        for ttl in a["ttls"].as_array().into_iter().flatten() {
            let signal = ttl["signal"].as_str().unwrap_or_default();
            let outcome = &ttl["outcome"];
            let after = ttl_text(&ttl["after"]);
            let verified = ttl["verified"]
                .as_str()
                .map(|v| format!(", {v}"))
                .unwrap_or_default();
            out.push(match outcome.as_str() {
                Some("unchanged") => format!("  = TTL {signal}: {after} already{verified}"),
                _ => format!(
                    "  ~ TTL {signal}: {} -> {after} ({}{verified})",
                    ttl_text(&ttl["before"]),
                    outcome_text(outcome)
                ),
            });
        }
    }
    out.push(format!(
        "expiration after {} days; remembered cold days: {}",
        a["expiration_days"],
        plain(&a["remembered_cold_days"])
    ));
    for refused in strings(&a["refused"]) {
        out.push(format!("refused: {refused}"));
    }
    for warning in strings(&a["warnings"]) {
        out.push(format!("warning: {warning}"));
    }
    out
}

fn cluster(a: &Value) -> Vec<String> {
    let r = &a["report"];
    let count = |k: &str| r[k].as_array().map_or(0, Vec::len);
    if a["in_sync"] == true {
        return vec![format!(
            "in sync: {} object(s) already as the spec says, nothing written",
            count("unchanged")
        )];
    }
    let mut out = vec![format!(
        "{}{} created, {} updated, {} pruned, {} restarted, {} unchanged",
        if r["dry_run"] == true {
            "dry run: "
        } else {
            ""
        },
        count("created"),
        count("updated"),
        count("pruned"),
        count("restarted"),
        count("unchanged")
    )];
    out.extend(list(
        strings(&r["created"])
            .into_iter()
            .map(|o| format!("  + {o}")),
    ));
    out.extend(list(
        r["updated"].as_array().into_iter().flatten().flat_map(|u| {
            let object = u["object"].as_str().unwrap_or_default().to_string();
            u["changes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |c| {
                    format!(
                        "  ~ {object} {}: {} -> {}",
                        c["path"].as_str().unwrap_or_default(),
                        plain(&c["before"]),
                        plain(&c["after"])
                    )
                })
        }),
    ));
    out.extend(list(
        strings(&r["pruned"])
            .into_iter()
            .map(|o| format!("  - {o}")),
    ));
    out.extend(list(
        strings(&r["restarted"])
            .into_iter()
            .map(|o| format!("  ↻ {o}")),
    ));
    for w in strings(&r["missing_workloads"]) {
        out.push(format!("warning: {w} does not exist"));
    }
    out
}

fn credentials(a: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(step) = a["step"].as_str() {
        out.push(format!(
            "{step} of {}",
            a["secret"].as_str().unwrap_or_default()
        ));
    } else {
        let failing = a["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["ok"] == false)
            .count();
        out.push(format!(
            "{}instance {}: {failing} posture finding(s)",
            if a["dry_run"] == true {
                "dry run: "
            } else {
                ""
            },
            a["instance"].as_str().unwrap_or_default()
        ));
        for change in a["changes"].as_array().into_iter().flatten() {
            out.push(format!(
                "  ~ app secret {}: {} -> {}",
                change["path"].as_str().unwrap_or_default(),
                plain(&change["before"]),
                plain(&change["after"])
            ));
        }
    }
    out.extend(list(
        strings(&a["actions"])
            .into_iter()
            .map(|s| format!("  · {s}")),
    ));
    out
}

fn alarms(a: &Value) -> Vec<String> {
    let policies = a["policies"].as_array().cloned().unwrap_or_default();
    if policies.is_empty() {
        return vec!["no policy matched or was due".into()];
    }
    let mut out = Vec::new();
    for p in policies {
        let effect = &p["effect"];
        let effect = if effect.is_null() {
            String::new()
        } else if let Some(outcome) = effect["outcome"].as_str() {
            format!(
                ": {} {outcome} (min {}, max {})",
                effect["object"].as_str().unwrap_or_default(),
                effect["minReplicaCount"],
                effect["maxReplicaCount"]
            )
        } else {
            format!(": {}", effect["function"].as_str().unwrap_or("done"))
        };
        out.push(format!(
            "{}: {}{effect}",
            p["policy"].as_str().unwrap_or_default(),
            p["summary"].as_str().unwrap_or_default()
        ));
        if let Some(report) = p["report"].as_str() {
            out.push(format!("  {report}"));
        }
    }
    out
}
