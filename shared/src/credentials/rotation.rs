//! The four rotation steps of Secrets Manager's contract. Decisions (token checks,
//! which user comes next, how to finish) are pure functions; the steps do the I/O.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::access::{
    AccessChange, DesiredAccess, ObservedAccess, ObservedObjects, plan_database_access,
    plan_object_access,
};
use super::deadline::{Deadline, retry_fits};
use super::postgres::{self, OpenedTo, PgTls};
use super::secret_store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, SecretVersions, Version};
use super::values::{AppSecret, Endpoint, MasterSecret, Password};
use super::{ClusterAccess, Context, Error, carried, dsn};
use crate::cluster::secret::{
    HandoffOutcome, LiveHandoff, VersionAuthority, apply_database_secret_over,
    read_database_secret, read_database_secret_object,
};
use crate::events::{RotationRequest, RotationStep};
use crate::spec::{Database, DatabaseTls, PlatformSpec, RotationStrategy};

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

/// What a step reads before it acts, asked for together (none depends on another): the
/// secret's stages, AWSCURRENT, the token's AWSPENDING value, and what the step needs of
/// the spec it expects to act on (setSecret's master secret, the early logins, the
/// cluster view). Nothing is judged before the token checks; what was asked for another
/// spec than the one the step acts on is asked for again.
pub struct StepReads {
    versions: Result<Option<SecretVersions>, Error>,
    current: Result<Option<AppSecret>, Error>,
    pending: Result<Option<AppSecret>, Error>,
    /// The master secret's AWSCURRENT value, read from this ARN.
    master: Option<(String, Result<MasterSecret, Error>)>,
    /// testSecret's and finishSecret's login as the pending user, made with a value this
    /// process already holds of the token's version.
    early_login: Option<EarlyLogin>,
    /// finishSecret's read of the cluster, under this spec.
    cluster_view: Option<(PlatformSpec, Result<Option<ClusterView>, Error>)>,
    /// setSecret's TLS sessions to the database, opened before or beside the reads.
    early_sessions: Option<EarlySessions>,
}

/// A login made before the step's own reads answered; used only when the step finds
/// the same credentials and the same TLS set-up.
struct EarlyLogin {
    tls: DatabaseTls,
    pending: AppSecret,
    client: Result<tokio_postgres::Client, Error>,
}

impl EarlyLogin {
    /// The login, when it was made as `pending` under `spec`'s TLS set-up.
    fn of(
        early: Option<EarlyLogin>,
        spec: &PlatformSpec,
        pending: &AppSecret,
    ) -> Option<Result<tokio_postgres::Client, Error>> {
        early
            .filter(|e| e.tls == spec.database.tls && e.pending == *pending)
            .map(|e| e.client)
    }
}

/// setSecret's TLS sessions to the database: those createSecret opened for it
/// ([`carried`]), the rest opened while the step's reads are out. Asking for TLS and the
/// handshake need no credentials, and a warm process knows the endpoint from the token's
/// pending value. Used only under the same TLS set-up, each by a login to the endpoint it
/// was opened to.
struct EarlySessions {
    tls: DatabaseTls,
    /// The set-up they were opened with, kept for the logins on them.
    opened_with: PgTls,
    sessions: Vec<OpenedTo>,
}

impl EarlySessions {
    /// How many setSecret opens: alternating users log in as the master twice (the
    /// maintenance database, SigNoz's) and try the pending password; a single user logs
    /// in as itself and tries the pending password.
    fn for_set_secret(strategy: RotationStrategy) -> usize {
        match strategy {
            RotationStrategy::AlternatingUsers => 3,
            RotationStrategy::SingleUser => 2,
        }
    }

    /// The TLS set-up for `spec`'s database: the one the sessions were opened with, logging
    /// in on them, when it is `spec`'s; otherwise a new one.
    fn hand_to(
        early: Option<EarlySessions>,
        ctx: &Context,
        spec: &PlatformSpec,
        deadline: Deadline,
    ) -> Result<PgTls, Error> {
        match early.filter(|e| e.tls == spec.database.tls) {
            Some(e) => Ok(e.opened_with.with_opened(e.sessions)),
            None => ctx.tls(spec, deadline),
        }
    }
}

/// Values of versions this process wrote or read, by secret and version id. A version's
/// value never changes (Secrets Manager refuses another value for the same
/// `ClientRequestToken`), so a later step may log in with it before its own read of the
/// version answers; the step still reads it and acts only when both agree.
static VERSIONS: std::sync::Mutex<Vec<(String, String, AppSecret)>> =
    std::sync::Mutex::new(Vec::new());

/// Versions kept: the pending ones of the rotations in progress.
const VERSIONS_KEPT: usize = 4;

fn remember_version(secret: &str, version: &str, value: &AppSecret) {
    let mut kept = VERSIONS.lock().unwrap_or_else(|e| e.into_inner());
    kept.retain(|(s, v, _)| !(s == secret && v == version));
    kept.push((secret.into(), version.into(), value.clone()));
    let excess = kept.len().saturating_sub(VERSIONS_KEPT);
    kept.drain(..excess);
}

fn remembered_version(secret: &str, version: &str) -> Option<AppSecret> {
    let kept = VERSIONS.lock().unwrap_or_else(|e| e.into_inner());
    kept.iter()
        .find(|(s, v, _)| s == secret && v == version)
        .map(|(_, _, value)| value.clone())
}

/// The reads every step starts with, at once. `expected` is the spec this process last
/// loaded, when the request names its app secret: its step-specific reads go out too.
pub async fn read_step(
    ctx: &Context,
    request: &RotationRequest,
    expected: Option<&PlatformSpec>,
    deadline: Deadline,
) -> StepReads {
    let secret = request.secret_id.as_str();
    // Warm: the spec, the sessions the step before opened for this one, and the token's
    // pending value, which names the database; this step opens the next one's sessions.
    let warm = expected.and_then(|spec| {
        let carried = carried::take(request, &spec.database.tls);
        let pending = remembered_version(secret, &request.token)?;
        let tls = ctx.tls(spec, deadline).ok()?;
        let next = match request.step {
            RotationStep::SetSecret => Some(RotationStep::TestSecret),
            RotationStep::TestSecret => Some(RotationStep::FinishSecret),
            _ => None,
        };
        if let Some(next) = next {
            carried::carry(
                request,
                next,
                &spec.database.tls,
                &tls,
                &pending.endpoint(),
                1,
            );
        }
        Some((spec, carried, pending, tls))
    });
    let (early_login, early_sessions) = match warm {
        Some((spec, carried, pending, tls)) => match request.step {
            RotationStep::TestSecret | RotationStep::FinishSecret => (
                Some((spec.database.tls.clone(), carried, pending, tls)),
                None,
            ),
            RotationStep::SetSecret => {
                let count = EarlySessions::for_set_secret(spec.database.strategy);
                let opening = (
                    spec.database.tls.clone(),
                    carried,
                    pending.endpoint(),
                    tls,
                    count,
                );
                (None, Some(opening))
            }
            RotationStep::CreateSecret => (None, None),
        },
        None => (None, None),
    };
    let view_spec = expected.filter(|_| request.step == RotationStep::FinishSecret);
    let expected = expected.map(|s| &s.database);
    let master_arn = expected
        .filter(|d| {
            request.step == RotationStep::SetSecret
                && d.strategy == RotationStrategy::AlternatingUsers
        })
        .map(|d| d.master_secret_arn.as_str());
    let (versions, current, pending, master, early_login, cluster_view, early_sessions) = tokio::join!(
        ctx.secrets.describe(secret),
        read_app_secret(ctx, secret, Version::Stage(AWSCURRENT)),
        read_app_secret(ctx, secret, Version::IdAtStage(&request.token, AWSPENDING)),
        async {
            match master_arn {
                Some(arn) => Some((arn.to_string(), read_master_from(ctx, arn).await)),
                None => None,
            }
        },
        async {
            let (tls_spec, carried, pending, tls) = early_login?;
            let tls = tls.with_opened(carried.await);
            let client = login_as(&tls, &pending).await;
            Some(EarlyLogin {
                tls: tls_spec,
                pending,
                client,
            })
        },
        async {
            let spec = view_spec?;
            Some((spec.clone(), read_cluster_view(ctx, spec).await))
        },
        async {
            let (tls_spec, carried, endpoint, tls, count) = early_sessions?;
            let mut sessions = carried.await;
            let more = count.saturating_sub(sessions.len());
            let opened = (0..more).map(|_| async { (endpoint.clone(), tls.open(&endpoint).await) });
            sessions.extend(futures_util::future::join_all(opened).await);
            Some(EarlySessions {
                tls: tls_spec,
                opened_with: tls,
                sessions,
            })
        },
    );
    if let Ok(Some(pending)) = &pending {
        remember_version(secret, &request.token, pending);
    }
    StepReads {
        versions,
        current,
        pending,
        master,
        early_login,
        cluster_view,
        early_sessions,
    }
}

/// Runs one rotation step against `spec`.
pub async fn run_rotation_step(
    ctx: &Context,
    spec: &PlatformSpec,
    request: &RotationRequest,
    deadline: Deadline,
) -> Result<StepOutcome, Error> {
    check_secret_is_the_apps(&spec.database, &request.secret_id)?;
    let reads = read_step(ctx, request, Some(spec), deadline).await;
    run_rotation_step_after(ctx, spec, request, reads, deadline).await
}

/// Runs one rotation step against `spec`, on what [`read_step`] read.
pub async fn run_rotation_step_after(
    ctx: &Context,
    spec: &PlatformSpec,
    request: &RotationRequest,
    reads: StepReads,
    deadline: Deadline,
) -> Result<StepOutcome, Error> {
    let secret = request.secret_id.as_str();
    let token = request.token.as_str();
    check_secret_is_the_apps(&spec.database, secret)?;
    let StepReads {
        versions,
        current,
        pending,
        master,
        early_login,
        cluster_view,
        early_sessions,
    } = reads;
    let versions = versions?;
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
    let read = Read { current, pending };
    match request.step {
        RotationStep::CreateSecret => {
            create_secret(ctx, spec, request, read, deadline, &mut outcome).await?
        }
        RotationStep::SetSecret => {
            let master = master
                .filter(|(arn, _)| *arn == spec.database.master_secret_arn)
                .map(|(_, m)| m);
            let tls = EarlySessions::hand_to(early_sessions, ctx, spec, deadline)?;
            set_secret(ctx, spec, request, read, master, tls, &mut outcome).await?
        }
        RotationStep::TestSecret => {
            test_secret(
                ctx,
                spec,
                request,
                read,
                early_login,
                deadline,
                &mut outcome,
            )
            .await?
        }
        RotationStep::FinishSecret => {
            let cluster_view = cluster_view
                .filter(|(expected, _)| expected == spec)
                .map(|(_, view)| view);
            finish_secret(
                ctx,
                spec,
                request,
                read,
                early_login,
                cluster_view,
                &versions,
                deadline,
                &mut outcome,
            )
            .await?
        }
    }
    Ok(outcome)
}

/// AWSCURRENT and the token's AWSPENDING, as [`read_step`] read them.
struct Read {
    current: Result<Option<AppSecret>, Error>,
    pending: Result<Option<AppSecret>, Error>,
}

/// AWSCURRENT's value, which a secret being rotated must have.
fn current_value(
    current: Result<Option<AppSecret>, Error>,
    secret: &str,
) -> Result<AppSecret, Error> {
    current?.ok_or_else(|| Error::MalformedSecret {
        secret: secret.into(),
        reason: "AWSCURRENT has no value".into(),
    })
}

impl Read {
    /// AWSCURRENT and AWSPENDING, checked against each other and the spec.
    fn current_and_pending(
        self,
        spec: &PlatformSpec,
        request: &RotationRequest,
    ) -> Result<(AppSecret, AppSecret), Error> {
        let current = current_value(self.current, &request.secret_id)?;
        let pending = self.pending?.ok_or_else(|| Error::MalformedSecret {
            secret: request.secret_id.clone(),
            reason: "the AWSPENDING version has no value: run createSecret first".into(),
        })?;
        check_pending_target(&spec.database, &request.secret_id, &current, &pending)?;
        Ok((current, pending))
    }
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

async fn create_secret(
    ctx: &Context,
    spec: &PlatformSpec,
    request: &RotationRequest,
    read: Read,
    deadline: Deadline,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let current = current_value(read.current, &request.secret_id)?;
    check_current_target(&spec.database, &request.secret_id, &current)?;
    if read.pending?.is_some() {
        outcome
            .actions
            .push("pending version already has a value".into());
        return Ok(());
    }
    // Every other key of the secret (AWS's and the operator's) is carried over as is.
    let pending = AppSecret {
        username: next_username(&spec.database, &current.username),
        password: Password::generate(spec.database.password_length)?,
        ..current.clone()
    };
    if let Ok(tls) = ctx.tls(spec, deadline) {
        let count = EarlySessions::for_set_secret(spec.database.strategy);
        let (next, endpoint) = (RotationStep::SetSecret, pending.endpoint());
        carried::carry(request, next, &spec.database.tls, &tls, &endpoint, count);
    }
    ctx.secrets
        .put_pending(
            &request.secret_id,
            &request.token,
            &pending.to_json(),
            request.rotation_token.as_deref(),
        )
        .await?;
    remember_version(&request.secret_id, &request.token, &pending);
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
    read: Read,
    master: Option<Result<MasterSecret, Error>>,
    tls: PgTls,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let (current, pending) = read.current_and_pending(spec, request)?;
    match spec.database.strategy {
        RotationStrategy::SingleUser => {
            set_single_user(ctx, &tls, request, &current, &pending, outcome).await
        }
        RotationStrategy::AlternatingUsers => {
            let db = &spec.database;
            let endpoint = current.endpoint();
            // What waits for what (the rest goes at once): the master secret (read with
            // the step's first reads when warm) before the master's logins; the logins
            // before the locks; the locks before the observation they guard and the
            // changes it calls for; every check (access, sessions, the cluster's Secret)
            // before the password changes, which takes two round trips itself: the COPY
            // that carries the verifier starts, then its data and the ALTER ROLE go.
            let master = match master {
                Some(master) => Some(master?),
                None => None,
            };
            let logins = login_roles(db);
            // Independent of each other, so at once: the master's logins to the maintenance
            // database (roles) and to SigNoz's (its objects; refused while it does not
            // exist), whether the pending password already works, and who the cluster's
            // Secret hands the DSN to.
            let (on_maintenance, inside, pending_logs_in, handed_to) = tokio::join!(
                connect_master(ctx, &tls, db, &endpoint, MAINTENANCE_DB, master.clone()),
                connect_master(ctx, &tls, db, &endpoint, &db.database_name, master),
                logs_in(&tls, &pending),
                cluster_secret(ctx, spec),
            );
            let master = on_maintenance?;
            // One round trip on each connection: the locks (owner, then the pending user),
            // the observation under them, the pending user's sessions, and the password
            // change made ready; SigNoz's objects on the other connection meanwhile.
            let lock = [db.owner_role.as_str(), pending.username.as_str()];
            let (access, sessions, change) = tokio::join!(
                biased;
                observe_access_locked(
                    &master,
                    inside.as_ref().ok(),
                    db,
                    &logins,
                    &lock,
                ),
                postgres::sessions_of(&master, &pending.username),
                postgres::prepare_password_change(&master, &pending.username),
            );
            let inside = Inside::Connected(inside);
            let changes = ensure_access(&master, inside, db, &logins, false, access?).await?;
            outcome
                .actions
                .extend(changes.iter().map(ToString::to_string));
            if pending_logs_in? {
                outcome
                    .actions
                    .push("database already has the pending password".into());
                return Ok(());
            }
            ensure_not_in_use(spec, &tls, &master, &pending.username, sessions?, handed_to).await?;
            change?.apply(&pending.password).await?;
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
    refused_is_false(login_as(tls, secret).await)
}

/// A login's result as whether it logged in; only a refused password is `false`.
fn refused_is_false(login: Result<tokio_postgres::Client, Error>) -> Result<bool, Error> {
    Ok(refused_is_none(login)?.is_some())
}

/// How long setSecret waits for sessions of the user to end (a pod shutting down, a
/// connection closing) before it refuses.
const SESSION_GRACE: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
];

/// Who the cluster's Secret hands the DSN to; `None` when the hand-off is disabled.
async fn cluster_secret(
    ctx: &Context,
    spec: &PlatformSpec,
) -> Result<Option<Option<LiveHandoff>>, Error> {
    let Some(client) = cluster_client(ctx, spec).await? else {
        return Ok(None);
    };
    Ok(Some(read_database_secret(&client, spec).await?))
}

/// Alternating users: the user whose password changes must be out of use. No session of
/// it may be alive (`pg_stat_activity`; `sessions` is the first look), and the cluster's
/// Secret must no longer name it (a failed or skipped hand-off leaves the pods on it).
/// Refuses with a retryable error naming the check.
async fn ensure_not_in_use(
    spec: &PlatformSpec,
    tls: &PgTls,
    master: &tokio_postgres::Client,
    user: &str,
    mut sessions: postgres::Sessions,
    handed_to: Result<Option<Option<LiveHandoff>>, Error>,
) -> Result<(), Error> {
    let mut pauses = SESSION_GRACE.iter();
    while sessions.count > 0 {
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
        sessions = postgres::sessions_of(master, user).await?;
    }
    let Some(live) = handed_to? else {
        tracing::warn!(
            user,
            "cluster hand-off disabled: the Secret was not checked for this user"
        );
        return Ok(());
    };
    let secret = &spec.database.kubernetes_secret.name;
    if let Some(live) = live
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

/// What the server has of SigNoz's access, read under the owner's advisory lock.
pub(super) struct AccessSeen {
    master_user: String,
    observed: ObservedAccess,
    /// SigNoz's objects, read at the same time on the connection inside its database.
    objects: Option<Result<ObservedObjects, Error>>,
}

/// Takes the advisory locks of `lock` (the owner's first) and reads, under them, the
/// roles and database on `master`: one round trip. SigNoz's objects are read on `inside`
/// meanwhile (advisory locks are per database, so that read does not wait for them).
pub(super) async fn observe_access_locked(
    master: &tokio_postgres::Client,
    inside: Option<&tokio_postgres::Client>,
    database: &Database,
    logins: &[String],
    lock: &[&str],
) -> Result<AccessSeen, Error> {
    let (seen, objects) = tokio::join!(
        postgres::lock_and_observe_access(
            master,
            lock,
            &database.database_name,
            &database.owner_role,
            logins,
        ),
        async {
            match inside {
                Some(inside) => Some(postgres::observe_objects(inside, &database.owner_role).await),
                None => None,
            }
        },
    );
    let (master_user, observed) = seen?;
    Ok(AccessSeen {
        master_user,
        observed,
        objects,
    })
}

/// How [`ensure_access`] reaches SigNoz's database.
pub(super) enum Inside<'a> {
    /// A login made beforehand (refused while the database does not exist).
    Connected(Result<tokio_postgres::Client, Error>),
    /// Log in when needed (after the database is created).
    Connect {
        ctx: &'a Context,
        tls: &'a PgTls,
        endpoint: &'a Endpoint,
    },
}

/// Brings the owner role, memberships and defaults to the spec, under the owner's
/// advisory lock (held by `master` since [`observe_access_locked`]), then (connected to
/// SigNoz's database) hands every object there to the owner and takes `PUBLIC`'s rights
/// away. Runs on every setSecret, not only at creation.
pub(super) async fn ensure_access(
    master: &tokio_postgres::Client,
    inside: Inside<'_>,
    database: &Database,
    logins: &[String],
    create_database: bool,
    seen: AccessSeen,
) -> Result<Vec<AccessChange>, Error> {
    let AccessSeen {
        master_user,
        observed,
        objects,
    } = seen;
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
    let inside = match inside {
        Inside::Connected(inside) => inside?,
        Inside::Connect { ctx, tls, endpoint } => {
            connect_master(ctx, tls, database, endpoint, &database.database_name, None).await?
        }
    };
    // The objects were read while the lock was being taken, maybe while another rotation
    // of the same owner was changing them: that view is used only when nothing changed
    // since and it calls for no change; anything to change is read again under the lock.
    let fresh = match objects {
        Some(Ok(objects)) if changes.is_empty() => {
            let (inner, stuck) = plan_object_access(&objects, &desired, &observed.logins);
            (inner.is_empty() && stuck.is_empty()).then_some(objects)
        }
        _ => None,
    };
    let objects = match fresh {
        Some(objects) => objects,
        None => postgres::observe_objects(&inside, &database.owner_role).await?,
    };
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
/// previous; whichever logs in changes its own password. Pending and current log in at
/// once (neither needs the other); previous only when current is refused.
async fn set_single_user(
    ctx: &Context,
    tls: &PgTls,
    request: &RotationRequest,
    current: &AppSecret,
    pending: &AppSecret,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let as_current = current.username == pending.username;
    let (pending_logs_in, current_login) = tokio::join!(logs_in(tls, pending), async {
        match as_current {
            true => Some(login_as(tls, current).await),
            false => None,
        }
    });
    if pending_logs_in? {
        outcome
            .actions
            .push("database already has the pending password".into());
        return Ok(());
    }
    let mut logged_in = match current_login {
        Some(login) => refused_is_none(login)?.map(|client| (client, AWSCURRENT)),
        None => None,
    };
    if logged_in.is_none()
        && let Some(previous) =
            read_app_secret(ctx, &request.secret_id, Version::Stage(AWSPREVIOUS)).await?
        && previous.username == pending.username
    {
        logged_in =
            refused_is_none(login_as(tls, &previous).await)?.map(|client| (client, AWSPREVIOUS));
    }
    let Some((client, stage)) = logged_in else {
        return Err(Error::Authentication {
            user: pending.username.clone(),
        });
    };
    change_own_password_on(&client, &pending.username, &pending.password).await?;
    tracing::info!(user = %pending.username, logged_in_with = stage, token = %request.token,
        "set pending password (verifier)");
    outcome.actions.push(format!(
        "set password of {} logged in with {stage}",
        pending.username
    ));
    Ok(())
}

/// Logs in as `secret`.
async fn login_as(tls: &PgTls, secret: &AppSecret) -> Result<tokio_postgres::Client, Error> {
    tls.connect(
        &secret.endpoint(),
        &secret.dbname,
        &secret.username,
        &secret.password,
    )
    .await
}

/// A login's result, `None` when the database refused the password.
fn refused_is_none(
    login: Result<tokio_postgres::Client, Error>,
) -> Result<Option<tokio_postgres::Client>, Error> {
    match login {
        Ok(client) => Ok(Some(client)),
        Err(Error::Authentication { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Logs in as `with` and sets that same user's password to `password`; `false` when the
/// database refuses `with`'s password.
async fn change_own_password(
    tls: &PgTls,
    with: &AppSecret,
    password: &Password,
) -> Result<bool, Error> {
    let Some(client) = refused_is_none(login_as(tls, with).await)? else {
        return Ok(false);
    };
    change_own_password_on(&client, &with.username, password).await?;
    Ok(true)
}

/// Sets the connected login's own password: the role reset, the lock and the change made
/// ready go in one round trip (run in that order), then the change itself.
async fn change_own_password_on(
    client: &tokio_postgres::Client,
    user: &str,
    password: &Password,
) -> Result<(), Error> {
    // The login defaults to SET ROLE owner (RESET would restore that default); only the
    // login itself may change its own password.
    let lock = [user];
    let (reset, locked, change) = tokio::join!(
        biased;
        client.batch_execute("SET ROLE NONE"),
        postgres::lock_roles(client, &lock),
        postgres::prepare_password_change(client, user),
    );
    reset.map_err(|e| postgres::classify(&e, user))?;
    locked?;
    change?.apply(password).await
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
        let current = current_value(
            read_app_secret(ctx, &request.secret_id, Version::Stage(AWSCURRENT)).await,
            &request.secret_id,
        )?;
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
/// backoff, as long as the pause and another attempt fit before the deadline. `read` is
/// AWSCURRENT's value when the caller read it already: the first attempt uses it.
pub(super) async fn connect_master(
    ctx: &Context,
    tls: &PgTls,
    database: &Database,
    fallback: &Endpoint,
    dbname: &str,
    mut read: Option<MasterSecret>,
) -> Result<tokio_postgres::Client, Error> {
    let rds_managed = database.master_secret_arn.contains("rds!");
    let mut pauses = MASTER_RETRY_PAUSES.iter();
    let mut stages: &[&str] = &[AWSCURRENT];
    loop {
        let mut refused = None;
        for stage in stages {
            let master = if *stage == AWSCURRENT {
                match read.take() {
                    Some(master) => master,
                    None => read_master(ctx, database).await?,
                }
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
    read_master_from(ctx, &database.master_secret_arn).await
}

/// The current value of the master secret `arn`.
async fn read_master_from(ctx: &Context, arn: &str) -> Result<MasterSecret, Error> {
    match ctx.secrets.read(arn, Version::Stage(AWSCURRENT)).await? {
        Some(text) => MasterSecret::parse(arn, &text),
        None => Err(Error::MalformedSecret {
            secret: arn.into(),
            reason: "the master secret has no AWSCURRENT value".into(),
        }),
    }
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
    read: Read,
    early_login: Option<EarlyLogin>,
    deadline: Deadline,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let (_, pending) = read.current_and_pending(spec, request)?;
    let tls = ctx.tls(spec, deadline)?;
    let early_login = EarlyLogin::of(early_login, spec, &pending);
    let tested = async {
        let client = match early_login {
            Some(client) => client?,
            None => login_as(&tls, &pending).await?,
        };
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

// What the step's first round read or started (the early login, the cluster view) comes
// in beside the request, as for the other steps.
#[allow(clippy::too_many_arguments)]
async fn finish_secret(
    ctx: &Context,
    spec: &PlatformSpec,
    request: &RotationRequest,
    read: Read,
    early_login: Option<EarlyLogin>,
    cluster_view: Option<Result<Option<ClusterView>, Error>>,
    versions: &SecretVersions,
    deadline: Deadline,
    outcome: &mut StepOutcome,
) -> Result<(), Error> {
    let secret = request.secret_id.as_str();
    let token = request.token.as_str();
    let plan = plan_finish(versions, token);
    // The finished version's value: a version's value never changes, so what was read
    // of it at AWSPENDING is what the hand-off writes.
    let mut finished = None;
    // The cluster is read before AWSCURRENT moves (with the step's first reads, else
    // while the pending login is tried): the Secret's write carries the resourceVersion
    // read, so a change in between makes it read and decide again. What stays in order:
    // the login before the move, the move before the write, the write before restarts.
    // The move answers the version guard for that read (ours became AWSCURRENT after
    // it), so the guard asks Secrets Manager only for a re-read or when nothing moved.
    let view = async {
        match cluster_view {
            Some(view) => view,
            None => read_cluster_view(ctx, spec).await,
        }
    };
    let view = if plan.move_current {
        let (_, pending) = read.current_and_pending(spec, request)?;
        let tls = ctx.tls(spec, deadline)?;
        let logged_in = async {
            match EarlyLogin::of(early_login, spec, &pending) {
                Some(client) => refused_is_false(client),
                None => logs_in(&tls, &pending).await,
            }
        };
        let (logged_in, view) = tokio::join!(logged_in, view);
        // AWSCURRENT moves only to credentials the database accepts.
        if !logged_in? {
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
        finished = Some(pending);
        view
    } else {
        if let Ok(Some(pending)) = read.pending {
            finished = Some(pending);
        }
        view.await
    };
    // Both wait for AWSCURRENT to be on the token, not for each other.
    let clear_pending = async {
        if plan.clear_pending {
            ctx.secrets
                .move_stage(secret, AWSPENDING, None, Some(token))
                .await?;
            tracing::info!(secret, token, "removed AWSPENDING");
        }
        Ok::<_, Error>(plan.clear_pending)
    };
    let mut handed_off = Vec::new();
    let hand_off = async {
        let current = match finished {
            Some(value) => value,
            None => read_app_secret(ctx, secret, Version::IdAtStage(token, AWSCURRENT))
                .await?
                .ok_or_else(|| Error::MalformedSecret {
                    secret: secret.into(),
                    reason: "the finished version has no value".into(),
                })?,
        };
        let moved = plan.move_current;
        hand_off_to_cluster(spec, &current, ctx, request, view, moved, &mut handed_off).await
    };
    let (cleared, handed) = tokio::join!(clear_pending, hand_off);
    if cleared? {
        outcome.actions.push("removed AWSPENDING".into());
    }
    handed?;
    outcome.actions.extend(handed_off);
    Ok(())
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

/// What the hand-off reads of the cluster before it writes: the DSN Secret and the
/// workloads that read it.
struct ClusterView {
    client: kube::Client,
    secret: Option<kube::api::DynamicObject>,
    workloads: Vec<Option<kube::api::DynamicObject>>,
}

/// Reads the cluster for the hand-off, all at once; `None` when the hand-off is disabled.
async fn read_cluster_view(
    ctx: &Context,
    spec: &PlatformSpec,
) -> Result<Option<ClusterView>, Error> {
    let Some(client) = cluster_client(ctx, spec).await? else {
        return Ok(None);
    };
    let readers = crate::spec::chart::dsn_readers(spec);
    let (secret, workloads) = tokio::join!(
        read_database_secret_object(&client, spec),
        crate::cluster::restart::read_workloads(&client, spec, &readers),
    );
    Ok(Some(ClusterView {
        secret: secret?,
        workloads: workloads?,
        client,
    }))
}

/// Writes the DSN and the CA bundle into the Kubernetes Secret (never over a newer
/// version) and restarts the listed workloads once per version (a retried finishSecret
/// does not restart them again).
async fn hand_off_to_cluster(
    spec: &PlatformSpec,
    current: &AppSecret,
    ctx: &Context,
    request: &RotationRequest,
    view: Result<Option<ClusterView>, Error>,
    moved: bool,
    actions: &mut Vec<String>,
) -> Result<(), Error> {
    let Some(ClusterView {
        client,
        secret: live_secret,
        workloads,
    }) = view?
    else {
        tracing::warn!("cluster hand-off disabled: the Kubernetes Secret was not updated");
        actions.push("cluster hand-off disabled".into());
        return Ok(());
    };
    let token = &request.token;
    let authority = VersionAuthority {
        secrets: ctx.secrets.client().clone(),
        secret_id: request.secret_id.clone(),
        moved_after_first_read: moved,
    };
    let source = dsn::handoff(current, &spec.database, token, Some(authority))?;
    let secret = &spec.database.kubernetes_secret.name;
    let readers = crate::spec::chart::dsn_readers(spec);
    let applied = apply_database_secret_over(&client, spec, &source, live_secret, false).await?;
    let changed = match applied {
        HandoffOutcome::Stale { live_version } => {
            actions.push(format!(
                "Secret {secret} already holds version {live_version}, newer than {token}: left alone, no restart"
            ));
            return Ok(());
        }
        applied => applied.data_changed(),
    };
    let restarted = crate::cluster::restart::restart_once_over(
        &client,
        spec,
        &readers,
        &workloads,
        &format!("credentials-version-{token}"),
    )
    .await?;
    let restarted = restarted.join(", ");
    tracing::info!(secret = %secret, data_changed = changed,
        restarted = %restarted, user = %current.username, "handed the DSN to the cluster");
    actions.push(format!(
        "wrote DSN for {} to Secret {secret} (changed: {changed}); restarted [{restarted}]",
        current.username
    ));
    Ok(())
}
