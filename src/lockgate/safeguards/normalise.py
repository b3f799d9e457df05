"""Undo common prompt obfuscation before classification.

``normalise_forms(text)`` returns the raw text plus every decoded form worth
scoring; the classifier scores each form and keeps the maximum, so a decoding
step that produces garbage for ordinary text costs nothing but a little time.

Handled: Unicode compatibility forms (NFKC), a confusables map (Cyrillic /
Greek / other look-alikes), combining marks ("Zalgo"), zero-width and bidi
controls, Unicode tag characters (decoded as hidden ASCII), URL-encoding, HTML
entities, base64 / base32-free base64url, hex (``68 65``, ``\\x68``, ``0x68``),
rot13, reversed text, leetspeak, spacing tricks ("b o m b", "b.o.m.b") and payload
splitting (``a = "how to"; b = "make ..."; do a + b``: the pieces are joined) and character noise
(typos repaired by ``spelling.respell``, only in text that looks noisy; words that joining spaced-out
letters ran together split again by ``spelling.resegment``).
Standard library apart from the typo repair; typically well under a millisecond per prompt.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
from urllib.parse import unquote_plus

from .spelling import resegment, respell

__all__ = ["normalise_forms", "canonicalise", "decode_all", "collapse_spacing", "deleet", "join_split_strings"]

# --- character classes -----------------------------------------------------

_ZERO_WIDTH = dict.fromkeys(
    [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180E, 0x3164, 0xFE0E, 0xFE0F, 0xFEFF, 0xFFA0]
    + list(range(0x200B, 0x2010))  # ZWSP, ZWNJ, ZWJ, LRM, RLM
    + list(range(0x202A, 0x202F))  # bidi embeddings / overrides
    + list(range(0x2060, 0x2070))  # word joiner, invisible operators, bidi isolates
    + list(range(0xFE00, 0xFE10)),  # variation selectors
    None,
)

# Look-alike letters that NFKC leaves alone (Cyrillic, Greek, Armenian, IPA, ...).
_CONFUSABLES_SRC = {
    "a": "аɑαａ⍺",
    "b": "ЬƄ",
    "c": "сϲⅽ",
    "d": "ԁⅾ",
    "e": "еєҽ℮ｅ",
    "g": "ɡ",
    "h": "һհ",
    "i": "іɩιӏ",
    "j": "јϳ",
    "k": "κ",
    "l": "ⅼǀ",
    "m": "ⅿ",
    "n": "ոη",
    "o": "оοσօ០",
    "p": "рρ",
    "q": "ԛ",
    "r": "г",
    "s": "ѕ",
    "t": "τ",
    "u": "υս",
    "v": "νѵ",
    "w": "ԝѡ",
    "x": "хχ",
    "y": "уγ",
    "z": "ᴢ",
    "A": "АΑ",
    "B": "ВΒ",
    "C": "СϹ",
    "E": "ЕΕ",
    "H": "НΗ",
    "I": "ІΙӀ",
    "J": "Ј",
    "K": "КΚ",
    "M": "МΜ",
    "N": "Ν",
    "O": "ОΟ",
    "P": "РΡ",
    "S": "Ѕ",
    "T": "ТΤ",
    "X": "ХΧ",
    "Y": "ҮΥ",
    "Z": "Ζ",
}
_CONFUSABLES = {ord(ch): latin for latin, chars in _CONFUSABLES_SRC.items() for ch in chars}
_CONFUSABLES.update(_ZERO_WIDTH)

_TAG_RE = re.compile("[\U000E0000-\U000E007F]+")

_STOPWORDS = frozenset(
    "the a an to of and or in on for with how what why is are was were do does did i you me my it this that "
    "can could would should will be by from at as your give make tell write explain step steps please "
    "instructions guide someone people into without get".split()
)
_WORD_RE = re.compile(r"[A-Za-z]+")


# --- individual decoders -----------------------------------------------------


def _decode_tags(text: str) -> tuple[str, str]:
    """Remove Unicode tag characters; return (text without tags, hidden ASCII payload)."""
    hidden: list[str] = []

    def repl(m: re.Match[str]) -> str:
        hidden.append("".join(chr(ord(c) - 0xE0000) for c in m.group(0) if 0xE0020 <= ord(c) <= 0xE007E))
        return ""

    return _TAG_RE.sub(repl, text), " ".join(h for h in hidden if h.strip())


def canonicalise(text: str) -> str:
    """NFKC, confusables -> Latin, drop zero-width/bidi/tag chars and combining marks."""
    text, _ = _decode_tags(text)
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(_CONFUSABLES)
    if any(unicodedata.combining(c) for c in text):
        text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
        text = unicodedata.normalize("NFC", text)
    return text


def _printable_ratio(s: str) -> float:
    if not s:
        return 0.0
    ok = sum(1 for c in s if c.isprintable() or c in "\n\r\t")
    return ok / len(s)


def _plausible_text(s: str) -> bool:
    if len(s) < 4 or _printable_ratio(s) < 0.9:
        return False
    letters = sum(1 for c in s if c.isalpha())
    return letters >= 0.5 * len(s.replace(" ", "")) and " " in s.strip() or letters >= 0.8 * len(s)


_B64_RE = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{12,}={0,2}")


def _try_b64(tok: str) -> str | None:
    core = tok.rstrip("=")
    if len(core) < 12:
        return None
    if not (re.search(r"[A-Z]", core) and re.search(r"[a-z]", core)) and not re.search(r"\d", core):
        return None  # plain words are not base64
    for alt in (None, b"-_"):
        try:
            raw = base64.b64decode(core + "=" * (-len(core) % 4), altchars=alt, validate=True)
        except (binascii.Error, ValueError):
            continue
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if _plausible_text(s):
            return s
    return None


def _decode_base64(text: str) -> str:
    decoded = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal decoded
        dec = _try_b64(m.group(0))
        decoded += len(dec) if dec is not None else 0
        return f" {dec} " if dec is not None else m.group(0)

    out = _B64_RE.sub(repl, text)
    if "\n" in text:  # base64 blobs may be wrapped across lines; the joined text only if that decodes more
        joined, before = re.sub(r"(?<=[A-Za-z0-9+/=])\s*\n\s*(?=[A-Za-z0-9+/=])", "", text), decoded
        decoded = 0
        out_joined = _B64_RE.sub(repl, joined)
        if decoded and decoded >= before:  # (decoded characters)
            return out_joined
    return out


_HEX_RE = re.compile(r"(?:(?:\\x|0x|%)?[0-9a-fA-F]{2}[\s,:;-]*){6,}")


def _decode_hex(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        digits = re.sub(r"\\x|0x|%|[\s,:;-]", "", m.group(0))
        if len(digits) % 2:
            digits = digits[:-1]
        try:
            s = bytes.fromhex(digits).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return m.group(0)
        return f" {s} " if _plausible_text(s) else m.group(0)

    return _HEX_RE.sub(repl, text)


def _decode_url_html(text: str) -> str:
    if re.search(r"%[0-9A-Fa-f]{2}", text):
        text = unquote_plus(text) if text.count("%") >= 2 else text
    if "&" in text and ";" in text:
        text = html.unescape(text)
    return text


# "b o m b", "b.o.m.b", "b-o-m-b", "b_o_m_b", "b*o*m*b" (4+ single characters)
_SPACED_RE = re.compile(r"(?<!\w)(?:\w[ \t.\-_*|/+~,'\"`]{1,3}){3,}\w(?!\w)")


def collapse_spacing(text: str) -> str:
    """Join runs of single characters separated by spaces or punctuation."""

    def repl(m: re.Match[str]) -> str:
        return re.sub(r"[ \t.\-_*|/+~,'\"`]", "", m.group(0))

    out = _SPACED_RE.sub(repl, text)
    # separators inside words: "b.o.m.b" handled above; also "bo-mb"/"ex.plo.sive" style dots between letters
    out = re.sub(r"(?<=[A-Za-z])[.\-_*|](?=[A-Za-z]{1,3}\b)", "", out) if re.search(r"[A-Za-z][.*|_][A-Za-z]", out) else out
    return out


_LEET = {"0": "o", "1": "i", "2": "z", "3": "e", "4": "a", "5": "s", "6": "g", "7": "t", "8": "b", "9": "g",
         "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e", "£": "l", "(": "c", "<": "c", "{": "c", "#": "h"}
# Only these make a token leetspeak; "(", "{", "#", "+" ... are mapped inside such tokens but alone they are
# code ("getattr(self" must not become "getattrcself", which scored as cyber on ordinary code).
_LEET_STRONG = frozenset("0123456789@$!€£")
_LEET_TOKEN_RE = re.compile(r"[\w@$!|+€£(<{#]+")


def deleet(text: str) -> str:
    """Map leetspeak inside tokens that mix letters with leet symbols ("h4ck", "m@lw4re", "3xpl01t")."""

    def repl(m: re.Match[str]) -> str:
        tok = m.group(0)
        n_alpha = sum(c.isalpha() for c in tok)
        n_strong = sum(c in _LEET_STRONG for c in tok)
        if n_strong == 0 or (n_alpha == 0 and n_strong < 3) or tok.isdigit() and len(tok) < 4:
            return tok
        if n_alpha == 0 and not any(c in "@$!|" for c in tok) and len(tok) < 6:
            return tok
        out = "".join(_LEET.get(c, c) for c in tok)
        out = out.replace("|<", "k").replace("|-|", "h")
        return out

    return _LEET_TOKEN_RE.sub(repl, text)


def _rot13(text: str) -> str:
    return codecs.encode(text, "rot_13")


def _reverse(text: str) -> str:
    return text[::-1]


# sentence / line pieces; the lookahead also splits reversed text, whose full stops lead (".atad siht")
_PIECE_RE = re.compile(r"(\n+|(?<=[.!?:])\s+|\s+(?=[.!?]\w))")


def _englishness(text: str) -> tuple[int, int, int]:
    """(stop-words, distinct stop-words, words)."""
    words = _WORD_RE.findall(text.lower())
    stops = [w for w in words if w in _STOPWORDS]
    return len(stops), len(set(stops)), len(words)


def _decode_pieces(text: str, flip) -> str | None:
    """``text`` with each piece that reads as English only after ``flip`` (rot13, reversal) replaced by its
    flipped form; None when no piece is. Piece by piece so that an English instruction around an encoded
    payload ("You understand rot13. Answer this: …") neither hides the payload nor is garbled itself, and
    ordinary text is left alone. Several *distinct* stop-words are required: a table of "No" cells reads
    "oN oN oN" reversed, which is not English."""
    parts = _PIECE_RE.split(text)
    changed = False
    for i in range(0, len(parts), 2):  # odd indices are the separators
        piece = parts[i]
        s0, _, n = _englishness(piece)
        if n < 3:
            continue
        flipped = flip(piece)
        s1, distinct, _ = _englishness(flipped)
        if distinct >= 2 and s1 >= 2 and s1 > 2 * s0 and s1 >= 0.15 * n:
            parts[i] = flipped
            changed = True
    return "".join(parts) if changed else None


def decode_all(text: str, depth: int = 3) -> str:
    """Apply canonicalisation and the reversible decoders repeatedly (nested encodings)."""
    cur = canonicalise(text)
    for _ in range(depth):
        nxt = _decode_url_html(cur)
        nxt = _decode_hex(nxt)
        nxt = _decode_base64(nxt)
        nxt = canonicalise(nxt)
        if nxt == cur:
            break
        cur = nxt
    return cur


# `name = "piece"` (also := , <- and curly quotes); a piece may be empty but not span lines
_ASSIGN_RE = re.compile(r"""(?<![\w.])([A-Za-z_]\w{0,15})\s*(?::=|=|<-)\s*(["'`“”‘’])([^"'`“”‘’\n]*)["'`“”‘’]""")
_CONCAT_RE = re.compile(r"[A-Za-z_]\w{0,15}(?:\s*(?:\+|\.|,|&|\band\b|\bthen\b)\s*[A-Za-z_]\w{0,15})+")


def join_split_strings(text: str) -> list[str]:
    """A request split over string variables, put back together (payload splitting).

    The order is the first expression that names two or more of the variables (``z = a + b + c``,
    "concatenate x1 and x2"), else the order of assignment. Both the plain join (pieces split inside a
    word) and the space-separated join (pieces split between words) are returned; [] when fewer than
    two pieces are assigned.
    """
    pieces: dict[str, str] = {}
    for name, _q, value in _ASSIGN_RE.findall(text):
        pieces.setdefault(name, value)
    if len(pieces) < 2:
        return []
    order = list(pieces)
    for m in _CONCAT_RE.finditer(text):
        names = [n for n in re.findall(r"[A-Za-z_]\w*", m.group(0)) if n in pieces]
        if len(names) >= 2:
            order = names
            break
    parts = [pieces[n] for n in order]
    return [j for j in dict.fromkeys(("".join(parts), " ".join(p.strip() for p in parts))) if len(j.split()) >= 2]


def _mostly_leet(before: str, after: str) -> bool:
    """At least 3 word tokens, and 30 % of them, changed by ``deleet``."""
    a, b = before.split(), after.split()
    if len(a) != len(b):
        return False
    changed = sum(x != y for x, y in zip(a, b))
    return changed >= 3 and changed >= 0.3 * len(a)


def normalise_forms(text: str, max_forms: int = 10) -> list[str]:
    """Return ``[raw, decoded forms...]`` (deduplicated, raw first).

    The classifier scores every form and keeps the maximum per domain. Text that is mostly leetspeak is
    the exception: its raw form is noise (digit-letter mixes read like chemical formulas and scored as
    chem on harmless questions), so the de-leeted form replaces the raw and decoded ones.
    """
    forms: list[str] = [text]
    if not text:
        return forms
    stripped, hidden = _decode_tags(text)
    if hidden:
        forms.append(hidden)
    decoded = decode_all(text)
    forms.append(decoded)
    spaced = collapse_spacing(decoded)
    leet = deleet(spaced)
    if _mostly_leet(spaced, leet):
        forms = forms[1:2] if hidden else []
    forms.append(leet)
    forms += join_split_strings(leet)
    # rot13 / reversed text, piece by piece: a piece is decoded only where that reveals English
    for flip in (_rot13, _reverse):
        cand = _decode_pieces(leet, flip)
        if cand is not None:
            forms.append(deleet(collapse_spacing(decode_all(cand))))
    fixed = respell(leet)  # character noise: only text that looks noisy gets this form
    if fixed is not None:
        forms.append(fixed)
    # joining spaced-out letters ("a h.o.u.s.e r.e.m.o.t.e.l.y") runs words together: split the joins
    split = resegment(leet, decoded) if _SPACED_RE.search(decoded) else None
    if split is not None:
        forms.append(split)
    seen: set[str] = set()
    out: list[str] = []
    for f in forms:
        key = " ".join(f.split())
        if key and key not in seen:
            seen.add(key)
            out.append(f)
    return out[:max_forms]
