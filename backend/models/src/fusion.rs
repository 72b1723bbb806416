//! Fusion of per-factor evidence into one decision (`accept | step_up | reject`).
//!
//! Every factor reports one calibrated log-likelihood ratio (LLR) for the attempt: its
//! newest windows judged together, by a calibration fitted on whole attempts of that
//! many windows ([`crate::calibration`]), so the windows of one walk are not counted as
//! independent evidence. The LLR is discounted by age (half-life) and dropped beyond
//! `max_age_s`; the factors' LLRs add (they measure different behaviours).
//!
//! The decision is taken on the **estimated false-accept rate** at the observed total:
//! the share of impostor attempts that reach it, from the factors' impostor histograms
//! (for several factors, the tail of the convolution of their weighted histograms:
//! factors are independent for a zero-effort impostor). `accept` when that rate is at
//! most `target_far`. A rate below what the calibration data support (the product of the
//! factors' floors, [`crate::calibration::LlrHistogram::floor`]) is never claimed: the
//! estimate is raised to that floor, so a target below it cannot be met and the answer
//! says so. A factor without a histogram (a foreign-runtime factor) makes the estimate
//! the bound `e^-llr` that a calibrated LLR promises.

use serde::{Deserialize, Serialize};

use crate::calibration::{LLR_STEP, LlrHistogram};

/// What one factor says about the current attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactorEvidence {
    /// Factor name.
    pub factor: String,
    /// Calibrated LLR of the attempt (natural log).
    pub llr: f64,
    /// Windows scored.
    pub windows: usize,
    /// Age of the newest window, in seconds.
    pub age_s: f64,
    /// Configured weight of the factor (1 = full; less when two factors score the
    /// same behaviour and are not independent).
    #[serde(default = "one")]
    pub weight: f64,
    /// The factor's LLRs over impostor attempts of this length (`None`: the factor
    /// gives none).
    #[serde(default)]
    pub impostor: Option<LlrHistogram>,
}

fn one() -> f64 {
    1.0
}

/// Decision policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FusionPolicy {
    /// Target false-accept rate of `accept` (zero-effort impostors).
    pub target_far: f64,
    /// `reject` when the total LLR is at or below this.
    pub reject_llr: f64,
    /// Evidence loses half its weight every this many seconds.
    pub half_life_s: f64,
    /// Evidence older than this is ignored.
    pub max_age_s: f64,
    /// After this many consecutive rejects, everything is `reject` until a step-up
    /// succeeds (reset by the caller).
    pub max_consecutive_rejects: u32,
}

impl Default for FusionPolicy {
    fn default() -> Self {
        FusionPolicy {
            target_far: 0.01,
            reject_llr: -4.6,
            half_life_s: 600.0,
            max_age_s: 3600.0,
            max_consecutive_rejects: 5,
        }
    }
}

/// The answer: the protocol's decision type, the same from the fusion to the phone.
pub use tacit_shared::api::AuthDecision;

/// A fused result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fused {
    /// The decision.
    pub decision: AuthDecision,
    /// Total weighted LLR.
    pub llr: f64,
    /// Estimated false-accept rate at this total: the share of impostor attempts that
    /// reach it (1 with no evidence), never below `far_floor`.
    pub estimated_far: f64,
    /// The smallest rate the calibration data support for these factors (0: no claim
    /// from data; the estimate is the LLR bound).
    pub far_floor: f64,
    /// `1 − estimated_far`.
    pub confidence: f64,
    /// Weight given to each factor's evidence: configured weight × freshness (0 =
    /// ignored as too old or empty).
    pub weights: Vec<(String, f64)>,
    /// Why, in words (for logs and the API; no biometric data).
    pub reason: String,
}

/// A probability distribution on the grid `k·LLR_STEP`.
struct Grid {
    first: i64,
    p: Vec<f64>,
}

impl Grid {
    /// The histogram of `w·X` for `X` with histogram `h`.
    fn scaled(h: &LlrHistogram, w: f64) -> Grid {
        let n = h.attempts().max(1) as f64;
        let at = |i: usize| ((h.first as i64 + i as i64) as f64 * w).round() as i64;
        let first = at(0);
        let last = at(h.counts.len().saturating_sub(1));
        let mut p = vec![0.0; (last - first + 1).max(1) as usize];
        for (i, &c) in h.counts.iter().enumerate() {
            p[(at(i) - first) as usize] += c as f64 / n;
        }
        Grid { first, p }
    }

    fn convolve(&self, o: &Grid) -> Grid {
        let mut p = vec![0.0; self.p.len() + o.p.len() - 1];
        for (i, a) in self.p.iter().enumerate().filter(|(_, a)| **a > 0.0) {
            for (j, b) in o.p.iter().enumerate() {
                p[i + j] += a * b;
            }
        }
        Grid {
            first: self.first + o.first,
            p,
        }
    }

    /// `P(A + B ≥ t)` for `A` = self and `B` = `o` without building their convolution:
    /// `Σᵢ pA[i] · P(B ≥ t − aᵢ)` from `B`'s suffix sums, linear in the two lengths.
    fn tail_of_sum(&self, o: &Grid, t: f64) -> f64 {
        let mut suffix = vec![0.0; o.p.len() + 1];
        for k in (0..o.p.len()).rev() {
            suffix[k] = suffix[k + 1] + o.p[k];
        }
        // Smallest grid index whose centre is at least `t` (the `tail` rule).
        let need = ((t - 1e-9) / LLR_STEP).ceil();
        if !need.is_finite() {
            return if need < 0.0 { 1.0 } else { 0.0 };
        }
        let need = need.clamp(-1e12, 1e12) as i64;
        self.p
            .iter()
            .enumerate()
            .filter(|(_, a)| **a > 0.0)
            .map(|(i, a)| {
                let k = (need - self.first - i as i64 - o.first).clamp(0, o.p.len() as i64);
                a * suffix[k as usize]
            })
            .sum::<f64>()
            .clamp(0.0, 1.0)
    }

    fn tail(&self, t: f64) -> f64 {
        self.p
            .iter()
            .enumerate()
            .filter(|(i, _)| (self.first + *i as i64) as f64 * LLR_STEP >= t - 1e-9)
            .map(|(_, p)| p)
            .sum::<f64>()
            .clamp(0.0, 1.0)
    }
}

/// Most factors whose histograms are convolved; beyond, the estimate is the LLR bound
/// (the cost of a convolution grows with the product of the grids' lengths).
pub const MAX_CONVOLVED: usize = 4;

/// Largest LLR one factor may contribute, either sign: an LLR beyond it says nothing
/// more, and unbounded values from a remote factor would make the sum infinite or NaN.
pub const MAX_FACTOR_LLR: f64 = 100.0;

/// `(estimated FAR, floor)` of a total LLR `total` from the used factors' evidence and
/// weights.
///
/// With every factor's histogram: the tail of the convolution of the weighted
/// histograms, never below the product of their floors. With some factor lacking one
/// (a foreign-runtime factor): the bound `e^-total` that calibrated LLRs promise, never
/// below the product of the floors that are known.
fn estimate_far(used: &[(&FactorEvidence, f64)], total: f64) -> (f64, f64) {
    if used.is_empty() {
        return (1.0, 0.0);
    }
    let hists: Vec<(&LlrHistogram, f64)> = used
        .iter()
        .filter_map(|(e, w)| {
            e.impostor
                .as_ref()
                .filter(|h| h.check().is_ok())
                .map(|h| (h, *w))
        })
        .collect();
    let floor: f64 = if hists.is_empty() {
        0.0
    } else {
        hists.iter().map(|(h, _)| h.floor()).product()
    };
    if hists.len() < used.len() || hists.len() > MAX_CONVOLVED {
        return ((-total).exp().clamp(0.0, 1.0).max(floor), floor);
    }
    let mut grids: Vec<Grid> = hists.iter().map(|(h, w)| Grid::scaled(h, *w)).collect();
    let Some(last) = grids.pop() else {
        return (1.0, 0.0);
    };
    let tail = match grids.into_iter().reduce(|acc, g| acc.convolve(&g)) {
        None => last.tail(total),
        Some(rest) => rest.tail_of_sum(&last, total),
    };
    (tail.max(floor), floor)
}

impl FusionPolicy {
    /// Fuses the evidence; `consecutive_rejects` is the caller's count so far.
    pub fn fuse(&self, evidence: &[FactorEvidence], consecutive_rejects: u32) -> Fused {
        let mut total = 0.0;
        let mut weights = Vec::with_capacity(evidence.len());
        let mut used = Vec::new();
        for e in evidence {
            let fresh = e.age_s.is_finite() && e.age_s >= 0.0 && e.age_s <= self.max_age_s;
            let weight = if e.weight.is_finite() {
                e.weight.clamp(0.0, 1.0)
            } else {
                0.0
            };
            let w = if fresh && e.windows > 0 && e.llr.is_finite() {
                weight * 0.5f64.powf(e.age_s / self.half_life_s.max(1e-9))
            } else {
                0.0
            };
            if w > 0.0 {
                total += w * e.llr.clamp(-MAX_FACTOR_LLR, MAX_FACTOR_LLR);
                used.push((e, w));
            }
            weights.push((e.factor.clone(), w));
        }
        let (estimated_far, far_floor) = estimate_far(&used, total);
        let n = used.len();
        let (decision, reason) = if consecutive_rejects >= self.max_consecutive_rejects {
            (
                AuthDecision::Reject,
                format!(
                    "{consecutive_rejects} consecutive rejects: locked until a step-up succeeds"
                ),
            )
        } else if n == 0 {
            (
                AuthDecision::StepUp,
                "no fresh evidence from any factor".to_string(),
            )
        } else if estimated_far <= self.target_far {
            (
                AuthDecision::Accept,
                format!(
                    "LLR {total:.2} from {n} factor(s): estimated FAR {estimated_far:.2e} ≤ {:.2e}",
                    self.target_far
                ),
            )
        } else if total <= self.reject_llr {
            (
                AuthDecision::Reject,
                format!("LLR {total:.2} ≤ {:.2}", self.reject_llr),
            )
        } else if far_floor > self.target_far {
            (
                AuthDecision::StepUp,
                format!(
                    "LLR {total:.2} from {n} factor(s): the calibration supports rates down to \
                     {far_floor:.2e}, not the target {:.2e}",
                    self.target_far
                ),
            )
        } else {
            (
                AuthDecision::StepUp,
                format!(
                    "LLR {total:.2} from {n} factor(s): estimated FAR {estimated_far:.2e} > {:.2e}",
                    self.target_far
                ),
            )
        };
        Fused {
            decision,
            llr: total,
            estimated_far,
            far_floor,
            confidence: 1.0 - estimated_far,
            weights,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplitMix64;

    fn ev(f: &str, llr: f64, n: usize, age: f64) -> FactorEvidence {
        FactorEvidence {
            factor: f.into(),
            llr,
            windows: n,
            age_s: age,
            weight: 1.0,
            impostor: None,
        }
    }

    fn normal(rng: &mut SplitMix64) -> f64 {
        rng.normal()
    }

    #[test]
    fn without_histograms_the_llr_bound_decides() {
        let p = FusionPolicy::default();
        let a = p.fuse(
            &[ev("gait", 3.0, 10, 0.0), ev("keystroke-fixed", 2.0, 1, 0.0)],
            0,
        );
        assert_eq!(a.decision, AuthDecision::Accept); // e^-5 ≤ 0.01
        assert!((a.llr - 5.0).abs() < 1e-12);
        assert!((a.estimated_far - (-5f64).exp()).abs() < 1e-12);
        assert!((a.confidence - (1.0 - a.estimated_far)).abs() < 1e-12);
        assert_eq!(
            p.fuse(&[ev("gait", -5.0, 10, 0.0)], 0).decision,
            AuthDecision::Reject
        );
        assert_eq!(
            p.fuse(&[ev("gait", 2.0, 2, 0.0)], 0).decision,
            AuthDecision::StepUp
        );
        // A factor that is down or stale: fewer factors, not a failure.
        let d = p.fuse(
            &[
                ev("gait", 5.0, 10, 0.0),
                ev("keystroke-fixed", f64::NAN, 0, 0.0),
            ],
            0,
        );
        assert_eq!(d.decision, AuthDecision::Accept);
        assert_eq!(d.weights[1].1, 0.0);
        let none = p.fuse(&[ev("gait", 9.0, 10, 7200.0)], 0);
        assert_eq!(
            (none.decision, none.estimated_far),
            (AuthDecision::StepUp, 1.0)
        );
        // Half-life: 600 s old evidence counts half.
        assert!((p.fuse(&[ev("gait", 8.0, 4, 600.0)], 0).llr - 4.0).abs() < 1e-9);
        assert_eq!(
            p.fuse(&[ev("gait", 9.0, 10, 0.0)], 5).decision,
            AuthDecision::Reject
        );
        // A half-weight factor counts half; weights above 1 are capped.
        let mut half = ev("py", 8.0, 4, 0.0);
        half.weight = 0.5;
        assert!((p.fuse(&[half.clone()], 0).llr - 4.0).abs() < 1e-9);
        half.weight = 3.0;
        assert!((p.fuse(&[half], 0).llr - 8.0).abs() < 1e-9);
    }

    #[test]
    fn histograms_give_the_empirical_rate_of_one_and_of_two_factors() {
        let mut rng = SplitMix64::new(7);
        let a: Vec<f64> = (0..20_000).map(|_| normal(&mut rng) * 2.0 - 4.0).collect();
        let b: Vec<f64> = (0..20_000).map(|_| normal(&mut rng) * 1.5 - 3.0).collect();
        let (ha, hb) = (
            LlrHistogram::of(&a).expect("values"),
            LlrHistogram::of(&b).expect("values"),
        );
        let with = |f: &str, llr: f64, h: &LlrHistogram| FactorEvidence {
            impostor: Some(h.clone()),
            ..ev(f, llr, 4, 0.0)
        };
        let p = FusionPolicy::default();
        // One factor: the tail share of its impostors.
        let t = 0.5;
        let one = p.fuse(&[with("a", t, &ha)], 0);
        let want = a.iter().filter(|&&x| x >= t).count() as f64 / a.len() as f64;
        assert!(
            (one.estimated_far - want).abs() < 0.003,
            "{} vs {want}",
            one.estimated_far
        );
        // Two independent factors: the tail of the sum (a Monte Carlo of pairs as judge).
        let total = 1.0;
        let two = p.fuse(&[with("a", 0.4, &ha), with("b", 0.6, &hb)], 0);
        let mc = a
            .iter()
            .zip(b.iter().rev())
            .filter(|(x, y)| *x + *y >= total)
            .count() as f64
            / a.len() as f64;
        assert!((two.llr - total).abs() < 1e-12);
        assert!(
            (two.estimated_far - mc).abs() < 0.3 * mc + 0.001,
            "{} vs {mc}",
            two.estimated_far
        );
        assert_eq!(
            two.decision,
            if two.estimated_far <= 0.01 {
                AuthDecision::Accept
            } else {
                AuthDecision::StepUp
            }
        );
        assert!((two.far_floor - ha.floor() * hb.floor()).abs() < 1e-15);
        // Weighting a factor by ½ halves its impostor LLRs too.
        let mut half = with("a", 2.0, &ha);
        half.weight = 0.5;
        let h = p.fuse(&[half], 0);
        let want = a.iter().filter(|&&x| 0.5 * x >= 1.0).count() as f64 / a.len() as f64;
        assert!(
            (h.estimated_far - want).abs() < 0.003,
            "{} vs {want}",
            h.estimated_far
        );
    }

    #[test]
    fn three_factors_and_a_foreign_one() {
        let mut rng = SplitMix64::new(9);
        let draws = |rng: &mut SplitMix64, m: f64| -> Vec<f64> {
            (0..5_000).map(|_| normal(rng) + m).collect()
        };
        let (a, b, c) = (
            draws(&mut rng, -3.0),
            draws(&mut rng, -2.0),
            draws(&mut rng, -4.0),
        );
        let h = |v: &[f64]| LlrHistogram::of(v).expect("values");
        let with = |f: &str, llr: f64, v: &[f64]| FactorEvidence {
            impostor: Some(h(v)),
            ..ev(f, llr, 4, 0.0)
        };
        let p = FusionPolicy::default();
        let three = p.fuse(
            &[
                with("a", -2.0, &a),
                with("b", -2.15, &b),
                with("c", -2.0, &c),
            ],
            0,
        );
        // The sum is N(-9, 3): about 5% of it lies at or above -6.15.
        let mc = (0..5_000)
            .filter(|&i| a[i] + b[(i * 7) % 5_000] + c[(i * 13) % 5_000] >= -6.15)
            .count() as f64
            / 5_000.0;
        assert!(
            mc > 0.03 && (three.estimated_far - mc).abs() < 0.3 * mc,
            "{} vs {mc}",
            three.estimated_far
        );
        // A factor without a histogram: the LLR bound, never below the known floors.
        let mixed = p.fuse(&[with("a", 3.0, &a), ev("py", 3.0, 4, 0.0)], 0);
        assert!((mixed.estimated_far - (-6f64).exp().max(h(&a).floor())).abs() < 1e-15);
        assert!((mixed.far_floor - h(&a).floor()).abs() < 1e-15);
        // An absurd LLR from a remote factor is bounded: no infinity, no NaN.
        let wild = p.fuse(&[ev("x", f64::MAX, 1, 0.0), ev("y", f64::MAX, 1, 0.0)], 0);
        assert!(wild.llr.is_finite() && wild.estimated_far.is_finite());
        assert!((wild.llr - 2.0 * MAX_FACTOR_LLR).abs() < 1e-9);
    }

    #[test]
    fn a_rate_below_the_data_is_never_claimed() {
        // 200 impostor attempts support rates down to 10/200 = 0.05.
        let few: Vec<f64> = (0..200).map(|i| -10.0 + i as f64 * 0.01).collect();
        let h = LlrHistogram::of(&few).expect("values");
        let e = FactorEvidence {
            impostor: Some(h),
            ..ev("gait", 50.0, 4, 0.0)
        };
        let strict = FusionPolicy {
            target_far: 0.01,
            ..FusionPolicy::default()
        };
        let f = strict.fuse(std::slice::from_ref(&e), 0);
        assert_eq!(f.decision, AuthDecision::StepUp);
        assert!((f.estimated_far - 0.05).abs() < 1e-12 && (f.far_floor - 0.05).abs() < 1e-12);
        assert!(f.reason.contains("supports"), "{}", f.reason);
        let loose = FusionPolicy {
            target_far: 0.05,
            ..FusionPolicy::default()
        };
        assert_eq!(loose.fuse(&[e], 0).decision, AuthDecision::Accept);
    }
}
