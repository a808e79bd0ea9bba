//! The four rotation steps of Secrets Manager's contract. Decisions (token checks,
//! which user comes next, how to finish) are pure functions; the steps do the I/O.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::access::{AccessChange, DesiredAccess, plan_database_access};
use super::deadline::{Deadline, retry_fits};
use super::postgres::{self, PgTls};
use super::secret_store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, SecretVersions, Version};
use super::values::{AppSecret, Endpoint, MasterSecret, Password};
use super::{ClusterAccess, Context, Error, dsn};
use crate::events::{RotationRequest, RotationStep};
use crate::spec::{Database, PlatformSpec, RotationStrategy};

/// Maintenance database the master connects to for role DDL.
const MAINTENANCE_DB: &str = "postgres";

/// Where the token stands before a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// The version is already AWSCURRENT: the rotation finished, nothing to do.
    AlreadyCurrent,
    /// The version carries AWSPENDING: the step proceeds.
    Pending,
}

/// AWS's start-up checks: rotation enabled, the token is a version of the secret,
/// already AWSCURRENT means nothing to do, AWSPENDING is required otherwise.
pub fn check_token(
    secret_id: &str,
    versions: Option<&SecretVersions>,
    token: &str,
) -> Result<TokenState, Error> {
    let versions = versions.ok_or_else(|| Error::SecretNotFound {
        secret: secret_id.into(),
    })?;
    if !versions.rotation_enabled {
        return Err(Error::RotationDisabled {
            secret: secret_id.into(),
        });
    }
    if !versions.stages.contains_key(token) {
        return Err(Error::UnknownToken {
            secret: secret_id.into(),
            token: token.into(),
        });
    }
    if versions.has_stage(token, AWSCURRENT) {
        Ok(TokenState::AlreadyCurrent)
    } else if versions.has_stage(token, AWSPENDING) {
        Ok(TokenState::Pending)
    } else {
        Err(Error::NotPending {
            secret: secret_id.into(),
            token: token.into(),
        })
    }
}

/// The login role the next version uses: the same one (single user) or the other of
/// `username` / `username_clone` (alternating users).
pub fn next_username(database: &Database, current: &str) -> String {
    match database.strategy {
        RotationStrategy::SingleUser => current.to_string(),
        RotationStrategy::AlternatingUsers if current == database.username => {
            clone_username(&database.username)
        }
        RotationStrategy::AlternatingUsers => database.username.clone(),
    }
}

/// The second login role of the alternating-users strategy.
pub fn clone_username(username: &str) -> String {
    format!("{username}_clone")
}

/// The login roles the strategy uses.
pub fn login_roles(database: &Database) -> Vec<String> {
    match database.strategy {
        RotationStrategy::SingleUser => vec![database.username.clone()],
        RotationStrategy::AlternatingUsers => {
            vec![
                database.username.clone(),
                clone_username(&database.username),
            ]
        }
    }
}

/// How finishSecret moves the labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishPlan {
    /// Move AWSCURRENT to the token (false: a retry finds it there already).
    pub move_current: bool,
    /// The version AWSCURRENT comes off.
    pub current_from: Option<String>,
    /// Take AWSPENDING off the token, so no stray label blocks the next rotation.
    pub clear_pending: bool,
}

/// What finishSecret must still do to the labels; empty when a retry finds it done.
pub fn plan_finish(versions: &SecretVersions, token: &str) -> FinishPlan {
    let current = versions.version_with(AWSCURRENT);
    FinishPlan {
        move_current: current != Some(token),
        current_from: current.filter(|v| *v != token).map(str::to_string),
        clear_pending: versions.has_stage(token, AWSPENDING),
    }
}

/// Name of testSecret's probe table, stable per version so a retried test cleans up.
pub fn probe_table(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("signoz_control_probe_{hex}")
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StepOutcome {
    pub step: RotationStep,
    pub secret: String,
    pub token: String,
    /// Human-readable actions, never a secret value.
    pub actions: Vec<String>,
}

/// Runs one rotation step against `spec`.
pub async fn run_rotation_step(
    ctx: &Context,
    spec: &PlatformSpec,
    request: &RotationRequest,
    deadline: Deadline,
) -> Result<StepOutcome, Error> {
    let secret = request.secret_id.as_str();
    let token = request.token.as_str();
    let versions = ctx.secrets.describe(secret).await?;
    let state = check_token(secret, versions.as_ref(), token)?;
    let versions = versions.expect("check_token rejects a missing secret");
    let mut outcome = StepOutcome {
        step: request.step,
        secret: versions.arn.clone(),
        token: token.into(),
        actions: Vec::new(),
    };
    if state == TokenState::AlreadyCurrent && request.step != RotationStep::FinishSecret {
        tracing::info!(step = %request.step, secret, token, "version is already AWSCURRENT; nothing to do");
        outcome.actions.push("already AWSCURRENT".into());
        return Ok(outcome);
    }
    match request.step {
        RotationStep::CreateSecret => create_secret(ctx, spec, request, &mut outcome).await?,
        RotationStep::SetSecret => set_secret(ctx, spec, request, deadline, &mut outcome).await?,
        RotationStep::TestSecret => test_secret(ctx, spec, request, deadline, &mut outcome).await?,
        RotationStep::FinishSecret => {
            finish_secret(ctx, spec, request, &versions, &mut outcome).await?
        }
    }
    Ok(outcome)
}

async fn read_app_secret(
    ctx: &Context,
    secret: &str,
    version: Version<'_>,
) -> Result<Option<AppSecret>, Error> {
    match ctx.secrets.read(secret, version).await? {
        Some(text) => AppSecret::parse(secret, &text).map(Some),
        None => Ok(None),
    }
}

async fn current_app_secret(ctx: &Context, secret: &str) -> Result<AppSecret, Error> {
    read_app_secret(ctx, secret, Version::Stage(AWSCURRENT))
        .await?
        .ok_or_else(|| Error::MalformedSecret {
            secret: secret.into(),
            reason: "AWSCURRENT has no value".into(),
        })
}

async fn pending_app_secret(ctx: &Context, request: &RotationRequest) -> Result<AppSecret, Error> {
    read_app_secret(
        ctx,
        &request.secret_id,
        Version::IdAtStage(&request.token, AWSPENDING),
    )
    .await?
    .ok_or_else(|| Error::MalformedSecret {
        secret: request.secret_id.clone(),
        reason: "the AWSPENDING version has no value: run createSecret first".into(),
    })
}

async fn create_secret(
    ctx: &Context,
    spec: &PlatformSpec,
    request: &RotationRequest,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let current = current_app_secret(ctx, &request.secret_id).await?;
    if read_app_secret(
        ctx,
        &request.secret_id,
        Version::IdAtStage(&request.token, AWSPENDING),
    )
    .await?
    .is_some()
    {
        outcome
            .actions
            .push("pending version already has a value".into());
        return Ok(());
    }
    let password = ctx
        .secrets
        .random_password(spec.database.password_length)
        .await?;
    if !password.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::SecretsManager {
            op: "GetRandomPassword",
            reason: "returned characters outside letters and digits".into(),
        });
    }
    let pending = AppSecret {
        username: next_username(&spec.database, &current.username),
        password: Password::new(password),
        ..current.clone()
    };
    ctx.secrets
        .put_pending(
            &request.secret_id,
            &request.token,
            &pending.to_json(),
            request.rotation_token.as_deref(),
        )
        .await?;
    tracing::info!(secret = %request.secret_id, token = %request.token,
        user_before = %current.username, user_after = %pending.username, "stored pending credentials");
    outcome
        .actions
        .push(format!("stored AWSPENDING for user {}", pending.username));
    Ok(())
}

async fn set_secret(
    ctx: &Context,
    spec: &PlatformSpec,
    request: &RotationRequest,
    deadline: Deadline,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let pending = pending_app_secret(ctx, request).await?;
    let tls = ctx.tls(spec, deadline)?;
    match spec.database.strategy {
        RotationStrategy::SingleUser => {
            set_single_user(ctx, &tls, request, &pending, outcome).await
        }
        RotationStrategy::AlternatingUsers => {
            let current = current_app_secret(ctx, &request.secret_id).await?;
            let master = connect_master(ctx, &tls, &spec.database, &current.endpoint()).await?;
            let logins = login_roles(&spec.database);
            let changes = ensure_access(&master, &spec.database, &logins, false).await?;
            outcome
                .actions
                .extend(changes.iter().map(ToString::to_string));
            postgres::lock_roles(&master, &[&pending.username]).await?;
            postgres::set_role_password(&master, &pending.username, &pending.password).await?;
            tracing::info!(user = %pending.username, token = %request.token, "set pending password (verifier) as master");
            outcome
                .actions
                .push(format!("set password of {} as master", pending.username));
            Ok(())
        }
    }
}

/// Brings the owner role, memberships and defaults to the spec, under the owner's
/// advisory lock. Runs on every setSecret, not only at creation.
pub(super) async fn ensure_access(
    master: &tokio_postgres::Client,
    database: &Database,
    logins: &[String],
    create_database: bool,
) -> Result<Vec<AccessChange>, Error> {
    postgres::lock_roles(master, &[&database.owner_role]).await?;
    let observed = postgres::observe_access(
        master,
        &database.database_name,
        &database.owner_role,
        logins,
    )
    .await?;
    let changes = plan_database_access(
        &observed,
        &DesiredAccess {
            database: &database.database_name,
            owner: &database.owner_role,
            logins,
            create_database,
        },
    );
    postgres::apply_access(master, &changes).await?;
    Ok(changes)
}

/// Single user: try pending (already set by an earlier attempt), then current, then
/// previous; whichever logs in changes its own password.
async fn set_single_user(
    ctx: &Context,
    tls: &PgTls,
    request: &RotationRequest,
    pending: &AppSecret,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let endpoint = pending.endpoint();
    match tls
        .connect(
            &endpoint,
            &pending.dbname,
            &pending.username,
            &pending.password,
        )
        .await
    {
        Ok(_) => {
            outcome
                .actions
                .push("database already has the pending password".into());
            return Ok(());
        }
        Err(Error::Authentication { .. }) => {}
        Err(e) => return Err(e),
    }
    for stage in [AWSCURRENT, AWSPREVIOUS] {
        let Some(old) = read_app_secret(ctx, &request.secret_id, Version::Stage(stage)).await?
        else {
            continue;
        };
        match tls
            .connect(&endpoint, &pending.dbname, &old.username, &old.password)
            .await
        {
            Ok(client) => {
                // The login defaults to SET ROLE owner (RESET would restore that default);
                // only the login itself may change its own password.
                client
                    .batch_execute("SET ROLE NONE")
                    .await
                    .map_err(|e| postgres::classify(&e, &old.username))?;
                postgres::lock_roles(&client, &[&pending.username]).await?;
                postgres::set_role_password(&client, &pending.username, &pending.password).await?;
                tracing::info!(user = %pending.username, logged_in_with = stage, token = %request.token,
                    "set pending password (verifier)");
                outcome.actions.push(format!(
                    "set password of {} logged in with {stage}",
                    pending.username
                ));
                return Ok(());
            }
            Err(Error::Authentication { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Authentication {
        user: pending.username.clone(),
    })
}

/// The pauses before re-reading an RDS-managed master secret and logging in again (it
/// rotates on its own); the retries stop earlier when the deadline would not fit one.
const MASTER_RETRY_PAUSES: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Reads the master secret and connects as the master to the maintenance database.
/// An RDS-managed secret that rotated under us is re-read and retried with backoff,
/// as long as the pause and another attempt fit before the deadline.
pub(super) async fn connect_master(
    ctx: &Context,
    tls: &PgTls,
    database: &Database,
    fallback: &Endpoint,
) -> Result<tokio_postgres::Client, Error> {
    let rds_managed = database.master_secret_arn.contains("rds!");
    let mut pauses = MASTER_RETRY_PAUSES.iter();
    loop {
        let master = read_master(ctx, database).await?;
        let endpoint = master.endpoint().unwrap_or_else(|| fallback.clone());
        match tls
            .connect(
                &endpoint,
                MAINTENANCE_DB,
                &master.username,
                &master.password,
            )
            .await
        {
            Err(Error::Authentication { user }) if rds_managed => {
                let Some(pause) = pauses.next() else {
                    return Err(Error::Authentication { user });
                };
                if let Some(remaining) = tls.remaining().filter(|r| !retry_fits(*pause, *r)) {
                    tracing::warn!(user = %user, remaining_ms = remaining.as_millis() as u64,
                        "master login refused and no time left to re-read the secret and retry");
                    return Err(Error::DeadlineNear {
                        op: "master login retry",
                        remaining_ms: remaining.as_millis() as u64,
                    });
                }
                tracing::warn!(user = %user, pause_ms = pause.as_millis() as u64,
                    "master login refused; the RDS-managed secret may have rotated: re-reading");
                tokio::time::sleep(*pause).await;
            }
            other => return other,
        }
    }
}

/// The master secret's current value.
pub(super) async fn read_master(ctx: &Context, database: &Database) -> Result<MasterSecret, Error> {
    let secret = &database.master_secret_arn;
    let text = ctx
        .secrets
        .read(secret, Version::Stage(AWSCURRENT))
        .await?
        .ok_or_else(|| Error::MalformedSecret {
            secret: secret.clone(),
            reason: "the master secret has no AWSCURRENT value".into(),
        })?;
    MasterSecret::parse(secret, &text)
}

async fn test_secret(
    ctx: &Context,
    spec: &PlatformSpec,
    request: &RotationRequest,
    deadline: Deadline,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let pending = pending_app_secret(ctx, request).await?;
    let tls = ctx.tls(spec, deadline)?;
    let client = tls
        .connect(
            &pending.endpoint(),
            &pending.dbname,
            &pending.username,
            &pending.password,
        )
        .await?;
    postgres::probe_signoz_work(
        &client,
        &pending.username,
        &spec.database.owner_role,
        &probe_table(&request.token),
    )
    .await?;
    tracing::info!(user = %pending.username, token = %request.token, "pending credentials did SigNoz's work");
    outcome.actions.push(format!(
        "{} created, wrote, read and dropped a table owned by {}",
        pending.username, spec.database.owner_role
    ));
    Ok(())
}

async fn finish_secret(
    ctx: &Context,
    spec: &PlatformSpec,
    request: &RotationRequest,
    versions: &SecretVersions,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let secret = request.secret_id.as_str();
    let token = request.token.as_str();
    let plan = plan_finish(versions, token);
    if plan.move_current {
        let from = plan.current_from.as_deref();
        ctx.secrets
            .move_stage(secret, AWSCURRENT, Some(token), from)
            .await?;
        tracing::info!(
            secret,
            current_before = from.unwrap_or("none"),
            current_after = token,
            "moved AWSCURRENT"
        );
        outcome.actions.push(format!("moved AWSCURRENT to {token}"));
    }
    if plan.clear_pending {
        ctx.secrets
            .move_stage(secret, AWSPENDING, None, Some(token))
            .await?;
        tracing::info!(secret, token, "removed AWSPENDING");
        outcome.actions.push("removed AWSPENDING".into());
    }
    let current = read_app_secret(ctx, secret, Version::IdAtStage(token, AWSCURRENT))
        .await?
        .ok_or_else(|| Error::MalformedSecret {
            secret: secret.into(),
            reason: "the finished version has no value".into(),
        })?;
    hand_off_to_cluster(ctx, spec, &current, token, outcome).await
}

/// Writes the DSN into the Kubernetes Secret and restarts the listed workloads once per
/// version (a retried finishSecret does not restart them again).
async fn hand_off_to_cluster(
    ctx: &Context,
    spec: &PlatformSpec,
    current: &AppSecret,
    token: &str,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let client = match &ctx.cluster {
        ClusterAccess::Disabled => {
            tracing::warn!("cluster hand-off disabled: the Kubernetes Secret was not updated");
            outcome.actions.push("cluster hand-off disabled".into());
            return Ok(());
        }
        ClusterAccess::Client(client) => client.clone(),
        ClusterAccess::FromSpec => crate::cluster::connect(spec, &ctx.sdk).await?,
    };
    let dsn = dsn::signoz_dsn(current, spec.database.tls.mode);
    let changed = crate::cluster::apply_database_secret(&client, spec, &dsn).await?;
    let restarted = crate::cluster::restart::restart_workloads_once(
        &client,
        spec,
        &crate::spec::chart::dsn_readers(spec),
        &format!("credentials-version-{token}"),
        true,
    )
    .await?;
    tracing::info!(secret = %spec.database.kubernetes_secret.name, data_changed = changed,
        restarted = ?restarted, user = %current.username, "handed the DSN to the cluster");
    outcome.actions.push(format!(
        "wrote DSN for {} to Secret {} (changed: {changed}); restarted {restarted:?}",
        current.username, spec.database.kubernetes_secret.name
    ));
    Ok(())
}
