//! Property tests: encode/decode round trips, and "any single flipped bit in an
//! envelope is rejected".

use proptest::prelude::*;
use ring::rand::SystemRandom;
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::{RecipientKeyPair, Suite};
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};
use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};
use tacit_shared::schema::GAIT_V1;

fn record() -> impl Strategy<Value = FeatureRecord> {
    let gait = (
        any::<u64>(),
        any::<u32>(),
        proptest::collection::vec(0.0f32..1.0, GAIT_V1.len()),
    )
        .prop_map(|(start, len, values)| FeatureRecord {
            factor: FactorKind::Gait,
            schema_version: 1,
            window_start_ms: start,
            window_ms: len,
            context: None,
            values,
        });
    let fixed = (any::<u64>(), 2usize..40, any::<[u8; 16]>(), 0.0f32..2.0).prop_map(
        |(start, keys, mut ctx, base)| {
            ctx[0] |= 1; // an all-zero context id means "none" on the wire
            FeatureRecord {
                factor: FactorKind::KeystrokeFixed,
                schema_version: 1,
                window_start_ms: start,
                window_ms: 1000,
                context: Some(ctx),
                values: (0..3 * keys - 2).map(|i| base + i as f32 * 0.01).collect(),
            }
        },
    );
    prop_oneof![gait, fixed]
}

fn payload() -> impl Strategy<Value = Payload> {
    proptest::collection::vec(record(), 1..8).prop_map(|records| Payload {
        records,
        face_images: Vec::new(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn payload_round_trip(p in payload()) {
        let bytes = p.encode().unwrap();
        prop_assert_eq!(bytes.len(), p.encoded_len());
        prop_assert_eq!(Payload::decode(&bytes).unwrap(), p);
    }

    #[test]
    fn envelope_round_trip(p in payload(), seq in any::<u64>(), t in any::<u64>(), aes in any::<bool>()) {
        let rng = SystemRandom::new();
        let backend = RecipientKeyPair::generate(&rng).unwrap();
        let device = Ed25519Signer::generate(&rng).unwrap().0;
        let suite = if aes { Suite::X25519Sha256Aes128Gcm } else { Suite::X25519Sha256ChaCha20Poly1305 };
        let params = SealParams { suite, sequence: seq, created_at_ms: t };
        let (header, bytes) = Envelope::seal(params, &p, backend.public_key(), &device, &rng).unwrap();
        let env = Envelope::decode(&bytes).unwrap();
        prop_assert_eq!(env.encode(), bytes.clone());
        let opened = Envelope::open(&bytes, &device.public_key(), |_| Some(&backend)).unwrap();
        prop_assert_eq!(opened.header, header);
        prop_assert_eq!(opened.payload, p);
    }

    #[test]
    fn any_single_flipped_bit_is_rejected(p in payload(), bit in any::<prop::sample::Index>()) {
        let rng = SystemRandom::new();
        let backend = RecipientKeyPair::generate(&rng).unwrap();
        let device = Ed25519Signer::generate(&rng).unwrap().0;
        let params = SealParams { suite: Suite::X25519Sha256ChaCha20Poly1305, sequence: 1, created_at_ms: 5 };
        let (_, mut bytes) = Envelope::seal(params, &p, backend.public_key(), &device, &rng).unwrap();
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        let result = Envelope::open(&bytes, &device.public_key(), |id| (*id == backend.key_id()).then_some(&backend));
        prop_assert!(result.is_err(), "flipping bit {} was accepted", i);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Envelope::decode(&bytes);
        let _ = Payload::decode(&bytes);
    }
}

#[test]
fn every_bit_of_one_envelope_is_covered() {
    // Exhaustive for one small envelope: no bit is outside the authenticated region.
    let rng = SystemRandom::new();
    let backend = RecipientKeyPair::generate(&rng).unwrap();
    let device = Ed25519Signer::generate(&rng).unwrap().0;
    let p = Payload {
        face_images: Vec::new(),
        records: vec![FeatureRecord {
            factor: FactorKind::KeystrokeFixed,
            schema_version: 1,
            window_start_ms: 1,
            window_ms: 2,
            context: Some([1; 16]),
            values: vec![0.1, 0.2, 0.05, 0.1],
        }],
    };
    let params = SealParams {
        suite: Suite::X25519Sha256ChaCha20Poly1305,
        sequence: 3,
        created_at_ms: 4,
    };
    let (_, bytes) = Envelope::seal(params, &p, backend.public_key(), &device, &rng).unwrap();
    for i in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[i / 8] ^= 1 << (i % 8);
        assert!(
            Envelope::open(&b, &device.public_key(), |_| Some(&backend)).is_err(),
            "bit {i}"
        );
    }
}
