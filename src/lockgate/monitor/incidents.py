"""Store side of the monitor: record signalled requests, climb the ladder, incidents, throttle counting.

Runs in worker threads (never on the event loop). An escalation commits through `store.change()`, so
every replica drops its caches (identity sees a suspension, MonitorStage a throttle) within a poll.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import delete, func, select, update

from lockgate.audit import record_admin
from lockgate.monitor.settings import RANK, MonitorSettings
from lockgate.monitor.tables import MonitorEvent, MonitorIncident, MonitorThrottleHit
from lockgate.store.models import ApiKey, Principal

ACTOR = "lockgate-monitor"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class NotFound(Exception):
    pass


def utc(dt: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything here is UTC.
    return dt.replace(tzinfo=timezone.utc) if dt is not None and dt.tzinfo is None else dt


def targets(st: MonitorSettings, ev: dict) -> list[tuple[str, str]]:
    out = [(st.scope, ev["principal"] if st.scope == "principal" else ev.get("key_id"))]
    if st.org_flag_at and ev.get("org"):
        out.append(("org", ev["org"]))
    return [(scope, sid) for scope, sid in out if sid]


_COLUMN = {"principal": MonitorEvent.principal, "key": MonitorEvent.key_id, "org": MonitorEvent.org}


def _since(s, scope: str, sid: str, window_start: datetime) -> datetime:
    """Counting restarts after an operator resolved this subject's last incident."""
    last = s.scalar(select(func.max(MonitorIncident.resolved_at)).where(
        MonitorIncident.scope == scope, MonitorIncident.scope_id == sid))
    return max(window_start, utc(last) or EPOCH)


def _open(s, scope: str, sid: str) -> MonitorIncident | None:
    q = select(MonitorIncident).where(MonitorIncident.scope == scope, MonitorIncident.scope_id == sid,
                                      MonitorIncident.state == "open").order_by(MonitorIncident.id.desc())
    return s.scalars(q).first()


def _evidence(e: MonitorEvent) -> dict:
    return {"request_id": e.request_id, "at": utc(e.at).isoformat(), "kinds": e.kinds, "domain": e.domain,
            "score": e.score, "similarity": e.similarity, "template": e.template, "key_id": e.key_id}


def _plan(s, st: MonitorSettings, ev: dict, now: datetime) -> list[tuple]:
    """(scope, id, count, step) for every subject this event moves up the ladder."""
    plans = []
    for scope, sid in targets(st, ev):
        since = _since(s, scope, sid, now - timedelta(minutes=st.window_minutes))
        n = 1 + s.scalar(select(func.count()).select_from(MonitorEvent).where(_COLUMN[scope] == sid,
                                                                              MonitorEvent.at > since))
        step = st.step_for(n, scope)
        inc = _open(s, scope, sid)
        if step is not None and (inc is None or RANK[step.action] > RANK[inc.level]):
            plans.append((scope, sid, n, step, since))
    return plans


def observe(store, st: MonitorSettings, ev: dict, on_view: Callable[[dict], None]) -> list[dict]:
    """Records one signalled request; applies any ladder step it completes. Returns webhook alerts."""
    now = ev["at"]
    with store.session() as s:
        plans = _plan(s, st, ev, now)
    alerts: list[dict] = []
    with (store.change() if plans else store.session()) as s:
        e = MonitorEvent(**ev)
        s.add(e)
        s.flush()
        for scope, sid in targets(st, ev):  # evidence accrues on an open incident
            inc = _open(s, scope, sid)
            if inc is not None:
                inc.evidence = (list(inc.evidence) + [_evidence(e)])[-st.evidence_max:]
                inc.hits, inc.updated_at = inc.hits + 1, now
        for scope, sid, n, step, since in plans:
            alerts.append(_escalate(s, st, scope, sid, n, step, since, ev, now))
        if plans:
            s.flush()
            on_view(load_view(s))  # before commit: a test (or replica) that sees the commit sees it enforced
    return alerts


def _escalate(s, st, scope, sid, n, step, since, ev, now) -> dict:
    inc = _open(s, scope, sid)
    if inc is None:
        inc = MonitorIncident(scope=scope, scope_id=sid, principal=ev["principal"] if scope != "org" else None,
                              org=ev.get("org"), state="open", level=step.action, contained=False, hits=0,
                              opened_at=now, updated_at=now, note="", evidence=[], history=[])
        s.add(inc)
        col = _COLUMN[scope]
        rows = s.scalars(select(MonitorEvent).where(col == sid, MonitorEvent.at > since)
                         .order_by(MonitorEvent.id)).all()
        inc.evidence, inc.hits = [_evidence(r) for r in rows][-st.evidence_max:], len(rows)
        s.flush()
    inc.level, inc.updated_at = step.action, now
    if step.action == "throttle":
        inc.rpm, inc.contained = step.requests_per_minute, True
    elif step.action == "suspend":
        inc.contained = True
        _contain(s, scope, sid, now, lift=False)
    details = {"incident": inc.id, "hits": n, "window_minutes": st.window_minutes, "rpm": inc.rpm,
               "request_ids": [x["request_id"] for x in inc.evidence][-20:],
               "templates": sorted({x["template"] for x in inc.evidence if x.get("template")}),
               "max_similarity": max((x["similarity"] or 0 for x in inc.evidence), default=0),
               "max_score": max((x["score"] or 0 for x in inc.evidence), default=0)}
    seq = record_admin(s, ACTOR, f"monitor.{step.action}", f"{scope}:{sid}", details, now=now)
    inc.history = list(inc.history) + [{"at": now.isoformat(), "action": step.action, "by": ACTOR, "audit_seq": seq,
                                        "hits": n}]
    return {"event": f"monitor.{step.action}", "scope": scope, "id": sid, **details, "audit_seq": seq}


def _contain(s, scope: str, sid: str, now: datetime, lift: bool) -> None:
    """Suspends (or lifts): the principal's status, or the key's revocation."""
    if scope == "principal":
        s.execute(update(Principal).where(Principal.id == sid).values(status="active" if lift else "suspended"))
    elif scope == "key":
        s.execute(update(ApiKey).where(ApiKey.id == sid).values(revoked_at=None if lift else now))


def load_view(s) -> dict[str, int]:
    """'scope:id' -> requests per minute, for every throttle in force."""
    rows = s.execute(select(MonitorIncident.scope, MonitorIncident.scope_id, MonitorIncident.rpm).where(
        MonitorIncident.contained.is_(True), MonitorIncident.rpm.is_not(None))).all()
    view: dict[str, int] = {}
    for scope, sid, rpm in rows:
        k = f"{scope}:{sid}"
        view[k] = min(rpm, view.get(k, rpm))
    return view


def view(store) -> dict[str, int]:
    with store.session() as s:
        return load_view(s)


def take(store, subject: str, rpm: int, now: datetime) -> int | None:
    """Counts one request against a throttle; returns seconds to wait instead when the minute is full."""
    start = now - timedelta(seconds=60)
    with store.session() as s:
        s.execute(delete(MonitorThrottleHit).where(MonitorThrottleHit.scope_id == subject,
                                                   MonitorThrottleHit.at <= start))
        times = s.scalars(select(MonitorThrottleHit.at).where(MonitorThrottleHit.scope_id == subject)
                          .order_by(MonitorThrottleHit.at)).all()
        if len(times) >= rpm:
            oldest = utc(times[len(times) - rpm]) if rpm else now
            return max(1, math.ceil(60 - (now - oldest).total_seconds())) if rpm else 60
        s.add(MonitorThrottleHit(scope_id=subject, at=now))
    return None


def to_dict(inc: MonitorIncident, full: bool = False) -> dict:
    d = {"id": inc.id, "scope": inc.scope, "subject": inc.scope_id, "principal": inc.principal, "org": inc.org,
         "state": inc.state, "level": inc.level, "contained": inc.contained, "rpm": inc.rpm, "hits": inc.hits,
         "opened_at": utc(inc.opened_at).isoformat(), "updated_at": utc(inc.updated_at).isoformat(),
         "resolved_at": inc.resolved_at and utc(inc.resolved_at).isoformat(), "note": inc.note}
    if full:
        d["evidence"], d["history"] = list(inc.evidence), list(inc.history)
    return d


def list_incidents(store, state: str | None = "open") -> list[dict]:
    q = select(MonitorIncident).order_by(MonitorIncident.id)
    if state:
        q = q.where(MonitorIncident.state == state)
    with store.session() as s:
        return [to_dict(i) for i in s.scalars(q)]


def _get(s, id: int) -> MonitorIncident:
    # ids are 64-bit: a larger number names no incident (and would overflow the driver, not miss)
    inc = s.get(MonitorIncident, id) if 0 < id < 2**63 else None
    if inc is None:
        raise NotFound(f"no incident {id}")
    return inc


def get_incident(store, id: int) -> dict:
    with store.session() as s:
        inc = _get(s, id)
        return to_dict(inc, full=True)


def resolve(store, id: int, note: str = "", lift: bool = False, actor: str | None = None,
            now: datetime | None = None) -> dict:
    """Closes an incident (again, to lift later); --lift ends its throttle and suspension."""
    from lockgate import monitor

    now = now or monitor.now()
    with store.change() as s:
        inc = _get(s, id)
        was = inc.state
        inc.state, inc.updated_at = "resolved", now
        inc.resolved_at = inc.resolved_at if was == "resolved" else now
        inc.note = "\n".join(x for x in (inc.note, note) if x)
        lifted = lift and inc.contained
        if lifted:
            if inc.level == "suspend":
                _contain(s, inc.scope, inc.scope_id, now, lift=True)
            inc.contained = False
        details = {"incident": inc.id, "from": was, "level": inc.level, "lifted": lifted, "note": note}
        seq = record_admin(s, actor, "incident.resolve", f"{inc.scope}:{inc.scope_id}", details, now=now)
        inc.history = list(inc.history) + [{"at": now.isoformat(), "action": "resolve" + ("+lift" if lifted else ""),
                                            "by": actor or "operator", "audit_seq": seq, "note": note}]
        s.flush()
        return to_dict(inc, full=True)
