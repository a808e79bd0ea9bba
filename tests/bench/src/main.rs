//! `bench --out RESULTS.md [--init-runs K] [--fleet 1,10,100] [--latency 0,20ms]`:
//! measures the release functions next to a hello-world `lambda_runtime` binary, all
//! started the same way under a local Lambda Runtime API, against the local stack
//! (`tests/bin/bench.sh`).
//!
//! Sections: binary sizes; init time (median of K interleaved runs, ratio to the
//! baseline) and peak RSS; end to end at each round-trip latency (provisioning, a
//! rotation with each strategy, storage reconcile apply and no-op, a CloudTrail drift
//! undo, cluster sync apply and no-op, an alarm remedy) with per-step wall time, API calls
//! (reads vs writes) counted by proxies, connections opened and the critical path of
//! round trips, then the operations side by side; fleet scale.

mod meter;
mod platform;
mod proxy;
mod table;
mod telemetry;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use platform_tests::runtime_api::{RunOptions, RunReport, run_function_with};
use serde_json::{Value, json};

use meter::{Meter, Usage};
use platform::{Network, Platform, Postgres, Stack};
use signoz_control::spec::RotationStrategy;
use table::{markdown, median, mib, range};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

const BASELINE: &str = "hello-world";
const FUNCTIONS: [&str; 4] = [
    "rotate-credentials",
    "enforce-cold-storage",
    "sync-cluster",
    "respond-to-alarms",
];
/// One row of the init table: a label, the binary, extra environment.
pub(crate) type InitEntry = (String, &'static str, Vec<(String, String)>);

/// Where Debian and Amazon Linux keep the system's CA bundle.
const SYSTEM_CA_BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

const RUN_TIMEOUT: Duration = Duration::from_secs(300);

struct Args {
    out: PathBuf,
    init_runs: usize,
    fleet: Vec<usize>,
    /// Round-trip latencies to run the end-to-end operations at (the first one also
    /// carries the init and fleet runs).
    latency: Vec<Duration>,
    release_dir: PathBuf,
}

/// `20ms`, `20` (milliseconds) or `0`.
fn parse_latency(value: &str) -> Result<Duration, BoxError> {
    let ms = value.trim().trim_end_matches("ms");
    Ok(Duration::from_millis(ms.parse().map_err(|_| {
        format!("--latency takes round trips in milliseconds (0,20ms), not {value:?}")
    })?))
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn parse_args() -> Result<Args, BoxError> {
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or(repo_root().join("target"), PathBuf::from);
    let mut args = Args {
        out: repo_root().join("tests/bench/RESULTS.md"),
        init_runs: 15,
        fleet: vec![1, 10, 100],
        latency: vec![Duration::ZERO, Duration::from_millis(20)],
        release_dir: target.join("release"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--out" => args.out = value.into(),
            "--init-runs" => args.init_runs = value.parse()?,
            "--fleet" => args.fleet = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--latency" => {
                args.latency = value
                    .split(',')
                    .map(parse_latency)
                    .collect::<Result<_, _>>()?
            }
            "--release-dir" => args.release_dir = value.into(),
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    Ok(args)
}

pub(crate) fn event(name: &str) -> Result<Value, BoxError> {
    let path = repo_root().join("events").join(name);
    Ok(serde_json::from_str(
        &std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    )?)
}

/// One function process: its report and what each invocation did.
struct Run {
    report: RunReport,
    usage: Vec<Usage>,
    wall: Duration,
}

impl Run {
    fn invocation_ms(&self, i: usize) -> f64 {
        self.report
            .results
            .get(i)
            .map_or(f64::NAN, |r| r.duration.as_secs_f64() * 1e3)
    }

    fn outcome(&self, i: usize) -> String {
        match self.report.results.get(i) {
            Some(r) if r.ok => "ok".into(),
            Some(r) => format!("error: {}", short(&r.body)),
            None => format!(
                "no answer: {}",
                self.report.init_error.as_ref().map_or("?".into(), short)
            ),
        }
    }

    fn rss_bytes(&self) -> u64 {
        self.report.max_rss_kib.unwrap_or(0) * 1024
    }
}

fn short(v: &Value) -> String {
    let text = v
        .get("errorMessage")
        .and_then(Value::as_str)
        .map_or_else(|| v.to_string(), str::to_string);
    let one_line = text.replace(['\n', '|'], " ");
    one_line.chars().take(160).collect()
}

pub(crate) struct Bench {
    args: Args,
    stack: Stack,
    meter: Meter,
    /// Invocations that should have succeeded and did not (`function (platform) #n: why`):
    /// the results are still written, then the bench fails.
    failed: std::sync::Mutex<Vec<String>>,
}

impl Bench {
    fn binary(&self, name: &str) -> PathBuf {
        self.args.release_dir.join(name)
    }

    /// Runs `function` for `platform` with `events`, one process, counting per invocation;
    /// every invocation is expected to succeed (a denied call fails it).
    pub(crate) async fn run(
        &self,
        function: &str,
        platform: &Platform,
        events: Vec<Value>,
    ) -> Result<Run, BoxError> {
        let expected = events.len();
        let run = self.run_with_env(function, platform, events, &[]).await?;
        for i in 0..expected {
            let outcome = run.outcome(i);
            if outcome != "ok" {
                self.failed.lock().unwrap().push(format!(
                    "{function} ({}) #{}: {outcome}",
                    platform.spec.platform.name,
                    i + 1
                ));
            }
        }
        Ok(run)
    }

    /// [`Bench::run`] with `extra` environment on top of the platform's.
    pub(crate) async fn run_with_env(
        &self,
        function: &str,
        platform: &Platform,
        events: Vec<Value>,
        extra: &[(String, String)],
    ) -> Result<Run, BoxError> {
        let (observer, marks) = self.meter.observer();
        let mut env = self.stack.function_env(function, platform).await?;
        env.extend_from_slice(extra);
        let options = RunOptions {
            env,
            observer: Some(observer),
            log_file: Some(self.stack.workdir.join(format!("{function}.log"))),
            ..RunOptions::new(RUN_TIMEOUT)
        };
        let started = Instant::now();
        let report = run_function_with(&self.binary(function), function, &options, events).await?;
        let wall = started.elapsed();
        let usage = marks
            .lock()
            .unwrap()
            .iter()
            .map(|(from, to)| self.meter.between(*from, *to))
            .collect();
        Ok(Run {
            report,
            usage,
            wall,
        })
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    signoz_control::runtime::install_crypto();
    let args = parse_args()?;
    let mut out = header(&args.release_dir);

    eprintln!("== sizes");
    out += &sizes(&args.release_dir)?;

    let workdir = tempfile::Builder::new().prefix("signoz-bench.").tempdir()?;
    let meter = Meter {
        log: Default::default(),
        connections: Default::default(),
        links: Default::default(),
        pg_logs: ["PG_LOG_FILE", "PG18_LOG_FILE"].map(|v| std::env::var_os(v).map(PathBuf::from)),
        kube_audit_log: std::env::var_os("KUBE_AUDIT_LOG").map(PathBuf::from),
    };
    let stack = Stack::start(workdir.path().to_path_buf(), meter.clone(), &args.latency).await?;
    let bench = Bench {
        args,
        stack,
        meter,
        failed: Default::default(),
    };
    let tag = format!("{:x}", std::process::id());
    let seed = |name: String, strategy, network| {
        let stack = &bench.stack;
        async move { stack.seed_platform(&name, strategy, network).await }
    };
    let mut platforms = Vec::new();
    for (n, network) in bench.stack.networks.iter().enumerate() {
        let ms = network.rtt.as_millis();
        platforms.push((
            seed(
                format!("e2e-{ms}-{tag}"),
                Some((RotationStrategy::AlternatingUsers, Postgres::V15)),
                n,
            )
            .await?,
            seed(
                format!("su-{ms}-{tag}"),
                Some((RotationStrategy::SingleUser, Postgres::V15)),
                n,
            )
            .await?,
            seed(
                format!("pg18-{ms}-{tag}"),
                Some((RotationStrategy::AlternatingUsers, Postgres::V18Direct)),
                n,
            )
            .await?,
        ));
    }

    eprintln!("== init ({} interleaved runs each)", bench.args.init_runs);
    let (init_section, idle_rss) = init_times(&bench, &platforms[0].0).await?;

    let mut e2e_sections = String::new();
    let mut operations = Vec::new();
    let mut peak = Vec::new();
    for (network, (alternating, single, direct)) in bench.stack.networks.iter().zip(&platforms) {
        eprintln!("== end to end at {}", network.label());
        let (section, ops, peaks) =
            end_to_end(&bench, network, [alternating, single, direct]).await?;
        e2e_sections += &section;
        operations.push((network.label(), ops));
        if peak.is_empty() {
            peak = peaks;
        }
    }
    out += &init_section;
    out += &memory(&idle_rss, &peak);
    out += &side_by_side(&operations);
    out += &e2e_sections;
    eprintln!("== telemetry per invocation");
    out += &telemetry::per_invocation(&bench, &platforms[0].0).await?;

    eprintln!("== fleet scale");
    out += &fleet(&bench, &tag).await?;
    out += FOOTNOTES;

    std::fs::write(&bench.args.out, &out)?;
    eprintln!("== wrote {}", bench.args.out.display());
    let failed = bench.failed.into_inner().unwrap();
    if !failed.is_empty() {
        drop(workdir);
        eprintln!(
            "{} invocation(s) failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
        std::process::exit(1);
    }
    Ok(())
}

fn header(binaries: &Path) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let profile = if binaries.ends_with("release") {
        "release profile (fat LTO, codegen-units 1, panic abort, stripped)".to_string()
    } else {
        format!(
            "**binaries from {}: not a release build, the numbers mean nothing**",
            binaries.display()
        )
    };
    format!(
        "# Benchmark results\n\nGenerated by `tests/bin/bench.sh` on {} — {cores} cores ({cpu}), Linux {}, {profile}, ring-backed rustls (no AWS-LC in the tree). Local stack: moto server with IAM evaluated, PostgreSQL 15 (TLS, scram-sha-256), a real kube-apiserver with RBAC; each function runs under its deployment role (functions.json) and its own Kubernetes identity. Numbers from a shared 2-core machine are indicative; compare the functions with the baseline measured in the same run, not across runs.\n\n",
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC"),
        kernel.trim()
    )
}

/// Release binary and `zip -9` sizes of each function and the baseline.
fn sizes(dir: &Path) -> Result<String, BoxError> {
    let scratch = tempfile::tempdir()?;
    let mut rows = Vec::new();
    for name in FUNCTIONS.iter().chain([&BASELINE]) {
        let binary = dir.join(name);
        let size = std::fs::metadata(&binary)
            .map_err(|e| {
                format!(
                    "{}: {e} (build it with cargo build --release)",
                    binary.display()
                )
            })?
            .len();
        // The deployment package: the binary named `bootstrap`, zipped.
        let bootstrap = scratch.path().join("bootstrap");
        std::fs::copy(&binary, &bootstrap)?;
        let zip = scratch.path().join(format!("{name}.zip"));
        let status = std::process::Command::new("zip")
            .args(["-9", "-q", "-j"])
            .arg(&zip)
            .arg(&bootstrap)
            .status()?;
        if !status.success() {
            return Err(format!("zip failed for {name}").into());
        }
        rows.push(vec![
            format!("`{name}`"),
            mib(size),
            mib(std::fs::metadata(&zip)?.len()),
        ]);
    }
    Ok(format!(
        "## Binary size\n\n{}\n",
        markdown(
            &["binary", "`bootstrap` (release)", "zipped (`zip -9`)"],
            &rows
        )
    ))
}

/// Init of each function and the baseline, interleaved round by round; returns the
/// section and each binary's median idle peak RSS (after one rejected event).
async fn init_times(
    bench: &Bench,
    platform: &Platform,
) -> Result<(String, Vec<(String, u64)>), BoxError> {
    // (row label, binary, extra env): the baseline, each function as deployed, and, when
    // this host has a system CA bundle, each function told to trust it too through
    // AWS_CA_BUNDLE: the price of that setting (the SDK parses it once per client).
    let mut entries: Vec<InitEntry> = [BASELINE]
        .into_iter()
        .chain(FUNCTIONS)
        .map(|n| (format!("`{n}`"), n, Vec::new()))
        .collect();
    if let Some(bundle) = SYSTEM_CA_BUNDLES
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
    {
        entries.extend(FUNCTIONS.map(|n| {
            (
                format!("`{n}`, `AWS_CA_BUNDLE={bundle}`"),
                n,
                vec![("AWS_CA_BUNDLE".to_string(), bundle.to_string())],
            )
        }));
    }
    entries.extend(telemetry::init_entries(&FUNCTIONS));
    let names: Vec<&str> = entries.iter().map(|e| e.1).collect();
    let mut init: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut rss: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut failures: Vec<Option<String>> = vec![None; names.len()];
    // Init does not depend on the event; one every function rejects keeps the run short.
    let probe = json!({ "bench": "init" });
    for _ in 0..bench.args.init_runs {
        for (i, (_, name, extra)) in entries.iter().enumerate() {
            let run = bench
                .run_with_env(name, platform, vec![probe.clone()], extra)
                .await?;
            match &run.report.init_error {
                Some(e) if run.report.results.is_empty() => failures[i] = Some(short(e)),
                _ => {
                    init[i].push(run.report.init.as_secs_f64() * 1e3);
                    rss[i].push(run.rss_bytes() as f64);
                }
            }
        }
    }
    let floor = median(&init[0]);
    let rows = entries
        .iter()
        .enumerate()
        .map(|(i, (label, _, _))| {
            let m = median(&init[i]);
            let (lo, hi) = range(&init[i]);
            let ratio = if i == 0 {
                "1.00 (floor)".into()
            } else {
                format!("{:.2}", m / floor)
            };
            let verdict = match (&failures[i], i) {
                (Some(e), _) => format!("init failed: {e}"),
                (None, 0) => String::new(),
                (None, _) if m <= 1.5 * floor => "within 1.5×".into(),
                (None, _) => "over 1.5×".into(),
            };
            vec![
                label.clone(),
                format!("{m:.2}"),
                format!("{lo:.2} – {hi:.2}"),
                ratio,
                format!("{}/{}", init[i].len(), bench.args.init_runs),
                verdict,
            ]
        })
        .collect::<Vec<_>>();
    let idle = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.2.is_empty())
        .map(|(i, e)| (e.1.to_string(), median(&rss[i]) as u64))
        .collect();
    Ok((
        format!(
            "## Init time (process start to the first `/next`)\n\nEach binary started {} times under the same local Runtime API with the same environment (AWS endpoint, `PLATFORM_SPEC`, `KUBECONFIG`), rounds interleaved (baseline, then each function) so drift on the shared machine hits all alike. Goal: within 1.5× of the hello-world floor.\n\n{}\n",
            bench.args.init_runs,
            markdown(
                &[
                    "binary",
                    "median ms",
                    "min – max ms",
                    "ratio to floor",
                    "runs",
                    "goal"
                ],
                &rows
            )
        ),
        idle,
    ))
}

fn memory(idle: &[(String, u64)], peak: &[(String, u64, String)]) -> String {
    let rows = idle
        .iter()
        .map(|(name, idle_bytes)| {
            let (peak_cell, what, goal) = match peak.iter().find(|(n, _, _)| n == name) {
                Some((_, bytes, what)) => (
                    mib(*bytes),
                    what.clone(),
                    if *bytes < 40_000_000 {
                        "under 40 MB"
                    } else {
                        "OVER 40 MB"
                    }
                    .to_string(),
                ),
                None => ("–".into(), "one rejected event".into(), String::new()),
            };
            vec![format!("`{name}`"), mib(*idle_bytes), peak_cell, what, goal]
        })
        .collect::<Vec<_>>();
    format!(
        "## Peak memory (VmHWM of the process)\n\n{}\n",
        markdown(
            &[
                "binary",
                "idle (init + one rejected event, median)",
                "representative run",
                "representative invocation",
                "goal"
            ],
            &rows
        )
    )
}

fn usage_row(label: &str, run: &Run, i: usize) -> Vec<String> {
    let u = run.usage.get(i).cloned().unwrap_or_default();
    let sql = if u.sql_reads + u.sql_writes + u.sql_other > 0 {
        format!("{} / {} (+{} tx)", u.sql_reads, u.sql_writes, u.sql_other)
    } else {
        "–".into()
    };
    vec![
        label.to_string(),
        format!("{:.1}", run.invocation_ms(i)),
        u.critical_path.to_string(),
        u.reads().to_string(),
        u.writes().to_string(),
        sql,
        u.connections.to_string(),
        run.outcome(i),
        u.breakdown(),
    ]
}

const USAGE_HEADER: [&str; 9] = [
    "step",
    "wall ms",
    "critical path (round trips)",
    "API reads",
    "API writes",
    "SQL reads / writes",
    "connections",
    "outcome",
    "calls (`*` = write)",
];

/// One operation's figures at one latency.
#[derive(Debug, Clone)]
struct Operation {
    name: &'static str,
    ms: f64,
    calls: usize,
    connections: usize,
    critical_path: usize,
}

impl Operation {
    /// Invocations `steps` of `run`, one after another, as one operation.
    fn of(name: &'static str, run: &Run, steps: std::ops::Range<usize>) -> Operation {
        let usage = |i: usize| run.usage.get(i).cloned().unwrap_or_default();
        Operation {
            name,
            ms: steps.clone().map(|i| run.invocation_ms(i)).sum(),
            calls: steps.clone().map(|i| usage(i).calls.len()).sum(),
            connections: steps.clone().map(|i| usage(i).connections).sum(),
            critical_path: steps.map(|i| usage(i).critical_path).sum(),
        }
    }
}

/// Issue 19's goals, in round trips of critical path.
fn goal(operation: &str) -> Option<usize> {
    match operation {
        "storage reconcile, no-op" | "cluster sync, no-op" => Some(5),
        "drift undo (CloudTrail event in, bucket repaired)" => Some(4),
        "rotation, alternating users (4 steps, hand-off)"
        | "rotation, alternating users, PostgreSQL 18 with direct TLS (4 steps, hand-off)" => {
            Some(25)
        }
        _ => None,
    }
}

/// Provision, one rotation with each strategy (four steps), storage apply + no-op, a
/// drift undo, cluster apply + no-op, one alarm, on `network`; returns the section, the
/// operations and each function's peak RSS over its run.
async fn end_to_end(
    bench: &Bench,
    network: &Network,
    [p, single, direct]: [&Platform; 3],
) -> Result<(String, Vec<Operation>, Vec<(String, u64, String)>), BoxError> {
    let mut out = format!(
        "## End to end at {} per round trip\n\nOne process per function run, events handed in order like warm invocations. Wall time is from handing the event out to the answer; calls are counted by proxies in front of moto and the fake SigNoz TTL API, Kubernetes calls from the kube-apiserver's audit log (the function identities' requests), SQL statements from PostgreSQL's statement log. Reads are GET/HEAD/LIST and Get/Describe/List operations, writes the rest. The critical path is the longest chain of proxied calls and PostgreSQL and API-server round trips that waited for each other; connections are those opened (each a TCP and TLS handshake on a real network).\n\n",
        network.label()
    );
    let mut peak = Vec::new();
    let mut operations = Vec::new();

    let mut rows = Vec::new();
    let mut cpu = Vec::new();
    let steps = ["createSecret", "setSecret", "testSecret", "finishSecret"];
    for (platform, strategy, name) in [
        (
            p,
            "alternating users",
            "rotation, alternating users (4 steps, hand-off)",
        ),
        (
            single,
            "single user",
            "rotation, single user (4 steps, hand-off)",
        ),
        (
            direct,
            "alternating users, PostgreSQL 18, direct TLS",
            "rotation, alternating users, PostgreSQL 18 with direct TLS (4 steps, hand-off)",
        ),
    ] {
        let provision = bench
            .run(
                "rotate-credentials",
                platform,
                vec![event("control-provision-database.json")?],
            )
            .await?;
        // A rotation needs the provisioned database and secret: stop with the reason.
        if provision.outcome(0) != "ok" {
            return Err(format!("provisioning failed: {}", provision.outcome(0)).into());
        }
        // The first rotation creates the DSN Secret; the one measured is the next, as
        // every later one runs (the Secret holds the version before), cold as after
        // the weeks between rotations.
        let mut rotation = None;
        for round in 0..2 {
            let token = bench.stack.start_rotation(platform).await?;
            let events = steps
                .iter()
                .map(|s| json!({"Step": s, "SecretId": platform.spec.database.app_secret_name, "ClientRequestToken": token}))
                .collect();
            let run = bench.run("rotate-credentials", platform, events).await?;
            let failed = (0..steps.len()).map(|i| run.outcome(i)).find(|o| o != "ok");
            if let (0, Some(failed)) = (round, failed) {
                return Err(format!("the first rotation failed: {failed}").into());
            }
            rotation = Some(run);
        }
        let rotation = rotation.expect("two rotations ran");
        rows.push(usage_row(
            &format!("provision ({strategy}; its own process)"),
            &provision,
            0,
        ));
        rows.extend(
            steps
                .iter()
                .enumerate()
                .map(|(i, s)| usage_row(&format!("{s} ({strategy})"), &rotation, i)),
        );
        if operations.is_empty() {
            operations.push(Operation::of("provisioning", &provision, 0..1));
            peak.push((
                "rotate-credentials".into(),
                rotation.rss_bytes().max(provision.rss_bytes()),
                "provision, then a four-step rotation".into(),
            ));
        }
        operations.push(Operation::of(name, &rotation, 0..4));
        cpu.push(format!(
            "{strategy} {}",
            rotation
                .report
                .cpu
                .map_or("?".into(), |c| format!("{:.1} ms", c.as_secs_f64() * 1e3))
        ));
    }
    out += &format!(
        "### Rotation (`rotate-credentials`)\n\n{}\nCPU of the measured rotation's process (init and the four steps, every thread, `/proc/<pid>/task/*/schedstat`): {}. The rest of a step's wall time at 0 ms is the stack's (moto, PostgreSQL, the API server) and the harness's.\n\n",
        markdown(&USAGE_HEADER, &rows),
        cpu.join("; ")
    );

    let schedule = event("schedule.json")?;
    let storage = bench
        .run(
            "enforce-cold-storage",
            p,
            vec![schedule.clone(), schedule.clone()],
        )
        .await?;
    // Someone removes the cold bucket's public access block; CloudTrail tells the
    // function, which repairs it (a process of its own: the event comes later).
    bench
        .stack
        .s3
        .delete_public_access_block()
        .bucket(&p.spec.cold_storage.bucket)
        .send()
        .await?;
    let mut drift = event("cloudtrail-delete-public-access-block.json")?;
    drift["detail"]["requestParameters"]["bucketName"] = json!(p.spec.cold_storage.bucket);
    let undo = bench.run("enforce-cold-storage", p, vec![drift]).await?;
    let repaired = bench
        .stack
        .s3
        .get_public_access_block()
        .bucket(&p.spec.cold_storage.bucket)
        .send()
        .await
        .is_ok();
    if !repaired {
        bench
            .failed
            .lock()
            .unwrap()
            .push("enforce-cold-storage: the public access block was not restored".into());
    }
    out += &format!(
        "### Storage reconcile (`enforce-cold-storage`)\n\nThe drift undo is its own process (its first invocation: connections are new).\n\n{}\n",
        markdown(
            &USAGE_HEADER,
            &[
                usage_row("schedule: apply", &storage, 0),
                usage_row("schedule: no-op", &storage, 1),
                usage_row("CloudTrail: public access block deleted", &undo, 0),
            ]
        )
    );
    operations.extend([
        Operation::of("storage reconcile, apply", &storage, 0..1),
        Operation::of("storage reconcile, no-op", &storage, 1..2),
        Operation::of(
            "drift undo (CloudTrail event in, bucket repaired)",
            &undo,
            0..1,
        ),
    ]);
    peak.push((
        "enforce-cold-storage".into(),
        storage.rss_bytes(),
        "schedule: apply, then no-op".into(),
    ));

    let cluster = bench
        .run("sync-cluster", p, vec![schedule.clone(), schedule.clone()])
        .await?;
    out += &format!(
        "### Cluster sync (`sync-cluster`)\n\nProcess wall including init {:.1} ms.\n\n{}\n",
        cluster.wall.as_secs_f64() * 1e3,
        markdown(
            &USAGE_HEADER,
            &[
                usage_row("schedule: apply", &cluster, 0),
                usage_row("schedule: no-op", &cluster, 1),
            ]
        )
    );
    operations.extend([
        Operation::of("cluster sync, apply", &cluster, 0..1),
        Operation::of("cluster sync, no-op", &cluster, 1..2),
    ]);
    peak.push((
        "sync-cluster".into(),
        cluster.rss_bytes(),
        "schedule: apply, then no-op".into(),
    ));

    let alarm = bench
        .run(
            "respond-to-alarms",
            p,
            vec![event("alarm-state-change.json")?],
        )
        .await?;
    out += &format!(
        "### Alarm (`respond-to-alarms`)\n\n{}\n",
        markdown(&USAGE_HEADER, &[usage_row("ALARM state change", &alarm, 0)])
    );
    operations.push(Operation::of("alarm remedy", &alarm, 0..1));
    peak.push((
        "respond-to-alarms".into(),
        alarm.rss_bytes(),
        "one alarm state change".into(),
    ));
    Ok((out, operations, peak))
}

/// The operations at every latency side by side: wall time at each, and calls,
/// connections and critical path at the highest, against the goals.
fn side_by_side(runs: &[(String, Vec<Operation>)]) -> String {
    let Some((slowest, ops)) = runs.last() else {
        return String::new();
    };
    let mut header = vec!["operation".to_string()];
    header.extend(runs.iter().map(|(label, _)| format!("wall ms at {label}")));
    header.extend([
        "calls".into(),
        "connections".into(),
        format!("critical path at {slowest}"),
        "goal (round trips)".into(),
    ]);
    let rows: Vec<Vec<String>> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let mut row = vec![op.name.to_string()];
            row.extend(
                runs.iter()
                    .map(|(_, ops)| ops.get(i).map_or("–".into(), |o| format!("{:.1}", o.ms))),
            );
            row.extend([
                op.calls.to_string(),
                op.connections.to_string(),
                op.critical_path.to_string(),
                match goal(op.name) {
                    Some(g) if op.critical_path <= g => format!("≤ {g}: met"),
                    Some(g) => format!("≤ {g}: OVER"),
                    None => String::new(),
                },
            ]);
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    format!(
        "## Side by side: each operation at every latency\n\nEach proxy holds every message half the round trip each way (moto and the TTL API behind counting HTTP proxies, PostgreSQL and the API server behind TCP proxies, TLS passing through), timed by a blocking sleep to about 0.2 ms (tokio's millisecond timer added about 1 ms a hop). A TCP handshake is not delayed (the proxies accept on loopback): on a real network each new connection adds one more round trip. Rotation rows sum their four steps.\n\n{}\n",
        markdown(&header, &rows)
    )
}

/// N platforms seeded side by side, each reconciled by its own processes (apply, no-op);
/// reports how per-platform time and calls change with N.
async fn fleet(bench: &Bench, tag: &str) -> Result<String, BoxError> {
    let schedule = event("schedule.json")?;
    let mut rows = Vec::new();
    for &n in &bench.args.fleet {
        eprintln!("   N = {n}: seeding");
        let mut platforms = Vec::with_capacity(n);
        for i in 0..n {
            platforms.push(
                bench
                    .stack
                    .seed_platform(&format!("f{n}-{i}-{tag}"), None, 0)
                    .await?,
            );
        }
        for function in ["enforce-cold-storage", "sync-cluster"] {
            eprintln!("   N = {n}: {function}");
            let started = Instant::now();
            let mut runs = Vec::with_capacity(n);
            for p in &platforms {
                runs.push(
                    bench
                        .run(function, p, vec![schedule.clone(), schedule.clone()])
                        .await?,
                );
            }
            let wall = started.elapsed();
            let failed = runs
                .iter()
                .filter(|r| r.report.results.iter().filter(|x| x.ok).count() < 2)
                .count();
            let calls = |i: usize| -> Vec<f64> {
                runs.iter()
                    .map(|r| r.usage.get(i).map_or(0, |u| u.calls.len()) as f64)
                    .collect()
            };
            let ms = |i: usize| -> Vec<f64> { runs.iter().map(|r| r.invocation_ms(i)).collect() };
            let first = |i: usize| {
                runs[0].usage.get(i).map_or("–".into(), |u| {
                    format!("{} ({}r/{}w)", u.calls.len(), u.reads(), u.writes())
                })
            };
            let (apply_lo, apply_hi) = range(&calls(0));
            let (noop_lo, noop_hi) = range(&calls(1));
            rows.push(vec![
                format!("`{function}`"),
                n.to_string(),
                format!("{:.1}", wall.as_secs_f64()),
                format!("{:.1}", median(&ms(0))),
                format!("{:.1}", median(&ms(1))),
                first(0),
                format!("{apply_lo} – {apply_hi}"),
                first(1),
                format!("{noop_lo} – {noop_hi}"),
                runs[0]
                    .usage
                    .get(1)
                    .map_or("–".into(), |u| u.critical_path.to_string()),
                format!("{}/{n}", n - failed),
            ]);
        }
    }
    Ok(format!(
        "## Fleet scale\n\nN platforms (each its own config/cold/state buckets, API key secret, fake SigNoz, namespaces and workloads) share one moto and one kube-apiserver; each is reconciled by its own process with two schedule events (apply, then no-op). Per-platform work must stay flat as N grows.\n\n{}\n",
        markdown(
            &[
                "function",
                "N",
                "total wall s (N processes)",
                "apply median ms",
                "no-op median ms",
                "calls, platform 0 apply",
                "calls per platform apply (min – max)",
                "calls, platform 0 no-op",
                "calls per platform no-op (min – max)",
                "critical path, platform 0 no-op",
                "both ok"
            ],
            &rows
        )
    ))
}

const FOOTNOTES: &str = "## Notes\n\n- Kubernetes is the stack's real kube-apiserver, reached through `KUBECONFIG` over TLS as each function's own identity (a client certificate in the group the shipped RBAC binds), so the cluster calls include a TLS handshake per process but no EKS `DescribeCluster` (production adds that one EKS read).\n- moto answers in-process Python on loopback: at 0 ms the wall times measure our code plus moto; the other latencies add the region's round trips in the proxies, so what grows with them is the critical path.\n- Init: the functions build the AWS SDK configuration and their SDK clients (Secrets Manager and S3; RDS is built on first use). The SDK's HTTPS client trusts the five Amazon Trust Services roots compiled into the binary (`shared/src/amazon-trust-services.pem`), so init reads no certificate file; smithy still builds a TLS configuration once per client at construction (`validate_base_client_config`). Region and credentials come from the environment, as on Lambda, without building the rest of the default chains (STS web identity, IMDS, profiles). perf on a symbolised build (`cargo build --profile profiling`) puts the rest of the gap in loading the larger binary (27–31 k relative relocations in a 12–16 MiB PIE against 2.2 k in the baseline) and in each SDK crate's first client (its endpoint partition table and runtime plugins). The `AWS_CA_BUNDLE` rows show the price of that setting when it names the system bundle: it is parsed once per client.
- The bench harness (runtime API, proxies) is a debug build; its per-request overhead adds equally to the baseline and the functions.
- AWS-LC is not in the dependency tree (every rustls user is ring-backed), so its jitter-entropy start-up cost does not apply and no AWS-LC variant was measured.\n";
