//! `signoz-control validate`: the spec checked as the functions load it, every problem
//! with its path, nothing contacted.

use std::path::Path;

use serde_json::json;
use signoz_control::spec::{SpecError, parse_spec};

use crate::output::Style;

/// How `validate` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The report and the exit code (0 valid, 1 invalid or unreadable).
pub fn validate(path: &Path, format: Format, style: &Style) -> (String, u8) {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("stdin: {e}"))
    } else if path.to_string_lossy().starts_with("s3://") {
        Err(format!(
            "{}: validate reads a local file and contacts nothing; copy it down first (aws s3 cp {} -)",
            path.display(),
            path.display()
        ))
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let result = text.map(|t| parse_spec(&t));
    match (format, result) {
        (Format::Json, Ok(Ok(_))) => (json!({ "valid": true, "problems": [] }).to_string(), 0),
        (Format::Json, Ok(Err(e))) => {
            let problems: Vec<_> = e
                .problems()
                .iter()
                .map(|p| json!({ "path": p.path, "message": p.message }))
                .collect();
            (
                json!({ "valid": false, "problems": problems }).to_string(),
                1,
            )
        }
        (Format::Json, Err(e)) => (
            json!({ "valid": false, "error": e, "problems": [] }).to_string(),
            1,
        ),
        (Format::Text, Ok(Ok(spec))) => (
            format!(
                "{} {} is a valid platform spec (platform {}, cluster {}, bucket {})",
                style.green("✓"),
                path.display(),
                spec.platform.name,
                spec.cluster.name,
                spec.cold_storage.bucket
            ),
            0,
        ),
        (Format::Text, Ok(Err(SpecError::Invalid(problems)))) => {
            let mut out = style.red(&format!(
                "{}: {} problem{}",
                path.display(),
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            ));
            for p in &problems {
                out.push_str(&format!("\n  {}: {}", style.bold(&p.path), p.message));
            }
            (out, 1)
        }
        (Format::Text, Ok(Err(e))) => (e.to_string(), 1),
        (Format::Text, Err(e)) => (e, 1),
    }
}
