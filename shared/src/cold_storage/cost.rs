//! The monthly cost of the tiers for a daily ingest volume: pure arithmetic.

use serde::Serialize;

use crate::spec::{ColdStorage, CostModel};

/// Days in the month S3 prices are quoted per (GB-month).
const DAYS_PER_MONTH: u32 = 30;

/// Stored GB and monthly cost of one tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierCost {
    pub storage_class: &'static str,
    pub gb: f64,
    pub usd_per_month: f64,
}

/// The bill of one month: every tier and the total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthCost {
    /// 1-based month since the bucket started filling; `None` for the steady state.
    pub month: Option<u32>,
    pub tiers: Vec<TierCost>,
    pub total_usd: f64,
}

/// The curve while the bucket fills, then the steady state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostCurve {
    pub daily_ingest_gb: f64,
    pub months: Vec<MonthCost>,
    pub steady_state: MonthCost,
}

/// Each tier's age window `[from, to)` in days and its price.
fn tiers(c: &ColdStorage, prices: &CostModel) -> Vec<(&'static str, u32, u32, f64)> {
    let ia = c.transitions.get("STANDARD_IA").copied();
    let gir = c.transitions.get("GLACIER_IR").copied();
    let exp = c.expiration_days;
    let end_of_standard = ia.or(gir).unwrap_or(exp);
    let end_of_ia = gir.unwrap_or(exp);
    let mut out = vec![("STANDARD", 0, end_of_standard, prices.standard_gb_month)];
    if let Some(ia) = ia {
        out.push(("STANDARD_IA", ia, end_of_ia, prices.standard_ia_gb_month));
    }
    if let Some(gir) = gir {
        out.push(("GLACIER_IR", gir, exp, prices.glacier_ir_gb_month));
    }
    out
}

/// The cost at bucket age `age_days` (objects of ages `[0, age_days)` exist).
fn month_cost(month: Option<u32>, age_days: u32, c: &ColdStorage, p: &CostModel) -> MonthCost {
    let tiers: Vec<TierCost> = tiers(c, p)
        .into_iter()
        .map(|(class, from, to, price)| {
            let days = to.min(age_days).saturating_sub(from);
            let gb = p.daily_ingest_gb * f64::from(days);
            TierCost {
                storage_class: class,
                gb,
                usd_per_month: gb * price,
            }
        })
        .collect();
    MonthCost {
        month,
        total_usd: tiers.iter().map(|t| t.usd_per_month).sum(),
        tiers,
    }
}

/// The monthly cost per tier for month 1 until the first month at steady state, and the
/// steady state itself. Ignores S3's minimum storage durations and request/retrieval fees.
pub fn cost_curve(c: &ColdStorage, prices: &CostModel) -> CostCurve {
    let months_to_fill = c.expiration_days.div_ceil(DAYS_PER_MONTH);
    CostCurve {
        daily_ingest_gb: prices.daily_ingest_gb,
        months: (1..=months_to_fill)
            .map(|m| month_cost(Some(m), m * DAYS_PER_MONTH, c, prices))
            .collect(),
        steady_state: month_cost(None, c.expiration_days, c, prices),
    }
}
