//! Dense helpers for the small symmetric systems of the detectors and the logistic
//! regression (dimension ≤ a few hundred; f64 throughout).

/// Row-major square matrix.
#[derive(Debug, Clone)]
pub(crate) struct Square {
    pub n: usize,
    pub a: Vec<f64>,
}

impl Square {
    pub fn zeros(n: usize) -> Self {
        Square {
            n,
            a: vec![0.0; n * n],
        }
    }

    pub fn at(&mut self, i: usize, j: usize) -> &mut f64 {
        &mut self.a[i * self.n + j]
    }

    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.n + j]
    }

    /// Adds `lambda` to the diagonal.
    pub fn ridge(&mut self, lambda: f64) {
        for i in 0..self.n {
            self.a[i * self.n + i] += lambda;
        }
    }

    /// Cholesky factor `L` (lower) of a symmetric positive definite matrix, or `None`
    /// when it is not positive definite. Reads the lower triangle only (callers may
    /// leave the upper one unset).
    pub fn cholesky(&self) -> Option<Square> {
        let n = self.n;
        let mut l = Square::zeros(n);
        for i in 0..n {
            for j in 0..=i {
                let mut s = self.get(i, j);
                for k in 0..j {
                    s -= l.get(i, k) * l.get(j, k);
                }
                if i == j {
                    if s <= 0.0 || !s.is_finite() {
                        return None;
                    }
                    *l.at(i, i) = s.sqrt();
                } else {
                    *l.at(i, j) = s / l.get(j, j);
                }
            }
        }
        Some(l)
    }
}

/// Solves `L Lᵀ x = b` given the Cholesky factor.
pub(crate) fn cholesky_solve(l: &Square, b: &[f64]) -> Vec<f64> {
    let n = l.n;
    let mut y = b.to_vec();
    for i in 0..n {
        let s = y[i] - (0..i).map(|k| l.get(i, k) * y[k]).sum::<f64>();
        y[i] = s / l.get(i, i);
    }
    for i in (0..n).rev() {
        let s = y[i] - (i + 1..n).map(|k| l.get(k, i) * y[k]).sum::<f64>();
        y[i] = s / l.get(i, i);
    }
    y
}

/// `L⁻¹ x` (forward substitution): whitening with the Cholesky factor of a covariance.
pub(crate) fn forward_solve(l: &Square, x: &[f64], out: &mut [f64]) {
    for i in 0..l.n {
        let s = x[i] - (0..i).map(|k| l.get(i, k) * out[k]).sum::<f64>();
        out[i] = s / l.get(i, i);
    }
}

/// Median of a slice (sorts a copy); 0 for an empty slice.
pub(crate) fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        0.5 * (s[m - 1] + s[m])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves() {
        let mut m = Square::zeros(3);
        let v = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        m.a.copy_from_slice(&v);
        let l = m.cholesky().expect("spd");
        let x = cholesky_solve(&l, &[1.0, 2.0, 3.0]);
        for i in 0..3 {
            let bi: f64 = (0..3).map(|j| v[i * 3 + j] * x[j]).sum();
            assert!((bi - (i + 1) as f64).abs() < 1e-12);
        }
        let mut bad = Square::zeros(2);
        bad.a.copy_from_slice(&[1.0, 2.0, 2.0, 1.0]);
        assert!(bad.cholesky().is_none());
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
