//! Keystroke features. Key events carry classes and times only; characters never
//! reach this module, and a fixed phrase is represented by a salted hash.
//!
//! * Fixed text (password, PIN): one record per entry, the `3n - 2` timings in CMU
//!   order (`H`, `DD`, `UD` per key; schema version 1), followed by per-key touch
//!   pressure and per-key touch area when every key reports both (schema version 2;
//!   layouts in `tacit_shared::schema`).
//! * Free text: digraph statistics over key classes per block of typing
//!   (`KEYSTROKE_FREE_V1`), produced by the streaming [`FreeTextExtractor`].

use ring::digest;
use tacit_shared::payload::{FactorKind, FeatureRecord};
use tacit_shared::schema::{
    KEYSTROKE_FIXED_MAX_KEYS, KEYSTROKE_FIXED_MIN_KEYS, KEYSTROKE_FIXED_TOUCH_V2,
    KEYSTROKE_FIXED_V1, KEYSTROKE_FREE_V1, TOUCH_MAX,
};

use crate::dsp::{DspError, KeyClass, KeyEvent};

const NS: f64 = 1e9;

/// The salted identifier of a fixed phrase: first 16 bytes of
/// SHA-256("tacit/phrase/v1" || len(salt) || salt || phrase). The salt is per app and
/// user, so equal passwords of two users do not link.
pub fn phrase_id(salt: &[u8], phrase: &str) -> [u8; 16] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"tacit/phrase/v1");
    ctx.update(&(salt.len() as u64).to_be_bytes());
    ctx.update(salt);
    ctx.update(phrase.as_bytes());
    let d = ctx.finish();
    let mut id = [0u8; 16];
    id.copy_from_slice(&d.as_ref()[..16]);
    // All zero means "no context" on the wire; a 2^-128 event, but never ambiguous.
    if id == [0; 16] {
        id[0] = 1;
    }
    id
}

/// The timing vector of one fixed-text entry, in seconds: for keys `0..n` in typing
/// order, `H_k`, then (except after the last key) `DD_k,k+1` and `UD_k,k+1`.
pub fn fixed_text_timings(events: &[KeyEvent], expected_keys: usize) -> Result<Vec<f64>, DspError> {
    if !(KEYSTROKE_FIXED_MIN_KEYS..=KEYSTROKE_FIXED_MAX_KEYS).contains(&expected_keys) {
        return Err(DspError::PhraseLength(expected_keys));
    }
    if events.is_empty() {
        return Err(DspError::Empty);
    }
    if events.len() != expected_keys {
        return Err(DspError::EntryLength {
            got: events.len(),
            expected: expected_keys,
        });
    }
    let mut out = Vec::with_capacity(3 * expected_keys - 2);
    for (i, e) in events.iter().enumerate() {
        let e = e.validated(i)?;
        if e.class == KeyClass::Backspace {
            return Err(DspError::CorrectedEntry);
        }
        if i > 0 && e.down_ns <= events[i - 1].down_ns {
            return Err(DspError::KeysOutOfOrder { index: i });
        }
        out.push(e.hold_ns() as f64 / NS);
        if let Some(next) = events.get(i + 1) {
            out.push((next.down_ns - e.down_ns) as f64 / NS);
            out.push((next.down_ns - e.up_ns) as f64 / NS);
        }
    }
    Ok(out)
}

/// The touch part of a fixed-text vector: the pressures of keys `0..n` in typing
/// order, then their areas (`2n` values, the tail of schema version 2). `None` unless
/// every key reports both a pressure and an area that survive [`KeyEvent::validated`]'s
/// repair (finite, not negative) and are at most the schema's `TOUCH_MAX`: an entry
/// where only some keys report touch carries no touch at all (its record is version 1),
/// because a vector with holes has no fixed layout.
pub fn fixed_text_touch(events: &[KeyEvent]) -> Option<Vec<f64>> {
    if events.is_empty() {
        return None;
    }
    let plausible = |v: Option<f64>| v.filter(|x| *x <= f64::from(TOUCH_MAX));
    let mut pressure = Vec::with_capacity(events.len());
    let mut area = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let e = e.validated(i).ok()?;
        pressure.push(plausible(e.pressure)?);
        area.push(plausible(e.area)?);
    }
    pressure.extend(area);
    Some(pressure)
}

/// A fixed-text feature vector with the schema version of its layout.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedTextVector {
    /// [`KEYSTROKE_FIXED_V1`] (timings) or [`KEYSTROKE_FIXED_TOUCH_V2`] (timings, then
    /// per-key pressure, then per-key area).
    pub schema_version: u16,
    /// The values (seconds for timings; platform units for touch).
    pub values: Vec<f64>,
}

/// The feature vector of one fixed-text entry: version 2 (timings ‖ pressures ‖ areas,
/// `5n - 2` values) when [`fixed_text_touch`] finds touch on every key, else version 1
/// (the `3n - 2` timings of [`fixed_text_timings`]; touch reported by only some keys is
/// dropped, not an error).
pub fn fixed_text_vector(
    events: &[KeyEvent],
    expected_keys: usize,
) -> Result<FixedTextVector, DspError> {
    let mut values = fixed_text_timings(events, expected_keys)?;
    let schema_version = match fixed_text_touch(events) {
        Some(touch) => {
            values.extend(touch);
            KEYSTROKE_FIXED_TOUCH_V2
        }
        None => KEYSTROKE_FIXED_V1,
    };
    Ok(FixedTextVector {
        schema_version,
        values,
    })
}

/// The feature record of one fixed-text entry ([`fixed_text_vector`]: schema version 2
/// with touch on every key, else version 1).
pub fn fixed_text_record(
    phrase: [u8; 16],
    events: &[KeyEvent],
    expected_keys: usize,
    window_start_unix_ms: u64,
) -> Result<FeatureRecord, DspError> {
    let v = fixed_text_vector(events, expected_keys)?;
    let span_ns = events[events.len() - 1]
        .up_ns
        .max(events[events.len() - 1].down_ns)
        - events[0].down_ns;
    Ok(FeatureRecord {
        factor: FactorKind::KeystrokeFixed,
        schema_version: v.schema_version,
        window_start_ms: window_start_unix_ms,
        window_ms: (span_ns / 1_000_000).clamp(0, u32::MAX as i64) as u32,
        context: Some(phrase),
        values: v.values.into_iter().map(|v| v as f32).collect(),
    })
}

/// Consecutive key-downs further apart than this are a pause, not a digraph.
pub const PAUSE_NS: i64 = 2_000_000_000;

/// What the free-text extractor did, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyReport {
    /// Events used.
    pub accepted: u64,
    /// Dropped: up before down, or held longer than 10 s.
    pub dropped_invalid: u64,
    /// Dropped: key-down not after the previous key-down.
    pub dropped_out_of_order: u64,
    /// Blocks turned into records.
    pub blocks: u64,
    /// Blocks discarded for having fewer than two digraphs.
    pub blocks_too_sparse: u64,
}

/// Streaming free-text extractor: every `block_keys` accepted key events become one
/// record. Memory is bounded by one block.
pub struct FreeTextExtractor {
    block_keys: usize,
    block: Vec<KeyEvent>,
    last_down: Option<i64>,
    report: KeyReport,
}

impl FreeTextExtractor {
    /// An extractor producing one record per `block_keys` keys (20..=10,000).
    pub fn new(block_keys: usize) -> Result<Self, DspError> {
        if !(20..=10_000).contains(&block_keys) {
            return Err(DspError::Config("block_keys must be within 20..=10000"));
        }
        Ok(FreeTextExtractor {
            block_keys,
            block: Vec::with_capacity(block_keys),
            last_down: None,
            report: KeyReport::default(),
        })
    }

    /// Counts so far.
    pub fn report(&self) -> &KeyReport {
        &self.report
    }

    /// Keys waiting for their block to fill.
    pub fn pending(&self) -> usize {
        self.block.len()
    }

    /// Feeds events; completed blocks are handed to `on_record` as
    /// `(features, first key-down ns, last key-up ns)`.
    pub fn push(&mut self, events: &[KeyEvent], mut on_record: impl FnMut(&[f64], i64, i64)) {
        for (i, e) in events.iter().enumerate() {
            let Ok(e) = e.validated(i) else {
                self.report.dropped_invalid += 1;
                continue;
            };
            if self.last_down.is_some_and(|d| e.down_ns <= d) {
                self.report.dropped_out_of_order += 1;
                continue;
            }
            self.last_down = Some(e.down_ns);
            self.report.accepted += 1;
            self.block.push(e);
            if self.block.len() == self.block_keys {
                match free_text_features(&self.block) {
                    Some(f) => {
                        self.report.blocks += 1;
                        let end = self.block.iter().map(|e| e.up_ns).max().unwrap_or(e.up_ns);
                        on_record(&f, self.block[0].down_ns, end);
                    }
                    None => self.report.blocks_too_sparse += 1,
                }
                self.block.clear();
            }
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Acc {
    n: f64,
    sum: f64,
    sum2: f64,
}

impl Acc {
    fn add(&mut self, v: f64) {
        self.n += 1.0;
        self.sum += v;
        self.sum2 += v * v;
    }
    fn mean_sd(&self, fallback: &Acc) -> (f64, f64) {
        let a = if self.n >= 2.0 { self } else { fallback };
        if a.n == 0.0 {
            return (0.0, 0.0);
        }
        let m = a.sum / a.n;
        (m, (a.sum2 / a.n - m * m).max(0.0).sqrt())
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Free-text features (`KEYSTROKE_FREE_V1` order) of a block of valid, ordered key
/// events; `None` if the block has fewer than two digraphs.
pub fn free_text_features(events: &[KeyEvent]) -> Option<Vec<f64>> {
    use KeyClass::*;
    let mut hold_all = Acc::default();
    let mut hold = [Acc::default(); 4]; // letter, space, digit/punct, backspace
    for e in events {
        let h = e.hold_ns() as f64 / NS;
        hold_all.add(h);
        let slot = match e.class {
            Letter => Some(0),
            Space => Some(1),
            Digit | Punctuation => Some(2),
            Backspace => Some(3),
            _ => None,
        };
        if let Some(s) = slot {
            hold[s].add(h);
        }
    }
    let (mut dd_all, mut ud_all) = (Acc::default(), Acc::default());
    let mut dd = [Acc::default(); 3]; // letter-letter, letter-space, space-letter
    let mut ud = [Acc::default(); 3];
    let (mut dds, mut uds) = (
        Vec::with_capacity(events.len()),
        Vec::with_capacity(events.len()),
    );
    let (mut pauses, mut rollovers, mut dd_sum) = (0usize, 0usize, 0.0);
    for w in events.windows(2) {
        let dd_ns = w[1].down_ns - w[0].down_ns;
        if dd_ns > PAUSE_NS {
            pauses += 1;
            continue;
        }
        let d = dd_ns as f64 / NS;
        let u = (w[1].down_ns - w[0].up_ns) as f64 / NS;
        dd_all.add(d);
        ud_all.add(u);
        dds.push(d);
        uds.push(u);
        dd_sum += d;
        if u < 0.0 {
            rollovers += 1;
        }
        let pair = match (w[0].class, w[1].class) {
            (Letter, Letter) => Some(0),
            (Letter, Space) => Some(1),
            (Space, Letter) => Some(2),
            _ => None,
        };
        if let Some(p) = pair {
            dd[p].add(d);
            ud[p].add(u);
        }
    }
    let digraphs = dds.len();
    if digraphs < 2 {
        return None;
    }
    let mut f = Vec::with_capacity(KEYSTROKE_FREE_V1.len());
    for h in &hold {
        let (m, s) = h.mean_sd(&hold_all);
        f.extend([m, s]);
    }
    for p in 0..3 {
        let (dm, ds) = dd[p].mean_sd(&dd_all);
        let (um, us) = ud[p].mean_sd(&ud_all);
        f.extend([dm, ds, um, us]);
    }
    f.push(median(&mut dds));
    f.push(median(&mut uds));
    f.push(if dd_sum > 0.0 {
        digraphs as f64 / dd_sum
    } else {
        0.0
    });
    let backspaces = events.iter().filter(|e| e.class == Backspace).count();
    f.push(backspaces as f64 / events.len() as f64);
    f.push(pauses as f64 / (events.len() - 1) as f64);
    f.push(rollovers as f64 / digraphs as f64);
    f.push(digraphs as f64);
    debug_assert_eq!(f.len(), KEYSTROKE_FREE_V1.len());
    Some(f)
}

/// The feature record of one free-text block.
pub fn free_text_record(
    features: &[f64],
    window_start_unix_ms: u64,
    span_ns: i64,
) -> FeatureRecord {
    FeatureRecord {
        factor: FactorKind::KeystrokeFree,
        schema_version: 1,
        window_start_ms: window_start_unix_ms,
        window_ms: (span_ns / 1_000_000).clamp(0, u32::MAX as i64) as u32,
        context: None,
        values: features.iter().map(|&v| v as f32).collect(),
    }
}
