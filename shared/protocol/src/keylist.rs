//! The backend's signed list of HPKE keys: how phones learn a rotated key.
//!
//! The backend's HPKE keys rotate; phones seal to whichever key the backend will be
//! able to open. An offline **root** key (Ed25519) signs a list of the live keys with
//! their validity periods; the backend serves the signed list as it is
//! (`GET /v1/keys`), and a phone that pins the root's public key accepts a list only
//! when the signature verifies and its serial is not older than the one it holds
//! (no rollback to a list naming a retired or compromised key). The backend itself
//! cannot make a list the phones accept: a stolen server does not get to choose the
//! key phones encrypt to.
//!
//! Rotation with overlap: a new key is listed before (or when) it becomes valid, the
//! old one stays listed and on the backend until its `not_after`, so envelopes sealed
//! to it and still waiting in outboxes open during the overlap.
//!
//! Wire form (JSON): `{"list": BASE64(LIST), "signature": BASE64(SIG)}` where `LIST`
//! is the JSON of [`KeyList`] and `SIG` the root's Ed25519 signature over
//! [`SIGNING_CONTEXT`] ‖ `LIST`. Signing the exact bytes (not re-serialized JSON)
//! keeps verification independent of JSON canonicalisation.

use ring::signature::{self, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use crate::api::{b64_decode, b64_encode};
use crate::hpke::{KeyId, RecipientPublicKey};

/// Domain separation of the root's signatures.
pub const SIGNING_CONTEXT: &[u8] = b"tacit/keylist/v1\n";
/// Format version of [`KeyList`].
pub const KEY_LIST_VERSION: u32 = 1;
/// Most keys one list may name.
pub const MAX_LISTED_KEYS: usize = 16;
/// Largest signed list accepted, encoded (bytes).
pub const MAX_SIGNED_LIST_LEN: usize = 16 * 1024;

/// Why a key list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyListError {
    /// Not the expected structure, or a bound is exceeded.
    #[error("malformed key list: {0}")]
    Malformed(String),
    /// The root's signature does not verify (another root, or altered bytes).
    #[error("key list signature does not verify against the pinned root")]
    BadSignature,
    /// A list older than the one already held (a rollback).
    #[error("key list serial {got} is older than the held serial {held}")]
    Rollback {
        /// The held list's serial.
        held: u64,
        /// The offered list's serial.
        got: u64,
    },
    /// Signing failed (a malformed root private key).
    #[error("root key: {0}")]
    RootKey(String),
}

/// One listed backend key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedKey {
    /// The key id (16 hex characters), as in envelope headers.
    pub key_id: String,
    /// The X25519 public key, base64.
    pub public_key: String,
    /// Phones seal to it from this time on (Unix ms).
    pub not_before_ms: u64,
    /// Phones stop sealing to it at this time; the backend keeps the private key at
    /// least this long (Unix ms).
    pub not_after_ms: u64,
}

impl ListedKey {
    /// The public key, checked against its id.
    pub fn public(&self) -> Result<RecipientPublicKey, KeyListError> {
        let bytes: [u8; 32] = b64_decode(&self.public_key)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                KeyListError::Malformed("public key is not 32 bytes of base64".into())
            })?;
        let key = RecipientPublicKey::from_bytes(bytes);
        if KeyId::from_hex(&self.key_id) != Some(key.key_id()) {
            return Err(KeyListError::Malformed(format!(
                "key id {:?} does not match its public key",
                self.key_id.chars().take(32).collect::<String>()
            )));
        }
        Ok(key)
    }

    /// Whether phones seal to it at `now_ms`.
    pub fn valid_at(&self, now_ms: u64) -> bool {
        self.not_before_ms <= now_ms && now_ms < self.not_after_ms
    }
}

/// The list the root signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyList {
    /// [`KEY_LIST_VERSION`].
    pub version: u32,
    /// Increases with every list the root signs; phones refuse a lower one.
    pub serial: u64,
    /// When it was signed (Unix ms).
    pub issued_at_ms: u64,
    /// The keys.
    pub keys: Vec<ListedKey>,
}

impl KeyList {
    /// Checks the structure: version, bounds, ids matching keys, sane periods.
    pub fn validate(&self) -> Result<(), KeyListError> {
        if self.version != KEY_LIST_VERSION {
            return Err(KeyListError::Malformed(format!(
                "unsupported version {}",
                self.version
            )));
        }
        if self.serial == 0 {
            return Err(KeyListError::Malformed("serial 0".into()));
        }
        if self.keys.is_empty() || self.keys.len() > MAX_LISTED_KEYS {
            return Err(KeyListError::Malformed(format!(
                "{} keys (1..={MAX_LISTED_KEYS})",
                self.keys.len()
            )));
        }
        for k in &self.keys {
            k.public()?;
            if k.not_before_ms >= k.not_after_ms {
                return Err(KeyListError::Malformed(format!(
                    "key {}: not_before is not before not_after",
                    k.key_id
                )));
            }
        }
        Ok(())
    }

    /// The key to seal to at `now_ms`: of the keys valid then, the one that became
    /// valid last (a new key takes over as soon as it is valid). When none is valid
    /// (a phone offline past every period), the one valid last, so that sealing goes
    /// on; the backend refuses it once its private key is gone.
    pub fn current(&self, now_ms: u64) -> Option<&ListedKey> {
        self.keys
            .iter()
            .filter(|k| k.valid_at(now_ms))
            .max_by_key(|k| (k.not_before_ms, k.not_after_ms))
            .or_else(|| {
                self.keys
                    .iter()
                    .filter(|k| k.not_before_ms <= now_ms)
                    .max_by_key(|k| k.not_after_ms)
            })
            .or_else(|| self.keys.iter().min_by_key(|k| k.not_before_ms))
    }

    /// Signs the list with the root key (PKCS#8 Ed25519).
    pub fn sign(&self, root_pkcs8: &[u8]) -> Result<SignedKeyList, KeyListError> {
        self.validate()?;
        let root = Ed25519KeyPair::from_pkcs8_maybe_unchecked(root_pkcs8)
            .map_err(|e| KeyListError::RootKey(e.to_string()))?;
        let bytes = serde_json::to_vec(self)
            .map_err(|e| KeyListError::Malformed(format!("encoding: {e}")))?;
        let sig = root.sign(&signed_message(&bytes));
        Ok(SignedKeyList {
            list: b64_encode(&bytes),
            signature: b64_encode(sig.as_ref()),
        })
    }
}

/// The public key of a root PKCS#8 private key (what phones pin).
pub fn root_public_key(root_pkcs8: &[u8]) -> Result<[u8; 32], KeyListError> {
    let root = Ed25519KeyPair::from_pkcs8_maybe_unchecked(root_pkcs8)
        .map_err(|e| KeyListError::RootKey(e.to_string()))?;
    root.public_key()
        .as_ref()
        .try_into()
        .map_err(|_| KeyListError::RootKey("public key is not 32 bytes".into()))
}

fn signed_message(list: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + list.len());
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(list);
    m
}

/// A key list with the root's signature, as served by `GET /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedKeyList {
    /// The list's JSON, base64.
    #[cfg_attr(feature = "openapi", schema(max_length = 16384))]
    pub list: String,
    /// Ed25519 signature of the root over `tacit/keylist/v1\n` ‖ list, base64.
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub signature: String,
}

impl SignedKeyList {
    /// Parses the served JSON (bounded).
    pub fn from_json(bytes: &[u8]) -> Result<SignedKeyList, KeyListError> {
        if bytes.len() > MAX_SIGNED_LIST_LEN {
            return Err(KeyListError::Malformed(format!(
                "{} bytes (at most {MAX_SIGNED_LIST_LEN})",
                bytes.len()
            )));
        }
        serde_json::from_slice(bytes).map_err(|e| KeyListError::Malformed(e.to_string()))
    }

    /// The JSON to serve or keep.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of two strings always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Verifies the signature against the pinned root public key and returns the
    /// validated list. `held_serial` is the serial of the list already trusted (0 for
    /// none): an older one is a [`KeyListError::Rollback`].
    pub fn verify(&self, root: &[u8; 32], held_serial: u64) -> Result<KeyList, KeyListError> {
        if self.list.len() > MAX_SIGNED_LIST_LEN || self.signature.len() > 128 {
            return Err(KeyListError::Malformed("oversized field".into()));
        }
        let bytes = b64_decode(&self.list)
            .ok_or_else(|| KeyListError::Malformed("list is not base64".into()))?;
        let sig = b64_decode(&self.signature)
            .ok_or_else(|| KeyListError::Malformed("signature is not base64".into()))?;
        signature::UnparsedPublicKey::new(&signature::ED25519, root)
            .verify(&signed_message(&bytes), &sig)
            .map_err(|_| KeyListError::BadSignature)?;
        let list: KeyList =
            serde_json::from_slice(&bytes).map_err(|e| KeyListError::Malformed(e.to_string()))?;
        list.validate()?;
        if list.serial < held_serial {
            return Err(KeyListError::Rollback {
                held: held_serial,
                got: list.serial,
            });
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::hpke::RecipientKeyPair;
    use ring::rand::SystemRandom;

    fn root() -> Vec<u8> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn listed(seed: &[u8], from: u64, to: u64) -> ListedKey {
        let k = RecipientKeyPair::derive(seed);
        ListedKey {
            key_id: k.key_id().to_hex(),
            public_key: b64_encode(k.public_key().as_bytes()),
            not_before_ms: from,
            not_after_ms: to,
        }
    }

    fn list(serial: u64, keys: Vec<ListedKey>) -> KeyList {
        KeyList {
            version: KEY_LIST_VERSION,
            serial,
            issued_at_ms: 1,
            keys,
        }
    }

    #[test]
    fn signed_list_verifies_only_under_its_root() {
        let (r, other) = (root(), root());
        let pinned = root_public_key(&r).unwrap();
        let l = list(3, vec![listed(b"a", 0, 100), listed(b"b", 50, 200)]);
        let s = l.sign(&r).unwrap();
        let back = SignedKeyList::from_json(&s.to_json()).unwrap();
        assert_eq!(back.verify(&pinned, 0).unwrap(), l);
        assert_eq!(back.verify(&pinned, 3).unwrap(), l);
        assert_eq!(
            back.verify(&root_public_key(&other).unwrap(), 0),
            Err(KeyListError::BadSignature)
        );
        assert_eq!(
            back.verify(&pinned, 4),
            Err(KeyListError::Rollback { held: 4, got: 3 })
        );
        // One changed byte of the list (a later not_after for the old key).
        let mut bytes = b64_decode(&s.list).unwrap();
        let text = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("100", "900");
        bytes = text.into_bytes();
        let tampered = SignedKeyList {
            list: b64_encode(&bytes),
            signature: s.signature.clone(),
        };
        assert_eq!(tampered.verify(&pinned, 0), Err(KeyListError::BadSignature));
    }

    #[test]
    fn current_key_moves_to_the_newest_valid_one() {
        let l = list(1, vec![listed(b"a", 0, 100), listed(b"b", 50, 200)]);
        let a = &l.keys[0].key_id;
        let b = &l.keys[1].key_id;
        assert_eq!(&l.current(10).unwrap().key_id, a);
        assert_eq!(&l.current(50).unwrap().key_id, b);
        assert_eq!(&l.current(150).unwrap().key_id, b);
        // Past every period: the one valid last; before any: the first to come.
        assert_eq!(&l.current(500).unwrap().key_id, b);
        let future = list(1, vec![listed(b"a", 100, 200)]);
        assert_eq!(future.current(0).unwrap().key_id, future.keys[0].key_id);
    }

    #[test]
    fn malformed_lists_are_refused() {
        let r = root();
        let mut wrong_id = listed(b"a", 0, 100);
        wrong_id.key_id = listed(b"b", 0, 1).key_id;
        for bad in [
            list(0, vec![listed(b"a", 0, 100)]),
            list(1, vec![]),
            list(1, vec![listed(b"a", 100, 100)]),
            list(1, vec![wrong_id]),
            list(1, (0..17u8).map(|i| listed(&[i], 0, 1)).collect()),
            KeyList {
                version: 2,
                ..list(1, vec![listed(b"a", 0, 100)])
            },
        ] {
            assert!(
                matches!(bad.sign(&r), Err(KeyListError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(SignedKeyList::from_json(b"{\"list\":\"\"}").is_err());
        assert!(SignedKeyList::from_json(&vec![b' '; MAX_SIGNED_LIST_LEN + 1]).is_err());
        let pinned = root_public_key(&r).unwrap();
        let junk = SignedKeyList {
            list: "***".into(),
            signature: "AA==".into(),
        };
        assert!(matches!(
            junk.verify(&pinned, 0),
            Err(KeyListError::Malformed(_))
        ));
    }
}
