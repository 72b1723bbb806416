"""Extracts the payload (feature records encoded by the Rust `tacit-shared` crate) from
the demo envelope of `tacit-sim demo --out DIR`, for tests/data/rust-sim-payload.bin.

One-off tool, not run by the tests (it needs the `cryptography` package, which the
factor does not). Regenerate the fixture with:

    cargo run -p tacit-simulator --bin tacit-sim -- demo --out /tmp/sim
    python tests/make_rust_fixture.py /tmp/sim tests/data/rust-sim-payload.bin

It opens the envelope as PROTOCOL.md describes: header (bytes 0..64) = AAD, `enc` at
64..96, ciphertext length at 96, then HPKE base mode (RFC 9180) DHKEM(X25519,
HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305 or AES-128-GCM with info
"tacit/envelope/v1". The HPKE code is checked against the RFC 9180 test vectors that
the Rust crate uses (shared/protocol/tests/data/rfc9180-base-x25519-sha256.json) first.
"""

import glob
import hashlib
import hmac
import json
import os
import struct
import sys

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEM_ID = 0x0020
KDF_ID = 0x0001


def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk, info, length):
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def labeled_extract(suite_id, salt, label, ikm):
    return hkdf_extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def labeled_expand(suite_id, prk, label, info, length):
    return hkdf_expand(prk, struct.pack(">H", length) + b"HPKE-v1" + suite_id + label + info, length)


def public_bytes(pk):
    return pk.public_bytes(Encoding.Raw, PublicFormat.Raw)


def open_base(sk_r_bytes, enc, info, aad, ct, aead_id):
    """RFC 9180 base-mode single-shot open (sequence number 0)."""
    sk_r = X25519PrivateKey.from_private_bytes(sk_r_bytes)
    dh = sk_r.exchange(X25519PublicKey.from_public_bytes(enc))
    kem_context = enc + public_bytes(sk_r.public_key())
    kem_suite = b"KEM" + struct.pack(">H", KEM_ID)
    eae_prk = labeled_extract(kem_suite, b"", b"eae_prk", dh)
    shared_secret = labeled_expand(kem_suite, eae_prk, b"shared_secret", kem_context, 32)
    suite = b"HPKE" + struct.pack(">HHH", KEM_ID, KDF_ID, aead_id)
    psk_id_hash = labeled_extract(suite, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(suite, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = labeled_extract(suite, shared_secret, b"secret", b"")
    nk, cipher = {1: (16, AESGCM), 3: (32, ChaCha20Poly1305)}[aead_id]
    key = labeled_expand(suite, secret, b"key", context, nk)
    nonce = labeled_expand(suite, secret, b"base_nonce", context, 12)
    return cipher(key).decrypt(nonce, ct, aad)


def self_check(vectors_path):
    with open(vectors_path) as f:
        vectors = json.load(f)
    for v in vectors:
        e = v["encryptions"][0]
        pt = open_base(
            bytes.fromhex(v["skRm"]),
            bytes.fromhex(v["enc"]),
            bytes.fromhex(v["info"]),
            bytes.fromhex(e["aad"]),
            bytes.fromhex(e["ct"]),
            v["aead_id"],
        )
        assert pt == bytes.fromhex(e["pt"]), f"RFC 9180 vector (aead {v['aead_id']}) failed"
    print(f"HPKE open matches {len(vectors)} RFC 9180 vectors", file=sys.stderr)


def main():
    sim_dir, out_path = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.abspath(os.path.join(here, "..", "..", ".."))
    self_check(os.path.join(repo, "shared", "protocol", "tests", "data", "rfc9180-base-x25519-sha256.json"))
    (secret_path,) = glob.glob(os.path.join(sim_dir, "hpke-*.secret"))
    with open(secret_path, "rb") as f:
        sk = f.read()
    with open(os.path.join(sim_dir, "demo-envelope.bin"), "rb") as f:
        env = f.read()
    assert env[:4] == b"TCIT" and env[4] == 1, "not an envelope v1"
    aead_id = struct.unpack(">H", env[5:7])[0]
    header, enc = env[:64], env[64:96]
    (n,) = struct.unpack(">I", env[96:100])
    ct = env[100 : 100 + n]
    payload = open_base(sk, enc, b"tacit/envelope/v1", header, ct, aead_id)
    with open(out_path, "wb") as f:
        f.write(payload)
    print(f"wrote {out_path}: {len(payload)} payload bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
