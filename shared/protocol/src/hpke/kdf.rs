//! RFC 9180 §4 labeled HKDF-SHA256. Extract is done with HMAC so that its output (a
//! PRK) can be kept as bytes; `ring::hkdf::Prk::new_less_safe` rebuilds the PRK for
//! Expand. Labels are assembled as slices, without allocation.

use ring::{hkdf, hmac};

const VERSION_LABEL: &[u8] = b"HPKE-v1";

/// `LabeledExtract(salt, label, ikm)` = HKDF-Extract(salt, "HPKE-v1" || suite_id || label || ikm).
pub(crate) fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> [u8; 32] {
    // HKDF-Extract with an empty salt uses Nh zero bytes (RFC 5869 §2.2); HMAC pads a
    // short key with zeros, so the empty key is equivalent.
    let key = hmac::Key::new(hmac::HMAC_SHA256, salt);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(VERSION_LABEL);
    ctx.update(suite_id);
    ctx.update(label);
    ctx.update(ikm);
    let tag = ctx.sign();
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// `LabeledExpand(prk, label, info, L)` = HKDF-Expand(prk, I2OSP(L, 2) || "HPKE-v1" ||
/// suite_id || label || info, L), with L = `out.len()`.
///
/// Callers bound `out.len()` to 255 * Nh, the HKDF limit, so Expand cannot fail.
pub(crate) fn labeled_expand(
    suite_id: &[u8],
    prk: &[u8; 32],
    label: &[u8],
    info: &[u8],
    out: &mut [u8],
) {
    debug_assert!(out.len() <= 255 * 32);
    let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, prk);
    let len_bytes = (out.len() as u16).to_be_bytes();
    let info_parts: [&[u8]; 5] = [&len_bytes, VERSION_LABEL, suite_id, label, info];
    let okm = prk
        .expand(&info_parts, Len(out.len()))
        .expect("length bounded to 255 * Nh by every caller");
    okm.fill(out)
        .expect("output length equals the requested length");
}
