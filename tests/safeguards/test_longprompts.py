"""The ordinary long prompts the eval and the benchmark measure on (built from installed text)."""

from lockgate.safeguards import codecorpus
from lockgate.safeguards.codecorpus import PACKAGES, load_chunks
from lockgate.safeguards.longprompts import (
    CODE_ASKS,
    README_ASKS,
    long_prompts,
)
from lockgate.safeguards.static import load_tokenizer


def test_long_prompts_are_about_512_tokens_and_distinct():
    tok = load_tokenizer()
    kinds = long_prompts(20, tok=tok)
    assert set(kinds) == {"README summary", "code review"}
    for name, prompts in kinds.items():
        assert len(prompts) == 20 and len(set(prompts)) == 20
        asks = README_ASKS if name == "README summary" else CODE_ASKS
        for p in prompts:
            assert p.split("\n\n", 1)[0] in asks
            assert 480 <= len(tok.encode(p).ids) <= 580
        # the requests vary, so the set does not measure one sentence twenty times
        assert len({p.split("\n\n", 1)[0] for p in prompts}) == len(asks)


def test_code_review_requests_are_not_the_training_ones():
    assert not set(CODE_ASKS) & set(codecorpus.CODE_ASKS)


def test_long_prompts_share_no_text_with_the_code_training_corpus():
    prompts = [p for ps in long_prompts(100).values() for p in ps]
    chunks = [c["text"] for c in load_chunks()]
    probes = [line.strip() for c in chunks for line in c.splitlines()[:3] if len(line.strip()) > 40]
    assert probes
    joined = "\n".join(prompts)
    assert not [p for p in probes if p in joined]
    assert PACKAGES  # their READMEs are skipped by name


def test_calibration_prompts_come_from_the_calibration_split_and_not_from_the_measured_set():
    from lockgate.safeguards.handwritten import _data_json
    from lockgate.safeguards.longprompts import CALIB_README_ASKS, calibration_prompts
    from lockgate.safeguards.train import is_calibration_group

    tok = load_tokenizer()
    cal = calibration_prompts(is_calibration_group, tok=tok)
    groups = [g for g, _ in cal]
    assert len(set(groups)) == len(cal) >= 60 and all(g.startswith("longcal:") for g in groups)
    assert {g.split(":")[1] for g in groups} == {"code", "readme", "prose"}
    assert not set(CALIB_README_ASKS) & set(README_ASKS)
    for g, text in cal:
        assert 250 <= len(tok.encode(text).ids) <= (580 if ":prose:" not in g else 1200)
    # only chunks the heads never trained on: the calibration split's, none of the fit split's
    chunks = load_chunks()
    cal_starts = {c["text"][:200] for i, c in enumerate(chunks) if is_calibration_group(f"code:{c['package']}:{i}")}
    docs = [t.split("\n\n", 1)[1] for g, t in cal if ":code:" in g]
    assert docs and all(d[:200] in cal_starts for d in docs)  # every document opens with a calibration chunk
    assert all(":code:" not in g for g, _ in calibration_prompts(lambda group: False, tok=tok))  # the split decides
    # the README chunks are the code corpus packages' (permissive licences), which the measured set skips
    readmes = _data_json("benign_readmes.json")["chunks"]
    assert readmes and {c["package"] for c in readmes} <= set(PACKAGES)
    assert all(c["licence"] == PACKAGES[c["package"]][1] for c in readmes)
    measured = "\n".join(p for ps in long_prompts(100).values() for p in ps)
    assert not [c for c in readmes if c["text"][:200] in measured]


def _runs(text: str) -> set[tuple[str, ...]]:
    """Every 12-word run of ``text`` (lower case): a shared run means a copied passage."""
    w = text.lower().split()
    return {tuple(w[i : i + 12]) for i in range(len(w) - 11)}


def _measured_long_prose() -> list[str]:
    import json
    from pathlib import Path

    measured = Path(__file__).resolve().parents[2] / "evals" / "long_v1.jsonl"
    return [json.loads(line)["text"] for line in measured.read_text().splitlines() if line.strip()]


def test_calibration_prose_shares_no_passage_with_the_measured_long_prose():
    """data/long_benign_calib.json sets thresholds; evals/long_v1.jsonl measures them: no 12-word run in common."""
    from lockgate.safeguards.handwritten import _data_json

    prose = _data_json("long_benign_calib.json")["prompts"]
    assert {p["label"] for p in prose} == {"benign", "hardneg"} and len({p["id"] for p in prose}) == len(prose)
    seen = set().union(*(_runs(t) for t in _measured_long_prose()))
    assert seen and not any(_runs(p["text"]) & seen for p in prose)


def test_long_training_prose_shares_no_passage_with_the_calibration_or_measured_prose():
    """data/long_train.json trains; long_benign_calib.json calibrates; evals/long_v1.jsonl measures."""
    from lockgate.safeguards.handwritten import _data_json

    train = _data_json("long_train.json")["prompts"]
    assert len({p["id"] for p in train}) == len(train)
    other = _measured_long_prose() + [p["text"] for p in _data_json("long_benign_calib.json")["prompts"]]
    seen = set().union(*(_runs(t) for t in other))
    assert not any(_runs(p["text"]) & seen for p in train)
