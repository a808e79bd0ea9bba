//! Support for the integration tests: reaching the local stack that `tests/bin/stack.sh`
//! started (moto, PostgreSQL with TLS), and unique names so tests can run in parallel
//! against one shared moto and one shared PostgreSQL.

pub mod database;
pub mod fault_proxy;
pub mod iam;
pub mod kube;
pub mod otlp;
pub mod runtime_api;
pub mod signoz;
pub mod story;
pub mod tcp_proxy;
pub mod tls_front;

use std::sync::atomic::{AtomicU32, Ordering};

pub use iam::{Deployment, aws_as};

/// The SigNoz TTL API URL of the example spec (`infra/platform.yaml`): tests replace it
/// with their fake SigNoz's loopback address.
pub const EXAMPLE_TTL_API_URL: &str = "https://signoz.acme-prod.internal";

/// Reads a variable the stack's env file sets; panics with how to get it otherwise.
pub fn stack_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with tests/bin/test.sh (it starts the local stack)"
        )
    })
}

/// A name no other test in any process uses: `<prefix>-<pid>-<n>`, lowercase, DNS-safe.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// SDK configuration pointing at the stack's moto (from `AWS_ENDPOINT_URL`), with the
/// stack admin's credentials: for arranging the world only. Code under test acts with
/// its function's role: [`aws_as`].
pub async fn aws() -> aws_config::SdkConfig {
    stack_var("AWS_ENDPOINT_URL");
    signoz_control::runtime::install_crypto();
    signoz_control::aws::sdk_config()
        .await
        .expect("SDK configuration")
}

/// Connection settings of the stack's PostgreSQL superuser.
pub struct PgAdmin {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub ca_file: String,
    pub log_file: String,
}

/// The stack's PostgreSQL superuser settings.
pub fn pg_admin() -> PgAdmin {
    PgAdmin {
        host: stack_var("PGHOST"),
        port: stack_var("PGPORT").parse().expect("PGPORT is a port"),
        user: stack_var("PG_SUPERUSER"),
        password: std::fs::read_to_string(stack_var("PG_SUPERPASSWORD_FILE"))
            .expect("superuser password file")
            .trim()
            .to_string(),
        ca_file: stack_var("PG_CA_FILE"),
        log_file: stack_var("PG_LOG_FILE"),
    }
}

/// Registers `signoz-control-rotate-credentials` (the deployment's name for
/// rotate-credentials) as a Lambda function in moto (idempotent), so
/// `RotateSecret` accepts it as the rotation function as real Secrets Manager would; moto
/// cannot run it, the tests send the rotation steps themselves. Returns its ARN.
pub fn ensure_rotation_lambda() -> String {
    stack_var("AWS_ENDPOINT_URL");
    let script = r##"
set -e
role=$(aws iam get-role --role-name signoz-control-rotate-credentials --query Role.Arn --output text 2>/dev/null ||
  aws iam create-role --role-name signoz-control-rotate-credentials --query Role.Arn --output text \
    --assume-role-policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}')
if ! aws lambda get-function --function-name signoz-control-rotate-credentials --query Configuration.FunctionArn --output text 2>/dev/null; then
  zip=$(mktemp --suffix=.zip)
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1], "w").writestr("bootstrap", "#!/bin/sh\n")' "$zip"
  aws lambda create-function --function-name signoz-control-rotate-credentials --runtime provided.al2023 \
    --handler bootstrap --role "$role" --zip-file "fileb://$zip" \
    --query FunctionArn --output text 2>/dev/null ||
    aws lambda get-function --function-name signoz-control-rotate-credentials --query Configuration.FunctionArn --output text
  rm -f "$zip"
fi
"##;
    let out = std::process::Command::new("bash")
        .args(["-c", script])
        .output()
        .expect("run the aws CLI");
    assert!(
        out.status.success(),
        "registering the rotation Lambda in moto failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Creates each bucket in the stack's region (eu-west-1).
pub async fn create_buckets(s3: &aws_sdk_s3::Client, buckets: &[&str]) {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    for bucket in buckets {
        s3.create_bucket()
            .bucket(*bucket)
            .create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::EuWest1)
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
    }
}

/// Gives the spec a state bucket of its own in moto, as the deployment creates it.
pub async fn own_state_bucket(spec: &mut signoz_control::spec::PlatformSpec) {
    let bucket = unique("state");
    let s3 = signoz_control::aws::s3_client(&aws().await);
    create_buckets(&s3, &[&bucket]).await;
    spec.state.bucket = bucket;
}
