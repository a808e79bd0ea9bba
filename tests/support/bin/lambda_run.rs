//! `lambda-run <function> <event.json>...`: runs a function's built binary under a local
//! Lambda Runtime API, sends it each event in order, and prints what it answered.
//! The binary is `target/<profile>/<function>` (`LAMBDA_PROFILE`, default `debug`).
//! Exits non-zero when any invocation fails, unless `--allow-errors` is given.

use std::path::PathBuf;
use std::time::Duration;

use platform_tests::runtime_api::run_function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let allow_errors = args.iter().any(|a| a == "--allow-errors");
    args.retain(|a| a != "--allow-errors");
    let Some((function, files)) = args.split_first() else {
        eprintln!("usage: lambda-run [--allow-errors] <function> <event.json>...");
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
    let report = run_function(&binary, function, &[], events, Duration::from_secs(120)).await?;
    println!(
        "== {function}: init {:.1} ms, peak RSS {} KiB",
        report.init.as_secs_f64() * 1e3,
        report.max_rss_kib.map_or("?".into(), |k| k.to_string())
    );
    if let Some(err) = &report.init_error {
        println!("!! {function} failed to initialise: {err}");
        std::process::exit(1);
    }
    let mut failed = false;
    for (file, result) in files.iter().zip(&report.results) {
        let mark = if result.ok { "ok" } else { "ERROR" };
        println!(
            "-- {file} -> {mark} in {:.1} ms\n{}",
            result.duration.as_secs_f64() * 1e3,
            serde_json::to_string_pretty(&result.body)?
        );
        failed |= !result.ok;
    }
    if failed && !allow_errors {
        std::process::exit(1);
    }
    Ok(())
}
