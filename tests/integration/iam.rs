//! The IAM the deployment grants, enforced (moto evaluates it: tests/bin/moto-iam-server.py):
//! each statement of functions.json covers a call the function makes, and deleting it
//! makes exactly that call fail; where moto alone would be more permissive than AWS, the
//! rule modelled is AWS's, stated here. Also: the Rust renderer of functions.json agrees
//! with Terraform's `resource_arns` / `condition_values`.

use std::collections::BTreeMap;
use std::path::Path;

use platform_tests::iam::{Deployment, role_credentials, with_credentials};
use platform_tests::{aws, create_buckets, unique};
use serde_json::{Value, json};
use signoz_control::spec::{EXAMPLE_SPEC, SpecLocation};
use signoz_control::state::StateStore;

fn example_deployment() -> Deployment {
    Deployment::for_spec_text(
        EXAMPLE_SPEC,
        &SpecLocation::S3 {
            bucket: "acme-signoz-config".into(),
            key: "platform.yaml".into(),
        },
    )
}

/// A deployment whose state bucket exists in moto, holding one document.
async fn with_state_bucket() -> (Deployment, aws_sdk_s3::Client) {
    let admin = signoz_control::aws::s3_client(&aws().await);
    let bucket = unique("iam-state");
    create_buckets(&admin, &[&bucket]).await;
    admin
        .put_object()
        .bucket(&bucket)
        .key("state/present.json")
        .body(br#"{"n":1}"#.to_vec().into())
        .send()
        .await
        .unwrap();
    let deployment = Deployment {
        state_bucket: bucket,
        ..example_deployment()
    };
    (deployment, admin)
}

async fn store_as(function: &str, deployment: &Deployment, without: Option<&str>) -> StateStore {
    let policy = deployment.policy_without(function, without);
    let sdk = with_credentials(role_credentials(function, deployment, policy).await).await;
    StateStore::new(
        signoz_control::aws::s3_client(&sdk),
        &deployment.state_bucket,
        &deployment.state_prefix,
    )
}

/// AWS (S3 API reference, GetObject, "Permissions"): without s3:ListBucket a missing key
/// is 403 AccessDenied, with it 404 NoSuchKey. moto alone answers 404 either way; the
/// stack's moto applies AWS's rule, and this test pins it.
#[tokio::test]
async fn a_missing_key_is_access_denied_without_list_bucket_and_not_found_with_it() {
    let (deployment, _) = with_state_bucket().await;
    let get_only = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{}/state/*", deployment.state_bucket)}]});
    let mut with_list = get_only.clone();
    with_list["Statement"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Effect": "Allow", "Action": "s3:ListBucket",
                     "Resource": format!("arn:aws:s3:::{}", deployment.state_bucket)}));
    let mut codes = Vec::new();
    for policy in [get_only, with_list] {
        let sdk = with_credentials(role_credentials("probe", &deployment, policy).await).await;
        let err = signoz_control::aws::s3_client(&sdk)
            .get_object()
            .bucket(&deployment.state_bucket)
            .key("state/missing.json")
            .send()
            .await
            .expect_err("the key is missing");
        codes.push(signoz_control::aws::error_code(&err).map(str::to_string));
    }
    assert_eq!(
        codes,
        [
            Some("AccessDenied".to_string()),
            Some("NoSuchKey".to_string())
        ]
    );
}

/// The finding: a fresh deployment has no state document yet. With the shipped policy
/// every function reads it as absent; without FindStateDocuments (what the deployment
/// granted before) the very first read fails, naming s3:ListBucket.
#[tokio::test]
async fn a_fresh_deployment_reads_its_missing_state_and_fails_without_find_state_documents() {
    let (deployment, _) = with_state_bucket().await;
    for function in ["enforce-cold-storage", "respond-to-alarms"] {
        let store = store_as(function, &deployment, None).await;
        let (missing, _) = store.load::<Value>("never-written.json").await.unwrap();
        assert_eq!(missing, None, "{function}");
        let (present, _) = store.load::<Value>("present.json").await.unwrap();
        assert_eq!(present, Some(json!({"n": 1})), "{function}");

        let store = store_as(function, &deployment, Some("FindStateDocuments")).await;
        let err = store
            .load::<Value>("never-written.json")
            .await
            .expect_err("no ListBucket")
            .to_string();
        assert!(
            err.contains("not authorized to perform: s3:ListBucket"),
            "{function}: {err}"
        );
    }
    // The listing is limited to the state prefix: outside it the role may not list.
    let sdk = platform_tests::aws_as("enforce-cold-storage", &deployment).await;
    let err = signoz_control::aws::s3_client(&sdk)
        .list_objects_v2()
        .bucket(&deployment.state_bucket)
        .prefix("elsewhere/")
        .send()
        .await
        .expect_err("outside the state prefix");
    assert!(
        signoz_control::aws::error_text(&err).contains("s3:ListBucket"),
        "{err:?}"
    );
}

/// A document found missing is listed first on its next read (the listing tells, and a
/// GetObject without bucket-wide s3:ListBucket would only be refused); once it exists it
/// is read, and a document that was there is read directly.
#[tokio::test]
async fn a_document_found_missing_is_listed_first_and_read_once_it_exists() {
    let (deployment, admin) = with_state_bucket().await;
    let proxy = crate::faults::start_proxy().await;
    let policy = deployment.policy_without("respond-to-alarms", None);
    let sdk =
        with_credentials(role_credentials("respond-to-alarms", &deployment, policy).await).await;
    let store = StateStore::new(
        crate::faults::via(&proxy, &sdk).s3,
        &deployment.state_bucket,
        &deployment.state_prefix,
    );
    // Each request the store made since the last look: a listing or a GetObject.
    let calls = || {
        let seen: Vec<&str> = proxy
            .seen()
            .iter()
            .map(|s| match s.path.contains("list-type") {
                true => "list",
                false => "get",
            })
            .collect();
        proxy.clear_seen();
        seen
    };
    let read = |key: &'static str| {
        let store = &store;
        async move { store.load::<Value>(key).await.unwrap().0 }
    };
    assert_eq!(read("later.json").await, None);
    assert_eq!(calls(), ["get", "list"], "refused, then listed");
    assert_eq!(read("later.json").await, None);
    assert_eq!(calls(), ["list"], "listed only");
    admin
        .put_object()
        .bucket(&deployment.state_bucket)
        .key(format!("{}later.json", deployment.state_prefix))
        .body(br#"{"n":2}"#.to_vec().into())
        .send()
        .await
        .unwrap();
    assert_eq!(read("later.json").await, Some(json!({"n": 2})));
    assert_eq!(calls(), ["list", "get"], "listed, then read");
    assert_eq!(read("later.json").await, Some(json!({"n": 2})));
    assert_eq!(read("present.json").await, Some(json!({"n": 1})));
    assert_eq!(calls(), ["get", "get"], "read directly");
}

/// Deleting one statement makes exactly the call it covers fail, naming its action.
#[tokio::test]
async fn removing_a_statement_denies_exactly_the_call_it_covers() {
    let admin = aws().await;
    let sm = aws_sdk_secretsmanager::Client::new(&admin);
    let key_secret = unique("iam-api-key");
    sm.create_secret()
        .name(&key_secret)
        .secret_string("k")
        .send()
        .await
        .unwrap();
    let deployment = Deployment {
        ttl_api_key_secret: key_secret.clone(),
        ..example_deployment()
    };
    let read = |sdk: aws_config::SdkConfig| {
        let key_secret = key_secret.clone();
        async move {
            aws_sdk_secretsmanager::Client::new(&sdk)
                .get_secret_value()
                .secret_id(&key_secret)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| signoz_control::aws::error_text(&e))
        }
    };
    let granted = platform_tests::aws_as("enforce-cold-storage", &deployment).await;
    read(granted).await.expect("ReadTtlApiKey grants it");
    let policy = deployment.policy_without("enforce-cold-storage", Some("ReadTtlApiKey"));
    let sdk =
        with_credentials(role_credentials("enforce-cold-storage", &deployment, policy).await).await;
    let err = read(sdk.clone()).await.expect_err("no ReadTtlApiKey");
    assert!(
        err.starts_with("AccessDeniedException")
            && err.contains("not authorized to perform: secretsmanager:GetSecretValue")
            && err.contains(&key_secret),
        "{err}"
    );
    // The other statements still hold: the
    // posture reads of the cold bucket are still granted (the bucket need not exist for
    // IAM to allow the call: moto answers NoSuchBucket, not AccessDenied).
    let err = signoz_control::aws::s3_client(&sdk)
        .get_bucket_versioning()
        .bucket(&deployment.cold_bucket)
        .send()
        .await
        .expect_err("no such bucket");
    assert_eq!(signoz_control::aws::error_code(&err), Some("NoSuchBucket"));
    // Another secret, never granted, is refused.
    let err = sm_read_as(&deployment, "rotate-credentials", &key_secret).await;
    assert!(err.contains("secretsmanager:GetSecretValue"), "{err}");
}

async fn sm_read_as(deployment: &Deployment, function: &str, secret: &str) -> String {
    let sdk = platform_tests::aws_as(function, deployment).await;
    aws_sdk_secretsmanager::Client::new(&sdk)
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| signoz_control::aws::error_text(&e))
        .expect_err("not this function's secret")
}

/// AWS (Secrets Manager API reference, RotateSecret, "Required permissions"): the caller
/// also needs lambda:InvokeFunction on the rotation function. The finding: provisioning
/// and the rotate_now remediation called RotateSecret without it.
#[tokio::test]
async fn rotate_secret_needs_invoke_function_on_the_rotation_function() {
    let admin = aws().await;
    let sm = aws_sdk_secretsmanager::Client::new(&admin);
    let app = unique("iam-app");
    sm.create_secret()
        .name(&app)
        .secret_string("{}")
        .send()
        .await
        .unwrap();
    let lambda = platform_tests::ensure_rotation_lambda();
    let deployment = Deployment {
        app_secret: app.clone(),
        ..example_deployment()
    };
    assert_eq!(lambda, deployment.rotation_function_arn());
    for function in ["rotate-credentials", "respond-to-alarms"] {
        let rotate = |sdk: aws_config::SdkConfig| {
            let (app, lambda) = (app.clone(), lambda.clone());
            async move {
                aws_sdk_secretsmanager::Client::new(&sdk)
                    .rotate_secret()
                    .secret_id(&app)
                    .rotation_lambda_arn(&lambda)
                    .rotation_rules(
                        aws_sdk_secretsmanager::types::RotationRulesType::builder()
                            .automatically_after_days(30)
                            .build(),
                    )
                    .rotate_immediately(false)
                    .send()
                    .await
                    .map_err(|e| signoz_control::aws::error_text(&e))
            }
        };
        let policy = deployment.policy_without(function, Some("InvokeRotationFunction"));
        let without = with_credentials(role_credentials(function, &deployment, policy).await).await;
        let err = rotate(without).await.expect_err("no InvokeFunction");
        assert!(
            err.contains("not authorized to perform: lambda:InvokeFunction")
                && err.contains(&lambda),
            "{function}: {err}"
        );
        let with = platform_tests::aws_as(function, &deployment).await;
        // Authorised: whatever moto then does with the registered stand-in function, it
        // is not an AccessDenied.
        if let Err(e) = rotate(with).await {
            assert!(!e.contains("AccessDenied"), "{function}: {e}");
        }
    }
}

// ---- the renderer against Terraform's mapping ----------------------------------------

/// `name = [ "template", ... ]` entries of the `name = { ... }` block in main.tf.
fn terraform_map(main_tf: &str, block: &str) -> BTreeMap<String, Vec<String>> {
    let start = main_tf
        .find(&format!("  {block} = {{"))
        .unwrap_or_else(|| panic!("main.tf has locals.{block}"));
    let body = &main_tf[start..];
    let end = body.find("\n  }").expect("block end");
    body[..end]
        .lines()
        .skip(1)
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| {
            let (name, value) = l.split_once('=').unwrap();
            let inner = value.trim().trim_start_matches('[').trim_end_matches(']');
            // A quoted template, or a bare reference (`var.x`), read as "${var.x}".
            let values = inner
                .split(',')
                .map(|item| {
                    let item = item.trim();
                    match item.strip_prefix('"').and_then(|i| i.strip_suffix('"')) {
                        Some(template) => template.to_string(),
                        None => format!("${{{item}}}"),
                    }
                })
                .collect();
            (name.trim().to_string(), values)
        })
        .collect()
}

/// Evaluates a main.tf template for `deployment` (the variables and locals it uses).
fn terraform_eval(template: &str, d: &Deployment) -> String {
    [
        ("${local.partition}", d.partition.as_str()),
        ("${local.region}", &d.region),
        ("${local.account_id}", &d.account_id),
        ("${var.name_prefix}", &d.name_prefix),
        ("${var.config_bucket}", &d.config_bucket),
        ("${var.spec_key}", &d.spec_key),
        ("${var.state_bucket}", &d.state_bucket),
        ("${var.state_prefix}", &d.state_prefix),
        ("${var.cold_bucket}", &d.cold_bucket),
        ("${var.db_instance_identifier}", &d.db_instance_identifier),
        ("${var.cluster_name}", &d.cluster_name),
        ("${local.master_secret_arn}", &d.master_secret),
        ("${var.ttl_api_key_secret_arn}", &d.ttl_api_key_secret),
    ]
    .iter()
    .fold(template.to_string(), |t, (from, to)| t.replace(from, to))
}

fn in_terraform_app(main_tf: &str) -> String {
    terraform_map(main_tf, "resource_arns")["app_secret"][0].clone()
}

#[test]
fn the_policy_renderer_and_terraform_map_every_symbol_to_the_same_arns() {
    let main_tf = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../infra/terraform/modules/control-plane/main.tf"),
    )
    .unwrap();
    let d = Deployment {
        ttl_api_key_secret: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:key-AbCdEf"
            .into(),
        ..example_deployment()
    };
    for (block, rendered) in [
        ("resource_arns", d.resource_arns()),
        ("condition_values", d.condition_values()),
    ] {
        let mut in_terraform = terraform_map(&main_tf, block);
        in_terraform.remove("app_secret");
        let names = |m: &BTreeMap<String, Vec<String>>| m.keys().cloned().collect::<Vec<_>>();
        let rendered: BTreeMap<String, Vec<String>> = rendered
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        // The app secret is the module's own resource (its ARN known only once created):
        // the renderer's name pattern must match the ARN Secrets Manager gives it.
        let mut expected_names = names(&rendered);
        if block == "resource_arns" {
            assert_eq!(
                in_terraform_app(&main_tf),
                "${aws_secretsmanager_secret.app.arn}",
                "main.tf grants the module's own app secret"
            );
            let pattern = &rendered["app_secret"][0];
            assert_eq!(
                pattern,
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:signoz/metadata-db/app-??????"
            );
            expected_names.retain(|n| n != "app_secret");
        }
        assert_eq!(
            names(&in_terraform),
            expected_names,
            "{block}: the same symbols"
        );
        for (name, templates) in &in_terraform {
            let evaluated: Vec<String> = templates.iter().map(|t| terraform_eval(t, &d)).collect();
            assert_eq!(&evaluated, &rendered[name], "{block}.{name}");
        }
    }
    // Every symbol functions.json names has a mapping.
    let manifest = platform_tests::iam::manifest();
    for (function, f) in manifest["functions"].as_object().unwrap() {
        let policy = d.policy(function);
        assert_eq!(
            policy["Statement"].as_array().unwrap().len(),
            f["statements"].as_array().unwrap().len()
        );
    }
}
