//! A Lambda Runtime API endpoint on loopback: starts a function's real binary the way
//! the Lambda service does (`AWS_LAMBDA_RUNTIME_API`), hands it events through
//! `/invocation/next`, and collects what it answers. Used by the local run and the
//! benchmarks; it measures init (process start to the first `/next`) and peak memory.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

const PREFIX: &str = "/2018-06-01/runtime";

/// What one invocation returned.
#[derive(Debug, Clone)]
pub struct InvocationResult {
    /// `true` for `/response`, `false` for `/error`.
    pub ok: bool,
    pub body: Value,
    /// From handing out the event to receiving the answer.
    pub duration: Duration,
    /// From handing out the event to the function's next `/next`: the answer plus what
    /// it does after answering (its telemetry flush), where Lambda would freeze it.
    pub cycle: Option<Duration>,
}

/// The whole run of one function process.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Process start to its first `/next` request.
    pub init: Duration,
    pub results: Vec<InvocationResult>,
    /// Peak resident memory of the process (VmHWM), in KiB.
    pub max_rss_kib: Option<u64>,
    /// CPU time of all its threads until it came back for the last event (schedstat).
    pub cpu: Option<Duration>,
    /// What the process reported to `/init/error`, if anything.
    pub init_error: Option<Value>,
}

/// Where an invocation is when an [`Observer`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The event is about to be handed to the function.
    HandedOut,
    /// The function answered; it cannot fetch the next event until the observer returns.
    Answered,
}

/// Called with each invocation's index and [`Phase`] (e.g. to snapshot request counters).
pub type Observer = Arc<dyn Fn(usize, Phase) + Send + Sync>;

/// The host's TLS trust settings, not passed on to a function unless set in
/// [`RunOptions::env`].
pub const HOST_TRUST_SETTINGS: [&str; 3] = ["AWS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"];

/// How to run a function, beyond its binary and events.
#[derive(Clone)]
pub struct RunOptions {
    /// Extra environment (the process also inherits ours, but [`HOST_TRUST_SETTINGS`]).
    pub env: Vec<(String, String)>,
    /// The run is stopped once this passes.
    pub timeout: Duration,
    pub observer: Option<Observer>,
    /// Appends the process's stdout and stderr to this file; `None` inherits ours.
    pub log_file: Option<PathBuf>,
}

impl RunOptions {
    /// Inherited environment and output, no observer.
    pub fn new(timeout: Duration) -> Self {
        RunOptions {
            env: Vec::new(),
            timeout,
            observer: None,
            log_file: None,
        }
    }
}

#[derive(Default)]
struct Shared {
    pending: VecDeque<Value>,
    first_next: Option<Instant>,
    handed_out: Option<(String, Instant)>,
    /// When the last answered event was handed out, until the function's next `/next`.
    answered_at: Option<Instant>,
    results: Vec<InvocationResult>,
    init_error: Option<Value>,
    next_id: u64,
    /// The run is over: held `/next` requests are let go.
    stopped: bool,
}

struct State {
    shared: Mutex<Shared>,
    changed: Notify,
    function_arn: String,
    observer: Option<Observer>,
}

/// Runs `binary` under the Runtime API with `env`, feeds it `events` in order, and stops
/// it once every event is answered (or it fails to initialise, or `timeout` passes).
pub async fn run_function(
    binary: &Path,
    function_name: &str,
    env: &[(String, String)],
    events: Vec<Value>,
    timeout: Duration,
) -> std::io::Result<RunReport> {
    let options = RunOptions {
        env: env.to_vec(),
        ..RunOptions::new(timeout)
    };
    run_function_with(binary, function_name, &options, events).await
}

/// [`run_function`] with an observer and the process's output sent to a file.
pub async fn run_function_with(
    binary: &Path,
    function_name: &str,
    options: &RunOptions,
    events: Vec<Value>,
) -> std::io::Result<RunReport> {
    let (env, timeout) = (&options.env, options.timeout);
    let expected = events.len();
    let state = Arc::new(State {
        shared: Mutex::new(Shared {
            pending: events.into(),
            ..Default::default()
        }),
        changed: Notify::new(),
        function_arn: format!("arn:aws:lambda:eu-west-1:123456789012:function:{function_name}"),
        observer: options.observer.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let server_state = state.clone();
    let server = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let st = server_state.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| handle(st.clone(), req));
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        }
    });

    let mut command = tokio::process::Command::new(binary);
    if let Some(path) = &options.log_file {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        command.stdout(log.try_clone()?).stderr(log);
    }
    // A Lambda sandbox does not carry this host's trust settings (this one may point
    // AWS_CA_BUNDLE at a large system bundle, which the functions would then parse).
    for name in HOST_TRUST_SETTINGS {
        command.env_remove(name);
    }
    let started = Instant::now();
    let mut child = command
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id();

    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = state.changed.notified();
        {
            let s = state.shared.lock().unwrap();
            // Done once the last answer is in and the function came back for more (it
            // flushed what it does after answering), or it failed to start.
            let back = s.results.last().is_some_and(|r| r.cycle.is_some());
            if (s.results.len() >= expected && back) || s.init_error.is_some() {
                break;
            }
        }
        tokio::select! {
            _ = notified => {}
            status = child.wait() => {
                let status = status?;
                let mut s = state.shared.lock().unwrap();
                if s.init_error.is_none() && s.results.len() < expected {
                    s.init_error = Some(serde_json::json!({"errorType": "ProcessExited", "errorMessage": status.to_string()}));
                }
                break;
            }
            _ = tokio::time::sleep_until(deadline) => {
                let mut s = state.shared.lock().unwrap();
                s.init_error.get_or_insert(serde_json::json!({"errorType": "Timeout", "errorMessage": format!("no answer within {timeout:?}")}));
                break;
            }
        }
    }
    let max_rss_kib = pid.and_then(peak_rss_kib);
    let cpu = pid.and_then(cpu_time);
    let _ = child.start_kill();
    let _ = child.wait().await;
    state.shared.lock().unwrap().stopped = true;
    state.changed.notify_waiters();
    let _ = stop_tx.send(());
    let _ = server.await;

    let mut s = state.shared.lock().unwrap();
    Ok(RunReport {
        init: s
            .first_next
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(started)),
        results: std::mem::take(&mut s.results),
        max_rss_kib,
        cpu,
        init_error: s.init_error.take(),
    })
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Time on a CPU of every thread of `pid`, in nanoseconds: the first field of each
/// task's `schedstat` (finer than `stat`'s clock ticks).
fn cpu_time(pid: u32) -> Option<Duration> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, Bytes::new()));
    };
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let parsed = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    if rest == "/invocation/next" {
        loop {
            let notified = state.changed.notified();
            let (next, first, came_back) = {
                let mut s = state.shared.lock().unwrap();
                if s.stopped {
                    return Ok(reply(StatusCode::GONE, Bytes::new()));
                }
                let first = s.first_next.is_none();
                s.first_next.get_or_insert_with(Instant::now);
                let came_back = s.answered_at.take().map(|handed| handed.elapsed());
                if let (Some(cycle), Some(last)) = (came_back, s.results.last_mut()) {
                    last.cycle = Some(cycle);
                }
                let next = if s.handed_out.is_none() {
                    s.pending.pop_front().map(|event| {
                        s.next_id += 1;
                        let id = format!("local-{:04}", s.next_id);
                        s.handed_out = Some((id.clone(), Instant::now()));
                        (id, event, s.results.len())
                    })
                } else {
                    None
                };
                (next, first, came_back)
            };
            // Only a change wakes the others: notifying on every pass would wake this
            // request's own `notified` and spin, starving the run loop once all events
            // are answered and the function is waiting for more.
            if first || next.is_some() || came_back.is_some() {
                state.changed.notify_waiters();
            }
            if let Some((id, event, index)) = next {
                if let Some(observe) = &state.observer {
                    observe(index, Phase::HandedOut);
                }
                let deadline = jiff::Timestamp::now().as_millisecond() + 300_000;
                let mut r = reply(StatusCode::OK, Bytes::from(event.to_string()));
                let h = r.headers_mut();
                h.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
                h.insert(
                    "lambda-runtime-deadline-ms",
                    deadline.to_string().parse().unwrap(),
                );
                h.insert(
                    "lambda-runtime-invoked-function-arn",
                    state.function_arn.parse().unwrap(),
                );
                h.insert("content-type", "application/json".parse().unwrap());
                return Ok(r);
            }
            // No event to hand out: hold the request like the service does.
            notified.await;
        }
    }
    if rest == "/init/error" {
        state.shared.lock().unwrap().init_error = Some(parsed());
        state.changed.notify_waiters();
        return Ok(reply(StatusCode::ACCEPTED, Bytes::new()));
    }
    if let Some(tail) = rest.strip_prefix("/invocation/") {
        let ok = tail.ends_with("/response");
        if ok || tail.ends_with("/error") {
            let mut s = state.shared.lock().unwrap();
            let mut answered = None;
            if let Some((_, handed)) = s.handed_out.take() {
                let duration = handed.elapsed();
                answered = Some(s.results.len());
                s.answered_at = Some(handed);
                s.results.push(InvocationResult {
                    ok,
                    body: parsed(),
                    duration,
                    cycle: None,
                });
            }
            drop(s);
            if let (Some(observe), Some(index)) = (&state.observer, answered) {
                observe(index, Phase::Answered);
            }
            state.changed.notify_waiters();
            return Ok(reply(StatusCode::ACCEPTED, Bytes::new()));
        }
    }
    Ok(reply(StatusCode::NOT_FOUND, Bytes::new()))
}
