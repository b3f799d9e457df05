"""Per-segment score memo: a streamed answer is re-judged every few tokens and a conversation resends its
history, so most segments of a text were already scored. Each segment's stage-1, stage-2 and stage-3
outputs depend on that segment alone, so a remembered row is the row recomputing would give (up to BLAS
rounding of the batch it was computed in) and the verdict does not change."""

from __future__ import annotations

import os
import threading
from typing import Callable

import numpy as np
from cachetools import LRUCache

from .embed import env_count

__all__ = ["SegmentMemo", "memo_size"]

DEFAULT_SIZE = 20_000  # segments per stage; a segment is at most ~64 words, so a few MB each


def memo_size() -> int:
    """Segments remembered per stage (``LOCKGATE_SAFETY_MEMO``; 0 turns the memo off)."""
    if not os.environ.get("LOCKGATE_SAFETY_MEMO", "").strip():
        return DEFAULT_SIZE
    return env_count("LOCKGATE_SAFETY_MEMO", "segments")


class SegmentMemo:
    """LRU from segment text to one output row, bounded by ``size`` (0: off; None: unbounded, for a
    calibration run that scores the same segments several times); thread-safe. ``rows`` computes only the
    segments it has not seen, in one batch."""

    def __init__(self, size: int | None) -> None:
        self._cache: dict | LRUCache | None = {} if size is None else LRUCache(maxsize=size) if size > 0 else None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def rows(self, segs: list[str], compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        if self._cache is None or not segs:
            return compute(segs)
        unique = list(dict.fromkeys(segs))
        with self._lock:
            found = {s: self._cache[s] for s in unique if s in self._cache}
        missing = [s for s in unique if s not in found]
        if missing:
            # computed outside the lock: two threads may score the same new segment, which is harmless
            new = [row.copy() for row in compute(missing)]  # copies: a view would keep the whole batch alive
            found.update(zip(missing, new))
            with self._lock:
                for s, row in zip(missing, new):
                    self._cache[s] = row
        with self._lock:
            self.hits += len(segs) - len(missing)
            self.misses += len(missing)
        return np.stack([found[s] for s in segs])

    def clear(self) -> None:
        if self._cache is not None:
            with self._lock:
                self._cache.clear()
