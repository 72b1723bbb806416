//! What a run measured: accuracy of the fused decision and of each factor, attack
//! success rates, envelope accounting, throughput, latency and resources.

use serde::Serialize;
use tacit_models::eval::metrics::error_rates;

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
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AttackStats {
    /// Attempts per attack: `(name, attempts, successes)`.
    pub attacks: Vec<(String, u64, u64)>,
}

impl AttackStats {
    /// Counts one attempt.
    pub fn count(&mut self, name: &str, success: bool) {
        match self.attacks.iter_mut().find(|(n, _, _)| n == name) {
            Some(a) => {
                a.1 += 1;
                a.2 += u64::from(success);
            }
            None => self.attacks.push((name.to_string(), 1, u64::from(success))),
        }
    }
}

/// Envelope accounting, from the phones' and the server's sides.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Envelopes {
    /// Sealed by the phones.
    pub created: u64,
    /// Acknowledged to the phones (stored, or stored before).
    pub acknowledged: u64,
    /// Rows the server holds for the users.
    pub stored: u64,
    /// Refused for good by the server.
    pub rejected: u64,
    /// Evicted by a full outbox.
    pub evicted: u64,
    /// Still waiting in outboxes.
    pub queued: u64,
    /// Created but neither acknowledged, rejected, evicted nor queued.
    pub lost: u64,
    /// Stored more often than created.
    pub duplicated: u64,
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
    /// Rates per factor and fused.
    pub rates: Vec<FactorRates>,
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
    /// Genuine and impostor fused LLRs (for plots).
    pub fused_scores: (Vec<f64>, Vec<f64>),
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
            "world: {} people, {} days, seed {}; {} fully enrolled\n",
            self.people, self.days, self.seed, self.enrolled_fully
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
        s += "\nEER (zero-effort)   genuine  impostor  EER\n";
        for r in &self.rates {
            s += &format!(
                "{:<18} {:>8}  {:>8}  {}\n",
                r.factor,
                r.genuine,
                r.impostor,
                r.eer.map_or("-".into(), |e| format!("{e:.3}"))
            );
        }
        s += "\nattacks that must fail      attempts  successes\n";
        for (n, a, k) in &self.attacks.attacks {
            s += &format!("{n:<27} {a:>9}  {k:>9}\n");
        }
        let n = &self.network;
        s += &format!(
            "\nnetwork: {} requests; dropped {} before and {} after the backend, {} delivered twice, {} captive-portal pages\n",
            n.requests, n.dropped_requests, n.dropped_responses, n.duplicated, n.garbage
        );
        let e = &self.envelopes;
        s += &format!(
            "envelopes: created {}, acknowledged {}, stored {}, rejected {}, evicted {}, queued {}, lost {}, duplicated {}\n",
            e.created,
            e.acknowledged,
            e.stored,
            e.rejected,
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
