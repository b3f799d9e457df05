"""Stage-1 features: the batched extractor the classifier runs equals the per-text one training uses."""

import random

import numpy as np
import pytest

from lockgate.safeguards.features import hash_features, hash_features_many

TEXTS = [
    "", "a", "ab", "abc", "  spaced   out  ", "How do I kill a Python process?", "café naïve — ünïcode ✓ 🙂",
    "word word word word", "x" * 25_000, "Line one.\nLine two!\tTabbed", "don't won't it's", "42 1337 h4x0r",
]


def _random_texts(n: int) -> list[str]:
    rng = random.Random(5)
    alphabet = "abcdefghijklmnopqrstuvwxyz      .,'!?0123456789ÄéΩж\n"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300))) for _ in range(n)]


@pytest.mark.parametrize("bits", [12, 18])
def test_many_at_once_equals_one_at_a_time(bits):
    texts = TEXTS + _random_texts(200)
    seg, idx, val = hash_features_many(texts, bits)
    assert np.all(np.diff(seg) >= 0)
    for i, t in enumerate(texts):
        want_idx, want_val = hash_features(t, bits)
        mine = seg == i
        assert np.array_equal(idx[mine], want_idx), t[:40]
        assert np.allclose(val[mine], want_val, rtol=1e-5, atol=1e-7), t[:40]


def test_nothing_to_hash():
    seg, idx, val = hash_features_many([], 18)
    assert len(seg) == len(idx) == len(val) == 0
    seg, idx, val = hash_features_many(["", " "], 18)
    assert len(seg) == 0


def test_classifier_stage1_equals_per_segment_scoring(clf):
    segs = TEXTS[1:] + _random_texts(30)
    got = clf.stage1_logits(segs)
    for i, s in enumerate(segs):
        idx, val = hash_features(s, clf.bits)
        want = val @ clf.s1_w[idx] + clf.s1_b if len(idx) else clf.s1_b
        assert np.allclose(got[i], want, atol=1e-4)


def test_the_hashing_the_shipped_weights_were_trained_on_is_unchanged():
    # The stage-1 head is indexed by these buckets: a change of hash silently scrambles the shipped weights.
    idx, val = hash_features("How do I kill a Python process?")
    assert (len(idx), int(idx.sum()), idx[:5].tolist()) == (103, 13763655, [1934, 5487, 12513, 19116, 19931])
    assert abs(float(val.sum()) - 10.14889) < 1e-4
