"""The two baselines ``lockgate safety eval`` compares the cascade with: a keyword list, and MiniLM
embeddings of the raw text + logistic regression."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .corpus import build_training_set
from .examples import DOMAINS

__all__ = ["KeywordBaseline", "EmbeddingLRBaseline"]


_KW = {
    "cyber": ["hack", "malware", "ransomware", "keylogger", "phishing", "exploit", "botnet", "ddos", "sql injection", "trojan",
              "spyware", "backdoor", "rootkit", "virus", "password", "steal data", "unauthorized access", "crack"],
    "bio": ["anthrax", "ebola", "smallpox", "plague", "pathogen", "bioweapon", "biological weapon", "botulinum", "ricin",
            "virus", "bacteria", "toxin", "pandemic", "outbreak"],
    "chem": ["sarin", "vx", "nerve agent", "mustard gas", "chemical weapon", "phosgene", "chlorine gas", "cyanide", "bomb",
             "explosive", "poison", "meth", "fentanyl", "toxic gas"],
}


class KeywordBaseline:
    name = "keyword"

    def scores(self, text: str) -> dict[str, float]:
        t = text.lower()
        return {d: float(any(re.search(r"\b" + re.escape(k), t) for k in kws)) for d, kws in _KW.items()}

    thresholds = {d: 0.5 for d in DOMAINS}


class EmbeddingLRBaseline:
    """MiniLM embedding of the raw text + logistic regression; same base training rows, no
    normalisation, no windows/sentences, no augmentation."""

    name = "embedding+LR"

    def __init__(self, root: Path, cache) -> None:
        from sklearn.linear_model import LogisticRegression

        ex = [e for e in build_training_set(root) if "aug" not in e.meta]
        self.cache = cache
        E = cache.encode([e.text for e in ex], "baseline embeddings")
        self.models = {}
        for d in DOMAINS:
            y = np.array([d in e.labels for e in ex], dtype=int)
            self.models[d] = LogisticRegression(C=4.0, class_weight="balanced", max_iter=3000).fit(E, y)
        self.thresholds = {d: 0.5 for d in DOMAINS}

    def scores_many(self, texts: list[str]) -> list[dict[str, float]]:
        E = self.cache.encode(texts, "baseline embeddings")
        P = {d: m.predict_proba(E)[:, 1] for d, m in self.models.items()}
        return [{d: float(P[d][i]) for d in DOMAINS} for i in range(len(texts))]
