//! A stand-in for SigNoz's TTL API, built from SigNoz's own source (SigNoz/signoz, the
//! snapshot read for it: commit 9997c3da9c). What it models, and where:
//!
//! - Routes (`pkg/query-service/app/http_handler.go`, `RegisterRoutes`):
//!   `POST /api/v1/settings/ttl` under `AdminAccess`, `GET` under `ViewAccess`, the same for
//!   `/api/v2/settings/ttl`. An unknown route is gorilla/mux's `404 page not found`; a
//!   known path with another method is its bare 405.
//! - The admin-key check (`pkg/identn/apikeyidentn`, `pkg/http/middleware/authz.go`): the
//!   key travels in `SIGNOZ-API-KEY`; an unknown or missing key leaves the request without
//!   claims and the handler answers 401 `unauthenticated`; a key without the admin role
//!   gets 403 `only admins can access this resource` on the POSTs.
//! - Error envelopes: the v1 handlers answer through `APIHandler.HandleError`, a
//!   `text/plain` body `{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":N,"msg":"..."}]}`;
//!   the middleware and the v2 handlers through `pkg/http/render.Error`,
//!   `{"status":"error","error":{"type":"...","code":"...","message":"...","errors":[],"suggestions":[]}}`.
//!   Successes are the bare item (`APIHandler.WriteJSON`), no `{"status","data"}` wrapper.
//! - `POST /api/v1/settings/ttl` (`parser.go` `parseTTLParams`, `reader.go` `SetTTL`,
//!   `setTTLTraces` / `setTTLMetrics` / `setTTLLogs`): Go durations; `toColdDuration`
//!   only read when `coldStorage` is set and then `0 < toColdDuration < duration`; 409
//!   `TTL is already running` while the signal's last job is `pending`; otherwise a
//!   `pending` row is written and the ALTERs run in a goroutine: the answer comes at once.
//!   On the current logs schema (`hasCustomRetentionColumn`: `logs_v2` has
//!   `_retention_days`) logs are refused with HTTP 500 `SetTTLV2 only supported`.
//! - `GET /api/v1/settings/ttl` (`GetTTL`, `getTTLQueryStatus`): the durations in force
//!   (parsed from the table's `engine_full`, so the old ones while a job runs; -1 when the
//!   table TTL has no `toIntervalSecond`, as on the current logs schema), `expected_*`
//!   from the last job's row, and `status` `pending` / `failed` / `success`. Zero fields
//!   are left out (`omitempty` in `retentiontypes.GetTTLResponseItem`). A pending job is
//!   never timed out: the `UpdatedAt - now < 3600` test is true for every past time.
//! - `POST /api/v2/settings/ttl` (`setCustomRetentionTTL`, `SetTTLV2`): a JSON
//!   `CustomRetentionTTLParams`; without `_retention_days` it falls back to the v1
//!   `SetTTL` (asynchronous); with it, logs only, runs its ALTERs synchronously and answers
//!   every failure, "custom retention TTL is already running" included, as HTTP 400.
//!   Without a volume or with 0 cold days the cold move is dropped (cold -1).
//! - `GET /api/v2/settings/ttl` (`GetCustomRetentionTTL`): `version` `v2` with the last
//!   row's `default_ttl_days`, `ttl_conditions`, `cold_storage_ttl_days` and `status`
//!   (15 days, -1 and `success` when nothing was ever set), or `version` `v1` with the v1
//!   figures of logs. `cold_storage_volume` is declared but never filled in.
//! - Defaults of a fresh install (`retentiontypes.Default*RetentionDays`, the schema's
//!   TTLs): traces 15 days, logs 15 days, metrics 30 days, no move to cold (-1).
//!
//! Used by the integration tests and, as the `signoz-ttl-api` binary, by the local run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

const DAY: i64 = 86_400;
/// The three signals and their retention on a fresh install, in days.
pub const DEFAULT_DAYS: [(&str, i64); 3] = [("traces", 15), ("logs", 15), ("metrics", 30)];

/// What an API key may do (`authtypes.SigNozAdminRoleName` / `SigNozViewerRoleName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Viewer,
}

/// How the logs table is laid out (`hasCustomRetentionColumn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogsSchema {
    /// `logs_v2` without `_retention_days`: logs go through v1 like the other signals.
    Legacy,
    /// `logs_v2` with `_retention_days` (every current install): v1 refuses logs.
    CustomRetention,
}

/// How a TTL job ends (the ALTERs ClickHouse runs for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    /// Every ALTER succeeds after `job_duration`.
    Success,
    /// An ALTER fails: the row is marked `failed`, the TTL in force stays.
    Failure,
    /// The query service died mid-job: the row stays `pending` for ever.
    Never,
}

/// One row of SigNoz's `ttl_setting` table, for one signal (the fake keeps one row per
/// job, not one per ClickHouse table).
#[derive(Debug, Clone)]
struct Setting {
    signal: String,
    /// v2 rows keep days (`TTL: params.DefaultTTLDays`), v1 rows seconds.
    in_days: bool,
    ttl: i64,
    /// Cold move in the row's unit, or -1 for none.
    cold: i64,
    conditions: Value,
    status: &'static str,
    /// When a pending row's job is settled; `None`: never.
    done_at: Option<Instant>,
    /// The volume the job moves parts to (`TO VOLUME '<name>'`).
    volume: String,
}

/// The retention ClickHouse applies to a signal's parts now, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InForce {
    delete: i64,
    /// `None`: no `TO VOLUME` clause.
    to_cold: Option<i64>,
}

/// What the fake SigNoz knows and how it behaves.
pub struct Signoz {
    pub keys: BTreeMap<String, Role>,
    pub logs_schema: LogsSchema,
    /// Whether the `/api/v2/settings/ttl` routes exist (older SigNoz releases lack them).
    pub v2_routes: bool,
    /// How long an asynchronous (v1) job stays `pending`.
    pub job_duration: Duration,
    pub job_end: JobEnd,
    /// Volumes of the storage policy (`tiered`: `default` and `s3`).
    pub volumes: Vec<String>,
    /// Signals with a pending row on a table `GetTTL` does not look at (traces' span
    /// attribute keys, metrics' tables other than `samples_v4`): GET says `success`, the
    /// POST's conflict check (every table) says 409.
    pub hidden_pending: std::collections::BTreeSet<String>,
    in_force: BTreeMap<String, InForce>,
    settings: Vec<Setting>,
    /// Accepted POSTs (v1 and v2) and every request seen (`METHOD /path?query`).
    pub posts: u32,
    pub requests: Vec<String>,
    /// POSTs to hold before answering, and the signal that lets them go.
    held_posts: u32,
    gate: Arc<tokio::sync::Semaphore>,
}

impl Signoz {
    fn new(api_key: &str) -> Signoz {
        Signoz {
            keys: BTreeMap::from([(api_key.to_string(), Role::Admin)]),
            logs_schema: LogsSchema::CustomRetention,
            v2_routes: true,
            job_duration: Duration::from_millis(30),
            job_end: JobEnd::Success,
            volumes: vec!["default".into(), "s3".into()],
            hidden_pending: Default::default(),
            in_force: DEFAULT_DAYS
                .iter()
                .map(|(s, d)| {
                    (
                        s.to_string(),
                        InForce {
                            delete: d * DAY,
                            to_cold: None,
                        },
                    )
                })
                .collect(),
            settings: Vec::new(),
            posts: 0,
            requests: Vec::new(),
            held_posts: 0,
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }

    /// Settles every job whose time has come (SigNoz's goroutine finishing its ALTERs).
    fn settle(&mut self) {
        let now = Instant::now();
        let end = self.job_end;
        for i in 0..self.settings.len() {
            let s = &self.settings[i];
            if s.status != "pending" || s.done_at.is_none_or(|t| t > now) {
                continue;
            }
            let ok =
                end == JobEnd::Success && (s.volume.is_empty() || self.volumes.contains(&s.volume));
            let unit = if s.in_days { DAY } else { 1 };
            let (signal, ttl, cold) = (s.signal.clone(), s.ttl * unit, s.cold);
            self.settings[i].status = if ok { "success" } else { "failed" };
            if ok {
                let previous = self.in_force[&signal];
                self.in_force.insert(
                    signal,
                    InForce {
                        delete: ttl,
                        // v2 without a cold move leaves the cold column's default alone.
                        to_cold: match cold {
                            -1 if unit == DAY => previous.to_cold,
                            -1 => None,
                            c => Some(c * unit),
                        },
                    },
                );
            }
        }
    }

    fn last(&self, signal: &str) -> Option<&Setting> {
        self.settings.iter().rev().find(|s| s.signal == signal)
    }

    /// The retention in force for a signal, in whole days: `(total, hot)`, hot `None`
    /// when nothing moves to cold storage.
    pub fn in_force_days(&mut self, signal: &str) -> (i64, Option<i64>) {
        self.settle();
        let f = self.in_force[signal];
        (f.delete / DAY, f.to_cold.map(|c| c / DAY))
    }

    /// Hot days in force for a signal (panics when nothing moves to cold).
    pub fn hot_days(&mut self, signal: &str) -> i64 {
        self.in_force_days(signal)
            .1
            .expect("a cold move is in force")
    }

    /// A row as the API the signal goes through writes it (v2 rows in days).
    fn row(
        &self,
        signal: &str,
        total_days: i64,
        hot_days: Option<i64>,
        status: &'static str,
    ) -> Setting {
        let v2 = signal == "logs" && self.logs_schema == LogsSchema::CustomRetention;
        let unit = if v2 { 1 } else { DAY };
        Setting {
            signal: signal.into(),
            in_days: v2,
            ttl: total_days * unit,
            cold: hot_days.map_or(-1, |h| h * unit),
            conditions: json!([]),
            status,
            done_at: None,
            volume: "s3".into(),
        }
    }

    /// Sets a signal's retention as someone in the SigNoz UI (or an earlier owner) did:
    /// a finished job with these days.
    pub fn set_in_force(&mut self, signal: &str, total_days: i64, hot_days: Option<i64>) {
        let row = self.row(signal, total_days, hot_days, "success");
        self.settings.push(row);
        self.in_force.insert(
            signal.into(),
            InForce {
                delete: total_days * DAY,
                to_cold: hot_days.map(|h| h * DAY),
            },
        );
    }

    /// Leaves a job for `signal` that never finishes (the query service restarted under it).
    pub fn plant_stuck_job(&mut self, signal: &str, total_days: i64, hot_days: i64) {
        let row = self.row(signal, total_days, Some(hot_days), "pending");
        self.settings.push(row);
    }

    /// Finishes every pending job now (even one that would never finish).
    pub fn finish_jobs(&mut self) {
        let now = Instant::now();
        for s in &mut self.settings {
            if s.status == "pending" {
                s.done_at = Some(now);
            }
        }
        self.settle();
    }

    /// Custom retention rules on logs, as the SigNoz UI writes them (v2 schema).
    pub fn set_log_conditions(&mut self, conditions: Value) {
        self.settle();
        let last = self
            .settings
            .iter_mut()
            .rev()
            .find(|s| s.signal == "logs")
            .expect("logs were set once");
        last.conditions = conditions;
    }

    /// The custom retention rules of the last logs row.
    pub fn log_conditions(&self) -> Value {
        self.last("logs")
            .map_or(json!([]), |s| s.conditions.clone())
    }

    /// Holds the next `n` POSTs until [`Signoz::release_posts`].
    pub fn hold_posts(&mut self, n: u32) {
        self.held_posts = n;
        self.gate = Arc::new(tokio::sync::Semaphore::new(0));
    }

    /// Lets the held POSTs through.
    pub fn release_posts(&mut self) {
        self.held_posts = 0;
        self.gate
            .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }

    /// Whether a POST is being held now.
    pub fn holding(&self) -> bool {
        self.gate.available_permits() == 0 && Arc::strong_count(&self.gate) > 1
    }

    /// The requests seen to a path (`/api/v1/settings/ttl` or `/api/v2/...`) by method.
    pub fn count(&self, method: &str, path: &str) -> usize {
        let prefix = format!("{method} {path}");
        self.requests
            .iter()
            .filter(|r| r.starts_with(&prefix))
            .count()
    }
}

/// An answer: status, content type, body.
type Answer = (u16, &'static str, String);

/// `APIHandler.HandleError`: `http.Error` with the structured body, text/plain.
fn handle_error(code: u16, msg: &str) -> Answer {
    let body = json!({"data": null, "total": 0, "limit": 0, "offset": 0,
        "errors": [{"code": code, "msg": msg}]});
    (code, "text/plain; charset=utf-8", format!("{body}\n"))
}

/// `render.Error` with the HTTP code its error type maps to.
fn render_error(code: u16, typ: &str, err_code: &str, message: &str) -> Answer {
    let body = json!({"status": "error", "error": {"type": typ, "code": err_code,
        "message": message, "errors": [], "suggestions": []}});
    (code, "application/json", body.to_string())
}

fn write_json(value: Value) -> Answer {
    (200, "application/json", value.to_string())
}

/// Go's `time.ParseDuration`, for the units SigNoz's callers use (`h`, `m`, `s`, `ms`).
fn parse_go_duration(text: &str) -> Option<f64> {
    let mut rest = text;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Some(total)
}

fn query(target: &str) -> (String, BTreeMap<String, String>) {
    let url = url::Url::parse(&format!("http://x{target}")).expect("request target");
    (
        url.path().to_string(),
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

const SIGNALS: [&str; 3] = ["traces", "metrics", "logs"];

impl Signoz {
    /// One request, answered as SigNoz answers it.
    fn answer(&mut self, method: &str, target: &str, key: Option<&str>, body: &[u8]) -> Answer {
        self.requests.push(format!("{method} {target}"));
        self.settle();
        let (path, q) = query(target);
        let v2 = match path.as_str() {
            "/api/v1/settings/ttl" => false,
            "/api/v2/settings/ttl" if self.v2_routes => true,
            _ => {
                return (
                    404,
                    "text/plain; charset=utf-8",
                    "404 page not found\n".into(),
                );
            }
        };
        if method != "GET" && method != "POST" {
            return (405, "text/plain; charset=utf-8", String::new());
        }
        // identN: no claims without a known key; authz: admin for POST, any role for GET.
        let Some(role) = key.and_then(|k| self.keys.get(k)).copied() else {
            return render_error(401, "unauthenticated", "unauthenticated", "unauthenticated");
        };
        if method == "POST" && role != Role::Admin {
            return render_error(
                403,
                "forbidden",
                "authz_forbidden",
                "only admins can access this resource",
            );
        }
        match (method, v2) {
            ("GET", false) => self.get_v1(&q),
            ("POST", false) => self.post_v1(&q),
            ("GET", true) => write_json(self.get_v2()),
            _ => self.post_v2(body),
        }
    }

    fn get_v1(&self, q: &BTreeMap<String, String>) -> Answer {
        // parseGetTTL
        let signal = match q.get("type").map(String::as_str) {
            None | Some("") => {
                return handle_error(400, "type param cannot be empty from the query");
            }
            Some(t) if SIGNALS.contains(&t) => t,
            Some(t) => {
                return handle_error(
                    400,
                    &format!("type param should be metrics|traces|logs, got {t}"),
                );
            }
        };
        write_json(self.v1_item(signal))
    }

    /// `GetTTL`'s `GetTTLResponseItem` for one signal.
    fn v1_item(&self, signal: &str) -> Value {
        let f = self.in_force[signal];
        // engine_full of the current logs table has toIntervalDay(_retention_days): the
        // toIntervalSecond regexes find nothing.
        let days_based = signal == "logs" && self.logs_schema == LogsSchema::CustomRetention;
        let (del, mv) = if days_based {
            (-1, -1)
        } else {
            (f.delete / 3600, f.to_cold.map_or(-1, |c| c / 3600))
        };
        let last = self.last(signal);
        let (expected, expected_move) = match last {
            // A v2 row's TTL is in days: divided by 3600 it is 0 and left out.
            Some(s) => (s.ttl / 3600, if s.cold == -1 { -1 } else { s.cold / 3600 }),
            None => (0, 0),
        };
        let status = match last.map(|s| s.status) {
            Some("pending") => "pending",
            Some("failed") => "failed",
            _ => "success",
        };
        let mut item = serde_json::Map::new();
        for (field, value) in [
            (format!("{signal}_ttl_duration_hrs"), del),
            (format!("{signal}_move_ttl_duration_hrs"), mv),
            (format!("expected_{signal}_ttl_duration_hrs"), expected),
            (
                format!("expected_{signal}_move_ttl_duration_hrs"),
                expected_move,
            ),
        ] {
            if value != 0 {
                item.insert(field, json!(value));
            }
        }
        item.insert("status".into(), json!(status));
        Value::Object(item)
    }

    /// `parseTTLParams` then `SetTTL`.
    fn post_v1(&mut self, q: &BTreeMap<String, String>) -> Answer {
        let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
        let (signal, duration, cold_storage, to_cold) = (
            get("type"),
            get("duration"),
            get("coldStorage"),
            get("toColdDuration"),
        );
        if signal.is_empty() || duration.is_empty() {
            return handle_error(
                400,
                "type and duration param cannot be empty from the query",
            );
        }
        if !SIGNALS.contains(&signal) {
            return handle_error(
                400,
                &format!("type param should be metrics|traces|logs, got {signal}"),
            );
        }
        let Some(del) = parse_go_duration(duration).filter(|d| *d > 0.0) else {
            return handle_error(400, &format!("not a valid TTL duration {duration}"));
        };
        let mut cold = 0.0;
        if !cold_storage.is_empty() {
            match parse_go_duration(to_cold).filter(|d| *d > 0.0) {
                Some(c) if c >= del => {
                    return handle_error(
                        400,
                        "delete TTL should be greater than cold storage move TTL",
                    );
                }
                Some(c) => cold = c,
                None => {
                    return handle_error(
                        400,
                        &format!("not a valid toCold TTL duration {to_cold}"),
                    );
                }
            }
        }
        match self.set_ttl(signal, del as i64, cold_storage, cold as i64) {
            Ok(message) => write_json(json!({ "message": message })),
            Err((409, msg)) => handle_error(409, &msg),
            Err((_, msg)) => handle_error(500, &msg),
        }
    }

    /// `SetTTL`: the conflict and schema checks, then a pending row settled later.
    fn set_ttl(
        &mut self,
        signal: &str,
        delete_secs: i64,
        volume: &str,
        cold_secs: i64,
    ) -> Result<String, (u16, String)> {
        if signal == "logs" && self.logs_schema == LogsSchema::CustomRetention {
            return Err((500, "SetTTLV2 only supported".into()));
        }
        if self.last(signal).is_some_and(|s| s.status == "pending")
            || self.hidden_pending.contains(signal)
        {
            return Err((409, "TTL is already running".into()));
        }
        self.posts += 1;
        let done_at = match self.job_end {
            JobEnd::Never => None,
            _ => Some(Instant::now() + self.job_duration),
        };
        self.settings.push(Setting {
            signal: signal.into(),
            in_days: false,
            ttl: delete_secs,
            cold: if volume.is_empty() { -1 } else { cold_secs },
            conditions: json!([]),
            status: "pending",
            done_at,
            volume: volume.into(),
        });
        Ok("move ttl has been successfully set up".into())
    }

    /// `GetCustomRetentionTTL`.
    fn get_v2(&self) -> Value {
        if self.logs_schema == LogsSchema::Legacy {
            let item = self.v1_item("logs");
            let hours = |k: &str| item.get(k).and_then(Value::as_i64).unwrap_or(0);
            let mut out =
                json!({"version": "v1", "status": item["status"], "cold_storage_ttl_days": -1});
            for k in [
                "expected_logs_ttl_duration_hrs",
                "expected_logs_move_ttl_duration_hrs",
            ] {
                if hours(k) != 0 {
                    out[k] = json!(hours(k));
                }
            }
            if hours("logs_ttl_duration_hrs") > 0 {
                out["default_ttl_days"] = json!(hours("logs_ttl_duration_hrs") / 24);
            }
            if hours("logs_move_ttl_duration_hrs") > 0 {
                out["cold_storage_ttl_days"] = json!(hours("logs_move_ttl_duration_hrs") / 24);
            }
            return out;
        }
        match self.last("logs") {
            None => json!({"version": "v2", "status": "success",
                "default_ttl_days": 15, "cold_storage_ttl_days": -1}),
            Some(s) => {
                let mut out = json!({"version": "v2", "status": s.status,
                    "cold_storage_ttl_days": s.cold});
                if s.ttl != 0 {
                    out["default_ttl_days"] = json!(s.ttl);
                }
                if s.conditions.as_array().is_some_and(|c| !c.is_empty()) {
                    out["ttl_conditions"] = s.conditions.clone();
                }
                out
            }
        }
    }

    /// `setCustomRetentionTTL` then `SetTTLV2`.
    fn post_v2(&mut self, body: &[u8]) -> Answer {
        let invalid = || render_error(400, "invalid-input", "invalid_input", "Invalid data");
        let Ok(Value::Object(p)) = serde_json::from_slice::<Value>(body) else {
            return invalid();
        };
        let int = |k: &str| match p.get(k) {
            None | Some(Value::Null) => Some(0),
            Some(v) => v.as_i64(),
        };
        let string = |k: &str| match p.get(k) {
            None | Some(Value::Null) => Some(String::new()),
            Some(v) => v.as_str().map(str::to_string),
        };
        let (Some(signal), Some(days), Some(volume), Some(cold_days)) = (
            string("type"),
            int("defaultTTLDays"),
            string("coldStorageVolume"),
            int("coldStorageDurationDays"),
        ) else {
            return invalid();
        };
        let rules = match p.get("ttlConditions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(rules)) => rules.clone(),
            Some(_) => return invalid(),
        };
        // Every error of SetTTLV2 is rendered as invalid-input / internal: HTTP 400.
        let fail = |msg: String| render_error(400, "invalid-input", "internal", &msg);
        if self.logs_schema == LogsSchema::Legacy {
            let cold = if cold_days > 0 { cold_days * DAY } else { 0 };
            return match self.set_ttl(&signal, days * DAY, &volume, cold) {
                Ok(message) => write_json(json!({"message": format!(
                    "Custom retention not supported, applied standard TTL of {days} days. {message}")})),
                Err((_, msg)) => fail(msg),
            };
        }
        if signal != "logs" {
            return fail("custom retention TTL only supported for logs".into());
        }
        for (i, rule) in rules.iter().enumerate() {
            if rule["conditions"].as_array().is_none_or(|c| c.is_empty()) {
                return fail(format!("rule at index {i} has no filters"));
            }
        }
        if self.last("logs").is_some_and(|s| s.status == "pending") {
            return fail("custom retention TTL is already running".into());
        }
        let cold = if !volume.is_empty() && cold_days > 0 {
            cold_days
        } else {
            -1
        };
        self.posts += 1;
        let ok = self.job_end != JobEnd::Failure && (cold == -1 || self.volumes.contains(&volume));
        self.settings.push(Setting {
            signal: "logs".into(),
            in_days: true,
            ttl: days,
            cold,
            conditions: json!(rules),
            status: if ok { "success" } else { "failed" },
            done_at: None,
            volume: volume.clone(),
        });
        if !ok {
            return fail(format!(
                "error setting custom retention TTL for table signoz_logs.logs_v2, query: ALTER TABLE signoz_logs.logs_v2 ON CLUSTER cluster MODIFY TTL ... TO VOLUME '{volume}'"
            ));
        }
        let previous = self.in_force["logs"];
        self.in_force.insert(
            "logs".into(),
            InForce {
                delete: days * DAY,
                to_cold: if cold == -1 {
                    previous.to_cold
                } else {
                    Some(cold * DAY)
                },
            },
        );
        write_json(json!({"message": "custom retention TTL has been successfully set up"}))
    }
}

/// A running fake SigNoz; stops when dropped.
pub struct SignozServer {
    pub url: String,
    pub state: Arc<Mutex<Signoz>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SignozServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SignozServer {
    /// Runs `f` on the fake's state.
    pub fn with<T>(&self, f: impl FnOnce(&mut Signoz) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

async fn serve(
    state: Arc<Mutex<Signoz>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = req.method().as_str().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let key = req
        .headers()
        .get("signoz-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req.into_body().collect().await?.to_bytes();
    if method == "POST" {
        let gate = {
            let mut s = state.lock().unwrap();
            (s.held_posts > 0).then(|| {
                s.held_posts -= 1;
                s.gate.clone()
            })
        };
        if let Some(gate) = gate {
            let _ = gate.acquire().await;
        }
    }
    let (status, content_type, text) =
        state
            .lock()
            .unwrap()
            .answer(&method, &target, key.as_deref(), &body);
    Ok(Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(text)))
        .expect("response"))
}

/// Starts the fake SigNoz on an ephemeral loopback port, `api_key` an admin key.
pub async fn start_signoz(api_key: &str) -> SignozServer {
    start_signoz_on(api_key, 0).await
}

/// Starts the fake SigNoz on `port` (0: any free port).
pub async fn start_signoz_on(api_key: &str, port: u16) -> SignozServer {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let state = Arc::new(Mutex::new(Signoz::new(api_key)));
    let shared = state.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let state = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| serve(state.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    SignozServer { url, state, task }
}
