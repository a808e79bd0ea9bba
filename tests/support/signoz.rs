//! A faithful stand-in for SigNoz's TTL API (`/api/v1/settings/ttl`): checks the admin
//! key (`SIGNOZ-API-KEY`), the hour units, `coldStorage=s3` and `toColdDuration <
//! duration`, answers 409 while a job "runs" and reports job status. Used by the
//! integration tests and, as the `signoz-ttl-api` binary, by the local run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the fake SigNoz knows: the key, each signal's TTL and job status, and scripted
/// answers (409s while a job "runs", a job that fails).
#[derive(Default)]
pub struct Signoz {
    pub api_key: String,
    pub ttl: BTreeMap<String, (i64, i64, String)>,
    pub conflicts_left: u32,
    pub fail_jobs: bool,
    pub posts: u32,
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

fn hours(value: &str) -> Option<i64> {
    value.strip_suffix('h')?.parse().ok()
}

/// One request to SigNoz's `/api/v1/settings/ttl`, answered like SigNoz does.
fn answer(s: &mut Signoz, method: &str, target: &str, key: Option<&str>) -> (u16, Value) {
    if key != Some(s.api_key.as_str()) {
        return (403, json!({"status": "error", "error": "invalid API key"}));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/api/v1/settings/ttl" {
        return (404, json!({"status": "error", "error": "not found"}));
    }
    // Our values need no percent-decoding (letters, digits, `h`).
    let q: BTreeMap<String, String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let Some(signal) = q
        .get("type")
        .filter(|t| ["traces", "metrics", "logs"].contains(&t.as_str()))
    else {
        return (
            400,
            json!({"status": "error", "error": "type must be traces, metrics or logs"}),
        );
    };
    match method {
        "GET" => {
            let (d, m, status) = s
                .ttl
                .get(signal)
                .cloned()
                .unwrap_or((360, -1, "success".into()));
            (
                200,
                json!({"status": "success", "data": {
                    format!("{signal}_ttl_duration_hrs"): d,
                    format!("{signal}_move_ttl_duration_hrs"): m,
                    "status": status,
                }}),
            )
        }
        "POST" => {
            let (Some(d), Some(m)) = (
                q.get("duration").and_then(|v| hours(v)),
                q.get("toColdDuration").and_then(|v| hours(v)),
            ) else {
                return (
                    400,
                    json!({"status": "error", "error": "duration and toColdDuration must be hours like 720h"}),
                );
            };
            if q.get("coldStorage").map(String::as_str) != Some("s3") {
                return (
                    400,
                    json!({"status": "error", "error": "unknown cold storage volume"}),
                );
            }
            if m >= d {
                return (
                    400,
                    json!({"status": "error", "error": "move TTL should be smaller than delete TTL"}),
                );
            }
            if s.conflicts_left > 0 {
                s.conflicts_left -= 1;
                return (
                    409,
                    json!({"status": "error", "errorType": "conflict", "error": "TTL is already running"}),
                );
            }
            s.posts += 1;
            let status = if s.fail_jobs { "failed" } else { "success" };
            s.ttl.insert(signal.clone(), (d, m, status.into()));
            (
                200,
                json!({"status": "success", "data": {"message": "move ttl has been successfully set up"}}),
            )
        }
        _ => (
            405,
            json!({"status": "error", "error": "method not allowed"}),
        ),
    }
}

/// Starts the fake SigNoz on an ephemeral loopback port.
pub async fn start_signoz(api_key: &str) -> SignozServer {
    start_signoz_on(api_key, 0).await
}

/// Starts the fake SigNoz on `port` (0: any free port).
pub async fn start_signoz_on(api_key: &str, port: u16) -> SignozServer {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(Signoz {
        api_key: api_key.into(),
        ..Default::default()
    }));
    let shared = state.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let state = shared.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let mut lines = head.lines();
                let mut first = lines.next().unwrap_or_default().split(' ');
                let (method, target) = (
                    first.next().unwrap_or_default(),
                    first.next().unwrap_or_default(),
                );
                let key = lines
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("signoz-api-key"))
                    .map(|(_, v)| v.trim().to_string());
                let (status, body) =
                    answer(&mut state.lock().unwrap(), method, target, key.as_deref());
                let body = body.to_string();
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    SignozServer { url, state, task }
}
