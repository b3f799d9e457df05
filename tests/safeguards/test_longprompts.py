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
