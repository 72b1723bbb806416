//! Fuzz target: the gateway's receive path past the decoder. Whatever decodes is
//! re-pointed at this process's backend key and re-signed with its device key, so
//! the signature check passes and HPKE open runs on the fuzzer's `enc` and ciphertext:
//! it must fail cleanly (nobody can forge the AEAD tag without the sender's key), never
//! panic, and never yield a payload.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;
use tacit_shared::envelope::Envelope;
use tacit_shared::hpke::RecipientKeyPair;
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};

struct Keys {
    backend: RecipientKeyPair,
    device: Ed25519Signer,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        backend: RecipientKeyPair::derive(b"tacit fuzz backend key"),
        device: Ed25519Signer::generate(&SystemRandom::new()).expect("device key").0,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut env) = Envelope::decode(data) else {
        return;
    };
    let k = keys();
    let device = k.device.public_key();
    env.header.key_id = k.backend.key_id();
    env.header.device_id = device.device_id();
    env.signature_algorithm = device.algorithm();
    env.signature = k.device.sign(&env.signed_bytes()).expect("sign");
    let bytes = env.encode();
    let opened = Envelope::open(&bytes, &device, |id| (*id == k.backend.key_id()).then_some(&k.backend));
    assert!(opened.is_err(), "a fuzzer-made ciphertext opened");
});
