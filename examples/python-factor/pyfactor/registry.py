"""The model registry of the Python factor: every trained candidate is a version
`vN.json` (the model configuration the service loads) with `vN.manifest.json` (what it
was trained on, the gate's verdict, its parent) in FACTOR_REGISTRY_DIR; promoting a
version writes it over FACTOR_MODEL_FILE atomically (a temporary file renamed over it),
which the service's reload loop then picks up. Without FACTOR_MODEL_FILE there is no
file to promote into: candidates are registered, never promoted.
"""

import json
import os
import re
import tempfile
import threading
import time

_VERSION_FILE = re.compile(r"^v([0-9]{1,9})\.json$")


def _write_atomic(path, data):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class Registry:
    def __init__(self, root, model_file):
        self.root = root
        self.model_file = model_file
        self._mu = threading.Lock()

    def versions(self):
        """The registered version numbers, ascending."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_VERSION_FILE.match, names) if m)

    def served(self):
        """The version in the model file (None: none of this registry's)."""
        if self.model_file is None:
            return None
        try:
            with open(self.model_file, "rb") as f:
                v = json.loads(f.read(1 << 20)).get("version", "")
        except (OSError, ValueError, AttributeError):
            return None
        return int(v[1:]) if isinstance(v, str) and re.fullmatch(r"v[0-9]{1,9}", v) else None

    def register(self, cfg, report, factor):
        """Writes the next version; returns its manifest."""
        with self._mu:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            n = (self.versions() or [0])[-1] + 1
            cfg = dict(cfg, version=f"v{n}")
            manifest = {
                "factor": factor,
                "version": n,
                "model_version": cfg["version"],
                "parent": self.served(),
                "created_at_ms": int(time.time() * 1000),
                "data": report["data"],
                "gate": report["gate"],
            }
            _write_atomic(os.path.join(self.root, f"v{n}.json"), json.dumps(cfg).encode())
            _write_atomic(os.path.join(self.root, f"v{n}.manifest.json"), json.dumps(manifest).encode())
            return manifest

    def promote(self, n):
        """Puts version n in service (the model file)."""
        if self.model_file is None:
            raise ValueError("no FACTOR_MODEL_FILE to promote into")
        with open(os.path.join(self.root, f"v{n}.json"), "rb") as f:
            data = f.read(1 << 20)
        _write_atomic(self.model_file, data)
