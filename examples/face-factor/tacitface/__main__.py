"""python -m tacitface eval --data FOLDER [--enrol K] [--seed N] [--model M] [--json FILE]
python -m tacitface calibrate --data FOLDER [--enrol K] --out MODEL"""

import argparse
import sys


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tacitface", description="Tacit's face factor")
    sub = ap.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="evaluate on a folder of <person>/<images>")
    ev.add_argument("--data", required=True, help="folder of <person>/<images> (PGM, JPEG, PNG, GIF, no extension needed)")
    ev.add_argument("--enrol", type=int, default=5, help="enrolment images per person (default 5)")
    ev.add_argument("--seed", type=int, default=1, help="seed of the calibration folds")
    ev.add_argument("--json", help="write the report as JSON here")
    ev.add_argument("--model", help="a calibration from `calibrate` on other people, instead of cross-fitting here")
    sv = sub.add_parser("serve", help="the face factor service (FACE_MODEL_FILE, TACIT_FACTOR_TOKEN_FILE)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8093)
    sv.add_argument("--log-level", default="info")
    cal = sub.add_parser("calibrate", help="fit the calibration on every person of a folder (for people elsewhere)")
    cal.add_argument("--data", required=True, help="folder of <person>/<images>")
    cal.add_argument("--enrol", type=int, default=5, help="enrolment images per person (default 5)")
    cal.add_argument("--out", required=True, help="the model file (JSON) to write")
    args = ap.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.enrol < 1:
        ap.error("--enrol must be at least 1")
    from . import evaluate

    if args.command == "eval":
        evaluate.run(args)
    else:
        evaluate.calibrate(args)
    return 0


def toolkit():
    """Makes the Python factor's service toolkit (pyfactor) importable: installed, or
    beside this package in the repository (examples/python-factor)."""
    import importlib.util
    import os

    if importlib.util.find_spec("pyfactor") is None:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        sys.path.insert(0, os.path.join(os.path.dirname(here), "python-factor"))


def serve(args):
    import logging

    import uvicorn

    toolkit()
    from .service import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # No access log: request lines carry no image, but nothing about a request is needed.
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
