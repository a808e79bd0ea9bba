//! The URL DSN SigNoz reads from `SIGNOZ_SQLSTORE_POSTGRES_DSN`.

use url::Url;

use super::values::AppSecret;
use crate::spec::TlsMode;

/// `postgres://user:password@host:port/dbname?sslmode=verify-full`.
///
/// `sslmode` uses libpq's names, which Go's pgx and lib/pq (SigNoz's drivers) both
/// understand. No `sslrootcert`: the DSN is written both here and by the cluster sync,
/// and a path would tie it to one pod layout. pgx then verifies against Go's system
/// pool, which no public CA list gives the RDS CA: the pods must add the RDS bundle
/// to it, e.g. mount it and set `SSL_CERT_DIR=/etc/ssl/certs:/etc/rds-ca` (Go reads
/// every directory listed, so public roots stay trusted). User and password are
/// percent-encoded, so any alphabet round-trips.
pub fn signoz_dsn(secret: &AppSecret, tls: TlsMode) -> String {
    let sslmode = match tls {
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
    url.query_pairs_mut().append_pair("sslmode", sslmode);
    url.into()
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
