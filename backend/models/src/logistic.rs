//! L2-regularised, class-balanced logistic regression fitted by Newton's method (IRLS).
//! Used per user at enrolment: the user's vectors against a background cohort of other
//! people, which is what lets a template say what is *distinctive* about a person
//! rather than only what is typical of them.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, Axis, Slice};

use crate::ModelError;
use crate::linalg::{Square, cholesky_solve};

/// Rows per block of a Newton step: three blocks of `BLOCK_ROWS × (dim + 1)` values
/// (one in double precision, two in single) are all a fit holds besides its Hessian
/// (≈ 290 KB at 70 dimensions).
const BLOCK_ROWS: usize = 256;

/// A fit ends with a Newton step shorter than this.
const TOLERANCE: f64 = 1e-8;

/// Steps shorter than this (that shrank at least fourfold) are followed by a step with
/// the same Hessian.
const CHORD_BELOW: f64 = 1e-3;

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
        let mut theta = Array1::<f64>::zeros(dim + 1);
        newton(pos, neg, cw, &mut theta)?;
        let mut theta = theta.to_vec();
        let b = theta[dim];
        theta.truncate(dim);
        Ok(Logistic { w: theta, b })
    }

    /// The score (log-odds) of one vector.
    pub fn score(&self, x: &[f64]) -> f64 {
        x.iter().zip(&self.w).map(|(a, b)| a * b).sum::<f64>() + self.b
    }
}

/// Newton's method (IRLS) from `theta` until a step is shorter than [`TOLERANCE`]:
/// minimises `½‖w‖² + Σ cw[yᵢ]·logloss(xᵢ)` (the intercept, `theta`'s last coordinate,
/// not penalised).
fn newton(
    pos: &[&[f64]],
    neg: &[&[f64]],
    cw: [f64; 2],
    theta: &mut Array1<f64>,
) -> Result<(), ModelError> {
    let p = theta.len();
    let dim = p - 1;
    let all: Vec<(&[f64], usize)> = neg
        .iter()
        .map(|r| (*r, 0))
        .chain(pos.iter().map(|r| (*r, 1)))
        .collect();
    // Rows go through in blocks, each copied with a column of ones for the intercept
    // (`xb`) and scaled by its Hessian weight (`sxb`): the Hessian is a sum of matrix
    // products Xᵀ·(S X) (matrixmultiply's kernels; the rank-one update per row this
    // replaces was 38% of a simulated person's CPU), and a block bounds the memory
    // of a fit whatever the cohort's size.
    let block = BLOCK_ROWS.min(all.len());
    let mut xb = vec![0.0; block * p];
    // The Hessian in single precision: it only sets the direction of a step, whose
    // length and the test of the optimum come from the gradient (double precision
    // throughout), so its rounding (≈1e-7 relative) changes how fast the steps
    // converge, not where; and the kernels run twice the values per instruction
    // (the products were ⅔ of an enrolment's fit).
    let mut xb32 = vec![0.0f32; block * p];
    let mut sxb = vec![0.0f32; block * p];
    let mut h = Array2::<f32>::zeros((p, p));
    let shape = |e: ndarray::ShapeError| ModelError::Data(format!("logistic regression: {e}"));
    // The Cholesky factor reads the lower triangle only: the products cover the
    // first `half` columns of every row, then the lower right block (¾ of the
    // full product).
    let half = p / 2;
    let (left, right) = (Slice::from(..half), Slice::from(half..));
    let mut factor: Option<Square> = None;
    let (mut last, mut before) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..30 {
        // Near the optimum (a small step that shrank fast) the last Hessian serves
        // for the next step (a chord step, converging as fast as the Hessian
        // barely changes there); otherwise a fresh one.
        let fresh = factor.is_none() || last > CHORD_BELOW || last > 0.25 * before;
        // The penalty's part: θ and the identity, neither on the intercept.
        let mut grad = theta.to_vec();
        grad[dim] = 0.0;
        if fresh {
            h.fill(0.0);
            for i in 0..dim {
                h[[i, i]] = 1.0;
            }
        }
        for chunk in all.chunks(block) {
            let m = chunk.len();
            for (row, (r, _)) in xb.chunks_exact_mut(p).zip(chunk) {
                row[..dim].copy_from_slice(r);
                row[dim] = 1.0;
            }
            let xs = ArrayView2::from_shape((m, p), &xb[..m * p]).map_err(shape)?;
            let z = xs.dot(&*theta);
            if fresh {
                for (d, &v) in xb32.iter_mut().zip(&xb[..m * p]) {
                    *d = v as f32;
                }
            }
            for (k, (&(_, label), x)) in chunk.iter().zip(xb.chunks_exact(p)).enumerate() {
                let y = label as f64;
                let w = cw[label];
                let prob = 1.0 / (1.0 + (-z[k]).exp());
                // The gradient row by row over contiguous rows: as a product with the
                // block's transpose (strided columns, no kernel) it was a tenth of
                // the fit.
                let g = w * (prob - y);
                for (gj, &v) in grad.iter_mut().zip(x) {
                    *gj += g * v;
                }
                if fresh {
                    let sk = (w * (prob * (1.0 - prob)).max(1e-12)) as f32;
                    for (d, &v) in sxb[k * p..(k + 1) * p]
                        .iter_mut()
                        .zip(&xb32[k * p..(k + 1) * p])
                    {
                        *d = sk * v;
                    }
                }
            }
            if fresh {
                let xs = ArrayView2::from_shape((m, p), &xb32[..m * p]).map_err(shape)?;
                let sxs = ArrayView2::from_shape((m, p), &sxb[..m * p]).map_err(shape)?;
                let mut h_left = h.slice_axis_mut(Axis(1), left);
                general_mat_mul(
                    1.0,
                    &xs.t(),
                    &sxs.slice_axis(Axis(1), left),
                    1.0,
                    &mut h_left,
                );
                let mut h_corner = h
                    .slice_axis_mut(Axis(0), right)
                    .slice_axis_move(Axis(1), right);
                general_mat_mul(
                    1.0,
                    &xs.slice_axis(Axis(1), right).t(),
                    &sxs.slice_axis(Axis(1), right),
                    1.0,
                    &mut h_corner,
                );
            }
        }
        if fresh {
            let hs = Square {
                n: p,
                a: h.iter().map(|&v| f64::from(v)).collect(),
            };
            factor =
                Some(hs.cholesky().ok_or_else(|| {
                    ModelError::Data("logistic regression: singular Hessian".into())
                })?);
        }
        let Some(l) = &factor else {
            return Err(ModelError::Data("logistic regression: no Hessian".into()));
        };
        let step = cholesky_solve(l, &grad);
        let mut norm = 0.0;
        for (t, s) in theta.iter_mut().zip(&step) {
            *t -= s;
            norm += s * s;
        }
        if !theta.iter().all(|t| t.is_finite()) {
            return Err(ModelError::Data("logistic regression diverged".into()));
        }
        (before, last) = (last, norm.sqrt());
        if last < TOLERANCE {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplitMix64;

    /// The objective's gradient at `m`, every coordinate (penalty included, the
    /// intercept last), computed directly.
    fn gradient(m: &Logistic, pos: &[&[f64]], neg: &[&[f64]], c: f64) -> Vec<f64> {
        let dim = m.w.len();
        let n = (pos.len() + neg.len()) as f64;
        let cw = [
            c * n / (2.0 * neg.len() as f64),
            c * n / (2.0 * pos.len() as f64),
        ];
        let mut g: Vec<f64> = m.w.iter().copied().chain([0.0]).collect();
        for (rows, y) in [(neg, 0.0), (pos, 1.0)] {
            for r in rows.iter() {
                let p = 1.0 / (1.0 + (-m.score(r)).exp());
                let d = cw[y as usize] * (p - y);
                for j in 0..dim {
                    g[j] += d * r[j];
                }
                g[dim] += d;
            }
        }
        g
    }

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

    #[test]
    fn the_optimum_in_many_dimensions_has_a_vanishing_gradient() {
        // Every coordinate's gradient (penalty included) checked directly: a transposed
        // product or a misplaced intercept would leave some of them far from zero.
        let mut rng = SplitMix64::new(11);
        let dim = 23;
        let pos: Vec<Vec<f64>> = (0..40)
            .map(|_| (0..dim).map(|j| rng.normal() + 0.1 * j as f64).collect())
            .collect();
        let neg: Vec<Vec<f64>> = (0..700)
            .map(|_| (0..dim).map(|_| rng.normal() * 1.3 - 0.2).collect())
            .collect();
        let pr: Vec<&[f64]> = pos.iter().map(Vec::as_slice).collect();
        let nr: Vec<&[f64]> = neg.iter().map(Vec::as_slice).collect();
        let c = 0.7;
        let m = Logistic::fit(&pr, &nr, c).expect("fit");
        let g = gradient(&m, &pr, &nr, c);
        assert!(g.iter().all(|x| x.abs() < 1e-6), "{g:?}");
    }

    #[test]
    fn an_enrolment_sized_fit_reaches_the_optimum() {
        // The size of a gait enrolment (114 dimensions, 2,700 negatives, overlapping
        // classes, features of unequal scales): the Hessian's single precision must not
        // keep the steps from the optimum, where every coordinate's gradient vanishes.
        let mut rng = SplitMix64::new(41);
        let dim = 114;
        let scale: Vec<f64> = (0..dim).map(|j| 0.1 + 0.05 * (j % 40) as f64).collect();
        let pos: Vec<Vec<f64>> = (0..120)
            .map(|_| (0..dim).map(|j| scale[j] * (rng.normal() + 0.15)).collect())
            .collect();
        let neg: Vec<Vec<f64>> = (0..2700)
            .map(|_| (0..dim).map(|j| scale[j] * rng.normal() * 1.1).collect())
            .collect();
        let pr: Vec<&[f64]> = pos.iter().map(Vec::as_slice).collect();
        let nr: Vec<&[f64]> = neg.iter().map(Vec::as_slice).collect();
        let m = Logistic::fit(&pr, &nr, 1.0).expect("fit");
        let g = gradient(&m, &pr, &nr, 1.0);
        let worst = g.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        assert!(worst < 1e-6, "largest gradient coordinate {worst}");
    }
}
