"""The audit journal: records reach a local file before the answer completes, are replayed after a
kill -9, exactly once, and each replica replays only what dead processes left."""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa
import yaml
from support import fake_models
from fakes import free_port
from test_audit_kill import LOCKGATE, start

from lockgate.audit.chain import Entry
from lockgate.audit.journal import Journal, read_segment
from lockgate.audit.verify import verify_store
from lockgate.audit.writer import Writer
from lockgate.identity import keys, principals
from lockgate.store import open_store


def entry(i: int) -> Entry:
    return Entry("request", datetime.now(UTC), {"type": "request", "request_id": f"req_{i}", "n": i},
                 f"req_{i}", b"\x00blob" if i % 2 else None)


def segments(path) -> list[str]:
    return sorted(p.name for p in path.glob("*.jsonl"))


def request_ids(store) -> list[str]:
    with store.engine.connect() as c:
        return list(c.execute(sa.text("SELECT request_id FROM audit_records WHERE kind = 'request'")).scalars())


def test_segments_go_once_every_record_in_them_has_committed(tmp_path):
    j = Journal(tmp_path, "r1", segment_bytes=1)  # one record per segment
    j.open()
    segs = [j.append(entry(i)) for i in range(3)]
    assert segs == [0, 1, 2] and len(segments(tmp_path)) == 3
    back = read_segment(tmp_path / segments(tmp_path)[1])
    assert [(e.request_id, e.body["n"], e.content) for e in back] == [("req_1", 1, b"\x00blob")]
    j.committed({0: 1, 2: 1})
    assert len(segments(tmp_path)) == 2  # the current segment stays open even when fully committed
    j.committed({1: 1})
    j.close()
    assert segments(tmp_path) == []


def test_fsync_mode_resolves_waiters_with_one_sync(tmp_path):
    j = Journal(tmp_path, "r1", fsync=True)
    j.open()
    j.append(entry(1))
    waits = [j.synced() for _ in range(3)]
    assert [w.result(30) for w in waits] == [None, None, None]
    j.close()


def test_orphans_are_the_dead_processes_segments_only(tmp_path):
    live = Journal(tmp_path, "a")
    live.open()
    live.append(entry(1))
    dead = Journal(tmp_path, "b")
    dead.open()
    dead.append(entry(2))
    os.close(dead._lock_fd)  # as a kill -9 would: the kernel drops the lock, the segment stays
    twin = Journal(tmp_path, "a")  # same replica id as a live process: must not share its files
    twin.open()
    assert twin.replica == "a-1"
    paths, fds = twin.orphans()
    assert [read_segment(p)[0].request_id for p in paths] == ["req_2"]
    twin.release(paths, fds, done=True)
    assert not any(n.startswith("b.") for n in segments(tmp_path))
    assert live.orphans()[0] == []  # b's are gone, a-1 is alive
    for j in (twin, live):
        j.close()


def test_writer_replays_each_lost_record_exactly_once(tmp_path, store):
    jdir = tmp_path / "journal"
    dead = Journal(jdir, "gw")
    dead.open()
    for i in range(3):
        dead.append(entry(i))
    w = Writer(store, checkpoint_every=0.2)  # req_0 reached the database before the crash
    w.start()
    w.submit(entry(0)).result(30)
    w.stop()
    os.close(dead._lock_fd)

    w = Writer(store, checkpoint_every=0.2, journal=Journal(jdir, "gw"))
    w.start()
    assert w.submit(entry(3)).result(30)  # committed after the replay
    w.stop()
    assert sorted(request_ids(store)) == ["req_0", "req_1", "req_2", "req_3"]
    assert segments(jdir) == []
    assert verify_store(store).ok


def test_records_held_only_by_the_journal_survive_kill_9(fake, store_url, tmp_path):
    """The database is locked for appends, so complete answers have their record in the journal only."""
    home = tmp_path / "home"
    env = {**os.environ, "LOCKGATE_HOME": str(home), "LOCKGATE_DATABASE_URL": store_url, "HF_HUB_OFFLINE": "1"}
    conf = tmp_path / "lockgate.yaml"
    conf.write_text(yaml.safe_dump({"models": fake_models(fake.url), "audit": {"checkpoint_seconds": 0.2}}))
    store = open_store(store_url)
    old = os.environ.get("LOCKGATE_HOME")
    os.environ["LOCKGATE_HOME"] = str(home)
    try:
        principals.add_principal(store, "alice", "alice", "acme")
        secret, _ = keys.create_key(store, "alice")
    finally:
        os.environ.pop("LOCKGATE_HOME") if old is None else os.environ.__setitem__("LOCKGATE_HOME", old)
    port = free_port()
    url, log = f"http://127.0.0.1:{port}", tmp_path / "gateway.log"
    auth = {"authorization": f"Bearer {secret}"}

    def ask(i: int) -> httpx.Response:
        return httpx.post(url + "/v1/chat/completions", headers=auth, timeout=30,
                          json={"model": "gpt-fake", "stream": i % 2 == 1,
                                "messages": [{"role": "user", "content": f"q{i}"}]})

    proc = start(conf, port, env, log)
    blocker = sa.create_engine(store_url)
    conn = blocker.connect()
    tx = conn.begin()
    conn.execute(sa.text("UPDATE audit_head SET size = size WHERE id = 1"))  # holds the appenders' lock
    try:
        done = []
        for i in range(12):
            r = ask(i)
            assert r.status_code == 200, r.text
            assert i % 2 == 0 or r.text.rstrip().endswith("data: [DONE]")
            done.append(r.headers["lockgate-request-id"])
        got = set(conn.execute(sa.text("SELECT request_id FROM audit_records")).scalars())
        assert not got & set(done)  # none of them could reach the database
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        tx.rollback()
        conn.close()
        blocker.dispose()

    proc = start(conf, port, env, log)
    try:
        after = ask(0)
        assert after.status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)
    stored = request_ids(store)
    assert sorted(stored) == sorted(set(stored))  # replayed once, not twice
    assert set(done) <= set(stored) and after.headers["lockgate-request-id"] in stored
    assert "replayed 12 record(s)" in log.read_text()
    res = subprocess.run([LOCKGATE, "audit", "verify"], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "ok:" in res.stderr, res.stderr
    store.dispose()


def test_journaled_records_linger_for_company_but_awaited_ones_do_not(tmp_path, store):
    import time

    w = Writer(store, checkpoint_every=5, journal=Journal(tmp_path / "j", "gw"), linger=6.0)
    w.start()
    futs = [w.submit(entry(i)) for i in range(1, 6)]  # journaled: nobody waits on their commit
    t = time.monotonic()
    admin = Entry("admin", datetime.now(UTC), {"type": "admin", "n": 0})  # not journaled: its caller waits
    assert w.submit(admin).result(30)
    assert time.monotonic() - t < 5  # it ended the lingering group instead of waiting out the 6 s
    assert [f.result(30) for f in futs] == [1, 2, 3, 4, 5]
    assert w.batches == 1  # one transaction for the six
    t = time.monotonic()
    assert w.submit(entry(6)).result(30) == 7  # alone, it waits out the linger, then commits
    assert time.monotonic() - t >= 3
    w.stop()
    assert sorted(request_ids(store)) == [f"req_{i}" for i in range(1, 7)]
    assert verify_store(store).ok


def test_a_backlog_past_its_bound_makes_answers_wait_for_their_commit(tmp_path, store):
    import threading

    w = Writer(store, checkpoint_every=5, journal=Journal(tmp_path / "j", "gw"), max_backlog=3)
    gate, commit = threading.Event(), w._commit
    w._commit = lambda batch, force=False: (gate.wait(30), commit(batch, force))  # a writer that fell behind
    w.start()
    assert [w.durable(entry(i)) is None for i in range(1, 4)] == [True] * 3  # journaled: durable at once
    waits = [w.durable(entry(i)) for i in range(4, 6)]  # the queue now passes 3: answers wait for the commit
    late = next(f for f in waits if f is not None)
    assert not late.done()
    gate.set()
    assert late.result(30) >= 4
    w.stop()
    assert sorted(request_ids(store)) == sorted(f"req_{i}" for i in range(1, 6))
