//! Per-envelope cryptographic cost: seal/open of a 4 KiB payload, device sign/verify,
//! and the physical floor measured in the same run — one bare X25519 agreement and one
//! bare Ed25519 verification. Numbers go to BENCHMARKS.md.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use ring::agreement;
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::{self, RecipientKeyPair, Suite};
use tacit_shared::identity::{DeviceSigner, Ed25519Signer, P256Signer};
use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};
use tacit_shared::schema::GAIT_V1;

/// A payload of ~4 KiB: 18 gait windows of 50 values (18 * (33 + 200) + 3 = 4197 B).
fn payload_4k() -> Payload {
    let record = FeatureRecord {
        factor: FactorKind::Gait,
        schema_version: 1,
        window_start_ms: 1_700_000_000_000,
        window_ms: 5120,
        context: None,
        values: vec![0.5; GAIT_V1.len()],
    };
    Payload {
        face_images: Vec::new(),
        records: vec![record; 18],
    }
}

fn bench(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let backend = RecipientKeyPair::generate(&rng).unwrap();
    let device = Ed25519Signer::generate(&rng).unwrap().0;
    let p256 = P256Signer::generate(&rng).unwrap().0;
    let payload = payload_4k();
    let plaintext = vec![0x5au8; 4096];

    let mut g = c.benchmark_group("hpke_4KiB");
    g.throughput(Throughput::Bytes(4096));
    for suite in [
        Suite::X25519Sha256ChaCha20Poly1305,
        Suite::X25519Sha256Aes128Gcm,
    ] {
        let name = format!("{suite:?}");
        g.bench_function(BenchmarkId::new("seal", &name), |b| {
            b.iter(|| {
                hpke::seal_base(
                    suite,
                    backend.public_key(),
                    b"info",
                    b"aad",
                    black_box(&plaintext),
                    &rng,
                )
                .unwrap()
            })
        });
        let (enc, ct) = hpke::seal_base(
            suite,
            backend.public_key(),
            b"info",
            b"aad",
            &plaintext,
            &rng,
        )
        .unwrap();
        g.bench_function(BenchmarkId::new("open", &name), |b| {
            b.iter(|| {
                hpke::open_base(suite, &enc, &backend, b"info", b"aad", black_box(&ct)).unwrap()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("envelope_4KiB");
    let params = SealParams {
        suite: Suite::X25519Sha256ChaCha20Poly1305,
        sequence: 1,
        created_at_ms: 1,
    };
    g.throughput(Throughput::Bytes(payload.encoded_len() as u64));
    g.bench_function("seal_and_sign", |b| {
        b.iter(|| {
            Envelope::seal(
                params,
                black_box(&payload),
                backend.public_key(),
                &device,
                &rng,
            )
            .unwrap()
        })
    });
    let (_, bytes) = Envelope::seal(params, &payload, backend.public_key(), &device, &rng).unwrap();
    let device_key = device.public_key();
    g.bench_function("verify_and_open", |b| {
        b.iter(|| Envelope::open(black_box(&bytes), &device_key, |_| Some(&backend)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("signature");
    let msg = vec![7u8; 4096 + 200];
    for (name, signer) in [("ed25519", &device as &dyn DeviceSigner), ("p256", &p256)] {
        g.bench_function(BenchmarkId::new("sign", name), |b| {
            b.iter(|| signer.sign(black_box(&msg)).unwrap())
        });
        let sig = signer.sign(&msg).unwrap();
        let pk = signer.public_key();
        g.bench_function(BenchmarkId::new("verify", name), |b| {
            b.iter(|| pk.verify(black_box(&msg), &sig).unwrap())
        });
    }
    g.finish();

    // The floor: the two public-key operations every envelope needs on the backend,
    // with nothing of ours around them (an X25519 agreement and an Ed25519 verify of
    // a short message).
    let mut g = c.benchmark_group("floor");
    let peer = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng).unwrap();
    let peer_pub = peer.compute_public_key().unwrap();
    g.bench_function("x25519_agreement", |b| {
        b.iter(|| {
            let k = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng).unwrap();
            let p = agreement::UnparsedPublicKey::new(&agreement::X25519, peer_pub.as_ref());
            agreement::agree_ephemeral(k, &p, |s| s[0]).unwrap()
        })
    });
    let pair = signature::Ed25519KeyPair::from_pkcs8(
        signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    let sig = pair.sign(b"floor");
    let pk =
        signature::UnparsedPublicKey::new(&signature::ED25519, pair.public_key().as_ref().to_vec());
    g.bench_function("ed25519_verify", |b| {
        b.iter(|| pk.verify(black_box(b"floor"), sig.as_ref()).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
