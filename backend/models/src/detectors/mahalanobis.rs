use super::{Detector, check_training};
use crate::ModelError;
use crate::linalg::{Square, forward_solve};

/// Nearest neighbour under the Mahalanobis distance of the person's own covariance.
///
/// The training vectors are stored whitened (`L⁻¹x` with `LLᵀ` = covariance + a small
/// ridge, which also handles exactly dependent features such as the keystroke identity
/// DD = H + UD), so a query costs one triangular solve plus Euclidean distances.
#[derive(Debug, Clone)]
pub struct MahalanobisNn {
    l: Square,
    whitened: Vec<Vec<f64>>,
}

impl MahalanobisNn {
    /// Fits on one person's vectors (at least 3).
    pub fn fit(rows: &[Vec<f64>]) -> Result<Self, ModelError> {
        let dim = check_training(rows, 3)?;
        let n = rows.len() as f64;
        let mut mean = vec![0.0; dim];
        for r in rows {
            for (m, x) in mean.iter_mut().zip(r) {
                *m += x / n;
            }
        }
        let mut cov = Square::zeros(dim);
        for r in rows {
            for i in 0..dim {
                let di = r[i] - mean[i];
                for j in 0..=i {
                    *cov.at(i, j) += di * (r[j] - mean[j]) / (n - 1.0);
                }
            }
        }
        for i in 0..dim {
            for j in 0..i {
                *cov.at(j, i) = cov.get(i, j);
            }
        }
        let avg_var = (0..dim).map(|i| cov.get(i, i)).sum::<f64>() / dim as f64;
        cov.ridge(1e-3 * avg_var.max(1e-12));
        let l = cov
            .cholesky()
            .ok_or_else(|| ModelError::Data("covariance is not positive definite".into()))?;
        let whitened = rows
            .iter()
            .map(|r| {
                let mut w = vec![0.0; dim];
                forward_solve(&l, r, &mut w);
                w
            })
            .collect();
        Ok(MahalanobisNn { l, whitened })
    }
}

impl Detector for MahalanobisNn {
    fn score(&self, x: &[f64]) -> f64 {
        if x.len() != self.l.n {
            return f64::NEG_INFINITY;
        }
        let mut w = vec![0.0; x.len()];
        forward_solve(&self.l, x, &mut w);
        let best = self
            .whitened
            .iter()
            .map(|t| {
                t.iter()
                    .zip(&w)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
            })
            .fold(f64::INFINITY, f64::min);
        -best.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_neighbour_respects_the_covariance() {
        // Wide along x, narrow along y: a step in y is much further than one in x.
        let rows: Vec<Vec<f64>> = (0..20)
            .map(|i| vec![i as f64, 0.01 * ((i * 7) % 5) as f64])
            .collect();
        let d = MahalanobisNn::fit(&rows).expect("fit");
        let base = d.score(&[5.0, 0.02]);
        assert!(d.score(&[5.5, 0.02]) > d.score(&[5.0, 0.2]));
        assert!(base > d.score(&[30.0, 0.02]));
        assert_eq!(d.score(&[1.0]), f64::NEG_INFINITY);
        assert!(MahalanobisNn::fit(&rows[..2]).is_err());
    }
}
