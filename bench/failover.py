"""Added latency of one failover hop (not a test): prints a Markdown table for docs/benchmarks.md.

    .venv/bin/python bench/failover.py [--n 200] [--hang-n 10] [--hang-timeout 0.5]

Everything runs on 127.0.0.1: the fake upstreams of tests/fakes.py and a real gateway (uvicorn, SQLite
store in a temp dir). Scenarios: the fallback model asked for directly (baseline), the primary refusing
connections (a closed port), the primary hanging (bounded by its configured `timeout.total`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("LOCKGATE_HOME", tempfile.mkdtemp())

from fakes import FakeUpstream, ServerThread, free_port  # noqa: E402

from lockgate import config as cfg  # noqa: E402
from lockgate.app import create_app  # noqa: E402
from lockgate.identity import keys, principals  # noqa: E402
from lockgate.store import open_store  # noqa: E402


def conf(fake_url: str, hang_timeout: float) -> dict:
    backup = {"provider": "openai", "model": "echo", "base_url": f"{fake_url}/v1"}
    refused = {"provider": "openai", "model": "echo", "base_url": f"http://127.0.0.1:{free_port()}/v1",
               "timeout": {"connect": 2, "read": 10, "total": 10}}
    hang = {"provider": "openai", "model": "hang", "base_url": f"{fake_url}/v1",
            "timeout": {"connect": 2, "read": 30, "total": hang_timeout}}
    return {"models": [
        {"name": "backup", "upstream": backup},
        {"name": "refused", "upstream": refused, "fallbacks": ["backup"]},
        {"name": "hangs", "upstream": hang, "fallbacks": ["backup"]},
    ], "routing": {"retries": 1, "probe_interval": 0,
                   "breaker_failures": 1_000_000}}  # keep the breaker shut: measure the hop, every time


def measure(client: httpx.Client, key: str, model: str, n: int, stream: bool) -> list[float]:
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}], "stream": stream}
    out: list[float] = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
        r.read()
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text
        if model != "backup":
            assert r.headers["lockgate-fallback"] == f"reason=outage; from={model}", r.headers
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--hang-n", type=int, default=10)
    ap.add_argument("--hang-timeout", type=float, default=0.5)
    a = ap.parse_args()
    fake = FakeUpstream()
    with ServerThread(fake.app) as up:
        store = open_store(f"sqlite:///{tempfile.mkdtemp()}/bench.db")
        principals.add_principal(store, "bench", "bench", "bench")
        key, _ = keys.create_key(store, "bench")
        app = create_app(cfg.Config.model_validate(conf(up.url, a.hang_timeout)), store)
        with ServerThread(app) as gw, httpx.Client(base_url=gw.url, timeout=60) as client:
            measure(client, key, "backup", 20, False)  # warm up connections and caches
            measure(client, key, "refused", 20, False)
            rows = []
            for stream in (False, True):
                # Interleaved, so load from anything else on the machine hits both alike.
                base, refused = [], []
                for _ in range(a.n):
                    base += measure(client, key, "backup", 1, stream)
                    refused += measure(client, key, "refused", 1, stream)
                rows.append(("fallback model asked for directly (baseline)", stream, base, None))
                rows.append(("primary refuses connections", stream, refused, base))
                rows.append(("primary hangs", stream, measure(client, key, "hangs", a.hang_n, stream), base))
    p50 = statistics.median
    print(f"hang timeout: {a.hang_timeout:g}s; {os.cpu_count()} CPUs; python {sys.version.split()[0]}\n")
    print("| scenario | stream | n | p50 ms | p95 ms | added p50 ms |")
    print("|---|---|---:|---:|---:|---:|")
    for name, stream, xs, base in rows:
        p95 = sorted(xs)[max(0, int(len(xs) * 0.95) - 1)]
        added = f"{p50(xs) - p50(base):.1f}" if base else "-"
        print(f"| {name} | {'yes' if stream else 'no'} | {len(xs)} | {p50(xs):.1f} | {p95:.1f} | {added} |")


if __name__ == "__main__":
    main()
