//! A loopback HTTP proxy in front of moto that answers matching requests with the faults
//! AWS really sends (S3's 503 SlowDown and 500 InternalError in REST-XML, JSON-protocol
//! and Query-protocol throttling) or drops the connection, then forwards the rest.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Which requests a fault applies to; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// HTTP method, e.g. `PUT`.
    pub method: Option<&'static str>,
    /// Substring of the path and query, e.g. `/my-bucket?lifecycle`.
    pub path_contains: Option<String>,
    /// JSON-protocol operation (`X-Amz-Target`, e.g. `secretsmanager.GetSecretValue`) or
    /// Query-protocol `Action` (e.g. `DescribeDBInstances`).
    pub operation: Option<&'static str>,
}

impl Match {
    /// Requests with this method whose path and query contain `path`.
    pub fn s3(method: &'static str, path: impl Into<String>) -> Match {
        Match {
            method: Some(method),
            path_contains: Some(path.into()),
            operation: None,
        }
    }

    /// JSON-protocol requests with this `X-Amz-Target` or Query requests with this `Action`.
    pub fn operation(operation: &'static str) -> Match {
        Match {
            operation: Some(operation),
            ..Match::default()
        }
    }

    fn matches(&self, seen: &Seen) -> bool {
        self.method.is_none_or(|m| m == seen.method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| seen.path.contains(p))
            && self
                .operation
                .is_none_or(|o| seen.operation.as_deref() == Some(o))
    }
}

/// An answer AWS gives under load or failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503 `SlowDown` (S3's throttling) / `ServiceUnavailable`.
    SlowDown,
    /// HTTP 500 `InternalError` / `InternalFailure`.
    InternalError,
    /// HTTP 400 `ThrottlingException` (JSON) / `Throttling` (Query).
    Throttling,
    /// The connection closes without an answer; the request never reaches moto.
    DropConnection,
    /// The request reaches moto, then the connection closes before its answer: the
    /// caller cannot tell whether the call took effect.
    DropResponse,
}

/// How often a rule fires.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    /// Matching requests let through before the first fault.
    pub skip: u32,
    /// Faults to answer after that (`u32::MAX`: every one).
    pub count: u32,
}

impl Times {
    /// The next `n` matching requests.
    pub fn next(n: u32) -> Times {
        Times { skip: 0, count: n }
    }
    /// Every matching request from now on.
    pub fn always() -> Times {
        Times::next(u32::MAX)
    }
}

struct Rule {
    matcher: Match,
    fault: Fault,
    times: Times,
}

/// One request the proxy saw, and whether it was answered with a fault.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub operation: Option<String>,
    pub fault: Option<Fault>,
    pub at: std::time::Instant,
}

#[derive(Default)]
struct Shared {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`: use as the SDK's endpoint.
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (`http://host:port`, e.g. moto).
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream = url::Url::parse(upstream).expect("upstream URL");
        let upstream_addr = format!(
            "{}:{}",
            upstream.host_str().expect("upstream host"),
            upstream.port_or_known_default().expect("upstream port")
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (state, upstream) = (state.clone(), upstream_addr.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |req| proxy(state.clone(), upstream.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy { url, shared, task }
    }

    /// Answers requests matching `matcher` with `fault`, `times` over.
    pub fn inject(&self, matcher: Match, fault: Fault, times: Times) {
        self.shared.lock().unwrap().rules.push(Rule {
            matcher,
            fault,
            times,
        });
    }

    /// Removes every rule: from now on everything is forwarded.
    pub fn heal(&self) {
        self.shared.lock().unwrap().rules.clear();
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().unwrap().seen.clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear_seen(&self) {
        self.shared.lock().unwrap().seen.clear();
    }
}

#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for Dropped {}

/// The AWS protocol of a request, which decides the shape of its error answer.
enum Protocol {
    RestXml,
    Json,
    Query,
}

fn query_action(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.into_owned())
}

async fn proxy(
    shared: Arc<Mutex<Shared>>,
    upstream: String,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let form = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let (protocol, operation) = match (&target, form) {
        (Some(t), _) => (Protocol::Json, Some(t.clone())),
        (None, true) => (Protocol::Query, query_action(&body)),
        (None, false) => (Protocol::RestXml, None),
    };
    let mut seen = Seen {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        operation,
        fault: None,
        at: std::time::Instant::now(),
    };
    {
        let mut s = shared.lock().unwrap();
        let live = |r: &&mut Rule| r.times.skip > 0 || r.times.count > 0;
        if let Some(rule) = s
            .rules
            .iter_mut()
            .find(|r| r.matcher.matches(&seen) && live(r))
        {
            if rule.times.skip > 0 {
                rule.times.skip -= 1;
            } else if rule.times.count > 0 {
                rule.times.count = rule.times.count.saturating_sub(1);
                seen.fault = Some(rule.fault);
            }
        }
        s.seen.push(seen.clone());
    }
    match seen.fault {
        Some(Fault::DropConnection) => Err(Dropped),
        Some(Fault::DropResponse) => {
            forward(&upstream, parts, body).await?;
            Err(Dropped)
        }
        Some(fault) => Ok(fault_response(fault, protocol)),
        None => forward(&upstream, parts, body).await,
    }
}

fn fault_response(fault: Fault, protocol: Protocol) -> Response<Full<Bytes>> {
    let (status, code, message) = match (fault, &protocol) {
        (Fault::SlowDown, Protocol::RestXml) => {
            (503, "SlowDown", "Please reduce your request rate.")
        }
        (Fault::SlowDown, _) => (503, "ServiceUnavailable", "Service is unavailable."),
        (Fault::InternalError, Protocol::RestXml) => (
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        (Fault::InternalError, Protocol::Json) => (
            500,
            "InternalServiceError",
            "An error occurred on the server side.",
        ),
        (Fault::InternalError, Protocol::Query) => {
            (500, "InternalFailure", "An internal error occurred.")
        }
        (Fault::Throttling, Protocol::Query) => (400, "Throttling", "Rate exceeded"),
        (Fault::Throttling, _) => (400, "ThrottlingException", "Rate exceeded"),
        (Fault::DropConnection | Fault::DropResponse, _) => {
            unreachable!("dropped connections have no answer")
        }
    };
    let request_id = "4442587FB7D0A2F9";
    let (content_type, body) = match protocol {
        Protocol::RestXml => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
            ),
        ),
        Protocol::Json => (
            "application/x-amz-json-1.1",
            serde_json::json!({"__type": code, "message": message}).to_string(),
        ),
        Protocol::Query => (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
                if status == 400 { "Sender" } else { "Receiver" }
            ),
        ),
    };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amz-request-id", request_id)
        .header("x-amzn-requestid", request_id);
    if matches!(protocol, Protocol::Json) {
        response = response.header("x-amzn-errortype", code);
    }
    response
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

/// Sends the request to moto on a fresh connection and relays the answer.
pub(crate) async fn forward(
    upstream: &str,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let stream = tokio::net::TcpStream::connect(upstream)
        .await
        .map_err(|_| Dropped)?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Dropped)?;
    tokio::spawn(connection);
    let mut request = Request::from_parts(parts, Full::new(body));
    // The body is buffered whole, so its length is known; chunked framing is gone.
    request.headers_mut().remove("transfer-encoding");
    let response = sender.send_request(request).await.map_err(|_| Dropped)?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}
