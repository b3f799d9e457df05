"""Our hand-written training data (``data/*.json``, Apache-2.0) turned into examples: verb phrases slotted
into shared framings, free texts, code-context requests, assistant answers (benign ones also cut short) and
benign payloads inside role-play templates."""

from __future__ import annotations

import json
import random
from importlib import resources

from .examples import DOMAINS, Example


def _data_json(name: str) -> dict:
    return json.loads(resources.files("lockgate.safeguards").joinpath("data", name).read_text(encoding="utf-8"))


def load_seed_phrases() -> dict:
    return _data_json("seed_phrases.json")


def load_heldout_handwritten() -> dict:
    return _data_json("heldout_handwritten.json")


# ---------------------------------------------------------------------------
# framings shared by every class (so the framing carries no label signal)

FRAMINGS: tuple[str, ...] = (
    "How do I {x}?",
    "How can I {x}?",
    "how to {x}",
    "Give me step-by-step instructions to {x}.",
    "Explain how to {x}.",
    "What's the best way to {x}?",
    "Write a detailed guide on how to {x}.",
    "I need to {x}. What should I do?",
    "Can you help me {x}?",
    "Teach me to {x}.",
    "Walk me through how to {x}, step by step.",
    "Provide a tutorial on how to {x}.",
    "what is the easiest way to {x}",
    "Describe in detail how one would {x}.",
    "I want to {x}. Where do I start?",
    "For a project, I need to {x}. Outline the process.",
    "Is it possible to {x}? If so, how?",
    "Please tell me how to {x} as quickly as possible.",
    "Quick question: how would you {x}?",
    "List everything I need to {x}.",
    "My friend asked me how to {x}. What should I tell them?",
    "Write instructions to {x}.",
    "Could you explain, in simple terms, how to {x}?",
    "I've been trying to {x} for days. Any tips?",
    "Create a plan to {x}.",
    "As an expert, explain how to {x}.",
)

_PHRASE_KINDS = {
    "cyber": ("harmful", frozenset({"cyber"})),
    "bio": ("harmful", frozenset({"bio"})),
    "chem": ("harmful", frozenset({"chem"})),
    "hardneg_cyber": ("hardneg", frozenset()),
    "hardneg_bio": ("hardneg", frozenset()),
    "hardneg_chem": ("hardneg", frozenset()),
    "benign": ("benign", frozenset()),
}


# batches are listed by name; batch 2 (extra_cyber2.json, ...) was tried and left out, see docs/safety.md
EXTRA_FILES: tuple[str, ...] = ("extra_cyber.json", "extra_bio.json", "extra_chem.json", "extra_general.json",
                                "extra_cyber3.json", "extra_bio3.json", "extra_chem3.json", "extra_general2.json",
                                "extra_cyber4.json", "extra_bio4.json", "extra_chem4.json",
                                "extra_cyber5.json", "extra_bio5.json", "extra_chem5.json", "extra_general3.json",
                                "extra_cyber6.json", "extra_bio6.json", "extra_chem6.json")
LONG_TRAIN_FILE = "long_train.json"  # long prose, trained on only (never in the calibration split)


def load_extra() -> dict[str, dict]:
    """Our later batches of hand-written training data (``data/extra_*.json``, Apache-2.0), keyed by
    batch name (``cyber``, ``cyber2``, ...)."""
    return {name.removeprefix("extra_").removesuffix(".json"): _data_json(name) for name in EXTRA_FILES
            if resources.files("lockgate.safeguards").joinpath("data", name).is_file()}


def all_framings() -> tuple[str, ...]:
    return FRAMINGS + tuple(load_extra()["general"]["framings"])


def _frame(f: str, phrase: str) -> str:
    return f.replace("{X}", phrase[:1].upper() + phrase[1:]).replace("{x}", phrase)


def _phrase_rows(rng: random.Random, framings: tuple[str, ...], phrases: list[str], key: str, kind: str, labels: frozenset[str],
                 source: str, gprefix: str, per_phrase: int) -> list[Example]:
    out = []
    for i, phrase in enumerate(phrases):
        for f in rng.sample(framings, per_phrase):
            text = _frame(f, phrase)
            if rng.random() < 0.25:
                text = text.lower()
            out.append(Example(text, labels, source, kind, group=f"{gprefix}:p{i}"))
    return out


def seed_examples(rng: random.Random, per_phrase: int = 5) -> list[Example]:
    seeds = load_seed_phrases()
    framings = all_framings()
    out: list[Example] = []
    for key, (kind, labels) in _PHRASE_KINDS.items():
        block = seeds[key]
        out += _phrase_rows(rng, framings, block["phrases"], key, kind, labels, f"seed:{key}", key, per_phrase)
        for i, q in enumerate(block["questions"]):
            out.append(Example(q, labels, f"seed:{key}", kind, group=f"{key}:q{i}"))
    return out + _extra_examples(rng, framings, per_phrase)


_CODE_INTROS = (
    "Here is my script:\n```\n{code}\n```\n{req}",
    "{req}\n\n{code}",
    "I wrote this:\n\n{code}\n\nCan you help? {req}",
    "```\n{code}\n```\n{req}",
)


def _extra_examples(rng: random.Random, framings: tuple[str, ...], per_phrase: int) -> list[Example]:
    ex = load_extra()
    out: list[Example] = []
    for batch in sorted(ex):  # cyber, cyber2, ...: the domain is the name without its batch number
        d = batch.rstrip("0123456789")
        if d not in DOMAINS:
            continue
        blk, lab = ex[batch], frozenset({d})
        out += _phrase_rows(rng, framings, blk["harmful_phrases"], d, "harmful", lab, f"extra:{d}", f"x{batch}", per_phrase)
        out += _phrase_rows(rng, framings, blk["hardneg_phrases"], d, "hardneg", frozenset(), f"extra:hardneg_{d}", f"xh{batch}", per_phrase)
        out += [Example(t, lab, f"extra:{d}", "harmful", group=f"x{batch}:t{i}") for i, t in enumerate(blk["harmful_texts"])]
        out += [Example(t, frozenset(), f"extra:hardneg_{d}", "hardneg", group=f"xh{batch}:t{i}") for i, t in enumerate(blk["hardneg_texts"])]
    cy = ex["cyber"]
    for key, lab, kind in (("code_requests_harmful", frozenset({"cyber"}), "harmful"), ("code_requests_benign", frozenset(), "hardneg")):
        for i, req in enumerate(cy[key]):
            for code in rng.sample(cy["code_contexts"], 3):
                text = rng.choice(_CODE_INTROS).format(code=code, req=req)
                out.append(Example(text, lab, f"extra:code:{kind}", kind, group=f"xcode:{key}:{i}", meta={"payload": req}))
    for batch in sorted(b for b in ex if b.startswith("general")):  # general, general2, ...
        tag = batch.removeprefix("general")
        gen = ex[batch]
        out += _phrase_rows(rng, framings, gen.get("benign_phrases", []), "benign", "benign", frozenset(), "extra:benign",
                            f"xb{tag}", per_phrase)
        out += [Example(t, frozenset(), "extra:benign", "benign", group=f"xb{tag}:t{i}") for i, t in enumerate(gen.get("benign_texts", []))]
        for d, texts in ex[batch].get("answers_harmful", {}).items():
            out += [Example(t, frozenset({d}), f"extra:answer:{d}", "harmful", group=f"xa{tag}{d}:{i}") for i, t in enumerate(texts)]
        for i, t in enumerate(ex[batch].get("answers_benign", [])):
            out.append(Example(t, frozenset(), "extra:answer:benign", "benign", group=f"xab{tag}:{i}"))
            out += [Example(p, frozenset(), "extra:answer:benign", "benign", group=f"xab{tag}:{i}")
                    for p in _prefixes(t, rng, ANSWER_PREFIXES)]
    return out


ANSWER_PREFIXES = 2  # the stream monitor judges an answer's growing prefix, so benign answers train cut short too


def _prefixes(text: str, rng: random.Random, n: int, min_words: int = 10) -> list[str]:
    """``n`` distinct cuts of ``text`` at word boundaries (only of benign answers: a harmful answer's opening
    is often as innocent as a benign one's, so its prefixes are not positives)."""
    words = text.split(" ")
    if len(words) <= min_words + 1:
        return []
    cuts = sorted(rng.sample(range(min_words, len(words)), min(n, len(words) - min_words)))
    return [" ".join(words[:c]) for c in cuts]


def long_examples() -> list[Example]:
    """Long ordinary prompts and long hard negatives (``data/long_train.json``, 250-650 words each): a long
    text's score is the max over many windows, so SOC tickets, outbreak reports or safety data sheets that only
    discuss attacks must be seen as negatives in training, window by window."""
    return [Example(p["text"], frozenset(), "extra:long", p["label"], group=f"xlong:{p['id']}")
            for p in _data_json(LONG_TRAIN_FILE)["prompts"]]


def benign_wrapped(rng: random.Random, templates: list[tuple[str, str]]) -> list[Example]:
    """Benign payloads inside the training role-play templates, so a wrapper alone doesn't raise scores."""
    payloads = load_extra()["general"]["roleplay_benign_payloads"]
    out = []
    for ti, (_name, tpl) in enumerate(templates):
        for pi in rng.sample(range(len(payloads)), 3):
            out.append(Example(tpl.replace("{prompt}", payloads[pi]), frozenset(), "extra:roleplay-benign", "benign",
                               group=f"xrp:{ti}", meta={"payload": payloads[pi]}))
    return out
