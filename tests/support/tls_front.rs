//! HTTPS in front of a plain-HTTP server (moto): a TLS terminator presenting the stack's
//! own server certificate (its local CA, which no default trust store holds), so a test
//! can reach moto the way a function reaches AWS, over verified TLS. Either a byte relay
//! ([`TlsFront::start`]) or an HTTP/1.1 server that keeps its clients' connections open
//! across requests as AWS's endpoints do ([`TlsFront::start_keep_alive`]; moto's server
//! closes the connection after every answer).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};

/// A running terminator; it stops when dropped.
pub struct TlsFront {
    /// `https://localhost:<port>`.
    pub url: String,
    /// The PEM certificate of the CA that signed the front's certificate.
    pub ca_pem: String,
    handshake_failures: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// What the front does with a connection once TLS is up.
#[derive(Clone, Copy)]
enum Relay {
    Bytes,
    KeepAlive,
}

impl TlsFront {
    /// Listens on a free loopback port; each connection is TLS-terminated and its bytes
    /// relayed to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> TlsFront {
        TlsFront::serve(upstream, Relay::Bytes).await
    }

    /// [`TlsFront::start`], answering HTTP/1.1 itself: each request goes on to `upstream`
    /// on a connection of its own, and the client's connection stays open for the next
    /// one (moto's `Connection: close` is not passed on), so a client pays a TLS handshake
    /// per connection it opens, as with AWS, not per request.
    pub async fn start_keep_alive(upstream: &str) -> TlsFront {
        TlsFront::serve(upstream, Relay::KeepAlive).await
    }

    async fn serve(upstream: &str, relay: Relay) -> TlsFront {
        let upstream = upstream
            .strip_prefix("http://")
            .unwrap_or(upstream)
            .trim_end_matches('/')
            .to_string();
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let tls = std::path::PathBuf::from(crate::stack_var("STACK_DIR")).join("tls");
        let chain = CertificateDer::pem_file_iter(tls.join("server.crt"))
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .expect("the stack's server certificate");
        let key = PrivateKeyDer::from_pem_file(tls.join("server.key")).expect("its key");
        let ca_pem =
            std::fs::read_to_string(crate::stack_var("STACK_CA_FILE")).expect("the stack's CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
            .expect("TLS server configuration");
        // The bytes are relayed as they are, and moto speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let handshake_failures = Arc::new(AtomicUsize::new(0));
        let failures = handshake_failures.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let (acceptor, upstream, failures) =
                    (acceptor.clone(), upstream.clone(), failures.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        failures.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    match relay {
                        Relay::Bytes => {
                            if let Ok(mut plain) = TcpStream::connect(&upstream).await {
                                let _ = plain.set_nodelay(true);
                                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                            }
                        }
                        Relay::KeepAlive => serve_http(tls, upstream).await,
                    }
                });
            }
        });
        TlsFront {
            url: format!("https://localhost:{port}"),
            ca_pem,
            handshake_failures,
            task,
        }
    }

    /// TLS handshakes the front saw fail (a client that refused its certificate).
    pub fn handshake_failures(&self) -> usize {
        self.handshake_failures.load(Ordering::SeqCst)
    }

    /// Waits up to 5 s for the front to have seen `n` failed handshakes (the client
    /// reports its refusal before the front reads the alert); returns the count seen.
    pub async fn await_handshake_failures(&self, n: usize) -> usize {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.handshake_failures() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.handshake_failures()
    }
}

/// Serves one client connection: every request is forwarded, and the connection kept.
async fn serve_http(tls: tokio_rustls::server::TlsStream<TcpStream>, upstream: String) {
    use http_body_util::BodyExt;
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let upstream = upstream.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(|_| crate::fault_proxy::Dropped)?
                    .to_bytes();
                let mut answer = crate::fault_proxy::forward(&upstream, parts, body).await?;
                answer.headers_mut().remove(hyper::header::CONNECTION);
                Ok::<_, crate::fault_proxy::Dropped>(answer)
            }
        });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
        .await;
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
