//! The RDS instance's security posture: read with aws-sdk-rds, assessed by a pure
//! function into one finding per check.

use serde::Serialize;

use super::Error;
use super::values::Endpoint;
use crate::aws::{error_code, error_text};

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
    pub endpoint: Option<Endpoint>,
    pub master_secret_arn: Option<String>,
}

/// One posture check and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Assesses the instance: storage encrypted, deletion protection, `rds.force_ssl = 1`,
/// and Multi-AZ when the spec requires it.
pub fn assess_posture(facts: &InstanceFacts, require_multi_az: bool) -> Vec<Finding> {
    let mut findings = vec![
        Finding {
            check: "storage_encrypted",
            ok: facts.storage_encrypted,
            detail: if facts.storage_encrypted {
                "storage is encrypted".into()
            } else {
                "storage is NOT encrypted (needs a snapshot copy with encryption and a restore)"
                    .into()
            },
        },
        Finding {
            check: "deletion_protection",
            ok: facts.deletion_protection,
            detail: if facts.deletion_protection {
                "deletion protection is on".into()
            } else {
                "deletion protection is OFF".into()
            },
        },
        Finding {
            check: "force_ssl",
            ok: facts.force_ssl.as_deref() == Some("1"),
            detail: match (&facts.parameter_group, &facts.force_ssl) {
                (Some(group), Some(v)) => format!("rds.force_ssl = {v} in parameter group {group}"),
                (Some(group), None) => {
                    format!("rds.force_ssl is not set in parameter group {group}")
                }
                (None, _) => "the instance has no parameter group".into(),
            },
        },
    ];
    if require_multi_az {
        findings.push(Finding {
            check: "multi_az",
            ok: facts.multi_az,
            detail: if facts.multi_az {
                "Multi-AZ is on".into()
            } else {
                "Multi-AZ is OFF but the spec requires it".into()
            },
        });
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
    let force_ssl = match &parameter_group {
        Some(group) => parameter_value(rds, group, "rds.force_ssl").await?,
        None => None,
    };
    Ok(InstanceFacts {
        identifier: identifier.into(),
        storage_encrypted: instance.storage_encrypted().unwrap_or(false),
        deletion_protection: instance.deletion_protection().unwrap_or(false),
        multi_az: instance.multi_az().unwrap_or(false),
        parameter_group,
        force_ssl,
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

async fn parameter_value(
    rds: &aws_sdk_rds::Client,
    group: &str,
    name: &str,
) -> Result<Option<String>, Error> {
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
        if let Some(p) = out
            .parameters()
            .iter()
            .find(|p| p.parameter_name() == Some(name))
        {
            return Ok(p.parameter_value().map(str::to_string));
        }
        match out.marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => return Ok(None),
        }
    }
}
