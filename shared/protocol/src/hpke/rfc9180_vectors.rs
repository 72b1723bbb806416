//! Every value of the RFC 9180 base-mode vectors for DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256 with AES-128-GCM and ChaCha20-Poly1305 (`tests/data/`). A unit test so
//! that it can also check the intermediate key-schedule values.

#![allow(deprecated)] // ring::test::rand::FixedSliceRandom is ring's test-only RNG.

use super::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Vector {
    mode: u8,
    kem_id: u16,
    kdf_id: u16,
    aead_id: u16,
    info: String,
    #[serde(rename = "ikmR")]
    ikm_r: String,
    #[serde(rename = "pkEm")]
    pk_em: String,
    #[serde(rename = "skEm")]
    sk_em: String,
    #[serde(rename = "pkRm")]
    pk_rm: String,
    #[serde(rename = "skRm")]
    sk_rm: String,
    enc: String,
    shared_secret: String,
    key_schedule_context: String,
    secret: String,
    key: String,
    base_nonce: String,
    exporter_secret: String,
    encryptions: Vec<Encryption>,
    exports: Vec<Export>,
}

#[derive(Deserialize)]
struct Encryption {
    sequence_number: String,
    pt: String,
    aad: String,
    nonce: String,
    ct: String,
}

#[derive(Deserialize)]
struct Export {
    exporter_context: String,
    #[serde(rename = "L")]
    len: usize,
    exported_value: String,
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test data is hex")
}

fn arr32(s: &str) -> [u8; 32] {
    h(s).try_into().expect("32 bytes")
}

fn load() -> Vec<Vector> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rfc9180-base-x25519-sha256.json"
    );
    let text = std::fs::read_to_string(path).expect("RFC 9180 vector file is present");
    serde_json::from_str(&text).expect("vector file parses")
}

fn check(v: &Vector) {
    assert_eq!(
        (v.mode, v.kem_id, v.kdf_id),
        (0, 0x20, 1),
        "base mode, X25519, HKDF-SHA256"
    );
    let suite = Suite::from_aead_id(v.aead_id).expect("supported AEAD");
    let info = h(&v.info);

    // Recipient key: both from skRm and via DeriveKeyPair(ikmR).
    let recipient = RecipientKeyPair::from_secret_bytes(arr32(&v.sk_rm));
    assert_eq!(recipient.public_key().as_bytes(), &arr32(&v.pk_rm), "pkRm");
    let derived = RecipientKeyPair::derive(&h(&v.ikm_r));
    assert_eq!(
        *derived.secret_bytes(),
        arr32(&v.sk_rm),
        "DeriveKeyPair(ikmR) = skRm"
    );

    // Encap with the RFC's ephemeral key fed through ring's fixed-output RNG.
    let sk_em = h(&v.sk_em);
    let rng = ring::test::rand::FixedSliceRandom { bytes: &sk_em };
    let (enc, shared) = encap(recipient.public_key(), &rng).expect("encap");
    assert_eq!(enc, arr32(&v.enc), "enc");
    assert_eq!(enc, arr32(&v.pk_em), "enc = pkEm");
    assert_eq!(shared, arr32(&v.shared_secret), "shared_secret (sender)");
    assert_eq!(
        decap(&enc, &recipient).expect("decap"),
        shared,
        "shared_secret (receiver)"
    );

    // Key schedule, including the values RFC 9180 lists as intermediates.
    let hpke_id = suite.hpke_suite_id();
    let psk_id_hash = labeled_extract(&hpke_id, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(&hpke_id, b"", b"info_hash", &info);
    let ksc: Vec<u8> = [&[0u8][..], &psk_id_hash, &info_hash].concat();
    assert_eq!(ksc, h(&v.key_schedule_context), "key_schedule_context");
    assert_eq!(
        labeled_extract(&hpke_id, &shared, b"secret", b""),
        arr32(&v.secret),
        "secret"
    );
    let ks = key_schedule(suite, &shared, &info);
    assert_eq!(&ks.key[..ks.key_len], &h(&v.key)[..], "key");
    assert_eq!(&ks.base_nonce[..], &h(&v.base_nonce)[..], "base_nonce");
    assert_eq!(
        &ks.exporter_secret[..],
        &h(&v.exporter_secret)[..],
        "exporter_secret"
    );

    // Encryptions: sequence numbers 0, 1, 2, 4, 255, 256 through the public context API.
    let rng = ring::test::rand::FixedSliceRandom { bytes: &sk_em };
    let (enc2, mut sender) = setup_base_sender(suite, recipient.public_key(), &info, &rng).unwrap();
    assert_eq!(enc2, enc);
    let mut receiver = setup_base_receiver(suite, &enc, &recipient, &info).unwrap();
    assert_eq!(v.encryptions.len(), 6, "all six encryptions are present");
    for e in &v.encryptions {
        let seq: u64 = e.sequence_number.parse().expect("sequence number");
        let (pt, aad) = (h(&e.pt), h(&e.aad));
        while sender.sequence() < seq {
            sender.seal(b"skip", b"skip").unwrap();
            receiver.0.next_nonce().unwrap();
        }
        // Nonce check: the nonce the receiver will use for this sequence number.
        let mut nonce = ks.base_nonce;
        for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        assert_eq!(&nonce[..], &h(&e.nonce)[..], "nonce for seq {seq}");
        let ct = sender.seal(&aad, &pt).unwrap();
        assert_eq!(ct, h(&e.ct), "ciphertext for seq {seq}");
        assert_eq!(
            receiver.open(&aad, &ct).unwrap(),
            pt,
            "plaintext for seq {seq}"
        );
    }

    // Exports through both contexts and the single-shot receive path.
    assert_eq!(v.exports.len(), 3, "all three exports are present");
    for x in &v.exports {
        let ctx = h(&x.exporter_context);
        let mut out_s = vec![0u8; x.len];
        sender.export(&ctx, &mut out_s).unwrap();
        assert_eq!(out_s, h(&x.exported_value), "export (sender)");
        let mut out_r = vec![0u8; x.len];
        receive_export_base(suite, &enc, &recipient, &info, &ctx, &mut out_r).unwrap();
        assert_eq!(out_r, out_s, "export (receiver)");
    }

    // Single-shot seal/open reproduce the seq-0 ciphertext.
    let e0 = &v.encryptions[0];
    let rng = ring::test::rand::FixedSliceRandom { bytes: &sk_em };
    let (_, ct) = seal_base(
        suite,
        recipient.public_key(),
        &info,
        &h(&e0.aad),
        &h(&e0.pt),
        &rng,
    )
    .unwrap();
    assert_eq!(ct, h(&e0.ct), "single-shot seal");
    let pt = open_base(suite, &enc, &recipient, &info, &h(&e0.aad), &ct).unwrap();
    assert_eq!(pt, h(&e0.pt), "single-shot open");
}

#[test]
fn chacha20poly1305_base_mode_reproduces_every_rfc_value() {
    let vectors = load();
    let v = vectors
        .iter()
        .find(|v| v.aead_id == 3)
        .expect("ChaCha20-Poly1305 entry");
    check(v);
}

#[test]
fn aes128gcm_base_mode_reproduces_every_rfc_value() {
    let vectors = load();
    let v = vectors
        .iter()
        .find(|v| v.aead_id == 1)
        .expect("AES-128-GCM entry");
    check(v);
}

#[test]
fn every_vector_value_matters() {
    // Changing one byte of any field must make the check fail: flip one byte of each
    // field in turn and require a panic from `check`.
    let fields: [fn(&mut Vector) -> &mut String; 10] = [
        |v| &mut v.pk_rm,
        |v| &mut v.sk_em,
        |v| &mut v.enc,
        |v| &mut v.shared_secret,
        |v| &mut v.key_schedule_context,
        |v| &mut v.secret,
        |v| &mut v.key,
        |v| &mut v.base_nonce,
        |v| &mut v.exporter_secret,
        |v| &mut v.info,
    ];
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rfc9180-base-x25519-sha256.json"
    ))
    .unwrap();
    for (i, field) in fields.iter().enumerate() {
        let mut v: Vec<Vector> = serde_json::from_str(&text).unwrap();
        let v = v.iter_mut().find(|v| v.aead_id == 3).unwrap();
        let f = field(v);
        let flipped = if f.starts_with('0') { "1" } else { "0" };
        f.replace_range(0..1, flipped);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(v)));
        assert!(result.is_err(), "changing field #{i} went unnoticed");
    }
    for part in ["ct", "nonce", "export"] {
        let mut v: Vec<Vector> = serde_json::from_str(&text).unwrap();
        let v = v.iter_mut().find(|v| v.aead_id == 3).unwrap();
        let f = match part {
            "ct" => &mut v.encryptions[5].ct,
            "nonce" => &mut v.encryptions[3].nonce,
            _ => &mut v.exports[2].exported_value,
        };
        let last = f.len() - 1;
        let flipped = if f.ends_with('0') { "1" } else { "0" };
        f.replace_range(last.., flipped);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(v)));
        assert!(result.is_err(), "changing {part} went unnoticed");
    }
}
