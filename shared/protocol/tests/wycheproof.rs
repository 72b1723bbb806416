//! Device signature verification judged by Project Wycheproof's vectors (Ed25519 and
//! ECDSA P-256 SHA-256, DER signatures): every `valid` signature verifies, every
//! `invalid` one is refused, and every test key is accepted as a device key.

use serde::Deserialize;
use tacit_shared::identity::{DevicePublicKey, SignatureAlgorithm};

#[derive(Deserialize)]
struct File<G> {
    #[serde(rename = "numberOfTests")]
    number_of_tests: usize,
    #[serde(rename = "testGroups")]
    groups: Vec<G>,
}

#[derive(Deserialize)]
struct Test {
    #[serde(rename = "tcId")]
    id: u32,
    comment: String,
    msg: String,
    sig: String,
    result: Expected,
}

#[derive(Deserialize, PartialEq, Debug, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Expected {
    Valid,
    Invalid,
    Acceptable,
}

#[derive(Deserialize)]
struct EddsaGroup {
    #[serde(rename = "publicKey")]
    key: EddsaKey,
    tests: Vec<Test>,
}

#[derive(Deserialize)]
struct EddsaKey {
    pk: String,
}

#[derive(Deserialize)]
struct EcdsaGroup {
    #[serde(rename = "publicKey")]
    key: EcdsaKey,
    tests: Vec<Test>,
}

#[derive(Deserialize)]
struct EcdsaKey {
    uncompressed: String,
}

fn load<G: for<'de> Deserialize<'de>>(name: &str) -> File<G> {
    let path = format!(
        "{}/tests/data/wycheproof/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs every test of one key; returns how many ran.
fn check(alg: SignatureAlgorithm, key_hex: &str, tests: &[Test]) -> usize {
    let key = DevicePublicKey::new(alg, &hex::decode(key_hex).unwrap())
        .unwrap_or_else(|e| panic!("test key {key_hex} refused: {e}"));
    for t in tests {
        let msg = hex::decode(&t.msg).unwrap();
        let sig = hex::decode(&t.sig).unwrap();
        let verified = key.verify(&msg, &sig).is_ok();
        match t.result {
            Expected::Valid => assert!(verified, "tcId {} ({}) must verify", t.id, t.comment),
            // No vector of these files is `acceptable`; if one appears, refusing it is the
            // strict choice.
            Expected::Invalid | Expected::Acceptable => {
                assert!(!verified, "tcId {} ({}) must be refused", t.id, t.comment)
            }
        }
    }
    tests.len()
}

#[test]
fn ed25519_vectors() {
    let file: File<EddsaGroup> = load("ed25519_test.json");
    let ran: usize = file
        .groups
        .iter()
        .map(|g| check(SignatureAlgorithm::Ed25519, &g.key.pk, &g.tests))
        .sum();
    assert_eq!(ran, file.number_of_tests);
    assert!(ran >= 150);
}

#[test]
fn ecdsa_p256_sha256_vectors() {
    let file: File<EcdsaGroup> = load("ecdsa_secp256r1_sha256_test.json");
    let ran: usize = file
        .groups
        .iter()
        .map(|g| {
            check(
                SignatureAlgorithm::EcdsaP256Sha256,
                &g.key.uncompressed,
                &g.tests,
            )
        })
        .sum();
    assert_eq!(ran, file.number_of_tests);
    assert!(ran >= 480);
}
