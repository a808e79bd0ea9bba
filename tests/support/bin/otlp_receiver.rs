//! `otlp-receiver --port PORT --out FILE`: an OTLP/HTTP receiver on loopback
//! (`platform_tests::otlp`) for the local run; keeps FILE up to date with one line per
//! service of what it received: traces, spans by name, the counters summed.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use platform_tests::otlp::{OtlpReceiver, attributes};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|at| args.get(at + 1))
            .unwrap_or_else(|| {
                eprintln!("usage: otlp-receiver --port PORT --out FILE");
                std::process::exit(2)
            })
            .clone()
    };
    let port: u16 = value("--port").parse().expect("a port");
    let out = value("--out");
    let receiver = OtlpReceiver::start_on(port).await;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut services: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for span in receiver.spans() {
            let service = span
                .resource
                .get("service.name")
                .cloned()
                .unwrap_or_default();
            let entry = services
                .entry(service)
                .or_insert_with(|| serde_json::json!({ "traces": [], "spans": {} }));
            let trace = hex(&span.trace_id);
            let traces = entry["traces"].as_array_mut().unwrap();
            if !traces.iter().any(|t| t == &trace) {
                traces.push(trace.into());
            }
            let count = &mut entry["spans"][&span.name];
            *count = (count.as_u64().unwrap_or(0) + 1).into();
        }
        receiver.with(|r| {
            for request in &r.metrics {
                for rm in &request.resource_metrics {
                    let resource = rm
                        .resource
                        .as_ref()
                        .map(|r| attributes(&r.attributes))
                        .unwrap_or_default();
                    let service = resource.get("service.name").cloned().unwrap_or_default();
                    let entry = services
                        .entry(service)
                        .or_insert_with(|| serde_json::json!({ "traces": [], "spans": {} }));
                    for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                        if let Some(metric::Data::Sum(sum)) = &m.data {
                            let v: i64 = sum
                                .data_points
                                .iter()
                                .filter_map(|p| match p.value {
                                    Some(number_data_point::Value::AsInt(v)) => Some(v),
                                    _ => None,
                                })
                                .sum();
                            let total = &mut entry["counters"][&m.name];
                            *total = (total.as_i64().unwrap_or(0) + v).into();
                        }
                    }
                }
            }
        });
        let lines: String = services
            .into_iter()
            .map(|(service, mut v)| {
                v["traces"] = v["traces"].as_array().map_or(0, Vec::len).into();
                v["service"] = service.into();
                format!("{v}\n")
            })
            .collect();
        let _ = std::fs::write(&out, lines);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
