//! L2-regularised, class-balanced logistic regression fitted by Newton's method (IRLS).
//! Used per user at enrolment: the user's vectors against a background cohort of other
//! people, which is what lets a template say what is *distinctive* about a person
//! rather than only what is typical of them.

use crate::ModelError;
use crate::linalg::{Square, cholesky_solve};

/// A fitted linear classifier: score = w·x + b (log-odds under balanced priors).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Logistic {
    /// Weights.
    pub w: Vec<f64>,
    /// Intercept.
    pub b: f64,
}

impl Logistic {
    /// Fits positives against negatives. The objective is
    /// `½‖w‖² + C·Σ cᵢ·logloss(xᵢ)` with balanced class weights `cᵢ = n / (2·n_class)`
    /// (the intercept is not penalised).
    pub fn fit(pos: &[&[f64]], neg: &[&[f64]], c: f64) -> Result<Self, ModelError> {
        if pos.is_empty() || neg.is_empty() {
            return Err(ModelError::Data(
                "logistic regression needs both classes".into(),
            ));
        }
        if !(c > 0.0 && c.is_finite()) {
            return Err(ModelError::Config("C must be positive".into()));
        }
        let dim = pos[0].len();
        if let Some(bad) = pos.iter().chain(neg).find(|r| r.len() != dim) {
            return Err(ModelError::Dimension {
                expected: dim,
                got: bad.len(),
            });
        }
        let n = (pos.len() + neg.len()) as f64;
        let cw = [
            c * n / (2.0 * neg.len() as f64),
            c * n / (2.0 * pos.len() as f64),
        ];
        let p = dim + 1; // last coordinate = intercept
        let mut theta = vec![0.0; p];
        for _ in 0..30 {
            let mut grad: Vec<f64> = theta.clone();
            grad[dim] = 0.0;
            let mut h = Square::zeros(p);
            for i in 0..dim {
                *h.at(i, i) = 1.0;
            }
            for (rows, label) in [(neg, 0.0), (pos, 1.0)] {
                let weight = cw[label as usize];
                for r in rows {
                    let z = r.iter().zip(&theta).map(|(a, b)| a * b).sum::<f64>() + theta[dim];
                    let prob = 1.0 / (1.0 + (-z).exp());
                    let g = weight * (prob - label);
                    let s = weight * (prob * (1.0 - prob)).max(1e-12);
                    for i in 0..dim {
                        grad[i] += g * r[i];
                        let si = s * r[i];
                        let row = &mut h.a[i * p..i * p + i + 1];
                        for (hj, rj) in row.iter_mut().zip(r.iter()) {
                            *hj += si * rj;
                        }
                        h.a[i * p + dim] += si;
                    }
                    grad[dim] += g;
                    h.a[dim * p + dim] += s;
                }
            }
            // Only the lower triangle (and the intercept column) was accumulated.
            for i in 0..dim {
                let v = h.a[i * p + dim];
                h.a[dim * p + i] = v;
                for j in 0..i {
                    h.a[j * p + i] = h.a[i * p + j];
                }
            }
            let l = h
                .cholesky()
                .ok_or_else(|| ModelError::Data("logistic regression: singular Hessian".into()))?;
            let step = cholesky_solve(&l, &grad);
            let mut norm = 0.0;
            for (t, s) in theta.iter_mut().zip(&step) {
                *t -= s;
                norm += s * s;
            }
            if !theta.iter().all(|t| t.is_finite()) {
                return Err(ModelError::Data("logistic regression diverged".into()));
            }
            if norm.sqrt() < 1e-8 {
                break;
            }
        }
        let b = theta[dim];
        theta.truncate(dim);
        Ok(Logistic { w: theta, b })
    }

    /// The score (log-odds) of one vector.
    pub fn score(&self, x: &[f64]) -> f64 {
        x.iter().zip(&self.w).map(|(a, b)| a * b).sum::<f64>() + self.b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplitMix64;

    #[test]
    fn separates_two_clouds_and_matches_the_optimum() {
        let mut rng = SplitMix64::new(3);
        let pos: Vec<Vec<f64>> = (0..50)
            .map(|_| vec![1.0 + rng.normal(), rng.normal()])
            .collect();
        let neg: Vec<Vec<f64>> = (0..200)
            .map(|_| vec![-1.0 + rng.normal(), rng.normal()])
            .collect();
        let pr: Vec<&[f64]> = pos.iter().map(Vec::as_slice).collect();
        let nr: Vec<&[f64]> = neg.iter().map(Vec::as_slice).collect();
        let m = Logistic::fit(&pr, &nr, 1.0).expect("fit");
        assert!(m.w[0] > 1.0 && m.w[1].abs() < 0.5, "{m:?}");
        // At the optimum the gradient vanishes: check it numerically.
        let n = 250.0;
        let cw = [n / 400.0, n / 100.0];
        let mut g = [m.w[0], m.w[1], 0.0];
        for (rows, y) in [(&nr, 0.0), (&pr, 1.0)] {
            for r in rows.iter() {
                let p = 1.0 / (1.0 + (-m.score(r)).exp());
                let d = cw[y as usize] * (p - y);
                g[0] += d * r[0];
                g[1] += d * r[1];
                g[2] += d;
            }
        }
        assert!(g.iter().all(|x| x.abs() < 1e-6), "{g:?}");
        assert!(Logistic::fit(&pr, &[], 1.0).is_err());
        assert!(Logistic::fit(&pr, &nr, 0.0).is_err());
    }
}
