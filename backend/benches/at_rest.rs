//! What encryption at rest adds to ingest and reads, against the receive path it sits
//! behind, in the same process: a full envelope of 256 gait records (what a phone
//! uploads at once) through `Envelope::open` (decode, Ed25519 verify, HPKE open,
//! validation) versus `AtRestKeys::seal` of the same payload (ingest) and `open` (every
//! read: enrolment, evidence, export).
//!
//! `cargo bench -p tacit-backend --bench at_rest [-- --rounds 15 --iters 200]`

use std::hint::black_box;
use std::time::Instant;

use ring::rand::SystemRandom;
use tacit_backend::store::at_rest::AtRestKeys;
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::{RecipientKeyPair, Suite};
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};
use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};
use tacit_shared::schema::GAIT_V1;

#[path = "support/mod.rs"]
mod support;

fn median_us(rounds: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / iters as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds = support::arg("--rounds", 15);
    let iters = support::arg("--iters", 200);
    let rng = SystemRandom::new();
    let payload = Payload {
        face_images: Vec::new(),
        records: (0..256u64)
            .map(|i| FeatureRecord {
                factor: FactorKind::Gait,
                schema_version: 1,
                window_start_ms: 1_800_000_000_000 + i * 2_560,
                window_ms: 5_120,
                context: None,
                values: GAIT_V1
                    .iter()
                    .map(|d| d.min.max(0.0) + 0.37 * (d.max - d.min.max(0.0)).min(1.0))
                    .collect(),
            })
            .collect(),
    };
    let plain = payload.encode().expect("payload");
    let backend = RecipientKeyPair::derive(b"bench backend key");
    let (signer, _) = Ed25519Signer::generate(&rng).expect("device key");
    let device = signer.public_key();
    let params = SealParams {
        suite: Suite::X25519Sha256ChaCha20Poly1305,
        sequence: 1,
        created_at_ms: 1_800_000_000_000,
    };
    let (_, envelope) =
        Envelope::seal(params, &payload, backend.public_key(), &signer, &rng).expect("seal");
    let keys = AtRestKeys::new([7; 32], &[]).expect("keys");
    let context =
        "features/bench-user/00112233445566778899aabbccddeeff/00000000000000000001-aa.bin";
    let blob = keys.seal(context, &plain).expect("at-rest seal");

    let open_us = median_us(rounds, iters, || {
        black_box(Envelope::open(black_box(&envelope), &device, |_| Some(&backend)).expect("open"));
    });
    let seal_us = median_us(rounds, iters, || {
        black_box(keys.seal(context, black_box(&plain)).expect("seal"));
    });
    let read_us = median_us(rounds, iters, || {
        black_box(keys.open(context, black_box(&blob)).expect("open"));
    });
    println!(
        "payload {} B (256 gait records), envelope {} B; medians of {rounds} rounds x {iters}",
        plain.len(),
        envelope.len()
    );
    println!("Envelope::open (receive path)       {open_us:9.1} us  1.00");
    println!(
        "at-rest seal (added to ingest)      {seal_us:9.1} us  {:.2}",
        seal_us / open_us
    );
    println!(
        "at-rest open (added to every read)  {read_us:9.1} us  {:.2}",
        read_us / open_us
    );
}
