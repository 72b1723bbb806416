use std::collections::BTreeMap;
use std::path::Path;

use tacit_features::dsp::{KeyClass, KeyEvent};
use tacit_features::factors::keystroke::{fixed_text_timings, fixed_text_touch};
use tacit_shared::schema::{KEYSTROKE_FIXED_TOUCH_V2, KEYSTROKE_FIXED_V1, fixed_text_dim};

use super::{Population, group_people};
use crate::{FactorKind, ModelError};

/// Reads the CMU benchmark CSV: each row's timings are turned back into key events and
/// through the phone's fixed-text feature code (31 timings per entry).
pub fn read_cmu(path: &Path) -> Result<Population, ModelError> {
    let rows = crate::datasets::read_cmu(path)?;
    let keys = crate::datasets::CMU_KEY_CLASSES.len();
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let v = fixed_text_timings(&r.to_key_events(1_000_000_000), keys)
            .map_err(|e| ModelError::Data(format!("{}: row {}: {e}", path.display(), i + 2)))?;
        out.push((
            r.subject.clone(),
            r.session,
            v.iter().map(|&x| x as f32).collect(),
        ));
    }
    Ok(fixed_text_population(
        out,
        keys,
        KEYSTROKE_FIXED_V1,
        format!("CMU keystroke benchmark ({})", path.display()),
    ))
}

fn fixed_text_population(
    rows: Vec<(String, u32, Vec<f32>)>,
    keys: usize,
    schema_version: u16,
    source: String,
) -> Population {
    Population {
        factor: FactorKind::KeystrokeFixed,
        schema_version,
        dim: fixed_text_dim(schema_version, keys).unwrap_or(0),
        people: group_people(rows),
        source,
        skipped: Vec::new(),
    }
}

/// The class of a key label in a key-event CSV (`a`, `7`, `space`, `Return`, `Shift`…).
/// Only the class matters to the features; the label itself is never kept.
pub fn key_class(label: &str) -> KeyClass {
    let l = label.trim();
    let lower = l.to_ascii_lowercase();
    let mut chars = l.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return match c {
            c if c.is_alphabetic() => KeyClass::Letter,
            c if c.is_ascii_digit() => KeyClass::Digit,
            ' ' => KeyClass::Space,
            '\n' | '\r' => KeyClass::Enter,
            c if c.is_ascii_punctuation() => KeyClass::Punctuation,
            _ => KeyClass::Other,
        };
    }
    match lower.as_str() {
        "space" | "spacebar" => KeyClass::Space,
        "return" | "enter" => KeyClass::Enter,
        "backspace" | "delete" | "del" => KeyClass::Backspace,
        "period" | "comma" | "minus" | "plus" | "slash" | "semicolon" | "apostrophe" | "quote"
        | "equal" | "bracketleft" | "bracketright" | "backslash" | "grave" => KeyClass::Punctuation,
        s if s.starts_with("shift")
            || s.starts_with("control")
            || s.starts_with("ctrl")
            || s.starts_with("alt")
            || s.starts_with("meta")
            || s.starts_with("caps") =>
        {
            KeyClass::Modifier
        }
        _ => KeyClass::Other,
    }
}

type EntryKey = (String, u32, u32);

/// Reads a generic key-event CSV with header `user,session,sample,key,down_ms,up_ms` and
/// optional `pressure,area` (columns found by name). The rows of one
/// `(user, session, sample)` are one entry of a fixed phrase. Each entry goes through
/// the phone's fixed-text feature code; entries with another number of keys than the
/// phrase (the most common count) or that the feature code refuses are skipped and
/// listed in `skipped` by reason (a broken row — an unparsable number — is still an
/// error naming its line). The vectors are schema version 2 (timings, per-key pressure,
/// per-key area) when every kept entry has pressure and area on every key, else
/// version 1; `Population::{schema_version, dim}` and `source` say which.
pub fn read_key_csv(path: &Path) -> Result<Population, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let at = |line: usize, m: String| ModelError::Data(format!("{}:{line}: {m}", path.display()));
    let mut lines = text.lines().enumerate();
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| at(1, "empty file".into()))?
        .1
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let col = |name: &str| header.iter().position(|c| c == name);
    let need = |name: &str| col(name).ok_or_else(|| at(1, format!("no column {name:?}")));
    let (cu, cs, cn, ck, cd, cup) = (
        need("user")?,
        need("session")?,
        need("sample")?,
        need("key")?,
        need("down_ms")?,
        need("up_ms")?,
    );
    let (cp, ca) = (col("pressure"), col("area"));
    let mut entries: BTreeMap<EntryKey, Vec<KeyEvent>> = BTreeMap::new();
    let mut first_seen: Vec<EntryKey> = Vec::new();
    for (i, line) in lines {
        let ln = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let get = |c: usize| {
            f.get(c)
                .map(|s| s.trim())
                .ok_or_else(|| at(ln, "missing field".into()))
        };
        let int = |c: usize| {
            get(c)?
                .parse::<u32>()
                .map_err(|e| at(ln, format!("{}: {e}", header[c])))
        };
        let ms = |c: usize| {
            let v = get(c)?
                .parse::<f64>()
                .map_err(|e| at(ln, format!("{}: {e}", header[c])))?;
            if !v.is_finite() || v.abs() > 1e15 {
                return Err(at(ln, format!("{}: out of range", header[c])));
            }
            Ok((v * 1e6).round() as i64)
        };
        let opt = |c: Option<usize>| -> Result<Option<f64>, ModelError> {
            match c.and_then(|c| f.get(c)).map(|s| s.trim()) {
                None | Some("") => Ok(None),
                Some(s) => s
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|e| at(ln, format!("pressure/area: {e}"))),
            }
        };
        let key = (get(cu)?.to_string(), int(cs)?, int(cn)?);
        let event = KeyEvent {
            class: key_class(get(ck)?),
            down_ns: ms(cd)?,
            up_ns: ms(cup)?,
            pressure: opt(cp)?,
            area: opt(ca)?,
        };
        let e = entries.entry(key.clone()).or_insert_with(|| {
            first_seen.push(key);
            Vec::new()
        });
        e.push(event);
    }
    let source = format!("key-event CSV ({})", path.display());
    let set = fixed_text_entries(first_seen, entries)
        .map_err(|why| ModelError::Data(format!("{}: {why}", path.display())))?;
    Ok(set.into_population(source))
}

/// At most this many entries are named per reason in a skip note (the count is exact).
const EXAMPLES: usize = 3;

/// Entries left out for one reason: how many, and the first few named.
#[derive(Default)]
struct SkipNote {
    count: usize,
    examples: Vec<String>,
}

impl SkipNote {
    fn add(&mut self, example: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(example());
        }
    }

    fn text(&self, what: &str) -> Option<String> {
        (self.count > 0).then(|| {
            let more = if self.count > self.examples.len() {
                ", ..."
            } else {
                ""
            };
            format!("{} {what}: {}{more}", self.count, self.examples.join("; "))
        })
    }
}

/// The usable entries of a key-event file turned into vectors, with what was left out.
struct EntrySet {
    rows: Vec<(String, u32, Vec<f32>)>,
    keys: usize,
    schema_version: u16,
    skipped: Vec<String>,
    /// Why touch was not used although some entries had it (for the source line).
    touch_note: Option<String>,
}

impl EntrySet {
    fn into_population(self, source: String) -> Population {
        let layout = match self.schema_version {
            KEYSTROKE_FIXED_TOUCH_V2 => "schema v2: timings, pressure, area".to_string(),
            _ => match &self.touch_note {
                Some(why) => format!("schema v1: timings only, touch dropped ({why})"),
                None => "schema v1: timings only".to_string(),
            },
        };
        let mut pop = fixed_text_population(
            self.rows,
            self.keys,
            self.schema_version,
            format!("{source}, {} keys, {layout}", self.keys),
        );
        pop.skipped = self.skipped;
        pop
    }
}

fn entry_name(k: &EntryKey) -> String {
    format!("user {}, session {}, sample {}", k.0, k.1, k.2)
}

/// Turns the entries of a key-event file (in first-seen order) into vectors of one
/// layout. The phrase length is the most common entry length (on a tie the longer one,
/// so a tie between complete and cut-off entries keeps the complete ones); entries of
/// another length, or that the feature code refuses (a key up before down, a
/// correction), are skipped and counted, never fatal. The vectors are schema version 2
/// (timings ‖ pressure ‖ area) when every kept entry has pressure and area on every
/// key, else version 1 for all of them: one population has one layout. Fails only when
/// no entry is usable.
fn fixed_text_entries(
    order: Vec<EntryKey>,
    mut entries: BTreeMap<EntryKey, Vec<KeyEvent>>,
) -> Result<EntrySet, String> {
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for e in entries.values() {
        *counts.entry(e.len()).or_default() += 1;
    }
    let n = counts
        .iter()
        .max_by_key(|(len, c)| (**c, **len))
        .map(|(len, _)| *len)
        .ok_or("no entries")?;
    let (mut wrong_length, mut refused) = (SkipNote::default(), SkipNote::default());
    let mut kept = Vec::with_capacity(order.len());
    for k in order {
        let mut events = entries.remove(&k).unwrap_or_default();
        if events.len() != n {
            let got = events.len();
            wrong_length.add(|| format!("{} has {got}", entry_name(&k)));
            continue;
        }
        events.sort_by_key(|e| e.down_ns);
        match fixed_text_timings(&events, n) {
            Ok(t) => {
                let touch = fixed_text_touch(&events);
                kept.push((k, t, touch));
            }
            Err(e) => refused.add(|| format!("{}: {e}", entry_name(&k))),
        }
    }
    let mut skipped = Vec::new();
    skipped.extend(wrong_length.text(&format!(
        "entries skipped for a key count other than the phrase's {n} (the most common)"
    )));
    skipped.extend(refused.text("entries skipped as unusable"));
    if kept.is_empty() {
        return Err(format!(
            "no usable entries of the {n}-key phrase ({})",
            skipped.join("; ")
        ));
    }
    let with_touch = kept.iter().filter(|(_, _, t)| t.is_some()).count();
    let touch = with_touch == kept.len();
    let touch_note = (with_touch > 0 && !touch).then(|| {
        format!(
            "{} of {} entries lack a usable pressure or area on some key",
            kept.len() - with_touch,
            kept.len()
        )
    });
    let rows = kept
        .into_iter()
        .map(|(k, mut v, t)| {
            if let (true, Some(t)) = (touch, t) {
                v.extend(t);
            }
            (k.0, k.1, v.iter().map(|&x| x as f32).collect())
        })
        .collect();
    Ok(EntrySet {
        rows,
        keys: n,
        schema_version: if touch {
            KEYSTROKE_FIXED_TOUCH_V2
        } else {
            KEYSTROKE_FIXED_V1
        },
        skipped,
        touch_note,
    })
}
