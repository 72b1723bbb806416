//! Template and feature protection at rest: AES-256-GCM under a key the store never
//! writes down itself (a file mounted from a secret store or KMS-decrypted data key).
//!
//! A stolen bucket, a database dump or a backup holds ciphertext only. Each blob is
//! bound to where it lives (the object key; the template's user, factor and format) as
//! associated data, so an insider who can write the database or the bucket cannot move
//! one person's template or features under another person: the blob no longer opens.
//!
//! Blob layout: `TAR1` ‖ key tag (8 bytes: SHA-256 of the key, truncated) ‖ nonce (12,
//! random) ‖ ciphertext ‖ tag (16). The tag picks the key, so old keys can stay listed
//! for reading while new writes use the current one (rotation without a rewrite pass).
//! With encryption on, a blob without the header is refused, not read as plaintext —
//! unless the store held unencrypted data when encryption was first turned on: then such
//! a blob is that older data and is read as it is, while new writes are encrypted. That
//! fact is decided once and kept in the object store as a marker ([`MARKER_KEY`]) that is
//! itself sealed under the at-rest key, so that every reader (gateway, factor services in
//! any runtime) follows it and nobody without the key can turn it on.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use super::error::{StoreError, StoreResult};

/// The header of an encrypted blob.
pub const MAGIC: &[u8; 4] = b"TAR1";

/// The object key of the at-rest marker: JSON [`Marker`], sealed with this key as its
/// associated data.
pub const MARKER_KEY: &str = "meta/at-rest";

/// What the at-rest marker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Marker {
    /// Whether the store held unencrypted templates or features when encryption at
    /// rest was first turned on (then blobs without the header are read as they are).
    pub plaintext_before: bool,
    /// When the marker was written (Unix ms).
    pub since_ms: u64,
}

/// Whether a stored blob carries the encryption header.
pub fn is_encrypted(blob: &[u8]) -> bool {
    blob.starts_with(MAGIC)
}
const TAG_ID_LEN: usize = 8;
const HEADER_LEN: usize = MAGIC.len() + TAG_ID_LEN + NONCE_LEN;

/// The keys: one for writing, any number more for reading older blobs.
pub struct AtRestKeys {
    current: [u8; TAG_ID_LEN],
    keys: HashMap<[u8; TAG_ID_LEN], LessSafeKey>,
    rng: SystemRandom,
    plaintext_before: AtomicBool,
}

impl std::fmt::Debug for AtRestKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtRestKeys")
            .field("current", &hex::encode(self.current))
            .field("keys", &self.keys.len())
            .finish()
    }
}

fn key_tag(key: &[u8; 32]) -> [u8; TAG_ID_LEN] {
    let d = ring::digest::digest(&ring::digest::SHA256, key);
    let mut t = [0u8; TAG_ID_LEN];
    t.copy_from_slice(&d.as_ref()[..TAG_ID_LEN]);
    t
}

impl AtRestKeys {
    /// Keys from their bytes: `current` encrypts, all of them decrypt.
    pub fn new(current: [u8; 32], older: &[[u8; 32]]) -> StoreResult<AtRestKeys> {
        let mut keys = HashMap::new();
        for k in std::iter::once(&current).chain(older) {
            let unbound = UnboundKey::new(&AES_256_GCM, k)
                .map_err(|_| StoreError::Invalid("at-rest key rejected".into()))?;
            keys.insert(key_tag(k), LessSafeKey::new(unbound));
        }
        Ok(AtRestKeys {
            current: key_tag(&current),
            keys,
            rng: SystemRandom::new(),
            plaintext_before: AtomicBool::new(false),
        })
    }

    /// Whether blobs without the encryption header are data stored before encryption
    /// at rest was turned on, to be read as they are (`true`), or refused (`false`, the
    /// default: a store that started encrypted). Set from the store's marker
    /// ([`MARKER_KEY`]) when the store opens.
    pub fn set_plaintext_before(&self, yes: bool) {
        self.plaintext_before.store(yes, Ordering::Relaxed);
    }

    /// Loads keys from files of 32 raw bytes or 64 hex characters (a trailing newline
    /// is fine). Files readable by group or others are refused.
    pub fn load(current: &Path, older: &[&Path]) -> StoreResult<AtRestKeys> {
        let cur = read_key(current)?;
        let old = older
            .iter()
            .map(|p| read_key(p))
            .collect::<StoreResult<Vec<_>>>()?;
        AtRestKeys::new(cur, &old)
    }

    /// Writes a new random key file (64 hex characters, mode 0600; refuses to overwrite).
    pub fn generate(path: &Path) -> StoreResult<()> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| StoreError::corrupt("random number generator failed"))?;
        crate::keys::write_new_private(path, hex::encode(key).as_bytes())
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Whether `blob` was sealed under the current key (not an older one).
    pub fn sealed_with_current(&self, blob: &[u8]) -> bool {
        blob.len() >= MAGIC.len() + TAG_ID_LEN
            && is_encrypted(blob)
            && blob[MAGIC.len()..MAGIC.len() + TAG_ID_LEN] == self.current
    }

    /// Encrypts `plaintext` for the place named by `context`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> StoreResult<Vec<u8>> {
        let key = self
            .keys
            .get(&self.current)
            .ok_or_else(|| StoreError::corrupt("current at-rest key missing"))?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| StoreError::corrupt("random number generator failed"))?;
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.current);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut body,
        )
        .map_err(|_| StoreError::corrupt("at-rest encryption failed"))?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decrypts a blob stored at the place named by `context`. A blob that is not
    /// encrypted, was encrypted under an unknown key, altered, or moved from another
    /// place is [`StoreError::Internal`] ("corrupt"), never returned as it is.
    pub fn open(&self, context: &str, blob: &[u8]) -> StoreResult<Vec<u8>> {
        let has_header = blob.len() >= MAGIC.len() && &blob[..MAGIC.len()] == MAGIC;
        if !has_header && self.plaintext_before.load(Ordering::Relaxed) {
            return Ok(blob.to_vec());
        }
        if blob.len() < HEADER_LEN + 16 || !has_header {
            return Err(StoreError::corrupt(format!(
                "{context}: not encrypted at rest"
            )));
        }
        let mut tag = [0u8; TAG_ID_LEN];
        tag.copy_from_slice(&blob[MAGIC.len()..MAGIC.len() + TAG_ID_LEN]);
        let key = self.keys.get(&tag).ok_or_else(|| {
            StoreError::corrupt(format!(
                "{context}: encrypted under an unknown at-rest key {}",
                hex::encode(tag)
            ))
        })?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&blob[MAGIC.len() + TAG_ID_LEN..HEADER_LEN]);
        let mut body = blob[HEADER_LEN..].to_vec();
        let n = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut body,
            )
            .map_err(|_| {
                StoreError::corrupt(format!(
                    "{context}: at-rest decryption failed (altered, or moved from elsewhere)"
                ))
            })?
            .len();
        body.truncate(n);
        Ok(body)
    }
}

fn read_key(path: &Path) -> StoreResult<[u8; 32]> {
    let bad = |why: &str| StoreError::Invalid(format!("at-rest key {}: {why}", path.display()));
    if !crate::keys::is_private(path).map_err(|e| bad(&e.to_string()))? {
        return Err(bad("readable by group or others (chmod 600)"));
    }
    let bytes = std::fs::read(path).map_err(|e| bad(&e.to_string()))?;
    if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
        return Ok(raw);
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not 32 bytes or 64 hex"))?;
    hex::decode(text.trim())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| bad("not 32 bytes or 64 hex characters"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_binding_and_rotation() {
        let a = AtRestKeys::new([1; 32], &[]).unwrap();
        let blob = a.seal("features/u/1", b"biometric").unwrap();
        assert_eq!(&blob[..4], MAGIC);
        assert!(!blob.windows(9).any(|w| w == b"biometric"));
        assert_eq!(a.open("features/u/1", &blob).unwrap(), b"biometric");
        // Moved to another place, altered, plaintext, or another key: refused.
        assert!(a.open("features/v/1", &blob).is_err());
        let mut bad = blob.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(a.open("features/u/1", &bad).is_err());
        assert!(
            a.open("features/u/1", b"biometric plaintext here....")
                .is_err()
        );
        let b = AtRestKeys::new([2; 32], &[]).unwrap();
        assert!(b.open("features/u/1", &blob).is_err());
        // A store that held data before encryption was on reads that data as it is,
        // but still refuses an altered or foreign encrypted blob.
        a.set_plaintext_before(true);
        assert_eq!(
            a.open("features/u/1", b"old plaintext").unwrap(),
            b"old plaintext"
        );
        assert!(a.open("features/u/1", &bad).is_err());
        assert!(b.open("features/u/1", &blob).is_err());
        a.set_plaintext_before(false);
        // Rotated: the new key writes, the old one still reads.
        let rotated = AtRestKeys::new([2; 32], &[[1; 32]]).unwrap();
        assert_eq!(rotated.open("features/u/1", &blob).unwrap(), b"biometric");
        let new_blob = rotated.seal("features/u/1", b"x").unwrap();
        assert!(a.open("features/u/1", &new_blob).is_err());
        assert_eq!(b.open("features/u/1", &new_blob).unwrap(), b"x");
    }

    /// A blob made by another implementation (Python's `cryptography`, the vector the
    /// Python factor example also opens): the format is what the docs say.
    #[test]
    fn opens_the_cross_implementation_vector() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/at_rest_v1.json")).unwrap();
        let hex_field = |k: &str| hex::decode(v[k].as_str().unwrap()).unwrap();
        let key: [u8; 32] = hex_field("key_hex").try_into().unwrap();
        let keys = AtRestKeys::new(key, &[]).unwrap();
        let context = v["context"].as_str().unwrap();
        assert_eq!(
            keys.open(context, &hex_field("blob_hex")).unwrap(),
            hex_field("plaintext_hex")
        );
        assert!(
            keys.open("features/bob/x.bin", &hex_field("blob_hex"))
                .is_err()
        );
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        AtRestKeys::generate(&p).unwrap();
        assert!(AtRestKeys::generate(&p).is_err(), "never overwrites");
        let k = AtRestKeys::load(&p, &[]).unwrap();
        let blob = k.seal("c", b"v").unwrap();
        assert_eq!(
            AtRestKeys::load(&p, &[]).unwrap().open("c", &blob).unwrap(),
            b"v"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(AtRestKeys::load(&p, &[]).is_err());
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(&p, "abc").unwrap();
        assert!(AtRestKeys::load(&p, &[]).is_err());
    }
}
