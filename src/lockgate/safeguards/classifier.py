"""Cyber / bio / chem intent classifier: a cheap pair of heads on every segment, MiniLM only when unsure.

Stage 1 (always): hashed character 3-5-grams + word uni/bi-grams -> one logistic head
per domain.

Stage 2 (always, when ``tokenizers`` is importable): static token embeddings distilled
from all-MiniLM-L6-v2 (model2vec-style; the table ships in the artefact, see
``static.py``), mean-pooled per segment -> a small MLP with one output per domain.

Both run on every segment of every normalised form (whole text, sentences, 64-word
windows); a segment's score is ``(1 - mix_w2) * p1 + mix_w2 * p2`` and the text's score
is the max over segments. That costs ~1-3 ms for a 512-token prompt on one core.

Stage 3 (only when some domain's stage-2 score reaches its *gate*, i.e. the text is
not clearly benign; texts of more than ``long_segments`` segments have gates of their own,
since their score is a max over many more segments): all-MiniLM-L6-v2 with its top layers fine-tuned (``finetune.py``)
on the (at most ``max_stage3_segments``) most suspicious segments, mean-pooled, one
linear output per domain; those segments' score becomes ``mix3 . (p1, p2, p3)``.
MiniLM is loaded lazily.

Thresholds come from the artefact (set on a calibration split that the shipped heads
never trained on), one set per available depth (``thresholds`` for the full cascade,
``s2_thresholds`` without MiniLM, ``s1_thresholds`` with n-grams only); profiles may
override them.
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

from .examples import DOMAINS
from .features import hash_features_many, segments
from .finetune import KEY as TUNED_KEY
from .memo import SegmentMemo, memo_size
from .normalise import normalise_forms

__all__ = ["Classifier", "Verdict", "ARTEFACT_NAME", "default_artefact_path", "read_artefact"]

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
    stage: int = 1  # deepest stage that ran: 1 = n-grams only, 2 = + static-embedding MLP, 3 = + MiniLM


def read_artefact(path: str | Path | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """An artefact's arrays and its JSON metadata (default: the shipped one)."""
    with np.load(Path(path) if path else default_artefact_path(), allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "meta"}, json.loads(bytes(z["meta"]).decode("utf-8"))


_BLAS_LIMIT = None


def _limit_blas_threads() -> None:
    """Stage 2's matrices have tens of rows: spread over several BLAS threads they only contend with the
    server's other work (p50 of a 512-token prompt 25-36 ms instead of 15 on a busy 2-core machine). So the
    run time keeps BLAS to ``safety_threads()`` threads (default 1), as it does torch; a server scales by
    concurrent requests instead. Process-wide, once, at the first ``Classifier.load``."""
    global _BLAS_LIMIT
    if _BLAS_LIMIT is None:
        from threadpoolctl import threadpool_limits

        from .embed import safety_threads

        _BLAS_LIMIT = threadpool_limits(limits=safety_threads(), user_api="blas")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


class Classifier:
    """Load with :meth:`load`; ``classify`` / ``classify_conversation`` are thread-safe."""

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], *, stage2: bool = True, stage3: bool = True,
                 memo: int | None = None) -> None:
        self.meta = meta
        self.domains: tuple[str, ...] = tuple(meta.get("domains", DOMAINS))
        self.bits = int(meta["bits"])
        self.s1_w = np.ascontiguousarray(arrays["s1_w"].astype(np.float32))  # (2**bits, D)
        self.s1_b = arrays["s1_b"].astype(np.float32)
        dthr = lambda key: {d: float(meta[key][d]) for d in self.domains}  # noqa: E731
        self.thresholds: dict[str, float] = dthr("thresholds")
        self.s1_thresholds: dict[str, float] = dthr("s1_thresholds")
        self.s2_thresholds: dict[str, float] = dthr("s2_thresholds") if "s2_thresholds" in meta else dict(self.thresholds)
        self._s2_thr_arr = np.array([max(self.s2_thresholds[d], 1e-3) for d in self.domains], dtype=np.float32)
        # stage-3 gate per domain (``screen`` kept as the attribute name older callers/reports use); texts with more
        # than ``long_segments`` segments have their own gate: their score is a max over many more segments
        gates = lambda key: np.array([float(meta.get(key, {}).get(d, 2.0)) for d in self.domains], dtype=np.float32)  # noqa: E731
        self.screen = gates("gate_thresholds")
        self.long_segments = int(meta.get("long_segments") or 0)  # 0: one gate for every length
        self.screen_long = gates("gate_thresholds_long") if self.long_segments else self.screen
        # and thresholds of their own (full cascade), set on long benign prompts; older artefacts: the short ones
        self.thresholds_long: dict[str, float] = (
            dthr("thresholds_long") if self.long_segments and "thresholds_long" in meta else dict(self.thresholds))
        # a text below its gate is judged by stage 2 alone: calibrated gates stay below the no-MiniLM thresholds,
        # so it is not flagged, and its verdict reports thresholds it cannot reach (profiles that keep the defaults
        # agree); should a gate exceed the no-MiniLM threshold, what stage 2 alone would flag is still flagged
        below = lambda g, thr: {d: max(thr[d], min(float(g[j]), self.s2_thresholds[d]))  # noqa: E731
                                for j, d in enumerate(self.domains)}
        self._below_gate_thr = below(self.screen, self.thresholds)
        self._below_gate_thr_long = below(self.screen_long, self.thresholds_long)
        self.mix_w2 = float(meta.get("mix_w2", 0.3))
        self.mix3 = np.array(meta.get("mix3", [0.5, 0.25, 0.25]), dtype=np.float32)
        self.max_stage3_segments = int(meta.get("max_stage3_segments", 2))
        self.window_words = int(meta.get("window_words", 64))
        self.window_stride = int(meta.get("window_stride", 32))
        self._stage2_wanted = stage2 and "st_q" in arrays
        self._stage2_failed: str | None = None
        if self._stage2_wanted:
            from .static import StaticEmbedder, dequantise

            self._static = StaticEmbedder(dequantise(arrays["st_q"], arrays["st_scale"]))
            self.m_w1 = np.ascontiguousarray(arrays["m_w1"].astype(np.float32))  # (dim, H)
            self.m_b1 = arrays["m_b1"].astype(np.float32)
            self.m_w2 = np.ascontiguousarray(arrays["m_w2"].astype(np.float32))  # (H, D)
            self.m_b2 = arrays["m_b2"].astype(np.float32)
        else:
            self._static = None
        self._tuned = {k: v for k, v in arrays.items() if k.startswith(TUNED_KEY)}  # stage 3's tuned layers + head
        self._stage3_wanted = self._stage2_wanted and stage3 and bool(self._tuned)
        self._stage3_failed: str | None = None
        self._embedder = None
        self._emb_lock = threading.Lock()
        # segments remembered per stage (``memo.py``; default ``LOCKGATE_SAFETY_MEMO``, 0 = off)
        size = memo_size() if memo is None else memo
        self.memo = {stage: SegmentMemo(size) for stage in ("stage1", "stage2", "stage3")}

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path | None = None, *, stage2: bool = True, preload: bool = False, stage3: bool = True,
             memo: int | None = None) -> "Classifier":
        """Load the shipped artefact (or ``path``). MiniLM (stage 3) loads on first need unless ``preload``.
        ``memo``: segments remembered per stage (default ``LOCKGATE_SAFETY_MEMO``; 0 judges every text cold)."""
        _limit_blas_threads()
        arrays, meta = read_artefact(path)
        clf = cls(arrays, meta, stage2=stage2, stage3=stage3, memo=memo)
        if preload and clf.stage2_available:
            try:
                clf._static.tokenizer  # noqa: B018 - warm the tokenizer
            except ImportError as exc:
                clf._disable_stage2(exc)
        if preload and clf.stage2_available:
            from .spelling import warm

            warm()
        if preload and clf.stage3_available:
            try:
                clf._get_embedder()
            except ImportError as exc:
                clf._disable_stage3(exc)
        return clf

    def _disable_stage2(self, exc: Exception) -> None:
        self._stage2_failed = repr(exc)
        log.warning("safety stage 2 unavailable (%s); using stage-1 thresholds", exc)

    def _disable_stage3(self, exc: Exception) -> None:
        self._stage3_failed = repr(exc)
        log.warning("safety stage 3 (MiniLM) unavailable (%s); using stage-2 thresholds", exc)

    def _get_embedder(self):
        """Stage 3's encoder (MiniLM with the artefact's tuned top layers), built on first need."""
        if self._embedder is None:
            with self._emb_lock:
                if self._embedder is None:
                    from .embed import get_minilm
                    from .finetune import Stage3

                    self._embedder = Stage3(get_minilm(), self._tuned, int8=bool(self.meta.get("stage3_int8", False)))
        return self._embedder

    @property
    def stage2_available(self) -> bool:
        return self._stage2_wanted and self._stage2_failed is None

    @property
    def stage3_available(self) -> bool:
        return self._stage3_wanted and self._stage3_failed is None and self.stage2_available

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
        seg, idx, val = hash_features_many(segs, self.bits)
        contrib = self.s1_w[idx] * val[:, None]
        out = np.empty((len(segs), len(self.domains)), dtype=np.float32)
        for j in range(len(self.domains)):
            out[:, j] = np.bincount(seg, weights=contrib[:, j], minlength=len(segs))
        return out + self.s1_b

    def stage2_logits(self, segs: list[str]) -> np.ndarray:
        e = self._static.encode(segs)
        h = np.maximum(e @ self.m_w1 + self.m_b1, 0.0)
        return h @ self.m_w2 + self.m_b2

    def segment_probs(self, segs: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """(stage-1 probabilities, stage-2 probabilities or None), each (n_segments, n_domains)."""
        p1 = _sigmoid(self.memo["stage1"].rows(segs, self.stage1_logits))
        if not self.stage2_available:
            return p1, None
        try:
            return p1, _sigmoid(self.memo["stage2"].rows(segs, self.stage2_logits))
        except ImportError as exc:  # tokenizers missing: degrade to stage 1
            self._disable_stage2(exc)
            return p1, None

    def stage3_logits(self, segs: list[str]) -> np.ndarray:
        return self.memo["stage3"].rows(segs, self._get_embedder().logits)

    def is_long(self, n_segments: int) -> bool:
        return bool(self.long_segments) and n_segments > self.long_segments

    def gate(self, n_segments: int) -> np.ndarray:
        """The stage-3 gates for a text of ``n_segments`` segments."""
        return self.screen_long if self.is_long(n_segments) else self.screen

    def score_segments(self, segs: list[str], *, use_stage3: bool = True) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Per-domain text scores at each depth: (stage 1 only, stages 1+2, full cascade); None where unavailable."""
        p1, p2 = self.segment_probs(segs)
        s1 = p1.max(axis=0)
        if p2 is None:
            return s1, None, None
        mix2 = self.mix_w2 * p2 + (1.0 - self.mix_w2) * p1
        s2 = mix2.max(axis=0)
        if not (use_stage3 and self.stage3_available):
            return s1, s2, None
        if not (s2 >= self.gate(len(segs))).any():
            return s1, s2, s2  # clearly benign: the cascade stops here
        # most suspicious segments first, relative to the no-MiniLM thresholds (independent of the gate)
        ratio = (mix2 / self._s2_thr_arr).max(axis=1)
        top = np.argsort(-ratio, kind="stable")[: self.max_stage3_segments]
        try:
            p3 = _sigmoid(self.stage3_logits([segs[i] for i in top]))
        except ImportError as exc:  # torch / transformers missing
            self._disable_stage3(exc)
            return s1, s2, None
        full = mix2.copy()
        full[top] = self.mix3[0] * p1[top] + self.mix3[1] * p2[top] + self.mix3[2] * p3
        return s1, s2, full.max(axis=0)

    def _score(self, texts: list[str]) -> tuple[dict[str, float], int, dict[str, float]]:
        segs = self._segments(texts)
        if not segs:
            return {d: 0.0 for d in self.domains}, 1, self.thresholds
        s1, s2, s3 = self.score_segments(segs)
        if s3 is not None:
            long = self.is_long(len(segs))
            if (s2 >= self.gate(len(segs))).any():
                return {d: float(s3[j]) for j, d in enumerate(self.domains)}, 3, self.thresholds_long if long else self.thresholds
            return {d: float(s2[j]) for j, d in enumerate(self.domains)}, 2, self._below_gate_thr_long if long else self._below_gate_thr
        if s2 is not None:
            return {d: float(s2[j]) for j, d in enumerate(self.domains)}, 2, self.s2_thresholds
        return {d: float(s1[j]) for j, d in enumerate(self.domains)}, 1, self.s1_thresholds

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
