//! Supported cipher suites and their identifiers.

use ring::aead;

/// KEM identifier of DHKEM(X25519, HKDF-SHA256).
pub const KEM_X25519_HKDF_SHA256: u16 = 0x0020;
/// KDF identifier of HKDF-SHA256.
pub const KDF_HKDF_SHA256: u16 = 0x0001;

/// An HPKE cipher suite. The KEM (X25519) and KDF (HKDF-SHA256) are fixed; the AEAD
/// varies. The discriminant is the RFC 9180 AEAD identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Suite {
    /// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM (aead 0x0001).
    X25519Sha256Aes128Gcm = 0x0001,
    /// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305 (aead 0x0003).
    /// The Tacit default: fast in software on phones without AES instructions.
    X25519Sha256ChaCha20Poly1305 = 0x0003,
}

impl Suite {
    /// The RFC 9180 AEAD identifier.
    pub fn aead_id(self) -> u16 {
        self as u16
    }

    /// Looks a suite up by its AEAD identifier.
    pub fn from_aead_id(id: u16) -> Option<Suite> {
        match id {
            0x0001 => Some(Suite::X25519Sha256Aes128Gcm),
            0x0003 => Some(Suite::X25519Sha256ChaCha20Poly1305),
            _ => None,
        }
    }

    pub(crate) fn key_len(self) -> usize {
        match self {
            Suite::X25519Sha256Aes128Gcm => 16,
            Suite::X25519Sha256ChaCha20Poly1305 => 32,
        }
    }

    pub(crate) fn ring_aead(self) -> &'static aead::Algorithm {
        match self {
            Suite::X25519Sha256Aes128Gcm => &aead::AES_128_GCM,
            Suite::X25519Sha256ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }

    /// `suite_id` of the KEM: "KEM" || I2OSP(kem_id, 2).
    pub(crate) fn kem_suite_id() -> [u8; 5] {
        let k = KEM_X25519_HKDF_SHA256.to_be_bytes();
        [b'K', b'E', b'M', k[0], k[1]]
    }

    /// `suite_id` of the HPKE key schedule: "HPKE" || kem_id || kdf_id || aead_id.
    pub(crate) fn hpke_suite_id(self) -> [u8; 10] {
        let k = KEM_X25519_HKDF_SHA256.to_be_bytes();
        let f = KDF_HKDF_SHA256.to_be_bytes();
        let a = self.aead_id().to_be_bytes();
        [b'H', b'P', b'K', b'E', k[0], k[1], f[0], f[1], a[0], a[1]]
    }
}
