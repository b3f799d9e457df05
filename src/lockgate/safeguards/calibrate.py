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
# Long texts also get their own thresholds, at least the short ones and high enough that at most LONG_BENIGN_FPR
# of the long benign calibration prompts (README, code, prose) and LONG_HARDNEG_FPR of the long hard-negative
# prose flag per domain: with the short thresholds alone, 15 % of ordinary long prose and 35 % of long hard
# negatives were flagged (evals/long_v1.jsonl, session 9), each by its one highest segment of 15-57
LONG_BENIGN_FPR = 0.01
LONG_HARDNEG_FPR = 0.03
# ... but a long-text threshold may cost the long positives (role-play-wrapped and payload-split rows, harmful
# requests after long benign text) at most this share of their recall: set by the budgets alone, the cyber one
# rose to 0.95 and held-out role-play attacks succeeded twice as often; at 0.02 a password-stealing request
# after pasted code went through (docs/safety.md, session 10)
LONG_RECALL_SLACK = 0.01
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
    if k >= len(order):  # a budget of 100 %: every one may be flagged
        return 0.0
    return float(scores_neg[order][k]) + 1e-6


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


def long_threshold(t: float, benign: np.ndarray, hardneg: np.ndarray, pos: np.ndarray, pos_w: np.ndarray, *,
                   benign_fpr: float = LONG_BENIGN_FPR, hardneg_fpr: float = LONG_HARDNEG_FPR,
                   recall_slack: float = LONG_RECALL_SLACK) -> tuple[float, dict]:
    """One domain's threshold for long texts, from full-cascade scores: at least the short threshold ``t``;
    raised to flag at most ``benign_fpr`` / ``hardneg_fpr`` of the long benign / hard-negative prompts, but
    never so far that the long positives (weights ``pos_w``) lose more than ``recall_slack`` of their recall
    at ``t``; at most 0.95. Returns it with what set it."""
    budget = max([t] + [_threshold_at_fpr(x, b) for x, b in ((benign, benign_fpr), (hardneg, hardneg_fpr)) if len(x)])
    cap = 0.95
    if len(pos):
        share = lambda th: float((pos_w * (pos >= th)).sum() / pos_w.sum())  # noqa: E731
        floor = share(t) - recall_slack
        cap = min(cap, max([t] + [float(x) for x in np.unique(pos) if x > t and share(x) >= floor]))
    return float(max(t, min(budget, cap))), {"budget": budget, "recall_cap": cap,
                                             "bound": "budget" if budget <= cap else "recall"}


def calibrate(arrays: dict, meta: dict, calib_ex: list[Example], *, long_benign: list[str] = (),
              long_prose: list[str] = (), long_hardneg: list[str] = (), long_positives: list[str] = (),
              long_positive_labels: list[frozenset[str]] = (), hardneg_fpr: float = HARDNEG_FPR,
              benign_fpr: float = BENIGN_FPR, gate_benign: float = GATE_BENIGN, gate_long: float = GATE_LONG,
              long_benign_fpr: float = LONG_BENIGN_FPR, long_hardneg_fpr: float = LONG_HARDNEG_FPR,
              long_recall_slack: float = LONG_RECALL_SLACK, int8: bool = STAGE3_INT8,
              progress: Callable[[str, int, int], None] | None = None,
              log: Callable[[str], None] = lambda m: None) -> dict:
    """Set ``meta``'s thresholds (per depth, and for long texts), gates and stage-3 mix in place; returns the
    calibration stats. ``long_benign`` / ``long_hardneg``: long benign prompts and long hard negatives
    (``longprompts.calibration_prompts``), each its own group; ``long_prose``: more long benign prompts that
    bound the long thresholds but not the gates (a gate raised for them cost long positives their second
    look, session 10). ``long_positives`` (with ``long_positive_labels``): harmful requests inside long
    benign text, which only bound how far the long thresholds may rise (``LONG_RECALL_SLACK``).
    ``hardneg_fpr`` / ``benign_fpr``: per-domain FPR budgets (per group) on the calibration split's hard
    negatives / ordinary benign prompts, which set the thresholds: the operating point.
    ``gate_benign`` / ``gate_long``: the share of ordinary benign / long benign calibration prompts per
    domain that may reach MiniLM.
    ``long_benign_fpr`` / ``long_hardneg_fpr``: per-domain FPR budgets on them for the long-text thresholds,
    which give up at most ``long_recall_slack`` of the long calibration positives' recall.
    ``int8``: stage 3's precision, stored in ``meta`` so that the run time scores as calibrated."""
    from .classifier import Classifier
    from .memo import SegmentMemo

    meta["stage3_int8"] = bool(int8)
    # role-play templates often embed harmful example requests of their own, so a "benign payload inside a
    # template" is not cleanly benign: such rows train the heads but do not set the thresholds
    kinds = np.array([("wrapped" if (ex.source == "extra:roleplay-benign" or ex.meta.get("aug") == "roleplay") and not ex.labels else ex.kind)
                      for ex in calib_ex])
    srcs = np.array([ex.source for ex in calib_ex])
    posm = np.array([[d in ex.labels for d in DOMAINS] for ex in calib_ex])
    clf = Classifier(dict(arrays), meta, memo=0)
    segs_all = [clf._segments([ex.text]) for ex in calib_ex]
    S1 = np.zeros((len(calib_ex), len(DOMAINS)))
    S2 = np.zeros_like(S1)
    for i, segs in enumerate(segs_all):
        S1[i], S2[i], _ = clf.score_segments(segs, use_stage3=False)
    segs_long = [clf._segments([t]) for t in list(long_benign) + list(long_prose)]
    for_gates = np.arange(len(segs_long)) < len(long_benign)
    segs_lhn = [clf._segments([t]) for t in long_hardneg]
    L2, H2 = (np.array([clf.score_segments(x, use_stage3=False)[1] for x in segs_]).reshape(-1, len(DOMAINS))
              for segs_ in (segs_long, segs_lhn))
    is_long = np.array([len(s) > LONG_SEGMENTS for s in segs_all], dtype=bool)
    is_long_L = np.array([len(s) > LONG_SEGMENTS for s in segs_long], dtype=bool)
    is_long_H = np.array([len(s) > LONG_SEGMENTS for s in segs_lhn], dtype=bool)

    groups = np.array([ex.group for ex in calib_ex])

    def _thr(S, j):
        pos = posm[:, j]
        hn = (kinds == "hardneg") & ~pos
        bn = (kinds == "benign") & ~pos
        t = max([0.0] + [_threshold_at_fpr(S[m, j], fpr, per_group(groups[m]))
                         for m, fpr in ((hn, hardneg_fpr), (bn, benign_fpr)) if m.any()])
        return float(np.clip(t, 0.2, 0.95))

    def rate(flag: np.ndarray, mask: np.ndarray) -> float:  # share of groups' weight flagged
        w = per_group(groups[mask])
        return float((w * flag[mask]).sum() / w.sum()) if mask.any() else 0.0

    s1_thr = {d: _thr(S1, j) for j, d in enumerate(DOMAINS)}
    s2_thr = {d: _thr(S2, j) for j, d in enumerate(DOMAINS)}
    # The gate trades recall for latency: MiniLM costs ~30 ms a segment on one core, so it may run on at most
    # gate_benign of the ordinary benign prompts per domain, even where that gives up some positives.
    bn_all = (kinds == "benign") & ~posm.any(axis=1)
    bs, bl = bn_all & ~is_long, bn_all & is_long
    gate = {d: stage3_gate(S2[posm[:, j] & ~is_long, j], S2[bs, j], per_group(groups[bs]), s2_thr[d], gate_benign)
            for j, d in enumerate(DOMAINS)}
    gate_l = {d: stage3_gate(S2[posm[:, j] & is_long, j], S2[bl, j], per_group(groups[bl]), s2_thr[d], gate_benign,
                             L2[is_long_L & for_gates, j], gate_long) for j, d in enumerate(DOMAINS)}

    def gated(S2_, long_, g, gl):  # which texts reach MiniLM under gates g (short texts) and gl (long ones)
        return (S2_ >= np.where(long_[:, None], [gl[d] for d in DOMAINS], [g[d] for d in DOMAINS])).any(axis=1)

    for j, d in enumerate(DOMAINS):
        for name, short_or_long, g in (("short", ~is_long, gate[d]), ("long", is_long, gate_l[d])):
            log(f"[{d}] stage-3 gate ({name} texts) {g:.3f}: keeps {rate(S2[:, j] >= g, posm[:, j] & short_or_long):.3f} of "
                f"those calibration positives, sends {rate(S2[:, j] >= g, bn_all & short_or_long):.3f} of that ordinary benign"
                + (f" and {float((L2[is_long_L & for_gates, j] >= g).mean()) if (is_long_L & for_gates).any() else 0.0:.3f} of long benign prompts"
                   if name == "long" else "") + " to MiniLM")
    meta["gate_thresholds"], meta["gate_thresholds_long"], meta["long_segments"] = gate, gate_l, LONG_SEGMENTS
    meta["screen_thresholds"] = gate  # older name, read by `lockgate safety train`'s summary
    # stage 3 runs on a long text's segments ranked against the no-MiniLM thresholds, so the full-cascade scores
    # below must see this calibration's, not those ``meta`` came with (``train``'s placeholders, or the previous
    # calibration's in ``--calibrate-only``): the two paths gave different long chem thresholds (session 13)
    meta["s1_thresholds"], meta["s2_thresholds"] = s1_thr, s2_thr
    clf = Classifier(dict(arrays), meta, memo=0)
    # below its gate a text is never flagged (the run time reports thresholds it cannot reach), so its decision
    # score here is 0; above it, its full-cascade score
    on = gated(S2, is_long, gate, gate_l)[:, None]
    on_L, on_H = gated(L2, is_long_L, gate, gate_l)[:, None], gated(H2, is_long_H, gate, gate_l)[:, None]
    clf.memo["stage3"] = SegmentMemo(None)  # the mixes below see the same segments: run MiniLM once on each
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
        S = S * on
        t = {d: max(_thr(S, j), gate[d]) for j, d in enumerate(DOMAINS)}
        flag = (S >= np.array([t[d] for d in DOMAINS])).any(axis=1)
        tpr, fhn, fbn = rate(flag, haspos), rate(flag, hn_any), rate(flag, bn_any)
        log(f"mix {mix}: calibration TPR {tpr:.3f}, any-domain FPR hard-neg {fhn:.3f} benign {fbn:.4f} (per group)")
        # per-domain budgets fix each domain's FPR; across domains they can add up, so a mix must also keep
        # the any-domain rates near the budgets' sum to be chosen. The mix is chosen before the long prompts
        # raise the long thresholds: they would otherwise trade short texts' recall for long texts' (session 10)
        fits = fhn <= 2.2 * hardneg_fpr and fbn <= 2.2 * benign_fpr
        if best is None or (fits, tpr) > best[0]:
            best = ((fits, tpr), mix, S, t)
    _, MIX3, S3, thr = best
    # the long prompts, at the chosen mix; harmful requests inside long benign text (long_positives) bound how
    # far the long thresholds may rise, and nothing else
    clf.mix3 = np.array(MIX3, dtype=np.float32)
    full = lambda segs_: np.array([clf.score_segments(x)[2] for x in segs_]).reshape(-1, len(DOMAINS))  # noqa: E731
    SL, SH = full(segs_long) * on_L, full(segs_lhn) * on_H
    segs_w = [clf._segments([t]) for t in long_positives]
    W2 = np.array([clf.score_segments(x, use_stage3=False)[1] for x in segs_w]).reshape(-1, len(DOMAINS))
    is_long_W = np.array([len(x) > LONG_SEGMENTS for x in segs_w], dtype=bool)
    W3 = full(segs_w) * gated(W2, is_long_W, gate, gate_l)[:, None]
    labels_w = np.array([[d in lab for d in DOMAINS] for lab in long_positive_labels], dtype=bool).reshape(-1, len(DOMAINS))
    thr_l, long_log = {}, {}
    for j, d in enumerate(DOMAINS):
        pos_l, pos_w = posm[:, j] & is_long, labels_w[:, j] & is_long_W
        # every long calibration row and every wrapped request weighs the same
        scores_l = np.concatenate([S3[pos_l, j], W3[pos_w, j]])
        weights_l = np.concatenate([per_group(groups[pos_l]), np.ones(int(pos_w.sum()))]) if len(scores_l) else np.ones(0)
        thr_l[d], long_log[d] = long_threshold(thr[d], SL[is_long_L, j], SH[is_long_H, j], scores_l,
                                               weights_l, benign_fpr=long_benign_fpr,
                                               hardneg_fpr=long_hardneg_fpr, recall_slack=long_recall_slack)
    at = lambda long_: np.where(long_[:, None], [thr_l[d] for d in DOMAINS], [thr[d] for d in DOMAINS])  # noqa: E731
    flag3 = (S3 >= at(is_long)).any(axis=1)
    flong, flong_hn = (float((X >= at(lg)).any(axis=1).mean()) if len(X) else 0.0
                       for X, lg in ((SL, is_long_L), (SH, is_long_H)))
    meta["mix3"] = list(MIX3)
    log(f"stage-3 mix chosen on the calibration split: {MIX3}")
    # Lossless gate: on a stage-3 segment the score is a1*p1 + a2*p2 + a3*p3 <= c * s2 + a3 with
    # c = max(a1 / (1 - w), a2 / w), so a text whose stage-2 score stays below (thr - a3) / c cannot reach
    # the threshold even if MiniLM said 1.0. Raising the gate to that bound changes no decision (only the
    # reported score of texts that stay far below threshold) and keeps MiniLM off most traffic.
    c_bound = max(MIX3[0] / (1 - MIX_W2), MIX3[1] / MIX_W2)
    gate = {d: float(max(gate[d], (thr[d] - MIX3[2]) / c_bound - 1e-4)) for d in DOMAINS}
    gate_l = {d: float(max(gate_l[d], (thr_l[d] - MIX3[2]) / c_bound - 1e-4)) for d in DOMAINS}
    meta["gate_thresholds"], meta["gate_thresholds_long"] = gate, gate_l
    meta["screen_thresholds"] = gate
    log(f"gates after the lossless raise: short texts {json.dumps(gate)}, long texts {json.dumps(gate_l)}")
    on_s, on_l = gated(S2, is_long, gate, gate_l), gated(L2, is_long_L, gate, gate_l)
    stats = {}
    for j, d in enumerate(DOMAINS):
        pos = posm[:, j]
        hn = (kinds == "hardneg") & ~pos
        bn = (kinds == "benign") & ~pos
        hit = S3[:, j] >= np.where(is_long, thr_l[d], thr[d])
        stats[d] = {
            "positives": int(pos.sum()),
            "positives_long": int((pos & is_long).sum()),
            "calib_tpr": rate(hit, pos),
            "calib_tpr_long": rate(hit, pos & is_long),
            "calib_tpr_long_at_short_threshold": rate(S3[:, j] >= thr[d], pos & is_long),
            "wrapped_requests": int(labels_w[:, j].sum()),
            "wrapped_tpr_at_short_threshold": float((W3[labels_w[:, j], j] >= thr[d]).mean()) if labels_w[:, j].any() else None,
            "wrapped_tpr": float((W3[labels_w[:, j], j] >= np.where(is_long_W, thr_l[d], thr[d])[labels_w[:, j]]).mean())
            if labels_w[:, j].any() else None,
            "long_threshold": {"set_by": long_log[d]["bound"], "fpr_budgets_want": long_log[d]["budget"],
                               "recall_slack_allows": long_log[d]["recall_cap"]},
            "calib_fpr_hardneg": rate(hit, hn),
            "calib_fpr_benign": rate(hit, bn),
            "calib_tpr_without_minilm": rate(S2[:, j] >= s2_thr[d], pos),
            "calib_tpr_ngrams_only": rate(S1[:, j] >= s1_thr[d], pos),
        }
        for sname in sorted(set(srcs[pos])):
            msk = pos & (srcs == sname)
            log(f"    [{d}] calib tpr {sname}: {rate(hit, msk):.3f} (n={int(msk.sum())})")
        log(f"[{d}] threshold {thr[d]:.3f}, long texts {thr_l[d]:.3f} (no MiniLM {s2_thr[d]:.3f}, n-grams only "
            f"{s1_thr[d]:.3f}) gate {gate[d]:.3f} calib {json.dumps(stats[d])}")
    stats["overall"] = {
        "calib_tpr": rate(flag3, haspos),
        "calib_tpr_long": rate(flag3, haspos & is_long),
        "calib_fpr_hardneg": rate(flag3, hn_any),
        "calib_fpr_benign": rate(flag3, bn_any),
        "stage3_rate_benign": rate(on_s, bn_any),
        "stage3_rate_hardneg": rate(on_s, hn_any),
        "long_benign_prompts": len(segs_long),
        "long_hardneg_prompts": len(long_hardneg),
        "long_fpr": flong,
        "long_fpr_hardneg": flong_hn,
        "stage3_rate_long": float(on_l.mean()) if len(on_l) else 0.0,
        "rates": "per group: every phrase group or behaviour weighs the same, however many framings it has",
    }
    log(f"calibration split overall: {json.dumps(stats['overall'])}")

    meta.update({"thresholds": thr, "thresholds_long": thr_l})
    return stats
