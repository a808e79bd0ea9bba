//! The `signoz-control` binary as a platform engineer runs it: against the stack (moto,
//! PostgreSQL with TLS, the real kube-apiserver, the SigNoz stand-in) with the admin's
//! credentials and kubeconfig, asserting on what it prints and its exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use platform_tests::kube::{TestCluster, admin_kubeconfig, spec_yaml};
use platform_tests::signoz::start_signoz;
use platform_tests::{create_buckets, unique};
use serde_json::{Value, json};
use signoz_control::cluster::objects::scaled_object_resource;
use signoz_control::spec::RotationStrategy;

/// The CLI as `cargo build --workspace` leaves it.
fn binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR").map_or(root.join("target"), Into::into);
    let binary = target.join("debug").join("signoz-control");
    assert!(
        binary.exists(),
        "build it: cargo build -p signoz-control-cli"
    );
    binary
}

/// One run of the CLI, stdin closed (not a terminal), never coloured through a pipe.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn cli(args: &[&str], env: &[(&str, String)]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(binary())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .expect("run signoz-control");
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    };
    assert!(
        !run.stdout.contains('\x1b') && !run.stderr.contains('\x1b'),
        "no colour when piped: {}",
        run.stdout
    );
    run
}

#[test]
fn validate_reports_every_problem_with_its_path_and_contacts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let invalid = dir.path().join("invalid.yaml");
    std::fs::write(
        &invalid,
        signoz_control::spec::EXAMPLE_SPEC
            .replace("STANDARD_IA: 30", "STANDARD_IA: 10")
            .replace("argument: \"1\"", "argument: \"1.5\"")
            .replace(
                "  bucket: acme-signoz-cold",
                "  bucket: acme-signoz-cold\n  bukcet: x",
            ),
    )
    .unwrap();
    // Nothing is reachable: validate must not need anything.
    let offline = [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9".to_string()),
        ("KUBECONFIG", "/nonexistent".to_string()),
    ];
    let path = invalid.to_str().unwrap();
    let run = cli(&["validate", path], &offline);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{path}: 3 problems").as_str(),
            "  cold_storage.bukcet: unknown key",
            "  cold_storage.transitions.STANDARD_IA: S3 refuses a transition to STANDARD_IA before 30 days, got 10",
            "  instrumentation.sampler.argument: must be a ratio between 0 and 1, got \"1.5\"",
        ]
    );

    let run = cli(&["validate", path, "--format", "json"], &offline);
    assert_eq!(run.code, 1);
    let answer: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(answer["valid"], false);
    let paths: Vec<&str> = answer["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"cold_storage.transitions.STANDARD_IA"),
        "{paths:?}"
    );
    assert!(paths.contains(&"instrumentation.sampler.argument"));

    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/platform.yaml");
    let run = cli(&["validate", example.to_str().unwrap()], &offline);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("is a valid platform spec"));
    let run = cli(
        &["validate", example.to_str().unwrap(), "--format", "json"],
        &offline,
    );
    assert_eq!(
        serde_json::from_str::<Value>(&run.stdout).unwrap(),
        json!({"valid": true, "problems": []})
    );
    let run = cli(&["validate", "s3://bucket/platform.yaml"], &offline);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("contacts nothing"), "{}", run.stdout);
    let run = cli(&["validate", "/nonexistent.yaml"], &offline);
    assert_eq!(run.code, 1);
    assert!(run.stdout.starts_with("/nonexistent.yaml: No such file"));
}

/// Plain when piped (every other test's runs assert it), coloured when asked, and
/// `NO_COLOR` is honoured by `auto`.
#[test]
fn colour_is_for_terminals() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/platform.yaml");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(binary())
            .args(args)
            .arg(&example)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run(&["--color", "always", "validate"], &[]).contains("\x1b[32m✓\x1b[0m"));
    assert!(!run(&["--color", "never", "validate"], &[]).contains('\x1b'));
    assert!(!run(&["validate"], &[("NO_COLOR", "1")]).contains('\x1b'));
}

#[test]
fn every_command_has_help_with_an_example() {
    for command in ["validate", "plan", "apply", "status", "rbac", "cost"] {
        let run = cli(&[command, "--help"], &[]);
        assert_eq!(run.code, 0, "{command}: {}", run.stderr);
        let example = run
            .stdout
            .lines()
            .skip_while(|l| !l.starts_with("Example"))
            .nth(1)
            .unwrap_or_else(|| panic!("{command} --help has an example: {}", run.stdout));
        assert!(
            example.trim_start().starts_with("signoz-control")
                || example.contains(" signoz-control "),
            "{command}: {example}"
        );
    }
}

/// A whole platform on the stack: a database (PostgreSQL, its RDS instance and secrets in
/// moto), cold storage (buckets, the SigNoz stand-in and its API key), a cluster
/// (namespaces, RBAC, workloads); the spec on disk; the admin's environment.
struct Platform {
    spec_path: PathBuf,
    cluster: TestCluster,
    env: Vec<(&'static str, String)>,
    _signoz: platform_tests::signoz::SignozServer,
    _seeded: platform_tests::database::SeededDatabase,
    _dir: tempfile::TempDir,
}

async fn platform() -> Platform {
    let sdk = platform_tests::aws().await;
    let seeded = platform_tests::database::seed_database(
        &sdk,
        "cli",
        RotationStrategy::AlternatingUsers,
        None,
    )
    .await;
    let mut spec = seeded.spec.clone();
    let s3 = signoz_control::aws::s3_client(&sdk);
    let (cold, state) = (unique("cold"), unique("state"));
    create_buckets(&s3, &[&cold, &state]).await;
    let key = format!("cli-admin-key-{}", unique("k"));
    let key_secret = unique("signoz-api-key");
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&key_secret)
        .secret_string(&key)
        .send()
        .await
        .unwrap();
    let signoz = start_signoz(&key).await;
    spec.cold_storage.bucket = cold;
    spec.state.bucket = state;
    spec.retention.ttl_api.url = signoz.url.clone();
    spec.retention.ttl_api.api_key_secret = key_secret;
    spec.telemetry = None;
    let cluster = TestCluster::new(spec).await;
    cluster.arrange_workloads().await;
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("platform.yaml");
    std::fs::write(&spec_path, spec_yaml(&cluster.spec)).unwrap();
    let env = vec![
        ("KUBECONFIG", admin_kubeconfig().display().to_string()),
        (
            "ROTATION_LAMBDA_ARN",
            platform_tests::ensure_rotation_lambda(),
        ),
    ];
    Platform {
        spec_path,
        cluster,
        env,
        _signoz: signoz,
        _seeded: seeded,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_apply_and_status_against_the_live_platform() {
    let p = platform().await;
    let spec = p.spec_path.to_str().unwrap().to_string();
    let ns = p.cluster.spec.cluster.namespace.clone();
    let env = p.env.clone();

    // A fresh platform: everything to make.
    let run = tokio::task::block_in_place(|| cli(&["plan", &spec], &env));
    assert_eq!(
        run.code, 2,
        "changes: exit code 2\n{}\n{}",
        run.stdout, run.stderr
    );
    let out = &run.stdout;
    for line in [
        format!("  + ScaledObject/{ns}/signoz-otel-collector"),
        format!("  + Instrumentation/{ns}/python"),
        "  + bucket lifecycle".to_string(),
        "  + bucket encryption".to_string(),
        format!(
            "  + app secret {} value",
            p.cluster.spec.database.app_secret_name
        ),
        format!(
            "  ~ app secret {} rotation",
            p.cluster.spec.database.app_secret_name
        ),
        "      .rotation.enabled: false -> true".to_string(),
        "      .rotation.days: (none) -> 30".to_string(),
    ] {
        assert!(
            out.lines()
                .any(|l| l == line || l.starts_with(&format!("{line}  ("))),
            "{line:?} in\n{out}"
        );
    }
    assert!(out.contains("server-side apply dry run"), "{out}");
    let summary = out.lines().last().unwrap();
    assert!(
        summary.starts_with("Plan: ") && summary.contains(" to add"),
        "{summary}"
    );

    // One area only.
    let run = tokio::task::block_in_place(|| cli(&["plan", &spec, "--only", "cluster"], &env));
    assert_eq!(run.code, 2);
    assert!(run.stdout.starts_with("cluster"), "{}", run.stdout);
    assert!(!run.stdout.contains("cold storage") && !run.stdout.contains("credentials"));

    // Without a terminal and without --auto-approve nothing is applied.
    let run = tokio::task::block_in_place(|| cli(&["apply", &spec, "--only", "cluster"], &env));
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("pass --auto-approve"), "{}", run.stderr);
    let scaled = Api::<DynamicObject>::namespaced_with(
        p.cluster.admin.clone(),
        &ns,
        &scaled_object_resource(),
    );
    assert!(
        scaled
            .get_opt("signoz-otel-collector")
            .await
            .unwrap()
            .is_none()
    );

    // Apply everything: credentials first (the DSN the cluster hands off), each change
    // printed as it is made.
    let run = tokio::task::block_in_place(|| cli(&["apply", &spec, "--auto-approve"], &env));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("✓ credentials: "), "{}", run.stdout);
    assert!(run.stdout.contains("✓ cluster: "), "{}", run.stdout);
    assert!(run.stdout.contains("✓ cold storage: "), "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!(
            "applied object ScaledObject/{ns}/signoz-otel-collector"
        )),
        "progress per object: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("cold bucket setting changed"),
        "{}",
        run.stderr
    );
    assert!(
        scaled
            .get_opt("signoz-otel-collector")
            .await
            .unwrap()
            .is_some()
    );

    // Converged: exit code 0. SigNoz's v1 jobs may still run, so a second apply first.
    tokio::task::block_in_place(|| cli(&["apply", &spec, "--auto-approve"], &env));
    let run = tokio::task::block_in_place(|| cli(&["plan", &spec], &env));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("No changes: the platform matches the spec.")
    );

    // Drift: someone raises the collectors' ceiling by hand and deletes the lifecycle.
    scaled
        .patch(
            "signoz-otel-collector",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "maxReplicaCount": 99 } })),
        )
        .await
        .unwrap();
    signoz_control::aws::s3_client(&platform_tests::aws().await)
        .delete_bucket_lifecycle()
        .bucket(&p.cluster.spec.cold_storage.bucket)
        .send()
        .await
        .unwrap();
    // And the app secret rotated: the cluster's Secret must follow, its values unseen.
    let planted = "Zq7-Rotated/Password+1";
    let sdk = platform_tests::aws().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let app = secrets
        .get_secret_value()
        .secret_id(&p.cluster.spec.database.app_secret_name)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    let mut value: Value = serde_json::from_str(app.secret_string().unwrap()).unwrap();
    value["password"] = json!(planted);
    secrets
        .put_secret_value()
        .secret_id(&p.cluster.spec.database.app_secret_name)
        .secret_string(value.to_string())
        .send()
        .await
        .unwrap();

    let run = tokio::task::block_in_place(|| cli(&["plan", &spec], &env));
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    // Another manager now owns the ceiling: server-side apply would conflict, so the
    // control plane leaves it and says so.
    assert!(
        out.contains(&format!(
            "  ! warning: ScaledObject/{ns}/signoz-otel-collector: a field is owned by"
        )),
        "{out}"
    );
    assert!(out.contains("  + bucket lifecycle"), "{out}");
    let secret_line = format!(
        "  ~ Secret/{ns}/{}",
        p.cluster.spec.database.kubernetes_secret.name
    );
    assert!(out.contains(&secret_line), "{secret_line} in\n{out}");
    assert!(
        out.contains(".data.SIGNOZ_SQLSTORE_POSTGRES_DSN: <redacted> -> <redacted>"),
        "{out}"
    );
    assert!(
        out.contains(&format!("  ↻ StatefulSet/{ns}/signoz")),
        "restart: {out}"
    );
    let encoded = url::form_urlencoded::byte_serialize(planted.as_bytes()).collect::<String>();
    for shown in [&run.stdout, &run.stderr] {
        assert!(
            !shown.contains(planted) && !shown.contains(&encoded),
            "a secret was shown"
        );
    }

    // Status: one screen.
    let run = tokio::task::block_in_place(|| cli(&["status", &spec], &env));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    assert!(out.starts_with(&format!("platform {}", p.cluster.spec.platform.name)));
    assert!(
        out.contains(&format!("spec         {spec}  etag ")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "cluster      drifted: 2 change(s) to make (Secret/{ns}/signoz-metadata-db, StatefulSet/{ns}/signoz)"
        ))),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("cold storage drifted: 1 change(s) to make (bucket lifecycle)")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("credentials  in sync")),
        "{out}"
    );
    assert!(out.contains("traces   remembered maximum 23 d in S3; SigNoz reports 30 d total, 7 d hot (23 d in S3)"), "{out}");
    assert!(
        out.contains("the bucket expires objects after 400 days"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{} enabled, every 30 days",
            p.cluster.spec.database.app_secret_name
        )),
        "{out}"
    );
    assert!(
        out.contains("none in force: every level is the spec's"),
        "{out}"
    );
    let _ = Api::<Secret>::namespaced(p.cluster.admin.clone(), &ns);

    // The spec changes: the diff is what the API server would store.
    let raised = spec_yaml(&p.cluster.spec).replace("min_replicas: 2", "min_replicas: 3");
    let raised_path = p.spec_path.with_file_name("raised.yaml");
    std::fs::write(&raised_path, raised).unwrap();
    let run = tokio::task::block_in_place(|| {
        cli(
            &["plan", raised_path.to_str().unwrap(), "--only", "cluster"],
            &env,
        )
    });
    assert_eq!(run.code, 2, "{}", run.stdout);
    // (The ScaledObject's apply conflicts with the hand edit above, so it shows as a
    // warning; the Helm values in SigNoz's Application carry the same bound.)
    let application = format!(
        "  ~ Application/{}/signoz",
        p.cluster
            .spec
            .cluster
            .delivery
            .argocd
            .as_ref()
            .unwrap()
            .namespace
    );
    let at = run
        .stdout
        .find(&application)
        .unwrap_or_else(|| panic!("{application} in\n{}", run.stdout));
    let fields: Vec<&str> = run.stdout[at..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("      "))
        .map(str::trim)
        .collect();
    assert!(
        fields.contains(&".spec.source.helm.valuesObject.otelCollector.replicaCount: 2 -> 3"),
        "{}",
        run.stdout
    );

    // A release rename is refused, with what to do, and fails the plan.
    let renamed = spec_yaml(&p.cluster.spec).replace("release: signoz", "release: signoz-next");
    let renamed_path = p.spec_path.with_file_name("renamed.yaml");
    std::fs::write(&renamed_path, renamed).unwrap();
    let run = tokio::task::block_in_place(|| {
        cli(
            &["plan", renamed_path.to_str().unwrap(), "--only", "cluster"],
            &env,
        )
    });
    assert_eq!(run.code, 1, "a refusal fails the plan: {}", run.stdout);
    assert!(run.stdout.contains("! refused:"), "{}", run.stdout);
    assert!(
        run.stdout.contains("cluster.delivery.replaces"),
        "{}",
        run.stdout
    );
}
