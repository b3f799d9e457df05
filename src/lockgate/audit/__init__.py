"""The audit trail: one hash-chained, signed record per request and per admin action (see docs/audit.md)."""

from __future__ import annotations

from datetime import datetime, timezone


def record_admin(store, actor: str | None, action: str, target: str, details: dict | None = None,
                 now: datetime | None = None) -> int:
    """Appends an admin action (e.g. "key.create", target the key id) to the trail; returns its seq.

    `store` is a Store (committed on return) or an open SQLAlchemy Session, e.g. the one of
    `store.change()`: then the record commits, or not, together with the change it describes.
    `actor` None means $LOCKGATE_ACTOR, else the local OS user.
    """
    from lockgate.audit.chain import Entry, append
    from lockgate.audit.record import admin_body

    now = now or datetime.now(timezone.utc)
    entry = Entry("admin", now, admin_body(actor, action, target, details, now))
    if hasattr(store, "engine"):
        with store.engine.begin() as conn:
            return append(conn, [entry])[0]
    return append(store.connection(), [entry])[0]
