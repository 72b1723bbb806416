//! The promotion gate: a candidate model replaces the model in service only if, on
//! people neither was trained on (the gate cohort), its realised rates at the
//! operating points are not worse beyond noise, and its realised false-accept rate is
//! what it claims.
//!
//! "Beyond noise" is a one-sided two-proportion z-test at z > 2.33 (1%) per rate and
//! operating point: both models are judged on the same attempts, so a difference that
//! size is rarely chance, and a candidate that is merely as good is promoted (newer
//! data, same accuracy). A higher false-accept rate counts against the candidate only
//! where it is also above the target beyond noise: the target is the promise, and a
//! model in service that accepts fewer impostors than it claims (at the price of more
//! false rejects) is not the bar.

use serde::{Deserialize, Serialize};

use crate::eval::Judgement;
use crate::eval::metrics::{OperatingPoint, PointStatus};

/// One-sided z above which a rate counts as worse (1%).
pub const WORSE_Z: f64 = 2.33;

/// Impostor attempts × target below which an operating point is not judged (as the
/// evaluation's `too_few_attempts`).
const MIN_EXPECTED_ACCEPTS: f64 = 10.0;

/// The gate's verdict on a candidate, kept in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// Whether the candidate may be promoted.
    pub passed: bool,
    /// Why it was refused, or what was judged when it passed.
    pub reasons: Vec<String>,
    /// The candidate on the gate cohort.
    pub candidate: Judgement,
    /// The model in service on the same people (`None`: none, or one that cannot read
    /// these windows).
    pub current: Option<Judgement>,
}

/// `k/n` of a rate measured on `n` attempts (the count is rounded back from the rate).
fn count(rate: f64, n: usize) -> f64 {
    (rate * n as f64).round()
}

/// z of "`a` is higher than `b`" for two proportions measured on `na` and `nb` trials.
fn z_higher(a: f64, na: usize, b: f64, nb: usize) -> f64 {
    if na == 0 || nb == 0 || !a.is_finite() || !b.is_finite() {
        return 0.0;
    }
    let (ka, kb) = (count(a, na), count(b, nb));
    let p = (ka + kb) / (na + nb) as f64;
    let se = (p * (1.0 - p) * (1.0 / na as f64 + 1.0 / nb as f64)).sqrt();
    if se == 0.0 {
        return 0.0;
    }
    (ka / na as f64 - kb / nb as f64) / se
}

fn measurable(p: &OperatingPoint) -> bool {
    p.impostor_attempts as f64 * p.target_far >= MIN_EXPECTED_ACCEPTS
}

/// Judges a candidate against the model in service (or, without one, against the
/// targets alone).
pub fn compare(candidate: Judgement, current: Option<Judgement>) -> GateReport {
    let mut refusals = Vec::new();
    let mut notes = Vec::new();
    let mut judged = 0;
    for c in &candidate.operating_points {
        let t = c.target_far;
        if !measurable(c) {
            notes.push(format!(
                "{t}: not judged ({} impostor attempts; {} needed)",
                c.impostor_attempts,
                (MIN_EXPECTED_ACCEPTS / t).ceil()
            ));
            continue;
        }
        let old = current
            .as_ref()
            .and_then(|j| j.operating_points.iter().find(|p| p.target_far == t));
        let old_supports = old.is_some_and(|o| o.status != PointStatus::CalibrationCannotSupport);
        if c.status == PointStatus::CalibrationCannotSupport {
            if old_supports {
                refusals.push(format!(
                    "{t}: the candidate cannot decide at this target (calibration floor {:.4}); the model in service can",
                    c.calibration_floor
                ));
            } else {
                notes.push(format!("{t}: neither model supports this target"));
            }
            continue;
        }
        judged += 1;
        // What it claims: its realised FAR must not be above 1.5× the target beyond
        // noise (the lower end of its 95% interval).
        if c.far_interval[0] > 1.5 * t {
            refusals.push(format!(
                "{t}: realised FAR {:.4} [{:.4}, {:.4}] is above 1.5× the target",
                c.far, c.far_interval[0], c.far_interval[1]
            ));
        }
        let Some(o) = old.filter(|_| old_supports) else {
            notes.push(format!(
                "{t}: FAR {:.4}, FRR {:.4} ({})",
                c.far,
                c.frr,
                if current.is_some() {
                    "the model in service cannot decide at this target"
                } else {
                    "no model in service to compare"
                }
            ));
            continue;
        };
        // A higher FAR is worse only where it breaks the promise: above the target
        // beyond noise (a model in service that is more cautious than its target is
        // not a bar a correctly calibrated candidate must clear).
        let z_far = z_higher(c.far, c.impostor_attempts, o.far, o.impostor_attempts);
        if z_far > WORSE_Z && c.far_interval[0] > t {
            refusals.push(format!(
                "{t}: FAR {:.4} vs {:.4} in service (z = {z_far:.1})",
                c.far, o.far
            ));
        }
        let z_frr = z_higher(c.frr, c.genuine_attempts, o.frr, o.genuine_attempts);
        if z_frr > WORSE_Z {
            refusals.push(format!(
                "{t}: FRR {:.4} vs {:.4} in service (z = {z_frr:.1})",
                c.frr, o.frr
            ));
        }
        notes.push(format!(
            "{t}: FAR {:.4} vs {:.4}, FRR {:.4} vs {:.4}",
            c.far, o.far, c.frr, o.frr
        ));
    }
    if judged == 0 {
        refusals.push(format!(
            "no operating point could be judged on {} gate people: the gate cohort is too small",
            candidate.people
        ));
    }
    if current.is_none() {
        notes.push(
            "no model in service that reads these windows: judged against the targets alone".into(),
        );
    }
    let passed = refusals.is_empty();
    GateReport {
        passed,
        reasons: if passed { notes } else { refusals },
        candidate,
        current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: f64, far: f64, frr: f64, n: usize, status: PointStatus) -> OperatingPoint {
        OperatingPoint {
            target_far: t,
            genuine_attempts: n / 4,
            impostor_attempts: n,
            far,
            far_interval: [far * 0.8, far * 1.2],
            frr,
            calibration_floor: 1e-4,
            status,
        }
    }

    fn judgement(points: Vec<OperatingPoint>) -> Judgement {
        Judgement {
            operating_points: points,
            eer: Some(0.05),
            people: 20,
        }
    }

    #[test]
    fn equal_passes_and_clearly_worse_is_refused() {
        use PointStatus::*;
        let cur = judgement(vec![
            point(0.01, 0.010, 0.10, 4000, Within),
            point(0.05, 0.050, 0.03, 4000, Within),
        ]);
        let same = compare(cur.clone(), Some(cur.clone()));
        assert!(same.passed, "{:?}", same.reasons);
        // Every judged target is named in the reasons, also one the model in service
        // cannot decide at.
        let floor_cur = judgement(vec![
            point(0.01, 0.0, 1.0, 4000, CalibrationCannotSupport),
            point(0.05, 0.050, 0.03, 4000, Within),
        ]);
        let r = compare(cur.clone(), Some(floor_cur));
        assert!(r.passed);
        assert!(
            r.reasons[0].starts_with("0.01: FAR 0.0100, FRR 0.1000 (the model in service cannot"),
            "{:?}",
            r.reasons
        );
        // Within noise: 0.012 vs 0.010 on 4,000 attempts is z ≈ 0.9.
        let close = judgement(vec![
            point(0.01, 0.012, 0.11, 4000, Within),
            point(0.05, 0.052, 0.035, 4000, Within),
        ]);
        assert!(compare(close, Some(cur.clone())).passed);
        // FRR 0.10 -> 0.30 on 1,000 genuine attempts: refused, and the reason says so.
        let worse = judgement(vec![
            point(0.01, 0.010, 0.30, 4000, Within),
            point(0.05, 0.050, 0.03, 4000, Within),
        ]);
        let r = compare(worse, Some(cur.clone()));
        assert!(!r.passed);
        assert!(
            r.reasons[0].contains("FRR 0.3000 vs 0.1000"),
            "{:?}",
            r.reasons
        );
        // More impostors accepted than by a cautious model in service, but within the
        // target: passes. Above the target and above the model in service: refused.
        let cautious = judgement(vec![point(0.05, 0.010, 0.03, 4000, Outside)]);
        let calibrated = judgement(vec![point(0.05, 0.045, 0.03, 4000, Within)]);
        assert!(compare(calibrated, Some(cautious.clone())).passed);
        let over = judgement(vec![point(0.05, 0.070, 0.03, 4000, Within)]);
        let r = compare(over, Some(cautious));
        assert!(!r.passed);
        assert!(
            r.reasons[0].contains("FAR 0.0700 vs 0.0100"),
            "{:?}",
            r.reasons
        );
        // A FAR far above what it claims, with no model in service: refused.
        let lax = judgement(vec![point(0.01, 0.05, 0.01, 4000, Outside)]);
        assert!(!compare(lax, None).passed);
        // Losing an operating point the model in service supports: refused.
        let floor = judgement(vec![
            point(0.01, 0.0, 1.0, 4000, CalibrationCannotSupport),
            point(0.05, 0.050, 0.03, 4000, Within),
        ]);
        assert!(!compare(floor, Some(cur)).passed);
        // Too few gate attempts for any target: refused, never promoted blind.
        let tiny = judgement(vec![point(0.05, 0.05, 0.0, 100, TooFewAttempts)]);
        let r = compare(tiny, None);
        assert!(!r.passed);
        assert!(r.reasons[0].contains("too small"), "{:?}", r.reasons);
    }

    #[test]
    fn z_of_known_proportions() {
        // 60/1000 vs 40/1000: pooled 0.05, se = sqrt(0.05·0.95·0.002) ≈ 0.009747.
        let z = z_higher(0.06, 1000, 0.04, 1000);
        assert!((z - 2.0520).abs() < 1e-3, "{z}");
        assert_eq!(z_higher(0.0, 0, 0.1, 10), 0.0);
        assert_eq!(z_higher(0.0, 10, 0.0, 10), 0.0);
    }
}
