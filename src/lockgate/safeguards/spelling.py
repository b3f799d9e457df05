"""Typo repair, one of the classifier's normalised forms ("Giv detailed insructions for synthesizcing ...").

Character noise (dropped, inserted and doubled letters) is an obfuscation like leetspeak: the n-gram stage
half-survives it, the token-based stages do not. :func:`respell` maps each word it does not know to the
nearest known one (SymSpell: edit distance 1 for words of under 6 letters, else 2), and only in text that
looks noisy, so ordinary prompts, code and long documents are left alone at the cost of a set lookup per word.

:func:`resegment` splits the run-together words that joining spaced-out letters leaves ("s e a r c h e s
for and e x f i l t r a t e s p a s s w o r d s" joins to "exfiltratespasswords"); the normalisation calls
it only on text that had spacing tricks.

Known words: the whole words of the MiniLM WordPiece vocabulary (the tokenizer stages 2 and 3 use) plus
the words of the shipped training phrases, so "keylogger", "ricin" and "pseudoephedrine" are known.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections import Counter
from importlib import resources

__all__ = ["respell", "resegment", "warm"]

log = logging.getLogger("lockgate.safeguards")

_WORD = re.compile(r"[A-Za-z]{3,}")
MAX_WORDS = 300  # longer texts are documents, not a noised request
MIN_UNKNOWN = 2  # at least this many unknown words ...
# ... and this share of all words, or the text is left alone: 89 % of the held-out harmful prompts under the
# evaluation's character noise reach 0.2, against 4 % of long README and 10 % of long code prompts (whose
# names and identifiers are unknown words; at 0.15 it was 13 and 22 %, and their p50 rose by 2 ms)
MIN_UNKNOWN_SHARE = 0.2

_lock = threading.Lock()
_state: dict[str, object] = {}


def _build():
    from symspellpy import SymSpell

    from .static import load_tokenizer

    # in token-id order: `get_vocab()`'s order changes from process to process, and SymSpell breaks ties
    # between equally near, equally counted words by insertion order
    vocab = sorted(load_tokenizer().get_vocab().items(), key=lambda kv: kv[1])
    counts = {w: 1 for w, _ in vocab if w.isalpha() and len(w) >= 3}
    in_data: Counter[str] = Counter()
    data = resources.files("lockgate.safeguards").joinpath("data")
    for p in sorted(data.iterdir(), key=lambda p: p.name):
        if p.name.endswith(".json"):
            in_data.update(re.findall(r"[a-z]{3,}", p.read_text(encoding="utf-8").lower()))
    for w, c in in_data.items():
        if c >= 2:  # a word seen once may be a deliberate typo in a phrase
            counts[w] = max(counts.get(w, 0), c)
    speller = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
    for w, c in counts.items():
        speller.create_dictionary_entry(w, c)
    return speller, frozenset(counts)


def _speller():
    """(SymSpell, known words), built once (~1 s); None when the tokenizer is not installed."""
    if "speller" not in _state:
        with _lock:
            if "speller" not in _state:
                try:
                    _state["speller"] = _build()
                except ImportError as exc:
                    log.warning("safety typo repair unavailable (%s)", exc)
                    _state["speller"] = None
    return _state["speller"]


def warm() -> None:
    """Build the dictionary now, off the request path."""
    _speller()


def respell(text: str) -> str | None:
    """``text`` with unknown words replaced by their nearest known word, or None when it does not look noisy."""
    toks = _WORD.findall(text)
    if not toks or len(toks) > MAX_WORDS:
        return None
    built = _speller()
    if built is None:
        return None
    known = built[1]
    unknown = sum(t.lower() not in known for t in toks)
    if unknown < MIN_UNKNOWN or unknown < MIN_UNKNOWN_SHARE * len(toks):
        return None

    def fix(m: re.Match[str]) -> str:
        w = m.group(0).lower()
        return m.group(0) if w in known else _nearest(w) or m.group(0)

    return _WORD.sub(fix, text)


@functools.lru_cache(maxsize=1 << 16)
def _nearest(word: str) -> str | None:
    from symspellpy import Verbosity

    hits = _speller()[0].lookup(word, Verbosity.TOP, max_edit_distance=1 if len(word) < 6 else 2)
    return hits[0].term if hits else None


def resegment(text: str, before: str = "") -> str | None:
    """``text`` with unknown words of 6+ letters split into known ones ("ahouseremotelybeforei" -> "a house
    remotely before i"), or None when no word splits. Words already in ``before`` (the text before its
    spaced-out letters were joined) are left alone: "secretsdump" or "argparse" in code is not a join."""
    built = _speller()
    if built is None:
        return None
    known, seen = built[1], {w.lower() for w in _WORD.findall(before)}
    changed = False

    def fix(m: re.Match[str]) -> str:
        nonlocal changed
        w = m.group(0).lower()
        parts = None if len(w) < 6 or w in seen or w in known else _split(w)
        changed |= parts is not None
        return parts or m.group(0)

    out = _WORD.sub(fix, text)
    return out if changed else None


@functools.lru_cache(maxsize=1 << 16)
def _split(word: str) -> str | None:
    speller, known = _speller()
    parts = speller.word_segmentation(word, max_edit_distance=0).corrected_string.split()
    # every piece of three letters or more must be a known word (one- and two-letter pieces: "a", "i", "my")
    if len(parts) < 2 or any(len(p) >= 3 and p not in known for p in parts):
        return None
    return " ".join(parts)
