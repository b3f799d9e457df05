"""The June-12 order end to end, through the official SDKs: who keeps which model, and why."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anthropic
import openai
import pytest

from support import run_gateway
from lockgate import config as cfg
from lockgate.directives import model as dmodel
from lockgate.directives import service
from lockgate.identity import keys
from lockgate.identity.importer import import_csv

ROOT = Path(__file__).resolve().parents[1]
NOTICE = "Fable 5 and Mythos 5 are unavailable to you under a US export-control directive"


def june12_config(fake_url: str) -> dict:
    conf = cfg.load(ROOT / "examples/june-12/lockgate.yaml").model_dump()
    for m in conf["models"]:  # same catalog and rules, answered by the fake upstream for speed
        m["deployments"] = [{"provider": "openai", "model": "echo", "base_url": f"{fake_url}/v1"}]
    return conf


def people_csv(path: Path) -> Path:
    now = datetime.now(timezone.utc)
    ok, old, gone = (now + timedelta(days=300)).isoformat(), (now - timedelta(days=400)).isoformat(), \
        (now - timedelta(days=30)).isoformat()
    rows = [
        ("ava", "acme", "US", "", "false", "", "kyc", ok),
        ("bo", "acme", "US;CA", "CA", "false", "", "kyc", ok),  # dual national living in Toronto
        ("chen", "provider", "CN", "", "false", "", "org", ok),  # foreign employee inside the US
        ("dana", "acme", "DE", "US", "false", "", "kyc", ok),  # green card
        ("eli", "", "", "", "", "", "self", ""),  # no attestation
        ("fay", "shieldworks", "US", "", "false", "glasswing", "kyc", ok),
        ("gus", "shieldworks", "IN", "", "false", "glasswing", "org", ok),
        ("hana", "acme", "US", "", "false", "", "kyc", gone),  # KYC expired last month
        ("ivan", "acme", "SY", "", "true", "", "kyc", ok),  # refugee: protected individual
        ("self", "acme", "US", "", "false", "", "self", ok),  # only self-declared
    ]
    p = path / "people.csv"
    p.write_text("id,name,org,citizenships,permanent_residence,protected_individual,programs,assurance,verified_at,"
                 "expires_at\n" + "\n".join(f"{i},{i.title()},{o},{c},{r},{pi},{pg},{a},{old},{e}"
                                             for i, o, c, r, pi, pg, a, e in rows) + "\n")
    return p


@pytest.fixture
def june12(fake, store, tmp_path):
    import_csv(store, people_csv(tmp_path))
    conf = june12_config(fake.url)
    with run_gateway(conf, store) as gw:
        gw.conf = cfg.Config.model_validate(conf)
        gw.keys = {p: keys.create_key(store, p)[0] for p in
                   ["ava", "bo", "chen", "dana", "eli", "fay", "gus", "hana", "ivan", "self"]}
        yield gw


def ask(gw, who: str, model: str, api: str = "openai"):
    """Returns (served model, directives header, notice header) as a client sees them."""
    if api == "openai":
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.keys[who], max_retries=0)
        r = c.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "hi"}])
        body_model = r.parse().model
    else:
        c = anthropic.Anthropic(base_url=gw.url, api_key=gw.keys[who], max_retries=0)
        r = c.messages.with_raw_response.create(model=model, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
        body_model = r.parse().model
    assert r.headers["lockgate-served-model"] == body_model
    return body_model, r.headers.get("lockgate-directives"), r.headers.get("lockgate-notice")


def wait_for(fn, expect, timeout=5.0):
    deadline = time.time() + timeout
    while True:
        got = fn()
        if got == expect or time.time() > deadline:
            return got
        time.sleep(0.05)


US = ["ava", "bo", "dana", "fay", "ivan"]
FOREIGN = ["chen", "eli", "gus", "hana", "self"]


def test_before_the_order_everyone_has_fable_and_glasswing_has_mythos(june12):
    for who in US + FOREIGN:
        assert ask(june12, who, "fable-5")[0] == "fable-5"
    for who in ["fay", "gus"]:
        assert ask(june12, who, "mythos-5")[0] == "mythos-5"
    served, fired, notice = ask(june12, "ava", "mythos-5")
    assert (served, fired) == ("opus-4.8", "catalog:mythos-5") and "Glasswing" in notice


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_order_applied_hot_then_revoked(june12, api):
    d = dmodel.load(ROOT / "examples/june-12/directive.yaml")
    service.apply(june12.store, june12.conf, d, "test")
    assert wait_for(lambda: ask(june12, "chen", "fable-5", api)[0], "opus-4.8") == "opus-4.8"
    for who in US:
        assert ask(june12, who, "fable-5", api)[0] == "fable-5", who
    for who in FOREIGN:
        served, fired, notice = ask(june12, who, "fable-5", api)
        assert served == "opus-4.8" and fired == d.id and NOTICE in notice, who
    # mythos-5: only Glasswing members who are also US persons
    assert ask(june12, "fay", "mythos-5", api)[0] == "mythos-5"
    served, fired, notice = ask(june12, "gus", "mythos-5", api)
    assert served == "opus-4.8" and d.id in fired
    assert ask(june12, "ava", "mythos-5", api)[0] == "opus-4.8"
    service.revoke(june12.store, d.id, "test")
    assert wait_for(lambda: ask(june12, "chen", "fable-5", api)[0], "fable-5") == "fable-5"
    assert ask(june12, "gus", "mythos-5", api)[0] == "mythos-5"


def test_future_directive_has_no_effect_until_then(june12):
    start = datetime.now(timezone.utc) + timedelta(seconds=3)
    d = dmodel.load(ROOT / "examples/june-12/directive.yaml").model_copy(update={"effective_from": start})
    service.apply(june12.store, june12.conf, d, "test")
    time.sleep(0.8)  # applied and propagated, but not yet effective
    if datetime.now(timezone.utc) < start - timedelta(seconds=0.5):
        assert ask(june12, "chen", "fable-5")[0] == "fable-5"
    while datetime.now(timezone.utc) < start:
        time.sleep(0.05)
    assert wait_for(lambda: ask(june12, "chen", "fable-5")[0], "opus-4.8") == "opus-4.8"


def test_deny_directive_is_a_403_with_the_notice(june12):
    d = dmodel.Directive(id="deny-sy", title="t", models=["opus-4.8"], when='principal.citizenships.contains("SY")',
                         effect="deny", notice="Not for you, by order.")
    service.apply(june12.store, june12.conf, d, "test")
    c = openai.OpenAI(base_url=june12.url + "/v1", api_key=june12.keys["ivan"], max_retries=0)

    def status():
        try:
            c.chat.completions.create(model="opus-4.8", messages=[{"role": "user", "content": "hi"}])
            return 200
        except openai.PermissionDeniedError as e:
            assert "Not for you" in e.message and e.response.headers["lockgate-directives"] == "deny-sy"
            return 403

    assert wait_for(status, 403) == 403
    assert ask(june12, "ava", "opus-4.8")[0] == "opus-4.8"


def test_misspelt_attribute_is_rejected_at_plan_time(june12):
    d = dmodel.load(ROOT / "examples/june-12/directive.yaml").model_copy(update={"when": "!principal.us_persn"})
    with pytest.raises(dmodel.DirectiveError, match="us_persn"):
        service.plan(june12.store, june12.conf, d)
    with pytest.raises(dmodel.DirectiveError):
        service.apply(june12.store, june12.conf, d, "test")


def test_plan_counts_who_changes(june12):
    d = dmodel.load(ROOT / "examples/june-12/directive.yaml")
    p = service.plan(june12.store, june12.conf, d).to_dict()
    assert p["principals"] == 10
    assert p["affected_principals"] == len(FOREIGN)
    assert p["changes"]["fable-5: allow -> reroute opus-4.8"] == len(FOREIGN)
    assert p["changes"]["mythos-5: allow -> reroute opus-4.8"] == 1  # gus, the foreign Glasswing member
    assert p["by_org"] == {"provider": 1, "(none)": 1, "shieldworks": 1, "acme": 2}
    assert p["by_citizenship"]["CN"] == 1 and p["by_citizenship"]["IN"] == 1
    assert "US" not in p["by_citizenship"] or p["by_citizenship"]["US"] == 0
