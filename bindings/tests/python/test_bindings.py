"""End-to-end test of the Python bindings against the real gateway (tacit-backend).

Run by bindings/run-tests.sh, which generates the bindings next to this file and sets
TACIT_URL, TACIT_PUBLIC_KEY, TACIT_KEY_ID, TACIT_USER, TACIT_TOKEN, TACIT_TOKEN2 and
TACIT_DATA_DIR. Progress goes to stderr; stdout gets exactly one line,
"N passed, N failed". The scenario is the same in Kotlin and Swift.
"""

import asyncio
import base64
import json
import math
import os
import re
import sys
import time
import traceback
import urllib.request

import ed25519_ref
import jwt
import tacit as t

PASSED = 0
FAILED = 0


def check(name, cond, detail=""):
    """Counts one check and reports it on stderr."""
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print(f"  ok   {name}", file=sys.stderr)
    else:
        FAILED += 1
        print(f"  FAIL {name} {detail}", file=sys.stderr)


def expect_error(name, fn, cls):
    """Checks that fn() raises cls (a TacitError variant or subclass)."""
    try:
        result = fn()
        check(name, False, f"no error, got {result}")
        return None
    except cls as e:
        check(name, True)
        return e
    except Exception as e:  # noqa: BLE001 - reported as a failure
        check(name, False, f"wrong error {type(e).__name__}: {e}")
        return None


async def expect_error_async(name, coro, cls):
    """Checks that awaiting coro raises cls."""
    try:
        result = await coro
        check(name, False, f"no error, got {result}")
    except cls:
        check(name, True)
    except Exception as e:  # noqa: BLE001
        check(name, False, f"wrong error {type(e).__name__}: {e}")


METRIC_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
METRIC_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def revoke_device(device_id):
    """POST /v1/devices/{id}/revoke with the gateway's admin token (what an
    administrator does for a lost phone)."""
    req = urllib.request.Request(
        f"{os.environ['TACIT_URL']}/v1/devices/{device_id}/revoke", method="POST",
        headers={"Authorization": "Bearer " + os.environ["TACIT_TEST_ADMIN_TOKEN"]})
    with urllib.request.urlopen(req, timeout=10) as r:
        check(f"device {device_id[:8]}… revoked by the admin", 200 <= r.status < 300, str(r.status))


def verify_verdict(token, nonce):
    """Verifies a verdict as the app's own server would: PyJWT, the gateway's JWKS,
    EdDSA only, its issuer, expiry and the nonce. Returns the claims."""
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "tacit-verdict+jwt" or header.get("alg") != "EdDSA":
        raise jwt.InvalidTokenError(f"not a verdict: {header}")
    jwks = jwt.PyJWKClient(os.environ["TACIT_URL"] + "/.well-known/jwks.json")
    key = jwks.get_signing_key(header["kid"])
    claims = jwt.decode(token, key.key, algorithms=["EdDSA"], issuer="tacit",
                        options={"require": ["exp", "iat", "iss", "sub", "jti"]})
    if claims.get("nonce") != nonce:
        raise jwt.InvalidTokenError(f"nonce {claims.get('nonce')!r}, expected {nonce!r}")
    return claims


def json_unb64(part):
    """The JSON of one base64url part of a compact JWS."""
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def json_b64(value):
    """One base64url part of a compact JWS for the JSON `value`."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def server_stats():
    """The gateway's counters from GET /metrics (Prometheus text format): stored,
    duplicates, rejected (all reasons), records (feature records in stored envelopes)
    and devices (registered); a series not yet present counts 0."""
    with urllib.request.urlopen(os.environ["TACIT_URL"] + "/metrics", timeout=10) as r:
        text = r.read().decode()
    stats = {"stored": 0, "duplicates": 0, "rejected": 0, "records": 0, "devices": 0}
    by_status = {"stored": "stored", "duplicate": "duplicates", "rejected": "rejected"}
    for line in text.splitlines():
        m = METRIC_LINE.match(line.strip())
        if not m:
            continue  # comments, blank lines
        name, labels, value = m.group(1), dict(METRIC_LABEL.findall(m.group(2) or "")), m.group(3)
        if name == "tacit_envelopes_total":
            key = by_status.get(labels.get("status"))
        elif name == "tacit_feature_records_total":
            key = "records"
        elif name == "tacit_devices_registered_total":
            key = "devices"
        else:
            key = None
        if key:
            stats[key] += int(float(value))
    return stats


def config(data_dir, public_key=None):
    settings = t.default_upload_settings()
    return t.TacitConfig(
        backend_url=os.environ["TACIT_URL"],
        backend_public_key=public_key
        if public_key is not None
        else base64.b64decode(os.environ["TACIT_PUBLIC_KEY"]),
        backend_key_id=os.environ["TACIT_KEY_ID"],
        data_dir=data_dir,
        user_id=os.environ["TACIT_USER"],
        upload=settings,
    )


def walking(start, seconds=30.0, rate=50.0):
    """Synthetic walking at 1.8 steps/s from start (Unix ns): gravity on z plus step
    and stride harmonics."""
    n = int(seconds * rate)
    out = []
    for i in range(n):
        s = i / rate
        ph = 2 * math.pi * 1.8 * s
        noise = 0.05 * math.sin(i * 12.9898) * math.cos(i * 78.233)
        v = 2.5 * math.sin(ph) + 0.8 * math.sin(2 * ph + 0.5) + 0.4 * math.sin(0.5 * ph) + noise
        accel = t.Vector3(
            x=1.2 * math.sin(0.5 * ph + 0.3) + 0.3 * math.sin(ph + 1.0),
            y=0.6 * math.cos(0.5 * ph) + noise,
            z=9.81 + v,
        )
        gyro = t.Vector3(x=0.3 * math.sin(0.5 * ph), y=0.2 * math.cos(ph), z=0.1 * math.sin(ph))
        out.append(t.MotionReading(timestamp_ns=start + int(i * 1e9 / rate), accel=accel, gyro=gyro))
    return out


def key_class(ch):
    if ch == "\b":
        return t.KeyClass.BACKSPACE
    if ch == " ":
        return t.KeyClass.SPACE
    if ch.isdigit():
        return t.KeyClass.DIGIT
    if ch.isalpha():
        return t.KeyClass.LETTER
    return t.KeyClass.PUNCTUATION


def typing(text, start_ns):
    """Key presses for text ('\\b' = backspace) with plausible, varying timings."""
    out = []
    down = start_ns
    for i, ch in enumerate(text):
        hold = int((95 + 20 * math.cos(i * 1.3)) * 1e6)
        out.append(t.KeyPress(
            key_class=key_class(ch), down_ns=down, up_ns=down + hold,
            pressure=0.5 + 0.1 * math.sin(i), area=0.1))
        flight = 150 + 40 * math.sin(i * 0.7) + (60 if ch == " " else 0)
        down += int(flight * 1e6)
    return out


FREE_TEXT = ("the quick brown fox jumps over the lazy dog, 1234 times! " * 2).replace("dog,", "dgo\b\bog,")
PHRASE = "tacit-phrase"


class ListLogger(t.Logger):
    """Collects log records from the core."""

    def __init__(self):
        self.records = []

    def log(self, level, target, message):
        self.records.append((level, target, message))


class Ed25519KeyStore(t.DeviceKeyStore):
    """A foreign key store signing in Python (pure-Python Ed25519)."""

    def __init__(self, seed):
        self.key = ed25519_ref.SigningKey(seed)
        self.signed = 0

    def algorithm(self):
        return t.KeyAlgorithm.ED25519

    def public_key(self):
        return self.key.public_key

    def sign(self, message):
        self.signed += 1
        return self.key.sign(bytes(message))


class BrokenKeyStore(t.DeviceKeyStore):
    """A key store whose hardware is unavailable."""

    def algorithm(self):
        return t.KeyAlgorithm.ED25519

    def public_key(self):
        raise t.KeyStoreError.Unavailable("no secure hardware")

    def sign(self, message):
        raise t.KeyStoreError.Unavailable("no secure hardware")


SEC = 1_000_000_000


def record_and_seal(client, label, start):
    """Records 30 s of walking from start (Unix ns), then a free-text block and one
    phrase entry (about 60 s in all; the extractors want time to move forward); seals.
    Returns the seal report."""
    motion = client.record_motion(walking(start))
    check(f"{label}: motion accepted", motion.accepted == 1500 and motion.dropped == 0, str(motion))
    check(f"{label}: motion gave gait windows", motion.windows > 0 and motion.feature_records > 0, str(motion))
    free = typing(FREE_TEXT, start + 31 * SEC)
    keys = client.record_keys(free)
    check(f"{label}: {len(free)} free-text keys accepted", keys.accepted == len(free), str(keys))
    phrase = client.record_phrase_entry(PHRASE, typing(PHRASE, start + 56 * SEC))
    check(f"{label}: phrase entry recorded", phrase.feature_records >= 1, str(phrase))
    records = motion.feature_records + keys.feature_records + phrase.feature_records
    sealed = client.seal()
    check(f"{label}: sealed every record", sealed.envelopes >= 1 and sealed.records == records,
          f"{sealed} vs {records} records")
    return sealed


async def scenario():
    data = os.environ["TACIT_DATA_DIR"]
    os.makedirs(data, exist_ok=True)

    settings = t.default_upload_settings()
    check("default upload settings", settings.batch_size > 0 and settings.max_attempts > 0, str(settings))

    logger = ListLogger()
    t.set_logger(logger, t.LogLevel.DEBUG)

    # Bad configuration: a backend key of 5 bytes.
    expect_error("bad config -> InvalidConfig",
                 lambda: t.TacitClient(config(os.path.join(data, "bad"), public_key=b"short"), None),
                 t.TacitError.InvalidConfig)

    wrong_id = config(os.path.join(data, "bad2"))
    wrong_id.backend_key_id = "00" * 8
    expect_error("key id mismatch -> InvalidConfig", lambda: t.TacitClient(wrong_id, None),
                 t.TacitError.InvalidConfig)

    bad_root = config(os.path.join(data, "bad3"))
    bad_root.key_list_root = b"short"
    expect_error("key list root of 5 bytes -> InvalidConfig", lambda: t.TacitClient(bad_root, None),
                 t.TacitError.InvalidConfig)

    client = t.TacitClient(config(os.path.join(data, "main")), None)
    st = client.status()
    check("fresh client is not registered", not st.registered and st.device_id is None, str(st))
    main_cfg = config(os.path.join(data, "main"))
    check("seals to the pinned key without a key list",
          st.backend_key_id == main_cfg.backend_key_id and st.key_list_serial == 0, str(st))
    check("no pinned root: refresh_backend_keys fetches nothing", await client.refresh_backend_keys() == 0)
    await expect_error_async("upload before registration -> NotRegistered",
                             client.upload_pending(), t.TacitError.NotRegistered)
    await expect_error_async("authenticate before registration -> NotRegistered",
                             client.authenticate(True), t.TacitError.NotRegistered)

    await expect_error_async("bad token -> InvalidEnrolmentToken", client.register_device("no-such-token"),
                             t.TacitError.InvalidEnrolmentToken)
    info = await client.register_device(os.environ["TACIT_TOKEN"])
    check("registered", len(info.device_id) == 32 and info.user_id == os.environ["TACIT_USER"], str(info))
    st = client.status()
    check("status after registration", st.registered and st.device_id == info.device_id, str(st))

    check("device_id() is the registered id", client.device_id() == info.device_id, client.device_id())

    expect_error("negative timestamp -> InvalidInput",
                 lambda: client.record_motion([t.MotionReading(
                     timestamp_ns=-1, accel=t.Vector3(x=0.0, y=0.0, z=9.8), gyro=None)]),
                 t.TacitError.InvalidInput)
    nan = client.record_motion([t.MotionReading(
        timestamp_ns=time.time_ns() - 300 * SEC, accel=t.Vector3(x=math.nan, y=0.0, z=9.8), gyro=None)])
    check("NaN reading is dropped, not accepted", nan.accepted == 0 and nan.dropped == 1, str(nan))

    sealed = record_and_seal(client, "built-in key", time.time_ns() - 200 * SEC)
    st = client.status()
    check("outbox holds the envelopes", st.outbox_envelopes == sealed.envelopes and st.outbox_bytes > 0, str(st))

    up = await client.upload_pending()
    check("upload stored everything",
          up.stored == sealed.envelopes and up.rejected == 0 and up.failed == 0 and up.remaining == 0, str(up))
    st = client.status()
    check("outbox empty after upload",
          st.outbox_envelopes == 0 and st.acknowledged_total >= sealed.envelopes and st.last_upload_unix_ms,
          str(st))
    stats = server_stats()
    check("server stored the records",
          stats["stored"] == sealed.envelopes and stats["records"] == sealed.records and stats["rejected"] == 0,
          str(stats))

    again = await client.upload_pending()
    check("nothing left to upload", again.sent == 0 and again.remaining == 0, str(again))

    client.set_network_state(t.NetworkState(online=False, unmetered=False))
    record_and_seal(client, "offline", time.time_ns() - 130 * SEC)
    off = await client.upload_pending()
    check("offline upload is skipped", off.sent == 0 and off.skipped_reason is not None and off.remaining > 0,
          str(off))
    client.set_network_state(t.NetworkState(online=True, unmetered=True))
    on = await client.upload_pending()
    check("online again uploads", on.stored == off.remaining and on.remaining == 0, str(on))

    # Authentication against the real endpoint: nobody is enrolled on this gateway yet,
    # so the honest answer is step_up with every factor "no template"; the fresh
    # phrase entry travels with the request and leaves the outbox.
    client.record_phrase_entry(PHRASE, typing(PHRASE, time.time_ns() - 20 * SEC))
    # The app's own server issued this nonce; the verdict comes back signed with it.
    nonce = base64.urlsafe_b64encode(os.urandom(18)).decode()
    auth = await client.authenticate(True, nonce)
    check("authenticate answers step_up before enrolment",
          auth.decision == t.AuthDecision.STEP_UP and not auth.degraded and auth.consecutive_rejects == 0
          # No evidence claims nothing: estimated FAR 1, confidence 0.
          and auth.estimated_far == 1.0 and auth.confidence == 0.0 and auth.far_floor == 0.0
          and {f.factor for f in auth.factors} == {"gait", "keystroke-fixed"}
          and all(f.state == t.FactorState.NO_TEMPLATE and f.mean_llr is None for f in auth.factors),
          str(auth))
    check("fresh envelope travels with the request",
          auth.envelopes_accepted == 1 and auth.envelopes_rejected == 0 and client.status().outbox_envelopes == 0,
          str(auth))
    try:
        claims = verify_verdict(auth.verdict, nonce)
        check("verdict verifies with PyJWT (JWKS, EdDSA, issuer, expiry, nonce)",
              claims["sub"] == os.environ["TACIT_USER"] and claims["device"] == info.device_id
              and claims["decision"] == "step_up" and claims["exp"] - claims["iat"] == 120
              and claims["factors"] == [], str(claims))
    except jwt.InvalidTokenError as e:
        check("verdict verifies with PyJWT (JWKS, EdDSA, issuer, expiry, nonce)", False, repr(e))
    head, body, sig = auth.verdict.split(".")
    forged = json_b64(dict(json_unb64(body), decision="accept"))
    try:
        verify_verdict(f"{head}.{forged}.{sig}", nonce)
        check("a verdict altered to accept does not verify", False, "verified")
    except jwt.InvalidSignatureError:
        check("a verdict altered to accept does not verify", True)
    try:
        verify_verdict(auth.verdict, "another-nonce-0123456789")
        check("the verdict is bound to its nonce", False, "verified")
    except jwt.InvalidTokenError:
        check("the verdict is bound to its nonce", True)
    again_auth = await client.authenticate(False)
    check("a second request right after is accepted (increasing request times)",
          again_auth.decision == t.AuthDecision.STEP_UP and again_auth.envelopes_accepted == 0, str(again_auth))
    check("without a nonce the verdict carries none",
          "nonce" not in jwt.decode(again_auth.verdict, options={"verify_signature": False}), again_auth.verdict)
    await expect_error_async("malformed nonce -> InvalidInput", client.authenticate(False, "too short"),
                             t.TacitError.InvalidInput)

    # Foreign key store: signs in Python; the server verifies every envelope with it.
    store = Ed25519KeyStore(bytes(range(32)))
    foreign = t.TacitClient(config(os.path.join(data, "foreign")), store)
    finfo = await foreign.register_device(os.environ["TACIT_TOKEN2"])
    check("foreign key store registered", finfo.device_id != info.device_id, str(finfo))
    fsealed = record_and_seal(foreign, "foreign key", time.time_ns() - 200 * SEC)
    fup = await foreign.upload_pending()
    check("foreign-signed envelopes stored", fup.stored == fsealed.envelopes and fup.rejected == 0, str(fup))
    check("foreign key store was asked to sign", store.signed >= fsealed.envelopes, f"{store.signed} signatures")
    stats = server_stats()
    check("server counted both devices", stats["devices"] == 2 and stats["rejected"] == 0, str(stats))

    # An administrator revokes the foreign device: the app sees DeviceRevoked (register
    # again), a case of its own, not a server message to parse.
    revoke_device(finfo.device_id)
    await expect_error_async("revoked device -> DeviceRevoked", foreign.authenticate(False),
                             t.TacitError.DeviceRevoked)
    # Its uploads too: the gateway rejects each envelope as device_revoked, and the app
    # hears the same case (not a summary with a rejected count it would have to read).
    record_and_seal(foreign, "after revocation", time.time_ns() - 100 * SEC)
    await expect_error_async("revoked device's upload -> DeviceRevoked", foreign.upload_pending(),
                             t.TacitError.DeviceRevoked)

    err = expect_error("unavailable key store -> KeyStore error",
                       lambda: t.TacitClient(config(os.path.join(data, "broken")), BrokenKeyStore()),
                       t.TacitError.KeyStore)
    check("key store's message crosses the FFI", err is not None and "no secure hardware" in str(err), str(err))

    check("logger received records", len(logger.records) > 0, f"{len(logger.records)} records")


def main():
    try:
        asyncio.run(scenario())
    except Exception:  # noqa: BLE001 - an unexpected exception is one more failure
        traceback.print_exc()
        check("scenario ran to the end", False)
    print(f"{PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
