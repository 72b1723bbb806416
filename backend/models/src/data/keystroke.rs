use std::collections::BTreeMap;
use std::path::Path;

use tacit_features::dsp::{KeyClass, KeyEvent};
use tacit_features::factors::keystroke::fixed_text_timings;

use super::{Population, group_people};
use crate::{FactorKind, ModelError};

/// Fixed-text keystroke schema version (`tacit_shared::schema`).
const FIXED_SCHEMA: u16 = 1;

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
        format!("CMU keystroke benchmark ({})", path.display()),
    ))
}

fn fixed_text_population(
    rows: Vec<(String, u32, Vec<f32>)>,
    keys: usize,
    source: String,
) -> Population {
    Population {
        factor: FactorKind::KeystrokeFixed,
        schema_version: FIXED_SCHEMA,
        dim: 3 * keys - 2,
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
/// `(user, session, sample)` are one entry of a fixed phrase; every entry must have the
/// same number of keys. Each entry goes through the phone's fixed-text feature code.
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
    // The phrase length is the most common entry length; any other entry is an error
    // that names it (never silently dropped).
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for e in entries.values() {
        *counts.entry(e.len()).or_default() += 1;
    }
    let keys = counts
        .iter()
        .max_by_key(|(len, c)| (**c, **len))
        .map(|(len, _)| *len);
    let mut out = Vec::with_capacity(first_seen.len());
    for k in first_seen {
        let mut events = entries.remove(&k).unwrap_or_default();
        events.sort_by_key(|e| e.down_ns);
        let n = keys.unwrap_or(events.len());
        if events.len() != n {
            return Err(ModelError::Data(format!(
                "{}: entry (user {}, session {}, sample {}) has {} keys, most entries have {n}: \
                 a fixed-phrase file needs the same keys in every entry",
                path.display(),
                k.0,
                k.1,
                k.2,
                events.len()
            )));
        }
        let v = fixed_text_timings(&events, n).map_err(|e| {
            ModelError::Data(format!(
                "{}: entry (user {}, session {}, sample {}): {e}",
                path.display(),
                k.0,
                k.1,
                k.2
            ))
        })?;
        out.push((k.0, k.1, v.iter().map(|&x| x as f32).collect()));
    }
    let n = keys.ok_or_else(|| ModelError::Data(format!("{}: no entries", path.display())))?;
    Ok(fixed_text_population(
        out,
        n,
        format!("key-event CSV ({})", path.display()),
    ))
}
