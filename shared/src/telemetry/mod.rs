//! The control plane observed by the platform it runs: each invocation's trace and
//! counters over OTLP/HTTP to the SigNoz collector the spec names, and the same counters
//! as CloudWatch embedded-metric-format log lines.
//!
//! - **Spans** are `tracing` spans: the invocation (`lambda_runtime`'s OpenTelemetry
//!   layer: `faas.*` attributes, cold start), the handler (its trigger and outcome), the
//!   spec load, each planner, each AWS write (the SDK's own operation span, kept for
//!   writes only: [`is_aws_write`]), each Kubernetes write ([`kube`]), each class of SQL
//!   statement. They are recorded in memory while the invocation runs; nothing leaves
//!   the process before it has answered.
//! - **Flush**: after the answer is posted to the Runtime API and before the next
//!   `/next` (Lambda freezes the process only there), the trace and the counters are
//!   exported together, bounded by `telemetry.export_timeout_ms`: a dead collector costs
//!   at most that, never the answer, and what did not make it is dropped and logged.
//! - **Where to**: the endpoint, the off switch and the platform's resource attributes
//!   come from the spec this invocation loaded ([`spec_loaded`]); an invocation that
//!   failed before loading one (an invalid spec) uses the last one loaded.
//! - **Never a secret**: attributes are the fields of our spans and events, which carry
//!   names, versions and counts (the log-hygiene rules), never a value of a secret; the
//!   Kubernetes span names the path, never the body or a header.
//! - **Cost**: installing the pipeline builds no HTTP client and starts no thread; the
//!   exporter and its client are built at the first export (tests/bench: init and
//!   per-invocation cost next to the baseline).

pub mod kube;
mod metrics;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor};
use tracing::{Instrument, Level, Metadata};
use tracing_subscriber::layer::{Context as LayerContext, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::spec::PlatformSpec;

pub use metrics::{
    CLOUDWATCH_NAMESPACE, Counts, RotationStep, changes_applied, counting, emf_line,
    metrics_request, refused, rotation_step,
};

/// Environment variable that keeps the OpenTelemetry pipeline out of the process when
/// `off`, whatever the spec says (the bench's baseline; the CloudWatch lines stay).
pub const TELEMETRY_ENV: &str = "SIGNOZ_CONTROL_TELEMETRY";
/// Instrumentation scope of our spans.
pub const SCOPE: &str = "signoz-control";
/// Spans kept for one invocation at most (a runaway loop must not grow the process).
const MAX_SPANS: usize = 4096;

/// What an invocation exports to, from the spec it loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub platform: String,
    pub service_namespace: String,
    pub environment: String,
    pub region: String,
    pub cluster: String,
    pub telemetry: Option<crate::spec::Telemetry>,
}

impl Target {
    /// The target a spec names.
    pub fn from_spec(spec: &PlatformSpec) -> Self {
        Target {
            platform: spec.platform.name.clone(),
            service_namespace: spec.platform.service_namespace.clone(),
            environment: spec.platform.environment.clone(),
            region: spec.platform.region.clone(),
            cluster: spec.cluster.name.clone(),
            telemetry: spec.telemetry.clone(),
        }
    }

    /// The resource attributes of `function`'s telemetry: `service.name` per function and
    /// the platform's attributes, as its instrumented workloads report them.
    pub fn resource_attributes(&self, function: &str) -> Vec<(&'static str, String)> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut attributes = vec![
            ("service.name", function.to_string()),
            ("service.namespace", self.service_namespace.clone()),
            ("service.version", env!("CARGO_PKG_VERSION").to_string()),
            ("deployment.environment", self.environment.clone()),
            ("signoz_control.platform", self.platform.clone()),
            ("k8s.cluster.name", self.cluster.clone()),
            ("cloud.provider", "aws".into()),
            ("cloud.platform", "aws_lambda".into()),
            (
                "cloud.region",
                env("AWS_REGION").unwrap_or_else(|| self.region.clone()),
            ),
        ];
        for (key, var) in [
            ("faas.name", "AWS_LAMBDA_FUNCTION_NAME"),
            ("faas.version", "AWS_LAMBDA_FUNCTION_VERSION"),
            ("faas.instance", "AWS_LAMBDA_LOG_STREAM_NAME"),
        ] {
            if let Some(value) = env(var) {
                attributes.push((key, value));
            }
        }
        attributes
    }
}

tokio::task_local! {
    static INVOCATION: Arc<Invocation>;
}

/// What one invocation gathered for its telemetry.
#[derive(Debug)]
struct Invocation {
    started: SystemTime,
    counts: Mutex<Counts>,
    target: Mutex<Option<Target>>,
}

impl Invocation {
    fn new() -> Self {
        Invocation {
            started: SystemTime::now(),
            counts: Mutex::default(),
            target: Mutex::default(),
        }
    }
}

fn with_invocation(f: impl FnOnce(&Invocation)) {
    let _ = INVOCATION.try_with(|i| f(i));
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Notes the spec this invocation acts on: where its telemetry goes and what it says
/// about the platform. A no-op outside an invocation (tests, the CLI).
pub fn spec_loaded(spec: &PlatformSpec) {
    with_invocation(|i| *lock(&i.target) = Some(Target::from_spec(spec)));
}

/// The process's telemetry: logs always, the OpenTelemetry pipeline unless switched off.
pub struct Telemetry {
    function: &'static str,
    pipeline: Option<Arc<Pipeline>>,
}

impl Telemetry {
    /// Installs the process-wide subscriber for `function`: Lambda's log format (JSON
    /// when `AWS_LAMBDA_LOG_FORMAT=JSON`, level from `AWS_LAMBDA_LOG_LEVEL` or
    /// `RUST_LOG`) and, unless [`TELEMETRY_ENV`] is `off`, the span recorder.
    pub fn install(function: &'static str) -> Self {
        let logs = log_layer();
        if std::env::var(TELEMETRY_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
            let _ = tracing_subscriber::registry().with(logs).try_init();
            return Telemetry {
                function,
                pipeline: None,
            };
        }
        let recorded = RecordedSpans::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(recorded.clone())
            .build();
        let spans = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(SCOPE))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_filter(Exported);
        let _ = tracing_subscriber::registry()
            .with(logs)
            .with(spans)
            .try_init();
        Telemetry {
            function,
            pipeline: Some(Arc::new(Pipeline {
                _provider: provider,
                recorded,
                http: OnceLock::new(),
                exporter: tokio::sync::Mutex::new(None),
                last_target: Mutex::new(None),
            })),
        }
    }

    /// The layer that gives each invocation its counters and flushes them with its trace.
    pub fn layer(&self) -> InvocationLayer {
        InvocationLayer {
            function: self.function,
            pipeline: self.pipeline.clone(),
        }
    }
}

/// The log layer, as `lambda_runtime`'s default subscriber formats it.
fn log_layer<S>() -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| l.parse::<tracing_subscriber::filter::LevelFilter>().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    let layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        layer.json().with_filter(filter).boxed()
    } else {
        layer.with_filter(filter).boxed()
    }
}

/// Which spans and events become OpenTelemetry data: our spans (steps are `debug`, so
/// they stay out of the logs at the default level), the invocation's span, the AWS SDK's
/// operation spans of writes, and our events at `info` and above (span events).
struct Exported;

impl Exported {
    fn admits(meta: &Metadata<'_>) -> bool {
        let target = meta.target();
        if meta.is_span() {
            target.starts_with("signoz_control")
                || target == "lambda_runtime::layers::otel"
                || (target.starts_with("aws_sdk_") && is_aws_write(meta.name()))
        } else {
            target.starts_with("signoz_control") && *meta.level() <= Level::INFO
        }
    }
}

impl<S> Filter<S> for Exported {
    fn enabled(&self, meta: &Metadata<'_>, _: &LayerContext<'_, S>) -> bool {
        Self::admits(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if Self::admits(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
}

/// Whether an AWS SDK operation span (`S3.PutBucketLifecycleConfiguration`) is a write:
/// every operation but the reads (`Get*`, `Head*`, `List*`, `Describe*`).
pub fn is_aws_write(span_name: &str) -> bool {
    let Some((_, operation)) = span_name.split_once('.') else {
        return false;
    };
    !["Get", "Head", "List", "Describe"]
        .iter()
        .any(|read| operation.starts_with(read))
}

/// Finished spans, kept until the invocation's flush.
#[derive(Debug, Clone, Default)]
struct RecordedSpans(Arc<Mutex<Vec<SpanData>>>);

impl RecordedSpans {
    fn take(&self) -> Vec<SpanData> {
        std::mem::take(&mut *lock(&self.0))
    }
}

impl SpanProcessor for RecordedSpans {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        let mut spans = lock(&self.0);
        if spans.len() < MAX_SPANS {
            spans.push(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The exporting half, shared by every invocation of the process.
struct Pipeline {
    /// Keeps the tracer's provider alive.
    _provider: SdkTracerProvider,
    recorded: RecordedSpans,
    /// Built at the first export: a TLS client loads root certificates.
    http: OnceLock<reqwest::Client>,
    /// The OTLP span exporter and the endpoint it was built for.
    exporter: tokio::sync::Mutex<Option<(String, opentelemetry_otlp::SpanExporter)>>,
    /// The target of the last invocation that loaded a spec.
    last_target: Mutex<Option<Target>>,
}

/// Why an export did not land.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error("building the OTLP exporter: {0}")]
    Build(String),
    #[error("traces: {0}")]
    Traces(String),
    #[error("metrics: {0}")]
    Metrics(String),
}

impl Pipeline {
    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_millis(
                    crate::spec::EXPORT_TIMEOUT_MS.1.into(),
                ))
                .build()
                .expect("HTTP client (the TLS provider is installed at start-up)")
        })
    }

    /// Exports the invocation's spans and counters to `endpoint`, within `timeout`.
    async fn export(
        &self,
        endpoint: &str,
        timeout: Duration,
        resource: Vec<(&'static str, String)>,
        spans: Vec<SpanData>,
        metrics: opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
    ) -> Result<(), ExportError> {
        let base = endpoint.trim_end_matches('/');
        let traces = async {
            if spans.is_empty() {
                return Ok(());
            }
            let mut exporter = self.exporter.lock().await;
            if exporter
                .as_ref()
                .is_none_or(|(built_for, _)| built_for != base)
            {
                use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
                let built = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(self.http().clone())
                    .with_endpoint(format!("{base}/v1/traces"))
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(timeout)
                    .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
                    .build()
                    .map_err(|e| ExportError::Build(e.to_string()))?;
                *exporter = Some((base.to_string(), built));
            }
            let (_, exporter) = exporter.as_mut().expect("built above");
            let resource = Resource::builder_empty()
                .with_attributes(resource.iter().map(|(k, v)| KeyValue::new(*k, v.clone())))
                .build();
            exporter.set_resource(&resource);
            exporter
                .export(spans)
                .await
                .map_err(|e| ExportError::Traces(e.to_string()))
        };
        let metrics = async {
            use prost::Message as _;
            let answer = self
                .http()
                .post(format!("{base}/v1/metrics"))
                .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                .timeout(timeout)
                .body(metrics.encode_to_vec())
                .send()
                .await
                .map_err(|e| ExportError::Metrics(without_url(&e)))?;
            match answer.status() {
                s if s.is_success() => Ok(()),
                s => Err(ExportError::Metrics(format!("HTTP {s}"))),
            }
        };
        let (traces, metrics) = tokio::join!(traces, metrics);
        traces.and(metrics)
    }

    /// The end of one invocation: its CloudWatch metric line, then its trace and
    /// counters to the collector, bounded by the spec's timeout.
    async fn finish(&self, function: &'static str, invocation: &Invocation) {
        let target = {
            let mut last = lock(&self.last_target);
            match lock(&invocation.target).take() {
                Some(target) => {
                    *last = Some(target.clone());
                    Some(target)
                }
                None => last.clone(),
            }
        };
        let counts = lock(&invocation.counts).clone();
        let spans = self.recorded.take();
        let Some(target) = target else { return };
        let Some(settings) = target.telemetry.as_ref().filter(|t| t.enabled) else {
            return;
        };
        let timeout = Duration::from_millis(settings.export_timeout_ms.into());
        let resource = target.resource_attributes(function);
        let metrics = metrics_request(&resource, &counts, invocation.started, SystemTime::now());
        let count = spans.len();
        let export = self.export(&settings.endpoint, timeout, resource, spans, metrics);
        match tokio::time::timeout(timeout, export).await {
            Ok(Ok(())) => {
                tracing::debug!(endpoint = %settings.endpoint, spans = count, "telemetry exported")
            }
            Ok(Err(error)) => tracing::warn!(
                endpoint = %settings.endpoint, spans = count, error = %error,
                "telemetry export failed; this invocation's trace and counters are dropped"
            ),
            Err(_) => tracing::warn!(
                endpoint = %settings.endpoint, spans = count, timeout_ms = settings.export_timeout_ms,
                "telemetry export timed out; this invocation's trace and counters are dropped"
            ),
        }
    }
}

/// A reqwest error without the URL it names (the endpoint is logged on its own).
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(e) = source {
        detail = e.to_string();
        source = e.source();
    }
    if detail.is_empty() {
        kind.into()
    } else {
        format!("{kind}: {detail}")
    }
}

/// Tower layer over the Lambda runtime's service: scopes each invocation's counters and
/// flushes its trace once it has answered.
#[derive(Clone)]
pub struct InvocationLayer {
    function: &'static str,
    pipeline: Option<Arc<Pipeline>>,
}

impl<S> tower::Layer<S> for InvocationLayer {
    type Service = InvocationService<S>;

    fn layer(&self, inner: S) -> InvocationService<S> {
        InvocationService {
            inner,
            function: self.function,
            pipeline: self.pipeline.clone(),
        }
    }
}

/// The service [`InvocationLayer`] builds.
pub struct InvocationService<S> {
    inner: S,
    function: &'static str,
    pipeline: Option<Arc<Pipeline>>,
}

impl<S, R> tower::Service<R> for InvocationService<S>
where
    S: tower::Service<R, Response = ()>,
    S::Error: Unpin,
{
    type Response = ();
    type Error = S::Error;
    type Future = Invoked<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let invocation = Arc::new(Invocation::new());
        Invoked {
            answered: Box::pin(INVOCATION.scope(invocation.clone(), self.inner.call(request))),
            result: None,
            flush: None,
            invocation,
            function: self.function,
            pipeline: self.pipeline.clone(),
        }
    }
}

/// One invocation: its answer, then its flush (the metric line, the export).
pub struct Invoked<F: Future> {
    answered: Pin<Box<tokio::task::futures::TaskLocalFuture<Arc<Invocation>, F>>>,
    result: Option<F::Output>,
    flush: Option<Pin<Box<dyn Future<Output = ()>>>>,
    invocation: Arc<Invocation>,
    function: &'static str,
    pipeline: Option<Arc<Pipeline>>,
}

impl<F: Future> Future for Invoked<F>
where
    F::Output: Unpin,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        use std::task::Poll;
        let this = self.get_mut();
        if this.result.is_none() {
            let Poll::Ready(result) = this.answered.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            this.result = Some(result);
            this.flush = Some(Box::pin(flush(
                this.function,
                this.invocation.clone(),
                this.pipeline.clone(),
            )));
        }
        if let Some(flush) = &mut this.flush {
            if flush.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.flush = None;
        }
        Poll::Ready(this.result.take().expect("polled after completion"))
    }
}

/// After the answer: the CloudWatch metric line, then the export.
async fn flush(
    function: &'static str,
    invocation: Arc<Invocation>,
    pipeline: Option<Arc<Pipeline>>,
) {
    let counts = lock(&invocation.counts).clone();
    let platform = lock(&invocation.target)
        .as_ref()
        .map(|t| t.platform.clone())
        .or_else(|| {
            pipeline
                .as_ref()
                .and_then(|p| lock(&p.last_target).as_ref().map(|t| t.platform.clone()))
        });
    println!(
        "{}",
        emf_line(function, platform.as_deref(), &counts, SystemTime::now())
    );
    if let Some(pipeline) = pipeline {
        pipeline.finish(function, &invocation).await;
    }
}

/// Runs one handler call in its span (trigger and outcome recorded), counting the
/// refusals an error stands for.
pub async fn handled<F>(function: &'static str, handler: F) -> crate::Result<serde_json::Value>
where
    F: Future<Output = crate::Result<serde_json::Value>>,
{
    let span = tracing::debug_span!(
        "handle",
        signoz_control.function = function,
        signoz_control.trigger = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        signoz_control.retryable = tracing::field::Empty,
    );
    let result = handler.instrument(span.clone()).await;
    if let Err(error) = &result {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", error.kind());
        span.record("signoz_control.retryable", error.retryable());
        refused(error.refusals());
    }
    result
}

/// Records the trigger a handler decoded on its span.
pub fn record_trigger(kind: crate::events::TriggerKind) {
    tracing::Span::current().record("signoz_control.trigger", kind.to_string());
}

/// A function's whole `main` after its context is built: the Lambda runtime with the
/// request span in the logs, the invocation span, the counters and the flush.
pub async fn run<F, Fut>(
    telemetry: Telemetry,
    trigger: lambda_runtime::layers::OpenTelemetryFaasTrigger,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    F: Fn(lambda_runtime::LambdaEvent<serde_json::Value>) -> Fut,
    Fut: Future<Output = crate::Result<serde_json::Value>>,
{
    let function = telemetry.function;
    let handler = lambda_runtime::service_fn(|event| handled(function, handler(event)));
    lambda_runtime::Runtime::new(handler)
        .layer(lambda_runtime::layers::TracingLayer::new())
        .layer(lambda_runtime::layers::OpenTelemetryLayer::new(|| {}).with_trigger(trigger))
        .layer(telemetry.layer())
        .run()
        .await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn aws_writes_are_every_operation_but_the_reads() {
        for write in [
            "S3.PutBucketLifecycleConfiguration",
            "S3.PutObject",
            "S3.DeleteObject",
            "SecretsManager.PutSecretValue",
            "SecretsManager.UpdateSecretVersionStage",
            "SecretsManager.RotateSecret",
        ] {
            assert!(is_aws_write(write), "{write}");
        }
        for read in [
            "S3.GetObject",
            "S3.HeadObject",
            "S3.ListObjectsV2",
            "SecretsManager.GetRandomPassword",
            "SecretsManager.DescribeSecret",
            "RDS.DescribeDBInstances",
            // smithy's own inner spans are no operations
            "try_attempt",
        ] {
            assert!(!is_aws_write(read), "{read}");
        }
    }

    #[test]
    fn the_resource_names_the_function_and_the_platform() {
        let spec = crate::spec::parse_spec(crate::spec::EXAMPLE_SPEC).unwrap();
        let attributes: BTreeMap<_, _> = Target::from_spec(&spec)
            .resource_attributes("sync-cluster")
            .into_iter()
            .collect();
        assert_eq!(attributes["service.name"], "sync-cluster");
        assert_eq!(attributes["service.namespace"], "acme");
        assert_eq!(attributes["deployment.environment"], "production");
        assert_eq!(attributes["signoz_control.platform"], "acme-prod");
        assert_eq!(attributes["k8s.cluster.name"], "acme-prod");
    }
}
