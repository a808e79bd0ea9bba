//! ClickHouse retention through SigNoz's TTL API (`/api/v1/settings/ttl`).
//!
//! `POST ?type=<signal>&duration=<N>h&coldStorage=s3&toColdDuration=<M>h` starts an
//! asynchronous job (409 while one runs); `GET ?type=<signal>` reports the durations in
//! hours as `<signal>_ttl_duration_hrs` / `<signal>_move_ttl_duration_hrs` and `status`
//! (`success`, `pending`, `failed`).

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::Error;
use crate::spec::Retention;

/// The TTL one signal should have, in hours as the API takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TtlTarget {
    pub signal: &'static str,
    pub duration_hours: u64,
    pub to_cold_hours: u64,
}

/// The TTLs the spec asks for, one per signal.
pub fn plan_ttls(r: &Retention) -> Vec<TtlTarget> {
    [
        ("traces", r.traces),
        ("metrics", r.metrics),
        ("logs", r.logs),
    ]
    .into_iter()
    .map(|(signal, s)| TtlTarget {
        signal,
        duration_hours: u64::from(s.total_days) * 24,
        to_cold_hours: u64::from(s.hot_days) * 24,
    })
    .collect()
}

/// What happened to one signal's TTL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TtlOutcome {
    /// Already at the target: no write.
    Unchanged,
    /// Set; the job reached `status` (`success`, or `pending` when polling ran out).
    Applied { status: String },
    /// A TTL job was running (409 or `pending`): the next reconcile retries.
    Deferred { reason: String },
    /// SigNoz reported the job `failed`.
    Failed,
}

/// One signal's TTL, before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TtlReport {
    pub signal: &'static str,
    /// `(duration, toColdDuration)` in hours as SigNoz reported them.
    pub before: Option<(i64, i64)>,
    pub after: TtlTarget,
    pub outcome: TtlOutcome,
}

/// How patient the client is with a running TTL job.
#[derive(Debug, Clone, Copy)]
pub struct TtlPatience {
    /// POST attempts while SigNoz answers 409.
    pub attempts: u32,
    /// Wait between POST attempts.
    pub retry_delay: Duration,
    /// Status polls after a successful POST.
    pub polls: u32,
    /// Wait between polls.
    pub poll_delay: Duration,
}

impl Default for TtlPatience {
    fn default() -> Self {
        TtlPatience {
            attempts: 3,
            retry_delay: Duration::from_secs(2),
            polls: 5,
            poll_delay: Duration::from_secs(2),
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

/// A TTL status as `GET` reports it.
struct TtlStatus {
    durations: Option<(i64, i64)>,
    status: String,
}

impl TtlApi<'_> {
    fn url(&self, signal: &str, params: &[(&str, &str)]) -> Result<url::Url, Error> {
        let base = format!(
            "{}/api/v1/settings/ttl",
            self.base_url.trim_end_matches('/')
        );
        url::Url::parse_with_params(&base, [("type", signal)].iter().chain(params)).map_err(|e| {
            Error::TtlApiRejected {
                signal: signal.into(),
                status: 0,
                message: format!("invalid TTL API URL: {e}"),
            }
        })
    }

    fn transport(signal: &str, e: reqwest::Error) -> Error {
        // Without the URL: the query carries nothing secret, but keep errors short.
        Error::TtlApiUnavailable {
            signal: signal.into(),
            reason: e.without_url().to_string(),
        }
    }

    async fn rejected(signal: &str, response: reqwest::Response) -> Error {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("error")
                    .or_else(|| v.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| body.chars().take(200).collect());
        if status >= 500 {
            Error::TtlApiUnavailable {
                signal: signal.into(),
                reason: format!("HTTP {status}: {message}"),
            }
        } else {
            Error::TtlApiRejected {
                signal: signal.into(),
                status,
                message,
            }
        }
    }

    async fn status(&self, signal: &str) -> Result<TtlStatus, Error> {
        let response = self
            .http
            .get(self.url(signal, &[])?)
            .header("SIGNOZ-API-KEY", self.api_key)
            .send()
            .await
            .map_err(|e| Self::transport(signal, e))?;
        if !response.status().is_success() {
            return Err(Self::rejected(signal, response).await);
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| Self::transport(signal, e))?;
        // SigNoz wraps answers in {"status": "success", "data": {...}} on some versions.
        let data = body.get("data").filter(|d| d.is_object()).unwrap_or(&body);
        let hours = |field: &str| {
            data.get(format!("{signal}_{field}"))
                .and_then(Value::as_i64)
        };
        Ok(TtlStatus {
            durations: hours("ttl_duration_hrs").zip(hours("move_ttl_duration_hrs")),
            status: data
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("success")
                .to_string(),
        })
    }

    /// Brings one signal to its target, reporting what happened.
    pub async fn converge(&self, target: TtlTarget) -> Result<TtlReport, Error> {
        let signal = target.signal;
        let wanted = (target.duration_hours as i64, target.to_cold_hours as i64);
        let current = self.status(signal).await?;
        let report = |outcome| TtlReport {
            signal,
            before: current.durations,
            after: target,
            outcome,
        };
        if current.status == "pending" {
            return Ok(report(TtlOutcome::Deferred {
                reason: "a TTL job is running".into(),
            }));
        }
        if current.durations == Some(wanted) && current.status != "failed" {
            return Ok(report(TtlOutcome::Unchanged));
        }
        let duration = format!("{}h", target.duration_hours);
        let to_cold = format!("{}h", target.to_cold_hours);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = self
                .http
                .post(self.url(
                    signal,
                    &[
                        ("duration", duration.as_str()),
                        ("coldStorage", "s3"),
                        ("toColdDuration", to_cold.as_str()),
                    ],
                )?)
                .header("SIGNOZ-API-KEY", self.api_key)
                .send()
                .await
                .map_err(|e| Self::transport(signal, e))?;
            if response.status().is_success() {
                break;
            }
            if response.status() == reqwest::StatusCode::CONFLICT {
                tracing::info!(signal, attempt, "TTL job already running (409)");
                if attempt >= self.patience.attempts {
                    return Ok(report(TtlOutcome::Deferred {
                        reason: "SigNoz answered 409: a TTL job is running".into(),
                    }));
                }
                tokio::time::sleep(self.patience.retry_delay).await;
                continue;
            }
            return Err(Self::rejected(signal, response).await);
        }
        tracing::info!(
            signal,
            before = ?current.durations,
            after_duration_hours = target.duration_hours,
            after_to_cold_hours = target.to_cold_hours,
            "TTL set"
        );
        let mut status = "pending".to_string();
        for poll in 0..self.patience.polls {
            if poll > 0 {
                tokio::time::sleep(self.patience.poll_delay).await;
            }
            status = self.status(signal).await?.status;
            if status != "pending" {
                break;
            }
        }
        Ok(report(if status == "failed" {
            TtlOutcome::Failed
        } else {
            TtlOutcome::Applied { status }
        }))
    }
}
