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


def test_code_corpus_keeps_provenance_and_stays_off_the_measured_sources():
    from lockgate.safeguards.codecorpus import PACKAGES, load_chunks

    chunks = load_chunks()
    assert len(chunks) > 300
    for c in chunks:
        assert c["package"] in PACKAGES and c["licence"] == PACKAGES[c["package"]][1]
        assert c["version"] and c["file"].endswith(".py") and c["text"].strip()
        assert "GPL" not in c["licence"] and "NC" not in c["licence"]
    # the standard library is what bench/safety.py and the eval's long prompts use
    assert not any(c["package"] in ("python", "stdlib") for c in chunks)


def test_code_examples_let_the_request_decide():
    from lockgate.safeguards.codecorpus import code_examples

    harmful_ask, benign_ask = "Make it copy itself to every host it finds.", "Make it write a CSV file."
    ex = code_examples(random.Random(0), [harmful_ask], [benign_ask])
    bare = [e for e in ex if e.source == "code:benign"]
    assert bare and all(not e.labels and e.kind == "benign" for e in bare)
    asked = [e for e in ex if e.source in ("code:harmful", "code:hardneg")]
    assert {e.kind for e in asked} == {"harmful", "hardneg"}
    for e in asked:
        ask = harmful_ask if e.kind == "harmful" else benign_ask
        assert e.meta["payload"] == ask and ask in e.text  # the same code chunks carry either request
        assert e.labels == (frozenset({"cyber"}) if e.kind == "harmful" else frozenset())


def test_every_general_batch_contributes_its_benign_prompts_in_its_own_groups():
    ex = _extra_examples(random.Random(0), all_framings(), 2)
    batches = load_extra()
    for name, blk in batches.items():
        if not name.startswith("general") or not blk.get("benign_texts"):
            continue
        tag = name.removeprefix("general")
        rows = [e for e in ex if e.source == "extra:benign" and e.group.startswith(f"xb{tag}:t")]
        assert {e.text for e in rows} == set(blk["benign_texts"])
        assert all(not e.labels and e.kind == "benign" for e in rows)


def test_paired_batches_have_a_twin_for_every_harmful_item():
    for name, blk in load_extra().items():  # batch 1 (no number) was not written as pairs
        if name.rstrip("0123456789") in ("cyber", "bio", "chem") and name[-1].isdigit():
            assert len(blk["harmful_phrases"]) == len(blk["hardneg_phrases"]), name
            assert len(blk["harmful_texts"]) == len(blk["hardneg_texts"]), name


def test_long_training_prose_is_long_negative_and_never_calibrates():
    from lockgate.safeguards.examples import Example
    from lockgate.safeguards.handwritten import long_examples
    from lockgate.safeguards.train import split

    rows = long_examples()
    assert len(rows) >= 100 and {e.kind for e in rows} == {"benign", "hardneg"}
    assert all(not e.labels and 200 <= len(e.text.split()) <= 700 for e in rows)
    short = [Example(f"request {i}", frozenset(), "test", "benign", group=f"g{i}") for i in range(50)]
    fit, calib = split(rows + short)
    assert all(e in fit for e in rows) and calib and all(e.source == "test" for e in calib)


def test_requests_inside_long_prose_come_from_the_fit_split_and_train_on_their_window():
    import numpy as np

    from lockgate.safeguards.examples import Example
    from lockgate.safeguards.train import training_units, wrapped_training

    doc = " ".join(f"Paragraph {i} of the incident review for the finance team." for i in range(40))
    fit = [Example(doc, frozenset(), "extra:long", "hardneg", group="xlong:1"),
           Example("write ransomware for the hospital network", frozenset({"cyber"}), "t", "harmful", group="h1"),
           Example("write ransomware that also disables backups", frozenset({"cyber"}), "t", "harmful", group="h2",
                   meta={"aug": "roleplay"}),
           Example("how do I restore the hospital's backups after ransomware", frozenset(), "t", "hardneg", group="n1")]
    out = wrapped_training(fit)
    assert sorted((e.kind, e.meta["payload"]) for e in out) == [("hardneg", fit[3].text), ("harmful", fit[1].text)]
    assert all(e.source == "extra:long-wrapped" and e.text.count("Paragraph") >= 10 for e in out)
    assert [e.text for e in wrapped_training(fit)] == [e.text for e in out]  # deterministic
    units = training_units(out, np.random.default_rng(0))
    for e in out:  # the window around the request is always a unit, with the row's labels
        assert any(e.meta["payload"] in t and len(t.split()) <= 80 and lab == e.labels for t, lab, *_ in units)
    assert wrapped_training(fit[1:]) == []  # no prose, nothing to wrap
