"""Concurrent traffic while upstreams fail at random (bounded in time and count), and the bundled local
model as the disaster-recovery last hop."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from lockgate.store import open_store
from test_routing import HANG, chain_conf, closed_port_up, serve, uniq, up

ALLOWED = {"fable-5", "opus-4.8", "haiku-safe"}
N, CONCURRENCY = 48, 8


def _check_stream(r: httpx.Response, api: str) -> str:
    """'ok' when the stream ended properly, 'error' when it ended with the API's error event; never cut."""
    if api == "openai":
        data = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
        assert data, r.text
        if data[-1] == "[DONE]":
            return "ok"
        assert "error" in json.loads(data[-1]), r.text
        return "error"
    events = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert events and events[-1] in ("message_stop", "error"), r.text
    return "ok" if events[-1] == "message_stop" else "error"


def test_chaos_every_request_ends_served_by_an_allowed_model_or_clearly(fake, store):
    forbidden = uniq("forbidden")
    c1, c2, c3, c4 = (uniq("chaos") for _ in range(4))  # four upstreams, each failing at random
    fake.overrides.update({c: "chaos" for c in (c1, c2, c3, c4)})
    conf = chain_conf(
        [up(fake, c1), up(fake, c2, "anthropic")],
        [("mythos", up(fake, forbidden)), ("opus-4.8", up(fake, c3, "anthropic")), ("haiku-safe", up(fake, c4))],
        routing={"deadline": 4, "retries": 1, "breaker_failures": 3, "breaker_cooldown": 0.3},
        resume=True,
    )
    for m in conf["models"]:  # the chaos upstreams hang now and then: keep those hangs short
        for d in m.get("deployments") or [m["upstream"]]:
            d["timeout"] = HANG
    outcomes: dict[str, int] = {}
    samples: list[str] = []

    with serve(conf, store, deny={"mythos"}) as g:
        async def one(i: int, client: httpx.AsyncClient, sem: asyncio.Semaphore) -> None:
            api, stream = ("openai", "anthropic")[i % 2], i % 3 != 0
            async with sem:
                if api == "openai":
                    r = await client.post("/v1/chat/completions", headers={"authorization": f"Bearer {g.secret}"},
                                          json={"model": "fable-5", "stream": stream,
                                                "messages": [{"role": "user", "content": f"req {i} a b c d"}]})
                else:
                    r = await client.post("/v1/messages", headers={"x-api-key": g.secret},
                                          json={"model": "fable-5", "max_tokens": 20, "stream": stream,
                                                "messages": [{"role": "user", "content": f"req {i} a b c d"}]})
            if r.status_code == 200:
                assert r.headers["lockgate-served-model"] in ALLOWED
                kind = _check_stream(r, api) if stream else "ok"
                if not stream:
                    body = r.json()
                    assert body["model"] in ALLOWED
                    text = body["choices"][0]["message"]["content"] if api == "openai" else body["content"][0]["text"]
                    assert text.startswith("echo: ")
            else:
                assert r.status_code in (429, 503), r.text  # a clear error: capacity or the chain ran out
                body = r.json()
                assert body["error"]["message"]
                kind = f"http-{r.status_code}"
                samples.append(body["error"]["message"])
            outcomes[kind] = outcomes.get(kind, 0) + 1

        async def main() -> None:
            sem = asyncio.Semaphore(CONCURRENCY)
            async with httpx.AsyncClient(base_url=g.url, timeout=30) as client:
                await asyncio.wait_for(asyncio.gather(*(one(i, client, sem) for i in range(N))), timeout=120)

        started = time.monotonic()
        asyncio.run(main())
        elapsed = time.monotonic() - started

        assert sum(outcomes.values()) == N
        assert outcomes.get("ok", 0) > 0, outcomes
        # The forbidden fallback never served, never was called.
        assert not any(q["body"]["model"] == forbidden for q in fake.requests)
        for ctx in g.rec.ctxs:
            assert ctx.model in ALLOWED
            assert not any(h.model == "mythos" and not h.outcome.startswith("skipped:") for h in ctx.hops)
        routing = g.gw.pipeline.stage("routing")
        assert all(d.provider.inflight == 0 for deps in routing.balancer.by_model.values() for d in deps)
        print(f"chaos: {N} requests in {elapsed:.1f}s: {outcomes}, counters {dict(routing.counters)}")
        print("\n".join(samples[:3]))


def test_bundled_local_model_is_the_last_hop(fake, tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'dr.db'}")
    conf = chain_conf(closed_port_up(), [("gone-model", up(fake, "gone")),
                                         ("smollm2-135m", {"provider": "local", "model": "bundled:smollm2-135m"})])
    try:
        with serve(conf, store) as g:
            deadline = time.time() + 120
            while httpx.get(g.url + "/readyz").status_code != 200:
                assert time.time() < deadline, "bundled model did not load"
                time.sleep(0.2)
            for stream in (False, True):
                body = {"model": "fable-5", "max_tokens": 8, "temperature": 0, "stream": stream,
                        "messages": [{"role": "user", "content": "Say hi."}]}
                r = httpx.post(g.url + "/v1/chat/completions", json=body, timeout=120,
                               headers={"authorization": f"Bearer {g.secret}"})
                assert r.status_code == 200, r.text
                assert r.headers["lockgate-served-model"] == "smollm2-135m"
                assert r.headers["lockgate-fallback"] == "reason=outage; from=fable-5"
                if stream:
                    assert r.text.rstrip().endswith("data: [DONE]")
                else:
                    assert r.json()["choices"][0]["message"]["content"]
                hops = [(h.model, h.outcome) for h in g.rec.last().hops]
                assert hops[0] == ("fable-5", "outage") and hops[-1] == ("smollm2-135m", "served")
                assert hops[1][0] == "gone-model" and hops[1][1] == "withdrawn"
    finally:
        store.dispose()
