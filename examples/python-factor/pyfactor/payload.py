"""Feature records as they travel and as the gateway stores them (`features/...` objects).

A Python implementation of the payload of `shared/protocol/PROTOCOL.md` ("Payload (the HPKE
plaintext)") with the schemas of `shared/protocol/src/schema.rs`, written from the spec and
checked against a payload encoded by the Rust crate (tests/data/rust-sim-payload.bin).
All integers are big-endian; values are IEEE-754 binary32.

    payload = version u8 (= 1) | record count u16 (1..=1024) | records
    record  = factor u8 | schema version u16 | window start u64 (Unix ms)
              | window length u32 (ms) | context id [16] (all zero = none)
              | value count u16 (1..=1024) | values f32 * count
    face image record (tag 16, at most 4) = 16 u8 | format u16 (1 = JPEG)
              | captured at u64 (Unix ms) | length u32 (128..=98304) | bytes

Face image records travel from the phone to the gateway only: the gateway replaces them
by face records (factor 4) before it stores a payload, so `decode` (stored objects)
refuses them, and `decode_with_images` (what a phone sends) returns them apart.

Decoding is strict, like the Rust decoder: bounded lengths, unknown versions and factor
tags rejected, trailing bytes rejected, every record validated against its schema
(dimension, context id use, finiteness, plausible range).
"""

import math
import struct
from dataclasses import dataclass, field

PAYLOAD_VERSION = 1
MAX_RECORDS = 1024
MAX_VALUES = 1024
RECORD_OVERHEAD = 1 + 2 + 8 + 4 + 16 + 2

GAIT = 1
KEYSTROKE_FIXED = 2
KEYSTROKE_FREE = 3
FACE = 4
FACTOR_NAMES = {GAIT: "gait", KEYSTROKE_FIXED: "keystroke-fixed", KEYSTROKE_FREE: "keystroke-free", FACE: "face"}

# Face records (schema version 1): the embedding, the image's quality, its 64-bit replay
# hash as four 16-bit chunks (whole numbers).
FACE_EMBEDDING_DIM = 128
FACE_HASH_CHUNKS = 4
FACE_V1_DIM = FACE_EMBEDDING_DIM + 1 + FACE_HASH_CHUNKS
FACE_COMPONENT_MAX = 2.0
FACE_IMAGE_TAG = 16
MAX_FACE_IMAGES = 4
MIN_FACE_IMAGE_BYTES = 128
MAX_FACE_IMAGE_BYTES = 96 * 1024

KEYSTROKE_FIXED_MIN_KEYS = 2
KEYSTROKE_FIXED_MAX_KEYS = 128

# Fixed layouts (name, min, max), copied from shared/protocol/src/schema.rs; a unit test compares
# them with the Rust source when the repository is there.
GAIT_V1 = (
    ("cadence_hz", 0.0, 5.0),
    ("step_regularity", -1.0, 1.0),
    ("stride_regularity", -1.0, 1.0),
    ("step_symmetry", -1000.0, 1000.0),
    ("dominant_freq_hz", 0.0, 25.0),
    ("stride_harmonic_1", 0.0, 1.0),
    ("stride_harmonic_2", 0.0, 1.0),
    ("stride_harmonic_3", 0.0, 1.0),
    ("stride_harmonic_4", 0.0, 1.0),
    ("stride_harmonic_5", 0.0, 1.0),
    ("stride_harmonic_6", 0.0, 1.0),
    ("stride_harmonic_7", 0.0, 1.0),
    ("stride_harmonic_8", 0.0, 1.0),
    ("harmonic_ratio_v", 0.0, 1.0e4),
    ("harmonic_ratio_h", 0.0, 1.0e4),
    ("band_energy_0p5_1hz", 0.0, 1.0),
    ("band_energy_1_1p5hz", 0.0, 1.0),
    ("band_energy_1p5_2hz", 0.0, 1.0),
    ("band_energy_2_3hz", 0.0, 1.0),
    ("band_energy_3_4hz", 0.0, 1.0),
    ("band_energy_4_6hz", 0.0, 1.0),
    ("band_energy_6_10hz", 0.0, 1.0),
    ("spectral_centroid_hz", 0.0, 25.0),
    ("spectral_entropy", 0.0, 1.0),
    ("spectral_flatness", 0.0, 1.0),
    ("v_std", 0.0, 200.0),
    ("v_skewness", -100.0, 100.0),
    ("v_kurtosis", -10.0, 1.0e4),
    ("v_p10", -600.0, 600.0),
    ("v_p90", -600.0, 600.0),
    ("v_range", 0.0, 1200.0),
    ("v_mean_abs_jerk", 0.0, 1.0e6),
    ("v_zero_cross_rate", 0.0, 50.0),
    ("h_std", 0.0, 200.0),
    ("h_skewness", -100.0, 100.0),
    ("h_kurtosis", -10.0, 1.0e4),
    ("h_p10", -600.0, 600.0),
    ("h_p90", -600.0, 600.0),
    ("h_range", 0.0, 1200.0),
    ("h_mean_abs_jerk", 0.0, 1.0e6),
    ("h_zero_cross_rate", 0.0, 50.0),
    ("m_std", 0.0, 200.0),
    ("m_skewness", -100.0, 100.0),
    ("m_kurtosis", -10.0, 1.0e4),
    ("m_p10", -600.0, 600.0),
    ("m_p90", -600.0, 600.0),
    ("m_range", 0.0, 1200.0),
    ("m_mean_abs_jerk", 0.0, 1.0e6),
    ("m_zero_cross_rate", 0.0, 50.0),
    ("vertical_energy_ratio", 0.0, 1.0),
)
KEYSTROKE_FREE_V1 = (
    ("hold_mean_letter", 0.0, 10.0),
    ("hold_sd_letter", 0.0, 10.0),
    ("hold_mean_space", 0.0, 10.0),
    ("hold_sd_space", 0.0, 10.0),
    ("hold_mean_digit_punct", 0.0, 10.0),
    ("hold_sd_digit_punct", 0.0, 10.0),
    ("hold_mean_backspace", 0.0, 10.0),
    ("hold_sd_backspace", 0.0, 10.0),
    ("dd_mean_letter_letter", 0.0, 60.0),
    ("dd_sd_letter_letter", 0.0, 60.0),
    ("ud_mean_letter_letter", -10.0, 60.0),
    ("ud_sd_letter_letter", 0.0, 60.0),
    ("dd_mean_letter_space", 0.0, 60.0),
    ("dd_sd_letter_space", 0.0, 60.0),
    ("ud_mean_letter_space", -10.0, 60.0),
    ("ud_sd_letter_space", 0.0, 60.0),
    ("dd_mean_space_letter", 0.0, 60.0),
    ("dd_sd_space_letter", 0.0, 60.0),
    ("ud_mean_space_letter", -10.0, 60.0),
    ("ud_sd_space_letter", 0.0, 60.0),
    ("dd_median_all", 0.0, 60.0),
    ("ud_median_all", -10.0, 60.0),
    ("keys_per_second", 0.0, 50.0),
    ("backspace_rate", 0.0, 1.0),
    ("pause_rate", 0.0, 1.0),
    ("rollover_rate", 0.0, 1.0),
    ("digraph_count", 2.0, 100_000.0),
)

_LAYOUTS = {(GAIT, 1): GAIT_V1, (KEYSTROKE_FREE, 1): KEYSTROKE_FREE_V1}
# Ranges of the fixed-text timings, by position i % 3: hold, down-down, up-down (s).
FIXED_TEXT_RANGES = (("hold", 0.0, 10.0), ("down_down", 0.0, 60.0), ("up_down", -10.0, 60.0))


def _f32(x):
    """x rounded to binary32 (the Rust bounds are f32 constants)."""
    return struct.unpack(">f", struct.pack(">f", x))[0]


class PayloadError(ValueError):
    """The bytes are not a valid payload (the message says why, like the Rust error)."""


class SchemaError(ValueError):
    """A record does not fit its schema."""


def fixed_text_keys(dimension):
    """Number of keys of a fixed-text vector of `dimension` values (3n - 2), or None."""
    if dimension % 3 != 1:
        return None
    n = (dimension + 2) // 3
    return n if KEYSTROKE_FIXED_MIN_KEYS <= n <= KEYSTROKE_FIXED_MAX_KEYS else None


TOUCH_MAX = 10.0


def fixed_text_touch_keys(dimension):
    """Number of keys of a fixed-text v2 vector (timings, pressures, areas: 5n - 2), or None."""
    if (dimension + 2) % 5 != 0:
        return None
    n = (dimension + 2) // 5
    return n if KEYSTROKE_FIXED_MIN_KEYS <= n <= KEYSTROKE_FIXED_MAX_KEYS else None


def fixed_text_bounds(dimension):
    """(min, max) per value of a fixed-text vector, as binary32 floats."""
    lo = [_f32(FIXED_TEXT_RANGES[i % 3][1]) for i in range(dimension)]
    hi = [_f32(FIXED_TEXT_RANGES[i % 3][2]) for i in range(dimension)]
    return lo, hi


def _check_values(values, defs):
    for i, v in enumerate(values):
        name, lo, hi = defs(i)
        if not math.isfinite(v):
            raise SchemaError(f"value {i} ({name}) is not finite")
        if v < _f32(lo) or v > _f32(hi):
            raise SchemaError(f"value {i} ({name}) = {v} outside [{lo}, {hi}]")


def validate(factor, version, values, has_context):
    """Validates one record's values (and context id use) against its schema."""
    if factor == KEYSTROKE_FIXED and version == 1:
        if fixed_text_keys(len(values)) is None:
            raise SchemaError(f"keystroke-fixed v1: {len(values)} values, expected 3n-2 for 2..=128 keys")
        if not has_context:
            raise SchemaError("keystroke-fixed records need a context id")
        _check_values(values, lambda i: FIXED_TEXT_RANGES[i % 3])
        return
    if factor == KEYSTROKE_FIXED and version == 2:
        n = fixed_text_touch_keys(len(values))
        if n is None:
            raise SchemaError(f"keystroke-fixed v2: {len(values)} values, expected 5n-2 for 2..=128 keys")
        if not has_context:
            raise SchemaError("keystroke-fixed records need a context id")
        timings = 3 * n - 2

        def touch_def(i):
            if i < timings:
                return FIXED_TEXT_RANGES[i % 3]
            return ("pressure" if i < timings + n else "area", 0.0, TOUCH_MAX)

        _check_values(values, touch_def)
        return
    if factor == FACE and version == 1:
        if len(values) != FACE_V1_DIM:
            raise SchemaError(f"face v1: {len(values)} values, expected {FACE_V1_DIM}")
        if has_context:
            raise SchemaError("face records must not carry a context id")

        def face_def(i):
            if i < FACE_EMBEDDING_DIM:
                return ("embedding", -FACE_COMPONENT_MAX, FACE_COMPONENT_MAX)
            return ("quality", 0.0, 1.0) if i == FACE_EMBEDDING_DIM else ("image_hash", 0.0, 65535.0)

        _check_values(values, face_def)
        for i in range(FACE_EMBEDDING_DIM + 1, FACE_V1_DIM):
            if values[i] != math.floor(values[i]):
                raise SchemaError(f"value {i} (image_hash) = {values[i]} outside [0, 65535]")
        return
    layout = _LAYOUTS.get((factor, version))
    if layout is None:
        raise SchemaError(f"unknown schema version {version} for factor {FACTOR_NAMES.get(factor, factor)}")
    if len(values) != len(layout):
        raise SchemaError(f"{FACTOR_NAMES[factor]} v{version}: {len(values)} values, expected {len(layout)}")
    if has_context:
        raise SchemaError(f"{FACTOR_NAMES[factor]} records must not carry a context id")
    _check_values(values, lambda i: layout[i])


@dataclass
class FeatureRecord:
    """One feature vector with its provenance."""

    factor: int
    schema_version: int
    window_start_ms: int
    window_ms: int
    context: bytes | None  # 16 bytes, or None
    values: list[float] = field(default_factory=list)

    def validate(self):
        validate(self.factor, self.schema_version, self.values, self.context is not None)


@dataclass
class FaceImage:
    """A camera frame a phone sealed for the face factor (never stored)."""

    format: int
    captured_at_ms: int
    data: bytes = field(repr=False)


def decode(data):
    """Strictly decodes and validates a stored payload; returns its records. Raises
    PayloadError (also for a face image record: stored objects never hold one)."""
    records, images = decode_with_images(data)
    if images:
        raise PayloadError("a face image record: stored feature objects never hold images")
    return records


def decode_with_images(data):
    """Strictly decodes and validates a payload as a phone sends it; returns (records,
    face images). Raises PayloadError."""
    data = bytes(data)
    pos = 0

    def take(n):
        nonlocal pos
        if len(data) - pos < n:
            raise PayloadError("payload truncated")
        chunk = data[pos : pos + n]
        pos += n
        return chunk

    (version,) = take(1)
    if version != PAYLOAD_VERSION:
        raise PayloadError(f"unsupported payload version {version}")
    (count,) = struct.unpack(">H", take(2))
    if count == 0 or count > MAX_RECORDS:
        raise PayloadError(f"record count {count} outside 1..={MAX_RECORDS}")
    # Each record needs at least RECORD_OVERHEAD + 4 bytes.
    if count * (RECORD_OVERHEAD + 4) > len(data) - pos:
        raise PayloadError("payload truncated")
    records, images = [], []
    for index in range(count):
        (tag,) = take(1)
        if tag == FACE_IMAGE_TAG:
            if len(images) == MAX_FACE_IMAGES:
                raise PayloadError(f"{MAX_FACE_IMAGES + 1} face images, at most {MAX_FACE_IMAGES}")
            fmt, captured_at_ms, n = struct.unpack(">HQI", take(14))
            if fmt != 1:
                raise PayloadError(f"record {index}: face image format {fmt} unknown")
            if not MIN_FACE_IMAGE_BYTES <= n <= MAX_FACE_IMAGE_BYTES:
                raise PayloadError(f"record {index}: face image of {n} bytes, outside {MIN_FACE_IMAGE_BYTES}..={MAX_FACE_IMAGE_BYTES}")
            images.append(FaceImage(fmt, captured_at_ms, take(n)))
            continue
        if images:
            raise PayloadError(f"record {index}: a face image is followed by a feature record (images come last)")
        if tag not in FACTOR_NAMES:
            raise PayloadError(f"record {index}: unknown factor tag {tag}")
        schema_version, window_start_ms, window_ms = struct.unpack(">HQI", take(14))
        ctx = take(16)
        (n,) = struct.unpack(">H", take(2))
        if n == 0 or n > MAX_VALUES:
            raise PayloadError(f"record {index}: value count {n} outside 1..={MAX_VALUES}")
        values = list(struct.unpack(f">{n}f", take(4 * n)))
        record = FeatureRecord(
            factor=tag,
            schema_version=schema_version,
            window_start_ms=window_start_ms,
            window_ms=window_ms,
            context=None if ctx == bytes(16) else ctx,
            values=values,
        )
        try:
            record.validate()
        except SchemaError as e:
            raise PayloadError(f"record {index}: {e}") from None
        records.append(record)
    if pos != len(data):
        raise PayloadError(f"{len(data) - pos} trailing bytes after the last record")
    return records, images


def encode(records):
    """Encodes records as a payload (validating them first, like the Rust encoder)."""
    if not 1 <= len(records) <= MAX_RECORDS:
        raise PayloadError(f"record count {len(records)} outside 1..={MAX_RECORDS}")
    out = bytearray([PAYLOAD_VERSION]) + struct.pack(">H", len(records))
    for index, r in enumerate(records):
        if not 1 <= len(r.values) <= MAX_VALUES:
            raise PayloadError(f"record {index}: value count {len(r.values)} outside 1..={MAX_VALUES}")
        if r.context is not None and (len(r.context) != 16 or r.context == bytes(16)):
            raise PayloadError(f"record {index}: a context id is 16 bytes, not all zero")
        try:
            r.validate()
        except SchemaError as e:
            raise PayloadError(f"record {index}: {e}") from None
        out += struct.pack(">BHQI", r.factor, r.schema_version, r.window_start_ms, r.window_ms)
        out += r.context if r.context is not None else bytes(16)
        out += struct.pack(f">H{len(r.values)}f", len(r.values), *r.values)
    return bytes(out)


PACK_MAGIC = b"TPK1"
MAX_PACK_ENTRIES = 4096


def object_entries(key, data):
    """The (envelope id, payload bytes) of a feature object: every entry of a pack
    (`....pack`: b"TPK1" | count u32 | count x (id[16] | len u32 | payload), big-endian,
    as the gateway's store/pack.rs writes it), or the one payload of an object of the
    older layout (`...-ENVELOPE.bin`) or any other file. Raises PayloadError for a
    malformed pack."""
    data = bytes(data)
    if not key.endswith(".pack"):
        # Any other object is one payload; its id is in its name when it has one.
        name = key.rsplit("/", 1)[-1]
        try:
            envelope_id = bytes.fromhex(name.rsplit(".", 1)[0].rsplit("-", 1)[-1])
        except ValueError:
            envelope_id = b""
        return [(envelope_id if len(envelope_id) == 16 else b"", data)]
    if data[:4] != PACK_MAGIC or len(data) < 8:
        raise PayloadError("pack: no TPK1 header")
    (count,) = struct.unpack(">I", data[4:8])
    if count > MAX_PACK_ENTRIES:
        raise PayloadError("pack: too many entries")
    pos, entries = 8, []
    for _ in range(count):
        if len(data) - pos < 20:
            raise PayloadError("pack: truncated entry")
        envelope_id = data[pos : pos + 16]
        (n,) = struct.unpack(">I", data[pos + 16 : pos + 20])
        pos += 20
        if len(data) - pos < n:
            raise PayloadError("pack: truncated payload")
        entries.append((envelope_id, data[pos : pos + n]))
        pos += n
    if pos != len(data):
        raise PayloadError("pack: bytes after the last entry")
    return entries
