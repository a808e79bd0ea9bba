//! The JSON values stored in the app and master secrets. Passwords never print.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::Error;

/// A password: serialised as-is, but `Debug` prints a placeholder so it cannot reach a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(value: impl Into<String>) -> Self {
        Password(value.into())
    }

    /// The password itself, for the database driver and the DSN only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `length` letters and digits from the operating system's CSPRNG (ring's
    /// `SystemRandom` through rustls: `getrandom(2)`), each uniform over the 62 (a byte
    /// of 248 or more is drawn again), with a capital, a small letter and a digit in
    /// it, as Secrets Manager's `GetRandomPassword` gives them with
    /// `RequireEachIncludedType`; without its round trip, and without an IAM grant that
    /// can name no resource.
    pub fn generate(length: u32) -> Result<Password, Error> {
        const ALPHABET: &[u8; 62] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let random = rustls::crypto::ring::default_provider().secure_random;
        let length = length as usize;
        loop {
            let mut out = String::with_capacity(length);
            let mut bytes = [0u8; 64];
            while out.len() < length {
                random.fill(&mut bytes).map_err(|_| Error::Random)?;
                let fresh = bytes.iter().filter(|b| **b < 248);
                out.extend(
                    fresh
                        .map(|b| char::from(ALPHABET[usize::from(*b % 62)]))
                        .take(length - out.len()),
                );
            }
            let classes = [
                u8::is_ascii_uppercase,
                u8::is_ascii_lowercase,
                u8::is_ascii_digit,
            ];
            if classes.iter().all(|class| out.bytes().any(|b| class(&b))) {
                return Ok(Password(out));
            }
        }
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// SigNoz's credentials as stored in the app secret, in AWS's JSON structure for an
/// RDS PostgreSQL secret ("JSON structure of AWS Secrets Manager secrets", Amazon RDS
/// and Aurora credentials): `engine` (`postgres`), `host`, `username`, `password`,
/// optional `dbname` (default `postgres`) and `port` (default 5432), `masterarn`, and
/// any other key (`dbInstanceIdentifier`, replica endpoints, ...), kept as it was. A
/// `null` is never written back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSecret {
    pub engine: String,
    pub host: String,
    #[serde(default = "default_port", deserialize_with = "port_number_or_text")]
    pub port: u16,
    pub username: String,
    pub password: Password,
    #[serde(default = "default_dbname")]
    pub dbname: String,
    /// The master secret that can reset this user (alternating users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masterarn: Option<String>,
    /// Every other key of the secret, passed through rotation untouched.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The engine AWS's structure names for RDS PostgreSQL (and Aurora PostgreSQL).
pub const POSTGRES_ENGINE: &str = "postgres";

fn default_port() -> u16 {
    5432
}

fn default_dbname() -> String {
    "postgres".into()
}

/// The master user's secret: RDS-managed (`rds!...`, only username and password) or a
/// plain one that may also carry the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MasterSecret {
    pub username: String,
    pub password: Password,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default, deserialize_with = "optional_port")]
    pub port: Option<u16>,
}

/// Where the database server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl AppSecret {
    /// Parses the app secret; the error names the secret and the field, never a value.
    /// An engine other than `postgres` is refused (its name is not a secret).
    pub fn parse(secret_id: &str, text: &str) -> Result<Self, Error> {
        let secret: AppSecret = parse_json(secret_id, text)?;
        if secret.engine != POSTGRES_ENGINE {
            return Err(Error::MalformedSecret {
                secret: secret_id.into(),
                reason: format!(
                    "at `engine`: must be {POSTGRES_ENGINE:?} for RDS PostgreSQL, got {:?}",
                    secret.engine
                ),
            });
        }
        Ok(secret)
    }

    /// The JSON stored in Secrets Manager: AWS's keys, then the others, without nulls.
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).expect("an app secret always serialises");
        if let Some(map) = value.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        value.to_string()
    }

    /// The server this secret points at.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: self.host.clone(),
            port: self.port,
        }
    }
}

impl MasterSecret {
    /// Parses the master secret; the error names the secret and the field, never a value.
    pub fn parse(secret_id: &str, text: &str) -> Result<Self, Error> {
        parse_json(secret_id, text)
    }

    /// The endpoint, when the secret carries one (RDS-managed secrets do not).
    pub fn endpoint(&self) -> Option<Endpoint> {
        Some(Endpoint {
            host: self.host.clone()?,
            port: self.port.unwrap_or(5432),
        })
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(secret_id: &str, text: &str) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| Error::MalformedSecret {
        secret: secret_id.to_string(),
        // Only the path and the serde category: serde's message can quote the input.
        reason: format!("at `{}`: {}", e.path(), category(e.inner())),
    })
}

fn category(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => "unreadable",
        Category::Syntax => "not valid JSON",
        Category::Eof => "truncated JSON",
        Category::Data => "missing field or wrong type",
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PortValue {
    Number(u16),
    Text(String),
}

fn port_number_or_text<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    match PortValue::deserialize(d)? {
        PortValue::Number(n) => Ok(n),
        PortValue::Text(t) => t.parse().map_err(serde::de::Error::custom),
    }
}

fn optional_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    Option::<PortValue>::deserialize(d)?
        .map(|p| match p {
            PortValue::Number(n) => Ok(n),
            PortValue::Text(t) => t.parse().map_err(serde::de::Error::custom),
        })
        .transpose()
}
