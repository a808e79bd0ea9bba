//! PostgreSQL adapter: TLS connections (never plaintext), SCRAM verifiers, role DDL,
//! advisory locks and the probe of SigNoz's work. I/O only; decisions live in `access`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::Error;
use super::access::{AccessChange, ObservedAccess, ObservedLogin, ident, literal};
use super::deadline::{Deadline, attempt_timeouts};
use super::values::{Endpoint, Password};
use crate::spec::{DatabaseTls, TlsMode};

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
    pub timeouts: Timeouts,
    /// Attempts shrink to fit it; none means the timeouts as they are.
    pub deadline: Option<Deadline>,
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
        match self {
            CaSource::File { path, setting } => {
                let label = format!("{} (from {setting})", path.display());
                let pem = std::fs::read(path).map_err(|e| Error::CaBundle {
                    path: label.clone(),
                    reason: e.to_string(),
                })?;
                parse_roots(&pem, &label)
            }
            CaSource::ShippedRdsBundle => {
                static SHIPPED: OnceLock<RootCertStore> = OnceLock::new();
                if let Some(roots) = SHIPPED.get() {
                    return Ok(roots.clone());
                }
                let roots = parse_roots(RDS_CA_BUNDLE_PEM, "the shipped RDS bundle")?;
                Ok(SHIPPED.get_or_init(|| roots).clone())
            }
        }
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

impl PgTls {
    /// Builds the TLS set-up from the spec's `database.tls`.
    pub fn from_spec(tls: &DatabaseTls, timeouts: Timeouts) -> Result<Self, Error> {
        let roots = Arc::new(CaSource::for_spec(tls).roots()?);
        let config = match tls.mode {
            TlsMode::VerifyFull => ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
            TlsMode::VerifyCa => {
                let inner =
                    WebPkiServerVerifier::builder(roots)
                        .build()
                        .map_err(|e| Error::CaBundle {
                            path: "database.tls".into(),
                            reason: e.to_string(),
                        })?;
                ClientConfig::builder()
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnlyVerifier { inner }))
                    .with_no_client_auth()
            }
        };
        Ok(PgTls {
            connector: MakeRustlsConnect::new(config),
            timeouts,
            deadline: None,
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

    /// Connects over TLS (required: a server without TLS is an error) and bounds every
    /// statement by the statement timeout, both cut to fit the deadline.
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
            .host(&endpoint.host)
            .port(endpoint.port)
            .dbname(dbname)
            .user(user)
            .password(password.expose())
            .ssl_mode(SslMode::Require)
            .connect_timeout(timeouts.connect)
            .application_name("signoz-control-credentials");
        // The driver's timeout covers the TCP connect only; this one TLS and SCRAM too.
        let attempt =
            tokio::time::timeout(timeouts.connect, config.connect(self.connector.clone()));
        let (client, connection) = attempt
            .await
            .map_err(|_| Error::Network {
                reason: format!(
                    "connecting to {}:{} timed out after {} ms",
                    endpoint.host,
                    endpoint.port,
                    timeouts.connect.as_millis()
                ),
            })?
            .map_err(|e| classify(&e, user))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database connection ended");
            }
        });
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}",
                timeouts.statement.as_millis()
            ))
            .await
            .map_err(|e| classify(&e, user))?;
        Ok(client)
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

/// Sorts a driver error into authentication, TLS, network or database failures. The
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
    if e.to_string().starts_with("error performing TLS handshake") {
        Error::Tls { reason }
    } else {
        Error::Network { reason }
    }
}

/// The verifier PostgreSQL stores for `password`, computed here so the server never
/// sees the password in a statement (and so never logs it).
pub async fn password_verifier(
    client: &tokio_postgres::Client,
    role: &str,
    password: &Password,
) -> Result<String, Error> {
    let row = client
        .query_one("SHOW password_encryption", &[])
        .await
        .map_err(|e| classify(&e, role))?;
    let method: String = row.get(0);
    Ok(match method.as_str() {
        "md5" => postgres_protocol::password::md5(password.expose().as_bytes(), role),
        _ => postgres_protocol::password::scram_sha_256(password.expose().as_bytes()),
    })
}

/// Sets `role`'s password, sending only its verifier.
pub async fn set_role_password(
    client: &tokio_postgres::Client,
    role: &str,
    password: &Password,
) -> Result<(), Error> {
    let verifier = password_verifier(client, role, password).await?;
    client
        .batch_execute(&format!(
            "ALTER ROLE {} PASSWORD {}",
            ident(role),
            literal(&verifier)
        ))
        .await
        .map_err(|e| classify(&e, role))
}

/// Takes a session advisory lock per role (owner first, then the login role, always in
/// that order), so two rotations touching the same roles cannot interleave. Released
/// when the connection closes.
pub async fn lock_roles(client: &tokio_postgres::Client, roles: &[&str]) -> Result<(), Error> {
    for role in roles {
        client
            .execute("SELECT pg_advisory_lock($1)", &[&lock_key(role)])
            .await
            .map_err(|e| classify(&e, role))?;
    }
    Ok(())
}

/// A stable 64-bit advisory-lock key for a role name.
pub fn lock_key(role: &str) -> i64 {
    let digest = Sha256::digest(format!("signoz-control/role/{role}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("sha256 has 8 bytes"))
}

/// Reads what the server has of SigNoz's owner role, database and login roles.
pub async fn observe_access(
    client: &tokio_postgres::Client,
    database: &str,
    owner: &str,
    logins: &[String],
) -> Result<ObservedAccess, Error> {
    let err = |e: tokio_postgres::Error| classify(&e, owner);
    let owner_exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&owner])
        .await
        .map_err(err)?
        .is_some();
    let master_in_owner = owner_exists
        && client
            .query_one(
                "SELECT pg_has_role(current_user, $1::text, 'MEMBER')",
                &[&owner],
            )
            .await
            .map_err(err)?
            .get::<_, bool>(0);
    let database_owner = client
        .query_opt(
            "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .map_err(err)?
        .map(|row| row.get::<_, String>(0));
    let mut observed = Vec::new();
    for name in logins {
        let row = client
            .query_opt(
                "SELECT r.rolcanlogin,
                        EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles o ON o.oid = m.roleid
                                WHERE m.member = r.oid AND o.rolname = $2),
                        EXISTS (SELECT 1 FROM pg_db_role_setting s
                                WHERE s.setrole = r.oid AND s.setdatabase = 0
                                  AND ('role=' || $2) = ANY (s.setconfig)),
                        COALESCE((SELECT has_database_privilege(r.oid, d.oid, 'CONNECT')
                                  FROM pg_database d WHERE d.datname = $3), false)
                 FROM pg_roles r WHERE r.rolname = $1",
                &[name, &owner, &database],
            )
            .await
            .map_err(err)?;
        observed.push(match row {
            None => ObservedLogin {
                name: name.clone(),
                ..ObservedLogin::default()
            },
            Some(row) => ObservedLogin {
                name: name.clone(),
                exists: true,
                can_login: row.get(0),
                member_of_owner: row.get(1),
                defaults_to_owner: row.get(2),
                can_connect: row.get(3),
            },
        });
    }
    Ok(ObservedAccess {
        owner_exists,
        master_in_owner,
        database_owner,
        logins: observed,
    })
}

/// Applies planned changes one statement at a time, logging each.
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

/// Does SigNoz's work in its schema as the connected user: create, write, read and drop
/// a table, and check the table belongs to the owner role (so the other login role can
/// use what this one creates).
pub async fn probe_signoz_work(
    client: &tokio_postgres::Client,
    user: &str,
    owner: &str,
    probe: &str,
) -> Result<(), Error> {
    let err = |e: tokio_postgres::Error| classify(&e, user);
    let table = format!("public.{}", ident(probe));
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} (id integer PRIMARY KEY, note text NOT NULL);
             INSERT INTO {table} VALUES (1, 'rotation probe');"
        ))
        .await
        .map_err(err)?;
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT note FROM {table} WHERE id = 1),
                        (SELECT tableowner::text FROM pg_tables WHERE schemaname = 'public' AND tablename = $1)"
            ),
            &[&probe],
        )
        .await
        .map_err(err)?;
    let note: String = row.get(0);
    let table_owner: String = row.get(1);
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .map_err(err)?;
    if note != "rotation probe" {
        return Err(Error::ProbeFailed {
            user: user.into(),
            reason: "the row written was not read back".into(),
        });
    }
    if table_owner != owner {
        return Err(Error::ProbeFailed {
            user: user.into(),
            reason: format!("tables it creates belong to {table_owner}, not to {owner}"),
        });
    }
    Ok(())
}
