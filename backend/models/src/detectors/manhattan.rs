use super::{Detector, check_training};
use crate::ModelError;
use crate::linalg::median;

/// How the centre and the per-feature scale are estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Centre {
    /// Mean and mean absolute deviation: the CMU paper's scaled Manhattan.
    Mean,
    /// Median and median absolute deviation: robust to the occasional hesitation.
    Median,
}

/// Scaled Manhattan distance: Σ |xᵢ − cᵢ| / sᵢ.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScaledManhattan {
    /// Centre per feature.
    pub centre: Vec<f64>,
    /// Scale per feature (never 0).
    pub scale: Vec<f64>,
}

impl ScaledManhattan {
    /// Fits on one person's vectors (at least 2).
    pub fn fit(rows: &[Vec<f64>], how: Centre) -> Result<Self, ModelError> {
        let dim = check_training(rows, 2)?;
        let n = rows.len() as f64;
        let mut centre = vec![0.0; dim];
        let mut scale = vec![0.0; dim];
        let mut col = vec![0.0; rows.len()];
        for j in 0..dim {
            for (c, r) in col.iter_mut().zip(rows) {
                *c = r[j];
            }
            let (c, s) = match how {
                Centre::Mean => {
                    let m = col.iter().sum::<f64>() / n;
                    (m, col.iter().map(|x| (x - m).abs()).sum::<f64>() / n)
                }
                Centre::Median => {
                    let m = median(&col);
                    let dev: Vec<f64> = col.iter().map(|x| (x - m).abs()).collect();
                    (m, median(&dev))
                }
            };
            centre[j] = c;
            // A constant feature would divide by zero; a tiny floor keeps it usable
            // (any deviation from a constant is then strong evidence).
            scale[j] = s.max(1e-6);
        }
        Ok(ScaledManhattan { centre, scale })
    }
}

impl Detector for ScaledManhattan {
    fn score(&self, x: &[f64]) -> f64 {
        -x.iter()
            .zip(&self.centre)
            .zip(&self.scale)
            .map(|((x, c), s)| (x - c).abs() / s)
            .sum::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_median_fits() {
        let rows = vec![vec![1.0, 0.0], vec![3.0, 0.0], vec![20.0, 0.0]];
        let m = ScaledManhattan::fit(&rows, Centre::Mean).expect("fit");
        assert_eq!(m.centre[0], 8.0);
        assert_eq!(m.scale[0], 8.0); // |1-8|, |3-8|, |20-8| → mean 8
        assert_eq!(m.scale[1], 1e-6);
        let r = ScaledManhattan::fit(&rows, Centre::Median).expect("fit");
        assert_eq!((r.centre[0], r.scale[0]), (3.0, 2.0));
        assert!(r.score(&[3.0, 0.0]) > r.score(&[5.0, 0.0]));
        assert_eq!(r.score(&[5.0, 0.0]), -1.0);
        assert!(ScaledManhattan::fit(&rows[..1], Centre::Mean).is_err());
        assert!(ScaledManhattan::fit(&[vec![1.0], vec![f64::NAN]], Centre::Mean).is_err());
    }
}
