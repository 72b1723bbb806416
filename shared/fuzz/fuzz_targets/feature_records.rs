//! Fuzz target: feature-record validation, what the gateway runs on every decrypted
//! payload. Arbitrary bytes as a payload: decoding validates every record and must
//! never panic; what decodes re-encodes to the same bytes and every record is within
//! its schema. Arbitrary floats against every (factor, version) schema: accepted
//! values are finite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tacit_shared::payload::{FactorKind, Payload};
use tacit_shared::schema;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Payload::decode(data) {
        for r in &p.records {
            r.validate().expect("a decoded record is within its schema");
        }
        assert_eq!(p.encode().expect("a decoded payload encodes"), data);
    }
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let values: Vec<f32> = rest
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let factor = FactorKind::from_tag(selector % 4).unwrap_or(FactorKind::Gait);
    let version = u16::from(selector >> 4);
    if schema::validate(factor, version, &values, selector & 8 != 0).is_ok() {
        assert!(values.iter().all(|v| v.is_finite()), "non-finite values accepted");
    }
});
