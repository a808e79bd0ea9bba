//! The TTL client against the fake SigNoz (`tests/support/signoz.rs`), one behaviour of
//! SigNoz's real TTL API per test; each names the SigNoz source it models.

use jiff::{SignedDuration, Timestamp};
use platform_tests::signoz::{JobEnd, LogsSchema, Role};
use serde_json::{Value, json};

use crate::cold_storage::Platform;

fn outcome(summary: &Value, signal: &str) -> Value {
    summary["ttls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["signal"] == signal)
        .unwrap_or_else(|| panic!("{signal} in {summary}"))
        .clone()
}

/// `reader.go` `setTTLLogs`: with `_retention_days` on `logs_v2`, v1 answers 500
/// "SetTTLV2 only supported"; `GetCustomRetentionTTL` reports `version: v2`. The client
/// reads that and sends logs to `POST /api/v2/settings/ttl`, traces and metrics to v1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_go_through_v2_on_the_current_schema_and_the_rest_through_v1() {
    let p = Platform::new().await;
    let summary = p.reconcile().await.expect("reconcile");
    p.signoz.with(|s| {
        assert_eq!(s.in_force_days("logs"), (30, Some(7)));
        assert_eq!(
            s.count("POST", "/api/v1/settings/ttl?type=logs"),
            0,
            "{:?}",
            s.requests
        );
        assert_eq!(s.count("POST", "/api/v2/settings/ttl"), 1);
        assert_eq!(s.count("POST", "/api/v1/settings/ttl?type=traces"), 1);
        assert_eq!(s.count("POST", "/api/v1/settings/ttl?type=metrics"), 1);
    });
    assert_eq!(outcome(&summary, "logs")["api"], "v2");
    assert_eq!(outcome(&summary, "traces")["api"], "v1");
}

/// `GetCustomRetentionTTL` without `_retention_days` says `version: v1`; an older SigNoz
/// has no v2 route at all (gorilla/mux 404). Either way logs go through v1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_go_through_v1_on_the_legacy_schema_and_on_a_signoz_without_v2() {
    for without_v2_routes in [false, true] {
        let p = Platform::new().await;
        p.signoz.with(|s| {
            s.logs_schema = LogsSchema::Legacy;
            s.v2_routes = !without_v2_routes;
        });
        let summary = p.reconcile().await.expect("reconcile");
        assert_eq!(outcome(&summary, "logs")["api"], "v1", "{summary}");
        p.signoz.with(|s| {
            assert_eq!(s.in_force_days("logs"), (30, Some(7)));
            assert_eq!(s.count("POST", "/api/v2/settings/ttl"), 0);
        });
    }
}

/// SigNoz defaults (`retentiontypes.Default*RetentionDays`, no move to cold): what the
/// first run reports as "before".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_reports_signoz_defaults_as_before() {
    let p = Platform::new().await;
    let summary = p.reconcile().await.expect("reconcile");
    for (signal, days) in [("traces", 15), ("logs", 15), ("metrics", 30)] {
        let before = &outcome(&summary, signal)["before"];
        assert_eq!(before["total_days"], days, "{signal}: {before}");
        assert_eq!(
            before["hot_days"],
            Value::Null,
            "{signal}: no cold move yet"
        );
        assert_eq!(before["status"], "success");
    }
}

/// `SetTTL` runs its ALTERs in a goroutine: the POST answers at once and `GET` says
/// `pending` with the old durations and `expected_*` until the job ends. A job still
/// pending when the run's patience ends is reported so; the next run verifies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_job_is_reported_and_the_next_run_verifies_it_converged() {
    let p = Platform::new().await;
    p.signoz
        .with(|s| s.job_duration = std::time::Duration::from_secs(3600));
    let first = p.reconcile().await.expect("pending is not a failure");
    let traces = outcome(&first, "traces");
    assert_eq!(
        traces["outcome"],
        json!({"applied": {"status": "pending"}}),
        "{traces}"
    );
    p.signoz.with(|s| s.finish_jobs());
    let second = p.reconcile().await.expect("verified");
    let traces = outcome(&second, "traces");
    assert_eq!(traces["outcome"], "unchanged", "{traces}");
    assert_eq!(traces["verified"], "converged", "{traces}");
    let third = p.reconcile().await.expect("nothing to verify");
    assert_eq!(outcome(&third, "traces")["verified"], Value::Null);
}

/// A read-back that differs from what was sent is said, and fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_back_that_differs_from_what_was_sent_is_reported() {
    let p = Platform::new().await;
    p.signoz
        .with(|s| s.job_duration = std::time::Duration::from_secs(3600));
    p.reconcile().await.expect("pending");
    // The job never lands what was sent: someone set 60 days in the UI meanwhile.
    p.signoz.with(|s| {
        s.finish_jobs();
        s.set_in_force("traces", 60, Some(7));
        s.job_duration = std::time::Duration::from_millis(10);
    });
    let summary = p.reconcile().await.expect("re-applied");
    let traces = outcome(&summary, "traces");
    let verified = traces["verified"].as_str().unwrap();
    assert!(
        verified.starts_with("diverged") && verified.contains("60"),
        "{traces}"
    );
    assert_eq!(p.signoz.with(|s| s.in_force_days("traces")), (30, Some(7)));
}

/// `getTTLQueryStatus` never times a pending row out. A job pending longer than the
/// spec's bound (`retention.ttl_api.stuck_after_minutes`) is an error, not success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_pending_past_the_bound_is_reported_stuck() {
    let p = Platform::new().await;
    p.signoz.with(|s| s.plant_stuck_job("traces", 30, 7));
    let t0 = Timestamp::now();
    let first = p.reconcile_at(t0).await.expect("deferred at first");
    assert!(outcome(&first, "traces")["outcome"]["deferred"].is_object());
    let later = p
        .reconcile_at(t0 + SignedDuration::from_mins(61))
        .await
        .expect_err("stuck");
    let text = later.to_string();
    assert!(
        text.contains("traces") && text.contains("pending since") && text.contains("60 minutes"),
        "{text}"
    );
}

/// v2 answers a running job with HTTP 400 (not 409): "custom retention TTL is already
/// running". Past the bound it is stuck too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_job_that_never_ends_is_stuck_past_the_bound() {
    let p = Platform::new().await;
    p.signoz.with(|s| s.plant_stuck_job("logs", 30, 7));
    let t0 = Timestamp::now();
    let first = p.reconcile_at(t0).await.expect("deferred");
    assert!(
        outcome(&first, "logs")["outcome"]["deferred"].is_object(),
        "{first}"
    );
    let err = p
        .reconcile_at(t0 + SignedDuration::from_hours(2))
        .await
        .expect_err("stuck");
    assert!(err.to_string().contains("logs"), "{err}");
}

/// v1's 409 `TTL is already running`: `setTTLTraces` checks seven tables, `GetTTL` six
/// (and `setTTLMetrics` eight where `GetTTL` reads one), so GET can say `success` while
/// every POST answers 409. Retried within patience, deferred, and past the bound a
/// permanent 409 is stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_is_retried_then_deferred_and_a_permanent_one_is_stuck() {
    let p = Platform::new().await;
    p.signoz.with(|s| {
        s.hidden_pending.insert("traces".into());
    });
    let t0 = Timestamp::now();
    let summary = p.reconcile_at(t0).await.expect("deferred");
    let reason = outcome(&summary, "traces")["outcome"]["deferred"]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("409") && reason.contains("TTL is already running"),
        "{reason}"
    );
    assert_eq!(
        p.signoz
            .with(|s| s.count("POST", "/api/v1/settings/ttl?type=traces")),
        3
    );
    let err = p
        .reconcile_at(t0 + SignedDuration::from_mins(90))
        .await
        .expect_err("stuck")
        .to_string();
    assert!(err.contains("traces") && err.contains("409"), "{err}");
    // Once SigNoz lets go, the next run applies and clears the record.
    p.signoz.with(|s| s.hidden_pending.clear());
    let summary = p
        .reconcile_at(t0 + SignedDuration::from_mins(91))
        .await
        .expect("applied");
    assert!(
        outcome(&summary, "traces")["outcome"]["applied"].is_object(),
        "{summary}"
    );
}

/// A job whose ALTER fails (`SetTTL` marks the row `failed`) is an error naming the signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_is_an_error() {
    let p = Platform::new().await;
    p.signoz.with(|s| {
        s.job_end = JobEnd::Failure;
        s.job_duration = std::time::Duration::ZERO;
    });
    let err = p.reconcile().await.expect_err("failed job").to_string();
    assert!(
        err.contains("traces") && err.contains("metrics") && err.contains("logs"),
        "{err}"
    );
}

/// A storage policy without the `s3` volume: ClickHouse refuses `TO VOLUME 's3'` and the
/// job fails; v2 says so synchronously with its 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_cold_volume_is_an_error_not_a_silent_hot_only_ttl() {
    let p = Platform::new().await;
    p.signoz.with(|s| s.volumes = vec!["default".into()]);
    let err = p.reconcile().await.expect_err("no s3 volume").to_string();
    assert!(
        err.contains("logs") && err.contains("TO VOLUME 's3'"),
        "{err}"
    );
    assert_eq!(p.signoz.with(|s| s.in_force_days("logs")), (15, None));
}

/// The identN/authz middleware: an unknown key is 401 `unauthenticated`, a viewer key may
/// read but not POST (403 `only admins can access this resource`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_is_401_and_a_viewer_key_cannot_set_ttls() {
    let p = Platform::new().await;
    p.secrets
        .put_secret_value()
        .secret_id(&p.secret)
        .secret_string("not-a-key-signoz-knows")
        .send()
        .await
        .unwrap();
    let err = p.reconcile().await.expect_err("unknown key").to_string();
    assert!(err.contains("401") && err.contains("not a valid"), "{err}");
    assert!(
        !err.contains("not-a-key-signoz-knows"),
        "the key stays secret"
    );

    p.signoz
        .with(|s| s.keys.insert("viewer-key".into(), Role::Viewer));
    p.secrets
        .put_secret_value()
        .secret_id(&p.secret)
        .secret_string("viewer-key")
        .send()
        .await
        .unwrap();
    let err = p.reconcile().await.expect_err("viewer key").to_string();
    assert!(err.contains("403") && err.contains("admin"), "{err}");
    assert_eq!(p.signoz.with(|s| s.posts), 0);
}

/// A missing key secret is a clear error before SigNoz is called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_api_key_secret_is_a_clear_error() {
    let p = Platform::new().await;
    p.secrets
        .delete_secret()
        .secret_id(&p.secret)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let err = p.reconcile().await.expect_err("no key").to_string();
    // The role may read only that secret: for a deleted one AWS answers AccessDenied, the
    // ARN it names (no suffix) matching no `name-??????` grant (tests/bin/moto-iam-server.py).
    assert!(
        err.contains(&p.secret) && (err.contains("does not exist") || err.contains("AccessDenied")),
        "{err}"
    );
    assert_eq!(p.signoz.with(|s| s.requests.len()), 0);
}

/// Custom retention rules set in the SigNoz UI (`ttlConditions`) are sent back as they
/// are, and their longest `ttlDays` counts in the memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_log_retention_rules_are_kept_and_counted() {
    let p = Platform::new().await;
    p.reconcile().await.expect("converged");
    let rules =
        json!([{"conditions": [{"key": "service.name", "values": ["audit"]}], "ttlDays": 500}]);
    p.signoz.with(|s| s.set_log_conditions(rules.clone()));
    let summary = p.reconcile().await.expect("kept");
    assert_eq!(summary["remembered_cold_days"]["logs"], 493, "{summary}");
    assert_eq!(p.expiration().await, Some(500));
    p.signoz.with(|s| {
        s.set_in_force("logs", 60, Some(7));
        s.set_log_conditions(rules.clone());
    });
    p.reconcile().await.expect("logs back to 30 days");
    p.signoz.with(|s| {
        assert_eq!(s.in_force_days("logs"), (30, Some(7)));
        assert_eq!(s.log_conditions(), rules, "the UI's rules are sent back");
    });
}
