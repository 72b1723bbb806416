//! The simulator's distributions against the real reference data (`../shared/data`,
//! see its README): the CMU keystroke benchmark and the Hoang et al. pocket gait
//! recordings, both through the phone's feature code. Skips, with a message, when the
//! data is not there (it is never part of the repository).

use std::path::PathBuf;

use tacit_models::data::{Population, read_gait_folder};
use tacit_models::datasets::data_dir;
use tacit_models::eval::one_class;
use tacit_shared::schema::{GAIT_V1, index_of};
use tacit_simulator::training::{gait_population, keystroke_population_in_sessions, timings_only};
use tacit_simulator::{CMU_KEYS, PopulationModel};

fn data(rel: &str) -> Option<PathBuf> {
    let path = data_dir().map(|d| d.join(rel)).filter(|p| p.exists());
    if path.is_none() {
        eprintln!(
            "SKIPPED: {rel} not found under ../shared/data (set TACIT_DATA_DIR) — the \
             simulator's distributions were not checked against real data"
        );
    }
    path
}

/// Geometric mean over people of each person's geometric mean of value `j`.
fn person_log_means(pop: &Population, j: usize) -> Vec<f64> {
    pop.people
        .iter()
        .map(|p| {
            p.samples
                .iter()
                .map(|s| (s.vector[j] as f64).max(1e-4).ln())
                .sum::<f64>()
                / p.samples.len() as f64
        })
        .collect()
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (
        m,
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt(),
    )
}

#[test]
fn typing_matches_the_cmu_benchmark() {
    let Some(path) = data("keystroke/cmu/DSL-StrongPasswordData.csv") else {
        return;
    };
    let real = tacit_models::data::read_cmu(&path).expect("CMU");
    // The benchmark's design: 51 people × 8 sessions × 50 entries.
    // Timings only: the benchmark has no touch.
    let sim = timings_only(keystroke_population_in_sessions(
        &PopulationModel::default(),
        0..51,
        8,
        50,
        CMU_KEYS,
    ));
    let (mut hold_ratios, mut dd_ratios) = (Vec::new(), Vec::new());
    let (mut real_dd_sd, mut sim_dd_sd) = (Vec::new(), Vec::new());
    for j in 0..31 {
        if j % 3 == 2 {
            continue; // UD = DD − H, follows.
        }
        let (r, s) = (person_log_means(&real, j), person_log_means(&sim, j));
        let ((rm, rsd), (sm, ssd)) = (mean_sd(&r), mean_sd(&s));
        let ratio = (sm - rm).exp();
        eprintln!(
            "value {j:2} ({}): geometric mean real {:5.1} ms, simulated {:5.1} ms; \
             between-person log-sd real {rsd:.3}, simulated {ssd:.3}",
            if j % 3 == 0 { "H " } else { "DD" },
            1e3 * rm.exp(),
            1e3 * sm.exp()
        );
        if j % 3 == 0 {
            hold_ratios.push(ratio);
        } else {
            dd_ratios.push(ratio);
            real_dd_sd.push(rsd);
            sim_dd_sd.push(ssd);
        }
    }
    for (name, ratios) in [("hold", &hold_ratios), ("down-down", &dd_ratios)] {
        let overall = mean_sd(&ratios.iter().map(|r| r.ln()).collect::<Vec<_>>())
            .0
            .exp();
        eprintln!("{name}: simulated / real geometric mean = {overall:.3} overall");
        assert!((0.93..1.07).contains(&overall), "{name}: {overall}");
        assert!(
            ratios.iter().all(|r| (0.85..1.15).contains(r)),
            "{name}: per-key ratios {ratios:?}"
        );
    }
    let (r, s) = (mean_sd(&real_dd_sd).0, mean_sd(&sim_dd_sd).0);
    assert!(
        (0.75..1.33).contains(&(s / r)),
        "between-person DD spread {s} vs {r}"
    );

    // The paper's one-class protocol on both: similar difficulty.
    let eer = |pop: &Population| one_class(pop, &mut |_, _| {}).expect("one-class")[0].eer_mean;
    let (er, es) = (eer(&real), eer(&sim));
    eprintln!("one-class scaled Manhattan mean EER: real {er:.4}, simulated {es:.4}");
    assert!(
        es > 0.5 * er && es < 2.0 * er,
        "one-class EER {es} vs real {er}"
    );
}

#[test]
fn gait_matches_the_hoang_recordings() {
    let Some(dir) = data("gait/hoang-nexusone") else {
        return;
    };
    let real = read_gait_folder(&dir, &mut |_, _| {}).expect("gait folder");
    // About the same amount per person as the recordings (~19 sessions of 36 s).
    let sim = gait_population(&PopulationModel::default(), 0..19, 8, 36.0);
    let person_means = |pop: &Population, j: usize| -> Vec<f64> {
        pop.people
            .iter()
            .map(|p| {
                p.samples.iter().map(|s| s.vector[j] as f64).sum::<f64>() / p.samples.len() as f64
            })
            .collect()
    };
    let compare = |name: &str| {
        let j = index_of(GAIT_V1, name).expect("feature");
        let (r, s) = (
            mean_sd(&person_means(&real, j)),
            mean_sd(&person_means(&sim, j)),
        );
        eprintln!(
            "{name:21} per person: real {:.3} ± {:.3}, simulated {:.3} ± {:.3}",
            r.0, r.1, s.0, s.1
        );
        (r, s)
    };
    let ((rc, rsd), (sc, ssd)) = compare("cadence_hz");
    assert!((sc - rc).abs() < 0.1, "cadence {sc} vs {rc}");
    assert!(
        ssd > 0.5 * rsd && ssd < 2.0 * rsd,
        "cadence spread {ssd} vs {rsd}"
    );
    for name in [
        "v_std",
        "h_std",
        "m_std",
        "stride_harmonic_2",
        "spectral_centroid_hz",
    ] {
        let ((r, _), (s, _)) = compare(name);
        assert!((s / r - 1.0).abs() < 0.3, "{name}: {s} vs {r}");
    }
    for name in [
        "stride_harmonic_1",
        "stride_harmonic_3",
        "step_regularity",
        "stride_regularity",
        "band_energy_6_10hz",
        "spectral_flatness",
        "vertical_energy_ratio",
    ] {
        compare(name);
    }
    let eer = |pop: &Population| one_class(pop, &mut |_, _| {}).expect("one-class")[0].eer_mean;
    let (er, es) = (eer(&real), eer(&sim));
    eprintln!("one-class scaled Manhattan mean EER per window: real {er:.4}, simulated {es:.4}");
    assert!(
        es > 0.5 * er && es < 2.0 * er,
        "one-class EER {es} vs real {er}"
    );
}
