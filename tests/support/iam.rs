//! Each function under the IAM the deployment grants it. The policy comes from the
//! deployment's own source, `infra/terraform/modules/control-plane/functions.json`,
//! rendered for a [`Deployment`] exactly as `iam.tf` renders it (its `resource_arns` and
//! `condition_values` are mirrored by [`Deployment::resource_arns`] and
//! [`Deployment::condition_values`]; `tests/integration/iam.rs` proves both agree). The
//! role is created in moto, which evaluates IAM (tests/bin/moto-iam-server.py), with the
//! admin's credentials; the function then runs with the role's assumed credentials.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use serde_json::{Value, json};
use signoz_control::spec::{PlatformSpec, SpecLocation};

/// moto's account and the stack's region.
pub const ACCOUNT_ID: &str = "123456789012";
pub const REGION: &str = "eu-west-1";

/// The names a deployment is configured with: the Terraform module's variables (the SAM
/// template's parameters), which follow the platform spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Deployment {
    pub partition: String,
    pub region: String,
    pub account_id: String,
    pub name_prefix: String,
    pub config_bucket: String,
    pub spec_key: String,
    pub state_bucket: String,
    pub state_prefix: String,
    pub cold_bucket: String,
    /// ARN, or a name (rendered as `name-??????`, the suffix Secrets Manager adds).
    pub app_secret: String,
    pub master_secret: String,
    pub ttl_api_key_secret: String,
    pub db_instance_identifier: String,
    pub cluster_name: String,
}

impl Deployment {
    /// The deployment of `spec` read from `location` (`spec_key`/`config_bucket` from an
    /// `s3://` location; a local path reads no spec object).
    pub fn for_spec(spec: &PlatformSpec, location: &SpecLocation) -> Self {
        let (config_bucket, spec_key) = match location {
            SpecLocation::S3 { bucket, key } => (bucket.clone(), key.clone()),
            _ => ("no-config-bucket".into(), "platform.yaml".into()),
        };
        Deployment {
            partition: "aws".into(),
            region: REGION.into(),
            account_id: ACCOUNT_ID.into(),
            name_prefix: "signoz-control".into(),
            config_bucket,
            spec_key,
            state_bucket: spec.state.bucket.clone(),
            state_prefix: spec.state.prefix.clone(),
            cold_bucket: spec.cold_storage.bucket.clone(),
            app_secret: spec.database.app_secret_name.clone(),
            master_secret: spec.database.master_secret_arn.clone(),
            ttl_api_key_secret: spec.retention.ttl_api.api_key_secret.clone(),
            db_instance_identifier: spec.database.instance_identifier.clone(),
            cluster_name: spec.cluster.name.clone(),
        }
    }

    /// [`Deployment::for_spec`] of a spec's text (panics on an invalid one: the
    /// deployment is configured from a valid spec even when a test later writes a bad one).
    pub fn for_spec_text(text: &str, location: &SpecLocation) -> Self {
        let spec = signoz_control::spec::parse_spec(text).expect("the deployment's spec is valid");
        Self::for_spec(&spec, location)
    }

    /// The ARN of the rotation function (`<name_prefix>-rotate-credentials`).
    pub fn rotation_function_arn(&self) -> String {
        format!(
            "arn:{}:lambda:{}:{}:function:{}-rotate-credentials",
            self.partition, self.region, self.account_id, self.name_prefix
        )
    }

    fn secret_arn(&self, id: &str) -> String {
        if id.starts_with("arn:") {
            id.to_string()
        } else {
            format!(
                "arn:{}:secretsmanager:{}:{}:secret:{id}-??????",
                self.partition, self.region, self.account_id
            )
        }
    }

    /// Creates the app secret as the deployment does (Terraform `aws_secretsmanager_secret.app`,
    /// SAM `AppSecret`): empty, its first value written by provisioning, whose role may
    /// not create it. `admin` is a client with the stack admin's credentials.
    pub async fn create_app_secret(
        &self,
        admin: &aws_sdk_secretsmanager::Client,
    ) -> Result<(), aws_sdk_secretsmanager::Error> {
        admin
            .create_secret()
            .name(&self.app_secret)
            .description("SigNoz metadata database credentials")
            .send()
            .await?;
        Ok(())
    }

    /// The symbolic resources of functions.json, as `local.resource_arns` in main.tf.
    pub fn resource_arns(&self) -> BTreeMap<&'static str, Vec<String>> {
        let (p, r, a) = (&self.partition, &self.region, &self.account_id);
        let s3 = |rest: String| vec![format!("arn:{p}:s3:::{rest}")];
        BTreeMap::from([
            (
                "spec_object",
                s3(format!("{}/{}", self.config_bucket, self.spec_key)),
            ),
            ("state_bucket", s3(self.state_bucket.clone())),
            (
                "state_objects",
                s3(format!("{}/{}*", self.state_bucket, self.state_prefix)),
            ),
            (
                "alarm_state_objects",
                s3(format!(
                    "{}/{}alarms/*",
                    self.state_bucket, self.state_prefix
                )),
            ),
            (
                "cluster_state_objects",
                s3(format!(
                    "{}/{}cluster/*",
                    self.state_bucket, self.state_prefix
                )),
            ),
            ("cold_bucket", s3(self.cold_bucket.clone())),
            ("app_secret", vec![self.secret_arn(&self.app_secret)]),
            ("master_secret", vec![self.secret_arn(&self.master_secret)]),
            (
                "ttl_api_key_secret",
                vec![self.secret_arn(&self.ttl_api_key_secret)],
            ),
            (
                "db_instance",
                vec![format!(
                    "arn:{p}:rds:{r}:{a}:db:{}",
                    self.db_instance_identifier
                )],
            ),
            (
                "cluster",
                vec![format!("arn:{p}:eks:{r}:{a}:cluster/{}", self.cluster_name)],
            ),
            ("rotation_function", vec![self.rotation_function_arn()]),
            (
                "alarms",
                vec![format!("arn:{p}:cloudwatch:{r}:{a}:alarm:*")],
            ),
            (
                "db_parameter_groups",
                vec![format!("arn:{p}:rds:{r}:{a}:pg:*")],
            ),
        ])
    }

    /// The symbolic condition values of functions.json, as `local.condition_values`.
    pub fn condition_values(&self) -> BTreeMap<&'static str, Vec<String>> {
        BTreeMap::from([
            ("state_keys", vec![format!("{}*", self.state_prefix)]),
            (
                "alarm_state_keys",
                vec![format!("{}alarms/*", self.state_prefix)],
            ),
            (
                "cluster_state_keys",
                vec![format!("{}cluster/*", self.state_prefix)],
            ),
        ])
    }

    /// The function's least-privilege policy document, as `aws_iam_role_policy.function`.
    pub fn policy(&self, function: &str) -> Value {
        self.policy_without(function, None)
    }

    /// [`Deployment::policy`] without the statement `sid` (to see what it covered fail).
    pub fn policy_without(&self, function: &str, sid: Option<&str>) -> Value {
        let manifest = manifest();
        let statements = manifest["functions"][function]["statements"]
            .as_array()
            .unwrap_or_else(|| panic!("functions.json has no function {function}"));
        let arns = self.resource_arns();
        let values = self.condition_values();
        let rendered: Vec<Value> = statements
            .iter()
            .filter(|s| Some(s["sid"].as_str().expect("sid")) != sid)
            .map(|s| {
                let symbol = s["resources"].as_str().expect("resources names a symbol");
                let mut statement = json!({
                    "Sid": s["sid"],
                    "Effect": "Allow",
                    "Action": s["actions"],
                    "Resource": arns.get(symbol).unwrap_or_else(|| panic!("no resource_arns.{symbol}")),
                });
                if let Some(conditions) = s["conditions"].as_array() {
                    let mut condition = serde_json::Map::new();
                    for c in conditions {
                        let symbol = c["values"].as_str().expect("values names a symbol");
                        condition.insert(
                            c["test"].as_str().expect("test").to_string(),
                            json!({ c["variable"].as_str().expect("variable"):
                                values.get(symbol).unwrap_or_else(|| panic!("no condition_values.{symbol}")) }),
                        );
                    }
                    statement["Condition"] = Value::Object(condition);
                }
                statement
            })
            .collect();
        json!({ "Version": "2012-10-17", "Statement": rendered })
    }
}

/// `functions.json`, the deployment's policy and trigger source.
pub fn manifest() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/terraform/modules/control-plane/functions.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("functions.json is JSON")
}

/// Credentials of `function`'s role in `deployment`, the role created (once per
/// deployment and policy) in moto from [`Deployment::policy`].
pub async fn function_credentials(function: &str, deployment: &Deployment) -> Credentials {
    role_credentials(function, deployment, deployment.policy(function)).await
}

/// Credentials of a role holding exactly `policy` (the trust policy lets Lambda and the
/// stack's admin, standing in for Lambda, assume it).
pub async fn role_credentials(
    function: &str,
    deployment: &Deployment,
    policy: Value,
) -> Credentials {
    type Key = (String, Deployment, String);
    static ROLES: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
    let key: Key = (function.to_string(), deployment.clone(), policy.to_string());
    let cache_key = format!("{key:?}");
    let admin = crate::aws().await;
    let known = ROLES.lock().expect("roles").get(&cache_key).cloned();
    let role_arn = match known {
        Some(arn) => arn,
        None => {
            let arn = create_role(&admin, function, &policy).await;
            ROLES.lock().expect("roles").insert(cache_key, arn.clone());
            arn
        }
    };
    let sts = aws_sdk_sts::Client::new(&admin);
    let out = sts
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name(function)
        .send()
        .await
        .unwrap_or_else(|e| panic!("assume {role_arn}: {}", signoz_control::aws::error_text(&e)));
    let c = out.credentials().expect("AssumeRole returns credentials");
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "assumed-function-role",
    )
}

async fn create_role(admin: &SdkConfig, function: &str, policy: &Value) -> String {
    let iam = aws_sdk_iam::Client::new(admin);
    let admin_arn = aws_sdk_sts::Client::new(admin)
        .get_caller_identity()
        .send()
        .await
        .expect("the admin's identity")
        .arn()
        .expect("an ARN")
        .to_string();
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "lambda.amazonaws.com", "AWS": admin_arn },
            "Action": "sts:AssumeRole"
        }]
    });
    let name = crate::unique(function);
    let role = iam
        .create_role()
        .role_name(&name)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "create role {name}: {}",
                signoz_control::aws::error_text(&e)
            )
        });
    iam.put_role_policy()
        .role_name(&name)
        .policy_name("least-privilege")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("policy of {name}: {}", signoz_control::aws::error_text(&e)));
    role.role().expect("a role").arn().to_string()
}

/// SDK configuration acting as `function` in `deployment`: what each test hands the
/// function's code (admin credentials only arrange the world).
pub async fn aws_as(function: &str, deployment: &Deployment) -> SdkConfig {
    with_credentials(function_credentials(function, deployment).await).await
}

/// The stack's SDK configuration with `credentials` instead of the admin's.
pub async fn with_credentials(credentials: Credentials) -> SdkConfig {
    crate::aws()
        .await
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build()
}

/// The environment a function process gets for its role (`lambda-run`, the bench).
pub async fn role_env(function: &str, deployment: &Deployment) -> Vec<(String, String)> {
    credentials_env(&function_credentials(function, deployment).await)
}

/// The environment variables Lambda sets for `c` (a role's session).
pub fn credentials_env(c: &Credentials) -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), c.access_key_id().into()),
        ("AWS_SECRET_ACCESS_KEY".into(), c.secret_access_key().into()),
        (
            "AWS_SESSION_TOKEN".into(),
            c.session_token().unwrap_or_default().into(),
        ),
    ]
}
