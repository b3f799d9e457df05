"""Stage-1 features: hashed character n-grams and word uni/bi-grams (numpy only).

Deterministic across processes (no use of Python's randomised ``hash``), no
vocabulary to ship: a feature is a bucket in ``2**bits``. Values are
log(1 + count), L2-normalised.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

__all__ = ["hash_features", "hash_features_many", "windows", "segments", "DEFAULT_BITS"]

DEFAULT_BITS = 18
_MULT = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_WS_RE = re.compile(r"\s+")
_CHAR_NS = (3, 4, 5)


def _prep(text: str) -> str:
    return " " + _WS_RE.sub(" ", text.lower()).strip() + " "


def hash_features(text: str, bits: int = DEFAULT_BITS) -> tuple[np.ndarray, np.ndarray]:
    """Return (indices, values) of the sparse, L2-normalised feature vector."""
    _, idx, vals = hash_features_many([text], bits)
    return idx, vals


def hash_features_many(texts: list[str], bits: int = DEFAULT_BITS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The features of many texts at once: (text number, index, value) of every non-zero feature, ordered
    by text then index. A text's features do not depend on the others (the tests check it); scoring all
    segments of a prompt in a few numpy passes beats a dozen small ones per segment."""
    preps = [_prep(t)[:20000] for t in texts]
    shift = np.uint64(64 - bits)
    lengths = np.fromiter((len(p) for p in preps), dtype=np.int64, count=len(preps))
    ends = np.cumsum(lengths)
    codes = np.frombuffer("".join(preps).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    seg_parts: list[np.ndarray] = []
    parts: list[np.ndarray] = []
    n_codes = len(codes)
    with np.errstate(over="ignore"):
        for n in _CHAR_NS:
            if n_codes < n:
                continue
            m = n_codes - n + 1
            h = np.full(m, np.uint64(n * 7919), dtype=np.uint64)
            for k in range(n):
                h = h * _MULT + codes[k : k + m]
            pos = np.arange(m)
            seg = np.searchsorted(ends, pos, side="right")
            ok = pos + n <= ends[np.minimum(seg, len(ends) - 1)]  # n-grams that stay inside their text
            parts.append((h[ok] * _MIX) >> shift)
            seg_parts.append(seg[ok])
        for i, s in enumerate(preps):
            words = _WORD_RE.findall(s)
            if not words:
                continue
            wh_arr = np.asarray([zlib.crc32(w.encode()) for w in words], dtype=np.uint64)
            parts.append(((wh_arr + np.uint64(0x51ED27)) * _MIX) >> shift)
            seg_parts.append(np.full(len(words), i, dtype=np.int64))
            if len(words) > 1:
                bi = (wh_arr[:-1] * np.uint64(1000003) + wh_arr[1:] + np.uint64(0xB16B00B5)) * _MIX
                parts.append(bi >> shift)
                seg_parts.append(np.full(len(words) - 1, i, dtype=np.int64))
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    keys = (np.concatenate(seg_parts).astype(np.int64) << bits) | np.concatenate(parts).astype(np.int64)
    uniq, counts = np.unique(keys, return_counts=True)
    seg = uniq >> bits
    idx = uniq & ((1 << bits) - 1)
    vals = np.log1p(counts.astype(np.float32))
    norms = np.sqrt(np.bincount(seg, weights=vals.astype(np.float64) ** 2, minlength=len(texts)))
    vals /= np.maximum(norms, 1e-6).astype(np.float32)[seg]
    return seg, idx, vals


def windows(text: str, size: int = 64, stride: int = 32) -> list[str]:
    """Whole text plus overlapping word windows when it is longer than ``size`` words.

    Long jailbreak wrappers dilute a short payload; scoring windows (max) keeps it visible.
    """
    words = text.split()
    if len(words) <= size:
        return [text]
    out = [text]
    for start in range(0, len(words) - size + stride, stride):
        chunk = words[start : start + size]
        if chunk:
            out.append(" ".join(chunk))
        if start + size >= len(words):
            break
    return out


_SENT_RE = re.compile(r"(?<=[.!?:;])\s+|\n+|\s*[|]\s*")


def sentences(text: str, min_words: int = 5) -> list[str]:
    """Sentence / line pieces, tiny pieces merged into the next one."""
    parts = [p.strip() for p in _SENT_RE.split(text) if p and p.strip()]
    out: list[str] = []
    buf = ""
    for p in parts:
        buf = f"{buf} {p}".strip() if buf else p
        if len(buf.split()) >= min_words:
            out.append(buf)
            buf = ""
    if buf:
        if out and len(buf.split()) < min_words:
            out[-1] = f"{out[-1]} {buf}"
        else:
            out.append(buf)
    return out


def segments(text: str, size: int = 64, stride: int = 32, max_segments: int = 96) -> list[str]:
    """What gets scored for one text form: the whole text (or, when long, its word windows)
    and sentence/line pieces (multi-sentence texts), so a short payload inside a long
    jailbreak wrapper is scored on its own."""
    words = text.split()
    if len(words) <= 12:
        return [text]
    segs = windows(text, size, stride)
    if len(segs) > 1:
        segs = segs[1:]  # long text: the windows cover it; the whole text would only be truncated
    sents = sentences(text)
    if len(sents) > 1:
        for snt in sents:
            segs.extend(windows(snt, size, stride) if len(snt.split()) > size else [snt])
    if len(segs) > max_segments:  # very long input: keep the whole text, then evenly spaced pieces
        step = len(segs) / (max_segments - 1)
        segs = [segs[0]] + [segs[1 + int(i * step)] for i in range(max_segments - 1) if 1 + int(i * step) < len(segs)]
    seen: set[str] = set()
    out = []
    for sgm in segs:
        if sgm not in seen:
            seen.add(sgm)
            out.append(sgm)
    return out
