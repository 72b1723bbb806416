//! Synthetic people: a seeded population model and the person it draws for an index.

use tacit_features::dsp::{KeyEvent, MotionSample};

use crate::gait::{GaitPopulation, GaitProfile, HARMONICS};
use crate::rng::{SplitMix64, derive};
use crate::typing::{TypingPopulation, TypingProfile, TypingSession};

const TAG_PERSON: u64 = 0xBE0B1E;
const TAG_GAIT: u64 = 0x6A17;
const TAG_TYPING: u64 = 0x7E7E;

/// A population: its seed and the distributions people are drawn from. Person `i` is a
/// pure function of `(seed, distributions, i)`.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationModel {
    /// The population seed.
    pub seed: u64,
    /// How gaits vary between people.
    pub gait: GaitPopulation,
    /// How typing varies between people.
    pub typing: TypingPopulation,
}

impl Default for PopulationModel {
    /// The default population (seed `0x7AC17`, distributions fitted to the reference
    /// data sets; see [`crate::gait`] and [`crate::typing`]).
    fn default() -> Self {
        PopulationModel::with_seed(0x7AC17)
    }
}

impl PopulationModel {
    /// The default distributions with another seed (another, independent population).
    pub fn with_seed(seed: u64) -> Self {
        PopulationModel {
            seed,
            gait: GaitPopulation::default(),
            typing: TypingPopulation::default(),
        }
    }

    /// Person number `index` of this population (deterministic).
    pub fn person(&self, index: u64) -> Person {
        let seed = derive(self.seed, TAG_PERSON, index);
        let gait = GaitProfile::draw(&self.gait, &mut SplitMix64::new(derive(seed, TAG_GAIT, 0)));
        let typing = TypingProfile::draw(
            &self.typing,
            &mut SplitMix64::new(derive(seed, TAG_TYPING, 0)),
        );
        Person {
            index,
            seed,
            gait,
            typing,
            session_sd: self.typing.session_sd,
        }
    }
}

/// One synthetic person: how they walk and how they type.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// Index in the population.
    pub index: u64,
    /// The person's own seed (derived from the population seed and the index); it
    /// fixes their day-to-day drift.
    pub seed: u64,
    /// Their gait.
    pub gait: GaitProfile,
    /// Their typing.
    pub typing: TypingProfile,
    /// Day-to-day drift of their typing levels (log-sd, from the population).
    pub session_sd: f64,
}

impl Person {
    /// A stable identifier, `sim-<index>`.
    pub fn id(&self) -> String {
        format!("sim-{}", self.index)
    }

    /// `seconds` of walking with the phone in the front trouser pocket, as the phone's
    /// accelerometer reports it: about 50 Hz with irregular timestamps (first at
    /// `t0_ns`; use Unix-epoch ns for the phone client), m/s² with gravity, no gyroscope.
    /// `session` (day) shifts the gait and the phone's orientation slightly and
    /// deterministically; `rng` drives everything that changes from walk to walk.
    /// Empty for a non-positive or non-finite duration; at most one day.
    pub fn walk(
        &self,
        seconds: f64,
        t0_ns: i64,
        session: u32,
        rng: &mut SplitMix64,
    ) -> Vec<MotionSample> {
        self.gait
            .session(self.seed, session)
            .walk(seconds, t0_ns, rng)
    }

    /// `seconds` of not walking (standing still with the phone in the pocket), same
    /// sensor and timing model as [`Person::walk`]. The phone must find no walking here.
    pub fn stand(
        &self,
        seconds: f64,
        t0_ns: i64,
        session: u32,
        rng: &mut SplitMix64,
    ) -> Vec<MotionSample> {
        self.gait
            .session(self.seed, session)
            .still(seconds, t0_ns, rng)
    }

    /// The person's typing on day `session` (see [`TypingSession`]).
    pub fn typing_session(&self, session: u32) -> TypingSession {
        TypingSession::new(&self.typing, self.seed, session, self.session_sd)
    }

    /// One entry of a fixed phrase of `keys` keys, first key-down at `t0_ns`: a rested,
    /// warmed-up entry of session 0 (for drift, warm-up and fatigue over many entries
    /// use [`Person::typing_session`]). 11 keys is the CMU password `.tie5Roanl` +
    /// Return (a 31-value record). Empty when `keys` is outside 2..=128.
    pub fn type_phrase(&self, keys: usize, t0_ns: i64, rng: &mut SplitMix64) -> Vec<KeyEvent> {
        self.typing_session(0)
            .skip_entries(10)
            .entry(keys, t0_ns, rng)
    }

    /// `n_keys` key events of free text (letters, spaces, some digits and punctuation,
    /// corrected typos, pauses), first key-down at `t0_ns`, session 0.
    pub fn type_free(&self, n_keys: usize, t0_ns: i64, rng: &mut SplitMix64) -> Vec<KeyEvent> {
        self.typing_session(0)
            .skip_entries(10)
            .free(n_keys, t0_ns, rng)
    }

    /// This person imitating `victim` with `strength` in `0..=1` (clamped; NaN = 0):
    /// what can be watched and copied moves towards the victim — the cadence and the
    /// typing speed and rhythm by `strength`, the harder-to-copy body mechanics (gait
    /// harmonics, thigh swing) by `strength / 2`, the waveform's phases by
    /// `strength / 4`. Conscious imitation is less steady: the within-person noise
    /// grows by up to 30%. Keeps this person's index, seed and pocket, and their touch
    /// habit (how hard a key is pressed and how much skin touches it cannot be watched).
    pub fn mimic(&self, victim: &Person, strength: f64) -> Person {
        let s = if strength.is_nan() {
            0.0
        } else {
            strength.clamp(0.0, 1.0)
        };
        let lerp = |a: f64, b: f64, w: f64| a + w * (b - a);
        let log_lerp = |a: f64, b: f64, w: f64| {
            if w == 0.0 {
                a
            } else {
                lerp(a.ln(), b.ln(), w).exp()
            }
        };
        let mut m = self.clone();
        let (g, v) = (&mut m.gait, &victim.gait);
        g.cadence_hz = log_lerp(g.cadence_hz, v.cadence_hz, s);
        for axis in 0..3 {
            for j in 0..HARMONICS {
                g.amplitude[axis][j] =
                    log_lerp(g.amplitude[axis][j], v.amplitude[axis][j], 0.5 * s);
                // Along the shorter arc.
                let d = (v.phase[axis][j] - g.phase[axis][j] + std::f64::consts::PI)
                    .rem_euclid(2.0 * std::f64::consts::PI)
                    - std::f64::consts::PI;
                g.phase[axis][j] += 0.25 * s * d;
            }
        }
        g.swing_rad = lerp(g.swing_rad, v.swing_rad, 0.5 * s);
        g.stride_cv *= 1.0 + 0.3 * s;
        g.shape_jitter *= 1.0 + 0.3 * s;
        let (t, v) = (&mut m.typing, &victim.typing);
        t.hold_level = lerp(t.hold_level, v.hold_level, s);
        t.dd_level = lerp(t.dd_level, v.dd_level, s);
        for (a, b) in t.hold_offsets.iter_mut().zip(&v.hold_offsets) {
            *a = lerp(*a, *b, s);
        }
        for (a, b) in t.dd_offsets.iter_mut().zip(&v.dd_offsets) {
            *a = lerp(*a, *b, s);
        }
        for (a, b) in t.class_hold.iter_mut().zip(&v.class_hold) {
            *a = lerp(*a, *b, s);
        }
        for (a, b) in t.pair_dd.iter_mut().zip(&v.pair_dd) {
            *a = lerp(*a, *b, s);
        }
        t.hold_noise *= 1.0 + 0.3 * s;
        t.dd_noise *= 1.0 + 0.3 * s;
        t.tempo_sd *= 1.0 + 0.3 * s;
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_are_deterministic_and_distinct() {
        let m = PopulationModel::default();
        assert_eq!(m.person(3), m.person(3));
        assert_ne!(m.person(3), m.person(4));
        assert_ne!(
            PopulationModel::with_seed(1).person(3),
            PopulationModel::with_seed(2).person(3)
        );
        assert_eq!(m.person(7).id(), "sim-7");
    }

    #[test]
    fn mimicry_moves_towards_the_victim() {
        let m = PopulationModel::default();
        let (a, b) = (m.person(1), m.person(2));
        assert_eq!(a.mimic(&b, 0.0), a);
        assert_eq!(a.mimic(&b, f64::NAN), a);
        let full = a.mimic(&b, 1.0);
        assert!((full.gait.cadence_hz - b.gait.cadence_hz).abs() < 1e-9);
        assert!(
            full.typing
                .dd_offsets
                .iter()
                .zip(&b.typing.dd_offsets)
                .all(|(x, y)| (x - y).abs() < 1e-12)
        );
        let half = a.mimic(&b, 0.5);
        let d = |p: &Person| (p.typing.dd_level - b.typing.dd_level).abs();
        assert!(d(&half) < d(&a) && d(&full) < d(&half));
        assert_eq!(half.index, a.index);
    }
}
