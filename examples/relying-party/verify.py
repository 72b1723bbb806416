#!/usr/bin/env python3
"""Verify a Tacit verdict as a relying party (the app's own server) does, with PyJWT.

    pip install 'PyJWT[crypto]'      # the cryptography package brings Ed25519

The flow: your server issues a random nonce (``secrets.token_urlsafe(24)``) and hands
it to the app; the app calls ``authenticate(include_fresh, nonce)`` and sends the
answer's ``verdict`` back; your server believes the decision only if ``verify`` passes:

1. header: ``alg`` is EdDSA (nothing else is accepted: no algorithm confusion), ``typ``
   is ``tacit-verdict+jwt``, ``kid`` names a key of the gateway's JWKS
   (``GET /.well-known/jwks.json``, fetched by PyJWKClient, cached, fetched again once
   for an unknown kid);
2. the Ed25519 signature;
3. ``iss`` (and ``aud`` when the gateway sets one), ``exp`` and ``iat`` with a small
   leeway for clock skew, and the claims every verdict has;
4. the nonce is the one this session issued;
5. the ``jti`` was not presented before (a replayed token), remembered until the token
   expires. This cache lives in the process: with several server processes, keep it
   where they all see it (Redis ``SET jti 1 NX EX ttl``, a database row).

Command line (the token as an argument or on standard input)::

    verify.py --jwks-url http://127.0.0.1:8080/.well-known/jwks.json --issuer tacit \\
        --nonce NONCE [--audience AUD] --user USER [TOKEN]

prints the claims as JSON and exits 0, or prints ``refused: REASON`` and exits 1.
``--batch`` reads JSON lines ``{"token": ..., "nonce": ..., "user": ...}`` from standard
input and prints one JSON line per token (``{"ok": true, "claims": {...}}`` or
``{"ok": false, "reason": "..."}``), with one replay cache for them all.
"""

import argparse
import hmac
import json
import sys
import threading
import time

import jwt
from jwt import PyJWKClient

VERDICT_TYPE = "tacit-verdict+jwt"
REQUIRED = ["iss", "sub", "iat", "exp", "jti", "device", "decision"]


class Refused(Exception):
    """A verdict that is not believed; ``reason`` is a stable word."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class ReplayCache:
    """The ids of tokens already accepted, each until its token expires."""

    def __init__(self):
        self._seen = {}
        self._lock = threading.Lock()

    def first_time(self, jti, exp, now, leeway):
        with self._lock:
            for old in [j for j, e in self._seen.items() if e + leeway < now]:
                del self._seen[old]
            if jti in self._seen:
                return False
            self._seen[jti] = exp
            return True


class VerdictVerifier:
    """Checks verdicts of one gateway."""

    def __init__(self, jwks_url, issuer, audience=None, leeway=5):
        # Keys cached for 5 minutes (the gateway's Cache-Control); an unknown kid
        # makes PyJWKClient fetch the set again once.
        self.jwks = PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=10)
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.replays = ReplayCache()

    def verify(self, token, nonce, user, now=None):
        # The user is required: a nonce does not say whose session it is, and a token
        # for another account carrying a leaked nonce must not pass.
        if not isinstance(user, str) or not user:
            raise Refused("wrong_user", "no expected user given")
        now = time.time() if now is None else now
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as e:
            raise Refused("malformed", str(e)) from e
        if header.get("alg") != "EdDSA":
            raise Refused("wrong_algorithm", str(header.get("alg")))
        if header.get("typ") != VERDICT_TYPE:
            raise Refused("wrong_type", str(header.get("typ")))
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Refused("unknown_key", "no kid")
        try:
            key = self.jwks.get_signing_key(kid)
        except jwt.PyJWKClientError as e:
            raise Refused("unknown_key", kid) from e
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["EdDSA"],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": REQUIRED, "verify_aud": self.audience is not None},
            )
        except jwt.InvalidSignatureError as e:
            raise Refused("bad_signature") from e
        except jwt.ExpiredSignatureError as e:
            raise Refused("expired") from e
        except jwt.ImmatureSignatureError as e:
            raise Refused("not_yet_valid") from e
        except jwt.InvalidIssuerError as e:
            raise Refused("wrong_issuer") from e
        except jwt.InvalidAudienceError as e:
            raise Refused("wrong_audience") from e
        except jwt.InvalidTokenError as e:
            raise Refused("malformed", str(e)) from e
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
            raise Refused("wrong_nonce")
        if claims["sub"] != user:
            raise Refused("wrong_user")
        if not self.replays.first_time(claims["jti"], claims["exp"], now, self.leeway):
            raise Refused("replayed")
        return claims


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jwks-url", required=True)
    p.add_argument("--issuer", required=True)
    p.add_argument("--audience")
    p.add_argument("--nonce")
    p.add_argument("--user", help="the user this session is about (required without --batch)")
    p.add_argument("--leeway", type=int, default=5)
    p.add_argument("--batch", action="store_true")
    p.add_argument("token", nargs="?")
    a = p.parse_args(argv)
    v = VerdictVerifier(a.jwks_url, a.issuer, a.audience, a.leeway)
    if a.batch:
        for line in sys.stdin:
            if not line.strip():
                continue
            case = json.loads(line)
            try:
                claims = v.verify(case["token"], case["nonce"], case.get("user", ""))
                print(json.dumps({"ok": True, "claims": claims}), flush=True)
            except Refused as e:
                print(json.dumps({"ok": False, "reason": e.reason}), flush=True)
        return 0
    if a.nonce is None or a.user is None:
        p.error("--nonce and --user are required (without --batch)")
    token = a.token if a.token is not None else sys.stdin.read().strip()
    try:
        claims = v.verify(token, a.nonce, a.user)
    except Refused as e:
        print(f"refused: {e}")
        return 1
    print(json.dumps(claims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
