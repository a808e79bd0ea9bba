//! The S3 adapter: reads the bucket's posture and performs planned writes, nothing else.

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule, TransitionDefaultMinimumObjectSize, VersioningConfiguration,
};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::Error;
use super::plan::{
    BucketChange, BucketWrite, DefaultEncryption, ObservedBucket, PublicAccessBlock,
};
use crate::aws::{error_code, error_text};

/// Error codes that mean "this setting is absent", per read call.
const ABSENT: &[&str] = &[
    "NoSuchLifecycleConfiguration",
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchPublicAccessBlockConfiguration",
    "NoSuchBucketPolicy",
];

/// Maps a read's outcome: absent settings become `None`, a missing bucket and other
/// failures become errors.
fn read<T, E, R>(
    bucket: &str,
    operation: &'static str,
    result: Result<T, SdkError<E, R>>,
) -> Result<Option<T>, Error>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) => match error_code(&e) {
            Some(code) if ABSENT.contains(&code) => Ok(None),
            Some("NoSuchBucket") => Err(Error::BucketMissing(bucket.into())),
            _ => Err(Error::BucketCall {
                operation,
                reason: error_text(&e),
            }),
        },
    }
}

fn written<T, E, R>(operation: &'static str, result: Result<T, SdkError<E, R>>) -> Result<(), Error>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    result.map(|_| ()).map_err(|e| Error::BucketCall {
        operation,
        reason: error_text(&e),
    })
}

/// Reads every setting the planner compares.
pub async fn observe_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<ObservedBucket, Error> {
    // Independent reads, sent together: one round trip of wall time, not one per setting.
    let (lifecycle, encryption, pab, versioning, policy, intelligent_tiering) = tokio::join!(
        s3.get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send(),
        s3.get_bucket_encryption().bucket(bucket).send(),
        s3.get_public_access_block().bucket(bucket).send(),
        s3.get_bucket_versioning().bucket(bucket).send(),
        s3.get_bucket_policy().bucket(bucket).send(),
        read_intelligent_tiering(s3, bucket),
    );
    let lifecycle = read(bucket, "GetBucketLifecycleConfiguration", lifecycle)?;
    let encryption = read(bucket, "GetBucketEncryption", encryption)?;
    let pab = read(bucket, "GetPublicAccessBlock", pab)?;
    let versioning = match versioning {
        Ok(out) => out.status().map(|s| s.as_str().to_string()),
        // moto answers under a root element the SDK does not parse
        // (`GetBucketVersioningResponse`): read `<Status>` from the raw document.
        Err(e) if e.raw_response().is_some_and(|r| r.status().is_success()) => e
            .raw_response()
            .and_then(|r| r.body().bytes())
            .and_then(|b| xml_text(&String::from_utf8_lossy(b), "Status")),
        Err(e) => {
            read::<(), _, _>(bucket, "GetBucketVersioning", Err(e))?;
            None
        }
    };
    let policy = read(bucket, "GetBucketPolicy", policy)?;
    let intelligent_tiering = intelligent_tiering?;
    Ok(ObservedBucket {
        intelligent_tiering,
        minimum_object_size: lifecycle.as_ref().and_then(|l| {
            l.transition_default_minimum_object_size()
                .map(|s| s.as_str().to_string())
        }),
        lifecycle_rules: lifecycle.map(|l| l.rules().to_vec()).unwrap_or_default(),
        encryption: encryption.and_then(|e| {
            let rule = e.server_side_encryption_configuration()?.rules().first()?;
            let default = rule.apply_server_side_encryption_by_default()?;
            Some(DefaultEncryption {
                algorithm: default.sse_algorithm().as_str().to_string(),
                kms_key_id: default.kms_master_key_id().map(str::to_string),
                bucket_key_enabled: rule.bucket_key_enabled().unwrap_or(false),
            })
        }),
        public_access_block: pab.and_then(|p| {
            let c = p.public_access_block_configuration()?;
            Some(PublicAccessBlock {
                block_public_acls: c.block_public_acls().unwrap_or(false),
                ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
                block_public_policy: c.block_public_policy().unwrap_or(false),
                restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
            })
        }),
        versioning,
        policy: policy
            .and_then(|p| p.policy().map(str::to_string))
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| Error::BucketCall {
                    operation: "GetBucketPolicy",
                    reason: format!("policy is not JSON: {e}"),
                })
            })
            .transpose()?,
    })
}

/// Every Intelligent-Tiering configuration of the bucket (a paginated list).
async fn read_intelligent_tiering(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Vec<aws_sdk_s3::types::IntelligentTieringConfiguration>, Error> {
    let mut configurations = Vec::new();
    let mut token = None;
    loop {
        let result = s3
            .list_bucket_intelligent_tiering_configurations()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await;
        // moto does not implement this API and answers `?intelligent-tiering` with a
        // bucket listing the SDK cannot parse: a 2xx answer without a single
        // configuration in it is read as none.
        if let Err(e) = &result
            && let Some(raw) = e.raw_response().filter(|r| r.status().is_success())
            && !raw.body().bytes().is_some_and(|b| {
                String::from_utf8_lossy(b).contains("<IntelligentTieringConfiguration>")
            })
        {
            break;
        }
        let page = read(bucket, "ListBucketIntelligentTieringConfigurations", result)?;
        let Some(page) = page else { break };
        configurations.extend(
            page.intelligent_tiering_configuration_list()
                .iter()
                .cloned(),
        );
        match (page.is_truncated(), page.next_continuation_token()) {
            (Some(true), Some(next)) => token = Some(next.to_string()),
            _ => break,
        }
    }
    Ok(configurations)
}

/// The text of the first `<tag>` element of a small XML document.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].trim().to_string())
}

/// Performs one planned write and logs it with its before and after.
pub async fn apply_bucket_change(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    change: &BucketChange,
) -> Result<(), Error> {
    match &change.write {
        BucketWrite::Lifecycle {
            rules,
            minimum_object_size,
        } => {
            let config = BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules.clone()))
                .build()
                .expect("rules are set");
            written(
                "PutBucketLifecycleConfiguration",
                s3.put_bucket_lifecycle_configuration()
                    .bucket(bucket)
                    .lifecycle_configuration(config)
                    .transition_default_minimum_object_size(
                        TransitionDefaultMinimumObjectSize::from(*minimum_object_size),
                    )
                    .send()
                    .await,
            )?
        }
        BucketWrite::Encryption(e) => {
            let default = ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::from(e.algorithm.as_str()))
                .set_kms_master_key_id(e.kms_key_id.clone())
                .build()
                .expect("algorithm is set");
            let rule = ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(default);
            // BucketKeyEnabled only means something with aws:kms; leave it out for AES256.
            let rule = if e.algorithm == "aws:kms" {
                rule.bucket_key_enabled(e.bucket_key_enabled)
            } else {
                rule
            };
            let config = ServerSideEncryptionConfiguration::builder()
                .rules(rule.build())
                .build()
                .expect("rules are set");
            written(
                "PutBucketEncryption",
                s3.put_bucket_encryption()
                    .bucket(bucket)
                    .server_side_encryption_configuration(config)
                    .send()
                    .await,
            )?
        }
        BucketWrite::PublicAccessBlock(p) => written(
            "PutPublicAccessBlock",
            s3.put_public_access_block()
                .bucket(bucket)
                .public_access_block_configuration(
                    PublicAccessBlockConfiguration::builder()
                        .block_public_acls(p.block_public_acls)
                        .ignore_public_acls(p.ignore_public_acls)
                        .block_public_policy(p.block_public_policy)
                        .restrict_public_buckets(p.restrict_public_buckets)
                        .build(),
                )
                .send()
                .await,
        )?,
        BucketWrite::SuspendVersioning => written(
            "PutBucketVersioning",
            s3.put_bucket_versioning()
                .bucket(bucket)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Suspended)
                        .build(),
                )
                .send()
                .await,
        )?,
        BucketWrite::Policy(document) => written(
            "PutBucketPolicy",
            s3.put_bucket_policy()
                .bucket(bucket)
                .policy(document)
                .send()
                .await,
        )?,
    }
    for field in crate::diff::field_changes(&change.before, &change.after) {
        tracing::info!(
            bucket,
            resource = change.resource,
            field = %field.path,
            before = %crate::diff::plain(&field.before),
            after = %crate::diff::plain(&field.after),
            "cold bucket setting changed"
        );
    }
    Ok(())
}
