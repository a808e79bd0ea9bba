//! Per-invocation counters: API calls through the counting proxies, Kubernetes calls in
//! the API server's audit log (one line per request) and SQL statements in PostgreSQL's
//! statement log (`log_statement = all`), snapshotted by the runtime API's observer as
//! each event is handed out and answered; and the invocation's critical path over every
//! proxied call and every PostgreSQL and API-server round trip, and the connections it
//! opened (each a TCP and TLS handshake on a real network).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use std::time::Instant;

use platform_tests::runtime_api::{Observer, Phase};
use platform_tests::tcp_proxy::{TcpProxy, critical_path};

use crate::proxy::{Call, CallLog, ConnectionLog};

/// A point in time, in the call log and in the statement log.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    at: Instant,
    calls: usize,
    /// The length of each statement log.
    sql_bytes: [u64; 2],
    audit_bytes: u64,
}

/// What one invocation did to the stack.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub calls: Vec<Call>,
    pub sql_reads: usize,
    pub sql_writes: usize,
    /// BEGIN/COMMIT/ROLLBACK/SET/DISCARD: neither read nor write.
    pub sql_other: usize,
    /// The longest chain of waits that could not overlap (proxied calls and PostgreSQL
    /// and API-server round trips).
    pub critical_path: usize,
    /// Connections opened to AWS, the TTL API, PostgreSQL and the API server.
    pub connections: usize,
}

impl Usage {
    /// API calls that read (GET/HEAD/LIST, Get*/Describe*/List*, dry runs).
    pub fn reads(&self) -> usize {
        self.calls.iter().filter(|c| !c.write).count()
    }

    /// API calls that change something.
    pub fn writes(&self) -> usize {
        self.calls.iter().filter(|c| c.write).count()
    }

    /// `service op×n` per distinct operation, writes marked with `*`.
    pub fn breakdown(&self) -> String {
        let mut counts: BTreeMap<(String, String, bool), usize> = BTreeMap::new();
        for c in &self.calls {
            *counts
                .entry((c.service.clone(), c.operation.clone(), c.write))
                .or_default() += 1;
        }
        counts
            .iter()
            .map(|((service, op, write), n)| {
                let star = if *write { "*" } else { "" };
                let times = if *n > 1 {
                    format!("×{n}")
                } else {
                    String::new()
                };
                format!("{service} {op}{star}{times}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Each invocation's marks at hand-out and at answer, filled in by an observer.
pub type Windows = Arc<Mutex<Vec<(Mark, Mark)>>>;

/// Snapshots the shared call log and, when given, PostgreSQL's log file.
#[derive(Clone)]
pub struct Meter {
    pub log: CallLog,
    pub connections: ConnectionLog,
    /// The TCP proxies in front of PostgreSQL and the API server.
    pub links: Arc<Mutex<Vec<Arc<TcpProxy>>>>,
    /// The statement logs of the stack's PostgreSQL 15 and 18.
    pub pg_logs: [Option<PathBuf>; 2],
    pub kube_audit_log: Option<PathBuf>,
}

/// `BENCH_TRACE=1`: each span of the window (ms from its start), to see what chains.
fn trace(from: Instant, spans: &[(Instant, Instant, String)]) {
    let ms = |t: Instant| t.saturating_duration_since(from).as_millis();
    let mut lines: Vec<(u128, u128, &str)> = spans
        .iter()
        .map(|(a, b, name)| (ms(*a), ms(*b), name.as_str()))
        .collect();
    lines.sort();
    for (a, b, name) in lines {
        eprintln!("  {a:>5} {b:>5} {name}");
    }
}

fn file_len(path: &Option<PathBuf>) -> u64 {
    path.as_ref()
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len())
}

impl Meter {
    /// The current position of both logs.
    pub fn mark(&self) -> Mark {
        Mark {
            at: Instant::now(),
            calls: self.log.lock().unwrap().len(),
            sql_bytes: self.pg_logs.each_ref().map(file_len),
            audit_bytes: file_len(&self.kube_audit_log),
        }
    }

    /// What happened between two marks.
    pub fn between(&self, from: Mark, to: Mark) -> Usage {
        let mut calls = self.log.lock().unwrap()[from.calls..to.calls].to_vec();
        let within = |t: Instant| t >= from.at && t <= to.at;
        let mut spans: Vec<(Instant, Instant, String)> = calls
            .iter()
            .filter_map(|c| Some((c.span?, format!("{} {}", c.service, c.operation))))
            .map(|((start, end), name)| (start, end, name))
            .collect();
        let mut connections = self
            .connections
            .lock()
            .unwrap()
            .iter()
            .filter(|t| within(**t))
            .count();
        for (i, link) in self.links.lock().unwrap().iter().enumerate() {
            let trips = link.round_trips();
            // Waited for: answered before the invocation was (a hang-up's close_notify,
            // sent as the function answers, is not).
            spans.extend(
                trips
                    .iter()
                    .filter(|t| within(t.start) && within(t.end))
                    .map(|t| (t.start, t.end, format!("link{i}#{}", t.connection))),
            );
            // A connection is new in this window when its first round trip is.
            let mut seen = std::collections::BTreeSet::new();
            connections += trips
                .iter()
                .filter(|t| seen.insert(t.connection) && within(t.start))
                .count();
        }
        if let Some(path) = &self.kube_audit_log {
            let text = read_range(path, from.audit_bytes, to.audit_bytes).unwrap_or_default();
            calls.extend(text.lines().filter_map(audited_call));
        }
        if std::env::var_os("BENCH_TRACE").is_some() {
            trace(from.at, &spans);
        }
        let mut usage = Usage {
            calls,
            critical_path: critical_path(spans.iter().map(|(start, end, _)| (*start, *end))),
            connections,
            ..Usage::default()
        };
        for (i, path) in self.pg_logs.iter().enumerate() {
            let Some(path) = path else { continue };
            let text = read_range(path, from.sql_bytes[i], to.sql_bytes[i]).unwrap_or_default();
            for kind in text.lines().filter_map(statement_kind) {
                match kind {
                    SqlKind::Read => usage.sql_reads += 1,
                    SqlKind::Write => usage.sql_writes += 1,
                    SqlKind::Other => usage.sql_other += 1,
                }
            }
        }
        usage
    }

    /// An observer recording a mark at each hand-out and answer, and where they go.
    pub fn observer(&self) -> (Observer, Windows) {
        let marks: Windows = Arc::default();
        let (meter, sink) = (self.clone(), marks.clone());
        let observer: Observer = Arc::new(move |index, phase| {
            let mark = meter.mark();
            let mut m = sink.lock().unwrap();
            match phase {
                Phase::HandedOut => m.push((mark, mark)),
                Phase::Answered => {
                    if let Some(slot) = m.get_mut(index) {
                        slot.1 = mark;
                    }
                }
            }
        });
        (observer, marks)
    }
}

/// A function's request in one audit line (the admin arranging the world is not counted):
/// `get scaledobjects`, `patch deployments`…; reads are get/list/watch and dry runs.
fn audited_call(line: &str) -> Option<Call> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    if event["user"]["username"] == "stack-admin"
        || event["user"]["username"].as_str()?.starts_with("system:")
    {
        return None;
    }
    let verb = event["verb"].as_str()?;
    let resource = event["objectRef"]["resource"].as_str().unwrap_or("-");
    let dry_run = event["requestURI"]
        .as_str()
        .is_some_and(|u| u.contains("dryRun="));
    Some(Call {
        service: "kube".into(),
        operation: format!("{verb} {resource}"),
        write: !matches!(verb, "get" | "list" | "watch") && !dry_run,
        span: None,
    })
}

fn read_range(path: &PathBuf, from: u64, to: u64) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    f.take(to.saturating_sub(from)).read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[derive(Debug, PartialEq, Eq)]
enum SqlKind {
    Read,
    Write,
    Other,
}

/// The kind of statement a `log_statement = all` line logs, if it logs one: simple
/// protocol lines read `LOG:  statement: …`, extended protocol ones `LOG:  execute s0: …`.
fn statement_kind(line: &str) -> Option<SqlKind> {
    let sql = if let Some((_, rest)) = line.split_once("LOG:  statement: ") {
        rest
    } else {
        let (_, rest) = line.split_once("LOG:  execute ")?;
        rest.split_once(": ")?.1
    };
    let first = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    Some(match first.as_str() {
        "SELECT" | "SHOW" | "WITH" => SqlKind::Read,
        "BEGIN" | "COMMIT" | "ROLLBACK" | "SET" | "RESET" | "DISCARD" | "START" => SqlKind::Other,
        _ => SqlKind::Write,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_functions_audited_request_is_a_call_and_the_admins_is_not() {
        // Lines as the stack's kube-apiserver writes them (audit level Metadata).
        let line = |user: &str, verb: &str, uri: &str| {
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"{uri}","verb":"{verb}","user":{{"username":"{user}","groups":["g"]}},"objectRef":{{"resource":"scaledobjects","namespace":"p","name":"s","apiGroup":"keda.sh","apiVersion":"v1alpha1"}},"responseStatus":{{"code":200}}}}"#
            )
        };
        let apply = audited_call(&line(
            "arn:aws:sts::1:assumed-role/sync-cluster/x",
            "patch",
            "/apis/keda.sh/v1alpha1/namespaces/p/scaledobjects/s?fieldManager=m",
        ))
        .unwrap();
        assert_eq!(
            (
                apply.service.as_str(),
                apply.operation.as_str(),
                apply.write
            ),
            ("kube", "patch scaledobjects", true)
        );
        let dry = audited_call(&line(
            "u",
            "patch",
            "/apis/keda.sh/v1alpha1/namespaces/p/scaledobjects/s?dryRun=All",
        ))
        .unwrap();
        assert!(!dry.write);
        let read = audited_call(&line(
            "u",
            "get",
            "/apis/keda.sh/v1alpha1/namespaces/p/scaledobjects/s",
        ))
        .unwrap();
        assert!(!read.write);
        assert!(audited_call(&line("stack-admin", "create", "/api/v1/namespaces")).is_none());
        assert!(
            audited_call(&line(
                "system:apiserver",
                "get",
                "/api/v1/namespaces/default"
            ))
            .is_none()
        );
    }

    use super::*;

    #[test]
    fn statement_lines_are_classified_and_other_lines_ignored() {
        let log = "2026-11-25 17:50:01.123 UTC [42] LOG:  statement: BEGIN\n\
                   2026-11-25 17:50:01.124 UTC [42] LOG:  execute s0: SELECT 1 FROM pg_roles WHERE rolname = $1\n\
                   2026-11-25 17:50:01.125 UTC [42] DETAIL:  parameters: $1 = 'x'\n\
                   2026-11-25 17:50:01.126 UTC [42] LOG:  statement: ALTER ROLE \"a\" PASSWORD 'SCRAM-SHA-256$…'\n\
                   \tcontinued line\n\
                   2026-11-25 17:50:01.127 UTC [42] LOG:  execute <unnamed>: GRANT x TO y\n";
        let kinds: Vec<SqlKind> = log.lines().filter_map(statement_kind).collect();
        assert_eq!(
            kinds,
            [
                SqlKind::Other,
                SqlKind::Read,
                SqlKind::Write,
                SqlKind::Write
            ]
        );
    }
}
