//! Hybrid Public Key Encryption (RFC 9180), base mode.
//!
//! KEM: DHKEM(X25519, HKDF-SHA256) (0x0020). KDF: HKDF-SHA256 (0x0001). AEAD:
//! ChaCha20-Poly1305 (0x0003, the Tacit default) or AES-128-GCM (0x0001).
//!
//! The sender (the phone) uses only `ring` primitives: an ephemeral X25519 agreement,
//! HKDF/HMAC-SHA256 and the AEAD. The receiver (the backend) needs a *static* X25519
//! private key, which `ring` does not offer, so that side uses `x25519-dalek`.
//!
//! The implementation reproduces every value of the RFC's base-mode test vectors for
//! both suites (see `tests/rfc9180.rs`).

mod kdf;
mod keys;
mod suite;

use ring::aead;
use ring::agreement;
use ring::rand::SecureRandom;
use zeroize::Zeroize;

pub use keys::{KeyId, RecipientKeyPair, RecipientPublicKey};
pub use suite::Suite;

use kdf::{labeled_expand, labeled_extract};

/// Length of an X25519 public key and of the KEM's encapsulated key `enc`.
pub const ENC_LEN: usize = 32;
/// Length of the KEM shared secret (Nsecret) and of HKDF-SHA256 output (Nh).
pub const SECRET_LEN: usize = 32;
/// AEAD nonce length (Nn) for both supported AEADs.
pub const NONCE_LEN: usize = 12;
/// AEAD tag length (Nt) for both supported AEADs.
pub const TAG_LEN: usize = 16;
/// Largest exporter output RFC 9180 allows for HKDF-SHA256 (255 * Nh).
pub const MAX_EXPORT_LEN: usize = 255 * SECRET_LEN;

const MODE_BASE: u8 = 0x00;

/// Errors of the HPKE layer. Deliberately coarse: an attacker learns nothing from
/// which step of decryption failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HpkeError {
    /// The peer's public key is malformed or the DH result is all zero
    /// (a small-order point), which RFC 9180 §7.1.4 requires us to reject.
    #[error("invalid public key or non-contributory Diffie-Hellman result")]
    InvalidPublicKey,
    /// The random number generator failed.
    #[error("random number generator failure")]
    Rng,
    /// Authenticated decryption failed: wrong key, wrong AAD or tampered ciphertext.
    #[error("decryption failed (wrong key, wrong associated data or tampered ciphertext)")]
    OpenFailed,
    /// Encryption failed (only possible for absurd plaintext sizes).
    #[error("encryption failed")]
    SealFailed,
    /// The context's sequence number is exhausted (RFC 9180 §5.2 MessageLimitReachedError).
    #[error("message limit reached for this HPKE context")]
    MessageLimitReached,
    /// Requested exporter length is larger than 255 * Nh.
    #[error("export length {0} exceeds the maximum of {MAX_EXPORT_LEN}")]
    ExportTooLong(usize),
}

/// The secrets derived by the key schedule (RFC 9180 §5.1). Zeroised on drop.
struct KeySchedule {
    key: [u8; 32],
    key_len: usize,
    base_nonce: [u8; NONCE_LEN],
    exporter_secret: [u8; SECRET_LEN],
}

impl Drop for KeySchedule {
    fn drop(&mut self) {
        self.key.zeroize();
        self.base_nonce.zeroize();
        self.exporter_secret.zeroize();
    }
}

fn key_schedule(suite: Suite, shared_secret: &[u8; SECRET_LEN], info: &[u8]) -> KeySchedule {
    let hpke_id = suite.hpke_suite_id();
    // Base mode: psk and psk_id are empty.
    let psk_id_hash = labeled_extract(&hpke_id, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(&hpke_id, b"", b"info_hash", info);
    let mut context = [0u8; 1 + 2 * SECRET_LEN];
    context[0] = MODE_BASE;
    context[1..1 + SECRET_LEN].copy_from_slice(&psk_id_hash);
    context[1 + SECRET_LEN..].copy_from_slice(&info_hash);
    let mut secret = labeled_extract(&hpke_id, shared_secret, b"secret", b"");

    let key_len = suite.key_len();
    let mut key = [0u8; 32];
    labeled_expand(&hpke_id, &secret, b"key", &context, &mut key[..key_len]);
    let mut base_nonce = [0u8; NONCE_LEN];
    labeled_expand(&hpke_id, &secret, b"base_nonce", &context, &mut base_nonce);
    let mut exporter_secret = [0u8; SECRET_LEN];
    labeled_expand(&hpke_id, &secret, b"exp", &context, &mut exporter_secret);
    secret.zeroize();
    KeySchedule {
        key,
        key_len,
        base_nonce,
        exporter_secret,
    }
}

/// DHKEM ExtractAndExpand (RFC 9180 §4.1).
fn extract_and_expand(dh: &[u8], enc: &[u8; ENC_LEN], pk_r: &[u8; ENC_LEN]) -> [u8; SECRET_LEN] {
    let kem_id = Suite::kem_suite_id();
    let mut kem_context = [0u8; 2 * ENC_LEN];
    kem_context[..ENC_LEN].copy_from_slice(enc);
    kem_context[ENC_LEN..].copy_from_slice(pk_r);
    let mut eae_prk = labeled_extract(&kem_id, b"", b"eae_prk", dh);
    let mut shared = [0u8; SECRET_LEN];
    labeled_expand(
        &kem_id,
        &eae_prk,
        b"shared_secret",
        &kem_context,
        &mut shared,
    );
    eae_prk.zeroize();
    shared
}

/// State shared by the sender and receiver contexts: key, nonce, sequence, exporter.
struct Context {
    suite: Suite,
    aead_key: aead::LessSafeKey,
    schedule: KeySchedule,
    seq: u64,
}

impl Context {
    fn new(suite: Suite, schedule: KeySchedule) -> Self {
        let unbound = aead::UnboundKey::new(suite.ring_aead(), &schedule.key[..schedule.key_len])
            .expect("key length always matches the suite's AEAD");
        Context {
            suite,
            aead_key: aead::LessSafeKey::new(unbound),
            schedule,
            seq: 0,
        }
    }

    /// ComputeNonce(seq) = base_nonce XOR I2OSP(seq, Nn).
    fn next_nonce(&mut self) -> Result<aead::Nonce, HpkeError> {
        // Nn = 12 bytes, so the sequence space is 2^96; a u64 counter that would wrap
        // is rejected instead (RFC 9180 §5.2 allows a smaller limit).
        if self.seq == u64::MAX {
            return Err(HpkeError::MessageLimitReached);
        }
        let mut nonce = self.schedule.base_nonce;
        for (n, s) in nonce[NONCE_LEN - 8..]
            .iter_mut()
            .zip(self.seq.to_be_bytes())
        {
            *n ^= s;
        }
        self.seq += 1;
        Ok(aead::Nonce::assume_unique_for_key(nonce))
    }

    fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), HpkeError> {
        if out.len() > MAX_EXPORT_LEN {
            return Err(HpkeError::ExportTooLong(out.len()));
        }
        labeled_expand(
            &self.suite.hpke_suite_id(),
            &self.schedule.exporter_secret,
            b"sec",
            exporter_context,
            out,
        );
        Ok(())
    }
}

/// The sender's HPKE context (RFC 9180 §5.2), produced by [`setup_base_sender`].
pub struct SenderContext(Context);

impl SenderContext {
    /// Encrypts `plaintext` with `aad` under the next sequence number and returns
    /// ciphertext || tag.
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, HpkeError> {
        let mut buf = Vec::with_capacity(plaintext.len() + TAG_LEN);
        buf.extend_from_slice(plaintext);
        self.seal_in_place(aad, &mut buf)?;
        Ok(buf)
    }

    /// Encrypts `buf` in place and appends the tag (avoids a copy for large payloads).
    pub fn seal_in_place(&mut self, aad: &[u8], buf: &mut Vec<u8>) -> Result<(), HpkeError> {
        let nonce = self.0.next_nonce()?;
        self.0
            .aead_key
            .seal_in_place_append_tag(nonce, aead::Aad::from(aad), buf)
            .map_err(|_| HpkeError::SealFailed)
    }

    /// The secret export interface (RFC 9180 §5.3): fills `out` with
    /// `LabeledExpand(exporter_secret, "sec", exporter_context, out.len())`.
    pub fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), HpkeError> {
        self.0.export(exporter_context, out)
    }

    /// The sequence number the next [`seal`](Self::seal) will use.
    pub fn sequence(&self) -> u64 {
        self.0.seq
    }
}

/// The receiver's HPKE context (RFC 9180 §5.2), produced by [`setup_base_receiver`].
pub struct ReceiverContext(Context);

impl ReceiverContext {
    /// Decrypts ciphertext || tag with `aad` under the next sequence number.
    pub fn open(&mut self, aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, HpkeError> {
        let mut buf = ciphertext.to_vec();
        let len = self.open_in_place(aad, &mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    /// Decrypts `buf` in place; returns the plaintext length (the prefix of `buf`).
    pub fn open_in_place(&mut self, aad: &[u8], buf: &mut [u8]) -> Result<usize, HpkeError> {
        let nonce = self.0.next_nonce()?;
        self.0
            .aead_key
            .open_in_place(nonce, aead::Aad::from(aad), buf)
            .map(|pt| pt.len())
            .map_err(|_| HpkeError::OpenFailed)
    }

    /// The secret export interface (RFC 9180 §5.3).
    pub fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), HpkeError> {
        self.0.export(exporter_context, out)
    }

    /// The sequence number the next [`open`](Self::open) will use.
    pub fn sequence(&self) -> u64 {
        self.0.seq
    }
}

/// DHKEM `Encap(pkR)`: a fresh ephemeral key from `rng`; returns `(enc, shared_secret)`.
/// The ephemeral private key is consumed by `ring` and never leaves this function.
fn encap(
    recipient: &RecipientPublicKey,
    rng: &dyn SecureRandom,
) -> Result<([u8; ENC_LEN], [u8; SECRET_LEN]), HpkeError> {
    let ephemeral = agreement::EphemeralPrivateKey::generate(&agreement::X25519, rng)
        .map_err(|_| HpkeError::Rng)?;
    let public = ephemeral.compute_public_key().map_err(|_| HpkeError::Rng)?;
    let mut enc = [0u8; ENC_LEN];
    enc.copy_from_slice(public.as_ref());
    let pk_r = recipient.as_bytes();
    let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, pk_r);
    // ring itself rejects an all-zero X25519 output (RFC 9180 §7.1.4).
    let shared =
        agreement::agree_ephemeral(ephemeral, &peer, |dh| extract_and_expand(dh, &enc, pk_r))
            .map_err(|_| HpkeError::InvalidPublicKey)?;
    Ok((enc, shared))
}

/// DHKEM `Decap(enc, skR)`.
fn decap(enc: &[u8; ENC_LEN], recipient: &RecipientKeyPair) -> Result<[u8; SECRET_LEN], HpkeError> {
    let dh = recipient.diffie_hellman(enc)?;
    Ok(extract_and_expand(
        dh.as_bytes(),
        enc,
        recipient.public_key().as_bytes(),
    ))
}

/// `SetupBaseS(pkR, info)`: encapsulates to `recipient` with a fresh ephemeral key from
/// `rng` and returns `enc` with the sender context.
pub fn setup_base_sender(
    suite: Suite,
    recipient: &RecipientPublicKey,
    info: &[u8],
    rng: &dyn SecureRandom,
) -> Result<([u8; ENC_LEN], SenderContext), HpkeError> {
    let (enc, mut shared) = encap(recipient, rng)?;
    let schedule = key_schedule(suite, &shared, info);
    shared.zeroize();
    Ok((enc, SenderContext(Context::new(suite, schedule))))
}

/// `SetupBaseR(enc, skR, info)`: decapsulates `enc` with the recipient's static key.
pub fn setup_base_receiver(
    suite: Suite,
    enc: &[u8; ENC_LEN],
    recipient: &RecipientKeyPair,
    info: &[u8],
) -> Result<ReceiverContext, HpkeError> {
    let mut shared = decap(enc, recipient)?;
    let schedule = key_schedule(suite, &shared, info);
    shared.zeroize();
    Ok(ReceiverContext(Context::new(suite, schedule)))
}

/// Single-shot `SealBase`: returns `(enc, ciphertext)`.
pub fn seal_base(
    suite: Suite,
    recipient: &RecipientPublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    rng: &dyn SecureRandom,
) -> Result<([u8; ENC_LEN], Vec<u8>), HpkeError> {
    let (enc, mut ctx) = setup_base_sender(suite, recipient, info, rng)?;
    Ok((enc, ctx.seal(aad, plaintext)?))
}

/// Single-shot `OpenBase`: returns the plaintext.
pub fn open_base(
    suite: Suite,
    enc: &[u8; ENC_LEN],
    recipient: &RecipientKeyPair,
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, HpkeError> {
    setup_base_receiver(suite, enc, recipient, info)?.open(aad, ciphertext)
}

/// Single-shot `SendExport`: returns `(enc, exported secret of length out.len())`.
pub fn send_export_base(
    suite: Suite,
    recipient: &RecipientPublicKey,
    info: &[u8],
    exporter_context: &[u8],
    out: &mut [u8],
    rng: &dyn SecureRandom,
) -> Result<[u8; ENC_LEN], HpkeError> {
    let (enc, ctx) = setup_base_sender(suite, recipient, info, rng)?;
    ctx.export(exporter_context, out)?;
    Ok(enc)
}

/// Single-shot `ReceiveExport`.
pub fn receive_export_base(
    suite: Suite,
    enc: &[u8; ENC_LEN],
    recipient: &RecipientKeyPair,
    info: &[u8],
    exporter_context: &[u8],
    out: &mut [u8],
) -> Result<(), HpkeError> {
    setup_base_receiver(suite, enc, recipient, info)?.export(exporter_context, out)
}

#[cfg(test)]
mod rfc9180_vectors;
