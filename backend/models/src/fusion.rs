//! Fusion of per-factor evidence into one decision (`accept | step_up | reject`).
//!
//! Every factor reports a calibrated log-likelihood ratio (LLR) per window. Windows of
//! one walk or one typing session are not independent, so a factor's evidence is its
//! mean window LLR times `min(windows, max_windows)`; it is then discounted by age
//! (half-life) and dropped beyond `max_age_s`. Factors add (they are independent
//! measurements of different behaviours). With calibrated LLRs, an impostor reaches a
//! total LLR `t` with probability at most `e^-t`, so the accept threshold for a target
//! false-accept rate `far` is `ln(1/far)` — conservative and needing no further data.

use serde::{Deserialize, Serialize};

/// What one factor says about the current user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactorEvidence {
    /// Factor name.
    pub factor: String,
    /// Mean calibrated LLR over the windows scored (natural log).
    pub mean_llr: f64,
    /// Windows scored.
    pub windows: usize,
    /// Age of the newest window, in seconds.
    pub age_s: f64,
    /// Configured weight of the factor (1 = full; less when two factors score the
    /// same behaviour and are not independent).
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

/// Decision policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FusionPolicy {
    /// Target false-accept rate of `accept` (sets the accept threshold `ln(1/far)`).
    pub target_far: f64,
    /// `reject` when the total LLR is at or below this.
    pub reject_llr: f64,
    /// At most this many windows count per factor.
    pub max_windows: usize,
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
            max_windows: 4,
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
    /// Probability of "same person" at even prior odds, `1 / (1 + e^-llr)`.
    pub confidence: f64,
    /// Weight given to each factor's evidence: configured weight × freshness (0 =
    /// ignored as too old or empty).
    pub weights: Vec<(String, f64)>,
    /// Why, in words (for logs and the API; no biometric data).
    pub reason: String,
}

impl FusionPolicy {
    /// The LLR threshold of `accept`.
    pub fn accept_llr(&self) -> f64 {
        (1.0 / self.target_far.clamp(1e-9, 0.5)).ln()
    }

    /// Fuses the evidence; `consecutive_rejects` is the caller's count so far.
    pub fn fuse(&self, evidence: &[FactorEvidence], consecutive_rejects: u32) -> Fused {
        let mut total = 0.0;
        let mut weights = Vec::with_capacity(evidence.len());
        let mut used = 0;
        for e in evidence {
            let fresh = e.age_s.is_finite() && e.age_s >= 0.0 && e.age_s <= self.max_age_s;
            let weight = if e.weight.is_finite() {
                e.weight.clamp(0.0, 1.0)
            } else {
                0.0
            };
            let w = if fresh && e.windows > 0 && e.mean_llr.is_finite() {
                weight * 0.5f64.powf(e.age_s / self.half_life_s.max(1e-9))
            } else {
                0.0
            };
            if w > 0.0 {
                used += 1;
                total += w * e.mean_llr * e.windows.min(self.max_windows.max(1)) as f64;
            }
            weights.push((e.factor.clone(), w));
        }
        let confidence = 1.0 / (1.0 + (-total).exp());
        let (decision, reason) = if consecutive_rejects >= self.max_consecutive_rejects {
            (
                AuthDecision::Reject,
                format!(
                    "{consecutive_rejects} consecutive rejects: locked until a step-up succeeds"
                ),
            )
        } else if used == 0 {
            (
                AuthDecision::StepUp,
                "no fresh evidence from any factor".to_string(),
            )
        } else if total >= self.accept_llr() {
            (
                AuthDecision::Accept,
                format!(
                    "LLR {total:.2} ≥ {:.2} from {used} factor(s)",
                    self.accept_llr()
                ),
            )
        } else if total <= self.reject_llr {
            (
                AuthDecision::Reject,
                format!("LLR {total:.2} ≤ {:.2}", self.reject_llr),
            )
        } else {
            (
                AuthDecision::StepUp,
                format!("LLR {total:.2} between the thresholds"),
            )
        };
        Fused {
            decision,
            llr: total,
            confidence,
            weights,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(f: &str, llr: f64, n: usize, age: f64) -> FactorEvidence {
        FactorEvidence {
            factor: f.into(),
            mean_llr: llr,
            windows: n,
            age_s: age,
            weight: 1.0,
        }
    }

    #[test]
    fn decisions_follow_the_evidence() {
        let p = FusionPolicy::default();
        assert!((p.accept_llr() - 100f64.ln()).abs() < 1e-12);
        let a = p.fuse(
            &[ev("gait", 1.5, 10, 0.0), ev("keystroke-fixed", 0.5, 1, 0.0)],
            0,
        );
        assert_eq!(a.decision, AuthDecision::Accept); // 1.5·4 + 0.5 = 6.5 ≥ 4.6
        assert!((a.llr - 6.5).abs() < 1e-12 && a.confidence > 0.99);
        let r = p.fuse(&[ev("gait", -2.0, 10, 0.0)], 0);
        assert_eq!(r.decision, AuthDecision::Reject);
        let s = p.fuse(&[ev("gait", 0.5, 2, 0.0)], 0);
        assert_eq!(s.decision, AuthDecision::StepUp);
        // A factor that is down or stale: fewer factors, not a failure.
        let d = p.fuse(
            &[
                ev("gait", 1.5, 10, 0.0),
                ev("keystroke-fixed", f64::NAN, 0, 0.0),
            ],
            0,
        );
        assert_eq!(d.decision, AuthDecision::Accept);
        assert_eq!(d.weights[1].1, 0.0);
        let none = p.fuse(&[ev("gait", 3.0, 10, 7200.0)], 0);
        assert_eq!(none.decision, AuthDecision::StepUp);
        // Half-life: 600 s old evidence counts half.
        let h = p.fuse(&[ev("gait", 2.0, 4, 600.0)], 0);
        assert!((h.llr - 4.0).abs() < 1e-9);
        assert_eq!(
            p.fuse(&[ev("gait", 3.0, 10, 0.0)], 5).decision,
            AuthDecision::Reject
        );
        // A half-weight factor counts half; weights above 1 are capped.
        let mut half = ev("py", 2.0, 4, 0.0);
        half.weight = 0.5;
        assert!((p.fuse(&[half.clone()], 0).llr - 4.0).abs() < 1e-9);
        half.weight = 3.0;
        assert!((p.fuse(&[half], 0).llr - 8.0).abs() < 1e-9);
    }
}
