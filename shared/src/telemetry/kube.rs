//! One span per Kubernetes write: a tower layer on the cluster client, so every write of
//! every path (apply, prune, restart, the DSN Secret) is seen without touching it.
//! The span names the method and the resource from the request's path; never its body,
//! its query beyond `dryRun`, or a header (the bearer token).

use std::future::Future;
use std::pin::Pin;

use tracing::Instrument;

/// Adds a span to each write (every method but GET, HEAD and OPTIONS).
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteSpanLayer;

impl<S> tower::Layer<S> for WriteSpanLayer {
    type Service = WriteSpans<S>;

    fn layer(&self, inner: S) -> WriteSpans<S> {
        WriteSpans { inner }
    }
}

/// The service [`WriteSpanLayer`] builds.
#[derive(Clone, Debug)]
pub struct WriteSpans<S> {
    inner: S,
}

/// What a request path names: `/apis/keda.sh/v1alpha1/namespaces/p/scaledobjects/x`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResourcePath<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub subresource: Option<&'a str>,
}

/// Reads the resource a Kubernetes API path addresses.
pub fn resource_path(path: &str) -> ResourcePath<'_> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return ResourcePath::default(),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
        _ => (None, rest),
    };
    ResourcePath {
        group,
        resource: rest.first().copied().unwrap_or_default(),
        namespace,
        name: rest.get(1).copied(),
        subresource: rest.get(2).copied(),
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for WriteSpans<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.method().clone();
        if matches!(
            method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        ) {
            return Box::pin(self.inner.call(request));
        }
        let target = resource_path(request.uri().path());
        let dry_run = request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "dryRun=All"));
        let kind = if target.group.is_empty() {
            target.resource.to_string()
        } else {
            format!("{}.{}", target.resource, target.group)
        };
        let span = tracing::debug_span!(
            "kubernetes write",
            otel.name = %format!("{method} {kind}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            k8s.resource = %kind,
            k8s.namespace.name = target.namespace,
            k8s.object.name = target.name,
            k8s.subresource = target.subresource,
            signoz_control.dry_run = dry_run,
            http.response.status_code = tracing::field::Empty,
        );
        let answer = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let answer = answer.await;
                let span = tracing::Span::current();
                match &answer {
                    Ok(response) => {
                        let status = response.status();
                        span.record("http.response.status_code", status.as_u16());
                        if status.is_client_error() || status.is_server_error() {
                            span.record("otel.status_code", "ERROR");
                        }
                    }
                    Err(_) => {
                        span.record("otel.status_code", "ERROR");
                    }
                }
                answer
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_resource() {
        assert_eq!(
            resource_path("/apis/keda.sh/v1alpha1/namespaces/platform/scaledobjects/collector"),
            ResourcePath {
                group: "keda.sh",
                resource: "scaledobjects",
                namespace: Some("platform"),
                name: Some("collector"),
                subresource: None,
            }
        );
        assert_eq!(
            resource_path("/api/v1/namespaces/platform/secrets/signoz-db"),
            ResourcePath {
                group: "",
                resource: "secrets",
                namespace: Some("platform"),
                name: Some("signoz-db"),
                subresource: None,
            }
        );
        assert_eq!(
            resource_path("/apis/apps/v1/namespaces/apps/deployments/api/scale").subresource,
            Some("scale")
        );
        assert_eq!(
            resource_path("/api/v1/namespaces/apps").resource,
            "namespaces"
        );
        assert_eq!(resource_path("/version"), ResourcePath::default());
    }
}
