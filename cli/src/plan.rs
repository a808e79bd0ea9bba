//! `signoz-control plan`: what each area's function would change, read from the live
//! platform through the functions' own dry runs (cold storage's dry-run reconcile, the
//! cluster's server-side apply dry run, provisioning's dry run), printed per resource
//! the way `terraform plan` does. Exit code 0: no changes; 2: changes; 1: an error or a
//! refused change.

use std::fmt::Write as _;

use serde_json::{Value, json};
use signoz_control::cluster::sync::SyncReport;
use signoz_control::diff::{FieldChange, plain};

use crate::output::Style;
use crate::session::Session;

/// An area of the platform, as `--only` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Area {
    Credentials,
    Cluster,
    ColdStorage,
}

impl Area {
    /// Every area, in apply order: the credentials the cluster hands off first.
    pub const ALL: [Area; 3] = [Area::Credentials, Area::Cluster, Area::ColdStorage];

    pub fn title(self) -> &'static str {
        match self {
            Area::Credentials => "credentials",
            Area::Cluster => "cluster",
            Area::ColdStorage => "cold storage",
        }
    }
}

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
    Restart,
}

impl Action {
    fn mark(self, style: &Style) -> String {
        match self {
            Action::Create => style.green("+"),
            Action::Update => style.yellow("~"),
            Action::Delete => style.red("-"),
            Action::Restart => style.cyan("↻"),
        }
    }
}

/// One resource's change.
#[derive(Debug, Clone)]
pub struct Item {
    pub action: Action,
    pub name: String,
    pub fields: Vec<FieldChange>,
    /// Why the change destroys or re-creates something, when it does.
    pub destructive: Option<String>,
    pub note: Option<String>,
}

impl Item {
    fn new(action: Action, name: impl Into<String>) -> Self {
        Item {
            action,
            name: name.into(),
            fields: Vec::new(),
            destructive: None,
            note: None,
        }
    }
}

/// One area's plan.
#[derive(Debug, Clone)]
pub struct AreaPlan {
    pub area: Area,
    /// What the area acts on (`s3://bucket`, `cluster/namespace`, the app secret).
    pub target: String,
    pub items: Vec<Item>,
    pub refusals: Vec<String>,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    /// The area could not be planned (the rest of the plan still is).
    pub error: Option<String>,
}

impl AreaPlan {
    fn new(area: Area, target: String) -> Self {
        AreaPlan {
            area,
            target,
            items: Vec::new(),
            refusals: Vec::new(),
            warnings: Vec::new(),
            notes: Vec::new(),
            error: None,
        }
    }

    fn failed(area: Area, target: String, error: String) -> Self {
        AreaPlan {
            error: Some(error),
            ..AreaPlan::new(area, target)
        }
    }
}

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub areas: Vec<AreaPlan>,
}

impl Plan {
    pub fn changes(&self) -> usize {
        self.areas.iter().map(|a| a.items.len()).sum()
    }

    pub fn refusals(&self) -> usize {
        self.areas.iter().map(|a| a.refusals.len()).sum()
    }

    pub fn errors(&self) -> usize {
        self.areas.iter().filter(|a| a.error.is_some()).count()
    }

    /// The `-detailed-exitcode` convention: 1 error or refusal, 2 changes, 0 none.
    pub fn exit_code(&self) -> u8 {
        if self.errors() > 0 || self.refusals() > 0 {
            1
        } else if self.changes() > 0 {
            2
        } else {
            0
        }
    }

    fn count(&self, action: Action) -> usize {
        self.areas
            .iter()
            .flat_map(|a| &a.items)
            .filter(|i| i.action == action)
            .count()
    }

    /// The plan as a person reads it.
    pub fn render(&self, style: &Style) -> String {
        let mut out = String::new();
        for area in &self.areas {
            let _ = writeln!(
                out,
                "{} {}",
                style.bold(area.area.title()),
                style.dim(&format!("— {}", area.target))
            );
            if let Some(error) = &area.error {
                let _ = writeln!(out, "  {} {error}", style.red("error:"));
            }
            for item in &area.items {
                let name = match item.destructive {
                    Some(_) => style.red(&item.name),
                    None => item.name.clone(),
                };
                let note = item
                    .note
                    .as_deref()
                    .map(|n| style.dim(&format!("  ({n})")))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {} {name}{note}", item.action.mark(style));
                if let Some(why) = &item.destructive {
                    let _ = writeln!(out, "      {} {why}", style.red("!! destructive:"));
                }
                for field in &item.fields {
                    let _ = writeln!(
                        out,
                        "      {}: {} -> {}",
                        field.path,
                        style.dim(&plain(&field.before)),
                        plain(&field.after)
                    );
                }
            }
            for refusal in &area.refusals {
                let _ = writeln!(out, "  {} {refusal}", style.red("! refused:"));
            }
            for warning in &area.warnings {
                let _ = writeln!(out, "  {} {warning}", style.yellow("! warning:"));
            }
            for note in &area.notes {
                let _ = writeln!(out, "  {}", style.dim(note));
            }
            if area.error.is_none() && area.items.is_empty() && area.refusals.is_empty() {
                let _ = writeln!(out, "  {}", style.dim("no changes"));
            }
            out.push('\n');
        }
        let summary = if self.changes() == 0 {
            "No changes: the platform matches the spec.".to_string()
        } else {
            format!(
                "Plan: {} to add, {} to change, {} to destroy, {} to restart.",
                self.count(Action::Create),
                self.count(Action::Update),
                self.count(Action::Delete),
                self.count(Action::Restart)
            )
        };
        let _ = write!(out, "{}", style.bold(&summary));
        if self.refusals() > 0 {
            let _ = write!(
                out,
                " {}",
                style.red(&format!("{} refused.", self.refusals()))
            );
        }
        if self.errors() > 0 {
            let _ = write!(
                out,
                " {}",
                style.red(&format!("{} area(s) could not be planned.", self.errors()))
            );
        }
        out.push('\n');
        out
    }
}

/// A control request, as EventBridge delivers it to the function.
pub fn control_event(detail_type: &str, dry_run: bool) -> Value {
    json!({
        "version": "0",
        "id": "signoz-control-cli",
        "detail-type": detail_type,
        "source": signoz_control::events::CONTROL_SOURCE,
        "account": "000000000000",
        "time": jiff::Timestamp::now().to_string(),
        "region": "",
        "resources": [],
        "detail": { "dry_run": dry_run },
    })
}

/// The areas `only` selects.
pub fn areas(only: Option<Area>) -> Vec<Area> {
    match only {
        Some(area) => vec![area],
        None => Area::ALL.to_vec(),
    }
}

/// Plans `areas` of the session's platform.
pub async fn plan(session: &Session, areas: &[Area]) -> Plan {
    let mut out = Vec::new();
    for area in areas {
        out.push(match area {
            Area::ColdStorage => plan_cold_storage(session).await.0,
            Area::Cluster => plan_cluster(session).await,
            Area::Credentials => plan_credentials(session).await,
        });
    }
    Plan { areas: out }
}

/// Cold storage through enforce-cold-storage's dry run: the bucket's settings, SigNoz's
/// TTLs, refusals and the expiration floor. Also returns the dry run's answer (status
/// reads the retention memory and what SigNoz reports from it).
pub async fn plan_cold_storage(session: &Session) -> (AreaPlan, Option<Value>) {
    let spec = session.spec();
    let target = format!("s3://{}", spec.cold_storage.bucket);
    let ctx = session.cold_storage();
    let event = control_event("Reconcile Cold Storage", true);
    let answer =
        match signoz_control::cold_storage::handle_at(&ctx, event, jiff::Timestamp::now()).await {
            Ok(answer) => answer,
            Err(e) => {
                return (
                    AreaPlan::failed(Area::ColdStorage, target, e.to_string()),
                    None,
                );
            }
        };
    let mut plan = AreaPlan::new(Area::ColdStorage, target);
    for change in answer["planned_changes"].as_array().into_iter().flatten() {
        let resource = change["resource"].as_str().unwrap_or_default();
        let fields = fields(&change["fields"]);
        // Nothing of it there before (no setting, or an empty rule list): it is created.
        let action = if fields.iter().all(|f| f.before.is_null()) {
            Action::Create
        } else {
            Action::Update
        };
        let mut item = Item::new(action, format!("bucket {resource}"));
        item.fields = fields;
        plan.items.push(item);
    }
    let observed = answer["observed_ttls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for target in answer["planned_ttls"].as_array().into_iter().flatten() {
        let signal = target["signal"].as_str().unwrap_or_default();
        let now = observed
            .iter()
            .find(|o| o["signal"] == signal)
            .cloned()
            .unwrap_or(Value::Null);
        let mut item = Item::new(Action::Update, format!("SigNoz TTL {signal}"));
        for key in ["total_days", "hot_days"] {
            let (before, after) = (&now[key], &target[key]);
            if before.as_u64() != after.as_u64() {
                item.fields.push(FieldChange {
                    path: format!(".{key}"),
                    before: before.clone(),
                    after: after.clone(),
                });
            }
        }
        if now["status"] == "pending" {
            plan.notes.push(format!(
                "SigNoz's {signal} TTL job is pending: the next reconcile verifies it"
            ));
        }
        if !item.fields.is_empty() {
            plan.items.push(item);
        }
    }
    plan.refusals = strings(&answer["refused"]);
    plan.warnings = strings(&answer["warnings"]);
    plan.notes.push(format!(
        "expiration after {} days (remembered cold days: {})",
        answer["expiration_days"],
        plain(&answer["remembered_cold_days"])
    ));
    for why in strings(&answer["alarm_overrides"]) {
        plan.notes.push(format!("alarm override in force: {why}"));
    }
    (plan, Some(answer))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn fields(value: &Value) -> Vec<FieldChange> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| FieldChange {
            path: f["field"].as_str().unwrap_or_default().to_string(),
            before: f["before"].clone(),
            after: f["after"].clone(),
        })
        .collect()
}

/// The cluster through sync-cluster's reconcile as a server-side apply dry run: every
/// diff is between the live object and what the API server answers it would store.
pub async fn plan_cluster(session: &Session) -> AreaPlan {
    let spec = session.spec();
    let target = format!(
        "{} (namespace {}), server-side apply dry run",
        spec.cluster.name, spec.cluster.namespace
    );
    let ctx = session.cluster();
    match signoz_control::cluster::reconcile_spec(&ctx, spec, true).await {
        Ok(report) => cluster_plan(target, &report),
        Err(e) => AreaPlan::failed(Area::Cluster, target, e.to_string()),
    }
}

/// The plan a dry-run report stands for.
pub fn cluster_plan(target: String, report: &SyncReport) -> AreaPlan {
    let mut plan = AreaPlan::new(Area::Cluster, target);
    for id in &report.created {
        plan.items.push(Item::new(Action::Create, id));
    }
    for updated in &report.updated {
        let mut item = Item::new(Action::Update, &updated.object);
        item.fields = updated.changes.clone();
        plan.items.push(item);
    }
    for id in &report.released_workloads {
        let mut item = Item::new(Action::Update, id);
        item.note = Some("gives back our instrumentation fields".into());
        plan.items.push(item);
    }
    for id in &report.pruned {
        let mut item = Item::new(Action::Delete, id);
        item.note = Some("the spec no longer wants it".into());
        plan.items.push(item);
    }
    // A refused delivery change is also a failed object, which says what to do.
    for line in report
        .destructive
        .iter()
        .filter(|l| !l.starts_with("refused: "))
    {
        let mut item = Item::new(Action::Delete, "the delivery SigNoz had");
        item.destructive = Some(line.clone());
        plan.items.push(item);
    }
    for id in &report.restarted {
        let mut item = Item::new(Action::Restart, id);
        item.note = Some("rollout restart".into());
        plan.items.push(item);
    }
    for failed in &report.failed {
        let line = format!("{}: {}", failed.object, failed.error);
        if failed.refused {
            plan.refusals.push(line);
        } else {
            plan.error = Some(match plan.error.take() {
                Some(before) => format!("{before}; {line}"),
                None => line,
            });
        }
    }
    for conflict in &report.conflicts {
        plan.warnings.push(format!(
            "{}: a field is owned by {}; left alone",
            conflict.object,
            conflict.managers.join(", ")
        ));
    }
    for id in &report.missing_workloads {
        plan.warnings.push(format!(
            "{id} does not exist: nothing to instrument until it does"
        ));
    }
    plan.warnings.extend(report.warnings.iter().cloned());
    plan
}

/// Credentials through provisioning's dry run: the app secret's first value, its
/// rotation settings, the instance's posture (the roles need a database login, which a
/// plan does not make).
pub async fn plan_credentials(session: &Session) -> AreaPlan {
    let spec = session.spec();
    let db = &spec.database;
    let target = format!(
        "secret {} on RDS instance {}",
        db.app_secret_name, db.instance_identifier
    );
    let ctx = session.credentials();
    let deadline = signoz_control::credentials::Deadline::after(std::time::Duration::from_secs(60));
    let outcome =
        match signoz_control::credentials::provision_database(&ctx, spec, true, deadline).await {
            Ok(outcome) => outcome,
            Err(e) => return AreaPlan::failed(Area::Credentials, target, e.to_string()),
        };
    let mut plan = AreaPlan::new(Area::Credentials, target);
    let (value, rotation): (Vec<_>, Vec<_>) = outcome
        .changes
        .into_iter()
        .partition(|c| c.path == ".value");
    if !value.is_empty() {
        let mut item = Item::new(
            Action::Create,
            format!("app secret {} value", db.app_secret_name),
        );
        item.fields = value;
        item.note = Some("generated by Secrets Manager, never shown".into());
        plan.items.push(item);
    }
    if !rotation.is_empty() {
        let mut item = Item::new(
            Action::Update,
            format!("app secret {} rotation", db.app_secret_name),
        );
        item.fields = rotation;
        plan.items.push(item);
    }
    let failing: Vec<String> = outcome
        .findings
        .iter()
        .filter(|f| !f.ok)
        .map(|f| format!("posture {}: {}", f.check, f.detail))
        .collect();
    if db.posture.enforce {
        plan.refusals.extend(failing);
    } else {
        plan.warnings.extend(failing);
    }
    plan.notes.push(format!(
        "the roles ({} and its logins) are checked when provisioning runs: a plan does not log in to the database",
        db.owner_role
    ));
    plan
}
