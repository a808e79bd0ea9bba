//! What plan, apply and status share: the spec from a path or `s3://`, read with the
//! user's own AWS credentials (the SDK's standard chain, `AWS_ENDPOINT_URL` for the local
//! stack), and each area's context built the way its function builds it.

use signoz_control::spec::{LoadedSpec, PlatformSpec, SpecLocation, load_spec};
use signoz_control::{cluster, cold_storage, credentials};

/// One platform, as the user's credentials reach it.
pub struct Session {
    pub sdk: aws_config::SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub location: SpecLocation,
    pub loaded: LoadedSpec,
}

impl Session {
    /// Loads and validates the spec at `location` (a path or `s3://bucket/key`).
    pub async fn open(location: &str) -> Result<Session, String> {
        signoz_control::runtime::install_crypto();
        let location = SpecLocation::parse(location).map_err(|e| e.to_string())?;
        let sdk = signoz_control::aws::sdk_config()
            .await
            .map_err(|e| e.to_string())?;
        let s3 = signoz_control::aws::s3_client(&sdk);
        let loaded = load_spec(&location, &s3).await.map_err(|e| e.to_string())?;
        Ok(Session {
            sdk,
            s3,
            location,
            loaded,
        })
    }

    pub fn spec(&self) -> &PlatformSpec {
        &self.loaded.spec
    }

    /// enforce-cold-storage's context; its dry runs store nothing.
    pub fn cold_storage(&self) -> cold_storage::Context {
        let mut ctx = cold_storage::Context::new(&self.sdk, self.location.clone());
        ctx.store_reports = false;
        ctx
    }

    /// sync-cluster's context: `KUBECONFIG` when set, else EKS with the user's IAM identity.
    pub fn cluster(&self) -> cluster::Context {
        cluster::Context {
            sdk: self.sdk.clone(),
            s3: self.s3.clone(),
            secrets: aws_sdk_secretsmanager::Client::new(&self.sdk),
            spec_location: self.location.clone(),
            kube: cluster::access::ClusterClient::from_env(),
        }
    }

    /// rotate-credentials' context (`ROTATION_LAMBDA_ARN` names the rotation function).
    pub fn credentials(&self) -> credentials::Context {
        let mut ctx = credentials::Context::new(self.sdk.clone());
        ctx.spec_location = Some(self.location.clone());
        ctx
    }
}
