"""Metering: usage and cost per request, budgets that concurrency cannot overshoot, rate limits, rollups."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from support import fake_models, run_gateway
from lockgate.cli.main import app as cli
from lockgate.metering import budgets

runner = CliRunner()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCKGATE_HOME", str(tmp_path / "home"))


def priced(fake_url: str, out_per_mtok: float = 1.0) -> list[dict]:
    models = fake_models(fake_url)
    models[0]["price"] = {"input_per_mtok": 0, "output_per_mtok": out_per_mtok}
    models[0]["upstream"]["max_concurrency"] = 1000  # only the budget may refuse here
    return models


def spent_reserved(store, scope="org", sid="acme") -> tuple[int, int]:
    with store.engine.connect() as c:
        row = c.execute(sa.text("SELECT SUM(spent), SUM(reserved) FROM meter_counters WHERE scope = :s AND "
                                "scope_id = :i AND metric = 'usd'"), {"s": scope, "i": sid}).one()
    return int(row[0] or 0), int(row[1] or 0)


async def fire(url: str, key: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def one(i):
            # max_tokens 2 = the fake's answer ("echo: hi"): worst case and real cost coincide
            return await client.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                                     json={"model": "gpt-fake", "max_tokens": 2, "stream": i % 2 == 0,
                                           "messages": [{"role": "user", "content": "hi"}]})
        return await asyncio.gather(*(one(i) for i in range(n)))


def wait_for(cond, timeout=30.0):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_concurrent_requests_never_overshoot_the_budget(fake, store):
    budgets.set_limit(store, "org", "acme", "month", "usd", 200)  # 200 micro-USD: pays for 100 answers of 2 tokens
    with run_gateway({"models": priced(fake.url)}, store) as gw:
        key = gw.key("alice", "acme")
        rs = asyncio.run(fire(gw.url, key, 200))
        codes = sorted({r.status_code for r in rs})
        ok = [r for r in rs if r.status_code == 200]
        wait_for(lambda: spent_reserved(store)[1] == 0)  # every reservation reconciled
    assert codes == [200, 429]
    spent, _ = spent_reserved(store)
    assert spent <= 200
    assert len(ok) == 100 and spent == 2 * len(ok)  # all of it used, none of it twice
    errs = [r.json()["error"] for r in rs if r.status_code == 429]
    assert all(e["type"] == "rate_limit_error" and e["code"] == "budget_exceeded" for e in errs)
    assert "org acme" in errs[0]["message"]
    with store.engine.connect() as c:
        costs = [json.loads(b)["cost_micro_usd"] for (b,) in c.execute(sa.text(
            "SELECT body FROM audit_records WHERE kind = 'request'"))]
    assert sum(costs) == spent and len(costs) == 200


def test_a_key_budget_leaves_the_principals_other_keys_alone(fake, store):
    from lockgate.identity.keys import list_keys

    with run_gateway({"models": priced(fake.url)}, store) as gw:
        k1 = gw.key("alice", "acme")
        k2 = gw.key("alice", "acme")
        kid = list_keys(store, "alice")[0].id
        budgets.set_limit(store, "key", kid, "day", "usd", 4)  # two answers on the first key (limits load lazily)
        r = [asyncio.run(fire(gw.url, k1, 1))[0].status_code for _ in range(3)]
        other = asyncio.run(fire(gw.url, k2, 1))[0].status_code
    assert r == [200, 200, 429] and other == 200


def test_rate_limit_per_minute_with_a_controlled_clock(fake, store):
    budgets.set_limit(store, "principal", "bob", "minute", "requests", 3)
    t = datetime(2030, 1, 1, 12, 0, 10, tzinfo=timezone.utc)
    with run_gateway({"models": priced(fake.url)}, store) as gw:
        key = gw.key("bob", None)
        stage = gw.server.server.config.app.state.gateway.pipeline.stage("metering")
        stage.clock = lambda: t
        first = [asyncio.run(fire(gw.url, key, 1))[0] for _ in range(4)]
        t = datetime(2030, 1, 1, 12, 1, 0, tzinfo=timezone.utc)  # next minute: a fresh window
        after = asyncio.run(fire(gw.url, key, 1))[0]
    assert [r.status_code for r in first] == [200, 200, 200, 429]
    assert first[3].json()["error"]["code"] == "rate_limit_exceeded" and first[3].headers["retry-after"] == "50"
    assert after.status_code == 200


def test_month_budget_resets_next_month(store):
    lim = budgets.set_limit(store, "org", "o", "month", "usd", 10)
    june, july = datetime(2030, 6, 30, 23, 59, tzinfo=timezone.utc), datetime(2030, 7, 1, tzinfo=timezone.utc)
    held = budgets.reserve(store, [lim], {"usd": 8}, june)
    with pytest.raises(budgets.OverLimit):
        budgets.reserve(store, [lim], {"usd": 3}, june)
    budgets.reconcile(store, held, {"usd": 5})  # the answer cost less than its worst case: the rest is free again
    budgets.reserve(store, [lim], {"usd": 5}, june)
    with pytest.raises(budgets.OverLimit):
        budgets.reserve(store, [lim], {"usd": 1}, june)
    assert budgets.reserve(store, [lim], {"usd": 10}, july)


def test_over_limit_reserves_nothing_anywhere(store):
    a = budgets.set_limit(store, "org", "o", "day", "usd", 100)
    b = budgets.set_limit(store, "key", "k", "day", "usd", 5)
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(budgets.OverLimit) as e:
        budgets.reserve(store, [a, b], {"usd": 6}, now)
    assert e.value.limit == b
    assert budgets.counters(store, now)[a] == (0, 0)


def test_usage_rollup_and_cli(fake, store, monkeypatch):
    with run_gateway({"models": fake_models(fake.url)}, store) as gw:
        for who, org in (("alice", "acme"), ("carol", "globex")):
            key = gw.key(who, org)
            for _ in range(2):
                assert httpx.post(gw.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                                  json={"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]},
                                  timeout=30).status_code == 200
    monkeypatch.setenv("LOCKGATE_DATABASE_URL", store.url)
    res = runner.invoke(cli, ["usage", "--by", "org,model", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["org"]: r for r in json.loads(res.stdout)}
    # 7 in, 2 out per answer at $1 / $2 per Mtok = 11 micro-USD
    assert rows["acme"]["requests"] == 2 and rows["acme"]["cost_micro"] == 22 and rows["acme"]["model"] == "gpt-fake"
    assert rows["globex"]["tokens_in"] == 14 and rows["globex"]["tokens_out"] == 4
    assert runner.invoke(cli, ["usage", "--by", "nonsense"]).exit_code == 1


def test_budgets_cli(store, monkeypatch):
    monkeypatch.setenv("LOCKGATE_DATABASE_URL", store.url)
    res = runner.invoke(cli, ["budgets", "set", "--scope", "org", "--id", "acme", "--period", "month", "--usd", "12.5"])
    assert res.exit_code == 0, res.output
    assert budgets.list_limits(store) == [budgets.Limit("org", "acme", "month", "usd", 12_500_000)]
    res = runner.invoke(cli, ["budgets", "list"])
    assert res.exit_code == 0 and "$12.5000" in res.output
    assert runner.invoke(cli, ["budgets", "set", "--scope", "team", "--id", "x", "--period", "day",
                               "--usd", "1"]).exit_code == 1
    assert runner.invoke(cli, ["budgets", "remove", "--scope", "org", "--id", "acme", "--period", "month"]).exit_code == 0
    assert budgets.list_limits(store) == []
