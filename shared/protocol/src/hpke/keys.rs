//! Recipient (backend) key pairs, public keys and key identifiers.

use ring::digest;
use ring::rand::SecureRandom;
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::Zeroizing;

use super::kdf::{labeled_expand, labeled_extract};
use super::{ENC_LEN, HpkeError, Suite};

/// Identifies a backend HPKE key: the first 8 bytes of
/// SHA-256("tacit/hpke-key-id/v1" || public key). Carried in every envelope header so
/// the backend can hold several keys at once (rotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// Derives the key id of an X25519 public key.
    pub fn for_public_key(public: &[u8; ENC_LEN]) -> KeyId {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"tacit/hpke-key-id/v1");
        ctx.update(public);
        let d = ctx.finish();
        let mut id = [0u8; 8];
        id.copy_from_slice(&d.as_ref()[..8]);
        KeyId(id)
    }

    /// Lower-case hex form, as used in configuration files and logs.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses the 16-character hex form.
    pub fn from_hex(s: &str) -> Option<KeyId> {
        let b = s.as_bytes();
        if b.len() != 16 {
            return None;
        }
        let mut id = [0u8; 8];
        for (i, out) in id.iter_mut().enumerate() {
            let hi = (b[2 * i] as char).to_digit(16)?;
            let lo = (b[2 * i + 1] as char).to_digit(16)?;
            *out = (hi * 16 + lo) as u8;
        }
        Some(KeyId(id))
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A backend's X25519 public key, pinned in apps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipientPublicKey([u8; ENC_LEN]);

impl RecipientPublicKey {
    /// Wraps raw X25519 public key bytes. Every 32-byte string is accepted here; a
    /// low-order point is rejected when it is used (the DH output is then all zero).
    pub fn from_bytes(bytes: [u8; ENC_LEN]) -> Self {
        RecipientPublicKey(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; ENC_LEN] {
        &self.0
    }

    /// The key id derived from this key.
    pub fn key_id(&self) -> KeyId {
        KeyId::for_public_key(&self.0)
    }
}

/// A backend's static X25519 key pair (the receiving side of HPKE).
pub struct RecipientKeyPair {
    secret: StaticSecret,
    public: RecipientPublicKey,
}

impl RecipientKeyPair {
    /// Generates a fresh key pair from `rng`.
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, HpkeError> {
        let mut sk = Zeroizing::new([0u8; 32]);
        rng.fill(&mut sk[..]).map_err(|_| HpkeError::Rng)?;
        Ok(Self::from_secret_bytes(*sk))
    }

    /// `DeriveKeyPair(ikm)` of RFC 9180 §7.1.3 for X25519: deterministic from input
    /// keying material (at least 32 bytes of entropy).
    pub fn derive(ikm: &[u8]) -> Self {
        let kem_id = Suite::kem_suite_id();
        let dkp_prk = Zeroizing::new(labeled_extract(&kem_id, b"", b"dkp_prk", ikm));
        let mut sk = Zeroizing::new([0u8; 32]);
        labeled_expand(&kem_id, &dkp_prk, b"sk", b"", &mut sk[..]);
        Self::from_secret_bytes(*sk)
    }

    /// Rebuilds a key pair from the 32 private key bytes (as stored by `keygen`).
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        let secret = StaticSecret::from(secret);
        let public = RecipientPublicKey(PublicKey::from(&secret).to_bytes());
        RecipientKeyPair { secret, public }
    }

    /// The private key bytes, for storage with restrictive permissions.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// The public half.
    pub fn public_key(&self) -> &RecipientPublicKey {
        &self.public
    }

    /// The key id of the public half.
    pub fn key_id(&self) -> KeyId {
        self.public.key_id()
    }

    pub(crate) fn diffie_hellman(&self, enc: &[u8; ENC_LEN]) -> Result<SharedSecret, HpkeError> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(*enc));
        if !shared.was_contributory() {
            return Err(HpkeError::InvalidPublicKey);
        }
        Ok(shared)
    }
}

impl std::fmt::Debug for RecipientKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecipientKeyPair")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}
