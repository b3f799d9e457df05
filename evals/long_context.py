"""Harmful text inside long benign text: does the cascade still catch it?

Calibration-split rows (never trained on): hand-written harmful answers and short harmful requests, each
alone and after ~250 words of a README chunk (``data/benign_readmes.json``), so the text has more segments
than ``calibrate.LONG_SEGMENTS`` and is judged with the long-text gates. Prints, per artefact, the share
flagged alone, the share flagged inside the long text, and how many of those reached MiniLM.

    python evals/long_context.py                          # the shipped artefact
    python evals/long_context.py --artefact A.npz --artefact B.npz
"""

from __future__ import annotations

import argparse
import random

from lockgate.safeguards.cache import EmbeddingCache
from lockgate.safeguards.classifier import Classifier
from lockgate.safeguards.corpus import datasets_root
from lockgate.safeguards.longprompts import calibration_prompts
from lockgate.safeguards.train import _separated_training_set, is_calibration_group, split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artefact", action="append", default=None, help="artefact(s) to compare (default: shipped)")
    ap.add_argument("--datasets", default=None)
    ap.add_argument("--n", type=int, default=150, help="harmful requests sampled (answers: all)")
    args = ap.parse_args()
    examples, _ = _separated_training_set(datasets_root(args.datasets), EmbeddingCache(), lambda m: None)
    _, cal = split(examples)
    answers = [e.text for e in cal if e.labels and e.source.startswith("extra:answer")]
    requests = [e.text for e in cal if e.labels and e.kind == "harmful" and not e.meta.get("aug") and len(e.text.split()) < 40]
    random.Random(0).shuffle(requests)
    requests = requests[: args.n]
    fill = [t.split("\n\n", 1)[1] for g, t in calibration_prompts(is_calibration_group) if ":readme:" in g]
    wrap = lambda i, text: " ".join(fill[i % len(fill)].split()[:250]) + "\n\n" + text  # noqa: E731
    print(f"{'artefact':28} {'kind':8} {'n':>4} {'alone':>7} {'in long':>8} {'MiniLM':>7}")
    for art in args.artefact or [None]:
        clf = Classifier.load(art)
        for kind, rows in (("answer", answers), ("request", requests)):
            alone = sum(clf.classify(t).flagged for t in rows) / len(rows)
            vs = [clf.classify(wrap(i, t)) for i, t in enumerate(rows)]
            inside = sum(v.flagged for v in vs) / len(vs)
            minilm = sum(v.stage == 3 for v in vs) / len(vs)
            print(f"{str(art or 'shipped')[-28:]:28} {kind:8} {len(rows):4d} {alone:7.1%} {inside:8.1%} {minilm:7.1%}")


if __name__ == "__main__":
    main()
