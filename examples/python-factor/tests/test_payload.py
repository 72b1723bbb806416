"""The payload decoder against bytes the Rust crate wrote, and its strictness."""

import os
import re
import struct
import unittest

import numpy as np

from pyfactor import payload as p

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
RUST_FIXTURE = os.path.join(HERE, "data", "rust-sim-payload.bin")


def f32(x):
    return struct.unpack(">f", struct.pack(">f", x))[0]


def rust_demo_values():
    """The values `tacit-sim` puts in its demo payload (simulator/src/main.rs), computed
    with binary32 arithmetic as Rust does."""
    gait = []
    for _, lo, hi in p.GAIT_V1:
        lo32, hi32 = np.float32(lo), np.float32(hi)
        base = np.maximum(lo32, np.float32(0.0))
        gait.append(float(base + np.float32(0.1) * np.minimum(hi32 - base, np.float32(1.0))))
    gait[0] = f32(1.8)
    fixed = [f32((0.09, 0.25, 0.16)[i % 3]) for i in range(31)]
    return gait, fixed


def record(factor=p.KEYSTROKE_FIXED, values=None, context=b"0123456789abcdef", version=1):
    return p.FeatureRecord(factor, version, 1_700_000_000_000, 3000, context, values if values is not None else [0.1] * 31)


class RustFixture(unittest.TestCase):
    """tests/data/rust-sim-payload.bin: the plaintext of an envelope sealed by
    `tacit-sim` (Rust), extracted by tests/make_rust_fixture.py."""

    def setUp(self):
        with open(RUST_FIXTURE, "rb") as f:
            self.data = f.read()

    def test_decodes_the_rust_payload(self):
        recs = p.decode(self.data)
        self.assertEqual(len(recs), 2)
        gait, fixed = rust_demo_values()
        g, k = recs
        self.assertEqual((g.factor, g.schema_version, g.window_ms, g.context), (p.GAIT, 1, 5120, None))
        self.assertEqual(g.values, gait)
        self.assertEqual((k.factor, k.schema_version, k.window_ms), (p.KEYSTROKE_FIXED, 1, 3000))
        self.assertEqual(k.context, b"demo-phrase-hash")
        self.assertEqual(k.values, fixed)
        # both windows end at the same "now"
        self.assertEqual(g.window_start_ms + 5120, k.window_start_ms + 3000)

    def test_reencodes_to_the_same_bytes(self):
        self.assertEqual(p.encode(p.decode(self.data)), self.data)

    def test_every_truncation_is_rejected(self):
        for n in range(len(self.data)):
            with self.assertRaises(p.PayloadError, msg=f"prefix of {n} bytes"):
                p.decode(self.data[:n])

    def test_trailing_bytes_are_rejected(self):
        with self.assertRaisesRegex(p.PayloadError, "1 trailing bytes"):
            p.decode(self.data + b"\x00")

    def test_no_flipped_bit_in_the_header_fields_decodes_silently_wrong(self):
        # Flipping any bit either fails or changes the decoded records.
        ref = p.decode(self.data)
        for i in range(len(self.data)):
            for bit in range(8):
                b = bytearray(self.data)
                b[i] ^= 1 << bit
                try:
                    got = p.decode(bytes(b))
                except p.PayloadError:
                    continue
                self.assertNotEqual(got, ref, f"byte {i} bit {bit}")


class Strictness(unittest.TestCase):
    def enc(self, *recs):
        return p.encode(list(recs))

    def test_round_trip(self):
        # values exact in binary32, so decoding gives back the same floats
        recs = [record(values=[0.25] * 31), record(p.GAIT, [0.5] * 50, None), record(p.KEYSTROKE_FREE, [0.5] * 26 + [2.0], None)]
        self.assertEqual(p.decode(p.encode(recs)), recs)

    def test_header_errors(self):
        good = self.enc(record())
        with self.assertRaisesRegex(p.PayloadError, "unsupported payload version 2"):
            p.decode(b"\x02" + good[1:])
        with self.assertRaisesRegex(p.PayloadError, "record count 0"):
            p.decode(b"\x01\x00\x00")
        with self.assertRaisesRegex(p.PayloadError, "record count 1025"):
            p.decode(b"\x01\x04\x01" + good[3:])
        with self.assertRaisesRegex(p.PayloadError, "truncated"):
            p.decode(b"\x01\x00\x02" + good[3:])  # claims 2 records, holds 1
        with self.assertRaises(p.PayloadError):
            p.decode(b"")

    def test_record_errors(self):
        good = bytearray(self.enc(record()))
        b = bytearray(good)
        b[3] = 9
        with self.assertRaisesRegex(p.PayloadError, "unknown factor tag 9"):
            p.decode(bytes(b))
        b = bytearray(good)
        b[3 + 31 : 3 + 33] = struct.pack(">H", 0)
        with self.assertRaisesRegex(p.PayloadError, "value count 0"):
            p.decode(bytes(b))
        b = bytearray(good)
        b[3 + 31 : 3 + 33] = struct.pack(">H", 1025)
        with self.assertRaisesRegex(p.PayloadError, "value count 1025"):
            p.decode(bytes(b))
        b = bytearray(good)
        b[4:6] = struct.pack(">H", 3)
        with self.assertRaisesRegex(p.PayloadError, "unknown schema version 3"):
            p.decode(bytes(b))
        # Version 2 exists (timings and touch, 5n-2 values): 31 values do not fit it.
        b[4:6] = struct.pack(">H", 2)
        with self.assertRaisesRegex(p.PayloadError, "keystroke-fixed v2: 31 values, expected 5n-2"):
            p.decode(bytes(b))

    def test_schema_errors(self):
        def with_value(i, v):
            b = bytearray(self.enc(record()))
            off = 3 + p.RECORD_OVERHEAD + 4 * i
            b[off : off + 4] = struct.pack(">f", v)
            return bytes(b)

        with self.assertRaisesRegex(p.PayloadError, r"value 1 \(down_down\) is not finite"):
            p.decode(with_value(1, float("nan")))
        with self.assertRaisesRegex(p.PayloadError, "not finite"):
            p.decode(with_value(0, float("inf")))
        with self.assertRaisesRegex(p.PayloadError, r"value 0 \(hold\) = -0.5 outside"):
            p.decode(with_value(0, -0.5))
        p.decode(with_value(2, -0.5))  # up-down may be negative (overlapping keys)
        with self.assertRaisesRegex(p.PayloadError, "need a context id"):
            p.decode(self.raw_record(p.KEYSTROKE_FIXED, bytes(16), [0.1] * 4))
        with self.assertRaisesRegex(p.PayloadError, "must not carry a context id"):
            p.decode(self.raw_record(p.GAIT, b"x" * 16, [0.1] * 50))
        with self.assertRaisesRegex(p.PayloadError, "30 values, expected 3n-2"):
            p.decode(self.raw_record(p.KEYSTROKE_FIXED, b"x" * 16, [0.1] * 30))
        with self.assertRaisesRegex(p.PayloadError, "49 values, expected 50"):
            p.decode(self.raw_record(p.GAIT, bytes(16), [0.1] * 49))
        gait = [0.1] * 50
        gait[0] = 7.0
        with self.assertRaisesRegex(p.PayloadError, r"value 0 \(cadence_hz\) = 7.0 outside \[0.0, 5.0\]"):
            p.decode(self.raw_record(p.GAIT, bytes(16), gait))

    @staticmethod
    def raw_record(tag, ctx, values):
        body = struct.pack(">BHQI", tag, 1, 0, 0) + ctx + struct.pack(f">H{len(values)}f", len(values), *values)
        return b"\x01\x00\x01" + body

    def test_touch_records_decode_like_the_rust_crate(self):
        # Fixed-text v2: 3n-2 timings, n pressures, n areas (n = 2 here).
        def v2(values):
            body = struct.pack(">BHQI", p.KEYSTROKE_FIXED, 2, 0, 0) + b"x" * 16
            return b"\x01\x00\x01" + body + struct.pack(f">H{len(values)}f", len(values), *values)

        (r,) = p.decode(v2([0.1, 0.2, 0.1, 0.1, 0.4, 0.5, 0.05, 0.06]))
        self.assertEqual((r.schema_version, len(r.values)), (2, 8))
        with self.assertRaisesRegex(p.PayloadError, "4 values, expected 5n-2"):
            p.decode(v2([0.1] * 4))
        with self.assertRaisesRegex(p.PayloadError, r"value 5 \(pressure\) = -0.5 outside"):
            p.decode(v2([0.1, 0.2, 0.1, 0.1, 0.4, -0.5, 0.05, 0.06]))
        with self.assertRaisesRegex(p.PayloadError, r"value 7 \(area\) = 20.0 outside"):
            p.decode(v2([0.1, 0.2, 0.1, 0.1, 0.4, 0.5, 0.05, 20.0]))

    def test_encoder_refuses_what_the_decoder_would(self):
        with self.assertRaises(p.PayloadError):
            p.encode([])
        with self.assertRaises(p.PayloadError):
            p.encode([record(values=[0.1] * 30)])
        with self.assertRaises(p.PayloadError):
            p.encode([record(context=bytes(16))])

    def test_fixed_text_keys(self):
        self.assertEqual(p.fixed_text_keys(31), 11)
        self.assertEqual(p.fixed_text_keys(4), 2)
        self.assertIsNone(p.fixed_text_keys(1))
        self.assertIsNone(p.fixed_text_keys(30))
        self.assertIsNone(p.fixed_text_keys(3 * 129 - 2))


class Faces(unittest.TestCase):
    """Face records (factor 4) and face image records (tag 16), as PROTOCOL.md has them."""

    def face(self, hash_chunks=(65535.0, 0.0, 1.0, 4096.0), quality=0.75):
        return record(p.FACE, [0.125] * 128 + [quality] + list(hash_chunks), None)

    def test_face_records_round_trip_and_are_bounded(self):
        recs = [self.face()]
        self.assertEqual(p.decode(p.encode(recs)), recs)
        for bad in (self.face(quality=1.5), self.face(hash_chunks=(0.5, 0.0, 0.0, 0.0)), self.face(hash_chunks=(65536.0, 0.0, 0.0, 0.0))):
            with self.assertRaises(p.PayloadError):
                p.encode([bad])
        with self.assertRaisesRegex(p.PayloadError, "expected 133"):
            p.encode([record(p.FACE, [0.0] * 132, None)])

    def test_face_images_decode_apart_and_never_from_the_store(self):
        image = struct.pack(">BHQI", 16, 1, 1_700_000_000_000, 200) + b"\xab" * 200
        body = p.encode([self.face()])
        both = b"\x01\x00\x02" + body[3:] + image
        records, images = p.decode_with_images(both)
        self.assertEqual(len(records), 1)
        self.assertEqual((images[0].format, images[0].captured_at_ms, len(images[0].data)), (1, 1_700_000_000_000, 200))
        self.assertNotIn("171", repr(images[0]))  # the bytes are not printed
        with self.assertRaisesRegex(p.PayloadError, "never hold images"):
            p.decode(both)
        for bad, why in (
            (struct.pack(">BHQI", 16, 2, 0, 200) + b"x" * 200, "format 2"),
            (struct.pack(">BHQI", 16, 1, 0, 100) + b"x" * 100, "outside 128"),
            (struct.pack(">BHQI", 16, 1, 0, 300) + b"x" * 200, "truncated"),
        ):
            with self.assertRaisesRegex(p.PayloadError, why):
                p.decode_with_images(b"\x01\x00\x01" + bad)
        # One encoding: images come after every feature record.
        with self.assertRaisesRegex(p.PayloadError, "images come last"):
            p.decode_with_images(b"\x01\x00\x02" + image + body[3:])
        five = b"\x01\x00\x05" + image * 5
        with self.assertRaisesRegex(p.PayloadError, "at most 4"):
            p.decode_with_images(five)

    def test_face_bounds_match_the_rust_source(self):
        path = os.path.join(REPO, "shared", "protocol", "src", "payload.rs")
        if not os.path.exists(path):
            self.skipTest("shared/protocol/src/payload.rs not found (example copied out of the repo)")
        with open(path) as f:
            src = f.read()
        self.assertIn(f"pub const FACE_IMAGE_TAG: u8 = {p.FACE_IMAGE_TAG};", src)
        self.assertIn(f"pub const MAX_FACE_IMAGES: usize = {p.MAX_FACE_IMAGES};", src)
        self.assertIn(f"pub const MIN_FACE_IMAGE_BYTES: usize = {p.MIN_FACE_IMAGE_BYTES};", src)
        self.assertIn("pub const MAX_FACE_IMAGE_BYTES: usize = 96 * 1024;", src)
        self.assertEqual(p.MAX_FACE_IMAGE_BYTES, 96 * 1024)


class Packs(unittest.TestCase):
    """Feature objects as the gateway writes them: packs (backend/src/store/pack.rs pins
    the same golden bytes) and single-envelope objects of the older layout."""

    GOLDEN = bytes.fromhex("54504b310000000201010101010101010101010101010101000000036162630202020202020202020202020202020200000000")

    def test_golden_pack(self):
        self.assertEqual(
            p.object_entries("features/u/d/0001-ab.pack", self.GOLDEN),
            [(b"\x01" * 16, b"abc"), (b"\x02" * 16, b"")],
        )

    def test_single_object(self):
        key = "features/u/d/00000000000000000007-" + "ab" * 16 + ".bin"
        self.assertEqual(p.object_entries(key, b"xyz"), [(b"\xab" * 16, b"xyz")])

    def test_corrupt_packs_raise(self):
        for cut in range(len(self.GOLDEN)):
            with self.assertRaises(p.PayloadError):
                p.object_entries("k.pack", self.GOLDEN[:cut])
        with self.assertRaises(p.PayloadError):
            p.object_entries("k.pack", self.GOLDEN + b"\x00")
        with self.assertRaises(p.PayloadError):
            p.object_entries("k.pack", b"TPK1" + struct.pack(">I", 1 << 30))
        self.assertEqual(p.object_entries("features/u/d/1.bin", b"x"), [(b"", b"x")])


class SchemaTables(unittest.TestCase):
    """The Python copies of the fixed layouts equal shared/protocol/src/schema.rs."""

    def test_tables_match_the_rust_source(self):
        path = os.path.join(REPO, "shared", "protocol", "src", "schema.rs")
        if not os.path.exists(path):
            self.skipTest("shared/protocol/src/schema.rs not found (example copied out of the repo)")
        with open(path) as f:
            src = f.read()
        for name, table in (("GAIT_V1", p.GAIT_V1), ("KEYSTROKE_FREE_V1", p.KEYSTROKE_FREE_V1)):
            body = src.split(f"pub const {name}: &[FeatureDef] = &[")[1].split("];")[0]
            rows = re.findall(r'f\("(\w+)",\s*([-\d._e]+),\s*([-\d._e]+)\)', body)
            rust = tuple((n, float(a.replace("_", "")), float(b.replace("_", ""))) for n, a, b in rows)
            self.assertEqual(rust, tuple((n, float(a), float(b)) for n, a, b in table), name)


if __name__ == "__main__":
    unittest.main()
