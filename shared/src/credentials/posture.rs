//! The RDS instance's security posture: read with aws-sdk-rds, assessed by a pure
//! function into one finding per check.

use serde::Serialize;

use super::Error;
use super::values::Endpoint;
use crate::aws::{error_code, error_text};
use crate::spec::Database;

/// What RDS says about the instance, as far as the checks need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceFacts {
    pub identifier: String,
    pub storage_encrypted: bool,
    pub deletion_protection: bool,
    pub multi_az: bool,
    pub parameter_group: Option<String>,
    /// `rds.force_ssl` in the instance's parameter group (`None`: not set there).
    pub force_ssl: Option<String>,
    /// `password_encryption` in the instance's parameter group (`None`: not set there).
    pub password_encryption: Option<String>,
    pub publicly_accessible: bool,
    /// `CACertificateIdentifier`: the CA the server certificate chains to.
    pub ca_certificate: Option<String>,
    pub endpoint: Option<Endpoint>,
    /// `MasterUserSecret`: the secret RDS manages for the master (`rds!...`), if any.
    pub master_secret_arn: Option<String>,
}

/// The RDS CAs whose roots are current (the 2024 generation; `rds-ca-2019` expired in
/// August 2024), all in the shipped bundle.
pub const CURRENT_RDS_CAS: [&str; 3] =
    ["rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1", "rds-ca-ecc384-g1"];

/// One posture check and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Assesses the instance: storage encrypted, deletion protection, `rds.force_ssl = 1`,
/// `password_encryption = scram-sha-256`, not publicly accessible, a current CA, the
/// spec's master secret being the one RDS manages (when it manages one), and Multi-AZ
/// when the spec requires it.
pub fn assess_posture(facts: &InstanceFacts, database: &Database) -> Vec<Finding> {
    let check = |check, ok, good: String, bad: String| Finding {
        check,
        ok,
        detail: if ok { good } else { bad },
    };
    let in_group = |name: &str, value: &Option<String>| match (&facts.parameter_group, value) {
        (Some(group), Some(v)) => format!("{name} = {v} in parameter group {group}"),
        (Some(group), None) => format!("{name} is not set in parameter group {group}"),
        (None, _) => "the instance has no parameter group".into(),
    };
    let mut findings = vec![
        check(
            "storage_encrypted",
            facts.storage_encrypted,
            "storage is encrypted".into(),
            "storage is NOT encrypted (needs a snapshot copy with encryption and a restore)".into(),
        ),
        check(
            "deletion_protection",
            facts.deletion_protection,
            "deletion protection is on".into(),
            "deletion protection is OFF".into(),
        ),
        check(
            "force_ssl",
            facts.force_ssl.as_deref() == Some("1"),
            in_group("rds.force_ssl", &facts.force_ssl),
            in_group("rds.force_ssl", &facts.force_ssl),
        ),
        check(
            "password_encryption",
            facts.password_encryption.as_deref() == Some("scram-sha-256"),
            in_group("password_encryption", &facts.password_encryption),
            format!(
                "{}: passwords must be stored as SCRAM verifiers (scram-sha-256)",
                in_group("password_encryption", &facts.password_encryption)
            ),
        ),
        check(
            "publicly_accessible",
            !facts.publicly_accessible,
            "not publicly accessible".into(),
            "the instance is PUBLICLY ACCESSIBLE: its endpoint resolves to a public address".into(),
        ),
        check(
            "ca_certificate",
            facts
                .ca_certificate
                .as_deref()
                .is_some_and(|ca| CURRENT_RDS_CAS.contains(&ca)),
            format!(
                "server certificate from {}",
                facts.ca_certificate.as_deref().unwrap_or("?")
            ),
            format!(
                "CA {} is not one of {}: modify the instance's CACertificateIdentifier",
                facts.ca_certificate.as_deref().unwrap_or("unknown"),
                CURRENT_RDS_CAS.join(", ")
            ),
        ),
    ];
    let spec_master = &database.master_secret_arn;
    findings.push(match &facts.master_secret_arn {
        Some(managed) => check(
            "master_user_secret",
            managed == spec_master,
            format!("the master password is managed by RDS in {managed}, the spec's master secret"),
            format!(
                "RDS manages the master password in {managed}, but the spec names {spec_master}: that secret no longer logs in once RDS rotates"
            ),
        ),
        None => check(
            "master_user_secret",
            !spec_master.contains("rds!"),
            "the master password is not managed by RDS; the spec's master secret holds it".into(),
            format!("the spec names an RDS-managed master secret ({spec_master}) but RDS manages none for this instance"),
        ),
    });
    if database.require_multi_az {
        findings.push(check(
            "multi_az",
            facts.multi_az,
            "Multi-AZ is on".into(),
            "Multi-AZ is OFF but the spec requires it".into(),
        ));
    }
    findings
}

/// Reads the instance and the `rds.force_ssl` value of its parameter group.
pub async fn read_instance(
    rds: &aws_sdk_rds::Client,
    identifier: &str,
) -> Result<InstanceFacts, Error> {
    let out = match rds
        .describe_db_instances()
        .db_instance_identifier(identifier)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e)
            if error_code(&e) == Some("DBInstanceNotFound")
                || error_code(&e) == Some("DBInstanceNotFoundFault") =>
        {
            return Err(Error::InstanceNotFound {
                instance: identifier.into(),
            });
        }
        Err(e) => {
            return Err(Error::Rds {
                op: "DescribeDBInstances",
                reason: error_text(&e),
            });
        }
    };
    let instance = out
        .db_instances()
        .first()
        .ok_or_else(|| Error::InstanceNotFound {
            instance: identifier.into(),
        })?;
    let parameter_group = instance
        .db_parameter_groups()
        .first()
        .and_then(|g| g.db_parameter_group_name())
        .map(str::to_string);
    let (force_ssl, password_encryption) = match &parameter_group {
        Some(group) => {
            let mut values =
                parameter_values(rds, group, &["rds.force_ssl", "password_encryption"]).await?;
            (
                values.remove("rds.force_ssl"),
                values.remove("password_encryption"),
            )
        }
        None => (None, None),
    };
    Ok(InstanceFacts {
        identifier: identifier.into(),
        storage_encrypted: instance.storage_encrypted().unwrap_or(false),
        deletion_protection: instance.deletion_protection().unwrap_or(false),
        multi_az: instance.multi_az().unwrap_or(false),
        parameter_group,
        force_ssl,
        password_encryption,
        publicly_accessible: instance.publicly_accessible().unwrap_or(false),
        ca_certificate: instance.ca_certificate_identifier().map(str::to_string),
        endpoint: instance.endpoint().and_then(|e| {
            Some(Endpoint {
                host: e.address()?.to_string(),
                port: u16::try_from(e.port().unwrap_or(5432)).ok()?,
            })
        }),
        master_secret_arn: instance
            .master_user_secret()
            .and_then(|s| s.secret_arn())
            .map(str::to_string),
    })
}

/// The values of `names` in a parameter group (one pass over its pages).
async fn parameter_values(
    rds: &aws_sdk_rds::Client,
    group: &str,
    names: &[&str],
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let mut found = std::collections::BTreeMap::new();
    let mut marker = None;
    loop {
        let out = rds
            .describe_db_parameters()
            .db_parameter_group_name(group)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| Error::Rds {
                op: "DescribeDBParameters",
                reason: error_text(&e),
            })?;
        for p in out.parameters() {
            if let (Some(name), Some(value)) = (p.parameter_name(), p.parameter_value())
                && names.contains(&name)
            {
                found.insert(name.to_string(), value.to_string());
            }
        }
        match out.marker() {
            Some(m) if !m.is_empty() && found.len() < names.len() => marker = Some(m.to_string()),
            _ => return Ok(found),
        }
    }
}
