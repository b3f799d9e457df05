"""Thresholds, stage-3 gates and the stage-3 mix, set on the calibration split through the run-time scoring
path (``Classifier.score_segments``). ``train`` ends with this; ``lockgate safety train --calibrate-only``
runs it alone on an existing artefact (same weights and constants -> the same result, in minutes instead of
the fine-tune's hour)."""

from __future__ import annotations

import json
from typing import Callable

import numpy as np

from .examples import DOMAINS, Example

HARDNEG_FPR = 0.03  # per-domain FPR budgets on the calibration split used to set the default thresholds
BENIGN_FPR = 0.005
MIX_W2 = 0.3  # weight of the static-embedding MLP in a segment's score (calibration split: 0.3 beat 0, 0.5, 0.7)
# (n-gram, static MLP, tuned MiniLM) weights on stage-3 segments: the one of these with the highest TPR on
# the calibration split at the FPR budgets is shipped (`train` logs each)
MIX3_CANDIDATES = ((0.5, 0.25, 0.25), (0.4, 0.2, 0.4), (0.3, 0.15, 0.55), (0.2, 0.1, 0.7), (0.1, 0.05, 0.85))
GATE_RECALL = 0.99  # stage-3 gate: keep this share of calibration positives' stage-2 scores at or above it ...
GATE_BENIGN = 0.10  # ... unless that sends more than this share of ordinary benign prompts to MiniLM (per domain)
# Texts of more than LONG_SEGMENTS segments get their own gates, set on the long calibration rows and the long
# benign calibration prompts (``longprompts.calibration_prompts``), of which at most GATE_LONG per domain may
# reach MiniLM: a ~512-token text is the max over 15-57 segments, so gates set on short prompts sent 56 % of
# ordinary long prompts to MiniLM, and one gate raised for long texts cost short prompts their second look
# (docs/safety.md, session 9)
LONG_SEGMENTS = 8
GATE_LONG = 0.10
# per-domain FPR budget for the long benign calibration prompts when setting thresholds (None: not used)
LONG_FPR: float | None = None
# stage 3 in dynamic int8: about twice as fast, thresholds set at the same precision; off by default because
# on the shipped weights it flagged 5 instead of 2 of 200 ordinary long prompts (docs/safety.md, session 8)
STAGE3_INT8 = False


def _threshold_at_fpr(scores_neg: np.ndarray, fpr: float, weights: np.ndarray | None = None) -> float:
    """The lowest threshold that flags at most `fpr` of the negatives (by weight, when given)."""
    if len(scores_neg) == 0:
        return 0.5
    w = np.ones(len(scores_neg)) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(-scores_neg, kind="stable")
    share = np.cumsum(w[order]) / w.sum()  # weight at or above each score, highest first
    k = int(np.searchsorted(share, fpr + 1e-12, side="right"))  # the first score that must not be flagged
    return float(scores_neg[order][min(k, len(order) - 1)]) + 1e-6


def per_group(groups: np.ndarray) -> np.ndarray:
    """Weights that give every group (a phrase with all its framings, a behaviour) the same total: a rate
    over them counts distinct requests, as the held-out sets do, instead of letting a phrase that comes in
    ten framings count ten times."""
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def stage3_gate(pos: np.ndarray, benign: np.ndarray, benign_w: np.ndarray, cap: float, gate_benign: float,
                long: np.ndarray | None = None, gate_long: float = GATE_LONG) -> float:
    """One domain's stage-3 gate on stage-2 scores: low enough to keep GATE_RECALL of the positives, but
    high enough that at most ``gate_benign`` of the ordinary benign prompts (by weight) and at most
    ``gate_long`` of the long benign prompts pass it; never above ``cap`` (the no-MiniLM threshold, past
    which stage 2 alone would flag)."""
    floor = _threshold_at_fpr(benign, gate_benign, benign_w) if len(benign) else 0.0
    if long is not None and len(long):
        floor = max(floor, _threshold_at_fpr(long, gate_long))
    keep = float(np.quantile(pos, 1 - GATE_RECALL)) if len(pos) else 0.0
    return float(min(max(keep, floor), cap))


def calibrate(arrays: dict, meta: dict, calib_ex: list[Example], *, long_benign: list[str] = (),
              gate_benign: float = GATE_BENIGN, gate_long: float = GATE_LONG, long_fpr: float | None = LONG_FPR,
              int8: bool = STAGE3_INT8, progress: Callable[[str, int, int], None] | None = None,
              log: Callable[[str], None] = lambda m: None) -> dict:
    """Set ``meta``'s thresholds (per depth), gates and stage-3 mix in place; returns the calibration stats.
    ``long_benign``: ~512-token benign prompts (``longprompts.calibration_prompts``), each its own group.
    ``gate_benign`` / ``gate_long``: the share of ordinary benign / long benign calibration prompts per
    domain that may reach MiniLM. ``long_fpr``: a per-domain FPR budget on the long prompts for the
    thresholds (None: they bound only the gates).
    ``int8``: stage 3's precision, stored in ``meta`` so that the run time scores as calibrated."""
    from .classifier import Classifier

    meta["stage3_int8"] = bool(int8)
    # role-play templates often embed harmful example requests of their own, so a "benign payload inside a
    # template" is not cleanly benign: such rows train the heads but do not set the thresholds
    kinds = np.array([("wrapped" if (ex.source == "extra:roleplay-benign" or ex.meta.get("aug") == "roleplay") and not ex.labels else ex.kind)
                      for ex in calib_ex])
    srcs = np.array([ex.source for ex in calib_ex])
    posm = np.array([[d in ex.labels for d in DOMAINS] for ex in calib_ex])
    clf = Classifier(dict(arrays), meta)
    segs_all = [clf._segments([ex.text]) for ex in calib_ex]
    S1 = np.zeros((len(calib_ex), len(DOMAINS)))
    S2 = np.zeros_like(S1)
    for i, segs in enumerate(segs_all):
        S1[i], S2[i], _ = clf.score_segments(segs, use_stage3=False)
    segs_long = [clf._segments([t]) for t in long_benign]
    L2 = np.array([clf.score_segments(segs, use_stage3=False)[1] for segs in segs_long]).reshape(-1, len(DOMAINS))
    is_long = np.array([len(s) > LONG_SEGMENTS for s in segs_all], dtype=bool)
    is_long_L = np.array([len(s) > LONG_SEGMENTS for s in segs_long], dtype=bool)

    groups = np.array([ex.group for ex in calib_ex])

    def _thr(S, j, SL=None):
        pos = posm[:, j]
        hn = (kinds == "hardneg") & ~pos
        bn = (kinds == "benign") & ~pos
        t = max(_threshold_at_fpr(S[hn, j], HARDNEG_FPR, per_group(groups[hn])),
                _threshold_at_fpr(S[bn, j], BENIGN_FPR, per_group(groups[bn])))
        if long_fpr is not None and SL is not None and len(SL):
            t = max(t, _threshold_at_fpr(SL[:, j], long_fpr))
        return float(np.clip(t, 0.2, 0.95))

    def rate(flag: np.ndarray, mask: np.ndarray) -> float:  # share of groups' weight flagged
        w = per_group(groups[mask])
        return float((w * flag[mask]).sum() / w.sum()) if mask.any() else 0.0

    s1_thr = {d: _thr(S1, j) for j, d in enumerate(DOMAINS)}
    s2_thr = {d: _thr(S2, j, L2) for j, d in enumerate(DOMAINS)}
    # The gate trades recall for latency: MiniLM costs ~30 ms a segment on one core, so it may run on at most
    # gate_benign of the ordinary benign prompts per domain, even where that gives up some positives.
    bn_all = (kinds == "benign") & ~posm.any(axis=1)
    bs, bl = bn_all & ~is_long, bn_all & is_long
    gate = {d: stage3_gate(S2[posm[:, j] & ~is_long, j], S2[bs, j], per_group(groups[bs]), s2_thr[d], gate_benign)
            for j, d in enumerate(DOMAINS)}
    gate_l = {d: stage3_gate(S2[posm[:, j] & is_long, j], S2[bl, j], per_group(groups[bl]), s2_thr[d], gate_benign,
                             L2[is_long_L, j], gate_long) for j, d in enumerate(DOMAINS)}

    def gated(S2_, long_, g, gl):  # which texts reach MiniLM under gates g (short texts) and gl (long ones)
        return (S2_ >= np.where(long_[:, None], [gl[d] for d in DOMAINS], [g[d] for d in DOMAINS])).any(axis=1)

    for j, d in enumerate(DOMAINS):
        for name, short_or_long, g in (("short", ~is_long, gate[d]), ("long", is_long, gate_l[d])):
            log(f"[{d}] stage-3 gate ({name} texts) {g:.3f}: keeps {rate(S2[:, j] >= g, posm[:, j] & short_or_long):.3f} of "
                f"those calibration positives, sends {rate(S2[:, j] >= g, bn_all & short_or_long):.3f} of that ordinary benign"
                + (f" and {float((L2[is_long_L, j] >= g).mean()) if is_long_L.any() else 0.0:.3f} of long benign prompts"
                   if name == "long" else "") + " to MiniLM")
    meta["gate_thresholds"], meta["gate_thresholds_long"], meta["long_segments"] = gate, gate_l, LONG_SEGMENTS
    meta["screen_thresholds"] = gate  # older name, read by `lockgate safety train`'s summary
    clf = Classifier(dict(arrays), meta)
    # below its gate a text is never flagged (the run time reports thresholds it cannot reach), so its decision
    # score here is 0; above it, its full-cascade score
    on = gated(S2, is_long, gate, gate_l)[:, None]
    on_L = gated(L2, is_long_L, gate, gate_l)[:, None]
    tuned_logits, memo = clf.stage3_logits, {}

    def stage3_once(segs: list[str]) -> np.ndarray:  # the mixes below see the same segments: tune once
        missing = [x for x in dict.fromkeys(segs) if x not in memo]
        if missing:
            memo.update(zip(missing, tuned_logits(missing)))
        return np.stack([memo[x] for x in segs])

    clf.stage3_logits = stage3_once
    haspos = posm.any(axis=1)
    hn_any, bn_any = (kinds == "hardneg") & ~haspos, (kinds == "benign") & ~haspos
    best = None
    for mix in MIX3_CANDIDATES:
        clf.mix3 = np.array(mix, dtype=np.float32)
        S = np.zeros_like(S1)
        for i, segs in enumerate(segs_all):
            S[i] = clf.score_segments(segs)[2]
            if progress and (i % 200 == 0 or i == len(calib_ex) - 1):
                progress(f"calibration split (full cascade, mix {mix})", i + 1, len(calib_ex))
        SL = np.array([clf.score_segments(segs)[2] for segs in segs_long]).reshape(-1, len(DOMAINS))
        S, SL = S * on, SL * on_L
        t = {d: max(_thr(S, j, SL), gate[d]) for j, d in enumerate(DOMAINS)}
        flag = (S >= np.array([t[d] for d in DOMAINS])).any(axis=1)
        tpr, fhn, fbn = rate(flag, haspos), rate(flag, hn_any), rate(flag, bn_any)
        flong = float((SL >= np.array([t[d] for d in DOMAINS])).any(axis=1).mean()) if len(SL) else 0.0
        log(f"mix {mix}: calibration TPR {tpr:.3f}, any-domain FPR hard-neg {fhn:.3f} benign {fbn:.4f} (per group), "
            f"long benign {flong:.3f} (of {len(SL)})")
        # per-domain budgets fix each domain's FPR; across domains they can add up, so a mix must also keep
        # the any-domain rates near the budgets' sum to be chosen
        fits = fhn <= 2.2 * HARDNEG_FPR and fbn <= 2.2 * BENIGN_FPR
        if best is None or (fits, tpr) > best[0]:
            best = ((fits, tpr), mix, S, t, flong)
    _, MIX3, S3, thr, flong = best
    meta["mix3"] = list(MIX3)
    log(f"stage-3 mix chosen on the calibration split: {MIX3}")
    # Lossless gate: on a stage-3 segment the score is a1*p1 + a2*p2 + a3*p3 <= c * s2 + a3 with
    # c = max(a1 / (1 - w), a2 / w), so a text whose stage-2 score stays below (thr - a3) / c cannot reach
    # the threshold even if MiniLM said 1.0. Raising the gate to that bound changes no decision (only the
    # reported score of texts that stay far below threshold) and keeps MiniLM off most traffic.
    c_bound = max(MIX3[0] / (1 - MIX_W2), MIX3[1] / MIX_W2)
    gate = {d: float(max(gate[d], (thr[d] - MIX3[2]) / c_bound - 1e-4)) for d in DOMAINS}
    gate_l = {d: float(max(gate_l[d], (thr[d] - MIX3[2]) / c_bound - 1e-4)) for d in DOMAINS}
    meta["gate_thresholds"], meta["gate_thresholds_long"] = gate, gate_l
    meta["screen_thresholds"] = gate
    log(f"gates after the lossless raise: short texts {json.dumps(gate)}, long texts {json.dumps(gate_l)}")
    on_s, on_l = gated(S2, is_long, gate, gate_l), gated(L2, is_long_L, gate, gate_l)
    stats = {}
    for j, d in enumerate(DOMAINS):
        pos = posm[:, j]
        hn = (kinds == "hardneg") & ~pos
        bn = (kinds == "benign") & ~pos
        stats[d] = {
            "positives": int(pos.sum()),
            "calib_tpr": rate(S3[:, j] >= thr[d], pos),
            "calib_fpr_hardneg": rate(S3[:, j] >= thr[d], hn),
            "calib_fpr_benign": rate(S3[:, j] >= thr[d], bn),
            "calib_tpr_without_minilm": rate(S2[:, j] >= s2_thr[d], pos),
            "calib_tpr_ngrams_only": rate(S1[:, j] >= s1_thr[d], pos),
        }
        for sname in sorted(set(srcs[pos])):
            msk = pos & (srcs == sname)
            log(f"    [{d}] calib tpr {sname}: {rate(S3[:, j] >= thr[d], msk):.3f} (n={int(msk.sum())})")
        log(f"[{d}] threshold {thr[d]:.3f} (no MiniLM {s2_thr[d]:.3f}, n-grams only {s1_thr[d]:.3f}) gate {gate[d]:.3f} calib {json.dumps(stats[d])}")
    anyflag = (S3 >= np.array([thr[d] for d in DOMAINS])).any(axis=1)
    stats["overall"] = {
        "calib_tpr": rate(anyflag, haspos),
        "calib_fpr_hardneg": rate(anyflag, hn_any),
        "calib_fpr_benign": rate(anyflag, bn_any),
        "stage3_rate_benign": rate(on_s, bn_any),
        "stage3_rate_hardneg": rate(on_s, hn_any),
        "long_benign_prompts": len(long_benign),
        "long_fpr": flong,
        "stage3_rate_long": float(on_l.mean()) if len(on_l) else 0.0,
        "rates": "per group: every phrase group or behaviour weighs the same, however many framings it has",
    }
    log(f"calibration split overall: {json.dumps(stats['overall'])}")

    meta.update({"thresholds": thr, "s2_thresholds": s2_thr, "s1_thresholds": s1_thr})
    return stats
