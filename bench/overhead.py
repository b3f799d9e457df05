"""Gateway overhead (issue #2): lockgate and a LiteLLM proxy in front of the same fake upstream.

    .venv/bin/python bench/overhead.py [--requests 2000] [--concurrency 16] [--soak] [--skip-litellm]

All on 127.0.0.1: a fake OpenAI upstream (a raw ASGI app under uvicorn with several worker processes,
so it is not the bottleneck), `lockgate serve` as a subprocess (SQLite store, audit on), and
`litellm --config` from its own venv (~/.cache/lockgate-bench/litellm-venv, made on first use).
"Added" columns are the target's percentile minus the direct one, measured by the same client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LITELLM = "litellm[proxy]==1.106.2"
VENV = Path(os.environ.get("LOCKGATE_BENCH_CACHE", Path.home() / ".cache/lockgate-bench")) / "litellm-venv"
TARGET_P50_MS, TARGET_X = 1.5, 5.0


# -- the fake upstream (imported by uvicorn's workers: keep this part light) ----------------------
def _reply(stream: bool) -> list[bytes]:
    import orjson

    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    if not stream:
        return [orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "echo", "usage": usage,
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": "echo: hello"},
                                           "finish_reason": "stop"}]})]

    def chunk(delta: dict, finish: str | None = None, **kw) -> bytes:
        return b"data: " + orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "echo",
                                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                                         **kw}) + b"\n\n"

    return [chunk({"role": "assistant", "content": "echo:"}), chunk({"content": " hello"}),
            chunk({}, "stop", usage=usage) + b"data: [DONE]\n\n"]


_BODIES: dict = {}


async def upstream(scope, receive, send):  # run with --lifespan off
    body, more = b"", True
    while more:
        msg = await receive()
        body, more = body + msg.get("body", b""), msg.get("more_body", False)
    stream = b'"stream":true' in body.replace(b" ", b"")
    parts = _BODIES.setdefault(stream, _reply(stream))
    ctype = b"text/event-stream" if stream else b"application/json"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", ctype)]})
    for i, p in enumerate(parts):
        await send({"type": "http.response.body", "body": p, "more_body": i < len(parts) - 1})


# -- processes -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(cmd: list[str], env: dict, log: Path, health: str, timeout: float = 120) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen(cmd, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            httpx.get(health, timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"{cmd[0]} did not come up: {log.read_text()[-300:]}")


def stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def status_mb(pid: int, field: str) -> float:
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(field + ":"))
        return int(line.split()[1]) / 1024
    except (FileNotFoundError, StopIteration):
        return 0.0


def tree_hwm_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of the process and its children (psutil if there, else /proc), in MB."""
    try:
        import psutil

        kids = [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except ImportError:
        f = Path(f"/proc/{pid}/task/{pid}/children")
        kids = [int(x) for x in f.read_text().split()] if f.exists() else []
    return sum(status_mb(p, "VmHWM") for p in [pid, *kids])


def start_lockgate(up: str, tmp: Path, extra: dict | None = None, workers: int = 1) -> tuple[subprocess.Popen, str, str]:
    import yaml

    tmp = Path(tempfile.mkdtemp(prefix="lg-", dir=tmp))  # a fresh home and store per gateway
    env = {**os.environ, "LOCKGATE_HOME": str(tmp / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("LOCKGATE_DATABASE_URL", None)
    (tmp / "lockgate.yaml").write_text(yaml.safe_dump({"models": [{"name": "gpt-fake", "upstream": {
        "provider": "openai", "model": "echo", "base_url": up + "/v1", "api_key": "sk-fake"}}], **(extra or {})}))
    os.environ["LOCKGATE_HOME"] = env["LOCKGATE_HOME"]  # admin records are signed with the server's key
    from lockgate import config
    from lockgate.identity import keys, principals
    from lockgate.store import open_store

    store = open_store(config.database_url())
    principals.add_principal(store, "bench", "bench", "acme")
    secret, _ = keys.create_key(store, "bench")
    store.dispose()
    port = free_port()
    proc = spawn([str(Path(sys.executable).with_name("lockgate")), "serve", "-c", str(tmp / "lockgate.yaml"),
                  "--port", str(port), "--log-level", "warning", "--workers", str(workers)], env, tmp / "lg.log",
                 f"http://127.0.0.1:{port}/healthz")
    return proc, f"http://127.0.0.1:{port}", secret


def start_litellm(up: str, tmp: Path) -> tuple[subprocess.Popen | None, str, str]:
    exe = VENV / "bin" / "litellm"
    if not exe.exists():  # first use: its own venv, never the project's
        try:
            shutil.rmtree(VENV, ignore_errors=True)
            subprocess.run(["python3", "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=300)
            subprocess.run([str(VENV / "bin/pip"), "install", "-q", LITELLM], check=True, capture_output=True,
                           timeout=1500)
        except (subprocess.SubprocessError, OSError) as e:
            err = (getattr(e, "stderr", b"") or b"")[-200:].decode(errors="replace").replace("\n", " ")
            return None, f"not measured: installing {LITELLM} failed ({type(e).__name__}: {err})", ""
    key = "sk-" + secrets.token_hex(32)  # it refuses to start without a master key
    (tmp / "litellm.yaml").write_text(
        f"model_list:\n  - model_name: gpt-fake\n    litellm_params:\n      model: openai/echo\n"
        f"      api_base: {up}/v1\n      api_key: sk-fake\nlitellm_settings:\n  telemetry: false\n"
        f"general_settings:\n  master_key: {key}\n")
    port = free_port()
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    try:
        proc = spawn([str(exe), "--config", str(tmp / "litellm.yaml"), "--host", "127.0.0.1", "--port", str(port),
                      "--num_workers", "1"], env, tmp / "litellm.log", f"http://127.0.0.1:{port}/health/liveliness", 240)
    except RuntimeError as e:
        return None, f"not measured: {str(e)[-200:]}", ""
    return proc, f"http://127.0.0.1:{port}", key


# -- load: a bare HTTP/1.1 keep-alive client, so the client costs little next to what it measures ----
async def _one(reader, writer, req: bytes) -> tuple[int, float]:
    writer.write(req)
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    first = None
    if b"\r\ntransfer-encoding: chunked" in head:  # "\r\n": LiteLLM echoes upstream headers, prefixed
        while n := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(n + 2)
            first = first or time.perf_counter()
        await reader.readexactly(2)
    else:
        i = head.index(b"\r\ncontent-length:") + 17
        await reader.readexactly(int(head[i:head.index(b"\r\n", i)]))
    return int(head[9:12]), first or time.perf_counter()


async def drive(url: str, key: str | None, n: int, conc: int, stream: bool, done: list | None = None) -> dict:
    """n requests from `conc` looping keep-alive clients; latency (whole answer) and time to first byte, ms."""
    import orjson

    host, port = url.split("//")[1].split(":")
    body = orjson.dumps({"model": "gpt-fake", "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
    req = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
           f"authorization: Bearer {key or 'x'}\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body
    out, left = {"lat": [], "ttfb": [], "errors": {}}, [n]

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        while left[0] > 0:
            left[0] -= 1
            t = time.perf_counter()
            try:
                status, first = await asyncio.wait_for(_one(reader, writer, req), 30)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                status, first = 0, 0.0
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
            if status != 200:  # 0: no answer (timeout, cut connection)
                out["errors"][status] = out["errors"].get(status, 0) + 1
                continue
            out["lat"].append((time.perf_counter() - t) * 1000)
            out["ttfb"].append((first - t) * 1000)
            if done is not None:
                done[0] += 1
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(conc)))
    return {**out, "rps": len(out["lat"]) / (time.perf_counter() - t0)}


def pct(xs: list[float], q: int) -> float:
    return statistics.quantiles(xs, n=100)[q - 1] if len(xs) > 1 else (xs[0] if xs else float("nan"))


def measure(url: str, key: str | None, n: int, conc: int) -> dict:
    asyncio.run(drive(url, key, min(300, n), 4, False))  # warm-up: connections, caches, lazy imports
    return {"seq": asyncio.run(drive(url, key, n, 1, False)),
            "stream": asyncio.run(drive(url, key, max(n // 2, 2), 1, True)),
            "conc": asyncio.run(drive(url, key, n * 2, conc, False))}


def soak(url: str, key: str, pid: int, total: int, conc: int) -> list[tuple[float, int, float]]:
    done, samples = [0], []

    async def run() -> dict:
        t0 = time.perf_counter()
        task = asyncio.create_task(drive(url, key, total, conc, False, done))
        while not samples or not task.done():
            samples.append((time.perf_counter() - t0, done[0], status_mb(pid, "VmRSS")))
            await asyncio.wait([task], timeout=10)
        samples.append((time.perf_counter() - t0, done[0], status_mb(pid, "VmRSS")))
        return task.result()

    res = asyncio.run(run())
    print(f"soak: {len(res['lat'])} ok, errors {res['errors']}, {res['rps']:.0f} req/s", file=sys.stderr)
    return samples


def row(name: str, m: dict | None, b: dict, hwm: float | None, note: str = "") -> str:
    if m is None:
        return f"| {name} | {note} |" + " - |" * 8
    s, c = m["seq"]["lat"], m["conc"]
    errs = {k: v for phase in m.values() for k, v in phase["errors"].items()}
    note = "; ".join(x for x in (note, f"non-200 answers (status: count): {errs}" if errs else "") if x)

    def add(k: str, field: str, q: int) -> str:
        return f"{pct(m[k][field], q) - pct(b[k][field], q):+.2f}"

    return (f"| {name} | {pct(s, 50):.2f} | {add('seq', 'lat', 50)} | {add('seq', 'lat', 99)} | "
            f"{add('stream', 'ttfb', 50)} | {pct(c['lat'], 50):.2f} | {add('conc', 'lat', 99)} | {c['rps']:,.0f} | "
            f"{'-' if hwm is None else f'{hwm:.0f}'} | {note or '-'} |")


def audit_micro(n: int = 3000) -> str:
    """In-process: what the audit stage makes the final event wait for, per durability mode."""
    sys.path.insert(0, str(Path(__file__).parent))
    from audit import make_entry  # bench/audit.py's record: realistic size, AES-GCM sealed content

    from lockgate.audit.journal import Journal
    from lockgate.audit.writer import Writer
    from lockgate.store import open_store

    out = ["| audit wait, 1 client, SQLite, incl. record build + seal | p50 ms | p99 ms |", "|---|---:|---:|"]
    for label, journal, fsync in (("group commit (`journal: false`)", False, False), ("journal", True, False),
                                  ("journal + fsync", True, True)):
        d = Path(tempfile.mkdtemp(prefix="lg-audit-"))
        store = open_store(f"sqlite:///{d}/a.db")
        w = Writer(store, 1.0, fsync=fsync, journal=Journal(d / "j", "bench", fsync) if journal else None)
        w.start()
        ms = []
        for i in range(n):
            t = time.perf_counter()
            fut = w.durable(make_entry(i))
            fut is not None and fut.result()
            ms.append((time.perf_counter() - t) * 1000)
        w.stop()
        store.dispose()
        out.append(f"| {label} | {statistics.median(ms):.3f} | {pct(ms, 99):.3f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="per phase (the concurrent phase sends 2x)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--upstream-workers", type=int, default=2)
    ap.add_argument("--soak", action="store_true", help="then 100k requests through lockgate, RSS sampled")
    ap.add_argument("--soak-requests", type=int, default=100_000)
    ap.add_argument("--skip-litellm", action="store_true")
    ap.add_argument("--lockgate-workers", type=int, default=1, help="lockgate serve --workers")
    ap.add_argument("--audit-compare", action="store_true", help="also lockgate with audit.journal: false")
    ap.add_argument("--audit-micro", action="store_true", help="only the in-process audit wait, per mode")
    a = ap.parse_args()
    if a.audit_micro:
        return print(audit_micro())
    tmp, port, n, c = Path(tempfile.mkdtemp(prefix="lg-overhead-")), free_port(), a.requests, a.concurrency
    up = f"http://127.0.0.1:{port}"
    procs = [spawn([sys.executable, "-m", "uvicorn", "--app-dir", str(Path(__file__).parent), "overhead:upstream",
                    "--lifespan", "off", "--port", str(port), "--workers", str(a.upstream_workers), "--loop", "uvloop",
                    "--http", "httptools", "--no-access-log", "--log-level", "warning"], dict(os.environ),
                   tmp / "up.log", up + "/")]
    rows, ll_rps, samples = [], None, []
    try:
        base = measure(up, None, n, c)
        lg, lg_url, key = start_lockgate(up, tmp, workers=a.lockgate_workers)
        procs.append(lg)
        name = "lockgate" + (f" (--workers {a.lockgate_workers})" if a.lockgate_workers > 1 else "")
        rows.append((name, measure(lg_url, key, n, c), tree_hwm_mb(lg.pid), ""))
        ll, where, llkey = (None, "skipped (--skip-litellm)", "") if a.skip_litellm else start_litellm(up, tmp)
        if ll is not None:
            procs.append(ll)
            rows.append(("LiteLLM proxy 1.106.2", measure(where, llkey, n, c), tree_hwm_mb(ll.pid), ""))
            ll_rps = rows[-1][1]["conc"]["rps"]
            stop(ll)
        else:
            rows.append(("LiteLLM proxy 1.106.2", None, None, where))
        samples = soak(lg_url, key, lg.pid, a.soak_requests, c) if a.soak else []
        if a.audit_compare:
            stop(lg)
            lg, url2, key2 = start_lockgate(up, tmp, {"audit": {"journal": False}}, a.lockgate_workers)
            procs.append(lg)
            rows.append(("lockgate, `audit.journal: false`", measure(url2, key2, n, c), tree_hwm_mb(lg.pid),
                         "final event waits for the DB commit"))
    finally:
        for p in procs:
            stop(p)
    print(f"\n{n} sequential requests, {n // 2} sequential streamed, {n * 2} at concurrency {c} (@c); ms; "
          f"{os.cpu_count()} CPUs; load average before: {LOAD0}\n\n| target | p50 seq | added p50 | added p99 | "
          "added TTFB p50 (stream) | p50 @c | added p99 @c | req/s @c | peak RSS MB | note |\n|---|" + "---:|" * 8
          + "---|\n" + row("direct to the fake upstream", base, base, None))
    print("\n".join(row(name, m, base, hwm, note) for name, m, hwm, note in rows))
    lgm = rows[0][1]
    added = pct(lgm["seq"]["lat"], 50) - pct(base["seq"]["lat"], 50)
    print(f"\ntargets: p50 added {added:.2f} ms (<= {TARGET_P50_MS}: {'met' if added <= TARGET_P50_MS else 'NOT met'})"
          + (f"; throughput @c {lgm['conc']['rps'] / ll_rps:.1f}x LiteLLM (>= {TARGET_X}x: "
             f"{'met' if lgm['conc']['rps'] >= TARGET_X * ll_rps else 'NOT met'})" if ll_rps else ""))
    if samples:
        print("\n| t (s) | requests done | lockgate RSS MB |\n|---:|---:|---:|\n"
              + "\n".join(f"| {t:.0f} | {k:,} | {r:.1f} |" for t, k, r in samples))
    print(f"\nload average after: {os.getloadavg()}")


LOAD0 = os.getloadavg()

if __name__ == "__main__":
    main()
