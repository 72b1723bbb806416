//! Fuzz target: the envelope and payload decoders must never panic, and whatever
//! decodes must re-encode to the same bytes (the format has one encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tacit_shared::envelope::Envelope;
use tacit_shared::payload::Payload;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::decode(data) {
        assert_eq!(env.encode(), data, "envelope re-encoding differs");
    }
    if let Ok(p) = Payload::decode(data) {
        assert_eq!(p.encode().expect("a decoded payload is valid"), data, "payload re-encoding differs");
    }
});
