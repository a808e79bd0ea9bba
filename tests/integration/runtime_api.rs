//! The local Lambda Runtime API the local run and the benchmarks start functions under:
//! events handed out in order, an observer called around each one, and a run that ends
//! once every event is answered even though the function keeps asking for more.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use platform_tests::runtime_api::{Phase, RunOptions, run_function_with};
use serde_json::json;

/// The hello-world baseline (`tests/bench/hello-world`), built by `cargo build --workspace`.
fn hello_world() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from);
    let binary = target.join("debug/hello-world");
    assert!(
        binary.exists(),
        "{} is missing: run cargo build -p hello-world",
        binary.display()
    );
    binary
}

#[tokio::test(flavor = "current_thread")]
async fn each_event_is_observed_out_and_back_and_the_run_ends_when_all_are_answered() {
    let seen: Arc<Mutex<Vec<(usize, Phase)>>> = Arc::default();
    let sink = seen.clone();
    let options = RunOptions {
        observer: Some(Arc::new(move |i, phase| {
            sink.lock().unwrap().push((i, phase))
        })),
        ..RunOptions::new(Duration::from_secs(60))
    };
    let events: Vec<serde_json::Value> = (0..3).map(|n| json!({ "n": n })).collect();
    let started = Instant::now();
    // Twice on one current-thread runtime: a /next held after the last answer must neither
    // spin nor outlive its run.
    for _ in 0..2 {
        seen.lock().unwrap().clear();
        let report = run_function_with(&hello_world(), "hello-world", &options, events.clone())
            .await
            .unwrap();
        assert!(report.init_error.is_none(), "{:?}", report.init_error);
        let echoed: Vec<_> = report
            .results
            .iter()
            .map(|r| r.body["echo"]["n"].clone())
            .collect();
        assert_eq!(echoed, [json!(0), json!(1), json!(2)]);
        assert!(report.results.iter().all(|r| r.ok));
        assert!(report.init > Duration::ZERO);
        assert!(report.max_rss_kib.is_some_and(|k| k > 0));
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (0, Phase::HandedOut),
                (0, Phase::Answered),
                (1, Phase::HandedOut),
                (1, Phase::Answered),
                (2, Phase::HandedOut),
                (2, Phase::Answered)
            ]
        );
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}
