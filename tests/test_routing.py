"""Routing against real upstreams on 127.0.0.1 that fail on purpose: the right class, hop and headers,
failover only for outage and withdrawn, every fallback re-admitted, streams never silently cut."""

from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager

import httpx
import pytest

from support import RunningGateway
from fakes import ServerThread, free_port
from lockgate import config as cfg
from lockgate.app import create_app
from lockgate.pipeline import BaseStage, Pipeline, Skip
from lockgate.routing import withdrawn as wstore

# Generous for upstreams that answer (a loaded machine must not turn them into outages); short where a
# test hangs on purpose, so it stays quick.
FAST = {"connect": 5, "read": 10, "total": 10}
HANG = {"connect": 5, "read": 0.5, "total": 0.5}


def up(fake, model: str, provider: str = "openai", **kw) -> dict:
    base = f"{fake.url}/v1" if provider == "openai" else fake.url
    return {"provider": provider, "model": model, "base_url": base, "timeout": HANG if model == "hang" else FAST,
            **kw}


def closed_port_up(provider: str = "openai") -> dict:
    port = free_port()  # bound and released: nothing listens there, connections are refused
    base = f"http://127.0.0.1:{port}" + ("/v1" if provider == "openai" else "")
    return {"provider": provider, "model": "x", "base_url": base, "timeout": FAST}


def uniq(prefix: str) -> str:
    """An upstream model name the fake answers like `echo`, unique so its calls can be counted."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


class Deny(BaseStage):
    """Stands in for a directive or safeguard: these models may not serve anyone."""

    name = "deny-test"

    def __init__(self, models) -> None:
        self.models = set(models)

    async def admit(self, ctx, model: str) -> None:
        if model in self.models:
            raise Skip(f"test-rule forbids {model}")


class Recorder(BaseStage):
    """Keeps each finished request's context, so tests can read the hops."""

    name = "recorder"

    def __init__(self) -> None:
        self.ctxs = []

    async def on_finish(self, ctx) -> None:
        self.ctxs.append(ctx)

    def last(self):
        deadline = time.time() + 10
        while not self.ctxs and time.time() < deadline:
            time.sleep(0.01)
        return self.ctxs.pop()


@contextmanager
def serve(conf: dict, store, deny=()):
    app = create_app(cfg.Config.model_validate(conf), store)
    gw = app.state.gateway
    rec = Recorder()
    gw.pipeline = Pipeline([Deny(deny), *gw.pipeline.stages, rec])
    with ServerThread(app) as srv:
        rg = RunningGateway(srv, store)
        rg.gw, rg.rec, rg.secret = gw, rec, rg.key()
        yield rg


def chat(g, model: str, text: str = "one two three four five", api: str = "openai", stream: bool = False):
    if api == "openai":
        body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
        return httpx.post(g.url + "/v1/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {g.secret}"})
    body = {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": text}], "stream": stream}
    return httpx.post(g.url + "/v1/messages", json=body, timeout=30, headers={"x-api-key": g.secret})


def sse_data(r) -> list:
    out = []
    for line in r.text.splitlines():
        if line.startswith("data: "):
            d = line[6:]
            out.append(d if d == "[DONE]" else json.loads(d))
    return out


def calls(fake, name: str) -> int:
    return sum(1 for q in fake.requests if q["body"]["model"] == name)


def chain_conf(primary: dict | list, fallbacks: list[tuple[str, dict]], routing=None, resume=False) -> dict:
    deps = primary if isinstance(primary, list) else [primary]
    models = [{"name": "fable-5", "deployments": deps, "fallbacks": [n for n, _ in fallbacks], "resume": resume}]
    models += [{"name": n, "upstream": u} for n, u in fallbacks]
    return {"models": models, "routing": {"retries": 0, "probe_interval": 0, **(routing or {})}}


# -- outage: fail over, invisibly to the client apart from the headers ---------------------------
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("failure", ["closed-port", "fail-500", "fail-429", "hang"])
def test_outage_fails_over(fake, store, provider, failure):
    primary = closed_port_up(provider) if failure == "closed-port" else up(fake, failure, provider)
    backup = uniq("backup")
    with serve(chain_conf(primary, [("opus-4.8", up(fake, backup))]), store) as g:
        for api in ("openai", "anthropic"):
            r = chat(g, "fable-5", api=api)
            assert r.status_code == 200, r.text
            assert r.headers["lockgate-served-model"] == "opus-4.8"
            assert r.headers["lockgate-fallback"] == "reason=outage; from=fable-5"
            text = r.json()["choices"][0]["message"]["content"] if api == "openai" else r.json()["content"][0]["text"]
            assert text == "echo: one two three four five"
            hops = g.rec.last().hops
            assert [h.model for h in hops] == ["fable-5", "opus-4.8"]
            assert hops[0].outcome == "outage" and hops[1].outcome == "served"
            if failure == "fail-429" and api == "anthropic":  # Retry-After honoured: not called again yet
                assert hops[0].deployment == "-" and "Retry-After" in hops[0].detail
            elif failure != "closed-port":
                assert hops[0].deployment == f"{provider}:{failure}"
        assert calls(fake, backup) == 2


def test_stream_failover_before_first_byte_is_invisible(fake, store):
    backup = uniq("backup")
    with serve(chain_conf(up(fake, "fail-500"), [("opus-4.8", up(fake, backup))]), store) as g:
        r = chat(g, "fable-5", stream=True)
        assert r.status_code == 200 and r.headers["lockgate-fallback"] == "reason=outage; from=fable-5"
        data = sse_data(r)
        assert data[-1] == "[DONE]" and not any("error" in d for d in data[:-1])
        assert "".join(d["choices"][0]["delta"].get("content") or "" for d in data[:-1] if d["choices"]) == \
            "echo: one two three four five"


def test_5xx_retried_with_backoff_then_fallback(fake, store):
    backup = uniq("backup")
    conf = chain_conf(up(fake, "fail-500"), [("opus-4.8", up(fake, backup))], routing={"retries": 2})
    with serve(conf, store) as g:
        before = calls(fake, "fail-500")
        assert chat(g, "fable-5").status_code == 200
        assert calls(fake, "fail-500") - before == 3
        assert [h.outcome for h in g.rec.last().hops] == ["outage"] * 3 + ["served"]


# -- refusal and client errors go back as they are -----------------------------------------------
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("failure,kind", [("refuse", "refusal"), ("invalid", "client")])
def test_refusal_and_client_errors_never_fail_over(fake, store, provider, failure, kind):
    backup = uniq("backup")
    with serve(chain_conf(up(fake, failure, provider), [("opus-4.8", up(fake, backup))]), store) as g:
        for stream in (False, True):
            r = chat(g, "fable-5", stream=stream)
            assert r.status_code == 400
            assert r.json()["error"]["code"] == f"upstream_{kind}"
            assert "lockgate-fallback" not in r.headers
            assert [(h.model, h.outcome) for h in g.rec.last().hops] == [("fable-5", kind)]
        assert calls(fake, backup) == 0


# -- withdrawn: persisted, routed around, restored by the CLI or the probe -----------------------
@pytest.mark.parametrize("failure", ["gone", "forbidden"])
def test_withdrawn_model_is_marked_and_routed_around(fake, store, failure):
    name, backup = uniq("wd"), uniq("backup")
    fake.overrides[name] = failure
    with serve(chain_conf(up(fake, name), [("opus-4.8", up(fake, backup))]), store) as g:
        r = chat(g, "fable-5")
        assert r.status_code == 200 and r.headers["lockgate-fallback"] == "reason=withdrawn; from=fable-5"
        assert g.rec.last().hops[0].outcome == "withdrawn"
        deadline = time.time() + 10
        routing = g.gw.pipeline.stage("routing")
        while not (wstore.load_withdrawn(store) and routing.counters["withdrawn"]) and time.time() < deadline:
            time.sleep(0.05)
        rows = wstore.load_withdrawn(store)
        assert list(rows) == [("fable-5", f"openai:{name}@{fake.url}/v1")]
        assert rows[("fable-5", f"openai:{name}@{fake.url}/v1")]["upstream_status"] == (404 if failure == "gone" else 403)
        assert routing.counters["withdrawn"] == 1  # the incident, raised once
        # Marked: the next request does not even try it.
        n = calls(fake, name)
        r = chat(g, "fable-5")
        assert r.status_code == 200 and r.headers["lockgate-fallback"] == "reason=withdrawn; from=fable-5"
        assert calls(fake, name) == n
        assert g.rec.last().hops[0].outcome == "withdrawn"

        # The operator restores it (from any process sharing the store); the gateway notices.
        del fake.overrides[name]
        from typer.testing import CliRunner

        from lockgate.cli.main import app

        runner = CliRunner()
        env = {"LOCKGATE_DATABASE_URL": store.url}
        res = runner.invoke(app, ["models", "status", "--json"], env=env)
        assert res.exit_code == 0 and json.loads(res.stdout)[0]["state"] == "withdrawn"
        res = runner.invoke(app, ["models", "restore", "fable-5"], env=env)
        assert res.exit_code == 0, res.output
        assert runner.invoke(app, ["models", "restore", "fable-5"], env=env).exit_code == 1
        deadline = time.time() + 10
        while True:
            r = chat(g, "fable-5")
            if "lockgate-fallback" not in r.headers or time.time() > deadline:
                break
            time.sleep(0.1)
        assert r.status_code == 200 and r.headers["lockgate-served-model"] == "fable-5"
        assert "lockgate-fallback" not in r.headers


def test_probe_finds_a_withdrawn_model_back(fake, store):
    name, backup = uniq("wd"), uniq("backup")
    fake.overrides[name] = "gone"
    conf = chain_conf(up(fake, name), [("opus-4.8", up(fake, backup))], routing={"probe_interval": 0.2})
    with serve(conf, store) as g:
        r = chat(g, "fable-5")
        assert r.headers.get("lockgate-fallback") == "reason=withdrawn; from=fable-5", (r.status_code, r.text)
        time.sleep(0.6)  # probes while still gone: stays withdrawn
        assert chat(g, "fable-5").headers["lockgate-served-model"] == "opus-4.8"
        del fake.overrides[name]
        deadline = time.time() + 10
        while chat(g, "fable-5").headers["lockgate-served-model"] != "fable-5":
            assert time.time() < deadline, "the probe did not restore the model"
            time.sleep(0.1)
        (row,) = wstore.list_states(store)
        assert row["state"] == "restored" and row["changed_by"] == "probe"


# -- every hop re-admitted -----------------------------------------------------------------------
def test_forbidden_fallback_is_skipped_never_served(fake, store):
    secret_name, ok_name = uniq("forbidden"), uniq("ok")
    conf = chain_conf(up(fake, "fail-500"), [("mythos", up(fake, secret_name)), ("smol", up(fake, ok_name))])
    with serve(conf, store, deny={"mythos"}) as g:
        for stream in (False, True):
            r = chat(g, "fable-5", stream=stream)
            assert r.status_code == 200 and r.headers["lockgate-served-model"] == "smol"
            hops = g.rec.last().hops
            assert [(h.model, h.outcome) for h in hops] == [
                ("fable-5", "outage"), ("mythos", "skipped:test-rule forbids mythos"), ("smol", "served")]
        assert calls(fake, secret_name) == 0


def test_chain_that_runs_out_is_a_clear_503(fake, store):
    secret_name = uniq("forbidden")
    conf = chain_conf(closed_port_up(), [("mythos", up(fake, secret_name)), ("gone-model", up(fake, "gone"))])
    with serve(conf, store, deny={"mythos"}) as g:
        for api in ("openai", "anthropic"):
            r = chat(g, "fable-5", api=api)
            assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
            msg = r.json()["error"]["message"]
            assert "fable-5" in msg and "outage" in msg and "skipped:test-rule forbids mythos" in msg
            assert "gone-model" in msg and "withdrawn" in msg
        assert calls(fake, secret_name) == 0


# -- after the first byte ------------------------------------------------------------------------
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_cut_stream_ends_with_an_error_event(fake, store, provider):
    backup = uniq("backup")
    with serve(chain_conf(up(fake, "cut", provider), [("opus-4.8", up(fake, backup))]), store) as g:
        r = chat(g, "fable-5", stream=True)
        assert r.status_code == 200
        data = sse_data(r)
        assert data[-1] != "[DONE]" and data[-1]["error"]["code"] == "upstream_outage"
        assert "after" not in r.headers.get("lockgate-fallback", "")
        r = chat(g, "fable-5", api="anthropic", stream=True)
        events = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
        assert "content_block_delta" in events and events[-1] == "error" and "message_stop" not in events
        hops = g.rec.last().hops
        assert hops[-1].outcome == "outage" and hops[-1].detail.startswith("after first byte")
        assert calls(fake, backup) == 0


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_cut_stream_resumes_on_a_fallback_when_configured(fake, store, api):
    backup, forbidden = uniq("backup"), uniq("forbidden")
    conf = chain_conf(up(fake, "cut"), [("mythos", up(fake, forbidden)), ("opus-4.8", up(fake, backup))], resume=True)
    with serve(conf, store, deny={"mythos"}) as g:
        r = chat(g, "fable-5", api=api, stream=True)
        assert r.status_code == 200
        data = sse_data(r)
        if api == "openai":
            assert data[-1] == "[DONE]"
            notes = [d for d in data[:-1] if "lockgate" in d]
            text = "".join((d["choices"][0]["delta"].get("content") or "") for d in data[:-1] if d.get("choices"))
        else:
            assert data[-1]["type"] == "message_stop"
            notes = [d for d in data if d.get("type") == "ping" and "lockgate" in d]
            text = "".join(d["delta"]["text"] for d in data if d.get("type") == "content_block_delta")
        assert [n["lockgate"] for n in notes] == [
            {"event": "resumed", "from": "fable-5", "model": "opus-4.8", "reason": "outage"}]
        assert text.startswith("echo: one two") and "Continue" in text  # partial, then the fallback's answer
        (q,) = [q for q in fake.requests if q["body"]["model"] == backup]
        msgs = q["body"]["messages"]
        assert msgs[-2] == {"role": "assistant", "content": "echo: one two"} and msgs[-1]["role"] == "user"
        hops = [(h.model, h.outcome) for h in g.rec.last().hops]
        assert hops == [("fable-5", "served"), ("fable-5", "outage"), ("mythos", "skipped:test-rule forbids mythos"),
                        ("opus-4.8", "served")]
        assert calls(fake, forbidden) == 0


# -- balancing, breaker, backpressure ------------------------------------------------------------
def test_weighted_balancing_across_deployments(fake, store):
    a, b = uniq("dep-a"), uniq("dep-b")
    conf = chain_conf([up(fake, a, weight=3), up(fake, b, weight=1)], [])
    with serve(conf, store) as g:
        for _ in range(40):
            assert chat(g, "fable-5").status_code == 200
    assert calls(fake, a) + calls(fake, b) == 40 and calls(fake, a) > calls(fake, b) > 0


def test_breaker_opens_then_probes_half_open(fake, store):
    backup = uniq("backup")
    conf = chain_conf(up(fake, "fail-500"), [("opus-4.8", up(fake, backup))],
                      routing={"breaker_failures": 2, "breaker_cooldown": 0.5})
    with serve(conf, store) as g:
        n = calls(fake, "fail-500")
        for _ in range(2):
            assert chat(g, "fable-5").status_code == 200
        assert calls(fake, "fail-500") == n + 2
        assert chat(g, "fable-5").status_code == 200  # open: not called
        assert calls(fake, "fail-500") == n + 2
        assert g.rec.last().hops[0].detail.startswith("circuit breaker open")
        time.sleep(0.7)
        assert chat(g, "fable-5").status_code == 200  # half-open: one probe, fails, open again
        assert chat(g, "fable-5").status_code == 200
        assert calls(fake, "fail-500") == n + 3


def test_backpressure_429_when_every_deployment_is_full(fake, store):
    # `crawl` streams for ~6 s, so the second request surely arrives while the first holds the slot.
    conf = chain_conf([up(fake, "crawl", max_concurrency=1, timeout={"connect": 1, "read": 10, "total": 30})],
                      [("opus-4.8", up(fake, uniq("backup")))])
    with serve(conf, store) as g:
        body = {"model": "fable-5", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with httpx.stream("POST", g.url + "/v1/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {g.secret}"}) as held:
            assert held.status_code == 200  # in flight until read to the end
            r = chat(g, "fable-5")
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "capacity"
            held.read()
        deadline = time.time() + 10  # the slot comes back once the stream ends
        while (r := chat(g, "fable-5")).status_code == 429 and time.time() < deadline:
            time.sleep(0.05)
        assert r.status_code == 200 and r.headers["lockgate-served-model"] == "fable-5"
        assert g.gw.pipeline.stage("routing").balancer.by_model["fable-5"][0].provider.inflight == 0
