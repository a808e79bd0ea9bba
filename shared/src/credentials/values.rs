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
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// SigNoz's credentials as stored in the app secret (the layout AWS's rotation
/// templates use, so the console and other tools understand it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSecret {
    pub engine: String,
    pub host: String,
    #[serde(deserialize_with = "port_number_or_text")]
    pub port: u16,
    pub username: String,
    pub password: Password,
    pub dbname: String,
    /// The master secret that can reset this user (alternating users).
    #[serde(default)]
    pub masterarn: Option<String>,
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
    pub fn parse(secret_id: &str, text: &str) -> Result<Self, Error> {
        parse_json(secret_id, text)
    }

    /// The JSON stored in Secrets Manager.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an app secret always serialises")
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
