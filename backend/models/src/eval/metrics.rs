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

/// The operating points every accuracy report shows: target false-accept rates.
pub const TARGET_FARS: [f64; 3] = [0.001, 0.01, 0.05];

/// What a report can say about an operating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointStatus {
    /// The realised rate is within 0.5×–1.5× of the target.
    Within,
    /// Measured, and outside 0.5×–1.5× of the target.
    Outside,
    /// Most attempts' calibration supports no rate this small (their floor is above the
    /// target): the decision cannot accept at it, and claims nothing.
    CalibrationCannotSupport,
    /// Fewer than 10/target impostor attempts: this run cannot measure the rate.
    TooFewAttempts,
}

/// Realised rates at one target false-accept rate, pooled over people (one threshold
/// for everyone): an attempt is accepted when its estimated false-accept rate is at
/// most the target, exactly as the decision does.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OperatingPoint {
    /// The configured target.
    pub target_far: f64,
    /// Genuine attempts.
    pub genuine_attempts: usize,
    /// Impostor attempts.
    pub impostor_attempts: usize,
    /// Impostor attempts accepted / impostor attempts.
    pub far: f64,
    /// 95% Wilson interval of `far`.
    pub far_interval: [f64; 2],
    /// Genuine attempts not accepted / genuine attempts.
    pub frr: f64,
    /// Median over the impostor attempts of the smallest rate their calibration supports.
    pub calibration_floor: f64,
    /// What the numbers allow one to say.
    pub status: PointStatus,
}

/// One attempt as the decision saw it: `(estimated FAR, calibration floor)`.
pub type Judged = (f64, f64);

fn wilson(k: usize, n: usize) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let (z, n, p) = (1.96f64, n as f64, k as f64 / n as f64);
    let d = 1.0 + z * z / n;
    let c = (p + z * z / (2.0 * n)) / d;
    let h = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
    [(c - h).max(0.0), (c + h).min(1.0)]
}

/// The operating points [`TARGET_FARS`] of genuine and impostor attempts.
pub fn operating_points(genuine: &[Judged], impostor: &[Judged]) -> Vec<OperatingPoint> {
    let mut floors: Vec<f64> = impostor.iter().map(|j| j.1).collect();
    floors.sort_by(f64::total_cmp);
    let floor = floors.get(floors.len() / 2).copied().unwrap_or(f64::NAN);
    TARGET_FARS
        .iter()
        .map(|&t| {
            let acc = |v: &[Judged]| v.iter().filter(|j| j.0 <= t).count();
            let (ga, ia) = (acc(genuine), acc(impostor));
            let share = |k: usize, n: usize| {
                if n == 0 {
                    f64::NAN
                } else {
                    k as f64 / n as f64
                }
            };
            let far = share(ia, impostor.len());
            let status = if floor > t {
                PointStatus::CalibrationCannotSupport
            } else if (impostor.len() as f64) * t < 10.0 {
                PointStatus::TooFewAttempts
            } else if far >= 0.5 * t && far <= 1.5 * t {
                PointStatus::Within
            } else {
                PointStatus::Outside
            };
            OperatingPoint {
                target_far: t,
                genuine_attempts: genuine.len(),
                impostor_attempts: impostor.len(),
                far,
                far_interval: wilson(ia, impostor.len()),
                frr: 1.0 - share(ga, genuine.len()),
                calibration_floor: floor,
                status,
            }
        })
        .collect()
}

/// Operating points as table rows: `target  FAR [interval]  FRR  attempts  status`
/// (`judged`: whether the target applies to these impostors and the status is shown;
/// a mimic is not a zero-effort impostor, and the target says nothing about mimics).
pub fn operating_table(label: &str, points: &[OperatingPoint], judged: bool) -> String {
    let mut s = String::new();
    for p in points {
        s.push_str(&format!(
            "{label:<22} {:>6}  FAR {:.4} [{:.4}, {:.4}]  FRR {:.4}  genuine {:>6}  impostor {:>7}  {}\n",
            p.target_far,
            p.far,
            p.far_interval[0],
            p.far_interval[1],
            p.frr,
            p.genuine_attempts,
            p.impostor_attempts,
            if !judged {
                String::new()
            } else {
                match p.status {
                PointStatus::Within => "within 0.5-1.5x target".to_string(),
                PointStatus::Outside => "OUTSIDE 0.5-1.5x target".to_string(),
                PointStatus::CalibrationCannotSupport => format!(
                    "calibration supports rates down to {:.1e} only",
                    p.calibration_floor
                ),
                PointStatus::TooFewAttempts => {
                    "too few impostor attempts to measure".to_string()
                }
            }
            }
        ));
    }
    s
}

#[cfg(test)]
mod operating_tests {
    use super::*;

    #[test]
    fn points_follow_the_decision_rule() {
        // 2000 impostors, 20 of which (1%) estimated at 0.005, the rest at 0.5.
        let imp: Vec<Judged> = (0..2000)
            .map(|i| (if i < 20 { 0.005 } else { 0.5 }, 1e-4))
            .collect();
        let genuine: Vec<Judged> = (0..100)
            .map(|i| (if i < 97 { 1e-4 } else { 0.2 }, 1e-4))
            .collect();
        let p = operating_points(&genuine, &imp);
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].target_far, 0.01);
        assert!((p[1].far - 0.01).abs() < 1e-12 && (p[1].frr - 0.03).abs() < 1e-12);
        assert_eq!(p[1].status, PointStatus::Within);
        assert!(p[1].far_interval[0] < 0.01 && p[1].far_interval[1] > 0.01);
        // 0.001: nothing at or below it → FAR 0, measurable (2000·0.001 = 2 < 10: no).
        assert_eq!(p[0].status, PointStatus::TooFewAttempts);
        // 0.05: 1% realised → outside 0.5–1.5×.
        assert_eq!(p[2].status, PointStatus::Outside);
        let high_floor: Vec<Judged> = imp.iter().map(|j| (j.0, 0.02)).collect();
        assert_eq!(
            operating_points(&genuine, &high_floor)[1].status,
            PointStatus::CalibrationCannotSupport
        );
        assert!(operating_table("fused", &p, true).contains("within"));
    }
}
