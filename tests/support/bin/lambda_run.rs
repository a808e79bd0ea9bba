//! `lambda-run [--allow-errors] [--log FILE] [--answers FILE] <function> <event.json>...`:
//! runs a function's built binary under a local Lambda Runtime API, sends it each event in
//! order, and tells what each invocation did in a few lines (`platform_tests::story`).
//! `--log` appends the function's own output (its JSON logs) to FILE, `--answers` each
//! full answer as one JSON line; without them both go to stdout.
//! The binary is `target/<profile>/<function>` (`LAMBDA_PROFILE`, default `debug`).
//! Exits non-zero when any invocation fails, unless `--allow-errors` is given.
//! The function runs under its deployment role (`platform_tests::iam`): the policy of
//! functions.json rendered for the spec at `DEPLOYMENT_SPEC` (default `PLATFORM_SPEC`,
//! the valid spec the deployment was configured from), assumed with the stack's admin.

use std::path::PathBuf;
use std::time::Duration;

use platform_tests::iam::{Deployment, role_env as deployment_role_env};
use platform_tests::runtime_api::{RunOptions, run_function_with};
use signoz_control::spec::{SpecLocation, load_spec};

/// The credentials of `function`'s role in the deployment of `DEPLOYMENT_SPEC`.
async fn role_env(function: &str) -> Result<Vec<(String, String)>, Box<dyn std::error::Error>> {
    let value = std::env::var("DEPLOYMENT_SPEC")
        .or_else(|_| std::env::var(signoz_control::spec::SPEC_ENV))
        .map_err(|_| "set DEPLOYMENT_SPEC or PLATFORM_SPEC: the function's role is scoped to it")?;
    let location = SpecLocation::parse(&value)?;
    let admin = platform_tests::aws().await;
    let spec = load_spec(&location, &signoz_control::aws::s3_client(&admin))
        .await?
        .spec;
    Ok(deployment_role_env(function, &Deployment::for_spec(&spec, &location)).await)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let allow_errors = args.iter().any(|a| a == "--allow-errors");
    args.retain(|a| a != "--allow-errors");
    let mut take = |flag: &str| -> Option<PathBuf> {
        let at = args.iter().position(|a| a == flag)?;
        let value = args.get(at + 1).cloned();
        args.drain(at..(at + 2).min(args.len()));
        value.map(PathBuf::from)
    };
    let (log, answers) = (take("--log"), take("--answers"));
    let Some((function, files)) = args.split_first() else {
        eprintln!(
            "usage: lambda-run [--allow-errors] [--log FILE] [--answers FILE] <function> <event.json>..."
        );
        std::process::exit(2);
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let profile = std::env::var("LAMBDA_PROFILE").unwrap_or_else(|_| "debug".into());
    let target = std::env::var("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from);
    let binary = target.join(&profile).join(function);
    let mut events = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
        events.push(serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?);
    }
    let options = RunOptions {
        env: role_env(function).await?,
        log_file: log,
        ..RunOptions::new(Duration::from_secs(120))
    };
    let report = run_function_with(&binary, function, &options, events).await?;
    println!(
        "== {function} (init {:.1} ms, peak RSS {} KiB)",
        report.init.as_secs_f64() * 1e3,
        report.max_rss_kib.map_or("?".into(), |k| k.to_string())
    );
    if let Some(err) = &report.init_error {
        println!("!! {function} failed to initialise: {err}");
        std::process::exit(1);
    }
    let mut failed = false;
    let mut full = String::new();
    for (file, result) in files.iter().zip(&report.results) {
        let name = std::path::Path::new(file)
            .file_name()
            .map_or(file.clone(), |n| n.to_string_lossy().into_owned());
        println!(
            "-- {name} -> {} in {:.0} ms",
            if result.ok { "ok" } else { "ERROR" },
            result.duration.as_secs_f64() * 1e3
        );
        for line in platform_tests::story::tell(function, result.ok, &result.body) {
            println!("   {line}");
        }
        full.push_str(
            &serde_json::json!({
                "function": function, "event": file, "ok": result.ok,
                "ms": result.duration.as_secs_f64() * 1e3, "answer": result.body,
            })
            .to_string(),
        );
        full.push('\n');
        failed |= !result.ok;
    }
    match answers {
        Some(path) => {
            use std::io::Write as _;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(full.as_bytes()))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        None => print!("{full}"),
    }
    if failed && !allow_errors {
        std::process::exit(1);
    }
    Ok(())
}
