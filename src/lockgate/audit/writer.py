"""Group commit: one background thread appends every queued record in one transaction.

Callers that must not answer before their record is durable await the returned future; everyone
else fires and forgets. While one group commits, the next one queues, so throughput grows with load.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from typing import Callable
from concurrent.futures import Future, InvalidStateError

from sqlalchemy import event

from lockgate.audit import chain
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
                 on_idle: Callable[[], None] | None = None) -> None:
        self.store = store
        self.on_idle = on_idle
        self.checkpoint_every = checkpoint_every
        self.max_batch = max_batch
        self.engine = store.engine
        if store.url.startswith("sqlite") and fsync:
            self.engine = make_engine(store.url)
            event.listen(self.engine, "connect", _full_sync)
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.batches = 0
        self.records = 0

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self.thread.start()

    def submit(self, entry: chain.Entry) -> Future:
        fut: Future = Future()
        self.q.put((entry, fut))
        return fut

    async def append(self, entry: chain.Entry) -> int:
        """Returns the record's sequence number once its group has committed."""
        return await asyncio.wrap_future(self.submit(entry))

    def _run(self) -> None:
        stopping = False
        dirty = False
        while not stopping:
            try:
                item = self.q.get(timeout=self.checkpoint_every)
            except queue.Empty:
                self._idle(dirty)
                dirty = False
                continue
            dirty = True
            batch = []
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
                    break
            self._commit(batch, force=stopping)

    def _commit(self, batch: list, force: bool = False) -> None:
        for attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    seqs = chain.append(conn, [e for e, _ in batch], self.checkpoint_every, force_checkpoint=force)
                break
            except Exception as e:  # store outage or lock timeout: retry, then fail the waiters
                if attempt == 4:
                    log.error("audit group commit of %d record(s) failed: %s", len(batch), e)
                    for _, fut in batch:
                        _settle(fut, exc=e)
                    return
                time.sleep(0.05 * 2**attempt)
        self.batches += 1
        self.records += len(batch)
        for (_, fut), seq in zip(batch, seqs):
            _settle(fut, seq)

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
            self.thread.join(30)
            self.thread = None
        if self.engine is not self.store.engine:
            self.engine.dispose()
