"""Extra labelled prompts for ``lockgate safety eval --extra``: CSV or JSONL, read strictly."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .examples import DOMAINS, Example

__all__ = ["load_labelled_file", "LabelledFileError"]

TEXT_KEYS = ("text", "prompt", "goal", "Goal", "Behavior", "question")
HARDNEG_LABELS = ("hardneg", "hard_negative", "hard-negative")
BENIGN_LABELS = ("benign", "none")


class LabelledFileError(ValueError):
    """An extra labelled file that cannot be read as one: the message names the file and row."""


def load_labelled_file(path: Path) -> list[Example]:
    """Extra labelled data (CSV or JSONL): columns/keys ``text`` (or prompt/goal/Behavior/question) and
    ``label``/``domain`` (cyber|bio|chem|benign|none|hardneg). A row without text or with another label is an
    error, not a row skipped or counted as benign: a mislabelled harmful prompt would pass as a false positive."""
    rows: list[tuple[int, dict]] = []  # (line number, row)
    if path.suffix.lower() in (".jsonl", ".json"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise LabelledFileError(f"{path}:{n}: not JSON ({exc.msg})") from exc
                if not isinstance(row, dict):
                    raise LabelledFileError(f"{path}:{n}: expected an object with text and label")
                rows.append((n, row))
    else:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = [(reader.line_num, r) for r in reader]
    allowed = "|".join((*DOMAINS, *BENIGN_LABELS, *HARDNEG_LABELS))
    out = []
    for i, (n, r) in enumerate(rows):
        where = f"{path}:{n}"
        text = next((r[k] for k in TEXT_KEYS if r.get(k)), None)
        if not text:
            raise LabelledFileError(f"{where}: no text (one of {', '.join(TEXT_KEYS)})")
        lab = str(r.get("label") or r.get("domain") or "").strip().lower()
        if lab in DOMAINS:
            out.append(Example(text, frozenset({lab}), path.name, "harmful", group=f"{path.name}:{i}"))
        elif lab in HARDNEG_LABELS:
            out.append(Example(text, frozenset(), path.name, "hardneg", group=f"{path.name}:{i}"))
        elif lab in BENIGN_LABELS:
            out.append(Example(text, frozenset(), path.name, "benign", group=f"{path.name}:{i}"))
        else:
            raise LabelledFileError(f"{where}: label {lab!r} is not one of {allowed}" if lab else
                                    f"{where}: no label (label or domain: one of {allowed})")
    return out
