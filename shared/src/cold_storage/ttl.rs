//! ClickHouse retention through SigNoz's TTL API, as SigNoz's source implements it
//! (SigNoz/signoz `pkg/query-service/app/http_handler.go`, `parser.go`,
//! `clickhouseReader/reader.go`, `pkg/types/retentiontypes/ttl.go`):
//!
//! - `POST /api/v1/settings/ttl?type=<signal>&duration=<N>h&coldStorage=s3&toColdDuration=<M>h`
//!   (traces, metrics, and logs on the legacy schema) answers at once and runs its ALTERs
//!   in the background; `GET ?type=<signal>` reports the durations in force (the old ones
//!   while the job runs), the job's `expected_*` and `status` `pending` / `failed` /
//!   `success`. A POST while the signal's job is pending answers 409.
//! - On the current logs schema (`_retention_days` on `logs_v2`) v1 refuses logs with
//!   HTTP 500 `SetTTLV2 only supported`; logs go through `POST /api/v2/settings/ttl`
//!   (JSON, synchronous, HTTP 400 while a job runs) and `GET /api/v2/settings/ttl`, which
//!   says which `version` the server runs. The client asks, never guesses.
//! - Successes are the bare item; v1 errors `{"errors":[{"code","msg"}]}`, middleware and
//!   v2 errors `{"status":"error","error":{"code","message",...}}`.
//! - SigNoz never times a pending job out: one pending (or refused as running) longer
//!   than the spec's bound is reported as stuck.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Error;
use super::plan::ColdDaysNeeded;
use crate::spec::Retention;

/// The ClickHouse volume SigNoz moves cold parts to (storage policy `tiered`).
pub const COLD_VOLUME: &str = "s3";

/// The retention one signal should have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TtlTarget {
    pub signal: &'static str,
    pub total_days: u32,
    pub hot_days: u32,
}

impl TtlTarget {
    /// SigNoz takes `0 < toColdDuration < duration`; a target outside that would delete at
    /// once or never move anything to S3: refused before any request.
    fn check(&self) -> Result<(), Error> {
        if self.total_days == 0 || self.hot_days == 0 || self.hot_days >= self.total_days {
            return Err(Error::TtlApiRejected {
                signal: self.signal.into(),
                status: 0,
                message: format!(
                    "refusing to send total {} days, hot {} days: SigNoz needs 0 < hot days < total days, and a TTL without a cold move keeps every part on the hot disk",
                    self.total_days, self.hot_days
                ),
            });
        }
        Ok(())
    }

    fn retained(&self) -> Retained {
        Retained {
            total_hours: i64::from(self.total_days) * 24,
            move_hours: Some(i64::from(self.hot_days) * 24),
        }
    }
}

/// The TTLs the spec asks for, one per signal.
#[tracing::instrument(level = "debug", name = "plan.ttls", skip_all)]
pub fn plan_ttls(r: &Retention) -> Vec<TtlTarget> {
    [
        ("traces", r.traces),
        ("metrics", r.metrics),
        ("logs", r.logs),
    ]
    .into_iter()
    .map(|(signal, s)| TtlTarget {
        signal,
        total_days: s.total_days,
        hot_days: s.hot_days,
    })
    .collect()
}

/// Which TTL API a signal is set through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    V1,
    V2,
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ApiVersion::V1 => "v1",
            ApiVersion::V2 => "v2",
        })
    }
}

/// A TTL job's status as SigNoz reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Success,
    Pending,
    Failed,
}

/// A retention as SigNoz reports it, in hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retained {
    /// -1 when SigNoz could not read a delete TTL.
    pub total_hours: i64,
    /// `None`: nothing moves to cold storage.
    pub move_hours: Option<i64>,
}

impl Retained {
    fn days(hours: i64) -> i64 {
        (hours + 23).div_euclid(24)
    }

    /// Days a part can stay in S3: total less the move, or the whole total when nothing
    /// moves by TTL (a full hot disk moves parts early, by the storage policy's
    /// `move_factor`); `None` when the total is unknown.
    pub fn cold_days(&self) -> Option<u32> {
        if self.total_hours <= 0 {
            return None;
        }
        let moved = self.move_hours.filter(|m| *m > 0).unwrap_or(0);
        u32::try_from(Self::days(self.total_hours - moved)).ok()
    }

    fn summary(&self) -> Value {
        json!({
            "total_days": (self.total_hours > 0).then(|| Self::days(self.total_hours)),
            "hot_days": self.move_hours.filter(|m| *m > 0).map(Self::days),
        })
    }
}

/// What SigNoz reports for one signal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedTtl {
    pub signal: &'static str,
    pub api: ApiVersion,
    pub status: JobStatus,
    /// The retention in force; `None` when the API reports only the last request (v2
    /// while that request is pending or failed).
    pub in_force: Option<Retained>,
    /// What the last job was asked to set (`expected_*` of v1, the row of v2).
    pub expected: Option<Retained>,
    /// v2's custom retention rules, sent back unchanged.
    pub conditions: Value,
}

impl ObservedTtl {
    /// The longest `ttlDays` of the custom rules, in hours.
    fn longest_rule_hours(&self) -> Option<i64> {
        self.conditions
            .as_array()?
            .iter()
            .filter_map(|r| r["ttlDays"].as_i64())
            .max()
            .map(|d| d * 24)
    }

    /// The cold days the parts SigNoz already holds (or a running or failed job will leave,
    /// perhaps half-applied) need in S3, with where that comes from; an error when SigNoz
    /// reports no delete TTL (parts kept for ever).
    pub fn needed(&self) -> Result<Vec<ColdDaysNeeded>, String> {
        let mut needed = Vec::new();
        let rule = self.longest_rule_hours();
        let mut add = |r: &Retained, what: &str| -> Result<(), String> {
            let widened = Retained {
                total_hours: r.total_hours.max(rule.unwrap_or(i64::MIN)),
                ..*r
            };
            let days = widened.cold_days().ok_or_else(|| {
                format!(
                    "SigNoz reports no delete TTL for {} ({what}): parts would stay in S3 for ever",
                    self.signal
                )
            })?;
            let total = Retained::days(widened.total_hours);
            let moved = match r.move_hours.filter(|m| *m > 0) {
                Some(m) => format!("{} hot", Retained::days(m)),
                None => "no cold move, so up to the whole TTL".into(),
            };
            needed.push(ColdDaysNeeded {
                signal: self.signal,
                days,
                source: format!(
                    "SigNoz {} {what}: {total} days total, {moved}",
                    match self.api {
                        ApiVersion::V1 => "v1",
                        ApiVersion::V2 => "v2",
                    }
                ),
            });
            Ok(())
        };
        if let Some(r) = &self.in_force {
            add(r, "in force")?;
        }
        if self.status != JobStatus::Success
            && let Some(r) = &self.expected
        {
            add(r, "job")?;
        }
        Ok(needed)
    }

    /// Whether SigNoz has `target` in force, its job done.
    pub fn matches(&self, target: &TtlTarget) -> bool {
        self.status == JobStatus::Success && self.in_force == Some(target.retained())
    }

    /// What SigNoz reports now: the durations in force and the job status.
    pub fn before(&self) -> Value {
        let mut v = self.in_force.map_or(json!({}), |r| r.summary());
        v["status"] = json!(self.status);
        v
    }
}

/// What happened to one signal's TTL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TtlOutcome {
    /// Already at the target: no write.
    Unchanged,
    /// Set; the job reached `status` (`success`, read back; or `pending` when polling
    /// ran out: the next run verifies it).
    Applied { status: String },
    /// A TTL job is running (pending, 409, or v2's 400): the next reconcile retries.
    Deferred { reason: String },
    /// SigNoz reported the job failed.
    Failed { reason: String },
    /// A job has been running (or refused as running) longer than the spec allows.
    Stuck { reason: String, since: Timestamp },
}

/// One signal's TTL, before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TtlReport {
    pub signal: &'static str,
    pub api: ApiVersion,
    pub before: Value,
    pub after: TtlTarget,
    pub outcome: TtlOutcome,
    /// Whether what the previous run sent is what SigNoz reads back now.
    pub verified: Option<String>,
}

/// The last request sent for one signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub total_days: u32,
    pub hot_days: u32,
    pub api: ApiVersion,
    pub at: Timestamp,
}

/// What the control plane remembers about one signal's TTL jobs between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtlJob {
    /// Sent and not yet verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<Sent>,
    /// Since when SigNoz has kept a job pending or refused ours as already running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<Timestamp>,
}

/// The document `cold-storage/ttl-jobs.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtlJobs {
    pub signals: std::collections::BTreeMap<String, TtlJob>,
}

impl TtlJobs {
    /// State key of this document.
    pub const KEY: &'static str = "cold-storage/ttl-jobs.json";
}

/// How patient the client is with a running TTL job.
#[derive(Debug, Clone, Copy)]
pub struct TtlPatience {
    /// POST attempts while SigNoz answers that a job is running.
    pub attempts: u32,
    /// Wait between POST attempts.
    pub retry_delay: Duration,
    /// Status polls after an accepted v1 POST.
    pub polls: u32,
    /// Wait before the second poll; each later wait doubles (a small install's ALTERs
    /// finish in well under a second, a large one's take minutes and are left to the
    /// next run).
    pub poll_delay: Duration,
}

impl Default for TtlPatience {
    fn default() -> Self {
        TtlPatience {
            attempts: 3,
            retry_delay: Duration::from_secs(2),
            polls: 5,
            poll_delay: Duration::from_millis(250),
        }
    }
}

/// SigNoz's TTL API with the admin key.
pub struct TtlApi<'a> {
    pub http: &'a reqwest::Client,
    pub base_url: &'a str,
    /// Never logged: only sent as the `SIGNOZ-API-KEY` header.
    pub api_key: &'a str,
    pub patience: TtlPatience,
}

/// An answer of SigNoz: status and body.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    /// The message of either error envelope, or the start of the body.
    fn message(&self) -> String {
        let v: Value = serde_json::from_str(&self.body).unwrap_or(Value::Null);
        v["errors"][0]["msg"]
            .as_str()
            .or_else(|| v["error"]["message"].as_str())
            .or_else(|| v["error"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| self.body.trim().chars().take(200).collect())
    }

    fn json(&self, signal: &str) -> Result<Value, Error> {
        serde_json::from_str(&self.body).map_err(|e| Error::TtlApiUnavailable {
            signal: signal.into(),
            reason: format!(
                "SigNoz answered HTTP {} with a body that is not JSON: {e}",
                self.status
            ),
        })
    }

    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What SigNoz says while another TTL job of the signal runs.
fn already_running(api: ApiVersion, a: &Answer) -> bool {
    match api {
        ApiVersion::V1 => a.status == 409,
        ApiVersion::V2 => a.status == 400 && a.message().contains("already running"),
    }
}

impl TtlApi<'_> {
    async fn call(
        &self,
        signal: &str,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, Error> {
        // Without the URL: the query carries nothing secret, but keep errors short.
        let transport = |e: reqwest::Error| Error::TtlApiUnavailable {
            signal: signal.into(),
            reason: e.without_url().to_string(),
        };
        let base = format!("{}{path}", self.base_url.trim_end_matches('/'));
        let url = url::Url::parse_with_params(&base, query).map_err(|e| Error::TtlApiRejected {
            signal: signal.into(),
            status: 0,
            message: format!("invalid TTL API URL: {e}"),
        })?;
        let request = self
            .http
            .request(method, url)
            .header("SIGNOZ-API-KEY", self.api_key);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(transport)?;
        Ok(Answer { status, body })
    }

    /// An answer that is not a success, as an error naming the signal.
    fn refused(signal: &str, a: &Answer) -> Error {
        let message = a.message();
        match a.status {
            401 => Error::TtlApiRejected {
                signal: signal.into(),
                status: 401,
                message: format!(
                    "the stored API key is not a valid SigNoz API key ({message}): store an admin API key"
                ),
            },
            403 => Error::TtlApiRejected {
                signal: signal.into(),
                status: 403,
                message: format!("setting TTLs needs an admin API key; SigNoz said: {message}"),
            },
            s if s >= 500 => Error::TtlApiUnavailable {
                signal: signal.into(),
                reason: format!("HTTP {s}: {message}"),
            },
            s => Error::TtlApiRejected {
                signal: signal.into(),
                status: s,
                message,
            },
        }
    }

    /// `GET /api/v1/settings/ttl?type=<signal>` (`GetTTL`).
    async fn observe_v1(&self, signal: &'static str) -> Result<ObservedTtl, Error> {
        let a = self
            .call(
                signal,
                reqwest::Method::GET,
                "/api/v1/settings/ttl",
                &[("type", signal)],
                None,
            )
            .await?;
        if !a.ok() {
            return Err(Self::refused(signal, &a));
        }
        let v = a.json(signal)?;
        // Zero fields are left out (omitempty); -1 means "none" for a move.
        let hours = |field: String| v.get(&field).and_then(Value::as_i64);
        let retained = |prefix: &str| {
            let total = hours(format!("{prefix}{signal}_ttl_duration_hrs"))?;
            let moved = hours(format!("{prefix}{signal}_move_ttl_duration_hrs"));
            Some(Retained {
                total_hours: total,
                move_hours: moved.filter(|m| *m > 0),
            })
        };
        Ok(ObservedTtl {
            signal,
            api: ApiVersion::V1,
            status: status_of(&v),
            in_force: Some(retained("").unwrap_or(Retained {
                total_hours: -1,
                move_hours: None,
            })),
            expected: retained("expected_"),
            conditions: json!([]),
        })
    }

    /// `GET /api/v2/settings/ttl` (`GetCustomRetentionTTL`); `None` when the server runs
    /// the legacy logs schema (`version: v1`) or has no v2 route.
    async fn observe_v2(&self) -> Result<Option<ObservedTtl>, Error> {
        let signal = "logs";
        let a = self
            .call(
                signal,
                reqwest::Method::GET,
                "/api/v2/settings/ttl",
                &[],
                None,
            )
            .await?;
        if a.status == 404 {
            return Ok(None);
        }
        if !a.ok() {
            return Err(Self::refused(signal, &a));
        }
        let v = a.json(signal)?;
        if v["version"] != "v2" {
            return Ok(None);
        }
        let days = v["default_ttl_days"].as_i64().unwrap_or(0);
        let cold = v["cold_storage_ttl_days"].as_i64().unwrap_or(-1);
        let row = Retained {
            total_hours: if days > 0 { days * 24 } else { -1 },
            move_hours: (cold > 0).then_some(cold * 24),
        };
        let status = status_of(&v);
        Ok(Some(ObservedTtl {
            signal,
            api: ApiVersion::V2,
            status,
            // v2 reports the last request, which is what is in force once it succeeded.
            in_force: (status == JobStatus::Success).then_some(row),
            expected: Some(row),
            conditions: v.get("ttl_conditions").cloned().unwrap_or(json!([])),
        }))
    }

    /// What SigNoz reports for `signal`, through the API the server says it uses.
    pub async fn observe(&self, signal: &'static str) -> Result<ObservedTtl, Error> {
        if signal == "logs"
            && let Some(observed) = self.observe_v2().await?
        {
            return Ok(observed);
        }
        self.observe_v1(signal).await
    }

    /// Sends `target` once: `Ok(None)` when SigNoz says a job is running.
    #[tracing::instrument(level = "debug", name = "signoz.set_ttl", skip_all,
        fields(signoz.signal = target.signal, signoz.api = %api))]
    async fn post(
        &self,
        api: ApiVersion,
        target: &TtlTarget,
        conditions: &Value,
    ) -> Result<Option<Answer>, Error> {
        let signal = target.signal;
        let a = match api {
            ApiVersion::V1 => {
                let duration = format!("{}h", target.total_days * 24);
                let to_cold = format!("{}h", target.hot_days * 24);
                self.call(
                    signal,
                    reqwest::Method::POST,
                    "/api/v1/settings/ttl",
                    &[
                        ("type", signal),
                        ("duration", &duration),
                        ("coldStorage", COLD_VOLUME),
                        ("toColdDuration", &to_cold),
                    ],
                    None,
                )
                .await?
            }
            ApiVersion::V2 => {
                let body = json!({
                    "type": signal,
                    "defaultTTLDays": target.total_days,
                    "coldStorageVolume": COLD_VOLUME,
                    "coldStorageDurationDays": target.hot_days,
                    "ttlConditions": conditions,
                });
                self.call(
                    signal,
                    reqwest::Method::POST,
                    "/api/v2/settings/ttl",
                    &[],
                    Some(&body),
                )
                .await?
            }
        };
        if already_running(api, &a) {
            return Ok(None);
        }
        Ok(Some(a))
    }

    /// Brings one signal to `target` from what was `observed`, reporting what happened,
    /// with the signal's job record for the next run.
    pub async fn converge(
        &self,
        target: TtlTarget,
        observed: &ObservedTtl,
        job: &TtlJob,
        now: Timestamp,
        stuck_after: SignedDuration,
    ) -> Result<(TtlReport, TtlJob), Error> {
        target.check()?;
        let signal = target.signal;
        let verified = job.sent.as_ref().and_then(|sent| verify(sent, observed));
        let mut next = TtlJob {
            sent: job.sent.clone().filter(|_| verified.is_none()),
            waiting_since: None,
        };
        let mut api = observed.api;
        let report = |api, outcome, verified: &Option<String>| TtlReport {
            signal,
            api,
            before: observed.before(),
            after: target,
            outcome,
            verified: verified.clone(),
        };
        let waiting = |next: &mut TtlJob, why: String| {
            let since = job.waiting_since.unwrap_or(now);
            next.waiting_since = Some(since);
            if now.duration_since(since) >= stuck_after {
                TtlOutcome::Stuck {
                    reason: format!(
                        "{why} since {since} (longer than retention.ttl_api.stuck_after_minutes, {} minutes): SigNoz never times a TTL job out; check its query service and the ttl_setting rows of {signal}",
                        stuck_after.as_mins()
                    ),
                    since,
                }
            } else {
                TtlOutcome::Deferred {
                    reason: format!("{why} since {since}; the next reconcile retries"),
                }
            }
        };
        if observed.status == JobStatus::Pending {
            let outcome = waiting(&mut next, "a TTL job has been pending".into());
            return Ok((report(api, outcome, &verified), next));
        }
        if observed.matches(&target) {
            return Ok((report(api, TtlOutcome::Unchanged, &verified), next));
        }
        let mut attempt = 0;
        let answer = loop {
            attempt += 1;
            match self.post(api, &target, &observed.conditions).await? {
                Some(a)
                    if a.status == 500
                        && a.message().contains("SetTTLV2 only supported")
                        && api == ApiVersion::V1 =>
                {
                    // The logs table gained `_retention_days` since we asked: v2 it is.
                    tracing::info!(signal, "SigNoz wants logs through /api/v2/settings/ttl");
                    api = ApiVersion::V2;
                    attempt -= 1;
                }
                Some(a) => break a,
                None if attempt >= self.patience.attempts => {
                    let why = match api {
                        ApiVersion::V1 => "SigNoz has answered 409 (TTL is already running)",
                        ApiVersion::V2 => {
                            "SigNoz has answered 400 (custom retention TTL is already running)"
                        }
                    };
                    let outcome = waiting(&mut next, why.into());
                    return Ok((report(api, outcome, &verified), next));
                }
                None => {
                    tracing::info!(signal, attempt, "a TTL job is running; retrying");
                    tokio::time::sleep(self.patience.retry_delay).await;
                }
            }
        };
        if !answer.ok() {
            let message = answer.message();
            if answer.status == 400 && api == ApiVersion::V2 && message.contains("error setting") {
                // SetTTLV2 ran its ALTERs and one failed: the row is marked failed.
                return Ok((
                    report(api, TtlOutcome::Failed { reason: message }, &verified),
                    next,
                ));
            }
            return Err(Self::refused(signal, &answer));
        }
        next.sent = Some(Sent {
            total_days: target.total_days,
            hot_days: target.hot_days,
            api,
            at: now,
        });
        tracing::info!(
            signal,
            api = %api,
            before = %crate::diff::plain(&observed.before()),
            after_total_days = target.total_days,
            after_hot_days = target.hot_days,
            "TTL set"
        );
        // v2 ran synchronously; v1 runs in the background: poll its status.
        let mut read_back = self.observe_as(api, signal).await?;
        let mut pause = self.patience.poll_delay;
        for _ in 1..self.patience.polls {
            if read_back.status != JobStatus::Pending {
                break;
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
            read_back = self.observe_as(api, signal).await?;
        }
        let outcome = match read_back.status {
            JobStatus::Pending => TtlOutcome::Applied {
                status: "pending".into(),
            },
            JobStatus::Failed => TtlOutcome::Failed {
                reason: "SigNoz marked the TTL job failed (an ALTER of one of its tables failed)"
                    .into(),
            },
            JobStatus::Success if read_back.matches(&target) => {
                next.sent = None;
                TtlOutcome::Applied {
                    status: "success".into(),
                }
            }
            JobStatus::Success => {
                return Err(Error::TtlReadBack {
                    signal: signal.into(),
                    sent: target.retained().summary().to_string(),
                    read: read_back.before().to_string(),
                });
            }
        };
        Ok((report(api, outcome, &verified), next))
    }

    async fn observe_as(
        &self,
        api: ApiVersion,
        signal: &'static str,
    ) -> Result<ObservedTtl, Error> {
        match api {
            ApiVersion::V1 => self.observe_v1(signal).await,
            ApiVersion::V2 => self
                .observe_v2()
                .await?
                .ok_or_else(|| Error::TtlApiUnavailable {
                    signal: signal.into(),
                    reason: "SigNoz stopped reporting the v2 TTL API after accepting a v2 request"
                        .into(),
                }),
        }
    }
}

fn status_of(v: &Value) -> JobStatus {
    match v["status"].as_str() {
        Some("pending") => JobStatus::Pending,
        Some("failed") => JobStatus::Failed,
        _ => JobStatus::Success,
    }
}

/// Whether a request sent by an earlier run landed: `None` while its job still runs.
fn verify(sent: &Sent, observed: &ObservedTtl) -> Option<String> {
    let wanted = TtlTarget {
        signal: observed.signal,
        total_days: sent.total_days,
        hot_days: sent.hot_days,
    };
    match observed.status {
        JobStatus::Pending => None,
        _ if observed.matches(&wanted) => Some("converged".into()),
        JobStatus::Failed => Some(format!(
            "diverged: the job sent at {} failed; SigNoz reports {}",
            sent.at,
            observed.before()
        )),
        JobStatus::Success => Some(format!(
            "diverged: sent {} days total, {} hot at {}; SigNoz reports {}",
            sent.total_days,
            sent.hot_days,
            sent.at,
            observed.before()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(total: i64, moved: Option<i64>) -> ObservedTtl {
        ObservedTtl {
            signal: "traces",
            api: ApiVersion::V1,
            status: JobStatus::Success,
            in_force: Some(Retained {
                total_hours: total,
                move_hours: moved,
            }),
            expected: None,
            conditions: json!([]),
        }
    }

    #[test]
    fn cold_days_are_total_less_hot_or_the_whole_total_without_a_move() {
        assert_eq!(observed(720, Some(168)).needed().unwrap()[0].days, 23);
        // SigNoz's defaults: 15 days, no move (-1): a part may sit in S3 the whole TTL.
        assert_eq!(observed(360, None).needed().unwrap()[0].days, 15);
        // Hours that are not whole days round up.
        assert_eq!(observed(730, Some(168)).needed().unwrap()[0].days, 24);
        let unknown = observed(-1, None).needed().unwrap_err();
        assert!(unknown.contains("no delete TTL"), "{unknown}");
    }

    #[test]
    fn a_pending_or_failed_job_counts_with_what_it_was_asked_to_set() {
        let mut o = observed(720, Some(168));
        o.expected = Some(Retained {
            total_hours: 2400,
            move_hours: Some(240),
        });
        assert_eq!(o.needed().unwrap().len(), 1, "success: the job is done");
        for status in [JobStatus::Pending, JobStatus::Failed] {
            o.status = status;
            let days: Vec<u32> = o.needed().unwrap().iter().map(|n| n.days).collect();
            assert_eq!(days, [23, 90]);
        }
    }

    #[test]
    fn custom_log_rules_widen_the_total() {
        let mut o = observed(720, Some(168));
        o.conditions = json!([{"conditions": [{"key": "k", "values": ["v"]}], "ttlDays": 100}]);
        assert_eq!(o.needed().unwrap()[0].days, 93);
    }

    #[test]
    fn targets_signoz_would_refuse_or_that_never_move_to_cold_are_refused() {
        for (total, hot) in [(0, 0), (30, 0), (30, 30), (30, 40)] {
            let t = TtlTarget {
                signal: "logs",
                total_days: total,
                hot_days: hot,
            };
            assert!(t.check().is_err(), "{total}/{hot}");
        }
        assert!(
            TtlTarget {
                signal: "logs",
                total_days: 30,
                hot_days: 7
            }
            .check()
            .is_ok()
        );
    }

    #[test]
    fn both_error_envelopes_give_their_message() {
        let v1 = Answer {
            status: 409,
            body: r#"{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":409,"msg":"TTL is already running"}]}"#.into(),
        };
        assert_eq!(v1.message(), "TTL is already running");
        assert!(already_running(ApiVersion::V1, &v1));
        let v2 = Answer {
            status: 400,
            body: r#"{"status":"error","error":{"type":"invalid-input","code":"internal","message":"custom retention TTL is already running","errors":[],"suggestions":[]}}"#.into(),
        };
        assert_eq!(v2.message(), "custom retention TTL is already running");
        assert!(already_running(ApiVersion::V2, &v2));
        assert!(
            !already_running(ApiVersion::V1, &v2),
            "v1 says 409, not 400"
        );
        let plain = Answer {
            status: 404,
            body: "404 page not found\n".into(),
        };
        assert_eq!(plain.message(), "404 page not found");
    }

    #[test]
    fn the_next_run_says_whether_the_sent_ttl_landed() {
        let sent = Sent {
            total_days: 30,
            hot_days: 7,
            api: ApiVersion::V1,
            at: Timestamp::UNIX_EPOCH,
        };
        assert_eq!(
            verify(&sent, &observed(720, Some(168))).as_deref(),
            Some("converged")
        );
        let mut pending = observed(360, None);
        pending.status = JobStatus::Pending;
        assert_eq!(verify(&sent, &pending), None);
        let other = verify(&sent, &observed(1440, Some(168))).unwrap();
        assert!(
            other.starts_with("diverged") && other.contains("60"),
            "{other}"
        );
    }
}
