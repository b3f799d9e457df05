"""Routing's parts on their own: breaker states, the balancer's choices, the withdrawn table, config."""

from __future__ import annotations

import pytest

from lockgate import config as cfg
from lockgate.errors import UpstreamError
from lockgate.providers.base import classify_exception, classify_http
from lockgate.routing import withdrawn as wstore
from lockgate.routing.breaker import Breaker


def test_breaker_closed_open_half_open():
    b = Breaker(failures=3, cooldown=10)
    for _ in range(2):
        b.failure(now=0)
    assert b.state == "closed" and b.available(now=0)
    b.failure(now=1)
    assert b.state == "open" and not b.available(now=5) and b.available(now=11)
    b.begin(now=11)
    assert b.state == "half-open" and not b.available(now=11)  # one probe at a time
    b.failure(now=12)
    assert b.state == "open" and not b.available(now=21) and b.available(now=22)
    b.begin(now=22)
    b.success()
    assert b.state == "closed" and b.failures == 0 and b.available(now=22)


def test_breaker_hold_is_not_a_failure():
    b = Breaker(failures=1, cooldown=10)
    b.hold(2.0, now=0)
    assert not b.available(now=1) and b.available(now=2.5) and b.state == "closed"


def _balancer(fake_url="http://127.0.0.1:9/v1"):
    from lockgate.providers import make_provider
    from lockgate.routing.balancer import Balancer

    conf = cfg.Config.model_validate({"models": [{"name": "m", "deployments": [
        {"provider": "openai", "model": "a", "base_url": fake_url, "weight": 1, "max_concurrency": 2},
        {"provider": "openai", "model": "b", "base_url": fake_url, "weight": 1, "max_concurrency": 2}]}]})

    class GW:  # the parts of a Gateway the balancer reads; the real one needs a store
        config = conf
        provs = [make_provider(u) for u in conf.models[0].deployments]

        def providers_for(self, name):
            return self.provs

    return Balancer(GW(), failures=2, cooldown=5)


def test_balancer_avoids_full_open_and_withdrawn_deployments():
    bal = _balancer()
    a, b = bal.by_model["m"]
    a.provider.inflight = 2  # at its limit
    assert {bal.pick("m", set())[0].key for _ in range(20)} == {b.key}
    b.provider.inflight = 2
    assert bal.pick("m", set()) == (None, "capacity")
    a.provider.inflight = b.provider.inflight = 0
    a.breaker.failure()
    a.breaker.failure()
    assert {bal.pick("m", set())[0].key for _ in range(20)} == {b.key}
    assert bal.pick("m", {b.key}) == (None, "open")
    bal.withdrawn[("m", b.key)] = {}
    assert bal.pick("m", set()) == (None, "open")
    bal.withdrawn[("m", a.key)] = {}
    assert bal.pick("m", set()) == (None, "withdrawn") and bal.model_withdrawn("m")


def test_balancer_sheds_load_to_the_idle_peer():
    bal = _balancer()
    a, b = bal.by_model["m"]
    a.upstream.max_concurrency = b.upstream.max_concurrency = 100
    a.provider.inflight = 9  # weight 1/10 against b's 1/1
    picks = [bal.pick("m", set())[0].key for _ in range(400)]
    assert picks.count(b.key) > 3 * picks.count(a.key)


@pytest.mark.parametrize("status,body,headers,kind,retry_after", [
    (500, "oops", {}, "outage", None),
    (503, "overloaded", {}, "outage", None),
    (429, "slow down", {"retry-after": "7"}, "outage", 7.0),
    (404, '{"error":{"code":"model_not_found"}}', {}, "withdrawn", None),
    (403, "not permitted", {}, "withdrawn", None),
    (400, '{"error":{"code":"content_policy_violation"}}', {}, "refusal", None),
    (400, "max_tokens too large", {}, "client", None),
])
def test_classify_http(status, body, headers, kind, retry_after):
    import httpx

    e = classify_http(status, body, httpx.Headers(headers))
    assert isinstance(e, UpstreamError) and e.kind == kind and e.retry_after == retry_after


def test_classify_exceptions_are_outages():
    import httpx

    assert classify_exception(httpx.ConnectError("refused")).kind == "outage"
    t = classify_exception(httpx.ReadTimeout("slow"))
    assert t.kind == "outage" and t.status == 504


def test_withdrawn_table_roundtrip(store):
    assert wstore.mark_withdrawn(store, "m", "openai:a", "404", 404) is True
    assert wstore.mark_withdrawn(store, "m", "openai:a", "404 again", 404) is False  # already recorded
    rev = store.revision()
    assert list(wstore.load_withdrawn(store)) == [("m", "openai:a")]
    assert wstore.restore(store, "m", by="test") == ["openai:a"]
    assert store.revision() > rev  # running gateways notice
    assert wstore.load_withdrawn(store) == {}
    assert wstore.mark_withdrawn(store, "m", "openai:a", "gone again", 404) is True
    (row,) = wstore.list_states(store)
    assert row["state"] == "withdrawn" and row["incidents"] == 2


def test_routing_settings_are_strict(fake, store):
    from lockgate.app import create_app

    with pytest.raises(Exception, match="retrys"):
        create_app(cfg.Config.model_validate({"models": [{"name": "m", "upstream": {
            "provider": "openai", "model": "echo", "base_url": fake.url}}], "routing": {"retrys": 2}}), store)


def test_classify_exceptions_look_under_httpx_aiohttp_mapping():
    # httpx-aiohttp raises httpx.ConnectTimeout for every aiohttp connection error; only real timeouts are 504.
    import aiohttp
    import httpx

    for cause, status in ((aiohttp.ServerDisconnectedError(), 502), (aiohttp.ConnectionTimeoutError(), 504),
                          (aiohttp.SocketTimeoutError(), 504)):
        e = httpx.ConnectTimeout(str(cause))
        e.__cause__ = cause
        got = classify_exception(e)
        assert got.kind == "outage" and got.status == status, (cause, got)
