"""Upstream connections are pooled: streamed or not, a request hands its connection back for the next."""

from __future__ import annotations

import httpx
import pytest

from proxy import Proxy
from support import run_gateway


@pytest.mark.parametrize("stream", [False, True])
def test_sequential_requests_reuse_one_upstream_connection_per_provider(fake, store, stream):
    proxy = Proxy(int(fake.url.rsplit(":", 1)[1]))  # counts the connections the gateway opens upstream
    url = f"http://127.0.0.1:{proxy.port}"
    models = [{"name": "gpt-fake", "upstream": {"provider": "openai", "model": "echo", "base_url": f"{url}/v1"}},
              {"name": "claude-fake", "upstream": {"provider": "anthropic", "model": "echo", "base_url": url}}]
    try:
        with run_gateway({"models": models}, store) as gw:
            key = gw.key()
            for i in range(8):
                r = httpx.post(gw.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                               json={"model": "gpt-fake", "stream": stream,
                                     "messages": [{"role": "user", "content": f"hi {i}"}]}, timeout=30)
                assert r.status_code == 200 and ("[DONE]" if stream else "echo: hi") in r.text
                r = httpx.post(gw.url + "/v1/messages", headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                               json={"model": "claude-fake", "max_tokens": 16, "stream": stream,
                                     "messages": [{"role": "user", "content": f"hi {i}"}]}, timeout=30)
                assert r.status_code == 200 and ("message_stop" if stream else "echo: hi") in r.text
            assert len(proxy.conns) // 2 <= 2  # one per provider (the pool may keep a second on a race)
    finally:
        proxy.close()
