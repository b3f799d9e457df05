"""The eval's metrics from scored rows (no classifier, no datasets)."""

import math

from lockgate.safeguards.evaluate import Scored, _metrics
from lockgate.safeguards.examples import Example


def _row(kind, labels, flagged, stage=2, ms=1.0, source="s"):
    scores = {"cyber": 0.9 if flagged else 0.1, "bio": 0.0, "chem": 0.0}
    return Scored(Example("t", frozenset(labels), source, kind, "g"), scores, flagged, "cyber" if flagged else None, ms, stage)


def test_long_benign_prompts_get_their_own_false_positive_rate_and_latency():
    res = {
        "harmful": [_row("harmful", {"cyber"}, True), _row("harmful", {"cyber"}, False)],
        "benign": [_row("benign", (), False)] * 4,
        "hardneg": [_row("hardneg", (), False)] * 2,
        "benign_long": [_row("benign", (), True, stage=3, ms=40.0, source="long: code review")]
        + [_row("benign", (), False, ms=5.0, source="long: README summary")] * 3,
    }
    rep = _metrics(res, {}, None)
    o = rep["overall"]
    assert o["tpr"] == 0.5 and o["fpr_benign"] == 0.0
    assert o["fpr_benign_long"] == 0.25 and o["n_benign_long"] == 4
    assert rep["latency"]["stage3_rate_benign_long"] == 0.25
    assert rep["latency"]["p50_ms_benign_long"] == 5.0
    assert rep["sets"]["benign_long / long: code review"]["flag_rate"] == 1.0
    assert math.isnan(_metrics({"harmful": res["harmful"]}, {}, None)["overall"]["fpr_benign_long"])


def test_operating_points_take_the_lowest_threshold_within_each_fpr_budget():
    import numpy as np

    from lockgate.safeguards.metrics import operating_points

    pos = np.array([0.95, 0.9, 0.8, 0.6, 0.4, 0.2])
    neg = np.array([0.7] + [0.5] + [0.1] * 48)  # 50 negatives: one at 0.7 (2 %), one at 0.5 (another 2 %)
    benign = np.array([0.3] + [0.0] * 99)
    p1, p2, p4 = operating_points(pos, neg, benign, (0.01, 0.02, 0.04))
    assert p1["threshold"] == 0.8 and p1["fpr"] == 0.0 and p1["tpr"] == 0.5  # 0.7 itself would cost 2 %
    assert p2["threshold"] == 0.6 and p2["fpr"] == 0.02 and p2["tpr"] == 4 / 6
    assert p4["threshold"] == 0.2 and p4["fpr"] == 0.04 and p4["tpr"] == 1.0  # down to the 0.1 negatives
    assert p2["fpr_benign"] == 0.0 and p4["fpr_benign"] == 0.01  # the benign prompt at 0.3 is flagged at 0.2
    assert operating_points(pos, np.array([])) == []
    assert np.isnan(operating_points(pos, neg)[0]["fpr_benign"])


def test_extra_labelled_files_take_known_labels_and_refuse_the_rest(tmp_path):
    import re

    import pytest

    from lockgate.safeguards.labelled import LabelledFileError, load_labelled_file

    good = tmp_path / "good.csv"
    good.write_text("prompt,label\nhow to hack a bank,cyber\nhow to bake bread,none\nhow to patch a server,hard-negative\n")
    assert [(e.kind, sorted(e.labels)) for e in load_labelled_file(good)] == [
        ("harmful", ["cyber"]), ("benign", []), ("hardneg", [])]
    for name, body, says in (
        ("typo.jsonl", '{"text": "a", "label": "benign"}\n{"text": "b", "label": "cyber-attack"}\n', "typo.jsonl:2: label 'cyber-attack'"),
        ("nolabel.csv", "text,label\nhow to hack a bank,\n", "nolabel.csv:2: no label"),
        ("notext.csv", "question,label\n,cyber\n", "notext.csv:2: no text"),
        ("broken.jsonl", '{"text": "a", "label": "bio"}\n{oops\n', "broken.jsonl:2: not JSON"),
    ):
        f = tmp_path / name
        f.write_text(body)
        with pytest.raises(LabelledFileError, match=re.escape(says)):  # never skipped, never counted as benign
            load_labelled_file(f)


def test_a_named_datasets_folder_is_used_or_refused(tmp_path, monkeypatch):
    import pytest

    from lockgate.safeguards.corpus import datasets_root

    monkeypatch.delenv("LOCKGATE_DATASETS", raising=False)
    with pytest.raises(FileNotFoundError, match="--datasets"):
        datasets_root(tmp_path)
    monkeypatch.setenv("LOCKGATE_DATASETS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="LOCKGATE_DATASETS"):
        datasets_root()
    (tmp_path / "harmbench").mkdir()
    assert datasets_root() == tmp_path.resolve()
