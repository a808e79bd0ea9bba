//! A counting HTTP proxy on loopback: forwards every request to one upstream (moto, a
//! fake SigNoz), optionally after a one-way delay each way (a region's latency), and
//! records which API operation it was, whether it reads or writes, and when it was
//! waiting on the upstream, so the bench can count an invocation's calls and their
//! critical path. Every connection it accepts is logged too: against AWS each one is a
//! TLS handshake.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use platform_tests::tcp_proxy::hold_until;

/// One request that went through a proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `s3`, `secretsmanager`, `rds`, `kube`, `signoz`, …
    pub service: String,
    /// The API operation (`GetSecretValue`, `PUT ?lifecycle`, `apply statefulsets`, …).
    pub operation: String,
    pub write: bool,
    /// From the request's arrival to the upstream's answer (proxied calls only; the
    /// API server's round trips are timed by its TCP proxy).
    pub span: Option<(Instant, Instant)>,
}

/// Every call through every proxy, in order; shared so one index marks a point in time.
pub type CallLog = Arc<Mutex<Vec<Call>>>;

/// When each proxied connection was accepted.
pub type ConnectionLog = Arc<Mutex<Vec<Instant>>>;

/// A running proxy; it stops when dropped.
pub struct CountingProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Route {
    service: &'static str,
    upstream: String,
    http: reqwest::Client,
    log: CallLog,
    one_way: Duration,
}

impl CountingProxy {
    /// Starts a proxy to `upstream` (`http://host:port`, no trailing slash) that holds
    /// each request and each answer `one_way`; requests without a SigV4 credential scope
    /// are counted as `service`.
    pub async fn start(
        service: &'static str,
        upstream: &str,
        log: CallLog,
        connections: ConnectionLog,
        one_way: Duration,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let route = Arc::new(Route {
            service,
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .map_err(std::io::Error::other)?,
            log,
            one_way,
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                connections.lock().unwrap().push(Instant::now());
                let _ = stream.set_nodelay(true);
                let route = route.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| forward(route.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(CountingProxy { url, task })
    }
}

async fn forward(
    route: Arc<Route>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let arrived = Instant::now();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    hold_until(arrived + route.one_way).await;
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut call = classify(
        route.service,
        parts.method.as_str(),
        &target,
        &parts.headers,
        &body,
    );

    let mut upstream = route
        .http
        .request(parts.method.clone(), format!("{}{target}", route.upstream))
        .body(body);
    // The Host header goes through unchanged: SigV4 signs it, and moto (evaluating IAM)
    // checks every signature against the Host it receives.
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.send().await {
        Ok(a) => a,
        Err(e) => {
            call.span = Some((arrived, Instant::now()));
            route.log.lock().unwrap().push(call);
            let mut r = Response::new(Full::new(Bytes::from(format!("proxy: {e}"))));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            return Ok(r);
        }
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    call.span = Some((arrived, Instant::now()));
    route.log.lock().unwrap().push(call);
    hold_until(Instant::now() + route.one_way).await;
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = status;
    for (name, value) in &headers {
        // The body is whole now; a HEAD answer keeps its Content-Length (S3 HeadObject).
        if !matches!(name.as_str(), "connection" | "transfer-encoding") {
            r.headers_mut().append(name, value.clone());
        }
    }
    Ok(r)
}

/// What a request is: the service from its SigV4 credential scope (else `default`), the
/// operation from `X-Amz-Target` or `Action=` (JSON and query protocols) or from the
/// method and path (S3, SigNoz); reads are Get/Describe/List/Head operations and
/// GET/HEAD requests.
pub fn classify(
    default: &str,
    method: &str,
    target: &str,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> Call {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let service = header("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or(default)
        .to_string();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let action = header("x-amz-target")
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_string())
        .or_else(|| form_value(query, "Action"))
        .or_else(|| form_value(std::str::from_utf8(body).unwrap_or(""), "Action"));
    if let Some(operation) = action {
        let write = !["Get", "Describe", "List", "Head", "BatchGet"]
            .iter()
            .any(|p| operation.starts_with(p));
        return Call {
            service,
            operation,
            write,
            span: None,
        };
    }
    let read = matches!(method, "GET" | "HEAD");
    let operation = match service.as_str() {
        "s3" => s3_operation(method, path, query),
        _ => format!("{method} {path}"),
    };
    Call {
        service,
        operation,
        write: !read,
        span: None,
    }
}

fn form_value(form: &str, key: &str) -> Option<String> {
    form.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

/// `GET ?lifecycle`, `PUT object`, `GET ?list-type` … (S3 REST names its sub-resources in the query).
fn s3_operation(method: &str, path: &str, query: &str) -> String {
    let subresource = query
        .split('&')
        .map(|kv| kv.split('=').next().unwrap_or(""))
        .find(|k| !k.is_empty() && *k != "x-id");
    match subresource {
        Some(sub) => format!("{method} ?{sub}"),
        None if path.trim_matches('/').contains('/') => format!("{method} object"),
        None => format!("{method} bucket"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const SM_AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20261125/eu-west-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=00";

    #[test]
    fn json_protocol_calls_are_named_by_their_target() {
        let h = headers(&[
            ("authorization", SM_AUTH),
            ("x-amz-target", "secretsmanager.PutSecretValue"),
        ]);
        let call = classify("moto", "POST", "/", &h, b"{}");
        assert_eq!(call.service, "secretsmanager");
        assert_eq!(call.operation, "PutSecretValue");
        assert!(call.write);
        let h = headers(&[
            ("authorization", SM_AUTH),
            ("x-amz-target", "secretsmanager.DescribeSecret"),
        ]);
        assert!(!classify("moto", "POST", "/", &h, b"{}").write);
    }

    #[test]
    fn query_protocol_calls_are_named_by_their_action_even_when_posted() {
        let h = headers(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=t/20261125/eu-west-1/rds/aws4_request",
        )]);
        let call = classify(
            "moto",
            "POST",
            "/",
            &h,
            b"Action=DescribeDBInstances&Version=2014-10-31",
        );
        assert_eq!(
            (call.service.as_str(), call.operation.as_str(), call.write),
            ("rds", "DescribeDBInstances", false)
        );
    }

    #[test]
    fn s3_calls_are_named_by_sub_resource_and_classified_by_method() {
        let h = headers(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=t/20261125/eu-west-1/s3/aws4_request",
        )]);
        let put = classify("moto", "PUT", "/cold?lifecycle", &h, b"<x/>");
        assert_eq!(
            (put.operation.as_str(), put.write),
            ("PUT ?lifecycle", true)
        );
        let get = classify(
            "moto",
            "GET",
            "/config/platform.yaml?x-id=GetObject",
            &h,
            b"",
        );
        assert_eq!((get.operation.as_str(), get.write), ("GET object", false));
    }
}
