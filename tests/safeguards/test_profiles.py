import pytest
from pydantic import ValidationError

from lockgate.safeguards import Decision, DomainRule, Profile, Verdict, default_profiles


def _v(cyber=0.0, bio=0.0, chem=0.0, thr=0.5):
    scores = {"cyber": cyber, "bio": bio, "chem": chem}
    over = [d for d, s in scores.items() if s >= thr]
    return Verdict(scores=scores, domain=max(over, key=scores.get) if over else None, flagged=bool(over),
                   thresholds={d: thr for d in scores})


def test_default_profiles():
    p = default_profiles()
    assert set(p) == {"strict", "defender"}
    assert p["strict"].on_error == "refuse" and p["defender"].on_error == "refuse"
    assert p["defender"].domains["cyber"].action == "monitor"
    assert p["defender"].domains["bio"].action == "refuse"


def test_decide_maps_actions():
    strict, defender = default_profiles()["strict"], default_profiles()["defender"]
    assert strict.decide(_v()).action == "allow"
    d = strict.decide(_v(cyber=0.9))
    assert (d.action, d.domain) == ("refuse", "cyber") and d.blocking
    m = defender.decide(_v(cyber=0.9))
    assert (m.action, m.domain) == ("monitor", "cyber") and not m.blocking
    # a blocking domain wins over a monitored one even when its score is lower
    b = defender.decide(_v(cyber=0.99, bio=0.7))
    assert (b.action, b.domain) == ("refuse", "bio")


def test_reroute_from_dict_and_threshold_override():
    p = Profile.model_validate({"domains": {"cyber": {"action": "reroute", "model": "opus-4.8", "threshold": 0.3}}, "on_error": "refuse"})
    d = p.decide(_v(cyber=0.35))  # below the calibrated 0.5 but above the profile's 0.3
    assert (d.action, d.model, d.domain) == ("reroute", "opus-4.8", "cyber")
    assert p.decide(_v(cyber=0.2)).action == "allow"
    # domains not listed default to refuse at the calibrated threshold
    assert p.decide(_v(chem=0.6)).action == "refuse"


def test_yaml_profile(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("domains:\n  cyber: {action: monitor}\n  bio: {action: reroute, model: safe-model}\n  chem: {action: monitor}\n")
    p = Profile.from_yaml(f)
    assert p.on_error == "refuse"  # a blocking domain -> refuse on error by default
    assert p.decide(_v(bio=0.99)).model == "safe-model"
    monitor_only = Profile.model_validate({"domains": {d: {"action": "monitor"} for d in ("cyber", "bio", "chem")}})
    assert monitor_only.on_error == "allow"


def test_error_mode():
    assert default_profiles()["strict"].decide_error(TimeoutError("slow")).action == "refuse"
    p = Profile(domains={"cyber": DomainRule(action="monitor")}, on_error="allow")
    assert p.decide_error("boom") == Decision(action="allow", reason="classifier error: boom")


def test_validation():
    with pytest.raises(ValidationError):
        DomainRule(action="reroute")  # needs a model
    with pytest.raises(ValidationError):
        Profile.model_validate({"domains": {"nuclear": {"action": "refuse"}}})
    with pytest.raises(ValidationError):
        DomainRule(action="refuse", threshold=1.5)
