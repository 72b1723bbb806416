//! Fuzz target: the JSON bodies of the HTTP API, both ways: what the gateway parses
//! (device registration, uploads, authentication) and what the phone parses (the
//! gateway's answers and error bodies). Parsing must never panic; whatever parses must
//! survive a serialize / parse round trip unchanged; the fields the gateway decodes
//! next (base64 envelopes and signatures, the device key) must decode or fail cleanly;
//! the signed key list of key rotation must never verify under a root it was not
//! signed by, and a valid list always names a current key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tacit_shared::api::{
    AuthenticateRequest, AuthenticateResponse, ErrorBody, RegisterDeviceRequest, UploadRequest,
    UploadResponse, b64_decode,
};
use tacit_shared::keylist::{KeyList, SignedKeyList};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) -> Option<T> {
    let v: T = serde_json::from_slice(data).ok()?;
    let again: T = serde_json::from_slice(&serde_json::to_vec(&v).expect("serialize")).expect("reparse");
    assert_eq!(v, again);
    Some(v)
}

fuzz_target!(|data: &[u8]| {
    if let Some(r) = round_trip::<RegisterDeviceRequest>(data) {
        let _ = r.public_key.to_key();
    }
    if let Some(r) = round_trip::<UploadRequest>(data) {
        for e in &r.envelopes {
            let _ = b64_decode(e);
        }
    }
    if let Some(r) = round_trip::<AuthenticateRequest>(data) {
        let _ = b64_decode(&r.signature);
        let _ = hex_id(&r.device_id);
    }
    let _ = round_trip::<UploadResponse>(data);
    // Scores are floats: JSON has no NaN, so a parsed answer round-trips.
    let _ = round_trip::<AuthenticateResponse>(data);
    let _ = round_trip::<ErrorBody>(data);
    // Key rotation, the phone's side: the signed list as served, and the list inside it
    // (reached only past the root's signature, so parsed here directly as well).
    if let Ok(s) = SignedKeyList::from_json(data) {
        assert!(s.verify(&[7u8; 32], 0).is_err(), "a fuzzed list verified");
    }
    if let Some(l) = round_trip::<KeyList>(data)
        && l.validate().is_ok()
    {
        let k = l.current(1_800_000_000_000).expect("a valid list has a current key");
        assert!(k.public().is_ok());
    }
});

fn hex_id(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
