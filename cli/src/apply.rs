//! `signoz-control apply`: the plan, a confirmation, then each area through the path
//! its function takes (the same reconcile, the same guards), with every change printed
//! as it is made. The functions plan again as they apply: what changed since the plan
//! shown is applied as the spec says, and still refused when unsafe.

use std::io::{BufRead, IsTerminal, Write};

use crate::output::Style;
use crate::plan::{Area, AreaPlan, control_event, plan};
use crate::session::Session;

/// Plans `areas`, asks (unless `auto_approve`), applies; returns the exit code.
pub async fn apply(session: &Session, areas: &[Area], auto_approve: bool, style: &Style) -> u8 {
    let planned = plan(session, areas).await;
    print!("{}", planned.render(style));
    if planned.errors() > 0 {
        eprintln!("signoz-control: nothing applied: an area could not be planned");
        return 1;
    }
    if planned.changes() == 0 {
        return if planned.refusals() > 0 { 1 } else { 0 };
    }
    if !auto_approve && !confirmed() {
        eprintln!("signoz-control: nothing applied");
        return 1;
    }
    let mut code = 0;
    for area in planned.areas.iter().filter(|a| !a.items.is_empty()) {
        println!(
            "\n{} {}",
            style.bold(&format!("applying {}", area.area.title())),
            style.dim("...")
        );
        match apply_area(session, area).await {
            Ok(done) => println!("{} {done}", style.green("✓")),
            Err(error) => {
                println!("{} {error}", style.red("✗"));
                code = 1;
            }
        }
    }
    if planned.refusals() > 0 {
        code = 1;
    }
    code
}

/// Asks on the terminal; without one, an apply needs `--auto-approve`.
fn confirmed() -> bool {
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "signoz-control: stdin is not a terminal: pass --auto-approve to apply without asking"
        );
        return false;
    }
    print!("\nApply these changes? Only 'yes' is accepted: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    answer.trim() == "yes"
}

/// One area through its function's path; the summary line, or what failed.
async fn apply_area(session: &Session, area: &AreaPlan) -> Result<String, String> {
    let spec = session.spec();
    match area.area {
        Area::ColdStorage => {
            let ctx = session.cold_storage();
            let event = control_event("Reconcile Cold Storage", false);
            let answer =
                signoz_control::cold_storage::handle_at(&ctx, event, jiff::Timestamp::now())
                    .await
                    .map_err(|e| e.to_string())?;
            let changes = answer["changes"].as_array().map_or(0, Vec::len);
            let ttls = answer["ttls"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["outcome"].get("applied").is_some())
                .count();
            Ok(format!(
                "cold storage: {changes} bucket setting(s) written, {ttls} TTL(s) set"
            ))
        }
        Area::Cluster => {
            let ctx = session.cluster();
            let report = signoz_control::cluster::reconcile_spec(&ctx, spec, false)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(failure) = report.failure() {
                return Err(failure.to_string());
            }
            Ok(format!(
                "cluster: {} created, {} updated, {} pruned, {} restarted",
                report.created.len(),
                report.updated.len(),
                report.pruned.len(),
                report.restarted.len()
            ))
        }
        Area::Credentials => {
            let ctx = session.credentials();
            let deadline =
                signoz_control::credentials::Deadline::after(std::time::Duration::from_secs(120));
            let outcome =
                signoz_control::credentials::provision_database(&ctx, spec, false, deadline)
                    .await
                    .map_err(|e| e.to_string())?;
            Ok(format!(
                "credentials: {}",
                if outcome.actions.is_empty() {
                    "nothing needed".to_string()
                } else {
                    outcome.actions.join("; ")
                }
            ))
        }
    }
}
