"""Ordinary source code as benign training data (``data/benign_code.json``).

Long code and technical text reach the classifier in every code-review or "explain this" prompt, and
the session-5 artefact flagged 13–15 % of ~512-token code-review prompts as cyber: it had seen code mostly
next to attack requests. This corpus is chunks of permissively licensed libraries (package, version,
licence and file are recorded per chunk), taken once from the installed packages by ``write_corpus`` and
committed, so that training does not depend on what happens to be installed. The Python standard library
and the packages' README files are *not* used: ``bench/safety.py`` measures on them.

    python -m lockgate.safeguards.codecorpus     # rewrites data/benign_code.json from the installed packages
"""

from __future__ import annotations

import json
import random
import zlib
from importlib import resources
from pathlib import Path

from .examples import Example
from .features import sentences
from .handwritten import _data_json

__all__ = ["PACKAGES", "code_examples", "load_chunks", "write_chunks", "write_corpus"]

# distribution -> (import directory, licence); permissive licences only
PACKAGES: dict[str, tuple[str, str]] = {
    "aiohttp": ("aiohttp", "Apache-2.0 AND MIT"),
    "alembic": ("alembic", "MIT"),
    "click": ("click", "BSD-3-Clause"),
    "cryptography": ("cryptography", "Apache-2.0 OR BSD-3-Clause"),
    "fastapi": ("fastapi", "MIT"),
    "httpx": ("httpx", "BSD-3-Clause"),
    "jinja2": ("jinja2", "BSD-3-Clause"),
    "joserfc": ("joserfc", "BSD-3-Clause"),
    "prometheus_client": ("prometheus_client", "Apache-2.0 AND BSD-2-Clause"),
    "pydantic": ("pydantic", "MIT"),
    "rich": ("rich", "MIT"),
    "scikit-learn": ("sklearn", "BSD-3-Clause"),
    "sqlalchemy": ("sqlalchemy", "MIT"),
    "starlette": ("starlette", "BSD-3-Clause"),
    "uvicorn": ("uvicorn", "BSD-3-Clause"),
}
PER_PACKAGE = 70
CHUNK_WORDS = 110  # ~3 of the classifier's 64-word windows

# benign requests about pasted code (half the chunks get one; the other half stay bare, as a window would)
CODE_ASKS = (
    "Can you review this code?", "What does this function do?", "Explain this code to me like I'm new to Python.",
    "Add type hints to this.", "Write pytest tests for this.", "Why does this raise an exception sometimes?",
    "Refactor this to be more readable.", "Is there a bug in here?", "Translate this to TypeScript.",
    "Document this with docstrings.", "How would I speed this up?", "Summarise what this module is for.",
    "Can you simplify this?", "Rename the variables so it reads better.", "Convert this to async.",
    "What are the edge cases here?",
)


def _chunk(lines: list[str], start: int) -> str | None:
    out, words = [], 0
    for line in lines[start:]:
        out.append(line)
        words += len(line.split())
        if words >= CHUNK_WORDS:
            return "\n".join(out).strip("\n")
    return None


def write_corpus(out: Path | None = None) -> Path:
    """Take PER_PACKAGE chunks from each installed package in PACKAGES (deterministic for the same versions)."""
    import importlib.metadata as md

    out = out or Path(str(resources.files("lockgate.safeguards").joinpath("data", "benign_code.json")))
    chunks = []
    for dist, (pkg, licence) in sorted(PACKAGES.items()):
        d = md.distribution(dist)
        root = Path(str(d.locate_file(pkg)))
        files = sorted(p for p in root.rglob("*.py") if "tests" not in p.parts and p.stat().st_size > 3000)
        files.sort(key=lambda p: zlib.crc32(str(p.relative_to(root)).encode()))  # spread over the package
        taken = 0
        for f in files:
            lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
            start = len(lines) // 3 + zlib.crc32(f.name.encode()) % max(1, len(lines) // 3)
            text = _chunk(lines, start)
            if text:
                chunks.append({"package": dist, "version": d.version, "licence": licence,
                               "file": f"{pkg}/{f.relative_to(root)}", "line": start + 1, "text": text})
                taken += 1
            if taken >= PER_PACKAGE:
                break
    return write_chunks(out, "Chunks of permissively licensed Python packages, benign training data for lockgate's safety "
                             "classifiers (see lockgate/safeguards/codecorpus.py). Each chunk keeps its package, version, "
                             "licence and file; the copyright stays with each project's authors.", chunks)


def write_chunks(out: Path, about: str, chunks: list[dict]) -> Path:
    """Write a committed data file: ``{"_about": about, "chunks": chunks}``."""
    out.write_text(json.dumps({"_about": about, "chunks": chunks}, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def load_chunks() -> list[dict]:
    return _data_json("benign_code.json")["chunks"]


def code_examples(rng: random.Random, harmful_asks: list[str], benign_asks: list[str]) -> list[Example]:
    """Benign code chunks (bare or with an ordinary request), plus the same chunks under the hand-written
    attack requests ("make it copy itself to every host…", labelled cyber) and their benign twins, so that
    the request, not the presence of code, decides."""
    out: list[Example] = []
    chunks = load_chunks()
    for i, c in enumerate(chunks):
        text = c["text"] if i % 2 else f"{rng.choice(CODE_ASKS)}\n\n```python\n{c['text']}\n```"
        group = f"code:{c['package']}:{i}"
        out.append(Example(text, frozenset(), "code:benign", "benign", group=group))
        # run time also scores a long text's lines / sentences one by one
        pieces = sentences(c["text"])
        out += [Example(p, frozenset(), "code:benign", "benign", group=group) for p in rng.sample(pieces, min(2, len(pieces)))]
    for key, asks, labels, kind in (("h", harmful_asks, frozenset({"cyber"}), "harmful"), ("b", benign_asks, frozenset(), "hardneg")):
        for j, ask in enumerate(asks):
            for c in rng.sample(chunks, min(4, len(chunks))):
                text = f"```python\n{c['text']}\n```\n{ask}" if rng.random() < 0.5 else f"{ask}\n\n{c['text']}"
                out.append(Example(text, labels, f"code:{kind}", kind, group=f"codeask:{key}{j}", meta={"payload": ask}))
    return out


if __name__ == "__main__":
    print(write_corpus())
