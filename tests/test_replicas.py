"""Two gateway processes on one PostgreSQL: a directive applied through one is enforced by the other, and a
replica cut off from the database fails closed once its lease runs out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from support import PG_URL
from fakes import free_port
from proxy import Proxy
from test_directives_june12 import ROOT, june12_config
from lockgate import config as cfg
from lockgate.directives import model as dmodel
from lockgate.directives import service
from lockgate.identity import keys, principals

pytestmark = pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL (LOCKGATE_TEST_PG_URL)")


def start(conf_path, url, home, port):
    env = {**os.environ, "LOCKGATE_DATABASE_URL": url, "LOCKGATE_HOME": str(home)}
    p = subprocess.Popen([sys.executable, "-m", "lockgate", "serve", "--config", str(conf_path), "--port", str(port),
                          "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return p
        except httpx.HTTPError:
            pass
        if p.poll() is not None:
            raise RuntimeError(p.stderr.read().decode())
        time.sleep(0.1)
    p.kill()
    raise RuntimeError("gateway did not start")


def served(port, key):
    r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                   json={"model": "fable-5", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
    return r.status_code, r.headers.get("lockgate-served-model")


def test_two_replicas_and_a_cut_off_one(fake, store, store_url, store_kind, tmp_path):
    if store_kind != "postgresql":
        pytest.skip("replicas share PostgreSQL")
    conf = june12_config(fake.url)
    path = tmp_path / "lockgate.yaml"
    path.write_text(yaml.safe_dump(conf))
    principals.add_principal(store, "chen", "Chen", "provider")
    key, _ = keys.create_key(store, "chen")
    pg = urlsplit(store_url)
    proxy = Proxy(pg.port)
    via_proxy = store_url.replace(f"{pg.hostname}:{pg.port}", f"127.0.0.1:{proxy.port}")
    a_port, b_port = free_port(), free_port()
    a = start(path, store_url, tmp_path, a_port)
    b = start(path, via_proxy, tmp_path, b_port)
    try:
        assert served(a_port, key) == (200, "fable-5") and served(b_port, key) == (200, "fable-5")
        service.apply(store, cfg.Config.model_validate(conf), dmodel.load(ROOT / "examples/june-12/directive.yaml"),
                      "test")
        applied = time.time()
        seen = {}
        while len(seen) < 2 and time.time() - applied < 10:
            for name, port in (("a", a_port), ("b", b_port)):
                if name not in seen and served(port, key) == (200, "opus-4.8"):
                    seen[name] = time.time() - applied
            time.sleep(0.02)
        assert set(seen) == {"a", "b"}, seen
        # Cut replica b off the database: within its lease (2 s) plus a poll it must deny restricted models.
        proxy.cut()
        deadline = time.time() + 15
        while time.time() < deadline and served(b_port, key)[0] != 503:
            time.sleep(0.1)
        status, _ = served(b_port, key)
        assert status == 503
        r = httpx.post(f"http://127.0.0.1:{b_port}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                       json={"model": "fable-5", "messages": [{"role": "user", "content": "hi"}]})
        assert r.json()["error"]["code"] == "policy_stale"
        assert served(a_port, key) == (200, "opus-4.8")  # the connected replica keeps serving
    finally:
        for p in (a, b):
            p.terminate()
            p.wait(10)
        proxy.close()
