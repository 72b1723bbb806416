//! The feature transform in front of every model: an optional element-wise
//! compression, then standardisation with the training population's statistics.

use crate::ModelError;

/// Element-wise compression applied before standardisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// Values are used as they are.
    None,
    /// `sign(x)·ln(1 + |x|/0.1)`: timing intervals in seconds on a log scale with a
    /// 100 ms knee. Keystroke intervals are right-skewed; on the CMU benchmark this
    /// lowers the robust scaled-Manhattan EER from 0.090 to 0.075 (EVALUATION.md).
    LogTime,
}

impl Compression {
    /// Applies the compression to one value.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Compression::None => x,
            Compression::LogTime => x.signum() * (x.abs() * 10.0).ln_1p(),
        }
    }
}

/// Compression plus per-feature standardisation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureTransform {
    /// The compression.
    pub compression: Compression,
    /// Per-feature mean after compression.
    pub mean: Vec<f64>,
    /// Per-feature standard deviation after compression (never 0).
    pub scale: Vec<f64>,
}

/// Checks that every vector has `dim` finite values.
pub fn check_rows<T: Copy + Into<f64>>(rows: &[Vec<T>], dim: usize) -> Result<(), ModelError> {
    for (r, v) in rows.iter().enumerate() {
        if v.len() != dim {
            return Err(ModelError::Dimension {
                expected: dim,
                got: v.len(),
            });
        }
        if let Some(index) = v.iter().position(|&x| !x.into().is_finite()) {
            return Err(ModelError::NotFinite { row: r, index });
        }
    }
    Ok(())
}

impl FeatureTransform {
    /// Fits the statistics on a training population.
    pub fn fit(rows: &[Vec<f32>], compression: Compression) -> Result<Self, ModelError> {
        let dim = rows
            .first()
            .map(Vec::len)
            .ok_or_else(|| ModelError::Data("no rows to fit a transform".into()))?;
        check_rows(rows, dim)?;
        let n = rows.len() as f64;
        let mut mean = vec![0.0; dim];
        for r in rows {
            for (m, &x) in mean.iter_mut().zip(r) {
                *m += compression.apply(x as f64) / n;
            }
        }
        let mut var = vec![0.0; dim];
        for r in rows {
            for ((v, &x), m) in var.iter_mut().zip(r).zip(&mean) {
                let d = compression.apply(x as f64) - m;
                *v += d * d / n;
            }
        }
        let scale = var
            .into_iter()
            .map(|v| if v.sqrt() > 1e-12 { v.sqrt() } else { 1.0 })
            .collect();
        Ok(FeatureTransform {
            compression,
            mean,
            scale,
        })
    }

    /// Input dimension.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Transforms one vector (checked for dimension and finiteness).
    pub fn apply(&self, v: &[f32]) -> Result<Vec<f64>, ModelError> {
        self.apply_with_room(v, 0)
    }

    /// [`Self::apply`] into a vector with room for `spare` more values: the
    /// representation appends the embedding to each row, and collecting fallible
    /// values grows a vector step by step (six allocations a row, ≈ 2% of an infer
    /// call, before this).
    fn apply_with_room(&self, v: &[f32], spare: usize) -> Result<Vec<f64>, ModelError> {
        if v.len() != self.dim() {
            return Err(ModelError::Dimension {
                expected: self.dim(),
                got: v.len(),
            });
        }
        let mut out = Vec::with_capacity(v.len() + spare);
        for (i, ((&x, m), s)) in v.iter().zip(&self.mean).zip(&self.scale).enumerate() {
            if !x.is_finite() {
                return Err(ModelError::NotFinite { row: 0, index: i });
            }
            out.push((self.compression.apply(x as f64) - m) / s);
        }
        Ok(out)
    }

    /// Transforms many vectors.
    pub fn apply_all(&self, rows: &[Vec<f32>]) -> Result<Vec<Vec<f64>>, ModelError> {
        self.apply_all_with_room(rows, 0)
    }

    /// [`Self::apply_all`], each row with room for `spare` more values.
    pub fn apply_all_with_room(
        &self,
        rows: &[Vec<f32>],
        spare: usize,
    ) -> Result<Vec<Vec<f64>>, ModelError> {
        rows.iter()
            .enumerate()
            .map(|(r, v)| {
                self.apply_with_room(v, spare).map_err(|e| match e {
                    ModelError::NotFinite { index, .. } => ModelError::NotFinite { row: r, index },
                    e => e,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardises_and_rejects_bad_rows() {
        let rows = vec![vec![0.1, 5.0], vec![0.3, 5.0]];
        let t = FeatureTransform::fit(&rows, Compression::None).expect("fit");
        let z = t.apply(&[0.3, 5.0]).expect("apply");
        assert!((z[0] - 1.0).abs() < 1e-6 && z[1] == 0.0, "{z:?}");
        assert!(matches!(
            t.apply(&[1.0]),
            Err(ModelError::Dimension {
                expected: 2,
                got: 1
            })
        ));
        assert!(matches!(
            t.apply_all(&[vec![1.0, 1.0], vec![f32::NAN, 1.0]]),
            Err(ModelError::NotFinite { row: 1, index: 0 })
        ));
        assert!(FeatureTransform::fit(&[], Compression::None).is_err());
        assert!((Compression::LogTime.apply(0.1) - 2f64.ln()).abs() < 1e-12);
        assert!((Compression::LogTime.apply(-0.1) + 2f64.ln()).abs() < 1e-12);
    }
}
