"""Directive versions: every apply and revoke is a row, hash-chained to the one before and signed
with the gateway's Ed25519 key, so the history can be checked by anyone holding the public key."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.directives.model import Directive, DirectiveError
from lockgate.store import Store
from lockgate.store.models import Base

GENESIS = "0" * 64


class DirectiveVersion(Base):
    __tablename__ = "directive_versions"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    directive_id: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(16))  # apply | revoke
    document: Mapped[str] = mapped_column(Text)  # canonical JSON of the directive
    digest: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    signature: Mapped[str] = mapped_column(Text)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_by: Mapped[str] = mapped_column(String(256))


@dataclass(frozen=True)
class State:
    version: int  # seq of the newest row: the policy version
    applied: list[Directive]  # in force or scheduled (effective windows are checked at decision time)
    ever_restricted: frozenset[str]  # every model any directive has ever named


def _hash(prev: str, action: str, directive_id: str, digest: str, at: datetime, by: str) -> str:
    line = "\n".join([prev, action, directive_id, digest, at.astimezone(timezone.utc).isoformat(), by])
    return hashlib.sha256(line.encode()).hexdigest()


def _sign(h: str) -> str:
    from lockgate.audit.signing import load_or_create_key

    return base64.b64encode(load_or_create_key().sign(bytes.fromhex(h))).decode()


def _append(store: Store, directive_id: str, action: str, document: str, digest: str, by: str) -> DirectiveVersion:
    with store.change() as s:
        if store.is_postgres:  # one writer at a time keeps the chain linear across replicas
            from sqlalchemy import text

            s.execute(text("SELECT pg_advisory_xact_lock(743222)"))
        last = s.scalars(select(DirectiveVersion).order_by(DirectiveVersion.seq.desc()).limit(1)).first()
        prev = last.hash if last else GENESIS
        at = datetime.now(timezone.utc)
        h = _hash(prev, action, directive_id, digest, at, by)
        row = DirectiveVersion(directive_id=directive_id, action=action, document=document, digest=digest,
                               prev_hash=prev, hash=h, signature=_sign(h), applied_at=at, applied_by=by)
        s.add(row)
        s.flush()
        s.expunge(row)
        return row


def apply(store: Store, d: Directive, by: str) -> DirectiveVersion:
    return _append(store, d.id, "apply", d.canonical().decode(), d.digest(), by)


def revoke(store: Store, directive_id: str, by: str) -> DirectiveVersion:
    if directive_id not in {d.id for d in load_state(store).applied}:
        raise DirectiveError(f"directive {directive_id!r} is not in force")
    return _append(store, directive_id, "revoke", "{}", hashlib.sha256(b"{}").hexdigest(), by)


def history(store: Store, directive_id: str | None = None) -> list[DirectiveVersion]:
    with store.session() as s:
        q = select(DirectiveVersion).order_by(DirectiveVersion.seq)
        if directive_id:
            q = q.where(DirectiveVersion.directive_id == directive_id)
        rows = list(s.scalars(q))
        for r in rows:
            s.expunge(r)
        return rows


def load_state(store: Store) -> State:
    rows = history(store)
    latest: dict[str, DirectiveVersion] = {}
    ever: set[str] = set()
    for r in rows:
        latest[r.directive_id] = r
        if r.action == "apply":
            ever.update(Directive.model_validate_json(r.document).models)
    applied = [Directive.model_validate_json(r.document) for r in sorted(latest.values(), key=lambda r: r.seq)
               if r.action == "apply"]
    return State(rows[-1].seq if rows else 0, applied, frozenset(ever))


def verify(store: Store, public_key=None) -> list[str]:
    """Checks the chain and every signature; returns problems (empty when intact)."""
    from cryptography.exceptions import InvalidSignature

    if public_key is None:
        from lockgate.audit.signing import load_or_create_key

        public_key = load_or_create_key().public_key()
    problems, prev = [], GENESIS
    for r in history(store):
        digest = hashlib.sha256(r.document.encode()).hexdigest()
        if r.prev_hash != prev:
            problems.append(f"version {r.seq} ({r.directive_id}): does not follow the previous version")
        if digest != r.digest:
            problems.append(f"version {r.seq} ({r.directive_id}): document was changed after signing")
        if _hash(r.prev_hash, r.action, r.directive_id, r.digest, r.applied_at if r.applied_at.tzinfo else
                 r.applied_at.replace(tzinfo=timezone.utc), r.applied_by) != r.hash:
            problems.append(f"version {r.seq} ({r.directive_id}): hash does not match its contents")
        try:
            public_key.verify(base64.b64decode(r.signature), bytes.fromhex(r.hash))
        except (InvalidSignature, ValueError):
            problems.append(f"version {r.seq} ({r.directive_id}): bad signature")
        prev = r.hash
    return problems
