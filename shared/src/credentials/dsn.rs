//! The URL DSN SigNoz reads from `SIGNOZ_SQLSTORE_POSTGRES_DSN`, and the CA bundle handed
//! over with it.
//!
//! SigNoz parses the DSN once at start-up with pgx v5 (`pgxpool.ParseConfig`, SigNoz/signoz
//! `ee/sqlstore/postgressqlstore/provider.go`). pgx follows libpq for `sslmode` and
//! `sslrootcert`: with `verify-full` it trusts only the PEM file `sslrootcert` names and
//! checks the host name against the certificate; without `sslrootcert` it would fall back
//! to Go's system pool, which holds no RDS CA. So the bundle travels in the same Secret
//! (key `kubernetes_secret.ca_key`), the chart mounts that key at
//! `kubernetes_secret.ca_mount_path` (`signoz.additionalVolumes` / `additionalVolumeMounts`,
//! see `cluster::render::values`), and the DSN points there.

use url::Url;

use super::Error;
use super::postgres::CaSource;
use super::values::AppSecret;
use crate::cluster::secret::{DsnSource, VersionAuthority};
use crate::spec::{Database, TlsMode};

/// `postgres://user:password@host:port/dbname?sslmode=verify-full&sslrootcert=<mounted bundle>`.
///
/// `sslmode` uses libpq's names, which pgx and lib/pq both understand. User and password
/// are percent-encoded, so any alphabet round-trips.
pub fn signoz_dsn(secret: &AppSecret, database: &Database) -> String {
    let sslmode = match database.tls.mode {
        TlsMode::VerifyFull => "verify-full",
        TlsMode::VerifyCa => "verify-ca",
    };
    let host = if secret.host.contains(':') && !secret.host.starts_with('[') {
        format!("[{}]", secret.host)
    } else {
        secret.host.clone()
    };
    let mut url = Url::parse(&format!("postgres://{host}:{}/", secret.port))
        .expect("host and port from a parsed secret form a URL");
    url.path_segments_mut()
        .expect("postgres URLs have a path")
        .pop_if_empty()
        .push(&secret.dbname);
    // `Url::set_password` leaves `%` as is, which would make a password holding `%41`
    // decode to something else: encode every byte outside RFC 3986's unreserved set.
    url.set_username(&encode_userinfo(&secret.username))
        .expect("postgres URLs accept a username");
    url.set_password(Some(&encode_userinfo(secret.password.expose())))
        .expect("postgres URLs accept a password");
    url.query_pairs_mut()
        .append_pair("sslmode", sslmode)
        .append_pair("sslrootcert", &ca_path(database));
    url.into()
}

/// Where the SigNoz pod reads the CA bundle: the mount path and the Secret's key.
pub fn ca_path(database: &Database) -> String {
    let secret = &database.kubernetes_secret;
    format!(
        "{}/{}",
        secret.ca_mount_path.trim_end_matches('/'),
        secret.ca_key
    )
}

/// The CA bundle the function itself verifies the server with (`database.tls.ca_file`,
/// else `$RDS_CA_BUNDLE`, else the shipped RDS bundle): the pods trust the same roots.
pub fn ca_bundle(database: &Database) -> Result<String, Error> {
    CaSource::for_spec(&database.tls).pem()
}

/// What goes to the cluster for one version of the app secret.
pub fn handoff(
    secret: &AppSecret,
    database: &Database,
    version_id: &str,
    authority: Option<VersionAuthority>,
) -> Result<DsnSource, Error> {
    Ok(DsnSource {
        dsn: signoz_dsn(secret, database),
        ca_bundle: ca_bundle(database)?,
        version_id: version_id.to_string(),
        authority,
    })
}

/// Percent-encodes everything but letters, digits and `-._~`.
fn encode_userinfo(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes a URL's percent-encoded user or password (invalid escapes stay as they are).
pub fn decode_userinfo(value: &str) -> String {
    let bytes = value.as_bytes();
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
