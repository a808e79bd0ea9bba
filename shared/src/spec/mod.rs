//! The platform spec: model, strict loader and validation, and the names the SigNoz chart
//! derives from it.

pub mod chart;
mod load;
mod model;
mod validate;

pub use load::{
    LoadedSpec, SPEC_ENV, SpecError, SpecLocation, SpecRevision, last_loaded, load_spec, parse_spec,
};
pub use model::*;
pub use validate::{
    DELIVERY_KINDS, EXPORT_TIMEOUT_MS, FLUX_SOURCE_KINDS, KmsKeyKind, KmsKeyRef,
    MIN_DAYS_IN_STANDARD_IA, MIN_SAFETY_MARGIN_DAYS, MIN_STANDARD_IA_DAYS, OTLP_HTTP_PORT,
    PROPAGATORS, Problem, READABLE_TIERS, SAMPLERS, WORKLOAD_KINDS, longest_cold_days,
    parse_go_duration_secs, parse_kms_key, validate,
};

/// The example spec shipped in the repository (`infra/platform.yaml`).
pub const EXAMPLE_SPEC: &str = include_str!("../../../infra/platform.yaml");

#[cfg(test)]
mod tests;
