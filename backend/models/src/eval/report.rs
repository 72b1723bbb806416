//! Reports: a text table, JSON, and a DET curve as SVG.

use std::fmt::Write as _;

use super::metrics::det_points;

/// The result of one method under one protocol.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MethodResult {
    /// Protocol name.
    pub protocol: String,
    /// Method name.
    pub method: String,
    /// What one attempt is (`entry`, `window`, `session`).
    pub level: String,
    /// Where impostor attempts come from.
    pub impostors: String,
    /// People evaluated.
    pub people: usize,
    /// Mean per-person equal error rate.
    pub eer_mean: f64,
    /// Standard deviation of the per-person EER.
    pub eer_sd: f64,
    /// Mean per-person FAR at FRR = 5%.
    pub far_at_frr5: f64,
    /// Mean per-person FRR at FAR = 1%.
    pub frr_at_far1: f64,
    /// EER of all scores pooled (one global threshold).
    pub pooled_eer: f64,
    /// Per-person EERs.
    pub per_person_eer: Vec<f64>,
    /// Pooled DET curve `(far, frr)`, thinned.
    pub det: Vec<(f64, f64)>,
    /// Realised false-accept and false-reject rates of the decision at the target rates
    /// 0.001, 0.01 and 0.05, pooled over the held-out people (empty for rows that are
    /// not the decision).
    pub operating_points: Vec<super::metrics::OperatingPoint>,
}

/// A whole evaluation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReport {
    /// The data set.
    pub dataset: String,
    /// People in it.
    pub people: usize,
    /// Vectors in it.
    pub samples: usize,
    /// Inputs without vectors.
    pub skipped: Vec<String>,
    /// The command line or settings that produced it.
    pub settings: String,
    /// Wall time (s).
    pub seconds: f64,
    /// Results.
    pub results: Vec<MethodResult>,
}

/// At most ~400 points of the pooled DET curve (enough for a plot).
pub(crate) fn thin_det(genuine: &[f64], impostor: &[f64]) -> Vec<(f64, f64)> {
    let pts = det_points(genuine, impostor);
    let step = pts.len().div_ceil(400).max(1);
    let mut out: Vec<(f64, f64)> = pts.iter().step_by(step).copied().collect();
    if let Some(&last) = pts.last()
        && out.last() != Some(&last)
    {
        out.push(last);
    }
    out
}

impl EvalReport {
    /// The text table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} — {} people, {} vectors ({:.0} s)",
            self.dataset, self.people, self.samples, self.seconds
        );
        for k in &self.skipped {
            let _ = writeln!(s, "  skipped: {k}");
        }
        let _ = writeln!(
            s,
            "{:<34} {:<48} {:<8} {:>6} {:>15} {:>10} {:>10} {:>7}  impostors",
            "protocol",
            "method",
            "level",
            "people",
            "EER mean (sd)",
            "FAR@FRR5",
            "FRR@FAR1",
            "pooled"
        );
        for r in &self.results {
            let _ = writeln!(
                s,
                "{:<34} {:<48} {:<8} {:>6} {:>7.4} ({:.4}) {:>10.4} {:>10.4} {:>7.4}  {}",
                r.protocol,
                r.method,
                r.level,
                r.people,
                r.eer_mean,
                r.eer_sd,
                r.far_at_frr5,
                r.frr_at_far1,
                r.pooled_eer,
                r.impostors
            );
        }
        for r in self
            .results
            .iter()
            .filter(|r| !r.operating_points.is_empty())
        {
            let _ = writeln!(
                s,
                "\noperating points: {} ({}), {}; pooled over held-out people, one threshold for all",
                r.method, r.level, r.impostors
            );
            s.push_str(&super::metrics::operating_table(
                "target FAR",
                &r.operating_points,
                true,
            ));
        }
        s
    }

    /// JSON for machines.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9):
/// DET plots use normal-deviate axes.
fn probit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A DET plot (FAR vs FRR on normal-deviate axes, 0.1%..50%) of the given results.
pub fn det_svg(title: &str, results: &[&MethodResult]) -> String {
    let (w, h, m) = (640.0, 560.0, 70.0);
    let lo = probit(0.001);
    let hi = probit(0.5);
    let x = |p: f64| m + (probit(p) - lo) / (hi - lo) * (w - 1.5 * m);
    let y = |p: f64| h - m - (probit(p) - lo) / (hi - lo) * (h - 1.6 * m);
    let colours = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf",
    ];
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        w / 2.0,
        xml_escape(title)
    );
    for t in [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5] {
        let label = format!("{}%", t * 100.0);
        let _ = write!(
            s,
            r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#ddd"/><text x="{0:.1}" y="{3:.1}" text-anchor="middle">{4}</text><line x1="{5:.1}" y1="{6:.1}" x2="{7:.1}" y2="{6:.1}" stroke="#ddd"/><text x="{8:.1}" y="{9:.1}" text-anchor="end">{4}</text>"##,
            x(t),
            y(0.001),
            y(0.5),
            y(0.001) + 16.0,
            label,
            x(0.001),
            y(t),
            x(0.5),
            x(0.001) - 6.0,
            y(t) + 4.0
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{0:.1}" y1="{1:.1}" x2="{2:.1}" y2="{3:.1}" stroke="#999" stroke-dasharray="4 4"/><text x="{4:.1}" y="{5:.1}" text-anchor="middle">false-accept rate</text><text x="18" y="{6:.1}" text-anchor="middle" transform="rotate(-90 18 {6:.1})">false-reject rate</text>"##,
        x(0.001),
        y(0.001),
        x(0.5),
        y(0.5),
        (x(0.001) + x(0.5)) / 2.0,
        h - 22.0,
        (y(0.001) + y(0.5)) / 2.0
    );
    for (k, r) in results.iter().enumerate() {
        let c = colours[k % colours.len()];
        // A point drawn where the one before it was adds nothing: a curve of millions
        // of thresholds (a simulated world of many people) is a few thousand points
        // on the plot, and its SVG stays small, with every step of the curve kept.
        let mut pts = String::new();
        let mut last = String::new();
        for &(far, frr) in r.det.iter().filter(|(far, frr)| *far <= 0.5 || *frr <= 0.5) {
            let p = format!(
                "{:.1},{:.1}",
                x(far.clamp(0.001, 0.5)),
                y(frr.clamp(0.001, 0.5))
            );
            if p != last {
                if !pts.is_empty() {
                    pts.push(' ');
                }
                pts.push_str(&p);
                last = p;
            }
        }
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{pts}"/>"#
        );
        let _ = write!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="14" height="3" fill="{c}"/><text x="{:.1}" y="{:.1}">{} — {} (pooled EER {:.3})</text>"#,
            x(0.001) + 10.0,
            48.0 + 16.0 * k as f64,
            x(0.001) + 30.0,
            52.0 + 16.0 * k as f64,
            xml_escape(&r.method),
            xml_escape(&r.level),
            r.pooled_eer
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probit_matches_known_quantiles() {
        assert!(probit(0.5).abs() < 1e-9);
        assert!((probit(0.975) - 1.959_963_985).abs() < 1e-6);
        assert!((probit(0.01) + 2.326_347_874).abs() < 1e-6);
    }

    /// A result of the method `method` with the DET curve `det`.
    fn result(method: &str, det: Vec<(f64, f64)>) -> MethodResult {
        MethodResult {
            protocol: "p".into(),
            method: method.into(),
            level: "entry".into(),
            impostors: "i".into(),
            people: 1,
            eer_mean: 0.1,
            eer_sd: 0.0,
            far_at_frr5: 0.2,
            frr_at_far1: 0.3,
            pooled_eer: 0.1,
            per_person_eer: vec![0.1],
            det,
            operating_points: Vec::new(),
        }
    }

    #[test]
    fn svg_is_well_formed_enough() {
        let r = result("m <&>", thin_det(&[1.0, 2.0, 3.0], &[0.0, 1.5]));
        let svg = det_svg("t", &[&r]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("m &lt;&amp;&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 1);
    }

    /// A curve of 600,000 thresholds draws as the points that differ on the plot: a
    /// few thousand, every one of the full curve's distinct points kept, in order.
    #[test]
    fn a_long_curve_draws_only_its_distinct_points() {
        let mut rng = crate::SplitMix64::new(5);
        let mut normal = || rng.normal();
        let genuine: Vec<f64> = (0..500_000).map(|_| 2.5 + normal()).collect();
        let impostor: Vec<f64> = (0..100_000).map(|_| normal()).collect();
        let r = result("m", det_points(&genuine, &impostor));
        let svg = det_svg("t", &[&r]);
        let drawn: Vec<&str> = svg
            .split("points=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a polyline")
            .split(' ')
            .collect();
        assert!(svg.len() < 200_000, "{} bytes", svg.len());
        assert!(
            (100..20_000).contains(&drawn.len()),
            "{} points",
            drawn.len()
        );
        assert!(drawn.windows(2).all(|w| w[0] != w[1]));
        // The same as drawing every threshold and dropping repeats.
        let (lo, hi) = (probit(0.001), probit(0.5));
        let (w, h, m) = (640.0, 560.0, 70.0);
        let mut every: Vec<String> = r
            .det
            .iter()
            .filter(|(far, frr)| *far <= 0.5 || *frr <= 0.5)
            .map(|&(far, frr)| {
                let x = m + (probit(far.clamp(0.001, 0.5)) - lo) / (hi - lo) * (w - 1.5 * m);
                let y = h - m - (probit(frr.clamp(0.001, 0.5)) - lo) / (hi - lo) * (h - 1.6 * m);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        every.dedup();
        assert_eq!(drawn, every);
    }
}
