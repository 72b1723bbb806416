//! Device identity: signing keys and algorithm-tagged public keys.
//!
//! Phones sign every envelope. The default signer is Ed25519 (ring). Apps that keep
//! their key in the Secure Enclave or the Android Keystore produce ECDSA P-256 SHA-256
//! signatures instead, so the verifying side accepts both; the algorithm travels with
//! the public key as a one-byte tag.

use ring::digest;
use ring::rand::SecureRandom;
use ring::signature::{self, KeyPair};

/// The signature algorithms a device key may use. The discriminant is the wire tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SignatureAlgorithm {
    /// Ed25519 (RFC 8032). Public key: 32 bytes. Signature: 64 bytes.
    Ed25519 = 1,
    /// ECDSA over P-256 with SHA-256. Public key: 65-byte uncompressed SEC1 point.
    /// Signature: ASN.1 DER `Ecdsa-Sig-Value` (what Secure Enclave and Android Keystore
    /// return), at most 72 bytes.
    EcdsaP256Sha256 = 2,
}

impl SignatureAlgorithm {
    /// Parses the wire tag.
    pub fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(SignatureAlgorithm::Ed25519),
            2 => Some(SignatureAlgorithm::EcdsaP256Sha256),
            _ => None,
        }
    }

    /// The wire tag.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// Exact public key length for this algorithm.
    pub fn public_key_len(self) -> usize {
        match self {
            SignatureAlgorithm::Ed25519 => 32,
            SignatureAlgorithm::EcdsaP256Sha256 => 65,
        }
    }

    /// Largest signature this algorithm produces.
    pub fn max_signature_len(self) -> usize {
        match self {
            SignatureAlgorithm::Ed25519 => 64,
            SignatureAlgorithm::EcdsaP256Sha256 => 72,
        }
    }
}

/// Errors of device identity handling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Unknown algorithm tag.
    #[error("unknown signature algorithm tag {0}")]
    UnknownAlgorithm(u8),
    /// The public key has the wrong length or form for its algorithm.
    #[error("malformed {0:?} public key")]
    MalformedPublicKey(SignatureAlgorithm),
    /// The signature does not verify under the public key.
    #[error("signature does not verify")]
    BadSignature,
    /// The signature was made with another algorithm than the registered key's.
    #[error("signature algorithm {got:?} does not match the device key ({expected:?})")]
    AlgorithmMismatch {
        /// The registered key's algorithm.
        expected: SignatureAlgorithm,
        /// The algorithm the signature claims.
        got: SignatureAlgorithm,
    },
    /// Key generation, parsing of a private key, or signing failed.
    #[error("signing key error: {0}")]
    Signer(String),
}

/// A device's public key with its algorithm tag.
#[derive(Debug, Clone)]
pub struct DevicePublicKey {
    algorithm: SignatureAlgorithm,
    bytes: Vec<u8>,
    /// The Ed25519 point, decompressed and checked once: every verification would
    /// otherwise pay two field exponentiations again (a gateway verifies a device's
    /// whole batch with one key).
    ed25519: Option<ed25519_dalek::VerifyingKey>,
}

impl PartialEq for DevicePublicKey {
    fn eq(&self, other: &Self) -> bool {
        (self.algorithm, &self.bytes) == (other.algorithm, &other.bytes)
    }
}

impl Eq for DevicePublicKey {}

impl std::hash::Hash for DevicePublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.algorithm, &self.bytes).hash(state);
    }
}

impl DevicePublicKey {
    /// Validates and wraps a public key.
    ///
    /// Ed25519: the canonical encoding of a curve point that is not of small order (a
    /// small-order key, such as the identity `01 00…00`, lets one signature verify for
    /// every message). P-256: an uncompressed SEC1 point on the curve, not the identity.
    pub fn new(algorithm: SignatureAlgorithm, bytes: &[u8]) -> Result<Self, IdentityError> {
        if bytes.len() != algorithm.public_key_len() {
            return Err(IdentityError::MalformedPublicKey(algorithm));
        }
        let ed25519 = match algorithm {
            SignatureAlgorithm::Ed25519 => {
                Some(ed25519_key(bytes).ok_or(IdentityError::MalformedPublicKey(algorithm))?)
            }
            SignatureAlgorithm::EcdsaP256Sha256 => {
                if !(bytes[0] == 0x04 && p256::PublicKey::from_sec1_bytes(bytes).is_ok()) {
                    return Err(IdentityError::MalformedPublicKey(algorithm));
                }
                None
            }
        };
        Ok(DevicePublicKey {
            algorithm,
            bytes: bytes.to_vec(),
            ed25519,
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// The raw key bytes (Ed25519: 32 bytes; P-256: 65-byte uncompressed point).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Verifies `signature` over `message`.
    ///
    /// Ed25519 is verified strictly (ed25519-dalek's `verify_strict`: cofactorless
    /// equation, canonical `S`, and neither the key nor `R` of small order); ECDSA P-256
    /// by ring (DER signature, `r` and `s` in range, the point on the curve).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), IdentityError> {
        match self.algorithm {
            SignatureAlgorithm::Ed25519 => {
                let key = self.ed25519.as_ref().ok_or(IdentityError::BadSignature)?;
                let sig = <[u8; 64]>::try_from(signature)
                    .map(|b| ed25519_dalek::Signature::from_bytes(&b))
                    .map_err(|_| IdentityError::BadSignature)?;
                key.verify_strict(message, &sig)
                    .map_err(|_| IdentityError::BadSignature)
            }
            SignatureAlgorithm::EcdsaP256Sha256 => {
                if signature.len() > self.algorithm.max_signature_len() {
                    return Err(IdentityError::BadSignature);
                }
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.bytes)
                    .verify(message, signature)
                    .map_err(|_| IdentityError::BadSignature)
            }
        }
    }

    /// The device id bound to this key: the first 16 bytes of
    /// SHA-256("tacit/device-id/v1" || tag || key). A new key is a new device.
    pub fn device_id(&self) -> DeviceId {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"tacit/device-id/v1");
        ctx.update(&[self.algorithm.tag()]);
        ctx.update(&self.bytes);
        let d = ctx.finish();
        let mut id = [0u8; 16];
        id.copy_from_slice(&d.as_ref()[..16]);
        DeviceId(id)
    }
}

/// An Ed25519 public key that is a canonically encoded point of large order, `None`
/// otherwise. Decompression alone accepts a `y` coordinate at or above the field prime
/// (two encodings of one point) and the eight small-order points.
fn ed25519_key(bytes: &[u8]) -> Option<ed25519_dalek::VerifyingKey> {
    let bytes = <&[u8; 32]>::try_from(bytes).ok()?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).ok()?;
    let canonical = key.to_edwards().compress().to_bytes() == *bytes;
    (canonical && !key.is_weak()).then_some(key)
}

/// A device identifier (16 bytes), derived from the device's public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub [u8; 16]);

impl DeviceId {
    /// Lower-case hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Something that signs envelopes for a device. Implemented in Rust by
/// [`Ed25519Signer`] and [`P256Signer`]; apps plug in hardware key stores through the
/// mobile core's foreign `DeviceKeyStore` trait.
pub trait DeviceSigner: Send + Sync {
    /// The public key (with its algorithm) that verifies this signer's signatures.
    fn public_key(&self) -> DevicePublicKey;
    /// Signs `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError>;
}

/// Ed25519 device key held in memory (ring).
pub struct Ed25519Signer {
    pair: signature::Ed25519KeyPair,
}

impl Ed25519Signer {
    /// Generates a key and returns it with its PKCS#8 v2 encoding (for storage).
    pub fn generate(rng: &dyn SecureRandom) -> Result<(Self, Vec<u8>), IdentityError> {
        let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(rng)
            .map_err(|_| IdentityError::Signer("Ed25519 key generation failed".into()))?;
        let signer = Self::from_pkcs8(pkcs8.as_ref())?;
        Ok((signer, pkcs8.as_ref().to_vec()))
    }

    /// Loads a key from its PKCS#8 encoding.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, IdentityError> {
        let pair = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|e| IdentityError::Signer(format!("bad Ed25519 PKCS#8: {e}")))?;
        Ok(Ed25519Signer { pair })
    }
}

impl DeviceSigner for Ed25519Signer {
    fn public_key(&self) -> DevicePublicKey {
        let bytes = self.pair.public_key().as_ref().to_vec();
        DevicePublicKey {
            algorithm: SignatureAlgorithm::Ed25519,
            ed25519: ed25519_key(&bytes),
            bytes,
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        Ok(self.pair.sign(message).as_ref().to_vec())
    }
}

/// ECDSA P-256 SHA-256 device key held in memory (ring). Stands in for hardware key
/// stores in tests and on platforms without one.
pub struct P256Signer {
    pair: signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl P256Signer {
    /// Generates a key and returns it with its PKCS#8 encoding.
    pub fn generate(rng: &dyn SecureRandom) -> Result<(Self, Vec<u8>), IdentityError> {
        let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, rng)
            .map_err(|_| IdentityError::Signer("P-256 key generation failed".into()))?;
        let signer = Self::from_pkcs8(pkcs8.as_ref())?;
        Ok((signer, pkcs8.as_ref().to_vec()))
    }

    /// Loads a key from its PKCS#8 encoding.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, IdentityError> {
        let rng = ring::rand::SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pair = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8, &rng)
            .map_err(|e| IdentityError::Signer(format!("bad P-256 PKCS#8: {e}")))?;
        Ok(P256Signer { pair, rng })
    }
}

impl DeviceSigner for P256Signer {
    fn public_key(&self) -> DevicePublicKey {
        DevicePublicKey {
            algorithm: SignatureAlgorithm::EcdsaP256Sha256,
            bytes: self.pair.public_key().as_ref().to_vec(),
            ed25519: None,
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        self.pair
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| IdentityError::Signer("P-256 signing failed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn signers() -> Vec<Box<dyn DeviceSigner>> {
        let rng = SystemRandom::new();
        vec![
            Box::new(Ed25519Signer::generate(&rng).unwrap().0),
            Box::new(P256Signer::generate(&rng).unwrap().0),
        ]
    }

    #[test]
    fn sign_and_verify_both_algorithms() {
        for s in signers() {
            let pk = s.public_key();
            let sig = s.sign(b"hello").unwrap();
            assert!(sig.len() <= pk.algorithm().max_signature_len());
            pk.verify(b"hello", &sig).unwrap();
            assert_eq!(pk.verify(b"hellp", &sig), Err(IdentityError::BadSignature));
            let round = DevicePublicKey::new(pk.algorithm(), pk.as_bytes()).unwrap();
            assert_eq!(round, pk);
        }
    }

    #[test]
    fn keys_of_one_algorithm_do_not_verify_the_others_signatures() {
        let s = signers();
        let sig = s[0].sign(b"m").unwrap();
        assert!(s[1].public_key().verify(b"m", &sig).is_err());
        let other = Ed25519Signer::generate(&SystemRandom::new()).unwrap().0;
        assert!(other.public_key().verify(b"m", &sig).is_err());
    }

    #[test]
    fn pkcs8_round_trip_keeps_the_key() {
        let rng = SystemRandom::new();
        let (a, pkcs8) = Ed25519Signer::generate(&rng).unwrap();
        let b = Ed25519Signer::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let (c, pkcs8) = P256Signer::generate(&rng).unwrap();
        let d = P256Signer::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(c.public_key(), d.public_key());
        assert!(Ed25519Signer::from_pkcs8(b"garbage").is_err());
    }

    #[test]
    fn malformed_public_keys_are_rejected() {
        use SignatureAlgorithm::*;
        assert!(DevicePublicKey::new(Ed25519, &[0; 31]).is_err());
        assert!(DevicePublicKey::new(EcdsaP256Sha256, &[0; 65]).is_err());
        assert!(DevicePublicKey::new(EcdsaP256Sha256, &[0xff; 65]).is_err());
        assert_eq!(SignatureAlgorithm::from_tag(9), None);
    }

    /// The identity point as a key, with the signature (R = identity, S = 0) that would
    /// verify for any message under a cofactored or unchecked verifier.
    #[test]
    fn small_order_and_non_canonical_ed25519_keys_are_rejected() {
        use SignatureAlgorithm::Ed25519;
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            DevicePublicKey::new(Ed25519, &identity),
            Err(IdentityError::MalformedPublicKey(Ed25519))
        );
        // Every small-order point (the 8-torsion subgroup) in its canonical encoding.
        let small_order: [&str; 7] = [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000080",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ];
        for k in small_order {
            let k = hex::decode(k).unwrap();
            assert!(DevicePublicKey::new(Ed25519, &k).is_err(), "{k:02x?}");
        }
        // y = p + k encodes the point with y = k a second time (p = 2^255 - 19, so
        // k < 19): refused for every large-order point among them.
        let mut large_order = 0;
        for k in 0u8..19 {
            let mut canonical = [0u8; 32];
            canonical[0] = k;
            if DevicePublicKey::new(Ed25519, &canonical).is_err() {
                continue;
            }
            large_order += 1;
            let mut non_canonical = [0xffu8; 32];
            non_canonical[0] = 0xed + k;
            non_canonical[31] = 0x7f;
            assert!(
                DevicePublicKey::new(Ed25519, &non_canonical).is_err(),
                "y = p + {k}"
            );
        }
        assert!(large_order > 0, "no valid point with a small y to test");
        // Verification refuses such a key even if one was stored before this check.
        let forged = DevicePublicKey {
            algorithm: Ed25519,
            bytes: identity.to_vec(),
            // Decompressed without the checks of `new`.
            ed25519: ed25519_dalek::VerifyingKey::from_bytes(&identity).ok(),
        };
        assert!(forged.ed25519.is_some());
        let mut sig = [0u8; 64];
        sig[0] = 1;
        assert_eq!(
            forged.verify(b"any message", &sig),
            Err(IdentityError::BadSignature)
        );
    }

    #[test]
    fn p256_points_off_the_curve_are_rejected() {
        use SignatureAlgorithm::EcdsaP256Sha256;
        let mut zero = [0u8; 65];
        zero[0] = 4;
        assert!(DevicePublicKey::new(EcdsaP256Sha256, &zero).is_err());
        // A real key with one bit of y flipped: coordinates in range, not on the curve.
        let real = P256Signer::generate(&SystemRandom::new())
            .unwrap()
            .0
            .public_key();
        let mut off = real.as_bytes().to_vec();
        off[64] ^= 1;
        assert!(DevicePublicKey::new(EcdsaP256Sha256, &off).is_err());
        assert!(DevicePublicKey::new(EcdsaP256Sha256, real.as_bytes()).is_ok());
    }

    #[test]
    fn device_id_depends_on_key_and_algorithm() {
        let s = signers();
        assert_ne!(s[0].public_key().device_id(), s[1].public_key().device_id());
        assert_eq!(s[0].public_key().device_id(), s[0].public_key().device_id());
    }
}
