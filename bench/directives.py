"""Directive benchmarks: decision latency, propagation across replicas, plan time for 100k principals.

    .venv/bin/python bench/directives.py [--pg postgresql+psycopg://…] [--principals 100000] [--rounds 20]

Prints a table. Targets (issue #3): decision ≤ 50 µs p99 cached, ≤ 200 µs p99 uncached; propagation
≤ 1 s p99 on 3 replicas; plan ≤ 30 s for 100k principals.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes import FakeUpstream, ServerThread, free_port  # noqa: E402
from lockgate import config as cfg  # noqa: E402
from lockgate.directives import model as dmodel  # noqa: E402
from lockgate.directives import service  # noqa: E402
from lockgate.directives.engine import Engine, access_rule  # noqa: E402
from lockgate.directives.store import State  # noqa: E402
from lockgate.identity import keys, principals  # noqa: E402
from lockgate.identity.attributes import Requirements, conclusions  # noqa: E402
from lockgate.identity.importer import import_csv  # noqa: E402
from lockgate.store import open_store  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def decisions(n: int = 20000) -> list[tuple]:
    d = dmodel.load(ROOT / "examples/june-12/directive.yaml")
    rule = access_rule("mythos-5", 'principal.programs.contains("glasswing")', "reroute", "opus-4.8", "")
    eng = Engine({"fable-5", "mythos-5", "opus-4.8"}, [rule])
    eng.load(State(1, [d], frozenset(d.models)))
    attrs = conclusions({}, "acme", Requirements())
    ctx = {"country": "US", "api": "openai"}
    uncached, cached = [], []
    for _ in range(n):
        eng.forget()  # a true miss: parse the entity and evaluate, as for a never-seen attribute set
        t = time.perf_counter_ns()
        eng.decide(attrs, "fable-5", ctx)
        uncached.append((time.perf_counter_ns() - t) / 1000)
    for _ in range(n):
        t = time.perf_counter_ns()
        eng.decide(attrs, "fable-5", ctx)
        cached.append((time.perf_counter_ns() - t) / 1000)
    return [("decision, uncached (µs)", pct(uncached, 50), pct(uncached, 99), "≤ 200 p99"),
            ("decision, cached (µs)", pct(cached, 50), pct(cached, 99), "≤ 50 p99")]


def propagation(url: str, home: Path, rounds: int) -> tuple:
    fake = FakeUpstream()
    with ServerThread(fake.app) as up:
        conf = cfg.load(ROOT / "examples/june-12/lockgate.yaml").model_dump()
        for m in conf["models"]:
            m["deployments"] = [{"provider": "openai", "model": "echo", "base_url": up.url + "/v1"}]
        path = home / "bench.yaml"
        path.write_text(yaml.safe_dump(conf))
        store = open_store(url)
        principals.add_principal(store, "chen", "Chen", "provider")
        key, _ = keys.create_key(store, "chen")
        ports = [free_port() for _ in range(3)]
        env = {**os.environ, "LOCKGATE_DATABASE_URL": url, "LOCKGATE_HOME": str(home)}
        procs = [subprocess.Popen([sys.executable, "-m", "lockgate", "serve", "-c", str(path), "--port", str(p),
                                   "--log-level", "error"], env=env, stderr=subprocess.DEVNULL) for p in ports]
        try:
            clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", headers={"authorization": f"Bearer {key}"})
                       for p in ports]
            for c in clients:
                while True:
                    try:
                        if c.get("/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.1)
            body = {"model": "fable-5", "messages": [{"role": "user", "content": "x"}]}
            d = dmodel.load(ROOT / "examples/june-12/directive.yaml")
            conf_obj = cfg.Config.model_validate(conf)
            lat = []
            for r in range(rounds):
                applying = r % 2 == 0
                want = "opus-4.8" if applying else "fable-5"
                t0 = time.perf_counter()
                service.apply(store, conf_obj, d, "bench") if applying else service.revoke(store, d.id, "bench")
                t_applied = time.perf_counter()
                pending = set(range(3))
                while pending:
                    for i in list(pending):
                        if clients[i].post("/v1/chat/completions", json=body).headers.get(
                                "lockgate-served-model") == want:
                            lat.append(time.perf_counter() - t_applied)
                            pending.discard(i)
                    if time.perf_counter() - t0 > 10:
                        raise RuntimeError("propagation took over 10 s")
        finally:
            for p in procs:
                p.terminate()
                p.wait()
    return ("propagation to 3 replicas (ms)", pct(lat, 50) * 1000, pct(lat, 99) * 1000, "≤ 1000 p99")


def plan_time(url: str, home: Path, n: int) -> tuple:
    rng = random.Random(7)
    countries = ["US", "CA", "DE", "CN", "IN", "GB", "FR", "JP", "BR", "MX"]
    rows = ["id,name,org,citizenships,permanent_residence,protected_individual,programs,assurance,verified_at,expires_at"]
    for i in range(n):
        cits = ";".join(rng.sample(countries, rng.choice([1, 1, 1, 2])))
        rows.append(f"u{i},U{i},org{rng.randrange(200)},{cits},{rng.choice(['', '', 'US'])},false,"
                    f"{rng.choice(['', '', 'glasswing'])},{rng.choice(['self', 'org', 'kyc'])},2026-01-01T00:00:00Z,"
                    f"{rng.choice(['', '2030-01-01T00:00:00Z', '2026-01-02T00:00:00Z'])}")
    csv = home / "people.csv"
    csv.write_text("\n".join(rows) + "\n")
    store = open_store(url)
    import_csv(store, csv)
    conf = cfg.load(ROOT / "examples/june-12/lockgate.yaml")
    d = dmodel.load(ROOT / "examples/june-12/directive.yaml")
    t = time.perf_counter()
    p = service.plan(store, conf, d)
    took = time.perf_counter() - t
    assert p.principals >= n
    return (f"plan, {n:,} principals (s)", took, took, "≤ 30")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", help="PostgreSQL URL for the propagation and plan runs (default: SQLite)")
    ap.add_argument("--principals", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    rows = decisions()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ["LOCKGATE_HOME"] = tmp
        url = a.pg or f"sqlite:///{home / 'bench.db'}"
        rows.append(propagation(url, home, a.rounds))
        url2 = a.pg or f"sqlite:///{home / 'plan.db'}"
        if a.pg:  # a clean database for the plan run
            import sqlalchemy as sa

            admin = sa.create_engine(a.pg, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(sa.text("DROP DATABASE IF EXISTS lg_bench_plan WITH (FORCE)"))
                c.execute(sa.text("CREATE DATABASE lg_bench_plan"))
            url2 = a.pg.rsplit("/", 1)[0] + "/lg_bench_plan"
        rows.append(plan_time(url2, home, a.principals))
    store = "PostgreSQL" if a.pg else "SQLite"
    print(f"\n| measure ({store}) | p50 | p99 | target |\n|---|---|---|---|")
    for name, p50, p99, target in rows:
        print(f"| {name} | {p50:.1f} | {p99:.1f} | {target} |")


if __name__ == "__main__":
    main()
