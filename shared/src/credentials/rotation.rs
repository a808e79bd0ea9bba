//! The four rotation steps of Secrets Manager's contract. Decisions (token checks,
//! which user comes next, how to finish) are pure functions; the steps do the I/O.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::access::{AccessChange, DesiredAccess, plan_database_access, plan_object_access};
use super::deadline::{Deadline, retry_fits};
use super::postgres::{self, PgTls};
use super::secret_store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, SecretVersions, Version};
use super::values::{AppSecret, Endpoint, MasterSecret, Password};
use super::{ClusterAccess, Context, Error, dsn};
use crate::cluster::secret::{
    HandoffOutcome, VersionAuthority, apply_database_secret, read_database_secret,
};
use crate::events::{RotationRequest, RotationStep};
use crate::spec::{Database, PlatformSpec, RotationStrategy};

/// Maintenance database the master connects to for role DDL.
pub(super) const MAINTENANCE_DB: &str = "postgres";

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
    format!("{}{hex}", postgres::PROBE_TABLE_PREFIX)
}

/// The rotation is of the spec's app secret, and no other: setSecret acts as the master.
/// Checked on the request itself, before any call: `SecretId` (the ARN, in Secrets
/// Manager's rotation events) is the spec's name or its ARN (`...:secret:<name>-<6
/// characters>`, the suffix Secrets Manager adds to every secret's ARN).
pub fn check_secret_is_the_apps(database: &Database, secret_id: &str) -> Result<(), Error> {
    let wanted = database.app_secret_name.as_str();
    let by_arn = secret_id
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":secret:"))
        .and_then(|(_, name)| name.rsplit_once('-'))
        .is_some_and(|(name, suffix)| name == wanted && suffix.len() == 6);
    if secret_id == wanted || by_arn {
        return Ok(());
    }
    Err(Error::Refused {
        reason: format!(
            "secret {secret_id} is not the spec's app secret ({wanted}): this function rotates only that one"
        ),
    })
}

/// The current value names one of the strategy's logins on the spec's database.
pub fn check_current_target(
    database: &Database,
    secret: &str,
    current: &AppSecret,
) -> Result<(), Error> {
    let refuse = |reason: String| Err(Error::Refused { reason });
    if !login_roles(database).contains(&current.username) {
        return refuse(format!(
            "AWSCURRENT of {secret} names user {}, not one of the spec's logins {:?}",
            current.username,
            login_roles(database)
        ));
    }
    if current.dbname != database.database_name {
        return refuse(format!(
            "AWSCURRENT of {secret} names database {}, not the spec's {}",
            current.dbname, database.database_name
        ));
    }
    Ok(())
}

/// The pending value may differ from the current one only in what rotation changes: the
/// password, and the user the strategy picks next. Host, port and database stay, so the
/// master is never pointed at another server or role (no confused deputy).
pub fn check_pending_target(
    database: &Database,
    secret: &str,
    current: &AppSecret,
    pending: &AppSecret,
) -> Result<(), Error> {
    check_current_target(database, secret, current)?;
    let refuse = |field: &str, got: &str, want: &str| {
        Err(Error::Refused {
            reason: format!(
                "AWSPENDING of {secret} has {field} {got:?} where AWSCURRENT and the spec have {want:?}"
            ),
        })
    };
    if pending.host != current.host {
        return refuse("host", &pending.host, &current.host);
    }
    if pending.port != current.port {
        return refuse("port", &pending.port.to_string(), &current.port.to_string());
    }
    if pending.dbname != current.dbname {
        return refuse("dbname", &pending.dbname, &current.dbname);
    }
    let next = next_username(database, &current.username);
    if pending.username != next {
        return refuse("username", &pending.username, &next);
    }
    Ok(())
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
    check_secret_is_the_apps(&spec.database, secret)?;
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
            finish_secret(ctx, spec, request, &versions, deadline, &mut outcome).await?
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

/// AWSCURRENT and AWSPENDING, checked against each other and the spec.
async fn current_and_pending(
    ctx: &Context,
    spec: &PlatformSpec,
    request: &RotationRequest,
) -> Result<(AppSecret, AppSecret), Error> {
    let current = current_app_secret(ctx, &request.secret_id).await?;
    let pending = pending_app_secret(ctx, request).await?;
    check_pending_target(&spec.database, &request.secret_id, &current, &pending)?;
    Ok((current, pending))
}

async fn create_secret(
    ctx: &Context,
    spec: &PlatformSpec,
    request: &RotationRequest,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let current = current_app_secret(ctx, &request.secret_id).await?;
    check_current_target(&spec.database, &request.secret_id, &current)?;
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
    // Every other key of the secret (AWS's and the operator's) is carried over as is.
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
    let (current, pending) = current_and_pending(ctx, spec, request).await?;
    let tls = ctx.tls(spec, deadline)?;
    match spec.database.strategy {
        RotationStrategy::SingleUser => {
            set_single_user(ctx, &tls, request, &pending, outcome).await
        }
        RotationStrategy::AlternatingUsers => {
            let endpoint = current.endpoint();
            let master =
                connect_master(ctx, &tls, &spec.database, &endpoint, MAINTENANCE_DB).await?;
            let logins = login_roles(&spec.database);
            let changes = ensure_access(
                ctx,
                &tls,
                &master,
                &spec.database,
                &endpoint,
                &logins,
                false,
            )
            .await?;
            outcome
                .actions
                .extend(changes.iter().map(ToString::to_string));
            postgres::lock_roles(&master, &[&pending.username]).await?;
            if logs_in(&tls, &pending).await? {
                outcome
                    .actions
                    .push("database already has the pending password".into());
                return Ok(());
            }
            ensure_not_in_use(ctx, spec, &tls, &master, &pending.username).await?;
            postgres::set_role_password(&master, &pending.username, &pending.password).await?;
            tracing::info!(user = %pending.username, token = %request.token, "set pending password (verifier) as master");
            outcome
                .actions
                .push(format!("set password of {} as master", pending.username));
            Ok(())
        }
    }
}

/// Whether `secret` logs in; only a refused password is `false`.
async fn logs_in(tls: &PgTls, secret: &AppSecret) -> Result<bool, Error> {
    match tls
        .connect(
            &secret.endpoint(),
            &secret.dbname,
            &secret.username,
            &secret.password,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(Error::Authentication { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// How long setSecret waits for sessions of the user to end (a pod shutting down, a
/// connection closing) before it refuses.
const SESSION_GRACE: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
];

/// Alternating users: the user whose password changes must be out of use. No session of
/// it may be alive (`pg_stat_activity`), and the cluster's Secret must no longer name it
/// (a failed or skipped hand-off leaves the pods on it). Refuses with a retryable error
/// naming the check.
async fn ensure_not_in_use(
    ctx: &Context,
    spec: &PlatformSpec,
    tls: &PgTls,
    master: &tokio_postgres::Client,
    user: &str,
) -> Result<(), Error> {
    let mut pauses = SESSION_GRACE.iter();
    loop {
        let sessions = postgres::sessions_of(master, user).await?;
        if sessions.count == 0 {
            break;
        }
        let pause = pauses
            .next()
            .filter(|p| tls.remaining().is_none_or(|r| retry_fits(**p, r)));
        let Some(pause) = pause else {
            return Err(Error::InUse {
                user: user.into(),
                check: "pg_stat_activity",
                detail: format!(
                    "{} session(s) of it are alive{}: its password changes only once nothing uses it",
                    sessions.count,
                    if sessions.applications.is_empty() {
                        String::new()
                    } else {
                        format!(" (application_name {})", sessions.applications)
                    }
                ),
            });
        };
        tokio::time::sleep(*pause).await;
    }
    let Some(client) = cluster_client(ctx, spec).await? else {
        tracing::warn!(
            user,
            "cluster hand-off disabled: the Secret was not checked for this user"
        );
        return Ok(());
    };
    let secret = &spec.database.kubernetes_secret.name;
    if let Some(live) = read_database_secret(&client, spec).await?
        && live.user.as_deref() == Some(user)
    {
        return Err(Error::InUse {
            user: user.into(),
            check: "cluster Secret",
            detail: format!(
                "Secret {}/{secret} still hands its DSN to SigNoz (version {}): the last hand-off did not complete; a retried finishSecret or sync-cluster moves it to AWSCURRENT",
                spec.cluster.namespace,
                live.version_id.as_deref().unwrap_or("unknown")
            ),
        });
    }
    Ok(())
}

/// Brings the owner role, memberships and defaults to the spec, under the owner's
/// advisory lock, then (connected to SigNoz's database) hands every object there to the
/// owner and takes `PUBLIC`'s rights away. Runs on every setSecret, not only at creation.
pub(super) async fn ensure_access(
    ctx: &Context,
    tls: &PgTls,
    master: &tokio_postgres::Client,
    database: &Database,
    endpoint: &Endpoint,
    logins: &[String],
    create_database: bool,
) -> Result<Vec<AccessChange>, Error> {
    postgres::lock_roles(master, &[&database.owner_role]).await?;
    let master_user: String = master
        .query_one("SELECT current_user::text", &[])
        .await
        .map_err(|e| postgres::classify(&e, "master"))?
        .get(0);
    let observed = postgres::observe_access(
        master,
        &database.database_name,
        &database.owner_role,
        logins,
    )
    .await?;
    let desired = DesiredAccess {
        database: &database.database_name,
        owner: &database.owner_role,
        logins,
        create_database,
        master: &master_user,
    };
    let mut changes = plan_database_access(&observed, &desired).map_err(|r| Error::Refused {
        reason: format!("role {}: {}", r.role, r.reason),
    })?;
    postgres::apply_access(master, &changes).await?;
    if observed.database_owner.is_none() && !create_database {
        return Ok(changes);
    }
    let inside = connect_master(ctx, tls, database, endpoint, &database.database_name).await?;
    let objects = postgres::observe_objects(&inside, &database.owner_role).await?;
    let (inner, stuck) = plan_object_access(&objects, &desired, &observed.logins);
    if !stuck.is_empty() {
        let named: Vec<String> = stuck
            .iter()
            .map(|o| {
                format!(
                    "{} {} (owned by {})",
                    o.kind.keyword().to_lowercase(),
                    o.name,
                    o.owner
                )
            })
            .collect();
        return Err(Error::Refused {
            reason: format!(
                "objects in database {} belong to roles the master cannot act as, so SigNoz's roles could not use them: {}; grant those roles to the master or reassign the objects to {}",
                database.database_name,
                named.join(", "),
                database.owner_role
            ),
        });
    }
    postgres::apply_access(&inside, &inner).await?;
    changes.extend(inner);
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
    if logs_in(tls, pending).await? {
        outcome
            .actions
            .push("database already has the pending password".into());
        return Ok(());
    }
    for stage in [AWSCURRENT, AWSPREVIOUS] {
        let Some(old) = read_app_secret(ctx, &request.secret_id, Version::Stage(stage)).await?
        else {
            continue;
        };
        if old.username != pending.username {
            continue;
        }
        if change_own_password(tls, &old, &pending.password).await? {
            tracing::info!(user = %pending.username, logged_in_with = stage, token = %request.token,
                "set pending password (verifier)");
            outcome.actions.push(format!(
                "set password of {} logged in with {stage}",
                pending.username
            ));
            return Ok(());
        }
    }
    Err(Error::Authentication {
        user: pending.username.clone(),
    })
}

/// Logs in as `with` and sets that same user's password to `password`; `false` when the
/// database refuses `with`'s password.
async fn change_own_password(
    tls: &PgTls,
    with: &AppSecret,
    password: &Password,
) -> Result<bool, Error> {
    let client = match tls
        .connect(
            &with.endpoint(),
            &with.dbname,
            &with.username,
            &with.password,
        )
        .await
    {
        Ok(client) => client,
        Err(Error::Authentication { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    // The login defaults to SET ROLE owner (RESET would restore that default); only the
    // login itself may change its own password.
    client
        .batch_execute("SET ROLE NONE")
        .await
        .map_err(|e| postgres::classify(&e, &with.username))?;
    postgres::lock_roles(&client, &[&with.username]).await?;
    postgres::set_role_password(&client, &with.username, password).await?;
    Ok(true)
}

/// Single user, after a failure past setSecret: puts the database back on AWSCURRENT's
/// password when it holds the pending one, so AWSCURRENT always logs in (the pods hold
/// it too). Logs what it did; a failure to restore is logged and the caller's error
/// stands.
async fn restore_current_password(
    ctx: &Context,
    tls: &PgTls,
    request: &RotationRequest,
    pending: &AppSecret,
) {
    let restored = async {
        let current = current_app_secret(ctx, &request.secret_id).await?;
        if current.username != pending.username || logs_in(tls, &current).await? {
            return Ok(false);
        }
        change_own_password(tls, pending, &current.password).await
    }
    .await;
    match restored {
        Ok(true) => tracing::warn!(user = %pending.username, token = %request.token,
            "rotation failed after setSecret: restored the AWSCURRENT password"),
        Ok(false) => {}
        Err(e) => tracing::error!(user = %pending.username, token = %request.token, error = %e,
            "rotation failed after setSecret and the AWSCURRENT password could not be restored"),
    }
}

/// The pauses before re-reading an RDS-managed master secret and logging in again (it
/// rotates on its own); the retries stop earlier when the deadline would not fit one.
const MASTER_RETRY_PAUSES: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Reads the master secret and connects as the master to `dbname`. An RDS-managed secret
/// (`rds!...`) rotates on its own, setting the database to AWSPENDING before moving
/// AWSCURRENT: a refused password makes it try AWSPENDING too, then re-read both with
/// backoff, as long as the pause and another attempt fit before the deadline.
pub(super) async fn connect_master(
    ctx: &Context,
    tls: &PgTls,
    database: &Database,
    fallback: &Endpoint,
    dbname: &str,
) -> Result<tokio_postgres::Client, Error> {
    let rds_managed = database.master_secret_arn.contains("rds!");
    let mut pauses = MASTER_RETRY_PAUSES.iter();
    let mut stages: &[&str] = &[AWSCURRENT];
    loop {
        let mut refused = None;
        for stage in stages {
            let master = if *stage == AWSCURRENT {
                read_master(ctx, database).await?
            } else {
                match read_master_at(ctx, database, stage).await? {
                    Some(master) => master,
                    None => continue,
                }
            };
            let endpoint = master.endpoint().unwrap_or_else(|| fallback.clone());
            match tls
                .connect(&endpoint, dbname, &master.username, &master.password)
                .await
            {
                Err(Error::Authentication { user }) if rds_managed => refused = Some(user),
                other => {
                    if *stage != AWSCURRENT {
                        tracing::warn!(
                            stage,
                            "master logged in with the RDS-managed secret's AWSPENDING: RDS is rotating it"
                        );
                    }
                    return other;
                }
            }
        }
        let user = refused.unwrap_or_else(|| "master".into());
        if stages.len() == 1 {
            // RDS may be between setting the new password and moving AWSCURRENT.
            stages = &[AWSCURRENT, AWSPENDING];
            continue;
        }
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
}

/// The master secret's current value.
pub(super) async fn read_master(ctx: &Context, database: &Database) -> Result<MasterSecret, Error> {
    read_master_at(ctx, database, AWSCURRENT)
        .await?
        .ok_or_else(|| Error::MalformedSecret {
            secret: database.master_secret_arn.clone(),
            reason: "the master secret has no AWSCURRENT value".into(),
        })
}

/// The master secret's value at `stage`, if that stage exists.
async fn read_master_at(
    ctx: &Context,
    database: &Database,
    stage: &str,
) -> Result<Option<MasterSecret>, Error> {
    let secret = &database.master_secret_arn;
    match ctx.secrets.read(secret, Version::Stage(stage)).await? {
        Some(text) => MasterSecret::parse(secret, &text).map(Some),
        None => Ok(None),
    }
}

async fn test_secret(
    ctx: &Context,
    spec: &PlatformSpec,
    request: &RotationRequest,
    deadline: Deadline,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let (_, pending) = current_and_pending(ctx, spec, request).await?;
    let tls = ctx.tls(spec, deadline)?;
    let tested = async {
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
        .await
    }
    .await;
    if let Err(e) = tested {
        if spec.database.strategy == RotationStrategy::SingleUser {
            restore_current_password(ctx, &tls, request, &pending).await;
        }
        return Err(e);
    }
    tracing::info!(user = %pending.username, token = %request.token, "pending credentials did SigNoz's work");
    outcome.actions.push(format!(
        "{} read and wrote SigNoz's tables and {}, and created a table owned by {}",
        pending.username,
        postgres::PROBE_LEDGER,
        spec.database.owner_role
    ));
    Ok(())
}

async fn finish_secret(
    ctx: &Context,
    spec: &PlatformSpec,
    request: &RotationRequest,
    versions: &SecretVersions,
    deadline: Deadline,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let secret = request.secret_id.as_str();
    let token = request.token.as_str();
    let plan = plan_finish(versions, token);
    if plan.move_current {
        let (_, pending) = current_and_pending(ctx, spec, request).await?;
        let tls = ctx.tls(spec, deadline)?;
        // AWSCURRENT moves only to credentials the database accepts.
        if !logs_in(&tls, &pending).await? {
            tracing::error!(user = %pending.username, token, "AWSPENDING does not log in: AWSCURRENT not moved");
            if spec.database.strategy == RotationStrategy::SingleUser {
                restore_current_password(ctx, &tls, request, &pending).await;
            }
            return Err(Error::Authentication {
                user: pending.username,
            });
        }
        let from = plan.current_from.as_deref();
        if let Err(e) = ctx
            .secrets
            .move_stage(secret, AWSCURRENT, Some(token), from)
            .await
        {
            // The move may have happened with its answer lost: finish forward if so.
            let moved = ctx
                .secrets
                .describe(secret)
                .await
                .ok()
                .flatten()
                .is_some_and(|v| v.has_stage(token, AWSCURRENT));
            if !moved {
                if spec.database.strategy == RotationStrategy::SingleUser {
                    restore_current_password(ctx, &tls, request, &pending).await;
                }
                return Err(e);
            }
        }
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
    hand_off_to_cluster(ctx, spec, &current, request, outcome).await
}

/// The client finishSecret and setSecret reach the cluster with; `None` when the
/// hand-off is disabled.
async fn cluster_client(ctx: &Context, spec: &PlatformSpec) -> Result<Option<kube::Client>, Error> {
    Ok(match &ctx.cluster {
        ClusterAccess::Disabled => None,
        ClusterAccess::Client(client) => Some(client.clone()),
        ClusterAccess::FromSpec(cluster) => Some(cluster.client(spec, &ctx.sdk).await?),
    })
}

/// Writes the DSN and the CA bundle into the Kubernetes Secret (never over a newer
/// version) and restarts the listed workloads once per version (a retried finishSecret
/// does not restart them again).
async fn hand_off_to_cluster(
    ctx: &Context,
    spec: &PlatformSpec,
    current: &AppSecret,
    request: &RotationRequest,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let Some(client) = cluster_client(ctx, spec).await? else {
        tracing::warn!("cluster hand-off disabled: the Kubernetes Secret was not updated");
        outcome.actions.push("cluster hand-off disabled".into());
        return Ok(());
    };
    let token = &request.token;
    let authority = VersionAuthority {
        secrets: ctx.secrets.client().clone(),
        secret_id: request.secret_id.clone(),
    };
    let source = dsn::handoff(current, &spec.database, token, Some(authority))?;
    let secret = &spec.database.kubernetes_secret.name;
    let changed = match apply_database_secret(&client, spec, &source, false).await? {
        HandoffOutcome::Stale { live_version } => {
            outcome.actions.push(format!(
                "Secret {secret} already holds version {live_version}, newer than {token}: left alone, no restart"
            ));
            return Ok(());
        }
        applied => applied.data_changed(),
    };
    let restarted = crate::cluster::restart::restart_workloads_once(
        &client,
        spec,
        &crate::spec::chart::dsn_readers(spec),
        &format!("credentials-version-{token}"),
        true,
    )
    .await?;
    let restarted = restarted.join(", ");
    tracing::info!(secret = %secret, data_changed = changed,
        restarted = %restarted, user = %current.username, "handed the DSN to the cluster");
    outcome.actions.push(format!(
        "wrote DSN for {} to Secret {secret} (changed: {changed}); restarted [{restarted}]",
        current.username
    ));
    Ok(())
}
