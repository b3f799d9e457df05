"""Spend rollups: per day x org x principal x key x model, summed in memory and flushed as upserts.

One row per combination per day instead of one per request keeps spend queries cheap at any volume;
the per-request detail is in the audit trail.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import date, datetime, timezone

from sqlalchemy import func, select

from lockgate.metering.tables import USAGE, insert_for

COLS = ("requests", "tokens_in", "tokens_out", "cost_micro")
GROUPS = {"org": USAGE.c.org, "principal": USAGE.c.principal, "key": USAGE.c.key_id, "model": USAGE.c.model,
          "day": USAGE.c.day}


class Rollup:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])

    def add(self, day: str, org: str, principal: str, key_id: str, model: str, tin: int, tout: int, cost: int) -> None:
        with self._lock:
            row = self._pending[(day, org, principal, key_id, model)]
            row[0] += 1
            row[1] += tin
            row[2] += tout
            row[3] += cost

    def flush(self, store) -> int:
        with self._lock:
            pending, self._pending = self._pending, defaultdict(lambda: [0, 0, 0, 0])
        if not pending:
            return 0
        try:
            with store.engine.begin() as conn:
                for (day, org, principal, key_id, model), vals in sorted(pending.items()):
                    ins = insert_for(conn, USAGE).values(day=day, org=org, principal=principal, key_id=key_id,
                                                         model=model, **dict(zip(COLS, vals)))
                    conn.execute(ins.on_conflict_do_update(
                        index_elements=["day", "org", "principal", "key_id", "model"],
                        set_={c: USAGE.c[c] + ins.excluded[c] for c in COLS}))
        except Exception:
            with self._lock:  # keep the sums for the next try
                for k, vals in pending.items():
                    row = self._pending[k]
                    for i, v in enumerate(vals):
                        row[i] += v
            raise
        return len(pending)


def today(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%d")


class BadDay(ValueError):
    pass


def _day(value: str | None, name: str) -> str | None:
    """``value`` as YYYY-MM-DD, or BadDay: days compare as text, so "notadate" would silently match nothing."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise BadDay(f"{name} {value!r} is not a day (YYYY-MM-DD)") from None


def report(store, by: list[str], since: str | None = None, until: str | None = None) -> list[dict]:
    """Sums grouped by any of org, principal, key, model, day; `since`/`until` are YYYY-MM-DD (else BadDay)."""
    since, until = _day(since, "since"), _day(until, "until")
    cols = [GROUPS[b].label(b) for b in by]
    q = select(*cols, *(func.sum(USAGE.c[c]).label(c) for c in COLS))
    if since:
        q = q.where(USAGE.c.day >= since)
    if until:
        q = q.where(USAGE.c.day <= until)
    if cols:
        q = q.group_by(*cols).order_by(func.sum(USAGE.c.cost_micro).desc(), *cols)
    with store.engine.connect() as c:
        rows = [dict(r._mapping) for r in c.execute(q) if r._mapping["requests"]]
    for r in rows:  # PostgreSQL sums bigints as numeric
        r.update({k: int(r[k]) for k in COLS})
    return rows
