//! One test per rejection reason: each gives its own error.

use super::*;
use crate::identity::{Ed25519Signer, P256Signer};
use crate::payload::{FactorKind, FeatureRecord};
use ring::rand::SystemRandom;

struct World {
    rng: SystemRandom,
    backend: RecipientKeyPair,
    device: Ed25519Signer,
}

fn world() -> World {
    let rng = SystemRandom::new();
    let backend = RecipientKeyPair::generate(&rng).unwrap();
    let device = Ed25519Signer::generate(&rng).unwrap().0;
    World {
        rng,
        backend,
        device,
    }
}

fn payload() -> Payload {
    Payload {
        face_images: Vec::new(),
        records: vec![FeatureRecord {
            factor: FactorKind::KeystrokeFixed,
            schema_version: 1,
            window_start_ms: 1_700_000_000_000,
            window_ms: 2_000,
            context: Some([9; 16]),
            values: vec![0.1, 0.2, 0.1, 0.12],
        }],
    }
}

fn params() -> SealParams {
    SealParams {
        suite: Suite::X25519Sha256ChaCha20Poly1305,
        sequence: 42,
        created_at_ms: 1_700_000_000_000,
    }
}

fn seal(w: &World) -> Vec<u8> {
    Envelope::seal(
        params(),
        &payload(),
        w.backend.public_key(),
        &w.device,
        &w.rng,
    )
    .unwrap()
    .1
}

fn open(w: &World, bytes: &[u8]) -> Result<OpenedEnvelope, EnvelopeError> {
    Envelope::open(bytes, &w.device.public_key(), |id| {
        (*id == w.backend.key_id()).then_some(&w.backend)
    })
}

#[test]
fn round_trip_both_suites_and_both_signature_algorithms() {
    let w = world();
    let p256 = P256Signer::generate(&w.rng).unwrap().0;
    for suite in [
        Suite::X25519Sha256ChaCha20Poly1305,
        Suite::X25519Sha256Aes128Gcm,
    ] {
        for signer in [&w.device as &dyn DeviceSigner, &p256] {
            let p = SealParams { suite, ..params() };
            let (header, bytes) =
                Envelope::seal(p, &payload(), w.backend.public_key(), signer, &w.rng).unwrap();
            let opened =
                Envelope::open(&bytes, &signer.public_key(), |_| Some(&w.backend)).unwrap();
            assert_eq!(opened.header, header);
            assert_eq!(opened.payload, payload());
            assert_eq!(Envelope::decode(&bytes).unwrap().encode(), bytes);
        }
    }
}

#[test]
fn tampered_unsigned_bytes_give_bad_signature() {
    let w = world();
    let mut bytes = seal(&w);
    bytes[HEADER_LEN + 40] ^= 1; // inside the ciphertext
    assert_eq!(open(&w, &bytes), Err(EnvelopeError::BadSignature));
}

#[test]
fn tampered_ciphertext_resigned_by_the_device_gives_decryption_failed() {
    // A device (or thief of its key) that alters a ciphertext and re-signs it still
    // cannot get it past the AEAD.
    let w = world();
    let mut env = Envelope::decode(&seal(&w)).unwrap();
    env.ciphertext[3] ^= 0x80;
    env.signature = w.device.sign(&env.signed_bytes()).unwrap();
    assert_eq!(
        open(&w, &env.encode()),
        Err(EnvelopeError::DecryptionFailed)
    );
}

#[test]
fn truncated_gives_truncated() {
    let w = world();
    let bytes = seal(&w);
    for cut in [0, 3, HEADER_LEN - 1, HEADER_LEN + 10, bytes.len() - 1] {
        assert_eq!(
            open(&w, &bytes[..cut]).err(),
            Some(EnvelopeError::Truncated),
            "cut at {cut}"
        );
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let w = world();
    let mut bytes = seal(&w);
    bytes.push(0);
    assert_eq!(
        open(&w, &bytes).err(),
        Some(EnvelopeError::TrailingBytes(1))
    );
}

#[test]
fn oversized_envelope_and_length_fields_are_rejected() {
    let w = world();
    let big = vec![0u8; MAX_ENVELOPE_LEN + 1];
    assert!(matches!(
        open(&w, &big),
        Err(EnvelopeError::Oversized {
            field: "envelope",
            ..
        })
    ));
    let mut bytes = seal(&w);
    let ct_len_at = HEADER_LEN + hpke::ENC_LEN;
    bytes[ct_len_at..ct_len_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        open(&w, &bytes),
        Err(EnvelopeError::Oversized {
            field: "ciphertext",
            ..
        })
    ));
    bytes[ct_len_at..ct_len_at + 4].copy_from_slice(&3u32.to_be_bytes());
    assert!(matches!(
        open(&w, &bytes),
        Err(EnvelopeError::Undersized {
            field: "ciphertext",
            ..
        })
    ));
    let mut bytes = seal(&w);
    let sig_len_at = bytes.len() - 64 - 1;
    bytes[sig_len_at] = 200;
    assert!(matches!(
        open(&w, &bytes),
        Err(EnvelopeError::Oversized {
            field: "signature",
            ..
        })
    ));
}

#[test]
fn oversized_payload_is_refused_when_sealing() {
    let w = world();
    let record = FeatureRecord {
        values: vec![0.5; 1024],
        ..payload().records[0].clone()
    };
    // 3n-2 values are needed for fixed text; 1021 = 3*341-2 fits the schema.
    let record = FeatureRecord {
        values: vec![0.5; 1021],
        ..record
    };
    let big = Payload {
        face_images: Vec::new(),
        records: vec![record; 300],
    };
    let err =
        Envelope::seal(params(), &big, w.backend.public_key(), &w.device, &w.rng).unwrap_err();
    assert!(
        matches!(
            err,
            EnvelopeError::Payload(_) | EnvelopeError::Oversized { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn wrong_version_magic_suite_flags() {
    let w = world();
    let good = seal(&w);
    let mut b = good.clone();
    b[4] = 2;
    assert_eq!(
        open(&w, &b).err(),
        Some(EnvelopeError::UnsupportedVersion(2))
    );
    let mut b = good.clone();
    b[0] = b'X';
    assert_eq!(open(&w, &b).err(), Some(EnvelopeError::BadMagic));
    let mut b = good.clone();
    b[6] = 0x02;
    assert_eq!(open(&w, &b).err(), Some(EnvelopeError::UnsupportedSuite(2)));
    let mut b = good.clone();
    b[7] = 0x01;
    assert_eq!(open(&w, &b).err(), Some(EnvelopeError::ReservedFlags(1)));
    let mut b = good;
    let tag_at = b.len() - 64 - 2;
    b[tag_at] = 9;
    assert_eq!(
        open(&w, &b).err(),
        Some(EnvelopeError::UnknownSignatureAlgorithm(9))
    );
}

#[test]
fn wrong_backend_key_gives_unknown_key_id() {
    let w = world();
    let other = RecipientKeyPair::generate(&w.rng).unwrap();
    let bytes = seal(&w);
    let r = Envelope::open(&bytes, &w.device.public_key(), |id| {
        (*id == other.key_id()).then_some(&other)
    });
    assert_eq!(
        r.err(),
        Some(EnvelopeError::UnknownKeyId(w.backend.key_id()))
    );
    let env = Envelope::decode(&bytes).unwrap();
    assert_eq!(
        env.decrypt(&other).err(),
        Some(EnvelopeError::UnknownKeyId(w.backend.key_id()))
    );
}

#[test]
fn wrong_signature_and_wrong_device() {
    let w = world();
    let mut env = Envelope::decode(&seal(&w)).unwrap();
    // Signed by another device's key but claiming this device: bad signature.
    let thief = Ed25519Signer::generate(&w.rng).unwrap().0;
    env.signature = thief.sign(&env.signed_bytes()).unwrap();
    assert_eq!(
        open(&w, &env.encode()).err(),
        Some(EnvelopeError::BadSignature)
    );
    // Verified against another enrolled device: the header names someone else.
    let bytes = seal(&w);
    let r = Envelope::open(&bytes, &thief.public_key(), |_| Some(&w.backend));
    assert_eq!(r.err(), Some(EnvelopeError::DeviceMismatch));
}

#[test]
fn algorithm_mismatch_is_its_own_error() {
    let w = world();
    let mut env = Envelope::decode(&seal(&w)).unwrap();
    env.signature_algorithm = SignatureAlgorithm::EcdsaP256Sha256;
    assert_eq!(
        open(&w, &env.encode()).err(),
        Some(EnvelopeError::AlgorithmMismatch)
    );
}

#[test]
fn invalid_payload_inside_a_valid_envelope_is_rejected() {
    // Build a payload that bypasses Payload::encode's validation: a NaN value.
    let w = world();
    let mut plaintext = payload().encode().unwrap();
    let last = plaintext.len() - 4;
    plaintext[last..].copy_from_slice(&f32::NAN.to_be_bytes());
    let (_, good) = Envelope::seal(
        params(),
        &payload(),
        w.backend.public_key(),
        &w.device,
        &w.rng,
    )
    .unwrap();
    let mut env = Envelope::decode(&good).unwrap();
    let aad = codec::encode_header(&env.header);
    let (enc, mut ctx) =
        hpke::setup_base_sender(env.header.suite, w.backend.public_key(), HPKE_INFO, &w.rng)
            .unwrap();
    env.enc = enc;
    env.ciphertext = ctx.seal(&aad, &plaintext).unwrap();
    env.signature = w.device.sign(&env.signed_bytes()).unwrap();
    let err = open(&w, &env.encode()).unwrap_err();
    assert!(
        matches!(
            err,
            EnvelopeError::Payload(PayloadError::Schema { index: 0, .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "invalid_payload");
}
