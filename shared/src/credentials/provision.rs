//! Provisioning SigNoz's database on a new (or restored) instance: posture findings,
//! the owner and login roles, the database, the app secret, and rotation turned on.

use serde::Serialize;
use serde_json::{Value, json};

use super::deadline::Deadline;
use super::posture::{Finding, assess_posture, read_instance};
use super::rotation::{
    Inside, MAINTENANCE_DB, check_current_target, connect_master, ensure_access, login_roles,
    observe_access_locked, read_master,
};
use super::secret_store::{AWSCURRENT, SecretVersions, Version};
use super::values::{AppSecret, Password};
use super::{Context, Error, FUNCTION, postgres};
use crate::spec::PlatformSpec;

/// What provisioning found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionOutcome {
    pub instance: String,
    pub findings: Vec<Finding>,
    /// Human-readable actions, never a secret value.
    pub actions: Vec<String>,
    /// What the app secret and its rotation change (or, dry run, would change), one field
    /// per entry; the roles and grants are in `actions` (a dry run does not log in).
    pub changes: Vec<crate::diff::FieldChange>,
    pub app_secret_arn: Option<String>,
    pub dry_run: bool,
}

/// The rotation settings the spec wants that the secret does not have yet: enabled,
/// every `rotation_days`, through this function (when its ARN is known).
pub fn rotation_changes(
    versions: &SecretVersions,
    database: &crate::spec::Database,
    lambda: Option<&str>,
) -> Vec<crate::diff::FieldChange> {
    let days = i64::from(database.rotation_days);
    let mut changes = Vec::new();
    let mut change = |path: &str, before: Value, after: Value| {
        changes.push(crate::diff::FieldChange {
            path: path.into(),
            before,
            after,
        })
    };
    if !versions.rotation_enabled {
        change(".rotation.enabled", json!(false), json!(true));
    }
    if versions.rotation_days != Some(days) {
        change(".rotation.days", json!(versions.rotation_days), json!(days));
    }
    if let Some(lambda) = lambda
        && versions.rotation_lambda_arn.as_deref() != Some(lambda)
    {
        change(
            ".rotation.lambda",
            json!(versions.rotation_lambda_arn),
            json!(lambda),
        );
    }
    changes
}

/// The change of writing the app secret's first value for `username`.
fn first_value_change(username: &str) -> crate::diff::FieldChange {
    crate::diff::FieldChange {
        path: ".value".into(),
        before: Value::Null,
        after: json!(format!("first value, user {username} (generated)")),
    }
}

impl ProvisionOutcome {
    /// The function's JSON answer.
    pub fn to_json(&self) -> Value {
        let mut value = serde_json::to_value(self).expect("outcomes serialise");
        value["function"] = FUNCTION.into();
        value
    }
}

/// Idempotently provisions SigNoz's database access and app secret, then enables
/// rotation; `dry_run` only reports the posture.
pub async fn provision_database(
    ctx: &Context,
    spec: &PlatformSpec,
    dry_run: bool,
    deadline: Deadline,
) -> Result<ProvisionOutcome, Error> {
    let db = &spec.database;
    let facts = read_instance(ctx.rds(), &db.instance_identifier).await?;
    let findings = assess_posture(&facts, db);
    for f in &findings {
        if f.ok {
            tracing::info!(instance = %db.instance_identifier, check = f.check, detail = %f.detail, "posture ok");
        } else {
            tracing::warn!(instance = %db.instance_identifier, check = f.check, detail = %f.detail, "posture finding");
        }
    }
    let mut outcome = ProvisionOutcome {
        instance: db.instance_identifier.clone(),
        findings,
        actions: Vec::new(),
        changes: Vec::new(),
        app_secret_arn: None,
        dry_run,
    };
    if dry_run {
        // What Secrets Manager says is enough to tell what the app secret and its
        // rotation would get; the roles need a login, which a dry run does not make.
        let versions = ctx
            .secrets
            .describe(&db.app_secret_name)
            .await?
            .ok_or_else(|| missing_app_secret(db))?;
        if versions.version_with(AWSCURRENT).is_none() {
            outcome.changes.push(first_value_change(&db.username));
        }
        outcome.changes.extend(rotation_changes(
            &versions,
            db,
            ctx.rotation_lambda_arn.as_deref(),
        ));
        outcome.app_secret_arn = Some(versions.arn);
        return Ok(outcome);
    }
    let failing: Vec<String> = outcome
        .findings
        .iter()
        .filter(|f| !f.ok)
        .map(|f| format!("{}: {}", f.check, f.detail))
        .collect();
    if db.posture.enforce && !failing.is_empty() {
        return Err(Error::PostureFindings {
            instance: db.instance_identifier.clone(),
            findings: failing,
        });
    }

    let master_secret = read_master(ctx, db).await?;
    let endpoint = master_secret.endpoint().or(facts.endpoint).ok_or_else(|| {
        Error::Config(format!(
            "no endpoint for {}: neither the master secret nor RDS gives one",
            db.instance_identifier
        ))
    })?;
    let tls = ctx.tls(spec, deadline)?;
    let master = connect_master(ctx, &tls, db, &endpoint, MAINTENANCE_DB, None).await?;
    let logins = login_roles(db);
    let seen = observe_access_locked(&master, None, db, &logins, &[&db.owner_role]).await?;
    let inside = Inside::Connect {
        ctx,
        tls: &tls,
        endpoint: &endpoint,
    };
    let changes = ensure_access(&master, inside, db, &logins, true, seen).await?;
    outcome
        .actions
        .extend(changes.iter().map(ToString::to_string));

    // The deployment owns the app secret (Terraform `aws_secretsmanager_secret.app`, SAM
    // `AppSecret`): it exists, empty, before the first provisioning, which writes its
    // first value. The role may change no other secret.
    let existing = ctx
        .secrets
        .describe(&db.app_secret_name)
        .await?
        .ok_or_else(|| missing_app_secret(db))?;
    let current = ctx
        .secrets
        .read(&db.app_secret_name, Version::Stage(AWSCURRENT))
        .await?
        .map(|text| AppSecret::parse(&db.app_secret_name, &text))
        .transpose()?;
    match current {
        Some(app) => {
            check_current_target(db, &db.app_secret_name, &app)?;
            // The secret has a value: make sure the database still accepts it; repair if not.
            match tls
                .connect(&app.endpoint(), &app.dbname, &app.username, &app.password)
                .await
            {
                Ok(_) => {}
                Err(Error::Authentication { .. }) => {
                    postgres::lock_roles(&master, &[&app.username]).await?;
                    postgres::set_role_password(&master, &app.username, &app.password).await?;
                    tracing::info!(user = %app.username, "database password reset to the app secret's AWSCURRENT");
                    outcome.actions.push(format!(
                        "reset password of {} to the app secret",
                        app.username
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        None => {
            let password = Password::generate(db.password_length)?;
            postgres::lock_roles(&master, &[&db.username]).await?;
            postgres::set_role_password(&master, &db.username, &password).await?;
            let app = AppSecret {
                engine: "postgres".into(),
                host: endpoint.host.clone(),
                port: endpoint.port,
                username: db.username.clone(),
                password,
                dbname: db.database_name.clone(),
                masterarn: Some(db.master_secret_arn.clone()),
                // AWS's structure: the console finds the instance (and its VPC) by it.
                extra: [(
                    "dbInstanceIdentifier".to_string(),
                    db.instance_identifier.clone().into(),
                )]
                .into_iter()
                .collect(),
            };
            // A retry after a failure here generates another password and sets it again
            // before writing it (reserved concurrency 1: no second writer meanwhile), so
            // the database and the secret end up agreeing either way.
            ctx.secrets
                .put_first_value(&existing.arn, &app.to_json())
                .await?;
            tracing::info!(secret = %existing.arn, user = %app.username, "wrote the app secret's first value");
            outcome.changes.push(first_value_change(&app.username));
            outcome.actions.push(format!(
                "wrote the first app secret value for {}",
                app.username
            ));
        }
    }
    let app_secret_arn = existing.arn.clone();
    outcome.app_secret_arn = Some(app_secret_arn.clone());

    let versions = ctx
        .secrets
        .describe(&app_secret_arn)
        .await?
        .unwrap_or_default();
    let days = i64::from(db.rotation_days);
    let lambda = ctx.rotation_lambda_arn.as_deref();
    let rotation = rotation_changes(&versions, db, lambda);
    if !rotation.is_empty() {
        let lambda = lambda.ok_or_else(|| {
            Error::Config(format!(
                "{} is not set: cannot enable rotation",
                super::ROTATION_LAMBDA_ARN_ENV
            ))
        })?;
        ctx.secrets
            .enable_rotation(&app_secret_arn, lambda, db.rotation_days)
            .await?;
        tracing::info!(secret = %app_secret_arn, rotation_days_before = versions.rotation_days.map_or_else(|| "(none)".into(), |d| d.to_string()),
            rotation_days_after = days, lambda, "enabled rotation");
        outcome
            .actions
            .push(format!("enabled rotation every {} days", db.rotation_days));
        outcome.changes.extend(rotation);
    }
    Ok(outcome)
}

fn missing_app_secret(db: &crate::spec::Database) -> Error {
    Error::Config(format!(
        "the app secret {} does not exist: the deployment creates it (Terraform \
         aws_secretsmanager_secret.app, SAM AppSecret) and provisioning writes its value",
        db.app_secret_name
    ))
}
