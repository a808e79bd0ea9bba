//! Reaching the cluster: a kubeconfig when one is given, else EKS `DescribeCluster` plus an
//! IAM bearer token minted per invocation (no kubectl, no exec plugin).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::Error;
use crate::spec::PlatformSpec;

/// Prefix of an EKS IAM bearer token.
const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// The presigned URL's lifetime; EKS accepts the token for 15 minutes regardless.
const TOKEN_URL_EXPIRES: Duration = Duration::from_secs(60);
/// Header binding the token to one cluster.
const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";

/// kube client for the spec's cluster: KUBECONFIG (env) when set, else EKS DescribeCluster + IAM token.
pub async fn connect(spec: &PlatformSpec, sdk: &SdkConfig) -> Result<kube::Client, Error> {
    connect_with(spec, sdk, kubeconfig_from_env().as_deref()).await
}

/// The `KUBECONFIG` path, when set (a single file; kube-rs' merge of lists is not needed here).
pub fn kubeconfig_from_env() -> Option<PathBuf> {
    std::env::var_os("KUBECONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// kube client from the given kubeconfig file, else EKS DescribeCluster + IAM token.
pub async fn connect_with(
    spec: &PlatformSpec,
    sdk: &SdkConfig,
    kubeconfig: Option<&Path>,
) -> Result<kube::Client, Error> {
    let kubeconfig = match kubeconfig {
        Some(path) => Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig {
            detail: format!("{}: {e}", path.display()),
        })?,
        None => eks_kubeconfig(spec, sdk).await?,
    };
    client_from_kubeconfig(kubeconfig).await
}

/// A client from an in-memory kubeconfig (its current context), with a span per write.
pub async fn client_from_kubeconfig(kubeconfig: Kubeconfig) -> Result<kube::Client, Error> {
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Kubeconfig {
            detail: e.to_string(),
        })?;
    Ok(kube::client::ClientBuilder::try_from(config)
        .map_err(|e| Error::Kubeconfig {
            detail: e.to_string(),
        })?
        .with_layer(&crate::telemetry::kube::WriteSpanLayer)
        .build())
}

/// Builds a kubeconfig for the EKS cluster from `DescribeCluster` and a fresh IAM token.
pub async fn eks_kubeconfig(spec: &PlatformSpec, sdk: &SdkConfig) -> Result<Kubeconfig, Error> {
    let token = mint_token(spec, sdk).await?;
    eks_kubeconfig_with(spec, sdk, Some(&token)).await
}

/// The EKS cluster's kubeconfig from `DescribeCluster`, with `token` or no credentials.
async fn eks_kubeconfig_with(
    spec: &PlatformSpec,
    sdk: &SdkConfig,
    token: Option<&str>,
) -> Result<Kubeconfig, Error> {
    let cluster = &spec.cluster.name;
    let eks = aws_sdk_eks::Client::new(sdk);
    let described = eks
        .describe_cluster()
        .name(cluster)
        .send()
        .await
        .map_err(|e| Error::DescribeCluster {
            cluster: cluster.clone(),
            detail: crate::aws::error_text(&e),
        })?;
    let found = described.cluster();
    let endpoint = found.and_then(|c| c.endpoint());
    let ca = found
        .and_then(|c| c.certificate_authority())
        .and_then(|c| c.data());
    let (Some(endpoint), Some(ca)) = (endpoint, ca) else {
        return Err(Error::DescribeCluster {
            cluster: cluster.clone(),
            detail: "cluster has no endpoint or certificate authority yet".into(),
        });
    };
    let user = match token {
        Some(token) => serde_json::json!({ "token": token }),
        None => serde_json::json!({}),
    };
    let yaml = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": cluster, "cluster": { "server": endpoint, "certificate-authority-data": ca } }],
        "users": [{ "name": "iam", "user": user }],
        "contexts": [{ "name": cluster, "context": { "cluster": cluster, "user": "iam" } }],
        "current-context": cluster,
    });
    serde_json::from_value(yaml).map_err(|e| Error::Kubeconfig {
        detail: format!("building the EKS kubeconfig: {e}"),
    })
}

/// A fresh EKS bearer token for the spec's cluster, from the SDK's credentials.
async fn mint_token(spec: &PlatformSpec, sdk: &SdkConfig) -> Result<String, Error> {
    let provider = sdk.credentials_provider().ok_or(Error::Token {
        detail: "no AWS credentials provider configured".into(),
    })?;
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| Error::Token {
            detail: format!("cannot load AWS credentials: {e}"),
        })?;
    let region = sdk
        .region()
        .map(|r| r.as_ref().to_string())
        .unwrap_or_else(|| spec.platform.region.clone());
    eks_token(&credentials, &region, &spec.cluster.name, SystemTime::now())
}

/// The cluster's client, built once per process and reused across invocations, so its
/// connections (and TLS sessions) stay warm; on EKS a fresh IAM token is still minted for
/// every invocation and sent on every request.
pub struct ClusterClient {
    kubeconfig: Option<PathBuf>,
    /// The client and what it was built for (the kubeconfig, or the EKS cluster's name).
    cached: tokio::sync::Mutex<Option<(String, kube::Client)>>,
    token: Arc<RwLock<String>>,
}

impl ClusterClient {
    /// Through `kubeconfig` (kind, k3d, tests) or, `None`, EKS with IAM tokens.
    pub fn new(kubeconfig: Option<PathBuf>) -> Self {
        ClusterClient {
            kubeconfig,
            cached: tokio::sync::Mutex::new(None),
            token: Arc::default(),
        }
    }

    /// [`ClusterClient::new`] with `KUBECONFIG` when set.
    pub fn from_env() -> Self {
        Self::new(kubeconfig_from_env())
    }

    /// The client for this invocation (a token minted now on EKS).
    pub async fn client(
        &self,
        spec: &PlatformSpec,
        sdk: &SdkConfig,
    ) -> Result<kube::Client, Error> {
        let key = match &self.kubeconfig {
            Some(path) => path.display().to_string(),
            None => {
                let token = mint_token(spec, sdk).await?;
                *self.token.write().unwrap_or_else(|e| e.into_inner()) = token;
                format!("eks:{}", spec.cluster.name)
            }
        };
        let mut cached = self.cached.lock().await;
        if let Some((built_for, client)) = cached.as_ref()
            && *built_for == key
        {
            return Ok(client.clone());
        }
        let client = match &self.kubeconfig {
            Some(path) => connect_with(spec, sdk, Some(path)).await?,
            None => {
                let kubeconfig = eks_kubeconfig_with(spec, sdk, None).await?;
                let config =
                    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                        .await
                        .map_err(|e| Error::Kubeconfig {
                            detail: e.to_string(),
                        })?;
                kube::client::ClientBuilder::try_from(config)
                    .map_err(|e| Error::Kubeconfig {
                        detail: e.to_string(),
                    })?
                    .with_layer(&BearerLayer(self.token.clone()))
                    .with_layer(&crate::telemetry::kube::WriteSpanLayer)
                    .build()
            }
        };
        *cached = Some((key, client.clone()));
        Ok(client)
    }
}

/// Sends the current token as `Authorization: Bearer`, marked sensitive (never logged).
#[derive(Clone)]
struct BearerLayer(Arc<RwLock<String>>);

impl<S> tower::Layer<S> for BearerLayer {
    type Service = Bearer<S>;
    fn layer(&self, inner: S) -> Bearer<S> {
        Bearer {
            inner,
            token: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct Bearer<S> {
    inner: S,
    token: Arc<RwLock<String>>,
}

impl<S, B> tower::Service<http::Request<B>> for Bearer<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let token = self.token.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Ok(mut value) = http::HeaderValue::from_str(&format!("Bearer {token}")) {
            value.set_sensitive(true);
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
        }
        self.inner.call(request)
    }
}

/// The EKS bearer token: `k8s-aws-v1.` + base64url (no padding) of an STS
/// `GetCallerIdentity` URL presigned with SigV4 and the signed header `x-k8s-aws-id`.
pub fn eks_token(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    time: SystemTime,
) -> Result<String, Error> {
    let host = format!("sts.{region}.amazonaws.com");
    let base = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_URL_EXPIRES);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| Error::Token {
            detail: e.to_string(),
        })?
        .into();
    let headers = [("host", host.as_str()), (CLUSTER_ID_HEADER, cluster)];
    let request = SignableRequest::new(
        "GET",
        base.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| Error::Token {
        detail: e.to_string(),
    })?;
    let (instructions, _signature) = aws_sigv4::http_request::sign(request, &params)
        .map_err(|e| Error::Token {
            detail: e.to_string(),
        })?
        .into_parts();
    // Same parameter order as botocore (auth parameters, the session token, then the
    // signature), so the token matches `aws eks get-token` byte for byte.
    let mut url = base;
    let mut signature = None;
    let mut token = None;
    for (name, value) in instructions.params() {
        match *name {
            "X-Amz-Signature" => signature = Some(value),
            "X-Amz-Security-Token" => token = Some(value),
            _ => push_query(&mut url, name, value),
        }
    }
    if let Some(value) = token {
        push_query(&mut url, "X-Amz-Security-Token", value);
    }
    if let Some(value) = signature {
        push_query(&mut url, "X-Amz-Signature", value);
    }
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url);
    Ok(format!("{TOKEN_PREFIX}{encoded}"))
}

fn push_query(url: &mut String, name: &str, value: &str) {
    url.push('&');
    url.push_str(name);
    url.push('=');
    url.push_str(&sigv4_escape(value));
}

/// Percent-encodes everything but SigV4's unreserved characters (`A-Za-z0-9-_.~`).
fn sigv4_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use aws_credential_types::Credentials;

    use super::eks_token;

    /// botocore's own SigV4 query presigner, as `aws eks get-token` uses it, at a fixed time.
    const BOTOCORE_TOKEN: &str = r#"
import base64, datetime, sys
from unittest import mock
import botocore.auth, botocore.awsrequest, botocore.credentials
ak, sk, token, region, cluster, epoch = sys.argv[1:7]
creds = botocore.credentials.Credentials(ak, sk, token or None)
req = botocore.awsrequest.AWSRequest(method="GET", url=f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15", headers={"x-k8s-aws-id": cluster})
when = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
with mock.patch("botocore.auth.get_current_datetime", return_value=when):
    botocore.auth.SigV4QueryAuth(creds, "sts", region, expires=60).add_auth(req)
print("k8s-aws-v1." + base64.urlsafe_b64encode(req.prepare().url.encode()).decode().rstrip("="), end="")
"#;

    const EPOCH: u64 = 1_700_000_000;

    fn botocore_token(session_token: &str) -> Option<String> {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                BOTOCORE_TOKEN,
                "AKIDEXAMPLE",
                "secret/key+x",
                session_token,
            ])
            .args(["eu-west-1", "acme-prod", &EPOCH.to_string()])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).expect("utf-8"))
    }

    fn our_token(session_token: &str) -> String {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "secret/key+x",
            (!session_token.is_empty()).then(|| session_token.to_string()),
            None,
            "test",
        );
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH);
        eks_token(&credentials, "eu-west-1", "acme-prod", time).expect("token")
    }

    #[test]
    fn token_matches_botocore_presigner_for_long_term_credentials() {
        // Recorded from the script above (botocore 1.43.11) for machines without botocore.
        let recorded = "k8s-aws-v1.aHR0cHM6Ly9zdHMuZXUtd2VzdC0xLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BS0lERVhBTVBMRSUyRjIwMjMxMTE0JTJGZXUtd2VzdC0xJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyMzExMTRUMjIxMzIwWiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TaWduYXR1cmU9MzI0MDY5MjAxMDU2NzIzNzlkMDNjMzZiZTg1MTRiZWE3YjExNWUxYzk4NjUzMjMxYTgwZGI1NWUyM2M0YjFiYg";
        let expected = botocore_token("").unwrap_or_else(|| recorded.to_string());
        assert_eq!(our_token(""), expected);
        assert_eq!(expected, recorded, "botocore changed its presigned URL");
    }

    #[test]
    fn token_matches_botocore_presigner_with_session_token() {
        let Some(expected) = botocore_token("tok/en+=") else {
            eprintln!("python3 with botocore not available; covered by the recorded token test");
            return;
        };
        assert_eq!(our_token("tok/en+="), expected);
    }

    #[test]
    fn token_is_bound_to_the_cluster() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret/key+x", None, None, "test");
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH);
        let a = eks_token(&credentials, "eu-west-1", "a", time).unwrap();
        let b = eks_token(&credentials, "eu-west-1", "b", time).unwrap();
        assert!(a.starts_with("k8s-aws-v1.") && !a.contains('='));
        assert_ne!(a, b);
    }

    /// The warm client sends whatever token the current invocation minted, on every
    /// request, marked sensitive so no layer logs it.
    #[tokio::test]
    async fn the_warm_client_sends_each_invocations_token() {
        use http::{Request, Response};
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let token = std::sync::Arc::new(std::sync::RwLock::new(String::new()));
        let client = kube::client::ClientBuilder::new(service, "default")
            .with_layer(&super::BearerLayer(token.clone()))
            .build();
        let serve = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let (request, send) = handle.next_request().await.expect("request");
                let auth = request.headers()[http::header::AUTHORIZATION].clone();
                seen.push((auth.to_str().unwrap().to_string(), auth.is_sensitive()));
                send.send_response(
                    Response::builder()
                        .body(Body::from(
                            br#"{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"x"}}"#
                                .to_vec(),
                        ))
                        .unwrap(),
                );
            }
            seen
        });
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
        for minted in ["k8s-aws-v1.first", "k8s-aws-v1.second"] {
            *token.write().unwrap() = minted.into();
            namespaces.get("x").await.unwrap();
        }
        assert_eq!(
            serve.await.unwrap(),
            [
                ("Bearer k8s-aws-v1.first".to_string(), true),
                ("Bearer k8s-aws-v1.second".to_string(), true)
            ]
        );
    }
}
