"""Cost of the audit trail: added latency per request and sustained records/s, SQLite and PostgreSQL.

    .venv/bin/python bench/audit.py [--pg postgresql+psycopg://...] [--n 20000]

"Added latency" is what a request waits for before its final event is released: building the record,
sealing its content (AES-GCM) and the group commit it joins. Measured with one client (an idle gateway)
and with 64 concurrent clients; "records/s" is the rate the writer sustains with a full queue.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone

os.environ.setdefault("LOCKGATE_HOME", tempfile.mkdtemp(prefix="lg-bench-"))

from lockgate.audit import content  # noqa: E402
from lockgate.audit.chain import Entry  # noqa: E402
from lockgate.audit.record import request_body  # noqa: E402
from lockgate.audit.verify import verify_store  # noqa: E402
from lockgate.audit.writer import Writer  # noqa: E402
from lockgate.chat import ChatRequest, Message, Usage  # noqa: E402
from lockgate.context import Hop, RequestContext  # noqa: E402
from lockgate.identity.subject import Subject  # noqa: E402
from lockgate.store import open_store  # noqa: E402

KEY = content.content_key()


def make_entry(i: int) -> Entry:
    req = ChatRequest("openai", "gpt-x", [Message("user", f"question number {i}: " + "lorem ipsum " * 40)])
    ctx = RequestContext(req, "203.0.113.9")
    ctx.principal = Subject("alice", "Alice", "acme", attributes={"citizenships": {"value": ["FR"]}})
    ctx.key_id, ctx.requested_model, ctx.model = "key_0123456789abcdef", "gpt-x", "gpt-x"
    ctx.hops.append(Hop("gpt-x", "openai:gpt-x", "served"))
    ctx.safeguards.append({"stage": "input", "domain": "bio", "score": 0.01, "action": "allow"})
    sealed, digest = content.seal(ctx.request_id, {"messages": [{"role": "user", "content": req.messages[0].content}],
                                                   "answer": "an answer " * 60}, KEY)
    body = request_body(ctx, Usage(120, 300), digest)
    return Entry("request", datetime.now(timezone.utc), body, ctx.request_id, sealed)


async def latency(writer: Writer, clients: int, per_client: int) -> list[float]:
    out: list[float] = []

    async def client(c: int) -> None:
        for i in range(per_client):
            t = time.perf_counter()
            await writer.append(make_entry(c * per_client + i))
            out.append((time.perf_counter() - t) * 1000)

    await asyncio.gather(*(client(c) for c in range(clients)))
    return out


def throughput(writer: Writer, n: int) -> float:
    entries = [make_entry(i) for i in range(n)]  # built beforehand: this measures the writer alone
    t = time.perf_counter()
    futs = [writer.submit(e) for e in entries]
    for f in futs:
        f.result()
    return n / (time.perf_counter() - t)


def run(label: str, url: str, n: int, fsync: bool = False) -> list[str]:
    store = open_store(url)
    writer = Writer(store, checkpoint_every=1.0, fsync=fsync)
    writer.start()
    idle = asyncio.run(latency(writer, 1, 500))
    busy = asyncio.run(latency(writer, 64, 40))
    rate = throughput(writer, n)
    batches0, records0 = writer.batches, writer.records
    writer.stop()
    rep = verify_store(store)
    assert rep.ok, rep.problem
    store.dispose()
    p = lambda xs, q: statistics.quantiles(xs, n=100)[q - 1]  # noqa: E731
    return [label, f"{statistics.median(idle):.3f}", f"{p(idle, 99):.3f}", f"{statistics.median(busy):.3f}",
            f"{p(busy, 99):.3f}", f"{rate:,.0f}", f"{records0 / max(batches0, 1):.1f}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", default=os.environ.get("LOCKGATE_TEST_PG_URL"))
    ap.add_argument("--n", type=int, default=20000)
    a = ap.parse_args()
    t0 = time.perf_counter()
    for i in range(2000):
        make_entry(i)
    build_ms = (time.perf_counter() - t0) / 2000 * 1000
    tmp = tempfile.mkdtemp(prefix="lg-bench-db-")
    rows = [run("SQLite (WAL, synchronous=NORMAL)", f"sqlite:///{tmp}/a.db", a.n),
            run("SQLite (fsync per group)", f"sqlite:///{tmp}/b.db", a.n, fsync=True)]
    if a.pg:
        rows.append(run("PostgreSQL", a.pg, a.n))
    head = ["store", "p50 1 client (ms)", "p99 1 client", "p50 64 clients", "p99 64 clients", "records/s",
            "records/commit"]
    print(f"record build + AES-GCM seal: {build_ms:.3f} ms per request (included in the latencies below)\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\npython {sys.version.split()[0]}, {os.cpu_count()} CPUs, n={a.n}")


if __name__ == "__main__":
    main()
