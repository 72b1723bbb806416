//! Fuzz target: HPKE (RFC 9180 base mode) with a fixed recipient key. Arbitrary
//! `enc` / aad / ciphertext must be refused without a panic; an honest seal of the
//! input must open to exactly the input, for every suite.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;
use tacit_shared::hpke::{self, ENC_LEN, RecipientKeyPair, Suite};

fn key() -> &'static RecipientKeyPair {
    static KEY: OnceLock<RecipientKeyPair> = OnceLock::new();
    KEY.get_or_init(|| RecipientKeyPair::derive(b"tacit fuzz hpke key"))
}

const SUITES: [Suite; 2] = [Suite::X25519Sha256ChaCha20Poly1305, Suite::X25519Sha256Aes128Gcm];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let suite = SUITES[usize::from(selector) % SUITES.len()];
    let aad_len = usize::from(selector >> 1).min(rest.len());
    let (aad, rest) = rest.split_at(aad_len);
    if rest.len() >= ENC_LEN {
        let (enc, ciphertext) = rest.split_at(ENC_LEN);
        let enc: [u8; ENC_LEN] = enc.try_into().expect("32 bytes");
        let opened = hpke::open_base(suite, &enc, key(), b"fuzz", aad, ciphertext);
        assert!(opened.is_err(), "a fuzzer-made ciphertext opened");
    }
    let (enc, ct) = hpke::seal_base(suite, key().public_key(), b"fuzz", aad, rest, &SystemRandom::new())
        .expect("seal");
    let pt = hpke::open_base(suite, &enc, key(), b"fuzz", aad, &ct).expect("open what was sealed");
    assert_eq!(pt, rest);
});
