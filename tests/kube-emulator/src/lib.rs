//! A stateful, in-memory Kubernetes API server for tests and the local stack.
//!
//! No real API server can run on the machines this project is built on, so this emulator
//! stands in for one: kube-rs and the real `kubectl` talk to it over TLS with a local CA.
//! It is a test double and is never shipped in a Lambda function.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_emulator::Error> {
//! let emu = kube_emulator::Emulator::start(kube_emulator::Config::default())?;
//! let client = emu.client().await?;
//! # let _ = client;
//! emu.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! What it does like the real server: discovery (legacy and aggregated v2), CRUD, list
//! with label/field selectors and paging, watch, merge/strategic/JSON patches, server-side
//! apply with managed fields and conflicts, `/status` and `/scale`, resourceVersion,
//! generation, finalizers, defaulting and validation of the common built-in fields,
//! `Status` errors, Table output for `kubectl get`, bearer tokens, dry runs.
//!
//! What it does not do: run controllers (no ReplicaSets, Pods or Deployment status), serve
//! OpenAPI (use `kubectl --validate=false`), know CRD schemas (no pruning, no
//! `fieldValidation=Strict`), serve CustomResourceDefinitions, RBAC, admission webhooks;
//! deleting a namespace removes it and its objects at once instead of `Terminating` first.

pub mod api;
pub mod apply;
pub mod fieldpath;
pub mod objects;
pub mod patch;
pub mod proto;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod tls;

pub use server::TokenCheck;

use base64::Engine;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

/// Where the server's certificate comes from.
#[derive(Clone, Debug, Default)]
pub enum Tls {
    /// A CA and server certificate generated in-process (for tests).
    #[default]
    SelfSigned,
    /// PEM files: server certificate (chain), its key, and the CA that signed it.
    Files {
        /// Server certificate PEM file.
        cert: PathBuf,
        /// Server private key PEM file.
        key: PathBuf,
        /// CA certificate PEM file.
        ca: PathBuf,
    },
    /// The same as PEM text.
    Pem {
        /// Server certificate PEM.
        cert: String,
        /// Server private key PEM.
        key: String,
        /// CA certificate PEM.
        ca: String,
    },
}

/// How to start the emulator.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// TLS port on 127.0.0.1; `None` (or 0) picks a free one.
    pub port: Option<u16>,
    /// Certificate source.
    pub tls: Tls,
    /// Also serve plain HTTP on 127.0.0.1 (see [`RunningEmulator::plain_url`]).
    pub plain_http: bool,
    /// Port for plain HTTP; `None` picks a free one.
    pub plain_http_port: Option<u16>,
    /// Require a bearer token that passes this check; `None` accepts every request.
    pub bearer_token: Option<TokenCheck>,
    /// Token written into the kubeconfig; defaults to the token of [`TokenCheck::Exact`].
    pub client_token: Option<String>,
}

/// Errors from starting the emulator or building clients for it.
#[derive(Debug)]
pub enum Error {
    /// Binding or file I/O failed.
    Io(std::io::Error),
    /// Certificates could not be made or read.
    Tls(tls::TlsError),
    /// kube-rs refused the kubeconfig.
    Kube(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "kube-emulator I/O: {e}"),
            Error::Tls(e) => write!(f, "kube-emulator TLS: {e}"),
            Error::Kube(e) => write!(f, "kube-emulator client: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<tls::TlsError> for Error {
    fn from(e: tls::TlsError) -> Self {
        Error::Tls(e)
    }
}

/// Entry point.
pub struct Emulator;

fn bind(port: Option<u16>) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port.unwrap_or(0))))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

impl Emulator {
    /// Binds the listeners and starts serving on a dedicated thread with its own runtime,
    /// so it works under any test runtime (even a blocked current-thread one).
    pub fn start(config: Config) -> Result<RunningEmulator, Error> {
        let material = match &config.tls {
            Tls::SelfSigned => tls::self_signed()?,
            Tls::Files { cert, key, ca } => tls::from_files(cert, key, ca)?,
            Tls::Pem { cert, key, ca } => tls::from_pem(cert, key, ca)?,
        };
        let server_config = tls::server_config(&material)?;
        let tls_listener = bind(config.port)?;
        let addr = tls_listener.local_addr()?;
        let plain_listener = if config.plain_http {
            Some(bind(config.plain_http_port)?)
        } else {
            None
        };
        let plain_addr = plain_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        let client_token = config
            .client_token
            .clone()
            .or_else(|| match &config.bearer_token {
                Some(TokenCheck::Exact(t)) => Some(t.clone()),
                Some(TokenCheck::Prefix(p)) => Some(format!("{p}kube-emulator")),
                _ => None,
            });
        let shared = Arc::new(server::Shared {
            cluster: api::Cluster::new(&material.ca_pem),
            auth: config.bearer_token.clone(),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
        let thread = std::thread::Builder::new()
            .name(format!("kube-emulator-{}", addr.port()))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listeners = (|| {
                        let tls_l = tokio::net::TcpListener::from_std(tls_listener)?;
                        let plain_l = plain_listener
                            .map(tokio::net::TcpListener::from_std)
                            .transpose()?;
                        Ok::<_, std::io::Error>((tls_l, plain_l))
                    })();
                    let (tls_l, plain_l) = match listeners {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
                    let tls_task =
                        server::serve_tls(tls_l, acceptor, shared.clone(), stop_rx.clone());
                    match plain_l {
                        Some(p) => {
                            let plain_task = server::serve_plain(p, shared, stop_rx);
                            tokio::join!(tls_task, plain_task);
                        }
                        None => tls_task.await,
                    }
                });
                // Dropping the runtime ends every connection and watch still open.
                drop(rt);
                let _ = done_tx.send(());
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(Error::Io(std::io::Error::other("emulator thread died"))),
        }
        Ok(RunningEmulator {
            addr,
            plain_addr,
            ca_pem: material.ca_pem,
            token: client_token,
            stop: Some(stop_tx),
            done: Some(done_rx),
            thread: Some(thread),
        })
    }
}

/// A running emulator; it stops when dropped or on [`RunningEmulator::shutdown`].
#[derive(Debug)]
pub struct RunningEmulator {
    addr: SocketAddr,
    plain_addr: Option<SocketAddr>,
    ca_pem: String,
    token: Option<String>,
    stop: Option<watch::Sender<bool>>,
    done: Option<oneshot::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningEmulator {
    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT` when plain HTTP is served.
    pub fn plain_url(&self) -> Option<String> {
        self.plain_addr.map(|a| format!("http://{a}"))
    }

    /// The TLS port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token the kubeconfig carries (a placeholder when no check is configured).
    pub fn token(&self) -> &str {
        self.token.as_deref().unwrap_or("kube-emulator")
    }

    /// A kubeconfig with the cluster (and its CA), a user (with the token, if any), a
    /// context and current-context, all named `kube-emulator`.
    pub fn kubeconfig_yaml(&self) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        // kubectl prompts for a username when a user has no credentials at all, so there is
        // always a token; without a token check the server ignores it.
        let token = self.token.as_deref().unwrap_or("kube-emulator");
        let user = format!(
            "  user:\n    token: {}\n",
            serde_json::Value::String(token.to_string())
        );
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-emulator\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\ncontexts:\n- name: kube-emulator\n  context:\n    cluster: kube-emulator\n    user: kube-emulator\n    namespace: default\ncurrent-context: kube-emulator\nusers:\n- name: kube-emulator\n{user}preferences: {{}}\n",
            url = self.url(),
        )
    }

    /// Writes [`RunningEmulator::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// A kube-rs client built from the kubeconfig, so TLS verification against the local
    /// CA is exercised like any real cluster's.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        // kube-rs builds rustls configs on the process-wide provider; make it ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())
            .map_err(|e| Error::Kube(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| Error::Kube(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| Error::Kube(e.to_string()))
    }

    /// Stops serving and waits until every connection is closed.
    pub async fn shutdown(mut self) {
        self.stop.take();
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        // Dropping the sender wakes the accept loops; the thread then ends promptly.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
