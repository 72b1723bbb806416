"""Feature objects encrypted at rest by the Tacit gateway (backend/src/store/at_rest.rs).

Layout: b"TAR1" | key tag (8 bytes: SHA-256 of the key, truncated) | nonce (12) |
AES-256-GCM ciphertext and tag, with the object key as associated data: a blob moved
under another key does not open. With a key configured, a blob without the header is
refused, never read as plaintext — unless the store's marker (the object meta/at-rest,
JSON sealed the same way under the key) says that the store held unencrypted data when
encryption was turned on: then such a blob is that older data.

Keys come from TACIT_AT_REST_KEY_FILE (and TACIT_AT_REST_OLD_KEY_FILES, comma-separated,
for blobs written before a rotation): files of 32 bytes or 64 hex characters, the same
files the gateway uses.
"""

import hashlib
import os
import stat

MAGIC = b"TAR1"
MARKER_KEY = "meta/at-rest"
_TAG = 8
_NONCE = 12
_HEADER = len(MAGIC) + _TAG + _NONCE


class AtRestError(Exception):
    """A blob that is not encrypted, uses an unknown key, or does not open."""


def _read_key(path):
    st = os.stat(path)
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"at-rest key {path}: readable by group or others (chmod 600)")
    with open(path, "rb") as f:
        raw = f.read(200)
    if len(raw) == 32:
        return raw
    try:
        key = bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != 32:
        raise ValueError(f"at-rest key {path}: not 32 bytes or 64 hex characters")
    return key


class AtRestKeys:
    """Keys by tag; opens blobs for a given object key."""

    def __init__(self, keys):
        # Imported here: the dependency is needed only when encryption at rest is on.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._keys = {hashlib.sha256(k).digest()[:_TAG]: AESGCM(k) for k in keys}
        self.plaintext_before = False

    @classmethod
    def from_env(cls, env):
        """The keys named by the environment, or None when encryption at rest is off."""
        current = env.get("TACIT_AT_REST_KEY_FILE")
        if not current:
            return None
        older = [p.strip() for p in env.get("TACIT_AT_REST_OLD_KEY_FILES", "").split(",") if p.strip()]
        return cls([_read_key(p) for p in [current, *older]])

    def load_marker(self, root):
        """Applies the store's marker under the object directory `root`, if there is one."""
        import json

        try:
            with open(os.path.join(root, *MARKER_KEY.split("/")), "rb") as f:
                blob = f.read(4096)
        except FileNotFoundError:
            return
        marker = json.loads(self.open(MARKER_KEY, blob))
        self.plaintext_before = marker.get("plaintext_before") is True

    def seal(self, context, plaintext):
        """`plaintext` encrypted under the first (current) key for the place `context`
        (the layout above; the service seals its job records this way)."""
        import secrets

        tag, aead = next(iter(self._keys.items()))
        nonce = secrets.token_bytes(_NONCE)
        return MAGIC + tag + nonce + aead.encrypt(nonce, plaintext, context.encode())

    def open(self, context, blob):
        if self.plaintext_before and blob[: len(MAGIC)] != MAGIC:
            return blob
        if len(blob) < _HEADER + 16 or blob[: len(MAGIC)] != MAGIC:
            raise AtRestError("not encrypted at rest")
        aead = self._keys.get(blob[len(MAGIC) : len(MAGIC) + _TAG])
        if aead is None:
            raise AtRestError("encrypted under an unknown at-rest key")
        from cryptography.exceptions import InvalidTag

        try:
            return aead.decrypt(blob[len(MAGIC) + _TAG : _HEADER], blob[_HEADER:], context.encode())
        except InvalidTag:
            raise AtRestError("does not decrypt (altered, or moved from elsewhere)") from None
