//! Packs: the features of several envelopes of one device, written as one object.
//!
//! Ingest commits a request's envelopes together (one object write, one sync, one
//! transaction) instead of one object and one commit per envelope, so a pack holds
//! what one request brought of one device on one day. Layout (big-endian, like the
//! payload encoding it wraps):
//!
//! ```text
//! "TPK1" | count: u32 | count × ( envelope_id: [u8; 16] | len: u32 | payload: [u8; len] )
//! ```
//!
//! Each `payload` is an encoded `tacit_shared::payload::Payload`. Encryption at rest
//! seals the whole pack (bound to its key), as it sealed single objects. Objects of
//! the older layout, one payload per `…-{envelope}.bin` object, are read as packs of
//! one.

use super::error::{StoreError, StoreResult};

/// First bytes of a pack.
pub const PACK_MAGIC: &[u8; 4] = b"TPK1";

/// Most envelopes in one pack: far above a request's batch, low enough that a
/// corrupt count cannot make a reader reserve much.
pub const MAX_PACK_ENTRIES: usize = 4_096;

/// Suffix of a pack's key.
pub const PACK_SUFFIX: &str = ".pack";

/// Suffix of a single-envelope object of the older layout.
pub const SINGLE_SUFFIX: &str = ".bin";

/// One envelope's features inside a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackEntry {
    /// The envelope's id.
    pub envelope_id: [u8; 16],
    /// Its encoded payload.
    pub payload: Vec<u8>,
}

/// Encodes entries as a pack. [`StoreError::Invalid`] for more than
/// [`MAX_PACK_ENTRIES`] entries or a payload over 4 GiB.
pub fn encode(entries: &[PackEntry]) -> StoreResult<Vec<u8>> {
    let parts: Vec<(&[u8; 16], &[u8])> = entries
        .iter()
        .map(|e| (&e.envelope_id, e.payload.as_slice()))
        .collect();
    encode_parts(&parts)
}

/// [`encode`] over borrowed `(envelope id, payload)` pairs: the group commit writes
/// the payloads it holds without copying each one into a [`PackEntry`] first.
pub fn encode_parts(entries: &[(&[u8; 16], &[u8])]) -> StoreResult<Vec<u8>> {
    if entries.len() > MAX_PACK_ENTRIES {
        return Err(StoreError::Invalid(format!(
            "a pack holds at most {MAX_PACK_ENTRIES} envelopes, got {}",
            entries.len()
        )));
    }
    let size = 8 + entries.iter().map(|(_, p)| 20 + p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(PACK_MAGIC);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (id, payload) in entries {
        let len = u32::try_from(payload.len())
            .map_err(|_| StoreError::Invalid("a payload over 4 GiB".into()))?;
        out.extend_from_slice(*id);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
    }
    Ok(out)
}

/// Decodes a pack strictly: the magic, a count within bounds, every length within the
/// data and nothing after the last entry. [`StoreError::Corrupt`] otherwise.
pub fn decode(bytes: &[u8]) -> StoreResult<Vec<PackEntry>> {
    let corrupt = |what: &str| StoreError::corrupt(format!("feature pack: {what}"));
    let rest = bytes
        .strip_prefix(PACK_MAGIC.as_slice())
        .ok_or_else(|| corrupt("no TPK1 header"))?;
    let (count, mut rest) = split_u32(rest).ok_or_else(|| corrupt("truncated count"))?;
    let count = count as usize;
    if count > MAX_PACK_ENTRIES {
        return Err(corrupt("too many entries"));
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let (id, after) = rest
            .split_first_chunk::<16>()
            .ok_or_else(|| corrupt("truncated envelope id"))?;
        let (len, after) = split_u32(after).ok_or_else(|| corrupt("truncated length"))?;
        let len = len as usize;
        if after.len() < len {
            return Err(corrupt("truncated payload"));
        }
        let (payload, after) = after.split_at(len);
        entries.push(PackEntry {
            envelope_id: *id,
            payload: payload.to_vec(),
        });
        rest = after;
    }
    if !rest.is_empty() {
        return Err(corrupt("bytes after the last entry"));
    }
    Ok(entries)
}

/// The envelope id in the name of a single-envelope object
/// (`…/{sequence:020}-{envelope_hex}.bin`), if the key is one.
pub fn single_envelope_id(key: &str) -> Option<[u8; 16]> {
    let name = key.rsplit('/').next()?.strip_suffix(SINGLE_SUFFIX)?;
    let hex_id = name.rsplit('-').next()?;
    let mut id = [0u8; 16];
    hex::decode_to_slice(hex_id, &mut id).ok()?;
    Some(id)
}

fn split_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (n, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*n), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u8, len: usize) -> PackEntry {
        PackEntry {
            envelope_id: [i; 16],
            payload: vec![i; len],
        }
    }

    #[test]
    fn round_trip() {
        let entries = vec![entry(1, 0), entry(2, 5), entry(3, 300)];
        let bytes = encode(&entries).unwrap();
        assert_eq!(&bytes[..4], b"TPK1");
        assert_eq!(bytes.len(), 8 + 3 * 20 + 305);
        assert_eq!(decode(&bytes).unwrap(), entries);
        assert_eq!(decode(&encode(&[]).unwrap()).unwrap(), vec![]);
    }

    /// The same bytes are pinned in the Python factor's tests
    /// (`examples/python-factor/tests/test_payload.py`), whose reader must agree.
    const GOLDEN: &str = "54504b310000000201010101010101010101010101010101000000036162630202020202020202020202020202020200000000";

    #[test]
    fn golden_bytes() {
        let entries = vec![
            PackEntry {
                envelope_id: [1; 16],
                payload: b"abc".to_vec(),
            },
            PackEntry {
                envelope_id: [2; 16],
                payload: Vec::new(),
            },
        ];
        assert_eq!(hex::encode(encode(&entries).unwrap()), GOLDEN);
    }

    #[test]
    fn corrupt_packs_are_errors_not_panics() {
        let good = encode(&[entry(1, 10), entry(2, 3)]).unwrap();
        // Every truncation, a trailing byte, a wrong magic, a huge count or length.
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(decode(&magic).is_err());
        let mut count = good.clone();
        count[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&count).is_err());
        let mut len = good.clone();
        len[24..28].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&len).is_err());
        let too_many: Vec<PackEntry> = (0..=MAX_PACK_ENTRIES).map(|_| entry(0, 0)).collect();
        assert!(encode(&too_many).is_err());
    }

    #[test]
    fn single_object_names() {
        let id = [0xab; 16];
        let key = format!(
            "features/u/{}/{:020}-{}.bin",
            "00".repeat(16),
            7,
            hex::encode(id)
        );
        assert_eq!(single_envelope_id(&key), Some(id));
        assert_eq!(single_envelope_id("features/u/d/0001-xyz.bin"), None);
        assert_eq!(single_envelope_id("features/u/d/0001-abcd.pack"), None);
    }
}
