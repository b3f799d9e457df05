"""Limits and their counters. A request reserves its worst case on every limit that applies, in one
transaction of conditional UPDATEs (`... WHERE spent + reserved + amount <= limit`), so concurrent
requests can never together exceed a limit; after the answer the reservation becomes the real amount.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import and_, delete, select, update

from lockgate.metering.tables import COUNTERS, LIMITS, insert_for

SCOPES = ("key", "principal", "org")
PERIODS = {"minute": "%Y-%m-%dT%H:%M", "day": "%Y-%m-%d", "month": "%Y-%m"}
METRICS = ("usd", "requests", "tokens")
MICRO = 1_000_000
MAX_AMOUNT = 10**12  # per period, in dollars, requests or tokens: stored as micro-dollars in a 64-bit integer


@dataclass(frozen=True, slots=True)
class Limit:
    scope: str
    scope_id: str
    period: str
    metric: str
    amount: int  # micro-USD for usd

    def describe(self, amount: int | None = None) -> str:
        a = self.amount if amount is None else amount
        value = f"${a / MICRO:,.2f}" if self.metric == "usd" else f"{a:,} {self.metric}"
        return f"{self.scope} {self.scope_id}: {value} per {self.period}"


class OverLimit(Exception):
    def __init__(self, limit: Limit) -> None:
        super().__init__(limit.describe())
        self.limit = limit


def bucket(period: str, now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime(PERIODS[period])


def amount_of(metric: str, value: float) -> int:
    """A limit's stored amount: micro-dollars for usd, else the count. ValueError names what is wrong."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= MAX_AMOUNT):
        raise ValueError(f"{metric} must be a number from 0 to {MAX_AMOUNT:,}, not {value!r}")
    if metric == "usd":
        return round(value * MICRO)
    if value != int(value):
        raise ValueError(f"{metric} must be a whole number, not {value!r}")
    return int(value)


def set_limit(store, scope: str, scope_id: str, period: str, metric: str, amount: int) -> Limit:
    """``amount`` as ``amount_of`` gives it."""
    for name, value, choices in (("scope", scope, SCOPES), ("period", period, tuple(PERIODS)), ("metric", metric, METRICS)):
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    if not scope_id.strip():
        raise ValueError("id must name the org, principal or key")
    if not 0 <= amount <= MAX_AMOUNT * MICRO:
        raise ValueError(f"amount {amount} out of range")
    with store.change() as s:  # running gateways reload their limits
        key = {"scope": scope, "scope_id": scope_id, "period": period, "metric": metric}
        s.execute(delete(LIMITS).where(and_(*(LIMITS.c[k] == v for k, v in key.items()))))
        s.execute(LIMITS.insert().values(**key, amount=amount, updated_at=datetime.now(timezone.utc)))
    return Limit(scope, scope_id, period, metric, amount)


def remove_limit(store, scope: str, scope_id: str, period: str, metric: str) -> bool:
    with store.change() as s:
        return s.execute(delete(LIMITS).where(LIMITS.c.scope == scope, LIMITS.c.scope_id == scope_id,
                                              LIMITS.c.period == period, LIMITS.c.metric == metric)).rowcount > 0


def unknown_subject(store, scope: str, scope_id: str) -> bool:
    """Whether no key, principal or org of that id exists yet. A limit may wait for one (OIDC principals
    appear at their first login), but it is more often a typo, so the CLI says so."""
    from lockgate.store.models import ApiKey, Principal

    with store.session() as s:
        if scope == "org":
            return s.scalars(select(Principal.id).where(Principal.org == scope_id).limit(1)).first() is None
        return s.get(ApiKey if scope == "key" else Principal, scope_id) is None


def list_limits(store) -> list[Limit]:
    with store.engine.connect() as c:
        rows = c.execute(select(LIMITS).order_by(LIMITS.c.scope, LIMITS.c.scope_id, LIMITS.c.period))
        return [Limit(r.scope, r.scope_id, r.period, r.metric, r.amount) for r in rows]


def counters(store, now: datetime | None = None) -> dict[Limit, tuple[int, int]]:
    """(spent, reserved) in the current window of every limit."""
    now = now or datetime.now(timezone.utc)
    out = {}
    with store.engine.connect() as c:
        for lim in list_limits(store):
            row = c.execute(select(COUNTERS.c.spent, COUNTERS.c.reserved).where(
                *_pk(lim, bucket(lim.period, now)))).first()
            out[lim] = tuple(row) if row else (0, 0)
    return out


def _pk(lim: Limit, b: str):
    return (COUNTERS.c.scope == lim.scope, COUNTERS.c.scope_id == lim.scope_id, COUNTERS.c.period == lim.period,
            COUNTERS.c.metric == lim.metric, COUNTERS.c.bucket == b)


Held = list[tuple[Limit, str, int]]  # (limit, bucket, amount reserved)


def reserve(store, limits: list[Limit], amounts: dict[str, int], now: datetime) -> Held:
    """Reserves on all limits or on none; raises OverLimit naming the first that would be exceeded."""
    held: Held = []
    with store.engine.begin() as conn:
        for lim in limits:
            b, amt = bucket(lim.period, now), amounts[lim.metric]
            ins = insert_for(conn, COUNTERS).values(scope=lim.scope, scope_id=lim.scope_id, period=lim.period,
                                                    metric=lim.metric, bucket=b, spent=0, reserved=0)
            conn.execute(ins.on_conflict_do_nothing())
            done = conn.execute(update(COUNTERS).where(
                *_pk(lim, b), COUNTERS.c.spent + COUNTERS.c.reserved + amt <= lim.amount)
                .values(reserved=COUNTERS.c.reserved + amt))
            if done.rowcount != 1:
                raise OverLimit(lim)  # rolls back the reservations already made above
            held.append((lim, b, amt))
    return held


def reconcile(store, held: Held, actual: dict[str, int]) -> None:
    """Turns reservations into the amounts really used (zero for a request that never reached a model)."""
    with store.engine.begin() as conn:
        for lim, b, amt in held:
            conn.execute(update(COUNTERS).where(*_pk(lim, b)).values(
                reserved=COUNTERS.c.reserved - amt, spent=COUNTERS.c.spent + actual.get(lim.metric, 0)))
