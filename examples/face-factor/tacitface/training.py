"""`POST /train` of the face factor: a new calibration from the face records the gateway
stored for its users (a person is the USER of `features/USER/...`), judged against the
calibration in service on other users, registered, and promoted when not worse.

The embedding network is dlib's and stays fixed; what is learnt from the users is the
calibration (LLR = a + b d, the impostor histogram and its floor). The people are split
people-disjoint by the seed: calibration people (at least MIN_TRAIN) and gate people (at
least MIN_GATE, `gate_share` of them). On the gate people both calibrations run the
enrol-K protocol (the first ENROL_K images of a person enrol, the rest probe, every other
gate person's probes are the impostors) and the Python factor's gate compares their
realised FAR and FRR at the operating points.
"""

import numpy as np

from pyfactor.model import gate

from . import evaluate

ENROL_K = 5
MIN_TRAIN = 4
MIN_GATE = 4


class TrainError(ValueError):
    """Users' records that cannot calibrate or judge a model."""


def _faces(by_user, users):
    """evaluate's {person: [(index, embedding)]} of these users (upload order)."""
    return {u: [(i, e) for i, e in enumerate(by_user[u])] for u in users}


def train_population(current, by_user, gate_share=0.3, seed=1):
    """(candidate model file contents, report) from {user: embeddings [n, 128] in upload
    order}; `current` is the FaceModel in service. report: "data" and "gate"."""
    users = sorted(u for u in by_user if len(by_user[u]) > ENROL_K)
    gate_n = max(MIN_GATE, round(len(users) * gate_share))
    if len(users) - gate_n < MIN_TRAIN:
        raise TrainError(
            f"{len(users)} people with more than {ENROL_K} face records: the calibration needs at least "
            f"{MIN_TRAIN} and the gate {gate_n}"
        )
    order = list(users)
    np.random.default_rng(seed).shuffle(order)
    gate_users, train_users = sorted(order[:gate_n]), sorted(order[gate_n:])
    try:
        cal = evaluate.calibration_of(_faces(by_user, train_users), ENROL_K, f"uploads of {len(train_users)} people")
        gate_faces = _faces(by_user, gate_users)
        cand, _ = evaluate.enrol_k(gate_faces, ENROL_K, seed, fixed=cal)
        cur, _ = evaluate.enrol_k(gate_faces, ENROL_K, seed, fixed=current.cal)
    except (SystemExit, ValueError) as e:
        raise TrainError(str(e)) from None
    cfg = dict(
        cal.to_json(),
        format="tacit-face-model/1",
        trained_on=cal.source,
        people=cal.people,
        enrol=ENROL_K,
    )
    report = {
        "data": {
            "people": len(users),
            "calibration_people": len(train_users),
            "gate_people": len(gate_users),
            "records": int(sum(len(by_user[u]) for u in users)),
        },
        "gate": gate(cand, cur),
    }
    return cfg, report

