//! Envelope v1: the signed, HPKE-sealed unit a phone uploads (layout in `PROTOCOL.md`).
//!
//! Order of checks when opening, cheapest and least revealing first:
//! 1. strict structural decoding ([`Envelope::decode`]): magic, version, suite, flags,
//!    every length bounded, no trailing bytes;
//! 2. key id known to the backend ([`EnvelopeError::UnknownKeyId`]);
//! 3. the device signature over everything before it ([`EnvelopeError::BadSignature`]);
//! 4. HPKE open with the header as AAD ([`EnvelopeError::DecryptionFailed`]);
//! 5. strict payload decoding and schema validation ([`EnvelopeError::Payload`]).
//!
//! Replay checks need the backend's memory and live in [`crate::replay`].

mod codec;

use ring::rand::SecureRandom;

use crate::hpke::{self, KeyId, RecipientKeyPair, RecipientPublicKey, Suite};
use crate::identity::{DeviceId, DevicePublicKey, DeviceSigner, IdentityError, SignatureAlgorithm};
use crate::payload::{Payload, PayloadError};

pub use codec::{
    ENVELOPE_OVERHEAD, HEADER_LEN, MAGIC, MAX_CIPHERTEXT_LEN, MAX_ENVELOPE_LEN, MAX_SIGNATURE_LEN,
    VERSION,
};

/// HPKE `info` for envelope v1: binds the key schedule to this protocol and version.
pub const HPKE_INFO: &[u8] = b"tacit/envelope/v1";

/// The envelope header. Its 64-byte encoding is the HPKE associated data and is covered
/// by the device signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// HPKE suite (by AEAD id; KEM and KDF are fixed).
    pub suite: Suite,
    /// The backend key the payload is sealed to.
    pub key_id: KeyId,
    /// The sending device.
    pub device_id: DeviceId,
    /// Per-device sequence number, strictly increasing in creation order.
    pub sequence: u64,
    /// Creation time, Unix milliseconds (device clock).
    pub created_at_ms: u64,
    /// Random 16-byte identifier; the server acknowledges envelopes by it.
    pub envelope_id: [u8; 16],
}

/// A structurally valid, not yet authenticated envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The header.
    pub header: EnvelopeHeader,
    /// HPKE encapsulated key.
    pub enc: [u8; hpke::ENC_LEN],
    /// HPKE ciphertext (payload + tag).
    pub ciphertext: Vec<u8>,
    /// Algorithm of the device signature.
    pub signature_algorithm: SignatureAlgorithm,
    /// Device signature over the envelope's bytes up to and including the algorithm tag.
    pub signature: Vec<u8>,
}

/// An envelope whose signature verified and whose payload decrypted and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedEnvelope {
    /// The authenticated header.
    pub header: EnvelopeHeader,
    /// The validated payload.
    pub payload: Payload,
}

/// Why an envelope was rejected. Every variant is a distinct, stable reason that the
/// backend reports per envelope.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    /// Fewer bytes than the structure needs.
    #[error("envelope truncated")]
    Truncated,
    /// Bytes after the signature.
    #[error("{0} trailing bytes after the signature")]
    TrailingBytes(usize),
    /// The envelope or a length field exceeds its limit.
    #[error("{field} of {len} bytes exceeds the limit of {max}")]
    Oversized {
        /// What is too large.
        field: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A length field is below its minimum (e.g. ciphertext shorter than the tag).
    #[error("{field} of {len} bytes is below the minimum of {min}")]
    Undersized {
        /// What is too small.
        field: &'static str,
        /// Its size.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// Not a Tacit envelope.
    #[error("bad magic")]
    BadMagic,
    /// An envelope version this build does not know.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    /// An HPKE AEAD this build does not support.
    #[error("unsupported HPKE suite (aead id {0:#06x})")]
    UnsupportedSuite(u16),
    /// Reserved flag bits set.
    #[error("reserved flags {0:#04x} set")]
    ReservedFlags(u8),
    /// Unknown signature algorithm tag.
    #[error("unknown signature algorithm tag {0}")]
    UnknownSignatureAlgorithm(u8),
    /// The backend has no private key with this id.
    #[error("unknown HPKE key id {0}")]
    UnknownKeyId(KeyId),
    /// The header's device id is not the id of the key it is verified with.
    #[error("device id does not match the verifying key")]
    DeviceMismatch,
    /// The signature was made with another algorithm than the device's key.
    #[error("signature algorithm does not match the device key")]
    AlgorithmMismatch,
    /// The signature does not verify (forged, or the envelope was altered).
    #[error("bad device signature")]
    BadSignature,
    /// HPKE open failed under a valid signature: sealed to another key, or the
    /// ciphertext was altered before signing.
    #[error("decryption failed")]
    DecryptionFailed,
    /// The decrypted payload is malformed or a record fails its schema.
    #[error("invalid payload: {0}")]
    Payload(#[from] PayloadError),
    /// Sealing failed (RNG failure or signer error) — phone side only.
    #[error("sealing failed: {0}")]
    Seal(String),
}

impl EnvelopeError {
    /// A short stable code for APIs and metrics (never includes payload content).
    pub fn code(&self) -> &'static str {
        match self {
            EnvelopeError::Truncated => "truncated",
            EnvelopeError::TrailingBytes(_) => "trailing_bytes",
            EnvelopeError::Oversized { .. } => "oversized",
            EnvelopeError::Undersized { .. } => "undersized",
            EnvelopeError::BadMagic => "bad_magic",
            EnvelopeError::UnsupportedVersion(_) => "unsupported_version",
            EnvelopeError::UnsupportedSuite(_) => "unsupported_suite",
            EnvelopeError::ReservedFlags(_) => "reserved_flags",
            EnvelopeError::UnknownSignatureAlgorithm(_) => "unknown_signature_algorithm",
            EnvelopeError::UnknownKeyId(_) => "unknown_key_id",
            EnvelopeError::DeviceMismatch => "device_mismatch",
            EnvelopeError::AlgorithmMismatch => "algorithm_mismatch",
            EnvelopeError::BadSignature => "bad_signature",
            EnvelopeError::DecryptionFailed => "decryption_failed",
            EnvelopeError::Payload(_) => "invalid_payload",
            EnvelopeError::Seal(_) => "seal_failed",
        }
    }
}

/// What the phone decides for one envelope; the rest comes from the device key.
#[derive(Debug, Clone, Copy)]
pub struct SealParams {
    /// HPKE suite.
    pub suite: Suite,
    /// Per-device sequence number.
    pub sequence: u64,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: u64,
}

impl Envelope {
    /// Seals `payload` to `recipient` and signs the result with `signer`. The ephemeral
    /// HPKE key comes from `rng` and is discarded, so not even the phone can read the
    /// envelope afterwards. Returns the encoded envelope.
    pub fn seal(
        params: SealParams,
        payload: &Payload,
        recipient: &RecipientPublicKey,
        signer: &dyn DeviceSigner,
        rng: &dyn SecureRandom,
    ) -> Result<(EnvelopeHeader, Vec<u8>), EnvelopeError> {
        let mut envelope_id = [0u8; 16];
        rng.fill(&mut envelope_id)
            .map_err(|_| EnvelopeError::Seal("rng failure".into()))?;
        let device_key = signer.public_key();
        let header = EnvelopeHeader {
            suite: params.suite,
            key_id: recipient.key_id(),
            device_id: device_key.device_id(),
            sequence: params.sequence,
            created_at_ms: params.created_at_ms,
            envelope_id,
        };
        let mut plaintext = payload.encode()?;
        let max_pt = MAX_CIPHERTEXT_LEN - hpke::TAG_LEN;
        if plaintext.len() > max_pt {
            return Err(EnvelopeError::Oversized {
                field: "payload",
                len: plaintext.len(),
                max: max_pt,
            });
        }
        let aad = codec::encode_header(&header);
        let (enc, mut ctx) = hpke::setup_base_sender(params.suite, recipient, HPKE_INFO, rng)
            .map_err(|e| EnvelopeError::Seal(e.to_string()))?;
        ctx.seal_in_place(&aad, &mut plaintext)
            .map_err(|e| EnvelopeError::Seal(e.to_string()))?;
        let ciphertext = plaintext;
        let alg = device_key.algorithm();
        let mut out = codec::encode_unsigned(&header, &enc, &ciphertext, alg);
        let signature = signer
            .sign(&out)
            .map_err(|e| EnvelopeError::Seal(e.to_string()))?;
        if signature.is_empty() || signature.len() > MAX_SIGNATURE_LEN {
            return Err(EnvelopeError::Seal(format!(
                "signer returned {} bytes",
                signature.len()
            )));
        }
        out.push(signature.len() as u8);
        out.extend_from_slice(&signature);
        Ok((header, out))
    }

    /// Strictly decodes the envelope structure (no cryptography).
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        codec::decode(bytes)
    }

    /// Encodes the envelope (the exact inverse of [`decode`](Self::decode)).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = codec::encode_unsigned(
            &self.header,
            &self.enc,
            &self.ciphertext,
            self.signature_algorithm,
        );
        out.push(self.signature.len() as u8);
        out.extend_from_slice(&self.signature);
        out
    }

    /// The bytes the device signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        codec::encode_unsigned(
            &self.header,
            &self.enc,
            &self.ciphertext,
            self.signature_algorithm,
        )
    }

    /// Verifies the device signature with the device's registered public key.
    pub fn verify(&self, device_key: &DevicePublicKey) -> Result<(), EnvelopeError> {
        if device_key.device_id() != self.header.device_id {
            return Err(EnvelopeError::DeviceMismatch);
        }
        if device_key.algorithm() != self.signature_algorithm {
            return Err(EnvelopeError::AlgorithmMismatch);
        }
        device_key
            .verify(&self.signed_bytes(), &self.signature)
            .map_err(|e| match e {
                IdentityError::AlgorithmMismatch { .. } => EnvelopeError::AlgorithmMismatch,
                _ => EnvelopeError::BadSignature,
            })
    }

    /// Decrypts and validates the payload with the backend key named by the header.
    /// Does NOT check the signature: call [`verify`](Self::verify) first, or use
    /// [`open`](Self::open).
    pub fn decrypt(&self, key: &RecipientKeyPair) -> Result<Payload, EnvelopeError> {
        if key.key_id() != self.header.key_id {
            return Err(EnvelopeError::UnknownKeyId(self.header.key_id));
        }
        let aad = codec::encode_header(&self.header);
        let plaintext = hpke::open_base(
            self.header.suite,
            &self.enc,
            key,
            HPKE_INFO,
            &aad,
            &self.ciphertext,
        )
        .map_err(|_| EnvelopeError::DecryptionFailed)?;
        Ok(Payload::decode(&plaintext)?)
    }

    /// The full receive path for one encoded envelope: decode, find the key, verify
    /// the signature, decrypt, validate. `keys` maps a key id to the backend's private
    /// key (several may be live during rotation).
    pub fn open<'k>(
        bytes: &[u8],
        device_key: &DevicePublicKey,
        keys: impl Fn(&KeyId) -> Option<&'k RecipientKeyPair>,
    ) -> Result<OpenedEnvelope, EnvelopeError> {
        let env = Envelope::decode(bytes)?;
        let key = keys(&env.header.key_id).ok_or(EnvelopeError::UnknownKeyId(env.header.key_id))?;
        env.verify(device_key)?;
        let payload = env.decrypt(key)?;
        Ok(OpenedEnvelope {
            header: env.header,
            payload,
        })
    }
}

#[cfg(test)]
mod tests;
