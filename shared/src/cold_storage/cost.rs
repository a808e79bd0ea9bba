//! The monthly S3 bill of the cold tiers as S3 computes it: pure arithmetic, every
//! assumption stated in the output, money in cents.
//!
//! ClickHouse deletes each signal's parts when their total retention is reached, so an
//! object lives `total_days - hot_days` in S3 whatever the bucket's expiration (which is
//! only the floor that keeps referenced objects). Each tier holds what the signals put
//! there; transitions are billed per 1,000 objects, Standard-IA and Glacier IR bill a
//! minimum of 30 and 90 days, retrievals per GB.

use std::fmt::Write as _;

use serde::Serialize;

use crate::spec::{ColdStorage, CostModel, Retention};

/// Days in the month S3 prices are quoted per (GB-month).
const DAYS_PER_MONTH: u32 = 30;
/// Objects smaller than this never transition to Standard-IA or Glacier IR.
const SMALL_OBJECT_KB: f64 = 128.0;
/// KB in a GB as S3 bills them (binary units).
const KB_PER_GB: f64 = 1024.0 * 1024.0;
/// Minimum storage durations S3 bills (days).
const MIN_DAYS_STANDARD_IA: u32 = 30;
const MIN_DAYS_GLACIER_IR: u32 = 90;

/// Stored GB (month average) and the month's storage cost of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierCost {
    pub storage_class: &'static str,
    pub gb: f64,
    pub usd: f64,
}

/// The bill of one 30-day month, every line in cents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthCost {
    /// 1-based month since the bucket started filling.
    pub month: u32,
    pub tiers: Vec<TierCost>,
    /// Lifecycle transition requests.
    pub transitions_usd: f64,
    /// Reads of the queried share from Standard-IA and Glacier IR.
    pub retrieval_usd: f64,
    /// Minimum-storage-duration charges of objects deleted early.
    pub early_deletion_usd: f64,
    pub total_usd: f64,
}

/// The bill month by month while the bucket fills, until it reaches its steady state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostCurve {
    pub months: Vec<MonthCost>,
    /// The first month whose bill every later month repeats.
    pub steady_state_month: u32,
    pub steady_state: MonthCost,
    /// What the figures assume, in words.
    pub assumptions: Vec<String>,
}

/// Rounds dollars to cents.
pub fn cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

/// One signal as the bill sees it.
struct SignalFlow {
    /// GB/day in objects that transition, and in objects that never do.
    large_gb: f64,
    small_gb: f64,
    /// Days an object lives in S3.
    cold_days: u32,
}

/// Each transitioning class: `(class, from_day, to_day, price)` by object age.
fn tiers(c: &ColdStorage, p: &CostModel) -> Vec<(&'static str, u32, u32, f64)> {
    let ia = c.transitions.get("STANDARD_IA").copied();
    let gir = c.transitions.get("GLACIER_IR").copied();
    let end = u32::MAX;
    let mut out = vec![(
        "STANDARD",
        0,
        ia.or(gir).unwrap_or(end),
        p.standard_gb_month,
    )];
    if let Some(ia) = ia {
        out.push((
            "STANDARD_IA",
            ia,
            gir.unwrap_or(end),
            p.standard_ia_gb_month,
        ));
    }
    if let Some(gir) = gir {
        out.push(("GLACIER_IR", gir, end, p.glacier_ir_gb_month));
    }
    out
}

fn small_share(p: &CostModel) -> f64 {
    p.small_object_share
        .unwrap_or(if p.average_object_kb < SMALL_OBJECT_KB {
            1.0
        } else {
            0.0
        })
}

fn flows(r: &Retention, p: &CostModel) -> Vec<SignalFlow> {
    let small = small_share(p);
    let d = &p.daily_ingest_gb;
    [
        (d.traces, r.traces),
        (d.logs, r.logs),
        (d.metrics, r.metrics),
    ]
    .into_iter()
    .map(|(gb, s)| SignalFlow {
        large_gb: gb * (1.0 - small),
        small_gb: gb * small,
        cold_days: s.cold_days(),
    })
    .collect()
}

/// Days in `[from, to)` that fall in `[lo, hi)`.
fn overlap(from: u32, to: u32, lo: u32, hi: u32) -> u32 {
    to.min(hi).saturating_sub(from.max(lo))
}

/// The bill of month `m` (bucket ages `[30(m-1), 30m)` days).
fn month_cost(m: u32, c: &ColdStorage, p: &CostModel, flows: &[SignalFlow]) -> MonthCost {
    let (start, end) = ((m - 1) * DAYS_PER_MONTH, m * DAYS_PER_MONTH);
    let objects_per_gb = KB_PER_GB / p.average_object_kb.max(SMALL_OBJECT_KB);
    let tiers = tiers(c, p);
    let mut gb_days = vec![0.0; tiers.len()];
    let (mut transitions, mut retrieval, mut early) = (0.0, 0.0, 0.0);
    for day in start..end {
        for f in flows {
            // Objects of every age below `min(day, cold_days)` exist on this day.
            let alive = day.min(f.cold_days);
            gb_days[0] += f.small_gb * f64::from(alive);
            for (i, (class, from, to, _)) in tiers.iter().enumerate() {
                let in_tier = overlap(*from, *to, 0, alive);
                gb_days[i] += f.large_gb * f64::from(in_tier);
                if *class == "STANDARD" {
                    continue;
                }
                // Today's objects of age `from` enter this class, if they live that long.
                if *from < f.cold_days && day >= *from {
                    let price = if *class == "STANDARD_IA" {
                        p.standard_ia_transition_per_1000
                    } else {
                        p.glacier_ir_transition_per_1000
                    };
                    transitions += f.large_gb * objects_per_gb * price / 1000.0;
                }
                // Deleted today by ClickHouse while in this class before its minimum.
                let minimum = if *class == "STANDARD_IA" {
                    MIN_DAYS_STANDARD_IA
                } else {
                    MIN_DAYS_GLACIER_IR
                };
                let (_, _, _, price) = tiers[i];
                // The class an object is in when deleted: the last one it entered.
                if day >= f.cold_days && *from < f.cold_days && f.cold_days <= *to {
                    let short = minimum.saturating_sub(f.cold_days - from);
                    early += f.large_gb * f64::from(short) * price / f64::from(DAYS_PER_MONTH);
                }
            }
        }
    }
    let days = f64::from(DAYS_PER_MONTH);
    let tiers: Vec<TierCost> = tiers
        .iter()
        .zip(&gb_days)
        .map(|((class, _, _, price), gb_days)| {
            let gb = gb_days / days;
            if *class == "STANDARD_IA" {
                retrieval += gb * p.queried_share * p.standard_ia_retrieval_gb;
            } else if *class == "GLACIER_IR" {
                retrieval += gb * p.queried_share * p.glacier_ir_retrieval_gb;
            }
            TierCost {
                storage_class: class,
                gb: cents(gb),
                usd: cents(gb * price),
            }
        })
        .collect();
    let (transitions, retrieval, early) = (cents(transitions), cents(retrieval), cents(early));
    let total = tiers.iter().map(|t| t.usd).sum::<f64>() + transitions + retrieval + early;
    MonthCost {
        month: m,
        tiers,
        transitions_usd: transitions,
        retrieval_usd: retrieval,
        early_deletion_usd: early,
        total_usd: cents(total),
    }
}

fn assumptions(c: &ColdStorage, r: &Retention, p: &CostModel) -> Vec<String> {
    let fl = flows(r, p);
    let cold: Vec<String> = ["traces", "logs", "metrics"]
        .iter()
        .zip(&fl)
        .map(|(s, f)| format!("{s} {} days", f.cold_days))
        .collect();
    vec![
        format!(
            "ClickHouse deletes each signal's parts at its total retention, so objects live in S3 for total_days - hot_days ({}), not until the expiration ({} days, the safety floor); parts kept longer by an earlier, longer TTL are not counted",
            cold.join(", "),
            c.expiration_days
        ),
        format!(
            "{:.0}% of the bytes are in objects under 128 KB: they stay in STANDARD for their whole life (S3 moves no object under 128 KB to Standard-IA or Glacier IR, whatever TransitionDefaultMinimumObjectSize says), so the 128 KB minimum billable size of those classes never applies",
            small_share(p) * 100.0
        ),
        format!(
            "the other objects average {} KB; each transition into Standard-IA costs ${} and into Glacier IR ${} per 1,000 objects",
            p.average_object_kb.max(SMALL_OBJECT_KB),
            p.standard_ia_transition_per_1000,
            p.glacier_ir_transition_per_1000
        ),
        format!(
            "an object deleted within {MIN_DAYS_STANDARD_IA} days of entering Standard-IA or {MIN_DAYS_GLACIER_IR} days of entering Glacier IR is billed the rest of that minimum"
        ),
        format!(
            "{:.0}% of the Standard-IA and Glacier IR data is read back each month, at ${}/GB and ${}/GB",
            p.queried_share * 100.0,
            p.standard_ia_retrieval_gb,
            p.glacier_ir_retrieval_gb
        ),
        format!(
            "storage at ${}, ${} and ${} per GB-month (STANDARD, STANDARD_IA, GLACIER_IR), averaged over 30-day months; GET/PUT requests of ClickHouse itself, KMS and data transfer are not included",
            p.standard_gb_month, p.standard_ia_gb_month, p.glacier_ir_gb_month
        ),
        "ingest is constant from day 0; money is rounded to cents per line".into(),
    ]
}

/// The monthly bill for months 1..=steady state, and the steady state itself.
pub fn cost_curve(c: &ColdStorage, r: &Retention, p: &CostModel) -> CostCurve {
    let fl = flows(r, p);
    let longest = fl.iter().map(|f| f.cold_days).max().unwrap_or(0);
    // Once the oldest objects of every signal are being deleted, each month repeats.
    let steady = longest / DAYS_PER_MONTH + 2;
    let months: Vec<MonthCost> = (1..=steady).map(|m| month_cost(m, c, p, &fl)).collect();
    CostCurve {
        steady_state_month: steady,
        steady_state: months.last().expect("at least one month").clone(),
        months,
        assumptions: assumptions(c, r, p),
    }
}

const CLASSES: [&str; 3] = ["STANDARD", "STANDARD_IA", "GLACIER_IR"];

fn tier_usd(m: &MonthCost, class: &str) -> f64 {
    m.tiers
        .iter()
        .find(|t| t.storage_class == class)
        .map_or(0.0, |t| t.usd)
}

fn fees(m: &MonthCost) -> f64 {
    m.transitions_usd + m.retrieval_usd + m.early_deletion_usd
}

/// A short text table for the log: the first months, a few on the way, the steady state.
pub fn cost_table(curve: &CostCurve) -> String {
    let mut out = format!(
        "{:<22}{:>11}{:>13}{:>12}{:>10}{:>11}{:>14}{:>11}\n",
        "month",
        "STANDARD",
        "STANDARD_IA",
        "GLACIER_IR",
        "requests",
        "retrieval",
        "min-duration",
        "total"
    );
    let steady = curve.steady_state_month;
    for m in &curve.months {
        if !(m.month <= 3 || m.month % 6 == 0 || m.month == steady) {
            continue;
        }
        let label = if m.month == steady {
            format!("{} (steady state)", m.month)
        } else {
            m.month.to_string()
        };
        let _ = writeln!(
            out,
            "{label:<22}{:>11}{:>13}{:>12}{:>10}{:>11}{:>14}{:>11}",
            format!("${:.2}", tier_usd(m, "STANDARD")),
            format!("${:.2}", tier_usd(m, "STANDARD_IA")),
            format!("${:.2}", tier_usd(m, "GLACIER_IR")),
            format!("${:.2}", m.transitions_usd),
            format!("${:.2}", m.retrieval_usd),
            format!("${:.2}", m.early_deletion_usd),
            format!("${:.2}", m.total_usd),
        );
    }
    out
}

/// An SVG chart of the monthly bill per class (stacked bars), the steady state marked.
pub fn cost_chart_svg(curve: &CostCurve) -> String {
    let (width, height, left, bottom, top) = (840.0, 380.0, 70.0, 50.0, 56.0);
    let plot_h = height - bottom - top;
    let n = curve.months.len().max(1) as f64;
    let bar_w = (width - left - 230.0) / n;
    let highest = curve
        .months
        .iter()
        .map(|m| m.total_usd)
        .fold(0.0_f64, f64::max)
        .max(0.01);
    // Round tick steps (1, 2, 2.5 or 5 times a power of ten), four or five of them.
    let rough = highest / 4.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * power);
    let ticks = (highest / step).ceil().max(1.0) as u32;
    let max = step * f64::from(ticks);
    let scale = plot_h / max;
    let colours = ["#4e79a7", "#f28e2b", "#59a14f", "#bab0ac"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n<title>Monthly S3 cost of the cold tiers</title>\n<text x=\"{left}\" y=\"20\" font-size=\"14\">Monthly S3 cost per storage class (USD)</text>\n"
    );
    let base = height - bottom;
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#333\"/>",
        left + bar_w * n
    );
    for tick in 0..=ticks {
        let v = step * f64::from(tick);
        let y = base - v * scale;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">${v:.2}</text><line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>",
            left - 6.0,
            y + 4.0,
            left + bar_w * n
        );
    }
    for (i, m) in curve.months.iter().enumerate() {
        let x = left + bar_w * i as f64;
        let mut y = base;
        let parts = CLASSES
            .iter()
            .map(|c| tier_usd(m, c))
            .chain([fees(m)])
            .zip(colours);
        for (usd, colour) in parts {
            let h = usd * scale;
            y -= h;
            let _ = writeln!(
                svg,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{colour}\"/>",
                x + 1.0,
                bar_w - 2.0
            );
        }
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x + bar_w / 2.0,
            base + 14.0,
            m.month
        );
    }
    let steady_x = left + bar_w * (f64::from(curve.steady_state_month) - 1.0);
    let _ = writeln!(
        svg,
        "<line x1=\"{steady_x:.1}\" y1=\"{}\" x2=\"{steady_x:.1}\" y2=\"{base}\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>\n<text x=\"{:.1}\" y=\"{}\" fill=\"#c00\" text-anchor=\"end\">steady state from month {}: ${:.2}/month</text>",
        top - 14.0,
        steady_x + bar_w,
        top - 18.0,
        curve.steady_state_month,
        curve.steady_state.total_usd
    );
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">month</text>",
        left + bar_w * n / 2.0,
        base + 32.0
    );
    let legend_x = left + bar_w * n + 16.0;
    for (i, (label, colour)) in CLASSES
        .iter()
        .copied()
        .chain(["requests, retrievals, minimums"])
        .zip(colours)
        .enumerate()
    {
        let y = top + 20.0 * i as f64;
        let _ = writeln!(
            svg,
            "<rect x=\"{legend_x:.1}\" y=\"{y:.1}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\">{label}</text>",
            legend_x + 14.0,
            y + 9.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
