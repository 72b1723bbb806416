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
    cal = sub.add_parser("calibrate", help="fit the calibration on every person of a folder (for people elsewhere)")
    cal.add_argument("--data", required=True, help="folder of <person>/<images>")
    cal.add_argument("--enrol", type=int, default=5, help="enrolment images per person (default 5)")
    cal.add_argument("--out", required=True, help="the model file (JSON) to write")
    args = ap.parse_args(argv)
    if args.enrol < 1:
        ap.error("--enrol must be at least 1")
    from . import evaluate

    if args.command == "eval":
        evaluate.run(args)
    else:
        evaluate.calibrate(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
