"""The hash chain: canonical JSON, links, appends under the head lock, signed checkpoints.

hash(n) = SHA-256(hash(n-1) || canonical_json(record n)), hash(0) = 64 zeros. A checkpoint signs
(size, head hash, time) with the gateway's Ed25519 key, like a Certificate Transparency tree head.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from lockgate.audit import signing
from lockgate.audit.tables import CHECKPOINTS, CONTENT, HEAD, RECORDS

GENESIS = "0" * 64


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link(prev: str, body: str) -> str:
    return hashlib.sha256(prev.encode() + body.encode()).hexdigest()


def checkpoint_message(size: int, head: str, at: str) -> bytes:
    return canonical({"type": "lockgate-audit-checkpoint", "v": 1, "size": size, "head": head, "at": at}).encode()


def iso(dt: datetime) -> str:
    # SQLite hands back naive datetimes; everything stored is UTC.
    dt = dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
    return dt.isoformat(timespec="microseconds")


@dataclass(slots=True)
class Entry:
    """One record to append. `body` gets its `seq`; `content` (encrypted blob) is optional."""

    kind: str
    at: datetime
    body: dict
    request_id: str | None = None
    content: bytes | None = None


def append(conn: Connection, entries: list[Entry], checkpoint_every: float = 5.0, force_checkpoint: bool = False,
           now: float | None = None) -> list[int]:
    """Appends in the caller's transaction. Returns the sequence numbers given."""
    # Writing the head row first takes the lock (SQLite: the write lock; PostgreSQL: the row lock).
    size, prev, cp_at = conn.execute(update(HEAD).where(HEAD.c.id == 1).values(size=HEAD.c.size)
                                     .returning(HEAD.c.size, HEAD.c.hash, HEAD.c.checkpointed_at)).one()
    rows, contents, seqs = [], [], []
    for e in entries:
        size += 1
        e.body["seq"] = size
        text = canonical(e.body)
        h = link(prev, text)
        rows.append({"seq": size, "at": e.at, "kind": e.kind, "request_id": e.request_id, "body": text,
                     "prev": prev, "hash": h})
        if e.content is not None and e.request_id:
            contents.append({"request_id": e.request_id, "created_at": e.at, "blob": e.content})
        seqs.append(size)
        prev = h
    _insert(conn, RECORDS, rows)
    _insert(conn, CONTENT, contents)
    now = time.time() if now is None else now
    values = {"size": size, "hash": prev}
    if size and (force_checkpoint or now - cp_at >= checkpoint_every):
        write_checkpoint(conn, size, prev, datetime.fromtimestamp(now, timezone.utc))
        values["checkpointed_at"] = now
    conn.execute(update(HEAD).where(HEAD.c.id == 1).values(**values))
    return seqs


def _insert(conn: Connection, table, rows: list[dict]) -> None:
    """Many rows in few statements. Plain executemany on SQLite steps one row at a time and lets go of the GIL
    around each, so under load the writer thread queued for the GIL once per row while the event loop held
    it, and fell tens of thousands of records behind. With RETURNING, SQLAlchemy's "insertmanyvalues" sends
    multi-row INSERTs from one cached statement (on PostgreSQL too). Small pages keep the statement shapes
    few: the driver keeps each distinct SQL text prepared, and a 1000-row statement is large."""
    if rows:
        pk = next(iter(table.primary_key.columns))
        stmt = table.insert().returning(pk).execution_options(insertmanyvalues_page_size=_PAGE)
        conn.execute(stmt, rows).all()


_PAGE = 32


def write_checkpoint(conn: Connection, size: int, head: str, at: datetime) -> None:
    exists = conn.execute(select(CHECKPOINTS.c.size).where(CHECKPOINTS.c.size == size)).first()
    if exists:
        return
    key = signing.load_or_create_key()
    sig = signing.sign(checkpoint_message(size, head, iso(at)), key)
    conn.execute(CHECKPOINTS.insert().values(size=size, head=head, at=at, key_id=signing.key_id(key.public_key()),
                                             signature=sig))


def checkpoint_now(engine) -> tuple[int, str]:
    """Signs the current head (export does this so a bundle ends on a signed size)."""
    with engine.begin() as conn:
        append(conn, [], force_checkpoint=True)
        return tuple(conn.execute(select(HEAD.c.size, HEAD.c.hash).where(HEAD.c.id == 1)).one())
