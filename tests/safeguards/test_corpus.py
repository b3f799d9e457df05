"""The hand-written training batches and how they become examples (no shared datasets needed)."""

import random

from lockgate.safeguards.handwritten import EXTRA_FILES, _extra_examples, _prefixes, all_framings, load_extra


def test_every_listed_batch_is_shipped_and_named_by_domain():
    batches = load_extra()
    assert len(batches) == len(EXTRA_FILES)
    for name in batches:
        assert name.rstrip("0123456789") in ("cyber", "bio", "chem", "general")


def test_prefixes_cut_at_word_boundaries():
    text = " ".join(f"w{i}" for i in range(30))
    cuts = _prefixes(text, random.Random(0), 2)
    assert len(cuts) == 2 and len(set(cuts)) == 2
    for c in cuts:
        assert text.startswith(c + " ") and len(c.split()) >= 10
    assert _prefixes("too short to cut at all", random.Random(0), 2) == []


def test_benign_answers_train_cut_short_in_their_own_group_and_harmful_answers_do_not():
    ex = _extra_examples(random.Random(0), all_framings(), 2)
    benign = [e for e in ex if e.source == "extra:answer:benign"]
    harmful = [e for e in ex if e.source.startswith("extra:answer:") and e.labels]
    full = {e.group: e.text for e in benign if not any(o.group == e.group and len(o.text) > len(e.text) for o in benign)}
    cut = [e for e in benign if e.text != full[e.group]]
    assert cut, "benign answers should also appear as prefixes"
    # a prefix shares its answer's group, so the calibration split never separates them
    assert all(full[e.group].startswith(e.text) for e in cut)
    groups = [e.group for e in harmful]
    assert len(groups) == len(set(groups)), "a harmful answer's opening is not a positive on its own"
