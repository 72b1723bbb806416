"""python -m pyfactor [--host 127.0.0.1] [--port 8090]: serves the factor with uvicorn.
Settings come from the environment (README.md)."""

import argparse
import logging
import sys

import uvicorn

from .app import Settings, create_app
from .jobs import JobDirLocked


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m pyfactor", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(Settings())
    except JobDirLocked as e:
        print(f"pyfactor: {e}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.log_level == "debug",
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
