//! Byte layout of envelope v1 (big-endian; the normative description is `PROTOCOL.md`).

use super::{Envelope, EnvelopeError, EnvelopeHeader};
use crate::hpke::{ENC_LEN, KeyId, Suite, TAG_LEN};
use crate::identity::{DeviceId, SignatureAlgorithm};
use crate::wire::Reader;

/// First four bytes of every envelope.
pub const MAGIC: [u8; 4] = *b"TCIT";
/// Envelope format version this build reads and writes.
pub const VERSION: u8 = 1;
/// Encoded header length (the HPKE AAD).
pub const HEADER_LEN: usize = 4 + 1 + 2 + 1 + 8 + 16 + 8 + 8 + 16;
/// Largest encoded envelope accepted (1 MiB).
pub const MAX_ENVELOPE_LEN: usize = 1 << 20;
/// Largest signature accepted (DER ECDSA P-256 is at most 72 bytes).
pub const MAX_SIGNATURE_LEN: usize = 72;
/// Fixed bytes around the ciphertext: header, enc, ciphertext length, signature
/// algorithm and length (the signature itself comes on top).
pub const ENVELOPE_OVERHEAD: usize = HEADER_LEN + ENC_LEN + 4 + 1 + 1;
/// Largest ciphertext that fits in [`MAX_ENVELOPE_LEN`] with the longest signature.
pub const MAX_CIPHERTEXT_LEN: usize = MAX_ENVELOPE_LEN - ENVELOPE_OVERHEAD - MAX_SIGNATURE_LEN;

pub(super) fn encode_header(h: &EnvelopeHeader) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    let mut pos = 0;
    let mut put = |bytes: &[u8]| {
        out[pos..pos + bytes.len()].copy_from_slice(bytes);
        pos += bytes.len();
    };
    put(&MAGIC);
    put(&[VERSION]);
    put(&h.suite.aead_id().to_be_bytes());
    put(&[0]); // flags: reserved
    put(&h.key_id.0);
    put(&h.device_id.0);
    put(&h.sequence.to_be_bytes());
    put(&h.created_at_ms.to_be_bytes());
    put(&h.envelope_id);
    out
}

/// Everything the signature covers: header, enc, ciphertext length and bytes, and the
/// signature algorithm tag.
pub(super) fn encode_unsigned(
    h: &EnvelopeHeader,
    enc: &[u8; ENC_LEN],
    ciphertext: &[u8],
    alg: SignatureAlgorithm,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + ciphertext.len() + MAX_SIGNATURE_LEN);
    out.extend_from_slice(&encode_header(h));
    out.extend_from_slice(enc);
    out.extend_from_slice(&(ciphertext.len() as u32).to_be_bytes());
    out.extend_from_slice(ciphertext);
    out.push(alg.tag());
    out
}

fn decode_header(r: &mut Reader<'_>) -> Result<EnvelopeHeader, EnvelopeError> {
    let t = || EnvelopeError::Truncated;
    let magic: [u8; 4] = r.array().ok_or_else(t)?;
    if magic != MAGIC {
        return Err(EnvelopeError::BadMagic);
    }
    let version = r.u8().ok_or_else(t)?;
    if version != VERSION {
        return Err(EnvelopeError::UnsupportedVersion(version));
    }
    let aead = r.u16().ok_or_else(t)?;
    let suite = Suite::from_aead_id(aead).ok_or(EnvelopeError::UnsupportedSuite(aead))?;
    let flags = r.u8().ok_or_else(t)?;
    if flags != 0 {
        return Err(EnvelopeError::ReservedFlags(flags));
    }
    Ok(EnvelopeHeader {
        suite,
        key_id: KeyId(r.array().ok_or_else(t)?),
        device_id: DeviceId(r.array().ok_or_else(t)?),
        sequence: r.u64().ok_or_else(t)?,
        created_at_ms: r.u64().ok_or_else(t)?,
        envelope_id: r.array().ok_or_else(t)?,
    })
}

pub(super) fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    if bytes.len() > MAX_ENVELOPE_LEN {
        return Err(EnvelopeError::Oversized {
            field: "envelope",
            len: bytes.len(),
            max: MAX_ENVELOPE_LEN,
        });
    }
    let t = || EnvelopeError::Truncated;
    let mut r = Reader::new(bytes);
    let header = decode_header(&mut r)?;
    let enc: [u8; ENC_LEN] = r.array().ok_or_else(t)?;
    let ct_len = r.u32().ok_or_else(t)? as usize;
    if ct_len > MAX_CIPHERTEXT_LEN {
        return Err(EnvelopeError::Oversized {
            field: "ciphertext",
            len: ct_len,
            max: MAX_CIPHERTEXT_LEN,
        });
    }
    if ct_len < TAG_LEN {
        return Err(EnvelopeError::Undersized {
            field: "ciphertext",
            len: ct_len,
            min: TAG_LEN,
        });
    }
    let ciphertext = r.bytes(ct_len).ok_or_else(t)?.to_vec();
    let tag = r.u8().ok_or_else(t)?;
    let signature_algorithm =
        SignatureAlgorithm::from_tag(tag).ok_or(EnvelopeError::UnknownSignatureAlgorithm(tag))?;
    let sig_len = r.u8().ok_or_else(t)? as usize;
    if sig_len > signature_algorithm.max_signature_len() {
        return Err(EnvelopeError::Oversized {
            field: "signature",
            len: sig_len,
            max: signature_algorithm.max_signature_len(),
        });
    }
    if sig_len == 0 {
        return Err(EnvelopeError::Undersized {
            field: "signature",
            len: 0,
            min: 1,
        });
    }
    let signature = r.bytes(sig_len).ok_or_else(t)?.to_vec();
    if r.remaining() != 0 {
        return Err(EnvelopeError::TrailingBytes(r.remaining()));
    }
    debug_assert_eq!(r.position(), bytes.len());
    Ok(Envelope {
        header,
        enc,
        ciphertext,
        signature_algorithm,
        signature,
    })
}
