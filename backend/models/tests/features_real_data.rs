//! The pipelines on real people: the Hoang walking sessions and the CMU keystroke
//! benchmark from `../shared/data` (skipped with a message when absent).

use tacit_features::factors::gait::{GaitConfig, extract_gait};
use tacit_features::factors::keystroke::fixed_text_timings;
use tacit_models::datasets::{self, data_dir};

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn walking_is_detected_and_cadence_is_plausible_on_real_sessions() {
    let Some(dir) = data_dir()
        .map(|d| d.join("gait/hoang-nexusone"))
        .filter(|d| d.is_dir())
    else {
        eprintln!("SKIP: ../shared/data/gait/hoang-nexusone not found (set TACIT_DATA_DIR)");
        return;
    };
    let sessions = datasets::read_gait_manifest(&dir).unwrap();
    assert_eq!(sessions.len(), 357);
    let (mut windows, mut walking) = (0u64, 0u64);
    let mut cadences = Vec::new();
    let mut session_cadence = Vec::new();
    for s in &sessions {
        let samples = datasets::read_gait_session(&s.path).unwrap();
        let (ws, report) = extract_gait(&samples, GaitConfig::default()).unwrap();
        windows += report.windows;
        walking += report.walking_windows;
        let c: Vec<f64> = ws
            .iter()
            .filter(|w| w.walking)
            .map(|w| w.features[0])
            .collect();
        if !c.is_empty() {
            let mut c2 = c.clone();
            c2.sort_by(f64::total_cmp);
            session_cadence.push(quantile(&c2, 0.5));
        }
        cadences.extend(c);
    }
    cadences.sort_by(f64::total_cmp);
    session_cadence.sort_by(f64::total_cmp);
    let frac = walking as f64 / windows as f64;
    let in_band =
        cadences.iter().filter(|c| (1.4..=2.2).contains(*c)).count() as f64 / cadences.len() as f64;
    let sess_in_band = session_cadence
        .iter()
        .filter(|c| (1.4..=2.2).contains(*c))
        .count() as f64
        / session_cadence.len() as f64;
    println!(
        "gait real data: {} sessions, {windows} windows, walking {walking} ({:.1}%)",
        sessions.len(),
        100.0 * frac
    );
    println!(
        "cadence (steps/s) of walking windows: p5 {:.2} p25 {:.2} median {:.2} p75 {:.2} p95 {:.2}; in 1.4-2.2: {:.1}% of windows, {:.1}% of session medians",
        quantile(&cadences, 0.05),
        quantile(&cadences, 0.25),
        quantile(&cadences, 0.5),
        quantile(&cadences, 0.75),
        quantile(&cadences, 0.95),
        100.0 * in_band,
        100.0 * sess_in_band
    );
    assert!(
        frac >= 0.9,
        "walking detected in only {:.1}% of windows of walking recordings",
        100.0 * frac
    );
    assert!(
        in_band >= 0.85,
        "only {:.1}% of cadences in 1.4-2.2 steps/s",
        100.0 * in_band
    );
}

#[test]
fn cmu_rows_round_trip_through_key_events() {
    let Some(path) = data_dir()
        .map(|d| d.join("keystroke/cmu/DSL-StrongPasswordData.csv"))
        .filter(|p| p.is_file())
    else {
        eprintln!("SKIP: ../shared/data/keystroke/cmu not found (set TACIT_DATA_DIR)");
        return;
    };
    let rows = datasets::read_cmu(&path).unwrap();
    assert_eq!(rows.len(), 20_400);
    let mut worst = 0.0f64;
    for row in &rows {
        let events = row.to_key_events(1_000_000_000);
        let t = fixed_text_timings(&events, 11).unwrap();
        assert_eq!(t.len(), 31);
        for (a, b) in t.iter().zip(&row.timings) {
            worst = worst.max((a - b).abs());
        }
    }
    println!("CMU round trip: 20,400 entries, worst |difference| {worst:.2e} s");
    // Integer nanoseconds divided by 1e9 give back the file's decimals exactly.
    assert!(worst <= 1e-12, "worst difference {worst}");
}
