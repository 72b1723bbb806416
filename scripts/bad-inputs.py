#!/usr/bin/env python3
"""Hostile inputs against a running gateway, as an outsider would send them.

Usage: bad-inputs.py BASE_URL ADMIN_TOKEN [--json OUT]

Sends a fixed, deterministic battery (every route with every method, undecodable and
oversized path parameters, broken JSON of every kind, malformed envelopes, forged
signatures, weak keys, admin-token variants, bad query values, and raw HTTP that no
client library would send) and checks each answer:

- no 5xx, no dropped connection, no hang (15 s per request);
- every error answered by the service is `{"error": "...", "code": "..."}` JSON.

Refusals by the HTTP parser itself (malformed request lines or headers, which never
reach the service) are counted apart: hyper answers them with an empty body.

Standard library only. Exit status 0 when every check holds. Prints a summary and,
with --json, writes the counts for RELIABILITY.md.
"""

import base64
import http.client
import json
import os
import random
import socket
import sys
import urllib.parse

TIMEOUT_S = 15


class Result:
    def __init__(self):
        self.sent = 0
        self.by_status = {}
        self.failures = []
        self.parser_refusals = 0

    def fail(self, what, why):
        self.failures.append(f"{what}: {why}")


def request(base, method, path, body=None, headers=None):
    """One request on a fresh connection: (status, content type, body) or an exception."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT_S)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if body is not None and "Content-Length" not in hdrs:
            hdrs["Content-Length"] = str(len(body))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        return r.status, r.getheader("Content-Type") or "", data
    finally:
        conn.close()


def raw(base, payload):
    """Raw bytes on a socket: (status, body) of the answer, status 0 when none."""
    u = urllib.parse.urlsplit(base)
    s = socket.create_connection((u.hostname, u.port), timeout=TIMEOUT_S)
    try:
        s.sendall(payload)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, head, body


def check(res, what, method, status, ctype, data):
    res.sent += 1
    res.by_status[status] = res.by_status.get(status, 0) + 1
    if status >= 500:
        res.fail(what, f"{status} {data[:200]!r}")
        return
    if status >= 400 and method != "HEAD":
        if not ctype.startswith("application/json"):
            res.fail(what, f"{status} with content type {ctype!r}: {data[:120]!r}")
            return
        try:
            v = json.loads(data)
        except ValueError:
            res.fail(what, f"{status} body is not JSON: {data[:120]!r}")
            return
        if not (isinstance(v, dict) and isinstance(v.get("error"), str)
                and isinstance(v.get("code"), str)):
            res.fail(what, f"{status} body lacks error/code: {data[:120]!r}")


def send(res, base, method, path, body=None, headers=None, what=None):
    what = what or f"{method} {path[:80]}"
    try:
        status, ctype, data = request(base, method, path, body, headers)
    except (socket.timeout, TimeoutError):
        res.sent += 1
        res.fail(what, "no answer within 15 s")
        return
    except (ConnectionError, http.client.HTTPException, OSError) as e:
        res.sent += 1
        res.fail(what, f"connection failed: {e!r}")
        return
    check(res, what, method, status, ctype, data)


ROUTES = [
    "/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/users", "/v1/users/alice",
    "/v1/users/alice/export", "/v1/users/alice/decisions", "/.well-known/jwks.json",
    "/v1/users/alice/training-consent",
    "/v1/users/alice/enrolment-tokens", "/v1/keys", "/v1/devices",
    "/v1/devices/" + "ab" * 16 + "/revoke", "/v1/uploads", "/v1/authenticate",
    "/v1/users/alice/templates", "/v1/users/alice/unlock", "/no/such/route", "/",
]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]

BAD_IDS = ["%ff", "%00", "..", "%2e%2e", "a" * 300, "%C3%A9", "a%2Fb", "-x", ".x", "%20",
           "a" * 129, "%e2%80%ae", "%", "%zz"]
BAD_DEVICE_IDS = ["zz", "ab" * 17, "%ff", "AB" * 16 + "0", "", "g" * 32]

JSON_BODIES = [b"", b"{", b"null", b"[]", b"1", b"\"x\"", b"{\"a\":1}", b"[" * 5000,
               b"{\"x\":" * 2000, b"\xff\xfe", b"{\"envelopes\":null}", b"\x00" * 64,
               json.dumps({"s": "x" * 100_000}).encode(), b"{\"a\":1}{\"b\":2}",
               b"{\"envelopes\":[1,2]}", b"{\"user_id\":\"\\ud800\"}"]

ADMIN_VARIANTS = ["", "Bearer", "Bearer ", "bearer {t}", "Bearer  {t}", "Bearer {t} ",
                  "Basic {t}", "Bearer {t}x", "Bearer " + "x" * 10_000, "Token {t}",
                  "Bearer \t{t}", "Bearer {t}\t"]


def battery(base, admin):
    res = Result()
    rng = random.Random(20261205)
    j = {"Content-Type": "application/json"}
    auth = {"Authorization": f"Bearer {admin}"}

    # Every route with every method, no body.
    for route in ROUTES:
        for m in METHODS:
            send(res, base, m, route, headers=auth)

    # Path parameters that do not decode or break the rules.
    for bad in BAD_IDS:
        for tail in ["/export", "/decisions", "/enrolment-tokens", "/templates", "/unlock", ""]:
            method = {"": "DELETE", "/export": "GET", "/decisions": "GET"}.get(tail, "POST")
            send(res, base, method, f"/v1/users/{bad}{tail}", headers=auth)
    for bad in BAD_DEVICE_IDS:
        send(res, base, "POST", f"/v1/devices/{bad}/revoke", headers=auth)

    # Broken JSON on every route that takes a body, with and without the content type.
    for route in ["/v1/users", "/v1/devices", "/v1/uploads", "/v1/authenticate",
                  "/v1/users/alice/templates"]:
        for body in JSON_BODIES:
            send(res, base, "POST", route, body, {**j, **auth})
        for ct in [None, "text/plain", "application/xml", "application/json; charset=latin1",
                   "multipart/form-data"]:
            h = dict(auth)
            if ct:
                h["Content-Type"] = ct
            send(res, base, "POST", route, b"{}", h)
        send(res, base, "POST", route, b"{" + b" " * (9 * 1024 * 1024) + b"}", {**j, **auth},
             what=f"POST {route} 9 MiB body")

    # Malformed envelopes.
    envelopes = [[], ["!!!"], ["" for _ in range(3)], ["AAAA"] * 257,
                 [base64.b64encode(b"TCIT").decode()],
                 [base64.b64encode(bytes(64)).decode()]]
    for n in [1, 63, 64, 65, 101, 102, 200, 1000, 70_000]:
        envelopes.append([base64.b64encode(rng.randbytes(n)).decode()])
        envelopes.append([base64.b64encode(b"TCIT\x01" + rng.randbytes(n)).decode()])
    for env in envelopes:
        send(res, base, "POST", "/v1/uploads", json.dumps({"envelopes": env}).encode(), j)

    # Authentication requests that must not pass.
    good_id = "ab" * 16
    for body in [
        {"device_id": "zz", "request_ms": 1, "envelopes": [], "signature": "AAAA"},
        {"device_id": good_id, "request_ms": -1, "envelopes": [], "signature": "AAAA"},
        {"device_id": good_id, "request_ms": 1.5, "envelopes": [], "signature": "AAAA"},
        {"device_id": good_id, "request_ms": "1", "envelopes": [], "signature": "AAAA"},
        {"device_id": good_id, "request_ms": 2**64, "envelopes": [], "signature": "AAAA"},
        {"device_id": good_id, "request_ms": 1, "envelopes": [], "signature": ""},
        {"device_id": good_id, "request_ms": 1, "envelopes": [], "signature": "A" * 400},
        {"device_id": good_id, "request_ms": 1, "envelopes": ["AAAA"] * 17, "signature": "AAAA"},
        {"device_id": good_id, "request_ms": 1, "envelopes": [], "signature": "AAAA",
         "nonce": "short"},
        {"device_id": good_id, "request_ms": 1, "envelopes": [], "signature": "AAAA",
         "nonce": "x" * 129},
        {"device_id": good_id, "request_ms": 1, "envelopes": [], "signature": "AAAA",
         "nonce": "spaces are not allowed here"},
        {"device_id": good_id, "request_ms": 1, "envelopes": ["!!"], "signature": "AAAA"},
        {"device_id": good_id, "request_ms": 1, "signature": base64.b64encode(bytes(64)).decode()},
    ]:
        send(res, base, "POST", "/v1/authenticate", json.dumps(body).encode(), j)

    # Device registration with weak, malformed or unknown keys.
    identity = bytes([1]) + bytes(31)
    for alg, key in [("ed25519", identity), ("ed25519", bytes(32)), ("ed25519", bytes(31)),
                     ("ecdsa-p256-sha256", b"\x04" + bytes(64)),
                     ("ecdsa-p256-sha256", b"\x02" + bytes(32)), ("rsa", bytes(32)),
                     ("ed25519", b"\xff" * 32)]:
        for token in ["x", "", "y" * 300]:
            body = {"enrolment_token": token,
                    "public_key": {"algorithm": alg, "key": base64.b64encode(key).decode()}}
            send(res, base, "POST", "/v1/devices", json.dumps(body).encode(), j)

    # Admin token variants on every admin route.
    for v in ADMIN_VARIANTS:
        h = {**j, "Authorization": v.format(t=admin)}
        send(res, base, "POST", "/v1/users", b'{"user_id":"bad-input-user"}', h)
        send(res, base, "DELETE", "/v1/users/alice", None, h)
        send(res, base, "GET", "/v1/users/alice/export", None, h)
        send(res, base, "GET", "/v1/users/alice/decisions", None, h)

    # Query values.
    for q in ["limit=-1", "limit=abc", "limit=99999999999999999999", "limit=", "limit=1&limit=2",
              "%ff=1", "limit=%00"]:
        send(res, base, "GET", f"/v1/users/alice/decisions?{q}", headers=auth)

    # Raw HTTP that clients do not send. The service must not crash or hang; refusals by
    # the HTTP parser itself are counted apart.
    raws = [
        b"GET / HTTP/1.1\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\nhost: x\r\n\r\n",
        b"POST /v1/uploads HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
        b"POST /v1/uploads HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 200_000 + b"\r\n\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n",
        b"\x16\x03\x01\x00\x05hello",
    ]
    for payload in raws:
        what = f"raw {payload[:40]!r}"
        try:
            status, head, body = raw(base, payload)
        except (socket.timeout, TimeoutError):
            res.sent += 1
            res.fail(what, "no answer within 15 s")
            continue
        except OSError as e:
            res.sent += 1
            res.fail(what, f"connection failed: {e!r}")
            continue
        res.sent += 1
        res.by_status[status] = res.by_status.get(status, 0) + 1
        if status >= 500:
            res.fail(what, f"{status}")
        elif status == 0 or not head.lower().count(b"content-type: application/json"):
            res.parser_refusals += 1
    return res


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    base, admin = sys.argv[1], sys.argv[2]
    res = battery(base, admin)
    # Still alive and well after all of it.
    status, _, _ = request(base, "GET", "/readyz")
    if status != 200:
        res.fail("readyz afterwards", str(status))
    summary = {
        "requests": res.sent,
        "statuses": {str(k): v for k, v in sorted(res.by_status.items())},
        "server_errors": sum(v for k, v in res.by_status.items() if k >= 500),
        "parser_refusals": res.parser_refusals,
        "failures": res.failures,
    }
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
            json.dump(summary, f, indent=1)
    print(f"bad inputs: {res.sent} requests, statuses {summary['statuses']}, "
          f"{summary['server_errors']} 5xx, {res.parser_refusals} refused by the HTTP parser, "
          f"{len(res.failures)} failures")
    for f in res.failures[:50]:
        print("  FAIL", f)
    return 1 if res.failures else 0


if __name__ == "__main__":
    sys.exit(main())
