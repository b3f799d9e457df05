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


OPERATING_FPRS = (0.01, 0.02, 0.04)  # hard-negative FPR budgets at which the report reads the ROC curve off


def operating_points(pos: np.ndarray, hardneg: np.ndarray, benign: np.ndarray | None = None,
                     budgets=OPERATING_FPRS) -> list[dict]:
    """For each budget, the lowest threshold whose FPR on the hard negatives stays within it, with the TPR and
    the ordinary-benign FPR there: the ROC curve as numbers an operator can set a profile threshold from.
    Hard negatives bind (ordinary benign prompts are far easier and would make every budget look cheap)."""
    out = []
    if len(pos) == 0 or len(hardneg) == 0:
        return out
    benign = np.zeros(0) if benign is None else benign
    for f in budgets:
        ok = [t for t in np.unique(np.concatenate([pos, hardneg])) if (hardneg >= t).mean() <= f + 1e-12]
        t = float(min(ok)) if ok else float(hardneg.max()) + 1e-6
        out.append({"fpr_budget": f, "threshold": t, "tpr": float((pos >= t).mean()), "fpr": float((hardneg >= t).mean()),
                    "fpr_benign": float((benign >= t).mean()) if len(benign) else float("nan")})
    return out
