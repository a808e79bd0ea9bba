//! What the control plane's own telemetry costs: each function's init with and without
//! the pipeline (rows of the init table), and per invocation the answer (span recording)
//! and the whole cycle to the next `/next` (the export to a live collector after the
//! answer), as deployed and with `SIGNOZ_CONTROL_TELEMETRY=off`, rounds interleaved.

use signoz_control::telemetry::TELEMETRY_ENV;

use crate::platform::Platform;
use crate::table::{markdown, median};
use crate::{Bench, BoxError, InitEntry, event};

/// Invocations per process (the first one, which builds the clients and the exporter,
/// is left out of the medians).
const INVOCATIONS: usize = 8;
const ROUNDS: usize = 3;

/// The init table's rows of each function with the pipeline switched off.
pub fn init_entries(functions: &[&'static str]) -> Vec<InitEntry> {
    functions
        .iter()
        .map(|n| {
            (
                format!("`{n}`, telemetry off (`{TELEMETRY_ENV}=off`)"),
                *n,
                vec![(TELEMETRY_ENV.to_string(), "off".to_string())],
            )
        })
        .collect()
}

/// The per-invocation section: storage and cluster no-ops, on and off.
pub async fn per_invocation(bench: &Bench, p: &Platform) -> Result<String, BoxError> {
    let off = vec![(TELEMETRY_ENV.to_string(), "off".to_string())];
    let mut rows = Vec::new();
    for function in ["enforce-cold-storage", "sync-cluster"] {
        // Converge first, so every measured invocation is the same no-op.
        bench
            .run(function, p, vec![event("schedule.json")?])
            .await?;
        let mut samples: [(Vec<f64>, Vec<f64>); 2] = Default::default();
        for _ in 0..ROUNDS {
            for (i, extra) in [Vec::new(), off.clone()].iter().enumerate() {
                let events = (0..INVOCATIONS)
                    .map(|_| event("schedule.json"))
                    .collect::<Result<Vec<_>, _>>()?;
                let run = bench.run_with_env(function, p, events, extra).await?;
                for result in run.report.results.iter().skip(1).filter(|r| r.ok) {
                    samples[i].0.push(result.duration.as_secs_f64() * 1e3);
                    if let Some(cycle) = result.cycle {
                        samples[i].1.push(cycle.as_secs_f64() * 1e3);
                    }
                }
            }
        }
        let [(on_answer, on_cycle), (off_answer, off_cycle)] = &samples;
        let (a_on, a_off) = (median(on_answer), median(off_answer));
        let (c_on, c_off) = (median(on_cycle), median(off_cycle));
        rows.push(vec![
            format!("`{function}` no-op"),
            format!("{a_on:.2}"),
            format!("{a_off:.2}"),
            format!("{c_on:.2}"),
            format!("{c_off:.2}"),
            format!(
                "{:+.2} ms ({:+.0}%)",
                c_on - c_off,
                (c_on / c_off - 1.0) * 100.0
            ),
            on_answer.len().to_string(),
        ]);
    }
    Ok(format!(
        "## Telemetry per invocation\n\nEach platform's spec sends the functions' traces and counters to an OTLP/HTTP receiver on loopback (`tests/support/otlp.rs`), as a deployment sends them to its SigNoz collector. Answer: handing the event out to the answer (spans recorded in memory); cycle: to the function's next `/next`, the export after the answer included (where Lambda freezes the process). {ROUNDS} interleaved rounds of {INVOCATIONS} invocations per process, the first of each process left out. Init with the pipeline off is in the init table.\n\n{}\n",
        markdown(
            &[
                "invocation",
                "answer ms, on",
                "answer ms, off",
                "cycle ms, on",
                "cycle ms, off",
                "telemetry per invocation",
                "samples",
            ],
            &rows
        )
    ))
}
