"""`python -m tacitface eval`: the face factor on a folder of `<person>/<images>`, in the
report shape and JSON keys of `tacit-backend eval` (dataset, people, samples, skipped,
settings, seconds, results[protocol, method, level, impostors, people, eer_mean, eer_sd,
far_at_frr5, frr_at_far1, pooled_eer, per_person_eer, det, operating_points]).

Protocols:
  * enrol-K: each person enrols on their first K images (in natural file order) and is
    probed with the rest (genuine) and with the other people's probes (zero-effort
    impostors); the score of a probe is its smallest distance to the template's
    embeddings, as a calibrated LLR. Calibration is cross-fitted over two
    people-disjoint folds: the people of one fold are scored with the calibration
    fitted on the other's attempts only, and their impostors are people of their own
    fold, so every reported rate is on people the calibration never saw. The
    operating points accept an attempt when the estimated false-accept rate of its
    LLR (the calibration's impostor tail, never below its floor) is at most the
    target, as the gateway's decision does.
  * all-pairs: the distance of every pair of images (the usual face-verification
    figure; no decision, so no operating points).

Images without a usable face are counted and listed in `skipped` with the reason (a
detection failure, a refusal on quality, or not an image), never dropped silently;
rates are over the images with a face, and `skipped` says how many there were.
"""

import json
import os
import re
import sys
import time

import numpy as np

from . import calibration, images, metrics
from .embed import DetectionFailure, embed


def natural_key(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def read_folder(root, progress=None):
    """({person: [(file, embedding or None)]}, skipped lines, images read)."""
    people = sorted((d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))), key=natural_key)
    if not people:
        raise SystemExit(f"{root}: no person folders (<person>/<images>)")
    files = [(p, f) for p in people for f in sorted(os.listdir(os.path.join(root, p)), key=natural_key) if os.path.isfile(os.path.join(root, p, f))]
    out, skipped = {p: [] for p in people}, []
    for n, (p, f) in enumerate(files, 1):
        path = os.path.join(root, p, f)
        try:
            face = embed(images.read_file(path))
            out[p].append((f, face.embedding))
        except images.ImageError as e:
            skipped.append(f"{p}/{f}: {e}")
        except DetectionFailure as e:
            skipped.append(f"{p}/{f}: detection failure ({e.kind}): {e}")
            out[p].append((f, None))
        if progress:
            progress(n, len(files))
    return out, skipped, len(files)


def _distances(templates, probes):
    """[len(probes) x len(templates)] smallest distance of each probe to each template
    (a template: [k, 128])."""
    out = np.empty((len(probes), len(templates)))
    for j, t in enumerate(templates):
        out[:, j] = np.min(np.linalg.norm(probes[:, None, :] - t[None, :, :], axis=2), axis=1)
    return out


def enrol_k(faces, k, seed, fixed=None):
    """The enrol-K protocol's result row, and people skipped. fixed: a Calibration fitted
    elsewhere (another data set: people disjoint by construction), used for everyone
    instead of the two cross-fitted folds."""
    skipped, people = [], []
    for p, items in faces.items():
        tmpl = [e for _, e in items[:k] if e is not None]
        probes = [e for _, e in items[k:] if e is not None]
        if not tmpl or not probes:
            skipped.append(f"person {p}: {len(tmpl)} enrolment and {len(probes)} probe images with a face (needs 1 and 1)")
            continue
        people.append((p, np.asarray(tmpl), np.asarray(probes)))
    if len(people) < 4:
        raise SystemExit(f"enrol-{k}: {len(people)} people with enrolment and probe faces; needs at least 4")
    order = list(range(len(people)))
    np.random.default_rng(seed).shuffle(order)
    folds = [sorted(order[: len(order) // 2]), sorted(order[len(order) // 2 :])]
    if fixed is not None:
        folds = [sorted(order), []]

    def attempts(idx):
        """(genuine d, [(template person, probe person, d)] impostors) within people idx."""
        tm = [people[i][1] for i in idx]
        gen, imp = [], []
        for b, i in enumerate(idx):
            d = _distances(tm, people[i][2])
            for a, j in enumerate(idx):
                if a == b:
                    gen.extend((i, x) for x in d[:, a])
                else:
                    imp.extend((j, i, x) for x in d[:, a])
        return gen, imp

    genuine_j, impostor_j, gen_llr, imp_llr = [], [], [], []
    per_person = {}
    for f in (0, 1):
        if not folds[f]:
            continue
        if fixed is not None:
            cal = fixed
        else:
            cal_g, cal_i = attempts(folds[1 - f])
            cal = calibration.Calibration.fit([x for _, x in cal_g], [x for _, _, x in cal_i], [(a, b) for a, b, _ in cal_i])
        ev_g, ev_i = attempts(folds[f])
        for i, d in ev_g:
            l = float(cal.llr(d))
            gen_llr.append(l)
            genuine_j.append((float(cal.estimated_far(l)[0]), cal.floor))
            per_person.setdefault(i, ([], []))[0].append(l)
        for j, _, d in ev_i:
            l = float(cal.llr(d))
            imp_llr.append(l)
            impostor_j.append((float(cal.estimated_far(l)[0]), cal.floor))
            per_person.setdefault(j, ([], []))[1].append(l)
    how = f"calibration {fixed.source}" if fixed is not None else "2 people-disjoint calibration folds"
    return _row(f"enrol-{k}", f"dlib-resnet128 + calibrated LLR ({how})", "image",
                "other people's probes (zero-effort), people the calibration never saw",
                gen_llr, imp_llr, per_person, metrics.operating_points(genuine_j, impostor_j)), skipped


def calibration_of(faces, k, source):
    """A Calibration fitted on every person of `faces` with the enrol-K protocol (to
    calibrate a model for people elsewhere)."""
    people = []
    for p, items in faces.items():
        tmpl = [e for _, e in items[:k] if e is not None]
        probes = [e for _, e in items[k:] if e is not None]
        if tmpl and probes:
            people.append((p, np.asarray(tmpl), np.asarray(probes)))
    if len(people) < 4:
        raise SystemExit(f"calibration: {len(people)} people with enrolment and probe faces; needs at least 4")
    tm = [t for _, t, _ in people]
    gen, imp, pairs = [], [], []
    for b, (_, _, probes) in enumerate(people):
        d = _distances(tm, probes)
        for a in range(len(people)):
            if a == b:
                gen.extend(d[:, a])
            else:
                imp.extend(d[:, a])
                pairs.extend([(a, b)] * d.shape[0])
    cal = calibration.Calibration.fit(gen, imp, pairs)
    cal.source = source
    cal.people = len(people)
    return cal


def all_pairs(faces):
    embs, who = [], []
    for p, items in faces.items():
        for _, e in items:
            if e is not None:
                embs.append(e)
                who.append(p)
    x = np.asarray(embs)
    who = np.asarray(who)
    d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    iu = np.triu_indices(len(x), 1)
    same = who[iu[0]] == who[iu[1]]
    scores = -d[iu]
    per_person = {}
    for p in np.unique(who):
        involved = (who[iu[0]] == p) | (who[iu[1]] == p)
        per_person[p] = (scores[involved & same].tolist(), scores[involved & ~same].tolist())
    return _row("all-pairs", "dlib-resnet128 distance", "image", "every pair of images of two people",
                scores[same].tolist(), scores[~same].tolist(), per_person, [])


def _row(protocol, method, level, impostors, gen, imp, per_person, ops):
    eers = [metrics.eer(g, i) for g, i in per_person.values() if g and i]
    return {
        "protocol": protocol,
        "method": method,
        "level": level,
        "impostors": impostors,
        "people": len(eers),
        "eer_mean": float(np.mean(eers)) if eers else float("nan"),
        "eer_sd": float(np.std(eers)) if eers else float("nan"),
        "far_at_frr5": float(np.mean([metrics.far_at_frr(g, i, 0.05) for g, i in per_person.values() if g and i])),
        "frr_at_far1": float(np.mean([metrics.frr_at_far(g, i, 0.01) for g, i in per_person.values() if g and i])),
        "pooled_eer": metrics.eer(gen, imp),
        "per_person_eer": eers,
        "det": metrics.thin(metrics.det_points(gen, imp)),
        "operating_points": ops,
    }


def table(r):
    lines = [f"{r['dataset']} — {r['people']} people, {r['samples']} images ({r['seconds']:.0f} s)"]
    failures = sum(1 for s in r["skipped"] if "detection failure" in s)
    lines.append(f"  images without a usable face: {failures}; other skipped inputs: {len(r['skipped']) - failures}")
    for s in r["skipped"][:20]:
        lines.append(f"  skipped: {s}")
    for m in r["results"]:
        lines.append(
            f"{m['protocol']:<10} {m['method']}: pooled EER {m['pooled_eer']:.4f}, per-person EER "
            f"{m['eer_mean']:.4f} ± {m['eer_sd']:.4f} ({m['people']} people)"
        )
        for p in m["operating_points"]:
            lines.append(
                f"  target {p['target_far']:<6} FAR {p['far']:.4f} [{p['far_interval'][0]:.4f}, {p['far_interval'][1]:.4f}]"
                f"  FRR {p['frr']:.4f}  ({p['impostor_attempts']} impostor / {p['genuine_attempts']} genuine, {p['status']})"
            )
    return "\n".join(lines)


def run(args):
    t0 = time.time()

    tty = sys.stderr.isatty()

    def progress(n, total):
        if tty and (n == total or n % 10 == 0):
            print(f"\r  embedding images {n}/{total}", end="" if n < total else "\n", file=sys.stderr, flush=True)
        elif not tty and (n == total or n % 100 == 0):
            print(f"  embedding images {n}/{total}", file=sys.stderr, flush=True)

    faces, skipped, n_images = read_folder(args.data, progress)
    fixed = None
    if getattr(args, "model", None):
        fixed = calibration.Calibration.load(args.model)
    results = []
    row, more = enrol_k(faces, args.enrol, args.seed, fixed)
    results.append(row)
    skipped += more
    results.append(all_pairs(faces))
    report = {
        "dataset": os.path.basename(os.path.normpath(args.data)),
        "people": len(faces),
        "samples": n_images,
        "skipped": skipped,
        "settings": f"python -m tacitface eval --enrol {args.enrol} --seed {args.seed}"
        + (f" --model {os.path.basename(args.model)}" if fixed is not None else ""),
        "seconds": time.time() - t0,
        "results": results,
    }
    print(table(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    return report


def calibrate(args):
    """`python -m tacitface calibrate`: a model (the calibration, JSON) fitted on every
    person of a data set, for people elsewhere."""
    faces, skipped, n = read_folder(args.data)
    cal = calibration_of(faces, args.enrol, os.path.basename(os.path.normpath(args.data)))
    model = dict(cal.to_json(), format="tacit-face-model/1", trained_on=cal.source, people=cal.people, enrol=args.enrol)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(model, f, indent=1)
    print(f"calibrated on {cal.people} people of {cal.source} ({n} images, {len(skipped)} skipped): "
          f"LLR = {cal.a:.3f} + {cal.b:.3f} d, floor {cal.floor:.4f} -> {args.out}")
