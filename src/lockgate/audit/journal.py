"""The local audit journal: a record reaches the kernel before its answer completes.

Each record is one JSON line appended (O_APPEND, one os.write) to a segment file under
$LOCKGATE_HOME/audit-journal/<trail>/, before the final event is released. The group commit moves
it into the database later; a segment is deleted once every record in it has committed. After a
kill -9, the next start replays the records whose request id is not yet in the database.

Replicas: each process holds an exclusive flock on `<replica>.lock` for its lifetime and writes only
its own segments. The kernel drops the lock when the process dies, so a lock that can be taken
belongs to a dead process, whose segments any replica sharing the directory may replay.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import re
import socket
import threading
import time
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path

import orjson

from lockgate.audit.chain import Entry

SEGMENT_BYTES = 8 << 20  # rotate here; a segment is deleted once all of its records have committed


def directory(home: Path, store_url: str) -> Path:
    # One directory per trail: a journal must never be replayed into another database.
    return home / "audit-journal" / hashlib.sha256(store_url.encode()).hexdigest()[:16]


def encode(e: Entry) -> bytes:
    doc = {"kind": e.kind, "at": e.at.isoformat(), "request_id": e.request_id, "body": e.body,
           "content": base64.b64encode(e.content).decode() if e.content is not None else None}
    return orjson.dumps(doc) + b"\n"


def decode(line: bytes) -> Entry:
    d = orjson.loads(line)
    blob = base64.b64decode(d["content"]) if d.get("content") is not None else None
    return Entry(d["kind"], datetime.fromisoformat(d["at"]), d["body"], d["request_id"], blob)


def read_segment(path: Path) -> list[Entry]:
    out = []
    for line in path.read_bytes().split(b"\n"):
        try:
            out.append(decode(line))
        except (ValueError, KeyError, TypeError):  # a torn last line: its answer was never released
            continue
    return out


class Journal:
    def __init__(self, path: Path, replica: str | None = None, fsync: bool = False,
                 segment_bytes: int = SEGMENT_BYTES) -> None:
        self.dir = path
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.replica = re.sub(r"[^A-Za-z0-9_-]", "_", replica or os.environ.get("LOCKGATE_REPLICA_ID")
                              or socket.gethostname() or "replica")
        self.token = f"{time.time_ns():x}"  # this incarnation's segments: name them apart from a dead one's
        self._lock = threading.Lock()
        self._open: dict[int, int] = {}  # segment number -> records not yet committed
        self._seg = -1
        self._fd = -1
        self._size = 0
        self._lock_fd = -1
        self._waiters: list[Future] = []
        self._wake = threading.Condition(self._lock)
        self._syncer: threading.Thread | None = None
        self._closing = False

    # -- lifetime -------------------------------------------------------------------------------
    def open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        base, n = self.replica, 0
        while True:  # two live processes with one replica id: the second one takes `<id>-1`
            fd = os.open(self.dir / f"{self.replica}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                os.close(fd)
                n += 1
                self.replica = f"{base}-{n}"
        self._lock_fd = fd
        self._rotate()
        if self.fsync:
            self._syncer = threading.Thread(target=self._sync_loop, name="audit-journal-sync", daemon=True)
            self._syncer.start()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._wake.notify()
            if self._fd >= 0:
                if self.fsync:
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1
            for seg, left in list(self._open.items()):
                if left == 0:
                    self._drop(seg)
        if self._syncer is not None:
            self._syncer.join(5)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def _path(self, seg: int) -> Path:
        return self.dir / f"{self.replica}.{self.token}.{seg:06d}.jsonl"

    def _rotate(self) -> None:
        if self._fd >= 0:
            if self.fsync:
                os.fsync(self._fd)
            os.close(self._fd)
            if self._open.get(self._seg) == 0:
                self._drop(self._seg)
        self._seg += 1
        self._fd = os.open(self._path(self._seg), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self.fsync:  # the new file's directory entry must survive a power loss too
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        self._size = 0
        self._open[self._seg] = 0

    def _drop(self, seg: int) -> None:
        del self._open[seg]
        try:
            os.unlink(self._path(seg))
        except FileNotFoundError:
            pass

    # -- the request path ------------------------------------------------------------------------
    def append(self, entry: Entry) -> int:
        """Writes the record; returns its segment, to hand back to `committed`. Raises OSError."""
        line = encode(entry)
        with self._lock:
            if self._size >= self.segment_bytes:
                self._rotate()
            try:
                n = os.write(self._fd, line)
                if n != len(line):
                    raise OSError(f"short write to the audit journal ({n} of {len(line)} bytes)")
            except OSError:
                self._size = self.segment_bytes  # a torn line ends its segment: the next record starts clean
                raise
            self._size += n
            self._open[self._seg] += 1
            return self._seg

    def synced(self) -> Future:
        """Resolves once everything appended so far is fsynced (one fdatasync serves many waiters)."""
        fut: Future = Future()
        with self._lock:
            self._waiters.append(fut)
            self._wake.notify()
        return fut

    def _sync_loop(self) -> None:
        while True:
            with self._lock:
                while not self._waiters and not self._closing:
                    self._wake.wait()
                if self._closing and not self._waiters:
                    return
                waiters, self._waiters = self._waiters, []
                fd = os.dup(self._fd) if self._fd >= 0 else -1  # rotation may close the original meanwhile
            err = None
            if fd >= 0:  # else closed, and fsynced on closing
                try:
                    os.fdatasync(fd)
                except OSError as e:
                    err = e
                finally:
                    os.close(fd)
            for f in waiters:
                f.set_exception(err) if err else f.set_result(None)

    # -- the writer thread -------------------------------------------------------------------------
    def committed(self, counts: dict[int, int]) -> None:
        with self._lock:
            for seg, k in counts.items():
                self._open[seg] -= k
                if self._open[seg] == 0 and seg != self._seg:
                    self._drop(seg)

    def orphans(self) -> tuple[list[Path], list[int]]:
        """Segments left by dead processes (this replica's earlier runs included), and the lock fds
        taken to claim them: hold those until the replay has committed, then `release`."""
        paths, fds = [], []
        for lock in sorted(self.dir.glob("*.lock")):
            name = lock.name[:-5]
            if name != self.replica:
                fd = os.open(lock, os.O_RDWR)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # alive
                    os.close(fd)
                    continue
                fds.append(fd)
            for seg in sorted(self.dir.glob(f"{name}.*.jsonl")):
                if name != self.replica or not seg.name.startswith(f"{self.replica}.{self.token}."):
                    paths.append(seg)
        return paths, fds

    def release(self, paths: list[Path], fds: list[int], done: bool) -> None:
        if done:
            for p in paths:
                p.unlink(missing_ok=True)
        for fd in fds:
            os.close(fd)
