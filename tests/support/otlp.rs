//! An OTLP/HTTP receiver on loopback, as the OpenTelemetry Collector's `otlp` receiver
//! serves it (opentelemetry-collector `receiver/otlpreceiver/otlphttp.go`,
//! `handleTraces`/`readContentType`): `POST /v1/traces` and `/v1/metrics` with a protobuf
//! body (media type `application/x-protobuf`), answered `200` with the protobuf
//! `Export*ServiceResponse`; another method is `405`, another media type `415` (the
//! collector also takes JSON; this receiver only what the functions send), a body that
//! does not decode `400`, another path `404`. It keeps what it
//! received, decoded with the specification's own messages (opentelemetry-proto), and the
//! raw bytes (to look for secrets). `blackhole` accepts connections and never answers: a
//! collector that is up but stuck.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

/// What the receiver got.
#[derive(Debug, Default)]
pub struct Received {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    /// Every request body as it arrived.
    pub raw: Vec<Vec<u8>>,
}

/// One span as a test reads it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub name: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    /// Resource attributes of the batch it came in.
    pub resource: BTreeMap<String, String>,
    /// `(name, attributes)` of its span events.
    pub events: Vec<(String, BTreeMap<String, String>)>,
}

/// A running receiver.
pub struct OtlpReceiver {
    pub addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An attribute value as text (what a test compares against).
pub fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// Attributes as a map of texts.
pub fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

impl OtlpReceiver {
    /// Starts a receiver that answers like the collector.
    pub async fn start() -> OtlpReceiver {
        Self::serve(0, false).await
    }

    /// [`OtlpReceiver::start`] on a given loopback port.
    pub async fn start_on(port: u16) -> OtlpReceiver {
        Self::serve(port, false).await
    }

    /// Starts a collector that accepts connections and never answers.
    pub async fn blackhole() -> OtlpReceiver {
        Self::serve(0, true).await
    }

    async fn serve(port: u16, stuck: bool) -> OtlpReceiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let received = Arc::new(Mutex::new(Received::default()));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (state, count) = (received.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                if stuck {
                    held.push(stream);
                    continue;
                }
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| receive(state.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        OtlpReceiver {
            addr,
            received,
            accepted,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The endpoint a spec names (`telemetry.endpoint`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `f` over what was received so far.
    pub fn with<T>(&self, f: impl FnOnce(&Received) -> T) -> T {
        f(&self.received.lock().unwrap())
    }

    /// Every span received, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.with(|r| {
            let mut out = Vec::new();
            for request in &r.traces {
                for resource_spans in &request.resource_spans {
                    let resource = resource_spans
                        .resource
                        .as_ref()
                        .map(|r| attributes(&r.attributes))
                        .unwrap_or_default();
                    for scope in &resource_spans.scope_spans {
                        for span in &scope.spans {
                            out.push(ReceivedSpan {
                                name: span.name.clone(),
                                trace_id: span.trace_id.clone(),
                                span_id: span.span_id.clone(),
                                parent_span_id: span.parent_span_id.clone(),
                                attributes: attributes(&span.attributes),
                                resource: resource.clone(),
                                events: span
                                    .events
                                    .iter()
                                    .map(|e| (e.name.clone(), attributes(&e.attributes)))
                                    .collect(),
                            });
                        }
                    }
                }
            }
            out
        })
    }
}

async fn receive(
    state: Arc<Mutex<Received>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: Vec<u8>| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            "application/x-protobuf".parse().unwrap(),
        );
        Ok(r)
    };
    let path = request.uri().path().to_string();
    let protobuf = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().map(str::trim) == Some("application/x-protobuf"));
    if request.method() != hyper::Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, Vec::new());
    }
    if !protobuf {
        return reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut received = state.lock().unwrap();
    received.raw.push(body.to_vec());
    match path.as_str() {
        "/v1/traces" => match ExportTraceServiceRequest::decode(body) {
            Ok(decoded) => {
                received.traces.push(decoded);
                reply(
                    StatusCode::OK,
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
            Err(_) => reply(StatusCode::BAD_REQUEST, Vec::new()),
        },
        "/v1/metrics" => match ExportMetricsServiceRequest::decode(body) {
            Ok(decoded) => {
                received.metrics.push(decoded);
                reply(
                    StatusCode::OK,
                    ExportMetricsServiceResponse::default().encode_to_vec(),
                )
            }
            Err(_) => reply(StatusCode::BAD_REQUEST, Vec::new()),
        },
        _ => reply(StatusCode::NOT_FOUND, Vec::new()),
    }
}
