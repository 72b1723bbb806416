"""Feature objects encrypted at rest: the shared vector (backend/tests/vectors/, also
opened by the Rust store), key files, and what must be refused."""

import json
import os
import tempfile
import unittest

from pyfactor import app
from pyfactor.at_rest import AtRestError, AtRestKeys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
VECTOR = os.path.join(REPO, "backend", "tests", "vectors", "at_rest_v1.json")


def store_with_vector(root):
    """Puts the shared vector's blob where its object key says under `root`; returns the vector."""
    with open(VECTOR) as f:
        v = json.load(f)
    path = os.path.join(root, v["context"])
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as out:
        out.write(bytes.fromhex(v["blob_hex"]))
    return v


class Vector(unittest.TestCase):
    def setUp(self):
        with open(VECTOR) as f:
            v = json.load(f)
        self.keys = AtRestKeys([bytes.fromhex(v["key_hex"])])
        self.context = v["context"]
        self.blob = bytes.fromhex(v["blob_hex"])
        self.plain = bytes.fromhex(v["plaintext_hex"])

    def test_opens(self):
        self.assertEqual(self.keys.open(self.context, self.blob), self.plain)

    def test_refuses_moved_altered_plain_and_foreign(self):
        with self.assertRaises(AtRestError):
            self.keys.open("features/bob/x.bin", self.blob)
        altered = self.blob[:-1] + bytes([self.blob[-1] ^ 1])
        with self.assertRaises(AtRestError):
            self.keys.open(self.context, altered)
        with self.assertRaises(AtRestError):
            self.keys.open(self.context, self.plain)
        with self.assertRaises(AtRestError):
            AtRestKeys([b"\x08" * 32]).open(self.context, self.blob)


class KeyFiles(unittest.TestCase):
    def test_env_and_modes(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertIsNone(AtRestKeys.from_env({}))
            p = os.path.join(d, "k")
            with open(p, "w") as f:
                f.write("07" * 32 + "\n")
            os.chmod(p, 0o600)
            with open(VECTOR) as f:
                v = json.load(f)
            keys = AtRestKeys.from_env({"TACIT_AT_REST_KEY_FILE": p})
            self.assertEqual(keys.open(v["context"], bytes.fromhex(v["blob_hex"])), bytes.fromhex(v["plaintext_hex"]))
            os.chmod(p, 0o644)
            with self.assertRaises(ValueError):
                AtRestKeys.from_env({"TACIT_AT_REST_KEY_FILE": p})
            os.chmod(p, 0o600)
            with open(p, "w") as f:
                f.write("short")
            with self.assertRaises(ValueError):
                AtRestKeys.from_env({"TACIT_AT_REST_KEY_FILE": p})

    def test_service_reads_encrypted_objects(self):
        """load_vectors with keys: the encrypted object opens under its own key path."""
        with tempfile.TemporaryDirectory() as d:
            v = store_with_vector(d)
            keys = AtRestKeys([bytes.fromhex(v["key_hex"])])
            # The vector's plaintext is not a payload: decryption passes, decoding refuses.
            with self.assertRaises(app.JobError) as e:
                app.load_vectors(None, d, [v["context"]], keys)
            self.assertIn("invalid payload", str(e.exception))
            with self.assertRaises(app.JobError) as e:
                app.load_vectors(None, d, [v["context"]], AtRestKeys([b"\x08" * 32]))
            self.assertIn("unknown at-rest key", str(e.exception))


class Marker(unittest.TestCase):
    """The store's sealed marker (meta/at-rest, written by the Rust store) decides whether
    a blob without the header is older, unencrypted data."""

    def _sealed(self, key, context, plaintext):
        import hashlib

        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        tag = hashlib.sha256(key).digest()[:8]
        return b"TAR1" + tag + nonce + AESGCM(key).encrypt(nonce, plaintext, context.encode())

    def test_marker_turns_legacy_reading_on_and_only_with_the_key(self):
        key = b"\x05" * 32
        keys = AtRestKeys([key])
        with tempfile.TemporaryDirectory() as d:
            keys.load_marker(d)  # none: strict
            with self.assertRaises(AtRestError):
                keys.open("features/u/1.bin", b"old plaintext")
            os.makedirs(os.path.join(d, "meta"))
            marker = os.path.join(d, "meta", "at-rest")
            with open(marker, "wb") as f:
                f.write(self._sealed(key, "meta/at-rest", b'{"plaintext_before":true,"since_ms":1}'))
            keys.load_marker(d)
            self.assertEqual(keys.open("features/u/1.bin", b"old plaintext"), b"old plaintext")
            # A marker nobody sealed with the key (an insider's) does not open.
            with open(marker, "wb") as f:
                f.write(b'{"plaintext_before":true}')
            with self.assertRaises(AtRestError):
                AtRestKeys([key]).load_marker(d)

    def test_encrypted_object_without_a_key_says_so(self):
        with tempfile.TemporaryDirectory() as d:
            v = store_with_vector(d)
            with self.assertRaises(app.JobError) as e:
                app.load_vectors(None, d, [v["context"]], None)
            self.assertIn("TACIT_AT_REST_KEY_FILE", str(e.exception))


if __name__ == "__main__":
    unittest.main()
