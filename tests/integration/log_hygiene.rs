//! Log hygiene: every function runs under a capturing subscriber (DEBUG, every target)
//! with secret values planted in its inputs — database passwords, the SigNoz API key, the
//! DSN written to the cluster — on success and on error paths. No log line, returned
//! error or answer may contain a planted value, raw, URL-encoded or base64-encoded.

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::{Value, json};
use signoz_control::credentials;
use signoz_control::events::RotationStep;
use signoz_control::spec::{RotationStrategy, SpecLocation};
use tracing_subscriber::fmt::MakeWriter;

use crate::faults::{CredPlatform, deadline};

/// Everything the subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    /// Captures this thread's events until the guard drops. The tests run on a
    /// current-thread runtime, so every task of the function logs here.
    fn start() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The forms a secret can leak in.
fn forms(secret: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    vec![
        secret.to_string(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        b64.encode(secret),
        b64url.encode(secret),
    ]
}

/// Fails naming the leak (the kind of text and the form), never the value itself.
fn assert_hides(what: &str, text: &str, planted: &[String]) {
    for (n, secret) in planted.iter().enumerate() {
        assert!(
            secret.len() >= 8,
            "planted value {n} is too short to search for"
        );
        for (form, value) in ["raw", "URL-encoded", "base64", "base64url"]
            .iter()
            .zip(forms(secret))
        {
            assert!(
                !text.contains(&value),
                "planted secret #{n} appears {form} in {what}"
            );
        }
    }
}

/// The function did log (the capture works), and no line holds a planted value.
fn assert_log_hides(logs: &Captured, planted: &[String]) {
    let text = logs.text();
    assert!(
        text.lines().any(|l| l.contains(" signoz_control::")),
        "nothing of the function's own was captured"
    );
    assert_hides("the log", &text, planted);
}

fn assert_error_hides(err: &impl std::fmt::Debug, shown: &str, planted: &[String]) {
    assert_hides("an error's message", shown, planted);
    assert_hides("an error's Debug form", &format!("{err:?}"), planted);
}

fn rotation_event(p: &CredPlatform, step: &str, token: &str) -> Value {
    json!({ "Step": step, "SecretId": p.app_secret(), "ClientRequestToken": token })
}

#[tokio::test]
async fn provisioning_and_a_full_rotation_log_no_password() {
    let p = CredPlatform::new(RotationStrategy::AlternatingUsers).await;
    let (logs, guard) = Captured::start();
    p.provision().await;
    let token = p.start_rotation().await;
    let mut answers = Vec::new();
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let answer = credentials::handle(&p.ctx, rotation_event(&p, step, &token), deadline())
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        answers.push(answer.to_string());
    }
    drop(guard);

    let mut planted = p.app_passwords().await;
    assert!(planted.len() >= 2, "old and new app passwords");
    planted.push(p.master_password.clone());
    assert!(logs.text().contains(&token), "the steps were logged");
    assert_log_hides(&logs, &planted);
    assert_hides("the answers", &answers.join("\n"), &planted);
    p.cleanup().await;
}

#[tokio::test]
async fn database_failures_and_a_malformed_secret_name_no_password() {
    let p = CredPlatform::new(RotationStrategy::SingleUser).await;
    let master = aws_sdk_secretsmanager::Client::new(&platform_tests::aws().await);
    let master_secret = |port: u16, password: &str| {
        json!({"username": p.master_user, "password": password, "host": p.admin.host, "port": port})
            .to_string()
    };
    let wrong_password = "WrongMasterPw-7f3kQz91".to_string();
    let (logs, guard) = Captured::start();

    // The database is down: nothing listens on the master secret's port.
    master
        .put_secret_value()
        .secret_id(&p.spec.database.master_secret_arn)
        .secret_string(master_secret(1, &p.master_password))
        .send()
        .await
        .unwrap();
    let down = credentials::provision_database(&p.ctx, &p.spec, false, deadline())
        .await
        .expect_err("the database is down");
    assert!(down.retryable(), "{down}");

    // The master password is wrong.
    master
        .put_secret_value()
        .secret_id(&p.spec.database.master_secret_arn)
        .secret_string(master_secret(p.admin.port, &wrong_password))
        .send()
        .await
        .unwrap();
    let refused = credentials::provision_database(&p.ctx, &p.spec, false, deadline())
        .await
        .expect_err("wrong master password");

    // Back to the right master, then an app secret someone broke by hand: a password
    // pasted into the port field.
    master
        .put_secret_value()
        .secret_id(&p.spec.database.master_secret_arn)
        .secret_string(master_secret(p.admin.port, &p.master_password))
        .send()
        .await
        .unwrap();
    p.provision().await;
    let pasted = "PastedPw-Qm83nZ0x".to_string();
    let in_password = "LeakyPw-Hw27cK5r".to_string();
    master
        .put_secret_value()
        .secret_id(p.app_secret())
        .secret_string(
            json!({"engine": "postgres", "host": p.admin.host, "port": pasted,
                   "username": "u", "password": in_password, "dbname": "signoz"})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let token = p.start_rotation().await;
    let malformed = p
        .step(RotationStep::CreateSecret, &token)
        .await
        .expect_err("a malformed current secret");
    drop(guard);

    let planted = [
        p.master_password.clone(),
        wrong_password,
        pasted,
        in_password,
    ];
    for err in [&down, &refused, &malformed] {
        assert_error_hides(err, &err.to_string(), &planted);
    }
    assert!(
        matches!(malformed, credentials::Error::MalformedSecret { .. }),
        "{malformed}"
    );
    assert_log_hides(&logs, &planted);
    p.cleanup().await;
}

#[tokio::test]
async fn cold_storage_never_logs_the_signoz_api_key_even_when_it_is_wrong() {
    let key = "sk-Pl@nted/Key+4242=";
    let p = crate::faults::ColdPlatform::new(key).await;
    let (logs, guard) = Captured::start();
    let summary = p.reconcile().await.expect("reconcile");

    // Someone stores a wrong key; then a malformed secret with the key in another field.
    let wrong = "sk-Wr0ng/Key+9191=";
    let secrets = aws_sdk_secretsmanager::Client::new(&platform_tests::aws().await);
    let secret = p.api_key_secret.clone();
    secrets
        .put_secret_value()
        .secret_id(&secret)
        .secret_string(json!({"api_key": wrong}).to_string())
        .send()
        .await
        .unwrap();
    let rejected = p.reconcile().await.expect_err("SigNoz refuses a wrong key");
    let misplaced = "sk-Misplaced/Key+77=";
    secrets
        .put_secret_value()
        .secret_id(&secret)
        .secret_string(json!({"apikey": misplaced, "api_key": 5}).to_string())
        .send()
        .await
        .unwrap();
    let malformed = p.reconcile().await.expect_err("no usable key");
    drop(guard);

    let planted = [key.to_string(), wrong.to_string(), misplaced.to_string()];
    assert!(
        rejected.to_string().contains("401"),
        "a wrong key is rejected: {rejected}"
    );
    for err in [&rejected, &malformed] {
        assert_error_hides(err, &err.to_string(), &planted);
    }
    assert_hides("the answer", &summary.to_string(), &planted);
    assert_log_hides(&logs, &planted);
}

#[tokio::test]
async fn cluster_sync_never_logs_the_dsn_it_writes_to_the_cluster() {
    let sdk = platform_tests::aws().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let app_secret = platform_tests::unique("hygiene-app");
    let password = "DsnPw-Xq8vTn4Lw2";
    // The app secret's value with this port field and password.
    let app_value = |port: Value, password: &str| {
        json!({"engine": "postgres", "host": "db.local", "port": port,
               "username": "signoz_app", "password": password, "dbname": "signoz"})
        .to_string()
    };
    secrets
        .create_secret()
        .name(&app_secret)
        .secret_string(app_value(json!(5432), password))
        .send()
        .await
        .unwrap();
    let mut spec = signoz_control::spec::parse_spec(signoz_control::spec::EXAMPLE_SPEC).unwrap();
    spec.database.app_secret_name = app_secret.clone();
    platform_tests::own_state_bucket(&mut spec).await;
    let cluster = platform_tests::kube::TestCluster::new(spec).await;
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("platform.yaml");
    std::fs::write(&spec_path, platform_tests::kube::spec_yaml(&cluster.spec)).unwrap();
    let location = SpecLocation::Path(spec_path);
    let role = platform_tests::aws_as(
        signoz_control::cluster::FUNCTION,
        &platform_tests::Deployment::for_spec(&cluster.spec, &location),
    )
    .await;
    let ctx = signoz_control::cluster::Context {
        s3: signoz_control::aws::s3_client(&role),
        secrets: aws_sdk_secretsmanager::Client::new(&role),
        spec_location: location,
        kube: signoz_control::cluster::access::ClusterClient::new(Some(
            cluster.kubeconfig(signoz_control::cluster::FUNCTION),
        )),
        sdk: role,
    };
    let event: Value =
        serde_json::from_str(include_str!("../../events/control-sync-cluster.json")).unwrap();

    let (logs, guard) = Captured::start();
    let first = signoz_control::cluster::handle(&ctx, event.clone())
        .await
        .expect("sync");
    // The password changes: the Secret is updated, its change reported.
    let rotated = "DsnPw-Rotated-Jc5m1Pz";
    secrets
        .put_secret_value()
        .secret_id(&app_secret)
        .secret_string(app_value(json!(5432), rotated))
        .send()
        .await
        .unwrap();
    let second = signoz_control::cluster::handle(&ctx, event.clone())
        .await
        .expect("sync after rotation");
    // A malformed app secret: a password pasted into the port field.
    let misplaced = "DsnPw-Misplaced-Rr6t";
    let broken = "DsnPw-InBroken-Vb3s";
    secrets
        .put_secret_value()
        .secret_id(&app_secret)
        .secret_string(app_value(json!(misplaced), broken))
        .send()
        .await
        .unwrap();
    let malformed = signoz_control::cluster::handle(&ctx, event)
        .await
        .expect_err("a malformed app secret");
    drop(guard);

    let secret = Api::<Secret>::namespaced(cluster.admin.clone(), &cluster.spec.cluster.namespace)
        .get("signoz-metadata-db")
        .await
        .unwrap();
    let dsn = String::from_utf8(
        secret.data.unwrap()["SIGNOZ_SQLSTORE_POSTGRES_DSN"]
            .0
            .clone(),
    )
    .unwrap();
    assert!(dsn.contains(rotated), "the sync wrote the rotated DSN");
    let planted = [
        password.to_string(),
        rotated.to_string(),
        misplaced.to_string(),
        broken.to_string(),
        dsn,
    ];
    assert_error_hides(&malformed, &malformed.to_string(), &planted);
    assert_hides("the answers", &format!("{first}\n{second}"), &planted);
    assert_log_hides(&logs, &planted);
}

#[tokio::test]
async fn an_alarm_that_reconciles_cold_storage_never_logs_the_api_key() {
    let key = "sk-Al@rmPlanted/Key+55=";
    let p = crate::faults::ColdPlatform::new(key).await;
    let ctx = signoz_control::alarms::Context::new(
        &platform_tests::aws_as(signoz_control::alarms::FUNCTION, &p.deployment).await,
        p.ctx.spec_location.clone(),
        None,
    );
    let mut event: Value =
        serde_json::from_str(include_str!("../../events/alarm-state-change.json")).unwrap();
    event["detail"]["alarmName"] = json!("signoz-cold-bucket-drift");
    event["resources"] =
        json!(["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:signoz-cold-bucket-drift"]);

    let (logs, guard) = Captured::start();
    let answer = signoz_control::alarms::handle(&ctx, event.clone())
        .await
        .expect("the alarm's reconcile");
    let wrong = "sk-Al@rmWr0ng/Key+66=";
    aws_sdk_secretsmanager::Client::new(&platform_tests::aws().await)
        .put_secret_value()
        .secret_id(&p.api_key_secret)
        .secret_string(wrong)
        .send()
        .await
        .unwrap();
    // The alarm fires again later: this reconcile meets SigNoz with the wrong key.
    event["id"] = json!("5e0c7a1b-0000-4000-8000-000000000002");
    event["time"] = json!("2026-11-25T12:20:31Z");
    event["detail"]["previousState"]["value"] = json!("OK");
    event["detail"]["previousState"]["timestamp"] = json!("2026-11-25T12:10:31.000+0000");
    event["detail"]["state"]["timestamp"] = json!("2026-11-25T12:20:31.842+0000");
    let rejected = signoz_control::alarms::handle(&ctx, event)
        .await
        .expect_err("SigNoz refuses a wrong key");
    drop(guard);

    let planted = [key.to_string(), wrong.to_string()];
    assert!(
        answer["policies"][0]["effect"]["ttls"].is_array(),
        "the reconcile reached SigNoz with the key: {answer}"
    );
    assert_hides("the answer", &answer.to_string(), &planted);
    // An unknown key: SigNoz's identN finds no claims, 401 (tests/support/signoz.rs).
    assert!(rejected.to_string().contains("401"), "{rejected}");
    assert_error_hides(&rejected, &rejected.to_string(), &planted);
    assert_log_hides(&logs, &planted);
}

/// A function's binary as `tests/bin/test.sh` builds it (`cargo build --workspace`).
fn function_binary(name: &str) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR").map_or(root.join("target"), Into::into);
    let binary = target.join("debug").join(name);
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p {name}`",
        binary.display()
    );
    binary
}

/// The real `enforce-cold-storage` process under the Lambda Runtime API, with Lambda's
/// JSON log format at DEBUG: its stdout and the error it reports hold no API key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cold_storage_binary_logs_json_and_reports_errors_without_the_api_key() {
    use platform_tests::runtime_api::{RunOptions, run_function_with};

    let key = "sk-Bin@ryPlanted/Key+31=";
    let p = crate::faults::ColdPlatform::new(key).await;
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join("stdout.log");
    let mut env = platform_tests::iam::role_env("enforce-cold-storage", &p.deployment).await;
    env.extend([
        ("PLATFORM_SPEC".into(), p.ctx.spec_location.to_string()),
        ("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()),
        ("AWS_LAMBDA_LOG_LEVEL".into(), "DEBUG".into()),
    ]);
    let options = RunOptions {
        env,
        log_file: Some(log_file.clone()),
        ..RunOptions::new(std::time::Duration::from_secs(60))
    };
    let binary = function_binary("enforce-cold-storage");
    let schedule: Value = serde_json::from_str(include_str!("../../events/schedule.json")).unwrap();

    let good = run_function_with(
        &binary,
        "enforce-cold-storage",
        &options,
        vec![schedule.clone()],
    )
    .await
    .unwrap();
    let wrong = "sk-Bin@ryWr0ng/Key+13=";
    aws_sdk_secretsmanager::Client::new(&platform_tests::aws().await)
        .put_secret_value()
        .secret_id(&p.api_key_secret)
        .secret_string(wrong)
        .send()
        .await
        .unwrap();
    let bad = run_function_with(&binary, "enforce-cold-storage", &options, vec![schedule])
        .await
        .unwrap();

    assert!(good.results[0].ok, "{:?}", good.results[0].body);
    assert!(!bad.results[0].ok, "a wrong key is an error");
    assert!(
        bad.results[0].body.to_string().contains("401"),
        "{}",
        bad.results[0].body
    );
    let stdout = std::fs::read_to_string(&log_file).unwrap();
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.iter().any(|l| l.contains("cold storage reconciled")),
        "the function logged its work"
    );
    for line in &lines {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|_| panic!("a log line is not JSON: {line}"));
    }
    let planted = [key.to_string(), wrong.to_string()];
    assert_hides("the binary's stdout", &stdout, &planted);
    for result in good.results.iter().chain(&bad.results) {
        assert_hides("an invocation's answer", &result.body.to_string(), &planted);
    }
}
