//! A deterministic generator of key-event CSV files of a fixed 10-key phrase typed on a
//! touch screen, for checking the touch features.
//!
//! Timings are log-normal around common base times; people differ in them only
//! weakly (a person's level and rhythm sd 0.04–0.08 against a within-person noise of
//! 0.2–0.3), so timings alone separate people poorly. Touch carries the identity: each
//! person has their own mean pressure (0.2..0.8, with a small per-key pattern), their own
//! mean contact area (0.03..0.16, log-uniform, a little larger where they press harder)
//! and their own steadiness; each entry drifts a little as a whole. The same draws are
//! made whether or not the touch columns are written, so both files have identical
//! timings.

use tacit_models::SplitMix64;

/// Keys of the phrase: `passwd123` and Return.
pub const KEYS: usize = 10;

const LABELS: [&str; KEYS] = ["p", "a", "s", "s", "w", "d", "1", "2", "3", "Return"];
const BASE_HOLD_MS: [f64; KEYS] = [95.0, 88.0, 84.0, 90.0, 92.0, 86.0, 99.0, 93.0, 97.0, 105.0];
const BASE_DD_MS: [f64; KEYS - 1] = [
    210.0, 160.0, 150.0, 230.0, 190.0, 320.0, 170.0, 165.0, 260.0,
];

/// Which columns the CSV has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `user,session,sample,key,down_ms,up_ms`.
    Timings,
    /// The same plus `pressure,area`.
    Touch,
}

/// The shape of the generated data set.
#[derive(Debug, Clone)]
pub struct SyntheticTyping {
    /// People.
    pub people: usize,
    /// Sessions per person.
    pub sessions: u32,
    /// Entries per session.
    pub entries_per_session: u32,
    /// Seed of everything.
    pub seed: u64,
}

impl Default for SyntheticTyping {
    /// 30 people × 3 sessions × 20 entries.
    fn default() -> Self {
        SyntheticTyping {
            people: 30,
            sessions: 3,
            entries_per_session: 20,
            seed: 0x70c4,
        }
    }
}

struct Habit {
    hold_level: f64,
    dd_level: f64,
    hold_offsets: [f64; KEYS],
    dd_offsets: [f64; KEYS - 1],
    pressure: f64,
    pressure_keys: [f64; KEYS],
    pressure_sd: f64,
    area: f64,
    area_sd: f64,
}

fn uniform(rng: &mut SplitMix64, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
}

impl Habit {
    fn draw(rng: &mut SplitMix64) -> Habit {
        let pressure = uniform(rng, 0.2, 0.8);
        Habit {
            hold_level: 0.06 * rng.normal(),
            dd_level: 0.08 * rng.normal(),
            hold_offsets: std::array::from_fn(|_| 0.04 * rng.normal()),
            dd_offsets: std::array::from_fn(|_| 0.05 * rng.normal()),
            pressure,
            pressure_keys: std::array::from_fn(|_| 0.03 * rng.normal()),
            pressure_sd: uniform(rng, 0.03, 0.07),
            // Log-uniform 0.03..0.16, 20% larger for the hardest presser.
            area: uniform(rng, 0.03f64.ln(), 0.16f64.ln()).exp() * (0.9 + 0.2 * pressure),
            area_sd: uniform(rng, 0.06, 0.12),
        }
    }
}

impl SyntheticTyping {
    /// The CSV text (header first), rows in typing order.
    pub fn csv(&self, layout: Layout) -> String {
        let mut out = String::from("user,session,sample,key,down_ms,up_ms");
        if layout == Layout::Touch {
            out.push_str(",pressure,area");
        }
        out.push('\n');
        for person in 0..self.people {
            let mut rng = SplitMix64::new(self.seed ^ (person as u64).wrapping_mul(0x9E37));
            let h = Habit::draw(&mut rng);
            let mut t0 = 0.0;
            for session in 1..=self.sessions {
                for sample in 1..=self.entries_per_session {
                    let tempo = 0.08 * rng.normal();
                    let entry_pressure = 0.03 * rng.normal();
                    let entry_area = 0.05 * rng.normal();
                    let mut down = t0;
                    for k in 0..KEYS {
                        let hold = BASE_HOLD_MS[k]
                            * (h.hold_level + h.hold_offsets[k] + 0.2 * rng.normal()).exp();
                        let pressure = (h.pressure
                            + h.pressure_keys[k]
                            + entry_pressure
                            + h.pressure_sd * rng.normal())
                        .clamp(0.01, 1.0);
                        let area = (h.area * (entry_area + h.area_sd * rng.normal()).exp())
                            .clamp(0.01, 0.25);
                        out.push_str(&format!(
                            "p{person},{session},{sample},{},{down:.3},{:.3}",
                            LABELS[k],
                            down + hold
                        ));
                        if layout == Layout::Touch {
                            out.push_str(&format!(",{pressure:.4},{area:.4}"));
                        }
                        out.push('\n');
                        if k + 1 < KEYS {
                            down += BASE_DD_MS[k]
                                * (h.dd_level + h.dd_offsets[k] + tempo + 0.3 * rng.normal()).exp();
                        }
                    }
                    t0 = down + 5_000.0;
                }
                t0 += 86_400_000.0;
            }
        }
        out
    }
}
