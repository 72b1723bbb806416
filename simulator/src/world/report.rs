//! What a run measured: accuracy of the fused decision and of each factor, attack
//! success rates, envelope accounting, throughput, latency and resources.

use serde::{Deserialize, Serialize};
use tacit_models::eval::metrics::{OperatingPoint, error_rates, operating_table};

/// Error rates of one score (a factor's mean LLR, or the fused LLR).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactorRates {
    /// Factor (or `fused`).
    pub factor: String,
    /// Genuine attempts scored.
    pub genuine: usize,
    /// Zero-effort impostor attempts scored.
    pub impostor: usize,
    /// Equal error rate of the score, when both sides have scores.
    pub eer: Option<f64>,
}

impl FactorRates {
    /// Rates from genuine and impostor scores.
    pub fn new(factor: &str, genuine: &[f64], impostor: &[f64]) -> Self {
        FactorRates {
            factor: factor.to_string(),
            genuine: genuine.len(),
            impostor: impostor.len(),
            eer: error_rates(genuine, impostor).map(|r| r.eer),
        }
    }
}

/// Success rates of the attacks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttackStats {
    /// Attacks that must never work, whatever the behaviour: `(name, attempts,
    /// successes)`.
    pub attacks: Vec<(String, u64, u64)>,
    /// Attacks that only the behaviour stands against (their success rate is a false
    /// accept rate, reported like the zero-effort and mimicry rates): `(name, attempts,
    /// successes)`.
    pub measured: Vec<(String, u64, u64)>,
}

fn tally(list: &mut Vec<(String, u64, u64)>, name: &str, success: bool) {
    match list.iter_mut().find(|(n, _, _)| n == name) {
        Some(a) => {
            a.1 += 1;
            a.2 += u64::from(success);
        }
        None => list.push((name.to_string(), 1, u64::from(success))),
    }
}

impl AttackStats {
    /// Counts one attempt of an attack that must fail.
    pub fn count(&mut self, name: &str, success: bool) {
        tally(&mut self.attacks, name, success);
    }

    /// Counts one attempt of an attack that only the behaviour stands against.
    pub fn count_measured(&mut self, name: &str, success: bool) {
        tally(&mut self.measured, name, success);
    }

    /// Adds another run's (a cohort's) attempts and successes to these.
    pub fn add(&mut self, other: &AttackStats) {
        for (mine, theirs) in [
            (&mut self.attacks, &other.attacks),
            (&mut self.measured, &other.measured),
        ] {
            for (name, attempts, successes) in theirs {
                match mine.iter_mut().find(|(n, _, _)| n == name) {
                    Some(a) => {
                        a.1 = a.1.saturating_add(*attempts);
                        a.2 = a.2.saturating_add(*successes);
                    }
                    None => mine.push((name.clone(), *attempts, *successes)),
                }
            }
        }
    }
}

/// Envelope accounting, from the phones' and the server's sides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Envelopes {
    /// Sealed by the phones.
    pub created: u64,
    /// Acknowledged to the phones (stored, or stored before).
    pub acknowledged: u64,
    /// Rows the server holds for the users.
    pub stored: u64,
    /// Refused for good by the server (honest phones).
    pub rejected: u64,
    /// Refused because the cloned-phone attack got the device revoked: the clones'
    /// envelopes and their victims' once the clone was caught.
    pub rejected_in_attacks: u64,
    /// Evicted by a full outbox.
    pub evicted: u64,
    /// Still waiting in outboxes.
    pub queued: u64,
    /// Created but neither acknowledged, rejected, evicted nor queued.
    pub lost: u64,
    /// Stored more often than created.
    pub duplicated: u64,
}

impl Envelopes {
    /// Adds another run's (a cohort's) counts to these.
    pub fn add(&mut self, o: &Envelopes) {
        self.created = self.created.saturating_add(o.created);
        self.acknowledged = self.acknowledged.saturating_add(o.acknowledged);
        self.stored = self.stored.saturating_add(o.stored);
        self.rejected = self.rejected.saturating_add(o.rejected);
        self.rejected_in_attacks = self
            .rejected_in_attacks
            .saturating_add(o.rejected_in_attacks);
        self.evicted = self.evicted.saturating_add(o.evicted);
        self.queued = self.queued.saturating_add(o.queued);
        self.lost = self.lost.saturating_add(o.lost);
        self.duplicated = self.duplicated.saturating_add(o.duplicated);
    }
}

/// What one cohort of a world run in cohorts cost, and its envelopes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CohortCost {
    /// Its people.
    pub people: usize,
    /// Wall time, s (its setup included).
    pub wall_s: f64,
    /// CPU time of the process while it ran, s.
    pub cpu_s: f64,
    /// The process's peak resident memory when it ended, MiB.
    pub peak_rss_mib: f64,
    /// The backend's folder at its fullest (after the attacks, before the accounting),
    /// MB allocated on disk (0 for a remote backend).
    pub backend_disk_mb: f64,
    /// The phones' folder at the same moment, MB allocated.
    pub phones_disk_mb: f64,
    /// Envelopes stored.
    pub stored: u64,
    /// Envelopes lost.
    pub lost: u64,
    /// Envelopes stored twice.
    pub duplicated: u64,
    /// The `tacit-sim` build that ran it (the start of its executable's SHA-256).
    pub build: String,
}

/// One retraining of a population model from the world's own uploads (`--learn`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainRecord {
    /// When and on what: `day 0 uploads`, or the poisoned retraining after the last day.
    pub stage: String,
    /// The factor.
    pub factor: String,
    /// The registered version (`vN`).
    pub version: u32,
    /// What factor services report for it.
    pub model_version: String,
    /// People trained (and cross-fitted) on.
    pub train_people: usize,
    /// People of the gate cohort.
    pub gate_people: usize,
    /// Windows of the training people.
    pub windows: usize,
    /// Whether the gate passed it.
    pub passed: bool,
    /// Whether it was put in service.
    pub promoted: bool,
    /// The gate's reasons (refusals, or what it compared).
    pub reasons: Vec<String>,
    /// The candidate's realised rates on the gate cohort.
    pub candidate: Vec<OperatingPoint>,
    /// The model in service on the same people (empty: none that reads these windows).
    pub in_service: Vec<OperatingPoint>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// People with phones.
    pub people: usize,
    /// Days lived after enrolment.
    pub days: u32,
    /// Seed.
    pub seed: u64,
    /// Users whose every factor enrolled fully.
    pub enrolled_fully: usize,
    /// Genuine attempts / accepted / stepped up / rejected.
    pub genuine: [u64; 4],
    /// Zero-effort impostor attempts / accepted / stepped up / rejected.
    pub impostor: [u64; 4],
    /// Mimicry attempts / accepted / stepped up / rejected.
    pub mimic: [u64; 4],
    /// Realised rates of the fused decision at the target false-accept rates
    /// `TARGET_FARS` (0.001, 0.01, 0.05), genuine against zero-effort impostors: an
    /// attempt counts as accepted at a target when its estimated FAR is at most it (the
    /// decision's rule; the reject lock aside).
    pub operating_points: Vec<OperatingPoint>,
    /// The same with mimics as the impostors.
    pub mimic_operating_points: Vec<OperatingPoint>,
    /// Rates per factor and fused, genuine against zero-effort impostors.
    pub rates: Vec<FactorRates>,
    /// The same against mimics (`impostor` counts mimicry attempts).
    pub mimic_rates: Vec<FactorRates>,
    /// Attacks that must fail.
    pub attacks: AttackStats,
    /// Envelope accounting.
    pub envelopes: Envelopes,
    /// Envelopes stored per second of the run's wall time (after setup).
    pub ingest_per_s: f64,
    /// Authentication latency, ms: p50, p99, max.
    pub auth_latency_ms: [f64; 3],
    /// Wall time of the run, s (setup = model training and backend start).
    pub wall_s: f64,
    /// Of which setup, s.
    pub setup_s: f64,
    /// CPU time of the process, s.
    pub cpu_s: f64,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: f64,
    /// What the faulty network did.
    pub network: super::FaultCounts,
    /// Backend restarts during the run.
    pub restarts: u64,
    /// Genuine and zero-effort impostor scores per factor and `fused` (for the plots).
    pub scores: Vec<(String, Vec<f64>, Vec<f64>)>,
    /// Stages of the run: `(stage, seconds since the start, envelopes stored so far)`.
    pub timeline: Vec<(String, f64, u64)>,
    /// Day-0 sessions per person.
    pub day0_sessions: u32,
    /// Retrainings from the world's own uploads (`--learn`; empty otherwise).
    pub learning: Vec<RetrainRecord>,
    /// Its cohorts, in order (one when the world ran in one go): what each cost.
    pub cohorts: Vec<CohortCost>,
}

fn rate(v: &[u64; 4], i: usize) -> String {
    if v[0] == 0 {
        "-".into()
    } else {
        format!("{:.3}", v[i] as f64 / v[0] as f64)
    }
}

impl Report {
    /// The report as a text table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "world: {} people, {} days ({} day-0 sessions), seed {}; {} fully enrolled\n",
            self.people, self.days, self.day0_sessions, self.seed, self.enrolled_fully
        );
        s += "\nattempts          n     accept  step_up  reject\n";
        for (name, v) in [
            ("genuine", &self.genuine),
            ("zero-effort", &self.impostor),
            ("mimicry", &self.mimic),
        ] {
            s += &format!(
                "{name:<13} {:>6}  {:>7}  {:>7}  {:>6}\n",
                v[0],
                rate(v, 1),
                rate(v, 2),
                rate(v, 3)
            );
        }
        s += &format!(
            "fused decision: FAR {} (zero-effort), {} (mimicry); FRR {} (genuine not accepted)\n",
            rate(&self.impostor, 1),
            rate(&self.mimic, 1),
            if self.genuine[0] == 0 {
                "-".into()
            } else {
                format!(
                    "{:.3}",
                    1.0 - self.genuine[1] as f64 / self.genuine[0] as f64
                )
            }
        );
        s += "\noperating points (fused, pooled over people; accepted when the estimated FAR <= target)\n";
        s += &operating_table("zero-effort", &self.operating_points, true);
        s += &operating_table("mimicry", &self.mimic_operating_points, false);
        for (title, rates) in [
            ("EER (zero-effort)   genuine  impostor  EER", &self.rates),
            (
                "EER (mimicry)       genuine     mimic  EER",
                &self.mimic_rates,
            ),
        ] {
            s += &format!("\n{title}\n");
            for r in rates {
                s += &format!(
                    "{:<18} {:>8}  {:>8}  {}\n",
                    r.factor,
                    r.genuine,
                    r.impostor,
                    r.eer.map_or("-".into(), |e| format!("{e:.3}"))
                );
            }
        }
        if !self.learning.is_empty() {
            s += "\nmodels trained from the world's uploads (gate: held-out users, candidate vs in service)\n";
            for r in &self.learning {
                s += &format!(
                    "{:<16} {}: v{} ({} train / {} gate people, {} windows): {}{}\n",
                    r.factor,
                    r.stage,
                    r.version,
                    r.train_people,
                    r.gate_people,
                    r.windows,
                    if r.passed {
                        "gate passed"
                    } else {
                        "REFUSED by the gate"
                    },
                    if r.promoted { ", promoted" } else { "" }
                );
                s += &format!("                 {}\n", r.reasons.join("; "));
            }
        }
        s += "\nattacks that must fail                      attempts  successes\n";
        for (n, a, k) in &self.attacks.attacks {
            s += &format!("{n:<43} {a:>9}  {k:>9}\n");
        }
        if !self.attacks.measured.is_empty() {
            s += "attacks only the behaviour stands against\n";
            for (n, a, k) in &self.attacks.measured {
                s += &format!("{n:<43} {a:>9}  {k:>9}\n");
            }
        }
        let n = &self.network;
        s += &format!(
            "\nnetwork: {} requests; dropped {} before and {} after the backend, {} delivered twice, {} captive-portal pages; {} backend restarts\n",
            n.requests,
            n.dropped_requests,
            n.dropped_responses,
            n.duplicated,
            n.garbage,
            self.restarts
        );
        let e = &self.envelopes;
        s += &format!(
            "envelopes: created {}, acknowledged {}, stored {}, rejected {} (+{} of revoked cloned devices), evicted {}, queued {}, lost {}, duplicated {}\n",
            e.created,
            e.acknowledged,
            e.stored,
            e.rejected,
            e.rejected_in_attacks,
            e.evicted,
            e.queued,
            e.lost,
            e.duplicated
        );
        s += &format!(
            "ingest {:.0} envelopes/s; authenticate p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
            self.ingest_per_s,
            self.auth_latency_ms[0],
            self.auth_latency_ms[1],
            self.auth_latency_ms[2]
        );
        s += &format!(
            "time {:.1} s (setup {:.1} s), CPU {:.1} s, peak RSS {:.0} MiB\n",
            self.wall_s, self.setup_s, self.cpu_s, self.peak_rss_mib
        );
        let most = |f: fn(&CohortCost) -> f64| self.cohorts.iter().map(f).fold(0.0, f64::max);
        let (backend, phones) = (most(|c| c.backend_disk_mb), most(|c| c.phones_disk_mb));
        s += &format!(
            "disk after the attacks: {}phones {phones:.0} MB",
            if backend > 0.0 {
                format!("backend {backend:.0} MB, ")
            } else {
                // A remote backend's disk is not this machine's.
                String::new()
            }
        );
        if self.cohorts.len() > 1 {
            let sizes = self.cohorts.iter().map(|c| c.people);
            s += &format!(
                " (the fullest of {} cohorts of {}..={} people, run one after another)",
                self.cohorts.len(),
                sizes.clone().min().unwrap_or(0),
                sizes.max().unwrap_or(0)
            );
        }
        s += "\n";
        let mut builds: Vec<&str> = Vec::new();
        for c in &self.cohorts {
            if !builds.contains(&c.build.as_str()) {
                builds.push(&c.build);
            }
        }
        if builds.len() > 1 {
            s += &format!(
                "cohorts run by {} tacit-sim builds, in order of first use: {}\n",
                builds.len(),
                builds.join(", ")
            );
        }
        s
    }
}

/// `(cpu seconds, peak RSS MiB)` of this process (Linux; zeros elsewhere).
pub fn resources() -> (f64, f64) {
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let f: Vec<&str> = s[s.rfind(')')? + 2..].split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0);
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0);
    (cpu, rss)
}

/// The `p`-quantile (0..=1) of `v` (sorted in place); 0 when empty.
pub fn quantile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// A DET curve per score (probit axes), drawn by the models' evaluation code.
fn det_plot(scores: &[(String, Vec<f64>, Vec<f64>)]) -> String {
    use tacit_models::eval::metrics::det_points;
    use tacit_models::eval::{MethodResult, det_svg};
    let results: Vec<MethodResult> = scores
        .iter()
        .filter(|(_, g, i)| !g.is_empty() && !i.is_empty())
        .map(|(name, g, i)| {
            let eer = error_rates(g, i);
            MethodResult {
                protocol: "simulated world".into(),
                method: name.clone(),
                level: "authentication".into(),
                impostors: "zero-effort".into(),
                people: 0,
                eer_mean: eer.map_or(f64::NAN, |e| e.eer),
                eer_sd: 0.0,
                far_at_frr5: eer.map_or(f64::NAN, |e| e.far_at_frr5),
                frr_at_far1: eer.map_or(f64::NAN, |e| e.frr_at_far1),
                pooled_eer: eer.map_or(f64::NAN, |e| e.eer),
                per_person_eer: Vec::new(),
                det: det_points(g, i),
                operating_points: Vec::new(),
            }
        })
        .collect();
    let refs: Vec<&MethodResult> = results.iter().collect();
    det_svg("DET: genuine vs zero-effort impostors", &refs)
}

/// Histograms of the fused LLR of genuine and impostor attempts.
fn histogram(genuine: &[f64], impostor: &[f64]) -> String {
    let (w, h, m) = (640.0, 300.0, 40.0);
    let all: Vec<f64> = genuine
        .iter()
        .chain(impostor)
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if all.is_empty() {
        return "<p>no scores</p>".into();
    }
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .max(lo + 1.0);
    let bins = 40usize;
    let count = |v: &[f64]| {
        let mut c = vec![0usize; bins];
        for x in v.iter().filter(|x| x.is_finite()) {
            let b = (((x - lo) / (hi - lo)) * bins as f64) as usize;
            c[b.min(bins - 1)] += 1;
        }
        c
    };
    let (cg, ci) = (count(genuine), count(impostor));
    let top = cg.iter().chain(&ci).copied().max().unwrap_or(1).max(1) as f64;
    let bw = (w - 2.0 * m) / bins as f64;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    for (c, colour) in [(&cg, "#1f77b4"), (&ci, "#d62728")] {
        for (i, n) in c.iter().enumerate() {
            let bh = *n as f64 / top * (h - 2.0 * m);
            s += &format!(
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}" fill-opacity="0.55"/>"#,
                m + i as f64 * bw,
                h - m - bh,
                bw,
                bh
            );
        }
    }
    s += &format!(
        r#"<line x1="{m}" y1="{y}" x2="{x2}" y2="{y}" stroke="black"/><text x="{m}" y="{ty}">{lo:.1}</text><text x="{x2}" y="{ty}" text-anchor="end">{hi:.1}</text><text x="{cx}" y="{ty}" text-anchor="middle">fused LLR (blue: genuine, red: zero-effort impostor)</text></svg>"#,
        y = h - m,
        x2 = w - m,
        ty = h - m + 16.0,
        cx = w / 2.0
    );
    s
}

const GREEN: &str = "#2ca02c";

/// Envelopes stored per second in each stage of the run.
fn throughput(timeline: &[(String, f64, u64)]) -> String {
    let rows: Vec<(String, f64)> = timeline
        .windows(2)
        .map(|p| {
            let dt = (p[1].1 - p[0].1).max(1e-9);
            (p[1].0.clone(), p[1].2.saturating_sub(p[0].2) as f64 / dt)
        })
        .collect();
    let (w, m, bar) = (640.0, 200.0, 22.0);
    let h = 20.0 + bar * rows.len() as f64;
    let top = rows.iter().map(|r| r.1).fold(1.0, f64::max);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    for (i, (name, rate)) in rows.iter().enumerate() {
        let y = 10.0 + i as f64 * bar;
        s += &format!(
            r##"<text x="{}" y="{:.1}" text-anchor="end">{}</text><rect x="{m}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{GREEN}"/><text x="{:.1}" y="{:.1}">{rate:.0}/s</text>"##,
            m - 6.0,
            y + 15.0,
            escape(name),
            y + 3.0,
            rate / top * (w - m - 80.0),
            bar - 6.0,
            m + rate / top * (w - m - 80.0) + 4.0,
            y + 15.0
        );
    }
    s + "</svg>"
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Report {
    /// A self-contained HTML page (inline SVG plots, no external resources): opens in
    /// any browser without a server.
    pub fn html(&self) -> String {
        let fused = self
            .scores
            .iter()
            .find(|(n, _, _)| n == "fused")
            .map(|(_, g, i)| histogram(g, i))
            .unwrap_or_default();
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tacit simulated world</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}}pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}h2{{margin-top:2em}}</style>
<script>window.tacitErrors = 0; window.addEventListener("error", function () {{ window.tacitErrors += 1; }});</script></head>
<body data-rendered="no">
<h1>Tacit simulated world</h1>
<p>{people} people, {days} days, seed {seed}. Generated by <code>tacit-sim</code>; the same numbers are in <code>report.json</code>.</p>
<h2>Summary</h2>
<pre>{table}</pre>
<h2>DET curves</h2>
{det}
<h2>Score distributions</h2>
{fused}
<h2>Ingest throughput by stage</h2>
{tp}
<script>
document.body.dataset.rendered = window.tacitErrors > 0 ? "error"
  : document.querySelectorAll("svg").length >= 3 ? "ok" : "missing-plots";
</script>
</body></html>
"#,
            people = self.people,
            days = self.days,
            seed = self.seed,
            table = escape(&self.table()),
            det = det_plot(&self.scores),
            tp = throughput(&self.timeline),
        )
    }
}
