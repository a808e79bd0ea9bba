//! `signoz-control cost`: the cold tiers' monthly bill for a spec, table and SVG chart.

use std::path::Path;

use signoz_control::cold_storage::cost::{cost_chart_svg, cost_curve, cost_table};
use signoz_control::spec::PlatformSpec;

/// The table and its assumptions; writes the chart to `svg` when given.
pub fn cost(spec: &PlatformSpec, svg: Option<&Path>) -> Result<String, String> {
    let prices = spec
        .cold_storage
        .cost
        .as_ref()
        .ok_or("the spec has no cold_storage.cost section")?;
    let curve = cost_curve(&spec.cold_storage, &spec.retention, prices);
    if let Some(out) = svg {
        std::fs::write(out, cost_chart_svg(&curve))
            .map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let mut text = format!(
        "monthly S3 cost of the cold tiers (USD):\n{}\nassumptions:\n",
        cost_table(&curve)
    );
    for a in &curve.assumptions {
        text.push_str(&format!(" - {a}\n"));
    }
    Ok(text)
}
