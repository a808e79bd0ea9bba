//! HTTP plumbing: listeners (TLS and plain), bearer-token check, body limits, and turning
//! API replies (documents or watch streams) into HTTP responses.

use crate::api::{Cluster, Encoding, Reply, Request, WatchStream};
use crate::status;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_rustls::TlsAcceptor;

/// How bearer tokens are checked.
#[derive(Clone)]
pub enum TokenCheck {
    /// Exactly this token.
    Exact(String),
    /// Any token with this prefix (e.g. `k8s-aws-v1.` for EKS tokens).
    Prefix(String),
    /// Any token the predicate accepts.
    Custom(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never print tokens.
            TokenCheck::Exact(_) => f.write_str("Exact(..)"),
            TokenCheck::Prefix(p) => write!(f, "Prefix({p:?})"),
            TokenCheck::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl TokenCheck {
    /// Accepts EKS tokens (`k8s-aws-v1.` followed by the presigned STS URL).
    pub fn eks() -> TokenCheck {
        TokenCheck::Prefix("k8s-aws-v1.".into())
    }

    /// Whether `token` passes.
    pub fn accepts(&self, token: &str) -> bool {
        match self {
            TokenCheck::Exact(t) => constant_time_eq(t.as_bytes(), token.as_bytes()),
            TokenCheck::Prefix(p) => token.len() > p.len() && token.starts_with(p.as_str()),
            TokenCheck::Custom(f) => f(token),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// State shared by all connections.
pub struct Shared {
    /// The API.
    pub cluster: Cluster,
    /// Token check; `None` accepts every request.
    pub auth: Option<TokenCheck>,
}

/// The API server's request body limit (3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

type Body = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

/// A streaming body fed by a channel (watch events).
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

fn json_response(code: u16, body: &serde_json::Value, content_type: &str) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(full(bytes))
        .expect("static headers are valid")
}

fn error_response(e: status::ApiError) -> Response<Body> {
    json_response(e.code, &e.body, "application/json")
}

fn authorized(shared: &Shared, req: &hyper::Request<Incoming>) -> bool {
    let Some(check) = &shared.auth else {
        return true;
    };
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    match header {
        Some(h) => {
            let token = h
                .strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
                .map(str::trim);
            token.is_some_and(|t| check.accepts(t))
        }
        // Health and version are public on clusters that allow anonymous access to them.
        None => matches!(
            req.uri().path(),
            "/healthz" | "/livez" | "/readyz" | "/version"
        ),
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
    server_address: String,
) -> Result<Response<Body>, Infallible> {
    if !authorized(&shared, &req) {
        return Ok(error_response(status::unauthorized()));
    }
    let header_str = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut api_req = Request {
        method: req.method().as_str().to_string(),
        path: req.uri().path().to_string(),
        query: req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default(),
        content_type: header_str(header::CONTENT_TYPE),
        accept: header_str(header::ACCEPT),
        user_agent: header_str(header::USER_AGENT),
        body: Vec::new(),
        server_address,
    };
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => api_req.body = b.to_bytes().to_vec(),
        Err(_) => {
            let mut e = status::bad_request("Request entity too large: limit is 3145728");
            e.code = 413;
            e.body["code"] = serde_json::json!(413);
            e.body["reason"] = serde_json::json!("RequestEntityTooLarge");
            return Ok(error_response(e));
        }
    }
    let head = api_req.method == "HEAD";
    let reply = shared.cluster.handle(&api_req);
    let mut resp = match reply {
        Reply::Doc {
            code,
            body,
            encoding: Encoding::Json,
        } => json_response(code, &body, "application/json"),
        Reply::Doc {
            code,
            body,
            encoding: Encoding::AggregatedDiscovery,
        } => {
            let mut r = json_response(
                code,
                &body,
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            );
            r.headers_mut()
                .insert(header::VARY, header::HeaderValue::from_static("Accept"));
            r
        }
        Reply::Doc {
            code,
            body,
            encoding: Encoding::Yaml,
        } => Response::builder()
            .status(code)
            .header(header::CONTENT_TYPE, "application/yaml")
            .body(full(serde_norway::to_string(&body).unwrap_or_default()))
            .expect("static headers are valid"),
        Reply::Text(code, text) => Response::builder()
            .status(code)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(full(text))
            .expect("static headers are valid"),
        Reply::Watch(w) => watch_response(*w),
    };
    if head {
        *resp.body_mut() = full(Bytes::new());
    }
    Ok(resp)
}

fn watch_response(w: WatchStream) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(stream_watch(w, tx));
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(ChannelBody(rx).boxed())
        .expect("static headers are valid")
}

fn line(v: &serde_json::Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

async fn stream_watch(mut w: WatchStream, tx: mpsc::Sender<Bytes>) {
    for ev in &w.initial {
        if tx.send(line(ev)).await.is_err() {
            return;
        }
    }
    let deadline = w.timeout.map(|t| tokio::time::Instant::now() + t);
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = w.events.recv() => match r {
                Ok(ev) => {
                    if let Some(v) = w.filter.translate(&ev)
                        && tx.send(line(&v)).await.is_err()
                    {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Events were lost: end like the API server does for a too-slow watcher,
                    // so the client re-lists.
                    let gone = status::expired("watch fell behind");
                    let _ = tx.send(line(&serde_json::json!({"type": "ERROR", "object": gone.body}))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = sleep => return,
            _ = tx.closed() => return,
        }
    }
}

fn serve_connection<S>(io: S, shared: Arc<Shared>, server_address: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = service_fn(move |req| handle(shared.clone(), req, server_address.clone()));
        // Connection errors (clients hanging up) are not the emulator's problem.
        let _ = auto::Builder::new(TokioExecutor::new())
            .serve_connection_with_upgrades(TokioIo::new(io), svc)
            .await;
    });
}

/// Accepts TLS connections until `shutdown` fires.
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let shared = shared.clone();
                let addr = addr.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve_connection(tls, shared, addr);
                    }
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Accepts plain-HTTP connections until `shutdown` fires.
pub async fn serve_plain(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                serve_connection(tcp, shared.clone(), addr.clone());
            }
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_checks() {
        assert!(TokenCheck::Exact("s3cret".into()).accepts("s3cret"));
        assert!(!TokenCheck::Exact("s3cret".into()).accepts("s3cre"));
        assert!(TokenCheck::eks().accepts("k8s-aws-v1.aHR0cHM6Ly9zdHM"));
        assert!(!TokenCheck::eks().accepts("k8s-aws-v1."));
        assert!(!TokenCheck::eks().accepts("Bearer"));
        let custom = TokenCheck::Custom(Arc::new(|t: &str| t.len() == 3));
        assert!(custom.accepts("abc"));
        assert_eq!(format!("{:?}", TokenCheck::Exact("x".into())), "Exact(..)");
    }
}
