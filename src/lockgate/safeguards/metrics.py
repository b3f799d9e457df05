"""Ranking metrics for the red-team report: AUROC, ROC points, and operating points read off the ROC."""

from __future__ import annotations

import numpy as np

__all__ = ["auroc", "roc_points", "operating_points", "OPERATING_FPRS"]


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    ranks = allv.argsort().argsort().astype(np.float64) + 1
    # average ranks for ties
    _, inv, counts = np.unique(allv, return_inverse=True, return_counts=True)
    sums = np.zeros(len(counts))
    np.add.at(sums, inv, ranks)
    ranks = (sums / counts)[inv]
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def roc_points(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    thr = np.unique(np.concatenate([pos, neg, [0.0, 1.0 + 1e-9]]))[::-1]
    tpr = np.array([(pos >= t).mean() for t in thr])
    fpr = np.array([(neg >= t).mean() for t in thr])
    return fpr, tpr


OPERATING_FPRS = (0.01, 0.02, 0.04)  # per-domain FPR budgets at which the report reads the ROC curve off


def operating_points(pos: np.ndarray, neg: np.ndarray, budgets=OPERATING_FPRS) -> list[dict]:
    """For each FPR budget, the lowest threshold whose FPR on ``neg`` stays within it, and the TPR there:
    the ROC curve as numbers an operator can set a profile threshold from."""
    out = []
    if len(pos) == 0 or len(neg) == 0:
        return out
    for f in budgets:
        ok = [t for t in np.unique(np.concatenate([pos, neg])) if (neg >= t).mean() <= f + 1e-12]
        t = float(min(ok)) if ok else float(neg.max()) + 1e-6
        out.append({"fpr_budget": f, "threshold": t, "tpr": float((pos >= t).mean()), "fpr": float((neg >= t).mean())})
    return out
