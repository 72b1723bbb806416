//! Synthetic typing: entries of a fixed phrase (a password) and free text.
//!
//! Every timing is log-normal. A key's hold time is
//! `base_hold(key) · exp(hold_level + hold_offset(key) + noise)` and the down-down
//! latency of a digraph `base_dd(digraph) · exp(dd_level + dd_offset(digraph) + noise)
//! · tempo`, where the levels are the person's overall speed, the offsets their
//! personal rhythm on this phrase, and `tempo` the speed of this one entry. On top:
//! day-to-day drift with a practice effect (the phrase gets faster over the first
//! sessions), a warm-up at the start and fatigue after many entries of a session,
//! occasional slow entries and hesitations on single digraphs.
//!
//! Fitted to the CMU keystroke benchmark (`shared/data/keystroke/cmu`, 51 people ×
//! 8 sessions × 50 entries of `.tie5Roanl` + Return), in log space. The base times
//! are the CMU geometric means per key and digraph; the other parameters were set so
//! that the same design simulated (51 × 8 × 50) reproduces what the CMU file shows
//! (measured on the file → simulated): between-person sd of the per-key means 0.26 →
//! 0.26 (hold) and 0.36 → 0.36 (DD), split into a person level (measured 0.21 / 0.30)
//! and personal offsets (0.15 / 0.22); within-person sd 0.19 → 0.18 (hold) and 0.34 →
//! 0.35 (DD); sd of an entry's mean tempo within a session 0.13 → 0.15; sd of the
//! session means 0.11 → 0.12; the practice curve (session-mean DD 241 → 180 ms from
//! day 1 to 8; simulated 244 → 181); the warm-up (the first entry of day 1 is ×1.5
//! slower than the session median, of day 2 ×1.36, later ×1.17); 6.5% → 6.5% of entries
//! more than 1.5× slower than the person's median; 3.1% → 2.6% of digraphs more than
//! 2.5× slower; 11% of key pairs overlapping (negative UD) → 11%.
//! `tests/real_data.rs` checks the per-key means, the spread between people and the
//! one-class scaled-Manhattan EER (CMU 0.096, simulated 0.126) against the file.
//! Free-text timings reuse the same person parameters with class-level base times
//! (not fitted to a free-text data set).
//!
//! Touch: every key event carries a pressure and a contact area (normalised as Android
//! reports them), so the simulated phones write fixed-text schema version 2. Each person
//! has a pressure habit (mean, per-key pattern, steadiness) and an area habit (mean,
//! steadiness), drifting a little from day to day and entry to entry ([`TouchHabit`]).
//! No public touch data set is at hand to fit them to: the ranges are plausible phone
//! values, not measured ones. Touch draws come from their own seeded stream, so the
//! timings are the same draws as without touch.

use tacit_features::dsp::{KeyClass, KeyEvent};
use tacit_shared::schema::{KEYSTROKE_FIXED_MAX_KEYS, KEYSTROKE_FIXED_MIN_KEYS};

use crate::rng::{Draw, SplitMix64, derive};

/// The CMU benchmark's phrase as the phone's client receives it (`.tie5Roanl` and
/// Return, 11 keys: `Client::record_phrase_entry` counts the characters).
pub const CMU_PHRASE: &str = ".tie5Roanl\n";

/// Keys of [`CMU_PHRASE`] (the 31-value fixed-text record).
pub const CMU_KEYS: usize = 11;

/// Geometric-mean hold time (ms) of each CMU key across the 51 people.
pub const CMU_HOLD_MS: [f64; CMU_KEYS] = [
    89.0, 82.0, 77.0, 84.0, 74.0, 90.0, 84.0, 101.0, 85.0, 91.0, 84.0,
];

/// Geometric-mean down-down latency (ms) of each CMU digraph across the 51 people.
pub const CMU_DD_MS: [f64; CMU_KEYS - 1] = [
    221.0, 149.0, 129.0, 320.0, 400.0, 218.0, 138.0, 130.0, 170.0, 282.0,
];

const TAG_SESSION: u64 = 0x7E55;
const TAG_TOUCH: u64 = 0x70C4;

/// Mean of the practice curve `exp(-s/3)` over the CMU benchmark's 8 sessions.
const LEARN_MEAN: f64 = 0.4103;

/// The key classes of a fixed phrase of `keys` keys: the CMU phrase's classes for 11
/// keys; otherwise letters ending with Return. Empty outside the schema's 2..=128.
pub fn phrase_classes(keys: usize) -> Vec<KeyClass> {
    if !(KEYSTROKE_FIXED_MIN_KEYS..=KEYSTROKE_FIXED_MAX_KEYS).contains(&keys) {
        return Vec::new();
    }
    if keys == CMU_KEYS {
        return tacit_models::datasets::CMU_KEY_CLASSES.to_vec();
    }
    let mut v = vec![KeyClass::Letter; keys];
    v[keys - 1] = KeyClass::Enter;
    v
}

/// Population-level typing parameters (log-space standard deviations unless stated).
#[derive(Debug, Clone, PartialEq)]
pub struct TypingPopulation {
    /// Between-person sd of the overall hold level (CMU: 0.21).
    pub hold_level_sd: f64,
    /// Between-person sd of the overall down-down level, the speed (CMU: 0.30;
    /// 0.27 here because the practice effect varies between people too).
    pub dd_level_sd: f64,
    /// Between-person sd of the per-key hold offsets, the personal rhythm (CMU: 0.15).
    pub hold_key_sd: f64,
    /// Between-person sd of the per-digraph offsets (CMU: 0.22).
    pub dd_key_sd: f64,
    /// Typical within-entry noise of a hold (set so that the within-person sd is
    /// CMU's 0.19).
    pub hold_noise: f64,
    /// Typical within-entry noise of a down-down latency (within-person sd: CMU 0.34).
    pub dd_noise: f64,
    /// Typical sd of an entry's tempo (with the noise: CMU's 0.13 within a session).
    pub tempo_sd: f64,
    /// Day-to-day drift of the levels (with practice: CMU's 0.11 between sessions).
    pub session_sd: f64,
    /// Typical practice effect: log of (day-1 speed / practised speed) (CMU: 0.35).
    pub practice: f64,
    /// Typical share of slow entries (CMU: 6.5% of entries 1.5× slower than the
    /// median, with the other sources of slowness).
    pub slow_entry_rate: f64,
    /// Typical share of digraphs with a hesitation (CMU: 3%).
    pub hesitation_rate: f64,
    /// Typical share of free-text letters typed wrong and corrected.
    pub error_rate: f64,
    /// How touch habits vary between people; `None`: key events carry no touch (the
    /// phones then write fixed-text schema version 1).
    pub touch: Option<TouchPopulation>,
}

/// Population-level touch parameters: pressure and contact area in the platform's
/// normalised units (Android `getPressure`/`getSize`).
#[derive(Debug, Clone, PartialEq)]
pub struct TouchPopulation {
    /// Mean of the people's typical pressure.
    pub pressure_mean: f64,
    /// Between-person sd of the typical pressure.
    pub pressure_sd: f64,
    /// Between-person sd of the per-key pressure pattern.
    pub pressure_key_sd: f64,
    /// Typical within-person sd of one key's pressure.
    pub pressure_noise: f64,
    /// Median of the people's typical contact area.
    pub area_median: f64,
    /// Between-person log-sd of the typical area.
    pub area_log_sd: f64,
    /// Typical within-person log-sd of one key's area.
    pub area_noise: f64,
    /// Day-to-day drift of pressure (absolute) and area (log).
    pub session_sd: f64,
}

impl Default for TouchPopulation {
    fn default() -> Self {
        TouchPopulation {
            pressure_mean: 0.45,
            pressure_sd: 0.12,
            pressure_key_sd: 0.04,
            pressure_noise: 0.06,
            area_median: 0.07,
            area_log_sd: 0.35,
            area_noise: 0.12,
            session_sd: 0.03,
        }
    }
}

/// One person's touch habit.
#[derive(Debug, Clone, PartialEq)]
pub struct TouchHabit {
    /// Typical pressure (0..1).
    pub pressure: f64,
    /// Personal pressure offset of key position `k` of a phrase (128 positions).
    pub pressure_offsets: Vec<f64>,
    /// Within-person sd of one key's pressure.
    pub pressure_noise: f64,
    /// Typical contact area (0.02..0.2).
    pub area: f64,
    /// Within-person log-sd of one key's area.
    pub area_noise: f64,
    /// Day-to-day drift (pressure absolute, area log).
    pub session_sd: f64,
}

impl TouchHabit {
    /// Draws a person's touch habit; people who press harder touch a little more skin.
    pub fn draw(pop: &TouchPopulation, rng: &mut SplitMix64) -> TouchHabit {
        let pressure = rng
            .gauss(pop.pressure_mean, pop.pressure_sd)
            .clamp(0.1, 0.9);
        let firmness = (pressure - pop.pressure_mean) / pop.pressure_sd.max(1e-9);
        TouchHabit {
            pressure,
            pressure_offsets: (0..KEYSTROKE_FIXED_MAX_KEYS)
                .map(|_| rng.gauss(0.0, pop.pressure_key_sd))
                .collect(),
            pressure_noise: pop.pressure_noise * rng.gauss(0.0, 0.25).exp(),
            area: (pop.area_median * (rng.gauss(0.0, pop.area_log_sd) + 0.1 * firmness).exp())
                .clamp(0.02, 0.2),
            area_noise: pop.area_noise * rng.gauss(0.0, 0.25).exp(),
            session_sd: pop.session_sd,
        }
    }
}

impl Default for TypingPopulation {
    fn default() -> Self {
        TypingPopulation {
            hold_level_sd: 0.21,
            dd_level_sd: 0.27,
            hold_key_sd: 0.15,
            dd_key_sd: 0.22,
            hold_noise: 0.16,
            dd_noise: 0.22,
            tempo_sd: 0.05,
            session_sd: 0.06,
            practice: 0.35,
            slow_entry_rate: 0.03,
            hesitation_rate: 0.025,
            error_rate: 0.03,
            touch: Some(TouchPopulation::default()),
        }
    }
}

/// Free-text key slots of [`TypingProfile::class_hold`].
const FREE_HOLD_SLOTS: usize = 5;
/// Free-text digraph slots of [`TypingProfile::pair_dd`].
const FREE_PAIR_SLOTS: usize = 6;

/// One person's typing.
#[derive(Debug, Clone, PartialEq)]
pub struct TypingProfile {
    /// Overall hold level (log multiplier of the base hold times).
    pub hold_level: f64,
    /// Overall down-down level (log multiplier; positive = slower).
    pub dd_level: f64,
    /// Personal hold offset of key position `k` of a phrase (128 positions).
    pub hold_offsets: Vec<f64>,
    /// Personal offset of digraph `k → k+1` of a phrase (127 positions).
    pub dd_offsets: Vec<f64>,
    /// Free text: hold offset per class (letter, space, digit/punctuation, backspace,
    /// other).
    pub class_hold: [f64; FREE_HOLD_SLOTS],
    /// Free text: down-down offset per class pair (letter→letter, letter→space,
    /// space→letter, →backspace, backspace→, other).
    pub pair_dd: [f64; FREE_PAIR_SLOTS],
    /// Within-entry noise of a hold (log-sd).
    pub hold_noise: f64,
    /// Within-entry noise of a down-down latency (log-sd).
    pub dd_noise: f64,
    /// Sd of an entry's tempo (log).
    pub tempo_sd: f64,
    /// Practice effect: log of (first-day speed / practised speed).
    pub practice: f64,
    /// Probability of a slow entry (every digraph 1.35–2.2× slower).
    pub slow_entry_rate: f64,
    /// Probability of a hesitation (2–5× slower) on one digraph.
    pub hesitation_rate: f64,
    /// Free text: probability of a wrong letter followed by Backspace.
    pub error_rate: f64,
    /// Touch habit (`None`: the keys report no touch).
    pub touch: Option<TouchHabit>,
}

impl TypingProfile {
    /// Draws a person's typing from the population.
    pub fn draw(pop: &TypingPopulation, rng: &mut SplitMix64) -> TypingProfile {
        // A person's typical variability itself varies (some are steadier).
        let spread = |rng: &mut SplitMix64, typical: f64| typical * rng.gauss(0.0, 0.25).exp();
        TypingProfile {
            hold_level: rng.gauss(0.0, pop.hold_level_sd),
            dd_level: rng.gauss(0.0, pop.dd_level_sd),
            hold_offsets: (0..KEYSTROKE_FIXED_MAX_KEYS)
                .map(|_| rng.gauss(0.0, pop.hold_key_sd))
                .collect(),
            dd_offsets: (0..KEYSTROKE_FIXED_MAX_KEYS - 1)
                .map(|_| rng.gauss(0.0, pop.dd_key_sd))
                .collect(),
            class_hold: [0.0; FREE_HOLD_SLOTS].map(|_: f64| rng.gauss(0.0, pop.hold_key_sd)),
            pair_dd: [0.0; FREE_PAIR_SLOTS].map(|_: f64| rng.gauss(0.0, pop.dd_key_sd)),
            hold_noise: spread(rng, pop.hold_noise),
            dd_noise: spread(rng, pop.dd_noise),
            tempo_sd: spread(rng, pop.tempo_sd),
            practice: pop.practice * rng.gauss(0.0, 0.4).exp(),
            slow_entry_rate: (pop.slow_entry_rate * rng.gauss(0.0, 0.5).exp()).min(0.5),
            hesitation_rate: (pop.hesitation_rate * rng.gauss(0.0, 0.5).exp()).min(0.5),
            error_rate: (pop.error_rate * rng.gauss(0.0, 0.4).exp()).min(0.5),
            // Drawn last, so the timing parameters are those of a population without
            // touch.
            touch: pop.touch.as_ref().map(|t| TouchHabit::draw(t, rng)),
        }
    }
}

/// A person typing on one day (session): the levels drift from day to day and the
/// phrase gets faster with practice; within the session the first entries are slower
/// (warm-up) and long sessions slow down (fatigue). Entries are counted, so call
/// [`TypingSession::entry`] in order.
#[derive(Debug, Clone)]
pub struct TypingSession {
    profile: TypingProfile,
    session: u32,
    entries: u32,
    hold_shift: f64,
    dd_shift: f64,
    /// Touch draws: a stream of their own, so the timing draws do not move.
    touch_rng: SplitMix64,
    pressure_shift: f64,
    area_shift: f64,
}

impl TypingSession {
    /// Session `session` of a person with this profile; the drift is deterministic in
    /// `(person_seed, session)`. `session_sd` is the population's day-to-day drift.
    pub fn new(
        profile: &TypingProfile,
        person_seed: u64,
        session: u32,
        session_sd: f64,
    ) -> TypingSession {
        let mut g = SplitMix64::new(derive(person_seed, TAG_SESSION, session as u64));
        // Practice: DD falls towards the practised speed, time constant 3 sessions;
        // holds lengthen a little (CMU: 82 → 88 ms over 8 sessions).
        // Both are centred on the mean over 8 sessions (what the CMU base times are),
        // and the DD shift also takes away the mean log excess of hesitations, slow
        // entries and warm-up (≈ 0.02 net), so that 8 sessions of 50 entries reproduce the
        // CMU geometric means.
        let learn = (-(session as f64) / 3.0).exp() - LEARN_MEAN;
        let mut touch_rng = SplitMix64::new(derive(person_seed, TAG_TOUCH, session as u64));
        let touch_sd = profile.touch.as_ref().map_or(0.0, |t| t.session_sd);
        TypingSession {
            profile: profile.clone(),
            session,
            entries: 0,
            hold_shift: g.gauss(0.0, session_sd) - 0.07 * learn,
            dd_shift: g.gauss(0.0, session_sd) + profile.practice * learn - 0.02,
            pressure_shift: touch_rng.gauss(0.0, touch_sd),
            area_shift: touch_rng.gauss(0.0, touch_sd),
            touch_rng,
        }
    }

    /// A session that starts after `entries` entries already typed (no warm-up left
    /// when `entries` ≥ 10).
    pub fn skip_entries(mut self, entries: u32) -> TypingSession {
        self.entries = entries;
        self
    }

    /// The session index.
    pub fn session(&self) -> u32 {
        self.session
    }

    /// Entries typed so far in this session.
    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// Warm-up and fatigue, as a log multiplier of the down-down latencies. Warm-up
    /// (CMU): the first entries of a session are slower — on the first day (a new
    /// phrase) the first entry by ×1.5, decaying over ~5 entries; from the fourth day
    /// on by ×1.16, decaying over ~3. Fatigue: +0.2% per entry after the 40th, at most
    /// +10%.
    fn condition(&self) -> f64 {
        let n = self.entries as f64;
        let novelty = (-(self.session as f64) / 1.5).exp();
        let warm_up = (0.15 + 0.3 * novelty) * (-n / (2.5 + 3.0 * novelty)).exp();
        let fatigue = (0.002 * (n - 40.0).max(0.0)).min(0.1);
        warm_up + fatigue
    }

    /// One entry of a fixed phrase of `keys` keys (classes from [`phrase_classes`]),
    /// first key-down at `t0_ns`. Empty when `keys` is outside 2..=128.
    pub fn entry(&mut self, keys: usize, t0_ns: i64, rng: &mut SplitMix64) -> Vec<KeyEvent> {
        let classes = phrase_classes(keys);
        if classes.is_empty() {
            return Vec::new();
        }
        let p = &self.profile;
        let mut tempo = rng.gauss(0.0, p.tempo_sd) + self.condition() + self.dd_shift;
        if rng.chance(p.slow_entry_rate) {
            tempo += rng.between(0.3, 0.8);
        }
        let hold_entry = rng.gauss(0.0, 0.05) + self.hold_shift;
        let mut out = Vec::with_capacity(keys);
        let mut down = t0_ns as f64;
        for (k, class) in classes.iter().enumerate() {
            let hold = CMU_HOLD_MS[k % CMU_KEYS]
                * (p.hold_level + p.hold_offsets[k] + hold_entry + rng.gauss(0.0, p.hold_noise))
                    .exp();
            out.push(key(*class, down, hold));
            if k + 1 < keys {
                let mut dd = CMU_DD_MS[k % (CMU_KEYS - 1)]
                    * (p.dd_level + p.dd_offsets[k] + tempo + rng.gauss(0.0, p.dd_noise)).exp();
                if rng.chance(p.hesitation_rate) {
                    dd *= rng.between(2.0, 5.0);
                }
                down += 1e6 * dd.max(5.0);
            }
        }
        self.entries += 1;
        self.touch(&mut out, |k| k);
        out
    }

    /// Adds the person's touch to the keys of one entry (nothing without a touch
    /// habit); `position` maps a key's index to its phrase position (per-key pattern).
    fn touch(&mut self, keys: &mut [KeyEvent], position: impl Fn(usize) -> usize) {
        let Some(t) = &self.profile.touch else {
            return;
        };
        let g = &mut self.touch_rng;
        let entry_pressure = g.gauss(0.0, 0.5 * t.pressure_noise);
        let entry_area = g.gauss(0.0, 0.5 * t.area_noise);
        for (i, k) in keys.iter_mut().enumerate() {
            let offset = t.pressure_offsets[position(i) % t.pressure_offsets.len()];
            let p = t.pressure
                + offset
                + self.pressure_shift
                + entry_pressure
                + g.gauss(0.0, t.pressure_noise);
            let a = t.area * (self.area_shift + entry_area + g.gauss(0.0, t.area_noise)).exp();
            k.pressure = Some(p.clamp(0.01, 1.0));
            k.area = Some(a.clamp(0.01, 0.3));
        }
    }

    /// `n_keys` key events of free text (words of letters, spaces, some punctuation
    /// and digits, corrected typos with Backspace, thinking pauses of 1–4 s),
    /// first key-down at `t0_ns`.
    pub fn free(&mut self, n_keys: usize, t0_ns: i64, rng: &mut SplitMix64) -> Vec<KeyEvent> {
        let classes = free_text_classes(n_keys, self.profile.error_rate, rng);
        let p = &self.profile;
        let base_tempo = rng.gauss(0.0, p.tempo_sd) + self.condition() + self.dd_shift;
        let mut tempo = base_tempo;
        let mut out = Vec::with_capacity(n_keys);
        let mut down = t0_ns as f64;
        for (i, class) in classes.iter().enumerate() {
            let slot = match class {
                KeyClass::Letter => 0,
                KeyClass::Space => 1,
                KeyClass::Digit | KeyClass::Punctuation => 2,
                KeyClass::Backspace => 3,
                _ => 4,
            };
            const HOLD_MS: [f64; FREE_HOLD_SLOTS] = [95.0, 105.0, 100.0, 90.0, 100.0];
            let hold = HOLD_MS[slot]
                * (p.hold_level
                    + p.class_hold[slot]
                    + self.hold_shift
                    + rng.gauss(0.0, p.hold_noise))
                .exp();
            out.push(key(*class, down, hold));
            let Some(next) = classes.get(i + 1) else {
                break;
            };
            let pair = match (class, next) {
                (KeyClass::Letter, KeyClass::Letter) => 0,
                (KeyClass::Letter, KeyClass::Space) => 1,
                (KeyClass::Space, KeyClass::Letter) => 2,
                (_, KeyClass::Backspace) => 3,
                (KeyClass::Backspace, _) => 4,
                _ => 5,
            };
            const DD_MS: [f64; FREE_PAIR_SLOTS] = [180.0, 160.0, 220.0, 400.0, 250.0, 260.0];
            if *class == KeyClass::Space {
                // The tempo wanders from word to word.
                tempo = 0.7 * tempo + 0.3 * base_tempo + rng.gauss(0.0, 0.5 * p.tempo_sd);
            }
            let mut dd = DD_MS[pair]
                * (p.dd_level + p.pair_dd[pair] + tempo + rng.gauss(0.0, p.dd_noise)).exp();
            if rng.chance(p.hesitation_rate) {
                dd *= rng.between(2.0, 5.0);
            }
            if *class == KeyClass::Space && rng.chance(0.03) {
                dd += rng.between(1000.0, 4000.0);
            }
            down += 1e6 * dd.max(5.0);
        }
        self.entries += 1;
        // Free text has no fixed positions: the pattern of the first key stands for all.
        self.touch(&mut out, |_| 0);
        out
    }
}

/// A key event held `hold_ms` from `down_ns` (holds capped at 2 s).
fn key(class: KeyClass, down_ns: f64, hold_ms: f64) -> KeyEvent {
    let down = down_ns.round() as i64;
    KeyEvent {
        class,
        down_ns: down,
        up_ns: down.saturating_add((1e6 * hold_ms.clamp(5.0, 2000.0)).round() as i64),
        pressure: None,
        area: None,
    }
}

/// The class sequence of `n` keys of free text.
fn free_text_classes(n: usize, error_rate: f64, rng: &mut SplitMix64) -> Vec<KeyClass> {
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        if rng.chance(0.03) {
            for _ in 0..1 + rng.below(4) {
                v.push(KeyClass::Digit);
            }
        } else {
            for _ in 0..2 + rng.below(7) {
                if rng.chance(error_rate) {
                    v.push(KeyClass::Letter);
                    v.push(KeyClass::Backspace);
                }
                v.push(KeyClass::Letter);
            }
        }
        if rng.chance(0.1) {
            v.push(KeyClass::Punctuation);
        }
        v.push(KeyClass::Space);
    }
    v.truncate(n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrase_lengths() {
        assert_eq!(phrase_classes(11).len(), 11);
        assert_eq!(phrase_classes(4).last(), Some(&KeyClass::Enter));
        assert!(phrase_classes(1).is_empty());
        assert!(phrase_classes(129).is_empty());
        assert_eq!(CMU_PHRASE.chars().count(), CMU_KEYS);
    }

    #[test]
    fn entries_are_ordered_and_sized() {
        let p = TypingProfile::draw(&TypingPopulation::default(), &mut SplitMix64::new(3));
        let mut s = TypingSession::new(&p, 3, 0, 0.06);
        let mut g = SplitMix64::new(4);
        for keys in [2, 11, 128] {
            let e = s.entry(keys, 1_000, &mut g);
            assert_eq!(e.len(), keys);
            assert_eq!(e[0].down_ns, 1_000);
            assert!(e.windows(2).all(|w| w[1].down_ns > w[0].down_ns));
            assert!(e.iter().all(|k| k.up_ns > k.down_ns));
        }
        assert!(s.entry(0, 0, &mut g).is_empty());
        let f = s.free(300, 0, &mut g);
        assert_eq!(f.len(), 300);
        assert!(f.windows(2).all(|w| w[1].down_ns > w[0].down_ns));
        assert_eq!(s.entries(), 4);
        assert!(s.free(0, 0, &mut g).is_empty());
    }

    /// Touch comes on every key, in plausible ranges, from its own stream: the timings
    /// are those of the same person without touch.
    #[test]
    fn touch_is_on_every_key_and_leaves_timings_alone() {
        let with = TypingProfile::draw(&TypingPopulation::default(), &mut SplitMix64::new(3));
        let without = TypingProfile::draw(
            &TypingPopulation {
                touch: None,
                ..TypingPopulation::default()
            },
            &mut SplitMix64::new(3),
        );
        assert_eq!(
            TypingProfile {
                touch: None,
                ..with.clone()
            },
            without
        );
        let (mut a, mut b) = (
            TypingSession::new(&with, 3, 1, 0.06),
            TypingSession::new(&without, 3, 1, 0.06),
        );
        let (mut ga, mut gb) = (SplitMix64::new(4), SplitMix64::new(4));
        for _ in 0..20 {
            let (ea, eb) = (a.entry(11, 0, &mut ga), b.entry(11, 0, &mut gb));
            for (x, y) in ea.iter().zip(&eb) {
                assert_eq!((x.down_ns, x.up_ns), (y.down_ns, y.up_ns));
                assert!(x.pressure.is_some_and(|p| (0.01..=1.0).contains(&p)));
                assert!(x.area.is_some_and(|a| (0.01..=0.3).contains(&a)));
                assert_eq!((y.pressure, y.area), (None, None));
            }
        }
        assert!(a.free(50, 0, &mut ga).iter().all(|k| k.pressure.is_some()));
    }
}
