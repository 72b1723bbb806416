//! Verification error rates from genuine and impostor scores (higher = more genuine).

/// Error rates of one person (or one pooled score set).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ErrorRates {
    /// Equal error rate: where the false-accept and false-reject rates cross.
    pub eer: f64,
    /// False-accept rate at the threshold that rejects 5% of genuine attempts.
    pub far_at_frr5: f64,
    /// False-reject rate at the threshold that accepts 1% of impostor attempts.
    pub frr_at_far1: f64,
}

/// Sorted copies with NaN dropped (a NaN score is a bug upstream; never a panic here).
fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    s.sort_by(f64::total_cmp);
    s
}

/// Fraction of `sorted` strictly below `t`.
fn below(sorted: &[f64], t: f64) -> f64 {
    sorted.partition_point(|&x| x < t) as f64 / sorted.len() as f64
}

/// `(far, frr)` at every distinct candidate threshold (accept when score ≥ threshold),
/// from "accept everything" to "reject everything".
pub fn det_points(genuine: &[f64], impostor: &[f64]) -> Vec<(f64, f64)> {
    let (g, i) = (sorted(genuine), sorted(impostor));
    if g.is_empty() || i.is_empty() {
        return Vec::new();
    }
    let mut thr: Vec<f64> = g.iter().chain(i.iter()).copied().collect();
    thr.sort_by(f64::total_cmp);
    thr.dedup();
    thr.push(f64::INFINITY);
    thr.iter()
        .map(|&t| (1.0 - below(&i, t), below(&g, t)))
        .collect()
}

/// EER, FAR at FRR = 5% and FRR at FAR = 1%. `None` when either set is empty.
///
/// The EER is taken where |FAR − FRR| is smallest, as the mean of the two (the
/// convention of the CMU benchmark's evaluation script).
pub fn error_rates(genuine: &[f64], impostor: &[f64]) -> Option<ErrorRates> {
    let pts = det_points(genuine, impostor);
    if pts.is_empty() {
        return None;
    }
    let mut best = (f64::INFINITY, 0.0);
    for &(far, frr) in &pts {
        let d = (far - frr).abs();
        if d < best.0 {
            best = (d, 0.5 * (far + frr));
        }
    }
    // FRR grows and FAR falls along `pts`.
    let far_at_frr5 = pts
        .iter()
        .filter(|p| p.1 <= 0.05)
        .map(|p| p.0)
        .fold(1.0, f64::min);
    let frr_at_far1 = pts
        .iter()
        .filter(|p| p.0 <= 0.01)
        .map(|p| p.1)
        .fold(1.0, f64::min);
    Some(ErrorRates {
        eer: best.1,
        far_at_frr5,
        frr_at_far1,
    })
}

/// Mean and (population) standard deviation.
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    (m, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_and_overlapping() {
        let r = error_rates(&[2.0, 3.0, 4.0], &[0.0, 1.0]).expect("rates");
        assert_eq!(r.eer, 0.0);
        assert_eq!(r.far_at_frr5, 0.0);
        assert_eq!(r.frr_at_far1, 0.0);
        // Genuine 6..=15, impostor 1..=10: at t = 8, FRR = 2/10 and FAR = 3/10; at
        // t = 9, 3/10 and 2/10 → EER 0.25. Swapped, the scores are upside down: 0.75.
        let g: Vec<f64> = (6..=15).map(f64::from).collect();
        let i: Vec<f64> = (1..=10).map(f64::from).collect();
        let r = error_rates(&g, &i).expect("rates");
        assert!((r.eer - 0.25).abs() < 1e-12, "{r:?}");
        let r = error_rates(&i, &g).expect("rates");
        assert!((r.eer - 0.75).abs() < 1e-12, "{r:?}");
        assert!(error_rates(&[], &[1.0]).is_none());
        assert!(error_rates(&[f64::NAN, 1.0], &[0.0]).is_some());
    }

    #[test]
    fn matches_a_hand_count() {
        // Genuine {3,4,5,6}, impostor {1,2,3.5,7}: at t=3.5 FAR = 2/4, FRR = 1/4;
        // at t=4 FAR = 1/4, FRR = 1/4 → EER 0.25.
        let r = error_rates(&[3.0, 4.0, 5.0, 6.0], &[1.0, 2.0, 3.5, 7.0]).expect("rates");
        assert!((r.eer - 0.25).abs() < 1e-12, "{r:?}");
        assert_eq!(r.frr_at_far1, 1.0); // the impostor at 7 outranks every genuine score
        assert_eq!(r.far_at_frr5, 0.5); // accept all genuine: threshold 3 → 2 of 4 impostors
        let (m, sd) = mean_sd(&[1.0, 3.0]);
        assert_eq!((m, sd), (2.0, 1.0));
    }
}
