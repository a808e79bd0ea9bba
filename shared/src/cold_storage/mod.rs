//! The `enforce-cold-storage` function's path: decode, observe, plan, check safety, apply.
//!
//! The bucket's posture ([`plan`], [`apply`]) and ClickHouse's TTLs ([`ttl`]) are planned
//! from the spec. The largest retention ever applied to or observed in SigNoz lives in
//! the state store and sets the expiration's floor; it is raised by compare-and-swap,
//! under a lease in the same document, before the lifecycle or a TTL is written, so two
//! functions reconciling at once serialise their writes. An unsafe lifecycle blocks the
//! lifecycle only: the rest of the posture is repaired and the run fails afterwards.

pub mod apply;
pub mod cost;
pub mod plan;
pub mod ttl;

use std::hash::BuildHasher;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::alarms::plan::PolicyState;
use crate::events::{ControlAction, Trigger, TriggerKind, decode_for};
use crate::spec::{AlarmPolicy, LoadedSpec, PlatformSpec, SpecLocation, load_spec};
use crate::state::{StateError, StateStore};
use plan::{ColdDaysNeeded, Lease, RetentionHighWater};
use ttl::{ObservedTtl, TtlApi, TtlJobs, TtlOutcome, TtlPatience, TtlReport};

/// Name of the Lambda function this module serves.
pub const FUNCTION: &str = "enforce-cold-storage";
/// The triggers `enforce-cold-storage` handles.
pub const HANDLES: &[TriggerKind] = &[
    TriggerKind::Schedule,
    TriggerKind::SpecWritten,
    TriggerKind::BucketApiCall,
    TriggerKind::Control,
];

/// CloudTrail `eventName`s of the bucket-level calls that change what this function
/// enforces, as CloudTrail spells them (AWS S3 User Guide, "Amazon S3 bucket-level actions
/// tracked by CloudTrail logging"): `PutBucketLifecycleConfiguration` is logged as
/// `PutBucketLifecycle`, `PutPublicAccessBlock` / `DeletePublicAccessBlock` on a bucket as
/// `PutBucketPublicAccessBlock` / `DeleteBucketPublicAccessBlock`. The EventBridge rule
/// must match exactly this list.
pub const DRIFT_EVENT_NAMES: &[&str] = &[
    "PutBucketLifecycle",
    "DeleteBucketLifecycle",
    "PutBucketEncryption",
    "DeleteBucketEncryption",
    "PutBucketPublicAccessBlock",
    "DeleteBucketPublicAccessBlock",
    "PutBucketPolicy",
    "DeleteBucketPolicy",
    "PutBucketVersioning",
];

/// Environment variable that turns every invocation into a dry run (the local command).
pub const DRY_RUN_ENV: &str = "DRY_RUN";
/// State key of the last dry run's plan.
pub const PLAN_KEY: &str = "cold-storage/plan.json";
/// State key of the last dry run's cost chart, next to the plan.
pub const COST_CHART_KEY: &str = "cold-storage/cost-curve.svg";
/// How long a lease on the lifecycle and TTLs lasts (a run takes well under a minute).
const LEASE_FOR: SignedDuration = SignedDuration::from_mins(2);
/// How long a run waits for another run's lease before giving up (retryable).
const LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Errors of this function's path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lifecycle was not written; everything else was (named in `repaired`).
    #[error("refusing the lifecycle change (repaired: {}; TTLs converged):\n{}", repaired_text(.repaired), render(.reasons))]
    Unsafe {
        reasons: Vec<String>,
        repaired: Vec<&'static str>,
    },
    #[error(
        "cold-storage bucket {0} does not exist (it is created by Terraform); retry once it does"
    )]
    BucketMissing(String),
    #[error("S3 {operation} failed: {reason}")]
    BucketCall {
        operation: &'static str,
        reason: String,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "another reconcile holds the lifecycle and TTL lease ({holder}) until {until}; retry after it"
    )]
    LeaseHeld { holder: String, until: Timestamp },
    #[error(
        "SigNoz API key secret {secret} does not exist or is empty: store an admin API key in it"
    )]
    ApiKeyMissing { secret: String },
    #[error("cannot read SigNoz API key secret {secret}: {reason}")]
    ApiKeyUnavailable { secret: String, reason: String },
    #[error("SigNoz TTL API unavailable for {signal}: {reason}")]
    TtlApiUnavailable { signal: String, reason: String },
    #[error("SigNoz TTL API refused {signal} (HTTP {status}): {message}")]
    TtlApiRejected {
        signal: String,
        status: u16,
        message: String,
    },
    #[error("SigNoz reported the TTL job failed for: {}", .0.join("; "))]
    TtlJobFailed(Vec<String>),
    #[error("SigNoz TTL job stuck for: {}", .0.join("; "))]
    TtlJobStuck(Vec<String>),
    #[error("SigNoz accepted the {signal} TTL {sent} but reads back {read}")]
    TtlReadBack {
        signal: String,
        sent: String,
        read: String,
    },
}

impl Error {
    /// Whether running again later may succeed without anyone changing anything.
    pub fn retryable(&self) -> bool {
        match self {
            Error::BucketCall { .. }
            | Error::ApiKeyUnavailable { .. }
            | Error::TtlApiUnavailable { .. }
            | Error::LeaseHeld { .. }
            | Error::TtlJobFailed(_) => true,
            Error::State(e) => !matches!(e, StateError::Corrupt { .. }),
            Error::Unsafe { .. }
            | Error::BucketMissing(_)
            | Error::ApiKeyMissing { .. }
            | Error::TtlApiRejected { .. }
            | Error::TtlJobStuck(_)
            | Error::TtlReadBack { .. } => false,
        }
    }
}

fn repaired_text(repaired: &[&str]) -> String {
    if repaired.is_empty() {
        "nothing else needed it".into()
    } else {
        repaired.join(", ")
    }
}

fn render(reasons: &[String]) -> String {
    reasons
        .iter()
        .map(|r| format!("  - {r}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Clients and configuration built once per process, in `main`.
#[derive(Clone)]
pub struct Context {
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    /// Built on first use: drift repairs never call SigNoz, and building a TLS client
    /// loads the system's root certificates, which would lengthen every cold start.
    http: std::sync::OnceLock<reqwest::Client>,
    pub spec_location: SpecLocation,
    /// Plan and report only, whatever the event says (`DRY_RUN=1`).
    pub dry_run: bool,
    /// Whether a dry run leaves its plan and cost chart in the state store (the
    /// functions do; `signoz-control plan` reads and writes nothing).
    pub store_reports: bool,
    pub ttl_patience: TtlPatience,
}

impl Context {
    /// Builds the context from the environment.
    pub async fn from_env() -> crate::Result<Self> {
        let config = crate::aws::sdk_config().await?;
        let mut ctx = Context::new(&config, SpecLocation::from_env()?);
        ctx.dry_run = std::env::var(DRY_RUN_ENV).is_ok_and(|v| v == "1" || v == "true");
        Ok(ctx)
    }

    /// A context over the given SDK configuration and spec location.
    pub fn new(config: &aws_config::SdkConfig, spec_location: SpecLocation) -> Self {
        Self::with_clients(
            crate::aws::s3_client(config),
            aws_sdk_secretsmanager::Client::new(config),
            spec_location,
        )
    }

    /// A context over clients the caller already built (they are cheap handles).
    pub fn with_clients(
        s3: aws_sdk_s3::Client,
        secrets: aws_sdk_secretsmanager::Client,
        spec_location: SpecLocation,
    ) -> Self {
        Context {
            s3,
            secrets,
            http: std::sync::OnceLock::new(),
            spec_location,
            dry_run: false,
            store_reports: true,
            ttl_patience: TtlPatience::default(),
        }
    }

    /// The HTTP client of SigNoz's TTL API.
    pub fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(15))
                .build()
                .expect("HTTP client (the TLS provider is installed at start-up)")
        })
    }
}

/// What a reconcile covers: drift events only touch the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    BucketAndTtls,
    BucketOnly,
}

fn ignored(trigger: &str, reason: impl Into<String>) -> Value {
    let reason = reason.into();
    tracing::info!(trigger, reason, "ignored");
    json!({ "function": FUNCTION, "trigger": trigger, "ignored": reason })
}

/// Handles one invocation.
pub async fn handle(ctx: &Context, payload: Value) -> crate::Result<Value> {
    handle_at(ctx, payload, Timestamp::now()).await
}

/// [`handle`] at a given time (TTL jobs pending too long are measured against `now`).
pub async fn handle_at(ctx: &Context, payload: Value, now: Timestamp) -> crate::Result<Value> {
    let trigger = decode_for(FUNCTION, HANDLES, payload)?;
    let kind = trigger.kind().to_string();
    match trigger {
        Trigger::Schedule { .. } => {
            let loaded = load_spec(&ctx.spec_location, &ctx.s3).await?;
            reconcile(ctx, &loaded, Scope::BucketAndTtls, ctx.dry_run, &kind, now).await
        }
        Trigger::SpecWritten(object) => {
            let is_spec = matches!(&ctx.spec_location,
                SpecLocation::S3 { bucket, key } if *bucket == object.bucket && *key == object.key);
            if !is_spec {
                return Ok(ignored(
                    &kind,
                    format!(
                        "s3://{}/{} is not the platform spec ({})",
                        object.bucket, object.key, ctx.spec_location
                    ),
                ));
            }
            let loaded = load_spec(&ctx.spec_location, &ctx.s3).await?;
            reconcile(ctx, &loaded, Scope::BucketAndTtls, ctx.dry_run, &kind, now).await
        }
        Trigger::BucketApiCall(call) => {
            if let Some(code) = &call.error_code {
                return Ok(ignored(
                    &kind,
                    format!("{} failed ({code}): nothing changed", call.event_name),
                ));
            }
            if !DRIFT_EVENT_NAMES.contains(&call.event_name.as_str()) {
                return Ok(ignored(
                    &kind,
                    format!("{} does not change the bucket's posture", call.event_name),
                ));
            }
            let loaded = load_spec(&ctx.spec_location, &ctx.s3).await?;
            if call.bucket != loaded.spec.cold_storage.bucket {
                return Ok(ignored(
                    &kind,
                    format!("bucket {} is not the cold-storage bucket", call.bucket),
                ));
            }
            tracing::warn!(
                bucket = call.bucket,
                event_name = call.event_name,
                actor = call.actor,
                event_time = call.event_time,
                "cold bucket changed outside the control plane; undoing"
            );
            let mut summary =
                reconcile(ctx, &loaded, Scope::BucketOnly, ctx.dry_run, &kind, now).await?;
            summary["drift"] = json!({ "event_name": call.event_name, "actor": call.actor, "event_time": call.event_time });
            Ok(summary)
        }
        Trigger::Control(request) if request.action == ControlAction::ReconcileColdStorage => {
            let loaded = load_spec(&ctx.spec_location, &ctx.s3).await?;
            let dry_run = request.dry_run || ctx.dry_run;
            reconcile(ctx, &loaded, Scope::BucketAndTtls, dry_run, &kind, now).await
        }
        Trigger::Control(request) => Ok(ignored(
            &kind,
            format!("{:?} is not for this function", request.action),
        )),
        other => Ok(ignored(
            &kind,
            format!("unexpected trigger {}", other.kind()),
        )),
    }
}

/// Reconciles the bucket and TTLs now, as the schedule would (respond-to-alarms calls it).
pub async fn reconcile_now(ctx: &Context, trigger: &str, now: Timestamp) -> crate::Result<Value> {
    let loaded = load_spec(&ctx.spec_location, &ctx.s3).await?;
    reconcile(
        ctx,
        &loaded,
        Scope::BucketAndTtls,
        ctx.dry_run,
        trigger,
        now,
    )
    .await
}

/// The states of the alarm policies that may lower the hot days (none for a bucket-only
/// run, which leaves the TTLs alone).
async fn policy_states(
    state: &StateStore,
    spec: &PlatformSpec,
    scope: Scope,
) -> crate::Result<Vec<(AlarmPolicy, PolicyState)>> {
    if scope == Scope::BucketOnly {
        return Ok(Vec::new());
    }
    Ok(crate::alarms::overrides::load_policy_states(state, spec).await?)
}

/// The spec as it applies now: the hot days lowered by alarm policies in force. Those
/// stay lowered until respond-to-alarms reverts them; each is bounded by the same
/// safety check as the spec.
fn effective_spec(
    spec: &PlatformSpec,
    states: &[(AlarmPolicy, PolicyState)],
    memory: &RetentionHighWater,
) -> (PlatformSpec, Option<Vec<String>>) {
    match crate::alarms::overrides::hot_days_override(spec, states, memory) {
        Some(o) => (o.applied_to(spec), Some(o.why)),
        None => (spec.clone(), None),
    }
}

/// What SigNoz reports for every signal (asked together), and the cold days those
/// reports need (or why they cannot be trusted).
async fn observe_ttls(api: &TtlApi<'_>) -> Result<TtlObservations, Error> {
    let observed = futures_util::future::try_join_all(
        ["traces", "metrics", "logs"].map(|signal| api.observe(signal)),
    )
    .await?;
    let (mut needed, mut unknown) = (Vec::new(), Vec::new());
    for o in &observed {
        match o.needed() {
            Ok(n) => needed.extend(n),
            Err(why) => unknown.push(why),
        }
    }
    Ok((observed, needed, unknown))
}

/// The TTL API client of this run.
fn ttl_api<'a>(ctx: &'a Context, spec: &'a PlatformSpec, api_key: &'a str) -> TtlApi<'a> {
    TtlApi {
        http: ctx.http(),
        base_url: &spec.retention.ttl_api.url,
        api_key,
        patience: ctx.ttl_patience,
    }
}

type TtlObservations = (Vec<ObservedTtl>, Vec<ColdDaysNeeded>, Vec<String>);

/// The API key, then what SigNoz reports for every signal.
async fn ask_signoz(
    ctx: &Context,
    spec: &PlatformSpec,
) -> crate::Result<(String, TtlObservations)> {
    let key = read_api_key(ctx, &spec.retention.ttl_api.api_key_secret).await?;
    let observations = observe_ttls(&ttl_api(ctx, spec, &key)).await?;
    Ok((key, observations))
}

/// What earlier runs sent to SigNoz and when (none for a bucket-only run): read with the
/// run's other reads, since the TTLs it verifies are read then too.
async fn ttl_jobs(state: &StateStore, scope: Scope) -> Result<TtlJobs, Error> {
    if scope == Scope::BucketOnly {
        return Ok(TtlJobs::default());
    }
    let (jobs, _) = state.load::<TtlJobs>(TtlJobs::KEY).await?;
    Ok(jobs.unwrap_or_default())
}

/// A name for this run in the lease.
fn lease_holder(trigger: &str, now: Timestamp) -> String {
    let salt = std::collections::hash_map::RandomState::new().hash_one(now.as_nanosecond());
    format!("{FUNCTION}/{trigger}/{salt:016x}")
}

/// Takes the lease on the lifecycle and TTLs and raises the memory by `needed` in the
/// same compare-and-swap; returns the document that came back.
async fn acquire_lease(
    state: &StateStore,
    holder: &str,
    now: Timestamp,
    needed: &[ColdDaysNeeded],
) -> Result<RetentionHighWater, Error> {
    let deadline = std::time::Instant::now() + LEASE_WAIT;
    loop {
        let (doc, version) = state
            .load::<RetentionHighWater>(RetentionHighWater::KEY)
            .await?;
        let doc = doc.unwrap_or_default();
        if let Some(lease) = doc.leased_to_other(holder, now).cloned() {
            if std::time::Instant::now() >= deadline {
                return Err(Error::LeaseHeld {
                    holder: lease.holder,
                    until: lease.until,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        }
        let mut next = doc.raised_by(needed).unwrap_or(doc);
        next.lease = Some(Lease {
            holder: holder.into(),
            until: now.checked_add(LEASE_FOR).unwrap_or(now),
        });
        match state.save(RetentionHighWater::KEY, &next, &version).await {
            Ok(()) => return Ok(next),
            Err(StateError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Raises the memory by `needed` (and releases the lease when `release`), keeping the
/// lease only if it is still ours; returns the document that came back.
async fn update_leased(
    state: &StateStore,
    holder: &str,
    needed: &[ColdDaysNeeded],
    release: bool,
) -> Result<RetentionHighWater, Error> {
    let mut result = None;
    state
        .update(
            RetentionHighWater::KEY,
            |current: Option<&RetentionHighWater>| {
                let doc = current.cloned().unwrap_or_default();
                let mut next = doc.raised_by(needed).unwrap_or_else(|| doc.clone());
                if release && next.lease.as_ref().is_some_and(|l| l.holder == holder) {
                    next.lease = None;
                }
                result = Some(next.clone());
                (next != doc).then_some(next)
            },
        )
        .await?;
    Ok(result.expect("update calls the change at least once"))
}

/// Plans the bucket and TTLs, refuses unsafe lifecycles, and applies unless `dry_run`.
async fn reconcile(
    ctx: &Context,
    loaded: &LoadedSpec,
    scope: Scope,
    dry_run: bool,
    trigger: &str,
    now: Timestamp,
) -> crate::Result<Value> {
    let bucket = &loaded.spec.cold_storage.bucket;
    let state = StateStore::for_spec(ctx.s3.clone(), &loaded.spec);
    // Everything the plan compares is read at once: the memory, the alarm policies'
    // states, the bucket and (when the TTLs are in scope) SigNoz's TTLs.
    let observe_signoz = async {
        if scope != Scope::BucketAndTtls {
            return Ok(None);
        }
        ask_signoz(ctx, &loaded.spec).await.map(Some)
    };
    // Boxed: the joined futures would otherwise sit side by side on the caller's stack.
    let (memory, states, observed, signoz, jobs) = tokio::join!(
        Box::pin(state.load::<RetentionHighWater>(RetentionHighWater::KEY)),
        Box::pin(policy_states(&state, &loaded.spec, scope)),
        Box::pin(apply::observe_bucket(&ctx.s3, bucket)),
        Box::pin(observe_signoz),
        Box::pin(ttl_jobs(&state, scope)),
    );
    let memory = memory.map_err(Error::from)?.0.unwrap_or_default();
    let (spec, overrides) = effective_spec(&loaded.spec, &states?, &memory);
    let observed = observed?;
    let changes = plan::plan_bucket_posture(&spec, &observed, &memory);
    let lifecycle_planned = changes.iter().any(|c| c.resource == "lifecycle");
    // Access, encryption, versioning and the TLS-only policy never wait on SigNoz or on
    // the retention: repaired first (together, they are independent), whatever happens
    // to the lifecycle.
    let mut applied: Vec<plan::BucketChange> = Vec::new();
    if !dry_run {
        let repairs: Vec<&plan::BucketChange> = changes
            .iter()
            .filter(|c| c.resource != "lifecycle")
            .collect();
        futures_util::future::try_join_all(
            repairs
                .iter()
                .map(|change| apply::apply_bucket_change(&ctx.s3, bucket, change)),
        )
        .await?;
        applied.extend(repairs.into_iter().cloned());
    }
    let repaired: Vec<&'static str> = applied.iter().map(|c| c.resource).collect();

    // What SigNoz keeps decides the expiration: a bucket-only run asks it only when the
    // lifecycle is about to change (that chain, bucket read -> SigNoz -> lifecycle, is
    // inherent).
    let signoz = match signoz? {
        Some(found) => Some(found),
        None if lifecycle_planned => Some(ask_signoz(ctx, &loaded.spec).await?),
        None => None,
    };
    let (api_key, (observations, needed, unknown)) = match signoz {
        Some((key, observations)) => (Some(key), observations),
        None => (None, Default::default()),
    };
    let api = api_key.as_deref().map(|key| ttl_api(ctx, &spec, key));
    let learned = memory.raised_by(&needed);
    let memory = learned.clone().unwrap_or(memory);
    let changes = plan::plan_bucket_posture(&spec, &observed, &memory);
    let mut reasons = plan::lifecycle_conflicts(&spec, &memory, &observed);
    reasons.extend(unknown);
    let targets = match scope {
        Scope::BucketAndTtls => ttl::plan_ttls(&spec.retention),
        Scope::BucketOnly => Vec::new(),
    };
    let mut summary = json!({
        "function": FUNCTION,
        "trigger": trigger,
        "spec_revision": loaded.revision,
        "dry_run": dry_run,
        "bucket": bucket,
        "expiration_days": plan::expiration_days(&spec, &memory),
        "remembered_cold_days": memory.cold_days,
    });
    let mut warnings: Vec<String> = plan::expiration_raised(&spec, &memory)
        .into_iter()
        .collect();
    if let Some(why) = &overrides {
        summary["alarm_overrides"] = json!(why);
    }
    if let Some(learned) = &learned {
        summary["learned_from_signoz"] = json!(learned.learned_from);
    }
    let report = |changes: &[plan::BucketChange]| -> Vec<Value> {
        changes.iter().map(change_report).collect()
    };
    if dry_run {
        summary["planned_changes"] = json!(report(&changes));
        for change in &changes {
            for field in crate::diff::field_changes(&change.before, &change.after) {
                tracing::info!(bucket, resource = change.resource, field = %field.path,
                    before = %crate::diff::plain(&field.before),
                    after = %crate::diff::plain(&field.after), "planned cold bucket change");
            }
        }
        if scope == Scope::BucketAndTtls {
            summary["planned_ttls"] = json!(targets);
            summary["observed_ttls"] = json!(
                observations
                    .iter()
                    .map(|o| {
                        let mut v = o.before();
                        v["signal"] = json!(o.signal);
                        v
                    })
                    .collect::<Vec<_>>()
            );
        }
        summary["refused"] = json!(reasons);
        summary["warnings"] = json!(warnings);
        if let Some(prices) = &spec.cold_storage.cost {
            let curve = cost::cost_curve(&spec.cold_storage, &spec.retention, prices);
            let table = cost::cost_table(&curve);
            tracing::info!(
                steady_state_month = curve.steady_state_month,
                steady_state_usd = curve.steady_state.total_usd,
                "monthly S3 cost of the cold tiers"
            );
            summary["cost"] = json!(curve);
            summary["cost"]["table"] = json!(table);
            if ctx.store_reports {
                store_report(
                    &state,
                    COST_CHART_KEY,
                    cost::cost_chart_svg(&curve),
                    "image/svg+xml",
                )
                .await;
            }
        }
        if ctx.store_reports {
            store_report(&state, PLAN_KEY, format!("{summary:#}"), "application/json").await;
        }
        tracing::info!(
            bucket,
            planned_changes = changes.len(),
            planned_ttls = targets.len(),
            refused = reasons.len(),
            "dry run: nothing written"
        );
        crate::telemetry::refused(reasons.len());
        return Ok(summary);
    }

    let ttls_to_post = observations.iter().any(|o| {
        targets
            .iter()
            .any(|t| t.signal == o.signal && !o.matches(t))
    });
    let mut reports: Vec<TtlReport> = Vec::new();
    let mut lifecycle_applied = None;
    if learned.is_some() || lifecycle_planned || ttls_to_post {
        let holder = lease_holder(trigger, now);
        let outcome = leased_writes(
            ctx,
            &state,
            loaded,
            scope,
            &observed,
            &needed,
            &holder,
            api.as_ref(),
            now,
            &mut reports,
        )
        .await;
        let released = update_leased(&state, &holder, &[], true).await;
        let leased = outcome?;
        released?;
        summary["expiration_days"] = json!(plan::expiration_days(&leased.spec, &leased.memory));
        summary["remembered_cold_days"] = json!(leased.memory.cold_days);
        warnings = plan::expiration_raised(&leased.spec, &leased.memory)
            .into_iter()
            .collect();
        if let Some(why) = leased.overrides {
            summary["alarm_overrides"] = json!(why);
        }
        reasons = leased.reasons;
        lifecycle_applied = leased.lifecycle;
    } else if let Some(api) = &api {
        // Nothing to write: still report, verify what earlier runs sent, time pending jobs.
        reports = converge_ttls(api, &state, &targets, &observations, jobs?, now, &spec).await?;
    }
    let mut all = report(&applied);
    all.extend(lifecycle_applied.iter().map(change_report));
    summary["changes"] = json!(all);
    let ttls_set = reports
        .iter()
        .filter(|r| matches!(r.outcome, TtlOutcome::Applied { .. }))
        .count();
    // A schedule or a CloudTrail event finding work means the platform had drifted.
    let drift = scope == Scope::BucketOnly || trigger == TriggerKind::Schedule.to_string();
    crate::telemetry::changes_applied(all.len() + ttls_set, drift);
    for w in &warnings {
        tracing::warn!(bucket, warning = %w, "expiration raised above the spec");
    }
    summary["warnings"] = json!(warnings);
    if scope == Scope::BucketOnly {
        return finish(summary, reasons, repaired, &[]);
    }
    summary["ttls"] = json!(reports);
    tracing::info!(
        bucket,
        changes = all.len(),
        ttls_set,
        expiration_days = %summary["expiration_days"],
        refused = reasons.len(),
        "cold storage reconciled"
    );
    finish(summary, reasons, repaired, &reports)
}

/// One bucket write in an answer: the resource, its whole before and after, and each
/// field that changes as one `field: before -> after` entry.
fn change_report(change: &plan::BucketChange) -> Value {
    let fields: Vec<Value> = crate::diff::field_changes(&change.before, &change.after)
        .into_iter()
        .map(|f| json!({ "field": f.path, "before": f.before, "after": f.after }))
        .collect();
    json!({ "resource": change.resource, "before": change.before, "after": change.after, "fields": fields })
}

/// What the leased part of a run did.
struct Leased {
    spec: PlatformSpec,
    memory: RetentionHighWater,
    overrides: Option<Vec<String>>,
    reasons: Vec<String>,
    lifecycle: Option<plan::BucketChange>,
}

/// Under the lease: raise the memory, re-read the overrides, write the lifecycle if it
/// is safe against the document that came back, raise the memory to the TTLs about to be
/// sent, and send them.
#[allow(clippy::too_many_arguments)]
async fn leased_writes(
    ctx: &Context,
    state: &StateStore,
    loaded: &LoadedSpec,
    scope: Scope,
    observed: &plan::ObservedBucket,
    needed: &[ColdDaysNeeded],
    holder: &str,
    api: Option<&TtlApi<'_>>,
    now: Timestamp,
    reports: &mut Vec<TtlReport>,
) -> crate::Result<Leased> {
    let bucket = &loaded.spec.cold_storage.bucket;
    let doc = acquire_lease(state, holder, now, needed).await?;
    // Under the lease, looked at again together: overrides respond-to-alarms wrote before
    // we took it, and TTLs another writer may have posted meanwhile.
    let observe_again = async {
        match api {
            Some(api) => observe_ttls(api).await,
            None => Ok(TtlObservations::default()),
        }
    };
    let (states, observed_again, jobs) = tokio::join!(
        policy_states(state, &loaded.spec, scope),
        observe_again,
        ttl_jobs(state, scope)
    );
    let (spec, overrides) = effective_spec(&loaded.spec, &states?, &doc);
    let (observations, needed, unknown) = observed_again?;
    let targets = match scope {
        Scope::BucketAndTtls => ttl::plan_ttls(&spec.retention),
        Scope::BucketOnly => Vec::new(),
    };
    // Remember before applying: a TTL that half-applies must still bound expiration.
    let mut raise = needed;
    raise.extend(plan::spec_cold_days(&spec.retention, "spec, as applied"));
    if scope == Scope::BucketOnly {
        raise.retain(|n| !n.source.starts_with("spec"));
    }
    let memory = update_leased(state, holder, &raise, false).await?;
    let mut reasons = plan::lifecycle_conflicts(&spec, &memory, observed);
    reasons.extend(unknown);
    let lifecycle = plan::plan_bucket_posture(&spec, observed, &memory)
        .into_iter()
        .find(|c| c.resource == "lifecycle");
    let mut written = None;
    match (&lifecycle, reasons.is_empty()) {
        (Some(change), true) => {
            apply::apply_bucket_change(&ctx.s3, bucket, change).await?;
            written = lifecycle;
        }
        (Some(_), false) => {
            for reason in &reasons {
                tracing::error!(bucket, reason, "lifecycle change refused");
            }
        }
        (None, _) => {}
    }
    if let Some(api) = api {
        *reports = converge_ttls(api, state, &targets, &observations, jobs?, now, &spec).await?;
    }
    Ok(Leased {
        spec,
        memory,
        overrides,
        reasons,
        lifecycle: written,
    })
}

/// Converges every signal's TTL and records, for the next run, what was sent and since
/// when a job has been running.
async fn converge_ttls(
    api: &TtlApi<'_>,
    state: &StateStore,
    targets: &[ttl::TtlTarget],
    observations: &[ObservedTtl],
    jobs: TtlJobs,
    now: Timestamp,
    spec: &PlatformSpec,
) -> Result<Vec<TtlReport>, Error> {
    let stuck_after =
        SignedDuration::from_mins(i64::from(spec.retention.ttl_api.stuck_after_minutes));
    // Each signal is its own table in SigNoz: the signals converge together, and every
    // one is awaited, so what was sent is recorded even when another signal failed.
    let converging = targets.iter().filter_map(|target| {
        let observed = observations.iter().find(|o| o.signal == target.signal)?;
        let job = jobs.signals.get(target.signal).cloned().unwrap_or_default();
        Some(async move {
            let converged = api
                .converge(*target, observed, &job, now, stuck_after)
                .await;
            (target.signal, converged)
        })
    });
    let converged = futures_util::future::join_all(converging).await;
    let mut next = jobs.clone();
    let mut reports = Vec::new();
    let mut failure = None;
    for (signal, converged) in converged {
        let (report, record) = match converged {
            Ok(done) => done,
            Err(e) => {
                failure.get_or_insert(e);
                continue;
            }
        };
        if record == ttl::TtlJob::default() {
            next.signals.remove(signal);
        } else {
            next.signals.insert(signal.into(), record);
        }
        reports.push(report);
    }
    if next != jobs {
        state
            .update(TtlJobs::KEY, |_: Option<&TtlJobs>| Some(next.clone()))
            .await?;
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(reports),
    }
}

/// The run's answer, or the error that makes it fail loudly after what could be done.
fn finish(
    summary: Value,
    reasons: Vec<String>,
    repaired: Vec<&'static str>,
    reports: &[TtlReport],
) -> crate::Result<Value> {
    if !reasons.is_empty() {
        return Err(Error::Unsafe { reasons, repaired }.into());
    }
    let stuck: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            TtlOutcome::Stuck { reason, .. } => Some(format!("{}: {reason}", r.signal)),
            _ => None,
        })
        .collect();
    if !stuck.is_empty() {
        return Err(Error::TtlJobStuck(stuck).into());
    }
    let failed: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            TtlOutcome::Failed { reason } => Some(format!("{}: {reason}", r.signal)),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        return Err(Error::TtlJobFailed(failed).into());
    }
    Ok(summary)
}

/// Stores a report of a dry run in the state store; a failure is only logged.
async fn store_report(state: &StateStore, key: &str, body: String, content_type: &str) {
    if let Err(e) = state.put_report(key, body.into_bytes(), content_type).await {
        tracing::warn!(key, error = %e, "could not store the dry run's report");
    }
}

/// The admin API key: the secret's string, or its `api_key` field when it is JSON.
async fn read_api_key(ctx: &Context, secret: &str) -> Result<String, Error> {
    let out = ctx
        .secrets
        .get_secret_value()
        .secret_id(secret)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .map_err(|e| match crate::aws::error_code(&e) {
            Some("ResourceNotFoundException") => Error::ApiKeyMissing {
                secret: secret.into(),
            },
            _ => Error::ApiKeyUnavailable {
                secret: secret.into(),
                reason: crate::aws::error_text(&e),
            },
        })?;
    let text = out.secret_string().unwrap_or_default().trim();
    let key = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map
            .get("api_key")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => text.to_string(),
    };
    if key.is_empty() {
        return Err(Error::ApiKeyMissing {
            secret: secret.into(),
        });
    }
    Ok(key)
}
