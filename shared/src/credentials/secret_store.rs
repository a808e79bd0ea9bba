//! Secrets Manager adapter: reads and writes secret versions and nothing else.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::Client;

use super::Error;
use crate::aws::{error_code, error_text};

/// Staging label of the version in use.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// Staging label of the version being rotated in.
pub const AWSPENDING: &str = "AWSPENDING";
/// Staging label of the version in use before the last rotation.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// What `DescribeSecret` says about rotation: whether it is enabled and which stages
/// each version carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretVersions {
    pub arn: String,
    pub name: String,
    pub rotation_enabled: bool,
    pub rotation_lambda_arn: Option<String>,
    pub rotation_days: Option<i64>,
    /// When Secrets Manager last rotated the secret, and when it will next.
    pub last_rotated: Option<jiff::Timestamp>,
    pub next_rotation: Option<jiff::Timestamp>,
    /// Version id -> staging labels.
    pub stages: BTreeMap<String, Vec<String>>,
}

impl SecretVersions {
    /// The version carrying `stage`, if any.
    pub fn version_with(&self, stage: &str) -> Option<&str> {
        self.stages
            .iter()
            .find(|(_, labels)| labels.iter().any(|l| l == stage))
            .map(|(id, _)| id.as_str())
    }

    /// Whether `version` carries `stage`.
    pub fn has_stage(&self, version: &str, stage: &str) -> bool {
        self.stages
            .get(version)
            .is_some_and(|labels| labels.iter().any(|l| l == stage))
    }
}

/// Which version of a secret to read. Always explicit: moto answers a stage-less read
/// with a stale version after a stage move.
#[derive(Debug, Clone, Copy)]
pub enum Version<'a> {
    Stage(&'a str),
    /// A version id that must also carry the stage.
    IdAtStage(&'a str, &'a str),
}

/// Secrets Manager, narrowed to what rotation and provisioning need.
#[derive(Debug, Clone)]
pub struct SecretStore {
    client: Client,
}

fn sm_error<E, R>(
    op: &'static str,
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    Error::SecretsManager {
        op,
        reason: error_text(err),
    }
}

fn timestamp(t: &aws_smithy_types::DateTime) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_second(t.secs()).ok()
}

impl SecretStore {
    /// Wraps a Secrets Manager client.
    pub fn new(client: Client) -> Self {
        SecretStore { client }
    }

    /// The client itself (the cluster hand-off asks it which version is AWSCURRENT).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Rotation settings and version stages of a secret; `None` when it does not exist.
    pub async fn describe(&self, secret_id: &str) -> Result<Option<SecretVersions>, Error> {
        let out = match self
            .client
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if error_code(&e) == Some("ResourceNotFoundException") => return Ok(None),
            Err(e) => return Err(sm_error("DescribeSecret", &e)),
        };
        Ok(Some(SecretVersions {
            arn: out.arn().unwrap_or(secret_id).to_string(),
            name: out.name().unwrap_or(secret_id).to_string(),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            rotation_lambda_arn: out.rotation_lambda_arn().map(str::to_string),
            rotation_days: out
                .rotation_rules()
                .and_then(|r| r.automatically_after_days()),
            last_rotated: out.last_rotated_date().and_then(timestamp),
            next_rotation: out.next_rotation_date().and_then(timestamp),
            stages: out
                .version_ids_to_stages()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        }))
    }

    /// The secret string of one version; `None` when that version has no value yet.
    pub async fn read(
        &self,
        secret_id: &str,
        version: Version<'_>,
    ) -> Result<Option<String>, Error> {
        let request = self.client.get_secret_value().secret_id(secret_id);
        let request = match version {
            Version::Stage(stage) => request.version_stage(stage),
            Version::IdAtStage(id, stage) => request.version_id(id).version_stage(stage),
        };
        match request.send().await {
            Ok(out) => Ok(out.secret_string().map(str::to_string)),
            Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(None),
            // The version exists but no longer carries the stage (moved by a rotation).
            Err(e)
                if matches!(version, Version::IdAtStage(..))
                    && error_code(&e) == Some("InvalidRequestException") =>
            {
                Ok(None)
            }
            Err(e) => Err(sm_error("GetSecretValue", &e)),
        }
    }

    /// Stores `value` as version `token` with AWSPENDING, passing Secrets Manager's
    /// rotation token through when it gave one.
    pub async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &str,
        rotation_token: Option<&str>,
    ) -> Result<(), Error> {
        self.client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(token)
            .secret_string(value)
            .version_stages(AWSPENDING)
            .set_rotation_token(rotation_token.map(str::to_string))
            .send()
            .await
            .map_err(|e| sm_error("PutSecretValue", &e))?;
        Ok(())
    }

    /// Moves `stage` to version `to`, taking it off `from` when given.
    pub async fn move_stage(
        &self,
        secret_id: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), Error> {
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(stage)
            .set_move_to_version_id(to.map(str::to_string))
            .set_remove_from_version_id(from.map(str::to_string))
            .send()
            .await
            .map_err(|e| sm_error("UpdateSecretVersionStage", &e))?;
        Ok(())
    }

    /// Stores the first value of a secret the deployment created empty, as AWSCURRENT.
    pub async fn put_first_value(&self, secret_id: &str, value: &str) -> Result<(), Error> {
        self.client
            .put_secret_value()
            .secret_id(secret_id)
            .secret_string(value)
            .version_stages(AWSCURRENT)
            .send()
            .await
            .map_err(|e| sm_error("PutSecretValue", &e))?;
        Ok(())
    }

    /// Turns rotation on with `lambda_arn` every `days`, without rotating now.
    pub async fn enable_rotation(
        &self,
        secret_id: &str,
        lambda_arn: &str,
        days: u32,
    ) -> Result<(), Error> {
        self.client
            .rotate_secret()
            .secret_id(secret_id)
            .rotation_lambda_arn(lambda_arn)
            .rotation_rules(
                aws_sdk_secretsmanager::types::RotationRulesType::builder()
                    .automatically_after_days(i64::from(days))
                    .build(),
            )
            .rotate_immediately(false)
            .send()
            .await
            .map_err(|e| sm_error("RotateSecret", &e))?;
        Ok(())
    }
}
