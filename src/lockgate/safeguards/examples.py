"""One labelled text of the safety corpus, and the domains the classifiers judge."""

from __future__ import annotations

from dataclasses import dataclass, field

DOMAINS: tuple[str, ...] = ("cyber", "bio", "chem")


@dataclass
class Example:
    text: str
    labels: frozenset[str]  # subset of DOMAINS; empty = negative for all heads
    source: str  # e.g. "seed:cyber", "advbench", "harmbench-val"
    kind: str  # "harmful" | "other_harmful" | "hardneg" | "benign"
    group: str = ""  # behaviour / phrase id (for grouped CV)
    meta: dict = field(default_factory=dict)
