//! PostgreSQL adapter: TLS connections (never plaintext), SCRAM verifiers, role DDL,
//! advisory locks and the probe of SigNoz's work. I/O only; decisions live in `access`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::config::{SslMode, SslNegotiation};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::Type;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::Error;
use super::access::{
    AccessChange, ForeignObject, ObjectKind, ObservedAccess, ObservedLogin, ObservedObjects, ident,
    literal,
};
use super::deadline::{Deadline, attempt_timeouts};
use super::values::{Endpoint, Password};
use crate::spec::{DatabaseTls, TlsMode, TlsNegotiation};

/// Environment variable naming a PEM file to trust instead of the shipped RDS bundle
/// when the spec names no `database.tls.ca_file` (e.g. a newer bundle in a layer).
pub const RDS_CA_BUNDLE_ENV: &str = "RDS_CA_BUNDLE";

/// The Amazon RDS root CAs, shipped inside the function (see the file's header).
pub const RDS_CA_BUNDLE_PEM: &[u8] = include_bytes!("rds-global-bundle.pem");

/// Bounds of one database attempt, well inside a Lambda's timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub statement: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            statement: Duration::from_secs(10),
        }
    }
}

/// A verified TLS set-up for one server: the CA and how strictly names are checked.
#[derive(Clone)]
pub struct PgTls {
    connector: MakeRustlsConnect,
    negotiation: TlsNegotiation,
    pub timeouts: Timeouts,
    /// Attempts shrink to fit it; none means the timeouts as they are.
    pub deadline: Option<Deadline>,
    /// Sessions opened ahead of the logins they are for ([`PgTls::with_opened`]).
    opened: Arc<Mutex<Vec<OpenedTo>>>,
}

/// Where the CA certificates to trust come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// A PEM file; `setting` names where the path came from, for the error.
    File { path: PathBuf, setting: String },
    /// [`RDS_CA_BUNDLE_PEM`].
    ShippedRdsBundle,
}

impl CaSource {
    /// The spec's `database.tls.ca_file`, else `$RDS_CA_BUNDLE`, else the shipped bundle.
    pub fn for_spec(tls: &DatabaseTls) -> Self {
        if let Some(file) = &tls.ca_file {
            return CaSource::File {
                path: file.into(),
                setting: "database.tls.ca_file".into(),
            };
        }
        match std::env::var(RDS_CA_BUNDLE_ENV) {
            Ok(path) if !path.is_empty() => CaSource::File {
                path: path.into(),
                setting: format!("environment variable {RDS_CA_BUNDLE_ENV}"),
            },
            _ => CaSource::ShippedRdsBundle,
        }
    }

    /// The trust anchors; the error names the file and the setting that named it. A
    /// file is read on every call (it may be replaced); the shipped bundle parsed once.
    pub fn roots(&self) -> Result<RootCertStore, Error> {
        static SHIPPED: OnceLock<RootCertStore> = OnceLock::new();
        let shipped = matches!(self, CaSource::ShippedRdsBundle);
        if let Some(roots) = SHIPPED.get().filter(|_| shipped) {
            return Ok(roots.clone());
        }
        let (pem, label) = self.read()?;
        let roots = parse_roots(&pem, &label)?;
        if shipped {
            return Ok(SHIPPED.get_or_init(|| roots).clone());
        }
        Ok(roots)
    }

    /// The bundle's bytes and a label naming where they came from.
    fn read(&self) -> Result<(Vec<u8>, String), Error> {
        match self {
            CaSource::File { path, setting } => {
                let label = format!("{} (from {setting})", path.display());
                let pem = std::fs::read(path).map_err(|e| Error::CaBundle {
                    path: label.clone(),
                    reason: e.to_string(),
                })?;
                Ok((pem, label))
            }
            CaSource::ShippedRdsBundle => {
                Ok((RDS_CA_BUNDLE_PEM.to_vec(), "the shipped RDS bundle".into()))
            }
        }
    }
}

impl CaSource {
    /// The bundle as PEM text, to hand to the pods (they trust what the function trusts).
    pub fn pem(&self) -> Result<String, Error> {
        let (pem, label) = self.read()?;
        parse_roots(&pem, &label)?;
        String::from_utf8(pem).map_err(|_| Error::CaBundle {
            path: label,
            reason: "not PEM text".into(),
        })
    }
}

/// Every certificate of a PEM bundle as a trust anchor; an empty bundle is an error.
fn parse_roots(pem: &[u8], label: &str) -> Result<RootCertStore, Error> {
    let bad = |reason: String| Error::CaBundle {
        path: label.to_string(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(pem) {
        let cert: CertificateDer<'static> = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(roots)
}

/// rustls on ring with P-256 first: PostgreSQL up to 17 (RDS included) offers only
/// `ssl_ecdh_curve = prime256v1` by default, so a first key share for X25519 (rustls'
/// default) costs a HelloRetryRequest, one more round trip per login; PostgreSQL 18's
/// default `ssl_groups` accepts P-256 too.
fn postgres_key_shares() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::{default_provider, kx_group};
    rustls::crypto::CryptoProvider {
        kx_groups: vec![kx_group::SECP256R1, kx_group::X25519, kx_group::SECP384R1],
        ..default_provider()
    }
}

impl PgTls {
    /// Builds the TLS set-up from the spec's `database.tls`.
    pub fn from_spec(tls: &DatabaseTls, timeouts: Timeouts) -> Result<Self, Error> {
        let roots = Arc::new(CaSource::for_spec(tls).roots()?);
        let builder = ClientConfig::builder_with_provider(Arc::new(postgres_key_shares()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::CaBundle {
                path: "database.tls".into(),
                reason: e.to_string(),
            })?;
        let mut config = match tls.mode {
            TlsMode::VerifyFull => builder.with_root_certificates(roots).with_no_client_auth(),
            TlsMode::VerifyCa => {
                let inner =
                    WebPkiServerVerifier::builder(roots)
                        .build()
                        .map_err(|e| Error::CaBundle {
                            path: "database.tls".into(),
                            reason: e.to_string(),
                        })?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnlyVerifier { inner }))
                    .with_no_client_auth()
            }
        };
        // What libpq 17 sends, needed by direct negotiation; older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(PgTls {
            connector: MakeRustlsConnect::new(config),
            negotiation: tls.negotiation,
            timeouts,
            deadline: None,
            opened: Arc::default(),
        })
    }

    /// The same set-up, with every attempt cut to fit before `deadline`.
    pub fn until(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Time left before the deadline, if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| d.remaining())
    }

    /// The timeouts of an attempt starting now, or a retryable error when none fits.
    fn attempt(&self, op: &'static str) -> Result<Timeouts, Error> {
        let Some(remaining) = self.remaining() else {
            return Ok(self.timeouts);
        };
        attempt_timeouts(self.timeouts, remaining).ok_or(Error::DeadlineNear {
            op,
            remaining_ms: remaining.as_millis() as u64,
        })
    }

    /// The same set-up, logging in first on `sessions` (each opened by [`PgTls::open`]
    /// to the endpoint it names): a login to one of them takes the next one, a session
    /// that failed to open fails that login as it would have, and one found closed is
    /// replaced by a new one.
    pub fn with_opened(self, sessions: Vec<OpenedTo>) -> Self {
        *self.opened.lock().unwrap_or_else(|e| e.into_inner()) = sessions;
        self
    }

    /// The next session opened to `endpoint`, if any is left.
    fn take_opened(&self, endpoint: &Endpoint) -> Option<Result<Opened, Error>> {
        let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        let i = opened.iter().position(|(to, _)| to == endpoint)?;
        Some(opened.swap_remove(i).1)
    }

    /// Connects to `endpoint`, asks for TLS as `database.tls.negotiation` says and
    /// verifies the server, within the connect timeout: everything of a login that needs
    /// no credentials (two round trips, one with direct negotiation).
    pub async fn open(&self, endpoint: &Endpoint) -> Result<Opened, Error> {
        let timeouts = self.attempt("database login")?;
        let open = open_session(self.connector.clone(), self.negotiation, endpoint.clone());
        tokio::time::timeout(timeouts.connect, open)
            .await
            .map_err(|_| timed_out(endpoint, timeouts))?
    }

    /// Logs in over TLS (required: a server without TLS is an error), on a session
    /// [`PgTls::with_opened`] holds for `endpoint` or a new one, and bounds every
    /// statement by the statement timeout, both cut to fit the deadline.
    #[tracing::instrument(level = "debug", name = "postgresql login", skip_all,
        fields(db.system.name = "postgresql", db.operation.name = "login", db.namespace = dbname))]
    pub async fn connect(
        &self,
        endpoint: &Endpoint,
        dbname: &str,
        user: &str,
        password: &Password,
    ) -> Result<tokio_postgres::Client, Error> {
        let timeouts = self.attempt("database login")?;
        let mut config = tokio_postgres::Config::new();
        config
            .dbname(dbname)
            .user(user)
            .password(password.expose())
            // The session is TLS already: "direct" makes the driver start on it at once.
            .ssl_mode(SslMode::Require)
            .ssl_negotiation(SslNegotiation::Direct)
            .application_name("signoz-control-credentials")
            // In the startup message, not a `SET` after it: one round trip less per login.
            .options(format!(
                "-c statement_timeout={}",
                timeouts.statement.as_millis()
            ));
        let opened = self.take_opened(endpoint);
        let (connector, negotiation, to) =
            (self.connector.clone(), self.negotiation, endpoint.clone());
        let user_name = user.to_string();
        // One timeout over the TCP connect, TLS and SCRAM. A task of its own: SCRAM's key
        // derivation is CPU work, so logins made at once derive their keys on separate
        // threads instead of waiting for each other.
        let attempt = AbortOnDrop(tokio::spawn(async move {
            tokio::time::timeout(timeouts.connect, async move {
                // A session opened ahead may have been closed while it waited (the
                // server's `authentication_timeout`, an idle path dropped): its login
                // fails before the server answered it, and a new session takes its place.
                if let Some(opened) = opened {
                    match config.connect_raw(opened?.stream, Established).await {
                        Err(e) if hung_up(&e) => {}
                        login => return login.map_err(|e| classify(&e, &user_name)),
                    }
                }
                let session = open_session(connector, negotiation, to).await?;
                config
                    .connect_raw(session.stream, Established)
                    .await
                    .map_err(|e| classify(&e, &user_name))
            })
            .await
        }));
        let (client, connection) = attempt
            .join()
            .await?
            .map_err(|_| timed_out(endpoint, timeouts))??;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database connection ended");
            }
        });
        Ok(client)
    }
}

/// The connection ended under the login without an answer from the server.
fn hung_up(e: &tokio_postgres::Error) -> bool {
    e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// A session opened (or not) to an endpoint, for [`PgTls::with_opened`].
pub type OpenedTo = (Endpoint, Result<Opened, Error>);

/// A verified TLS session to a server that no one has logged in on yet.
pub struct Opened {
    stream: Session,
}

/// The TLS stream a login runs over (rustls; channel binding from the server's certificate).
type Session = <MakeRustlsConnect as MakeTlsConnect<TcpStream>>::Stream;

/// PostgreSQL's SSLRequest: length 8, then the code 1234 5679.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// TCP to `endpoint`, then TLS (after an SSLRequest unless the negotiation is direct),
/// the server verified as `connector` is configured to.
async fn open_session(
    mut connector: MakeRustlsConnect,
    negotiation: TlsNegotiation,
    endpoint: Endpoint,
) -> Result<Opened, Error> {
    let at = format!("{}:{}", endpoint.host, endpoint.port);
    let network = |e: std::io::Error| Error::Network {
        reason: format!("connecting to {at}: {e}"),
    };
    let mut tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(network)?;
    tcp.set_nodelay(true).map_err(network)?;
    if negotiation == TlsNegotiation::Postgres {
        tcp.write_all(&SSL_REQUEST).await.map_err(network)?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await.map_err(network)?;
        if answer[0] != b'S' {
            return Err(Error::Tls {
                reason: format!("{at} does not support TLS (it refused the SSLRequest)"),
            });
        }
    }
    let tls = match MakeTlsConnect::<TcpStream>::make_tls_connect(&mut connector, &endpoint.host) {
        Ok(tls) => tls,
        Err(never) => match never {},
    };
    let stream = tls.connect(tcp).await.map_err(|e| {
        let reason = format!("TLS handshake with {at}: {e}");
        Error::Tls {
            reason: match negotiation {
                TlsNegotiation::Postgres => reason,
                TlsNegotiation::Direct => format!(
                    "{reason} (database.tls.negotiation is direct: the server must be PostgreSQL 17 or later, reached without a pooler or proxy that needs an SSLRequest; set it to postgres otherwise)"
                ),
            },
        }
    })?;
    Ok(Opened { stream })
}

fn timed_out(endpoint: &Endpoint, timeouts: Timeouts) -> Error {
    Error::Network {
        reason: format!(
            "connecting to {}:{} timed out after {} ms",
            endpoint.host,
            endpoint.port,
            timeouts.connect.as_millis()
        ),
    }
}

/// A session [`open_session`] made, handed to the driver as its TLS: the driver, told
/// the negotiation is direct, starts the login on it at once.
struct Established;

impl TlsConnect<Session> for Established {
    type Stream = Session;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Session, Self::Error>>;

    fn connect(self, session: Session) -> Self::Future {
        std::future::ready(Ok(session))
    }
}

/// A spawned task that ends when its handle is dropped (a login whose caller gave up).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, Error> {
        (&mut self.0).await.map_err(|e| Error::Network {
            reason: format!("database login task ended: {e}"),
        })
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Checks the chain against the CA but not the host name (`verify-ca`).
#[derive(Debug)]
struct ChainOnlyVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Sorts a driver error into authentication, network or database failures. The
/// text comes from the driver and the server, which never echo a password.
pub fn classify(e: &tokio_postgres::Error, user: &str) -> Error {
    if let Some(db) = e.as_db_error() {
        if db.code() == &SqlState::INVALID_PASSWORD {
            return Error::Authentication { user: user.into() };
        }
        return Error::Database {
            sqlstate: db.code().code().to_string(),
            reason: db.message().to_string(),
        };
    }
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    // TLS is set up before the driver starts (`open_session`), so the rest is the network.
    Error::Network { reason }
}

/// The verifier PostgreSQL stores for `password` under `method` (`password_encryption`),
/// computed here so the server never sees the password in a statement (and so never
/// logs it).
fn password_verifier(method: &str, role: &str, password: &Password) -> String {
    match method {
        "md5" => postgres_protocol::password::md5(password.expose().as_bytes(), role),
        _ => postgres_protocol::password::scram_sha_256(password.expose().as_bytes()),
    }
}

/// A password change made ready on one connection: the verifier's method is read, the
/// temporary table it travels through exists and the `COPY` into it is prepared, so
/// [`PasswordChange::apply`] takes two round trips.
pub struct PasswordChange<'a> {
    client: &'a tokio_postgres::Client,
    role: String,
    method: String,
    copy: tokio_postgres::Statement,
}

/// Readies a change of `role`'s password on `client`: one round trip, pipelined behind
/// whatever was sent before it (a lock, say) and run by the server after it.
#[tracing::instrument(level = "debug", name = "SHOW password_encryption", skip_all,
    fields(db.system.name = "postgresql", db.operation.name = "SHOW"))]
pub async fn prepare_password_change<'a>(
    client: &'a tokio_postgres::Client,
    role: &str,
) -> Result<PasswordChange<'a>, Error> {
    let err = |e: tokio_postgres::Error| classify(&e, role);
    // Sent in this order, so the table exists when the COPY is parsed.
    let (method, table, copy) = tokio::join!(
        biased;
        client.query_typed_one("SHOW password_encryption", &[]),
        client.batch_execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS signoz_control_verifier (verifier text NOT NULL);
             TRUNCATE signoz_control_verifier",
        ),
        client.prepare("COPY signoz_control_verifier (verifier) FROM STDIN"),
    );
    let method: String = method.map_err(err)?.get(0);
    table.map_err(err)?;
    Ok(PasswordChange {
        client,
        role: role.to_string(),
        method,
        copy: copy.map_err(err)?,
    })
}

impl PasswordChange<'_> {
    /// Sets the password, sending only its verifier, and never as statement text: the
    /// verifier travels as `COPY` data into the temporary table (`log_statement = all`
    /// logs the `COPY` command, not its rows), and a `DO` block runs the `ALTER ROLE`
    /// through PL/pgSQL's `EXECUTE`, which statement logging does not see either. An
    /// error inside is raised again without its context, which would quote the statement.
    /// Two round trips: the `COPY` starts, then its data, its end and the `DO` block go
    /// together; the block refuses to run unless exactly one verifier arrived, so a
    /// failed `COPY` can never set `PASSWORD NULL`.
    #[tracing::instrument(level = "debug", name = "ALTER ROLE PASSWORD", skip_all,
        fields(db.system.name = "postgresql", db.operation.name = "ALTER ROLE"))]
    pub async fn apply(self, password: &Password) -> Result<(), Error> {
        use futures_util::SinkExt;
        let role = self.role.as_str();
        let err = |e: tokio_postgres::Error| classify(&e, role);
        let verifier = password_verifier(&self.method, role, password);
        let sink = self.client.copy_in(&self.copy).await.map_err(err)?;
        let mut sink = std::pin::pin!(sink);
        let copied = async {
            sink.send(bytes::Bytes::from(format!("{verifier}\n")))
                .await?;
            sink.as_mut().finish().await
        };
        let block = format!(
            "DO $signoz_control$
             DECLARE verifier text;
             BEGIN
               SELECT v.verifier INTO STRICT verifier FROM signoz_control_verifier v;
               EXECUTE format('ALTER ROLE %I PASSWORD %L', {role}, verifier);
             EXCEPTION WHEN OTHERS THEN
               RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = SQLERRM;
             END
             $signoz_control$;
             DROP TABLE signoz_control_verifier",
            role = literal(role)
        );
        let set = self.client.batch_execute(&block);
        // The block is queued behind the COPY: the server runs it once the data is in.
        let (copied, set) = tokio::join!(biased; copied, set);
        copied.map_err(err)?;
        set.map_err(err)
    }
}

/// Sets `role`'s password as [`PasswordChange::apply`] does: three round trips.
pub async fn set_role_password(
    client: &tokio_postgres::Client,
    role: &str,
    password: &Password,
) -> Result<(), Error> {
    prepare_password_change(client, role)
        .await?
        .apply(password)
        .await
}

/// Takes a session advisory lock per role, in the order given (owner first, then the
/// login role, always), so two rotations touching the same roles cannot interleave: one
/// statement, so one round trip, the locks taken one after the other. Released when the
/// connection closes.
#[tracing::instrument(level = "debug", name = "SELECT pg_advisory_lock", skip_all,
    fields(db.system.name = "postgresql", db.operation.name = "SELECT"))]
pub async fn lock_roles(client: &tokio_postgres::Client, roles: &[&str]) -> Result<(), Error> {
    if roles.is_empty() {
        return Ok(());
    }
    // The keys are numbers this code computed: nothing of the caller's reaches the text.
    let statement: String = roles
        .iter()
        .map(|role| format!("SELECT pg_advisory_lock({});", lock_key(role)))
        .collect();
    client
        .batch_execute(&statement)
        .await
        .map_err(|e| classify(&e, &roles.join(", ")))
}

/// Takes the advisory locks of `lock` (in that order) and reads, under them, who the
/// connected master is and what the server has of SigNoz's access: one round trip, the
/// reads pipelined behind the locks, so the server runs them once it holds the locks.
pub async fn lock_and_observe_access(
    client: &tokio_postgres::Client,
    lock: &[&str],
    database: &str,
    owner: &str,
    logins: &[String],
) -> Result<(String, ObservedAccess), Error> {
    let (locked, master, observed) = tokio::join!(
        biased;
        lock_roles(client, lock),
        client.query_typed_one("SELECT current_user::text", &[]),
        observe_access(client, database, owner, logins),
    );
    // Checked first: reads the server made without the locks are not used.
    locked?;
    let master: String = master.map_err(|e| classify(&e, "master"))?.get(0);
    Ok((master, observed?))
}

/// Sessions of one user other than our own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sessions {
    pub count: i64,
    /// Their distinct `application_name`s, comma-separated (empty when hidden or unset).
    pub applications: String,
}

/// The sessions `user` has open now (`pg_stat_activity`, which shows every session's
/// user to any role).
#[tracing::instrument(level = "debug", name = "SELECT pg_stat_activity", skip_all,
    fields(db.system.name = "postgresql", db.operation.name = "SELECT"))]
pub async fn sessions_of(client: &tokio_postgres::Client, user: &str) -> Result<Sessions, Error> {
    let row = client
        .query_typed_one(
            "SELECT count(*), COALESCE(string_agg(DISTINCT NULLIF(application_name, ''), ', '), '')
             FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()",
            &[(&user, Type::NAME)],
        )
        .await
        .map_err(|e| classify(&e, user))?;
    Ok(Sessions {
        count: row.get(0),
        applications: row.get(1),
    })
}

/// A stable 64-bit advisory-lock key for a role name.
pub fn lock_key(role: &str) -> i64 {
    let digest = Sha256::digest(format!("signoz-control/role/{role}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("sha256 has 8 bytes"))
}

/// SQL that is true when `member` has `role`'s privileges and may `SET ROLE` to it: on
/// PostgreSQL 16+ a bare `ADMIN OPTION` grant (what `CREATE ROLE` leaves its creator)
/// counts as membership but gives neither. `CASE` keeps 15 from parsing `'SET'`.
fn acts_as(member: &str, role: &str) -> String {
    format!(
        "(pg_has_role({member}, {role}, 'USAGE') AND CASE WHEN current_setting('server_version_num')::int >= 160000 \
         THEN pg_has_role({member}, {role}, 'SET') ELSE true END)"
    )
}

/// SQL that is true for a role with rights SigNoz's roles must never have.
const PRIVILEGED: &str =
    "(r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls)";

/// Reads what the server has of SigNoz's owner role, database and login roles.
#[tracing::instrument(level = "debug", name = "SELECT roles and grants", skip_all,
    fields(db.system.name = "postgresql", db.operation.name = "SELECT"))]
pub async fn observe_access(
    client: &tokio_postgres::Client,
    database: &str,
    owner: &str,
    logins: &[String],
) -> Result<ObservedAccess, Error> {
    let err = |e: tokio_postgres::Error| classify(&e, owner);
    let owner_query = format!(
        "SELECT {PRIVILEGED}, {} FROM pg_roles r WHERE r.rolname = $1",
        acts_as("current_user", "r.oid")
    );
    let login_query = format!(
        "SELECT r.rolcanlogin, {PRIVILEGED},
                COALESCE((SELECT {} FROM pg_roles o WHERE o.rolname = $2), false),
                EXISTS (SELECT 1 FROM pg_db_role_setting s
                        WHERE s.setrole = r.oid AND s.setdatabase = 0
                          AND ('role=' || $2) = ANY (s.setconfig)),
                COALESCE((SELECT has_database_privilege(r.oid, d.oid, 'CONNECT')
                          FROM pg_database d WHERE d.datname = $3), false),
                {}
         FROM pg_roles r WHERE r.rolname = $1",
        acts_as("r.oid", "o.oid"),
        acts_as("current_user", "r.oid")
    );
    // Independent reads: sent together, one round trip.
    let login_query = &login_query;
    let (owner_row, database_owner, login_rows) = tokio::join!(
        async {
            client
                .query_typed_opt(&owner_query, &[(&owner, Type::NAME)])
                .await
        },
        async {
            client
                .query_typed_opt(
                    "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
                    &[(&database, Type::NAME)],
                )
                .await
        },
        futures_util::future::join_all(logins.iter().map(|name| async move {
            client
                .query_typed_opt(
                    login_query,
                    &[
                        (name, Type::NAME),
                        (&owner, Type::NAME),
                        (&database, Type::NAME),
                    ],
                )
                .await
        })),
    );
    let owner_row = owner_row.map_err(err)?;
    let database_owner = database_owner
        .map_err(err)?
        .map(|row| row.get::<_, String>(0));
    let mut observed = Vec::new();
    for (name, row) in logins.iter().zip(login_rows) {
        observed.push(match row.map_err(err)? {
            None => ObservedLogin {
                name: name.clone(),
                ..ObservedLogin::default()
            },
            Some(row) => ObservedLogin {
                name: name.clone(),
                exists: true,
                can_login: row.get(0),
                privileged: row.get(1),
                member_of_owner: row.get(2),
                defaults_to_owner: row.get(3),
                can_connect: row.get(4),
                master_acts_as: row.get(5),
            },
        });
    }
    Ok(ObservedAccess {
        owner_exists: owner_row.is_some(),
        owner_privileged: owner_row.as_ref().is_some_and(|r| r.get(0)),
        master_acts_as_owner: owner_row.as_ref().is_some_and(|r| r.get(1)),
        database_owner,
        logins: observed,
    })
}

/// Reads, connected to SigNoz's database, what `PUBLIC` and the owner may do there and
/// every object (outside PostgreSQL's own schemas and extensions) the owner does not own.
/// Sequences of a serial or identity column, indexes and row types follow their table.
#[tracing::instrument(level = "debug", name = "SELECT object owners", skip_all,
    fields(db.system.name = "postgresql", db.operation.name = "SELECT"))]
pub async fn observe_objects(
    client: &tokio_postgres::Client,
    owner: &str,
) -> Result<ObservedObjects, Error> {
    let err = |e: tokio_postgres::Error| classify(&e, owner);
    let privileges = async {
        client
            .query_typed_one(
                "SELECT has_database_privilege('public', current_database(), 'CONNECT')
                    OR has_database_privilege('public', current_database(), 'TEMPORARY'),
                    COALESCE((SELECT has_schema_privilege('public', n.oid, 'CREATE')
                              FROM pg_namespace n WHERE n.nspname = 'public'), false),
                    COALESCE((SELECT has_schema_privilege($1::text, n.oid, 'USAGE')
                                 AND has_schema_privilege($1::text, n.oid, 'CREATE')
                              FROM pg_namespace n WHERE n.nspname = 'public'), true)",
                &[(&owner, Type::TEXT)],
            )
            .await
    };
    let user_schema = |alias: &str| {
        format!("{alias}.nspname NOT LIKE 'pg\\_%' AND {alias}.nspname <> 'information_schema'")
    };
    let not_extension = |catalog: &str, oid: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass \
             AND e.objid = {oid} AND e.deptype = 'e')"
        )
    };
    let objects_query = format!(
        "WITH objects AS (
           SELECT 'schema' AS kind, quote_ident(n.nspname) AS name, n.nspowner AS owner
           FROM pg_namespace n
           WHERE {schema_n} AND n.nspname <> 'public' AND {ext_n}
           UNION ALL
           SELECT c.relkind::text, quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relowner
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {schema_n} AND {ext_c}
             AND NOT (c.relkind = 'S' AND EXISTS (
               SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                 AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
                 AND d.deptype IN ('a', 'i')))
           UNION ALL
           SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
                  quote_ident(n.nspname) || '.' || quote_ident(p.proname)
                    || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                  p.proowner
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE p.prokind IN ('f', 'p') AND {schema_n} AND {ext_p}
           UNION ALL
           SELECT 'type', quote_ident(n.nspname) || '.' || quote_ident(t.typname), t.typowner
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE t.typtype IN ('c', 'd', 'e', 'r') AND {schema_n} AND {ext_t}
             AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
         )
         SELECT o.kind, o.name, pg_get_userbyid(o.owner)::text, {acts}
         FROM objects o
         WHERE o.owner <> (SELECT oid FROM pg_roles WHERE rolname = $1)
         ORDER BY 1, 2",
        schema_n = user_schema("n"),
        ext_n = not_extension("pg_namespace", "n.oid"),
        ext_c = not_extension("pg_class", "c.oid"),
        ext_p = not_extension("pg_proc", "p.oid"),
        ext_t = not_extension("pg_type", "t.oid"),
        acts = acts_as("current_user", "o.owner"),
    );
    // Independent reads: sent together, one round trip.
    let (privileges, rows) = tokio::join!(privileges, async {
        client
            .query_typed(&objects_query, &[(&owner, Type::NAME)])
            .await
    });
    let privileges = privileges.map_err(err)?;
    let foreign = rows
        .map_err(err)?
        .iter()
        .filter_map(|row| {
            Some(ForeignObject {
                kind: ObjectKind::from_code(row.get(0))?,
                name: row.get(1),
                owner: row.get(2),
                master_acts_as_owner: row.get(3),
            })
        })
        .collect();
    Ok(ObservedObjects {
        public_database_access: privileges.get(0),
        public_creates_in_schema: privileges.get(1),
        owner_creates_in_schema: privileges.get(2),
        foreign,
    })
}

/// Applies planned changes one statement at a time, logging each.
#[tracing::instrument(level = "debug", name = "DDL roles and grants", skip_all,
    fields(db.system.name = "postgresql", db.operation.name = "DDL", db.statements = changes.len()))]
pub async fn apply_access(
    client: &tokio_postgres::Client,
    changes: &[AccessChange],
) -> Result<(), Error> {
    for change in changes {
        client
            .batch_execute(&change.sql())
            .await
            .map_err(|e| classify(&e, "master"))?;
        tracing::info!(change = %change, "database access changed");
    }
    Ok(())
}

/// Table every testSecret writes to and reads from: it outlives a rotation, so each login
/// proves it can use a table another login created.
pub const PROBE_LEDGER: &str = "signoz_control_rotation_probe";

/// Prefix of testSecret's own probe tables: another rotation's probe may create and drop
/// one at any moment, so the probe never reads or writes them as SigNoz's tables (their
/// owner is still checked: one in the way that the login cannot own fails the probe).
pub const PROBE_TABLE_PREFIX: &str = "signoz_control_probe_";

/// Does SigNoz's work as the connected user (after its `SET ROLE` to the owner):
/// - every relation in SigNoz's schemas belongs to a role it acts as (SigNoz's
///   migrations alter them), and it reads and writes each table (the executor checks
///   SELECT on `LIMIT 0` and DELETE on `WHERE false`, without touching a row, in a
///   transaction rolled back);
/// - it writes a row into [`PROBE_LEDGER`] (created on first use, so later on by another
///   login) and reads back every row, including those other logins wrote;
/// - it creates, writes, reads and drops a new table, which must belong to `owner` so
///   the other login can use it.
///
/// One round trip: every statement is sent at once, each with its own sync point, so one
/// failing does not stop the others, and the server runs them in order; the answers are
/// then judged in that order, so the first failure is the one reported, by name.
#[tracing::instrument(level = "debug", name = "probe SigNoz tables", skip_all,
    fields(db.system.name = "postgresql", db.operation.name = "DML"))]
pub async fn probe_signoz_work(
    client: &tokio_postgres::Client,
    user: &str,
    owner: &str,
    probe: &str,
) -> Result<(), Error> {
    let err = |e: tokio_postgres::Error| classify(&e, user);
    let failed = |reason: String| Error::ProbeFailed {
        user: user.into(),
        reason,
    };
    let in_signoz_schemas = "c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
               AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'";
    let relations = format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),
                pg_get_userbyid(c.relowner)::text, pg_has_role(c.relowner, 'USAGE')
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE {in_signoz_schemas}
         ORDER BY 1"
    );
    // The same tables, touched by the server itself: no answer to wait for in between.
    // Probe tables are listed (their owner is checked) but not touched: a concurrent
    // rotation may drop its own between the loop's listing and the touch.
    let touch = format!(
        "BEGIN;
         DO $signoz_control$
         DECLARE t text;
         BEGIN
           FOR t IN SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE {in_signoz_schemas} AND c.relkind IN ('r', 'p')
                      AND NOT starts_with(c.relname::text, {prefix})
                    ORDER BY 1
           LOOP
             EXECUTE format('SELECT FROM %s LIMIT 0', t);
             EXECUTE format('DELETE FROM %s WHERE false', t);
           END LOOP;
         EXCEPTION WHEN OTHERS THEN
           RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = SQLERRM;
         END
         $signoz_control$",
        prefix = literal(PROBE_TABLE_PREFIX)
    );
    let ledger = format!("public.{}", ident(PROBE_LEDGER));
    // Two logins may create the ledger at once: the creation is serialised (the lock is
    // held until the block's transaction ends).
    let create_ledger = format!(
        "DO $signoz_control$
         BEGIN
           PERFORM pg_advisory_xact_lock({lock});
           CREATE TABLE IF NOT EXISTS {ledger} (
             version text PRIMARY KEY, login text NOT NULL,
             written_at timestamptz NOT NULL DEFAULT now());
         END
         $signoz_control$",
        lock = lock_key(PROBE_LEDGER)
    );
    let write_ledger = format!(
        "INSERT INTO {ledger} (version, login) VALUES ($1, session_user)
         ON CONFLICT (version) DO UPDATE SET login = EXCLUDED.login, written_at = now()"
    );
    let read_ledger = format!("SELECT count(*) FROM {ledger} WHERE version = $1");
    // Keep the ledger short: the last rows are enough to show who wrote before.
    let trim_ledger = format!(
        "DELETE FROM {ledger} WHERE version NOT IN
           (SELECT version FROM {ledger} ORDER BY written_at DESC LIMIT 10)"
    );
    let table = format!("public.{}", ident(probe));
    // One message, so the server stops at the first statement that fails (and undoes
    // the ones before): nothing runs on a table that is not the probe's own.
    // A table of that name that the login cannot own stays: the listing above reports it
    // (the owner owns the public schema, so the DROP would succeed).
    let table_work = format!(
        "DO $signoz_control$
         BEGIN
           IF EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = 'public' AND c.relname = {name}
                        AND NOT pg_has_role(c.relowner, 'USAGE')) THEN
             RAISE EXCEPTION 'a table in the way belongs to another role';
           END IF;
         END
         $signoz_control$;
         DROP TABLE IF EXISTS {table};
         CREATE TABLE {table} (id integer PRIMARY KEY, note text NOT NULL);
         INSERT INTO {table} VALUES (1, 'rotation probe');
         SELECT (SELECT note FROM {table} WHERE id = 1),
                (SELECT tableowner::text FROM pg_tables
                 WHERE schemaname = 'public' AND tablename = {name});
         DROP TABLE {table};",
        name = literal(probe)
    );
    let probe_text: &[(&(dyn tokio_postgres::types::ToSql + Sync), Type)] = &[(&probe, Type::TEXT)];
    let (relations, touched, rolled_back, ledger_made, written, seen, trimmed, tabled) = tokio::join!(
        biased;
        client.query_typed(&relations, &[]),
        client.batch_execute(&touch),
        // Its own message, so it runs (and ends the transaction) even when the touch failed.
        client.batch_execute("ROLLBACK"),
        client.batch_execute(&create_ledger),
        client.execute_typed(&write_ledger, probe_text),
        client.query_typed_one(&read_ledger, probe_text),
        client.execute_typed(&trim_ledger, &[]),
        client.simple_query(&table_work),
    );

    let foreign: Vec<String> = relations
        .map_err(err)?
        .iter()
        .filter(|r| !r.get::<_, bool>(2))
        .map(|r| {
            format!(
                "{} (owned by {})",
                r.get::<_, String>(0),
                r.get::<_, String>(1)
            )
        })
        .collect();
    if !foreign.is_empty() {
        return Err(failed(format!(
            "it cannot own what SigNoz's migrations alter: {}",
            foreign.join(", ")
        )));
    }
    touched.map_err(|e| {
        failed(format!(
            "reading or writing SigNoz's tables: {}",
            match classify(&e, user) {
                Error::Database { reason, .. } => reason,
                other => other.to_string(),
            }
        ))
    })?;
    rolled_back.map_err(err)?;
    ledger_made.map_err(err)?;
    written.map_err(err)?;
    let seen: i64 = seen.map_err(err)?.get(0);
    if seen != 1 {
        return Err(failed(format!(
            "the row written to {PROBE_LEDGER} was not read back"
        )));
    }
    trimmed.map_err(err)?;
    let tabled = tabled.map_err(err)?;
    let row = tabled.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    let note = row.and_then(|r| r.get(0)).unwrap_or_default();
    let table_owner = row.and_then(|r| r.get(1)).unwrap_or_default();
    if note != "rotation probe" {
        return Err(failed("the row written was not read back".into()));
    }
    if table_owner != owner {
        return Err(failed(format!(
            "tables it creates belong to {table_owner}, not to {owner}"
        )));
    }
    Ok(())
}
