"""The decision engine on its own: Cedar's verdicts, re-route chains, failures, and the decision cache."""

from __future__ import annotations

import cedarpy
import pytest

from lockgate.directives import cedar
from lockgate.directives.engine import Engine, access_rule
from lockgate.directives.model import Directive
from lockgate.directives.store import State

CATALOG = {"fable-5", "mythos-5", "opus-4.8", "haiku-5"}
CTX = {"country": "US", "api": "openai"}


def person(us: bool = False, programs=(), org: str = "acme", cits=()) -> dict:
    return {"us_person": us, "citizenships": list(cits), "permanent_residence": "", "protected_individual": False,
            "programs": list(programs), "org": org, "assurance": "org" if cits else "none"}


def directive(id: str, models: list[str], when: str, effect: str = "reroute", fallback: str | None = "opus-4.8",
              notice: str = "") -> Directive:
    return Directive(id=id, title=id, models=models, when=when, effect=effect,
                     fallback=fallback if effect == "reroute" else None, notice=notice)


def engine(*directives: Directive, rules: list[Directive] | None = None, version: int = 1) -> Engine:
    eng = Engine(CATALOG, rules or [])
    eng.load(State(version, list(directives), frozenset(m for d in directives for m in d.models)))
    return eng


JUNE12 = directive("june12", ["fable-5", "mythos-5"], "!principal.us_person", notice="not for you")
GLASSWING = access_rule("mythos-5", 'principal.programs.contains("glasswing")', "reroute", "opus-4.8", "members")


def test_forbid_wins_and_reroutes_to_a_reauthorised_fallback():
    eng = engine(JUNE12, rules=[GLASSWING])
    d = eng.decide(person(us=False), "fable-5", CTX)
    assert (d.effect, d.model, d.directives, d.notice) == ("reroute", "opus-4.8", ("june12",), "not for you")
    assert eng.decide(person(us=True), "fable-5", CTX).effect == "allow"
    both = eng.decide(person(us=False), "mythos-5", CTX)  # in policy order: catalog rules first
    assert both.model == "opus-4.8" and both.directives == ("catalog:mythos-5", "june12")
    assert eng.decide(person(us=True, programs=["glasswing"]), "mythos-5", CTX).effect == "allow"
    assert eng.decide(person(us=False), "opus-4.8", CTX).effect == "allow"


def test_a_fallback_that_is_itself_forbidden_is_followed_or_denied():
    chain = engine(JUNE12, directive("opus-off", ["opus-4.8"], "!principal.us_person", fallback="haiku-5"))
    d = chain.decide(person(), "fable-5", CTX)
    assert (d.effect, d.model, d.directives) == ("reroute", "haiku-5", ("june12", "opus-off"))
    denied = engine(JUNE12, directive("opus-deny", ["opus-4.8"], "true", effect="deny", notice="no opus"))
    d = denied.decide(person(), "fable-5", CTX)
    assert (d.effect, d.model, d.notice) == ("deny", "", "no opus")
    assert d.reason == "denied by opus-deny"


def test_chains_that_loop_or_leave_the_catalog_end_in_deny():
    loop = engine(directive("a", ["fable-5"], "true", fallback="opus-4.8"),
                  directive("b", ["opus-4.8"], "true", fallback="fable-5"))
    d = loop.decide(person(), "fable-5", CTX)
    assert d.effect == "deny" and "loops back" in d.reason
    out = engine(directive("c", ["fable-5"], "true", fallback="gpt-x"))
    d = out.decide(person(), "fable-5", CTX)
    assert d.effect == "deny" and "not in the catalog" in d.reason


def test_a_failed_evaluation_denies():
    # The request has no `country`, so the condition cannot be evaluated: deny, never allow.
    eng = engine(directive("geo", ["fable-5"], 'context.country == "CN"'))
    d = eng.decide(person(us=True), "fable-5", {"api": "openai"})
    assert d.effect == "deny" and d.reason.startswith("policy evaluation failed")
    # Attributes of the wrong type (not what the schema says) fail to evaluate as well.
    d = engine(JUNE12).decide({**person(), "us_person": "no"}, "fable-5", CTX)
    assert d.effect == "deny" and d.reason.startswith("policy evaluation failed")
    # ... and attributes Cedar cannot even parse into an entity ...
    d = engine(JUNE12).decide({**person(), "us_person": {"__entity": {"type": 1}}}, "fable-5", CTX)
    assert d.effect == "deny" and d.reason.startswith("policy evaluation failed")
    # ... and attributes that are not even JSON.
    d = engine(JUNE12).decide({**person(), "us_person": object()}, "fable-5", CTX)
    assert d.effect == "deny" and d.reason.startswith("policy evaluation failed")


def test_context_is_passed_when_a_policy_reads_it():
    eng = engine(directive("geo", ["fable-5"], 'context.country == "CN" || context["api"] == "anthropic"'))
    assert eng.decide(person(), "fable-5", {"country": "CN", "api": "openai"}).effect == "reroute"
    assert eng.decide(person(), "fable-5", {"country": "US", "api": "openai"}).effect == "allow"
    assert eng.decide(person(), "fable-5", {"country": "US", "api": "anthropic"}).effect == "reroute"
    assert engine(directive("ip", ["fable-5"], 'context has ip')).decide(
        person(), "fable-5", {**CTX, "ip": "10.0.0.1"}).effect == "reroute"


def test_what_the_policies_read():
    c = cedar.compile_set([JUNE12, GLASSWING])
    assert c.used == ("programs", "us_person") and not c.reads_context
    c = cedar.compile_set([directive("g", ["fable-5"], 'principal.org == "x" && context has country')])
    assert c.used == ("org",) and c.reads_context
    # An escape sequence could spell any name in a string literal: then everything counts as read.
    escaped = directive("e", ["fable-5"], 'principal["us_\\x70erson"] && context has api')
    c = cedar.compile_set([escaped])
    assert c.used == tuple(sorted(cedar.ATTRIBUTES)) and c.reads_context
    eng = engine(escaped)
    assert eng.decide(person(us=True), "fable-5", CTX).directives == ("e",)
    assert eng.decide(person(us=False), "fable-5", CTX).effect == "allow"


def test_decisions_are_shared_by_projection_and_dropped_with_the_version():
    eng = engine(JUNE12)
    a = eng.decide(person(org="acme", cits=["DE"]), "fable-5", CTX)
    b = eng.decide(person(org="other", cits=["CN"]), "fable-5", {"country": "CN", "api": "anthropic"})
    assert a is b  # org, citizenships and the context are read by no policy
    geo = engine(directive("geo", ["fable-5"], 'context.country == "CN"'))
    assert geo.decide(person(), "fable-5", CTX) is not geo.decide(person(), "fable-5", {**CTX, "api": "x"})
    assert eng.decide(person(us=True), "fable-5", CTX) is not a
    eng.load(State(2, [JUNE12], frozenset(JUNE12.models)))
    c = eng.decide(person(), "fable-5", CTX)
    assert c == a and c is not a  # a new version decides afresh
    eng.load(State(3, [], frozenset(JUNE12.models)))
    assert eng.decide(person(), "fable-5", CTX).effect == "allow"


def test_the_native_call_reads_as_cedarpys_public_api():
    eng = engine(JUNE12, directive("geo", ["haiku-5"], 'context.country == "CN"', effect="deny"), rules=[GLASSWING])
    compiled = eng._v.compiled
    models = ["fable-5", "mythos-5", "opus-4.8", "haiku-5"]
    for attrs in (person(), person(us=True, programs=["glasswing"])):
        ents = cedar.entities_json(attrs)
        for ctx in ('{"country":"CN"}', "{}"):
            ours = cedar.authorize(compiled, ents, models, ctx)
            public = cedarpy.is_authorized_batch([{**compiled.request(m), "context": ctx} for m in models],
                                                 compiled.policies, ents)
            for m, r in zip(models, public):
                fired = sorted(compiled.reasons[p][1] for p in r.diagnostics.reasons if compiled.reasons[p][1])
                allowed, got_fired, errors = ours[m]
                assert (allowed, sorted(got_fired), errors) == (
                    r.allowed and not r.diagnostics.errors, fired, list(r.diagnostics.errors))
    assert not cedar.authorize(compiled, cedar.entities_json(person()), ["haiku-5"], "{}")["haiku-5"][0]


def test_without_the_native_entry_point_the_public_api_decides_the_same(monkeypatch):
    people = (person(), person(us=True, programs=["glasswing"]), {**person(), "us_person": 1})
    cases = [(attrs, model, ctx) for attrs in people for model in ("fable-5", "mythos-5", "haiku-5")
             for ctx in (CTX, {"country": "CN", "api": "openai"}, {})]
    directives = (JUNE12, directive("geo", ["haiku-5"], 'context.country == "CN"', effect="deny"))
    native = engine(*directives, rules=[GLASSWING])
    expected = [native.decide(*case) for case in cases]
    monkeypatch.setattr(cedar, "_batch", None)
    public = engine(*directives, rules=[GLASSWING])
    got = [public.decide(*case) for case in cases]
    for e, g in zip(expected, got):  # error texts may be worded differently; the verdicts may not
        assert (e.effect, e.model, e.directives, e.notice) == (g.effect, g.model, g.directives, g.notice)
        assert e.reason.split(":")[0] == g.reason.split(":")[0]
    assert {d.effect for d in got} == {"allow", "reroute", "deny"}


@pytest.mark.parametrize("model", ["fable-5", "mythos-5", "opus-4.8", "not-in-catalog"])
def test_uncached_and_cached_decisions_agree(model):
    eng = engine(JUNE12, rules=[GLASSWING])
    for attrs in (person(), person(us=True), person(programs=["glasswing"]), person(True, ["glasswing"])):
        first = eng.decide(attrs, model, CTX)
        eng.forget()
        assert eng.decide(attrs, model, CTX) == first == eng.decide(attrs, model, CTX)


def test_when_several_directives_fire_the_first_applied_decides_the_fallback():
    first = directive("first", ["fable-5"], "true", fallback="haiku-5", notice="first notice")
    second = directive("second", ["fable-5"], "true", fallback="opus-4.8", notice="second notice")
    for _ in range(20):  # Cedar reports the policies that fired in no particular order
        eng = engine(first, second)
        d = eng.decide(person(), "fable-5", CTX)
        assert (d.model, d.directives, d.notice) == ("haiku-5", ("first", "second"), "first notice")
        d = engine(second, first).decide(person(), "fable-5", CTX)
        assert (d.model, d.directives, d.notice) == ("opus-4.8", ("second", "first"), "second notice")


def test_made_up_model_names_are_decided_but_not_kept_without_bound():
    eng = engine(JUNE12)
    for i in range(5000):
        assert eng.decide(person(), f"made-up-{i}", CTX).effect == "allow"
    compiled = eng._v.compiled
    assert len(compiled._requests) <= 4096 and len(compiled._batches) <= 4096


def test_only_models_some_policy_names_are_sent_to_cedar(monkeypatch):
    asked: list[list[str]] = []
    native = cedar._batch

    def counting(reqs, *args):
        asked.append([r["resource"]["id"] for r in reqs])
        return native(reqs, *args)

    eng = engine(JUNE12, directive("geo", ["haiku-5"], 'context.country == "CN"', effect="deny"), rules=[GLASSWING])
    monkeypatch.setattr(cedar, "_batch", counting)
    d = eng.decide(person(), "fable-5", CTX)  # re-routed to opus-4.8, which no policy names
    assert (d.effect, d.model) == ("reroute", "opus-4.8") and asked == [["fable-5"]]
    asked.clear()
    # A context that lacks what a policy reads cannot matter to a model that policy does not name.
    assert eng.decide(person(), "opus-4.8", {}).effect == "allow" and asked == []
    assert eng.decide(person(), "haiku-5", {}).effect == "deny" and asked == [["haiku-5"]]
    # What is skipped is what Cedar answers anyway, for every kind of principal and context.
    compiled = eng._v.compiled
    for attrs in (person(), person(us=True, programs=["glasswing"]), {}):
        for ctx in ("{}", '{"country":"CN"}'):
            (r,) = cedarpy.is_authorized_batch([{**compiled.request("opus-4.8"), "context": ctx}],
                                               compiled.policies, cedar.entities_json(attrs))
            assert r.allowed and not r.diagnostics.errors
            assert cedar.authorize(compiled, cedar.entities_json(attrs), ["opus-4.8"], ctx)["opus-4.8"] == (
                True, [], [])
