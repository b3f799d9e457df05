"""Group commit: one background thread appends every queued record in one transaction.

With a journal (journal.py), `submit` first appends the record to the local journal, so a caller
that must not answer before its record is durable waits for a file write, not a transaction; the
thread replays what a killed process left in the journal before anything else. Without one, such
callers await the commit. While one group commits, the next one queues, so throughput grows with load.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError

from sqlalchemy import event, select

from lockgate.audit import chain
from lockgate.audit.journal import Journal, read_segment
from lockgate.audit.tables import RECORDS
from lockgate.store.db import make_engine

log = logging.getLogger("lockgate.audit")
_STOP = object()


def _full_sync(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


def _settle(fut: Future, result=None, exc: BaseException | None = None) -> None:
    try:  # a waiter that went away (client disconnected) has cancelled its future
        fut.set_exception(exc) if exc is not None else fut.set_result(result)
    except InvalidStateError:
        pass


class Writer:
    def __init__(self, store, checkpoint_every: float = 5.0, max_batch: int = 1000, fsync: bool = False,
                 on_idle: Callable[[], None] | None = None, journal: Journal | None = None,
                 linger: float = 0.0, max_backlog: int = 5000) -> None:
        self.store = store
        self.max_backlog = max_backlog  # queued records past which answers wait for their commit
        self.linger = linger  # seconds a group of journaled records waits for company before committing
        self.journal = journal
        self._failed: list = []  # journaled records whose commit failed: retried when idle
        self.on_idle = on_idle
        self.checkpoint_every = checkpoint_every
        self.max_batch = max_batch
        self.engine = store.engine
        if store.url.startswith("sqlite") and fsync:
            self.engine = make_engine(store.url)
            event.listen(self.engine, "connect", _full_sync)
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self._urgent = threading.Event()
        self.thread: threading.Thread | None = None
        self.batches = 0
        self.records = 0

    def start(self) -> None:
        if self.thread is None:
            if self.journal is not None:
                self.journal.open()
            self.thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self.thread.start()

    def submit(self, entry: chain.Entry) -> Future:
        """Queues the record (journaling it first, if there is a journal); the future gives its seq."""
        seg = self.journal.append(entry) if self.journal is not None and entry.request_id else None
        fut: Future = Future()
        self.q.put((entry, fut, seg))
        if seg is None:
            self._urgent.set()  # someone awaits this commit: end a lingering group now
        return fut

    def durable(self, entry: chain.Entry) -> Future | None:
        """Queues the record; returns what to wait for before the record counts as durable (None: now).

        Journal: the write has reached the kernel on return (survives kill -9); with fsync, the
        future is a group fdatasync (survives power loss). No journal: the group commit."""
        fut = self.submit(entry)
        # Past max_backlog queued records the answer waits for its commit: when the writer falls behind (a
        # busy CPU, a slow database) the backlog, and the memory it holds, stays bounded; throughput drops
        # to what the store can take instead.
        if self.journal is None or self.q.qsize() > self.max_backlog:
            return fut
        return self.journal.synced() if self.journal.fsync else None

    async def append(self, entry: chain.Entry) -> int:
        """Returns the record's sequence number once its group has committed."""
        return await asyncio.wrap_future(self.submit(entry))

    def _replay(self) -> bool:
        """Commits the records dead processes journaled but never committed. True when done."""
        paths, fds = self.journal.orphans()
        ok = False
        try:
            entries = [e for p in paths for e in read_segment(p)]
            with self.engine.connect() as conn:
                have = set()
                ids = [e.request_id for e in entries]
                for i in range(0, len(ids), 500):
                    have.update(conn.execute(select(RECORDS.c.request_id)
                                             .where(RECORDS.c.request_id.in_(ids[i:i + 500]))).scalars())
            todo = [e for e in entries if e.request_id not in have]
            for i in range(0, len(todo), self.max_batch):
                with self.engine.begin() as conn:
                    chain.append(conn, todo[i:i + self.max_batch], self.checkpoint_every)
            if todo:
                log.warning("audit: replayed %d record(s) from the journal of a stopped process", len(todo))
            ok = True
        except Exception as e:  # store down at start-up: the segments stay, and we try again when idle
            log.error("audit journal replay failed: %s", e)
        finally:
            self.journal.release(paths, fds, ok)
        return ok

    def _run(self) -> None:
        replayed = self.journal is None or self._replay()
        stopping = False
        dirty = False
        while not stopping:
            try:
                item = self.q.get(timeout=self.checkpoint_every)
            except queue.Empty:
                if not replayed:
                    replayed = self._replay()
                if self._failed:
                    batch, self._failed = self._failed, []
                    self._commit(batch)
                self._idle(dirty)
                dirty = False
                continue
            dirty = True
            batch = []
            until = time.monotonic() + self.linger
            self._urgent.clear()  # a set left over from a group that never waited; this group's drain sees it
            while True:
                if item is _STOP:
                    stopping = True
                else:
                    batch.append(item)
                if len(batch) >= self.max_batch:
                    break
                try:
                    item = self.q.get_nowait()
                except queue.Empty:
                    # Nobody waits on this commit while every record in the group is journaled (seg set):
                    # gather more for a moment, so one transaction serves many (and holds the GIL less).
                    # Sleeping, not blocking on the queue: a put then wakes no thread on the request path.
                    left = until - time.monotonic()
                    if stopping or left <= 0 or any(seg is None for _, _, seg in batch):
                        break
                    self._urgent.wait(left)
                    self._urgent.clear()
                    try:
                        item = self.q.get_nowait()
                    except queue.Empty:
                        break
            self._commit(batch, force=stopping)

    def _commit(self, batch: list, force: bool = False) -> None:
        for attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    seqs = chain.append(conn, [e for e, _, _ in batch], self.checkpoint_every,
                                        force_checkpoint=force)
                break
            except Exception as e:  # store outage or lock timeout: retry, then fail the waiters
                if attempt == 4:
                    log.error("audit group commit of %d record(s) failed: %s", len(batch), e)
                    for _, fut, _ in batch:
                        _settle(fut, exc=e)
                    # Journaled records are still on disk: keep them for a later try (or the next start's replay).
                    self._failed.extend(item for item in batch if item[2] is not None)
                    return
                time.sleep(0.05 * 2**attempt)
        self.batches += 1
        self.records += len(batch)
        segs: dict[int, int] = {}
        for (entry, fut, seg), seq in zip(batch, seqs):
            _settle(fut, seq)
            if seg is not None:
                segs[seg] = segs.get(seg, 0) + 1
        if segs:
            self.journal.committed(segs)

    def _idle(self, dirty: bool) -> None:
        """Quiet moments: sign the tail so it is not left unchecked, and run housekeeping (purge)."""
        try:
            if dirty:
                with self.engine.begin() as conn:
                    chain.append(conn, [], self.checkpoint_every)
            if self.on_idle is not None:
                self.on_idle()
        except Exception as e:
            log.warning("audit maintenance failed: %s", e)

    def stop(self) -> None:
        """Commits what is queued, signs a final checkpoint, and stops the thread."""
        if self.thread is not None:
            self.q.put(_STOP)
            self._urgent.set()
            self.thread.join(30)
            self.thread = None
            if self.journal is not None:
                self.journal.close()
        if self.engine is not self.store.engine:
            self.engine.dispose()
