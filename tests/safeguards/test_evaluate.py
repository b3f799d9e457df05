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
