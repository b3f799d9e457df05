"""kill -9 under concurrent load: every request that got a complete response has its record, and the
trail still verifies after a restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
import yaml

from support import fake_models
from fakes import free_port
from lockgate.identity import keys, principals
from lockgate.store import open_store

LOCKGATE = str(Path(sys.executable).with_name("lockgate"))


def start(conf: Path, port: int, env: dict, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([LOCKGATE, "serve", "-c", str(conf), "--port", str(port), "--log-level", "warning"],
                            env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("gateway did not start: " + log.read_text())


async def load(url: str, key: str, completed: list[str], stop: asyncio.Event, i: int) -> None:
    """One client looping; a response counts as complete only once its last byte has arrived."""
    async with httpx.AsyncClient(timeout=10) as client:
        n = 0
        while not stop.is_set():
            n += 1
            stream = (i + n) % 2 == 0
            try:
                async with client.stream("POST", url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                                         json={"model": "gpt-fake", "stream": stream,
                                               "messages": [{"role": "user", "content": f"c{i} n{n}"}]}) as r:
                    body = await r.aread()
                    if r.status_code != 200:
                        continue
                    if stream and not body.rstrip().endswith(b"data: [DONE]"):
                        continue
                    if not stream:
                        json.loads(body)  # a cut body does not parse
                    completed.append(r.headers["lockgate-request-id"])
            except (httpx.HTTPError, ValueError):
                await asyncio.sleep(0.01)


async def hammer_then_kill(url: str, key: str, proc: subprocess.Popen, target: int) -> list[str]:
    completed: list[str] = []
    stop = asyncio.Event()
    clients = [asyncio.create_task(load(url, key, completed, stop, i)) for i in range(24)]
    deadline = time.time() + 120
    while len(completed) < target and time.time() < deadline:
        await asyncio.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # mid-load: requests are in flight
    await asyncio.to_thread(proc.wait)
    snapshot = list(completed)
    stop.set()
    await asyncio.gather(*clients)
    return snapshot


def test_sigkill_loses_no_record_of_a_complete_response(fake, store_url, tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "LOCKGATE_HOME": str(home), "LOCKGATE_DATABASE_URL": store_url, "HF_HUB_OFFLINE": "1"}
    conf = tmp_path / "lockgate.yaml"
    conf.write_text(yaml.safe_dump({"models": fake_models(fake.url), "audit": {"checkpoint_seconds": 0.2}}))
    store = open_store(store_url)
    old = os.environ.get("LOCKGATE_HOME")
    os.environ["LOCKGATE_HOME"] = str(home)  # admin records are signed with the same key as the server's
    try:
        principals.add_principal(store, "alice", "alice", "acme")
        secret, _ = keys.create_key(store, "alice")
    finally:
        os.environ.pop("LOCKGATE_HOME") if old is None else os.environ.__setitem__("LOCKGATE_HOME", old)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "gateway.log"

    proc = start(conf, port, env, log)
    completed = asyncio.run(hammer_then_kill(url, secret, proc, target=150))
    assert len(completed) >= 150 and proc.returncode == -signal.SIGKILL

    proc = start(conf, port, env, log)  # restarts on the same store and key
    try:
        r = httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {secret}"},
                       json={"model": "gpt-fake", "messages": [{"role": "user", "content": "after restart"}]})
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)

    with store.engine.connect() as c:
        stored = set(c.execute(sa.text("SELECT request_id FROM audit_records WHERE kind = 'request'")).scalars())
    missing = [rid for rid in completed if rid not in stored]
    assert not missing, f"{len(missing)} complete responses without a record, e.g. {missing[:3]}"
    assert r.headers["lockgate-request-id"] in stored
    res = subprocess.run([LOCKGATE, "audit", "verify"], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "ok:" in res.stderr
    store.dispose()
